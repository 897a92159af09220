//! Model-based test: the file store behaves as the memory store (counting bytes the file way)
//! under random operations, including reopening the file store between operations.

use proptest::prelude::*;

use crate::testutil::TempDir;
use crate::{
    Cipher, Discard, EncryptionKey, FileStore, FileStoreConfig, MemStore, Store, StoreLimits,
};

#[derive(Debug, Clone)]
enum Op {
    Store {
        subj: usize,
        hdr: bool,
        len: usize,
    },
    Remove(u64),
    Erase(u64),
    PurgeEx {
        filter: usize,
        seq: u64,
        keep: u64,
    },
    Compact(u64),
    Truncate(u64),
    Limits {
        msgs: u64,
        bytes: u64,
        per: u64,
        new: bool,
        per_new: bool,
    },
    Expire(i64),
    Reopen,
}

const SUBJECTS: [&str; 5] = ["a.1", "a.2", "b.x.y", "b.z", "c"];
const FILTERS: [&str; 6] = ["", ">", "a.*", "a.1", "b.>", "nope"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..SUBJECTS.len(), any::<bool>(), 0..60usize)
            .prop_map(|(subj, hdr, len)| Op::Store { subj, hdr, len }),
        3 => (0..40u64).prop_map(Op::Remove),
        1 => (0..40u64).prop_map(Op::Erase),
        2 => (0..FILTERS.len(), 0..40u64, 0..4u64)
            .prop_map(|(filter, seq, keep)| Op::PurgeEx { filter, seq, keep }),
        1 => (0..45u64).prop_map(Op::Compact),
        1 => (0..40u64).prop_map(Op::Truncate),
        1 => (0..8u64, prop_oneof![Just(0u64), 200..1500u64], 0..3u64, any::<bool>(), any::<bool>())
            .prop_map(|(msgs, bytes, per, new, per_new)| Op::Limits { msgs, bytes, per, new, per_new }),
        1 => (0..60i64).prop_map(Op::Expire),
        2 => Just(Op::Reopen),
    ]
}

fn outcome<T: std::fmt::Debug>(r: &crate::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e}"),
    }
}

fn check_same(m: &MemStore, f: &FileStore) {
    assert_eq!(m.state_with_deleted(), f.state_with_deleted());
    assert_eq!(m.subjects_state(">"), f.subjects_state(">"));
    for filter in FILTERS {
        assert_eq!(
            outcome(&m.load_last_msg(filter)),
            outcome(&f.load_last_msg(filter))
        );
        for start in [0, 3, 10] {
            assert_eq!(
                outcome(&m.load_next_msg(filter, start)),
                outcome(&f.load_next_msg(filter, start))
            );
            for lps in [false, true] {
                assert_eq!(
                    m.num_pending(start, filter, lps),
                    f.num_pending(start, filter, lps)
                );
            }
        }
    }
    let st = m.state();
    for seq in st.first_seq.saturating_sub(1)..=st.last_seq + 1 {
        assert_eq!(outcome(&m.load_msg(seq)), outcome(&f.load_msg(seq)));
    }
}

fn run(ops: Vec<Op>, block_size: u64) {
    run_with(ops, block_size, false, None);
}

fn run_with(ops: Vec<Op>, block_size: u64, compress: bool, cipher: Option<Cipher>) {
    let dir = TempDir::new("model");
    let mut cfg = FileStoreConfig {
        block_size,
        compress,
        encryption_key: cipher.map(|cipher| EncryptionKey {
            cipher,
            key: [7; 32],
        }),
        ..FileStoreConfig::default()
    };
    let mut m = MemStore::with_file_accounting(StoreLimits::default());
    let mut f = FileStore::open(dir.path(), cfg.clone()).unwrap();
    let mut ts = 0i64;
    for op in ops {
        let (a, b) = match op {
            Op::Store { subj, hdr, len } => {
                ts += 1;
                let h: &[u8] = if hdr {
                    b"NATS/1.0\r\nK: v\r\n\r\n"
                } else {
                    b""
                };
                let payload = vec![b'x'; len];
                let s = SUBJECTS[subj];
                (
                    outcome(&m.store_msg(s, h, &payload, ts)),
                    outcome(&f.store_msg(s, h, &payload, ts)),
                )
            }
            Op::Remove(s) => (outcome(&m.remove_msg(s)), outcome(&f.remove_msg(s))),
            Op::Erase(s) => (outcome(&m.erase_msg(s)), outcome(&f.erase_msg(s))),
            Op::PurgeEx { filter, seq, keep } => (
                outcome(&m.purge_ex(FILTERS[filter], seq, keep)),
                outcome(&f.purge_ex(FILTERS[filter], seq, keep)),
            ),
            Op::Compact(s) => (outcome(&m.compact(s)), outcome(&f.compact(s))),
            Op::Truncate(s) => (outcome(&m.truncate(s)), outcome(&f.truncate(s))),
            Op::Limits {
                msgs,
                bytes,
                per,
                new,
                per_new,
            } => {
                let l = StoreLimits {
                    max_msgs: msgs,
                    max_bytes: bytes,
                    max_msgs_per_subject: per,
                    max_age_ns: 20,
                    discard: if new { Discard::New } else { Discard::Old },
                    discard_new_per_subject: per_new,
                    ..StoreLimits::default()
                };
                cfg.limits = l;
                (outcome(&m.update_config(l)), outcome(&f.update_config(l)))
            }
            Op::Expire(back) => {
                let now = ts + 20 - back;
                (outcome(&m.expire(now)), outcome(&f.expire(now)))
            }
            Op::Reopen => {
                f.stop().unwrap();
                drop(f);
                f = FileStore::open(dir.path(), cfg.clone()).unwrap();
                assert!(f.recovery_report().is_empty(), "{:?}", f.recovery_report());
                (String::new(), String::new())
            }
        };
        assert_eq!(a, b);
        check_same(&m, &f);
    }
    f.stop().unwrap();
    drop(f);
    let f = FileStore::open(dir.path(), cfg).unwrap();
    check_same(&m, &f);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn filestore_equals_memstore_small_blocks(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops, 300);
    }

    #[test]
    fn compressed_filestore_equals_memstore(ops in proptest::collection::vec(op(), 1..80)) {
        run_with(ops, 300, true, None);
    }

    #[test]
    fn encrypted_filestore_equals_memstore(
        ops in proptest::collection::vec(op(), 1..80),
        compress in any::<bool>(),
        aes in any::<bool>(),
    ) {
        let cipher = if aes { Cipher::Aes256Gcm } else { Cipher::ChaCha20Poly1305 };
        run_with(ops, 300, compress, Some(cipher));
    }

    #[test]
    fn filestore_equals_memstore_default_blocks(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, crate::filestore::DEFAULT_BLOCK_SIZE);
    }
}

/// The shrunk case that showed a truncate marker dropped while an earlier block header still
/// claimed a higher last sequence.
#[test]
fn truncate_marker_outlives_stale_block_header() {
    let s = |hdr, len| Op::Store { subj: 0, hdr, len };
    let mut ops = vec![s(false, 0); 17];
    ops.push(s(true, 9));
    ops.push(Op::Limits {
        msgs: 1,
        bytes: 0,
        per: 0,
        new: false,
        per_new: false,
    });
    ops.extend([s(false, 0), s(false, 0), s(false, 0), Op::Truncate(1)]);
    ops.extend(vec![s(false, 0); 5]);
    run(ops, 300);
}

/// The shrunk case that showed a floor marker's claim (compact past the end) outliving the
/// truncate that undid it.
#[test]
fn truncate_marker_outlives_earlier_floor_marker() {
    let s = |subj, hdr, len| Op::Store { subj, hdr, len };
    let lim = |msgs, per| Op::Limits {
        msgs,
        bytes: 0,
        per,
        new: false,
        per_new: false,
    };
    let mut ops = vec![
        s(0, true, 26),
        s(2, false, 38),
        s(2, false, 58),
        s(0, false, 30),
        s(0, true, 0),
        lim(1, 0),
        Op::Compact(9),
        s(0, true, 24),
        lim(0, 2),
        s(4, false, 0),
    ];
    ops.extend(vec![s(0, false, 0); 7]);
    ops.extend([Op::Truncate(5), lim(0, 1), s(0, false, 0), s(0, false, 0)]);
    run(ops, 300);
}
/// An encrypted store rewrites its last block at every open, dropping markers no earlier
/// message needs; the newest floor must survive, or a purged empty stream starts at 0 again.
#[test]
fn purged_empty_encrypted_store_keeps_its_first_sequence_across_reopens() {
    for cipher in [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm] {
        let dir = TempDir::new("purge-reopen");
        let cfg = FileStoreConfig {
            encryption_key: Some(EncryptionKey {
                cipher,
                key: [7; 32],
            }),
            ..FileStoreConfig::default()
        };
        let mut f = FileStore::open(dir.path(), cfg.clone()).unwrap();
        f.compact(0).unwrap();
        let want = f.state();
        assert_eq!((want.first_seq, want.last_seq), (1, 0));
        for _ in 0..3 {
            f.stop().unwrap();
            drop(f);
            f = FileStore::open(dir.path(), cfg.clone()).unwrap();
            assert_eq!(f.state(), want);
        }
    }
}

/// The shrunk case (encrypted stores: their record sizes put the two truncates in different
/// blocks) that showed a later, lower truncate dropped by a rewrite while an earlier block
/// kept a higher one, so a reopen claimed the higher last sequence.
#[test]
fn lower_truncate_outlives_a_higher_one_in_an_earlier_block() {
    let ops = vec![
        Op::Store {
            subj: 0,
            hdr: false,
            len: 6,
        },
        Op::Compact(29),
        Op::Truncate(16),
        Op::Store {
            subj: 0,
            hdr: true,
            len: 39,
        },
        Op::Truncate(1),
        Op::PurgeEx {
            filter: 0,
            seq: 2,
            keep: 0,
        },
        Op::Store {
            subj: 0,
            hdr: false,
            len: 6,
        },
        Op::Reopen,
    ];
    run_with(ops, 300, false, Some(Cipher::Aes256Gcm));
}

/// The shrunk case that showed a rewritten block header claiming the truncate's last sequence
/// with the block's older timestamp (the truncate marker, in the same block since markers
/// never start a block, was dropped by the rewrite).
#[test]
fn rewritten_header_takes_the_truncate_timestamp() {
    let s = |subj, len| Op::Store {
        subj,
        hdr: false,
        len,
    };
    let lim = Op::Limits {
        msgs: 0,
        bytes: 0,
        per: 0,
        new: false,
        per_new: false,
    };
    let ops = vec![
        s(0, 0),
        Op::Compact(24),
        s(2, 0),
        s(0, 0),
        s(0, 0),
        s(0, 0),
        lim.clone(),
        s(2, 0),
        Op::PurgeEx {
            filter: 4,
            seq: 25,
            keep: 0,
        },
        Op::Truncate(16),
        Op::PurgeEx {
            filter: 0,
            seq: 2,
            keep: 0,
        },
        lim,
        Op::Reopen,
    ];
    run_with(ops, 300, false, Some(Cipher::ChaCha20Poly1305));
}

/// The shrunk case that showed a compact that changed nothing taking the place of the newest
/// bounds marker, so a rewrite dropped the truncate that set the last timestamp.
#[test]
fn compact_that_changes_nothing_keeps_the_truncate() {
    let s = |subj, hdr, len| Op::Store { subj, hdr, len };
    let lim = |msgs| Op::Limits {
        msgs,
        bytes: 0,
        per: 0,
        new: false,
        per_new: false,
    };
    let ops = vec![
        lim(2),
        Op::Compact(24),
        s(0, true, 49),
        s(0, false, 32),
        Op::PurgeEx {
            filter: 0,
            seq: 0,
            keep: 1,
        },
        s(2, false, 0),
        Op::Expire(0),
        s(0, false, 0),
        s(0, false, 0),
        Op::Truncate(24),
        Op::PurgeEx {
            filter: 0,
            seq: 2,
            keep: 0,
        },
        lim(0),
        Op::Reopen,
    ];
    run_with(ops, 300, false, Some(Cipher::ChaCha20Poly1305));
}
