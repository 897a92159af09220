//! Behaviour tests run against both backends.

use crate::testutil::TempDir;
use crate::{
    Cipher, Discard, EncryptionKey, Error, FileStore, FileStoreConfig, MemStore, Store, StoreLimits,
};

/// Runs `f` on a memory store, then on file stores: plain and encrypted with each cipher.
fn both(limits: StoreLimits, f: impl Fn(&mut dyn Store, bool)) {
    f(&mut MemStore::new(limits), false);
    let keys = [
        None,
        Some(Cipher::ChaCha20Poly1305),
        Some(Cipher::Aes256Gcm),
    ];
    for cipher in keys {
        let dir = TempDir::new("both");
        let cfg = FileStoreConfig {
            block_size: 512,
            limits,
            encryption_key: cipher.map(|cipher| EncryptionKey {
                cipher,
                key: [9; 32],
            }),
            ..FileStoreConfig::default()
        };
        f(&mut FileStore::open(dir.path(), cfg).unwrap(), true);
    }
}

/// FEATURES.md "Observed on nats-server 2.9.10": file 22 + subj + payload + 8 (+ 4 + hdr);
/// memory subj + hdr + payload + 16.
#[test]
fn byte_accounting_matches_nats_server_2_9_10() {
    both(StoreLimits::default(), |s, file| {
        s.store_msg("foo", b"", b"hello", 1).unwrap();
        let expect = if file { 22 + 3 + 5 + 8 } else { 3 + 5 + 16 };
        assert_eq!(s.state().bytes, expect);
        s.store_msg("foo", b"NATS/1.0\r\n\r\n", b"hello", 2)
            .unwrap();
        let with_hdr = if file {
            22 + 3 + 5 + 8 + 4 + 12
        } else {
            3 + 12 + 5 + 16
        };
        assert_eq!(s.state().bytes, expect + with_hdr);
        s.remove_msg(1).unwrap();
        assert_eq!(s.state().bytes, with_hdr);
    });
}

#[test]
fn discard_new_refuses_with_nats_server_texts() {
    let l = StoreLimits {
        max_msgs: 2,
        discard: Discard::New,
        ..StoreLimits::default()
    };
    both(l, |s, _| {
        s.store_msg("a", b"", b"1", 1).unwrap();
        s.store_msg("b", b"", b"2", 2).unwrap();
        let e = s.store_msg("c", b"", b"3", 3).unwrap_err();
        assert!(matches!(e, Error::MaxMsgs));
        assert_eq!(e.to_string(), "maximum messages exceeded");
        assert_eq!(s.state().last_seq, 2);
    });
    let l = StoreLimits {
        max_bytes: 100,
        discard: Discard::New,
        ..StoreLimits::default()
    };
    both(l, |s, _| {
        s.store_msg("a", b"", &[0; 40], 1).unwrap();
        let e = s.store_msg("a", b"", &[0; 60], 2).unwrap_err();
        assert_eq!(e.to_string(), "maximum bytes exceeded");
        assert_eq!(s.state().msgs, 1);
    });
}

#[test]
fn discard_old_evicts_oldest_and_per_subject_history() {
    let l = StoreLimits {
        max_msgs: 3,
        max_msgs_per_subject: 2,
        ..StoreLimits::default()
    };
    both(l, |s, _| {
        for (i, subj) in ["k.a", "k.a", "k.a", "k.b", "k.c"].iter().enumerate() {
            s.store_msg(subj, b"", b"v", i as i64).unwrap();
        }
        // k.a keeps 2 (seqs 2,3), then max_msgs 3 evicts seq 2.
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (3, 3, 5));
        assert_eq!(s.subjects_state("k.a")["k.a"].msgs, 1);
    });
}

#[test]
fn max_msg_size_refused() {
    let l = StoreLimits {
        max_msg_size: 10,
        ..StoreLimits::default()
    };
    both(l, |s, _| {
        assert!(matches!(
            s.store_msg("abc", b"", &[0; 8], 1),
            Err(Error::MsgTooLarge { size: 11, max: 10 })
        ));
        s.store_msg("abc", b"", &[0; 7], 1).unwrap();
    });
}

#[test]
fn last_by_subject_with_wildcards() {
    both(StoreLimits::default(), |s, _| {
        for (i, subj) in ["o.1.new", "o.2.new", "o.1.done", "x", "o.2.new"]
            .iter()
            .enumerate()
        {
            s.store_msg(subj, b"", subj.as_bytes(), i as i64).unwrap();
        }
        assert_eq!(s.load_last_msg("o.1.*").unwrap().seq, 3);
        assert_eq!(s.load_last_msg("o.*.new").unwrap().seq, 5);
        assert_eq!(s.load_last_msg("o.>").unwrap().seq, 5);
        assert_eq!(s.load_last_msg("x").unwrap().msg, b"x");
        assert!(matches!(s.load_last_msg("y.*"), Err(Error::Eof)));
        assert_eq!(s.load_next_msg("o.*.new", 3).unwrap().seq, 5);
        assert_eq!(s.load_next_msg("o.1.>", 0).unwrap().seq, 1);
        assert_eq!(s.num_pending(2, "o.>", false), 3);
        assert_eq!(s.num_pending(1, "o.>", true), 3);
        assert_eq!(s.num_pending(4, "o.>", true), 1);
    });
}

/// nats-server `GetSeqFromTime`: the first message at or after the time, stepping over interior
/// deletes; `last_seq + 1` past the newest message and for an empty store.
#[test]
fn seq_from_time_finds_first_at_or_after() {
    both(StoreLimits::default(), |s, _| {
        assert_eq!(s.seq_from_time(5), 1);
        for ts in [10, 20, 30, 40, 50, 60] {
            s.store_msg("t", b"", b"x", ts).unwrap();
        }
        s.remove_msg(3).unwrap();
        s.remove_msg(4).unwrap();
        assert_eq!(s.seq_from_time(i64::MIN), 1);
        assert_eq!(s.seq_from_time(10), 1);
        assert_eq!(s.seq_from_time(11), 2);
        assert_eq!(s.seq_from_time(20), 2);
        assert_eq!(s.seq_from_time(21), 5);
        assert_eq!(s.seq_from_time(45), 5);
        assert_eq!(s.seq_from_time(60), 6);
        assert_eq!(s.seq_from_time(61), 7);
        s.remove_msg(1).unwrap();
        assert_eq!(s.seq_from_time(0), 2);
        s.purge().unwrap();
        assert_eq!(s.seq_from_time(0), 7);
    });
}

/// nats-server `MultiLastSeqs`: per matching subject its last sequence at or below the ceiling,
/// ascending and once even when filters overlap; over the limit it is refused.
#[test]
fn multi_last_seqs_up_to_a_ceiling() {
    both(StoreLimits::default(), |s, _| {
        let f = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        for (i, subj) in ["a.1", "a.2", "b.1", "a.1", "a.2", "a.1", "c"]
            .iter()
            .enumerate()
        {
            s.store_msg(subj, b"", b"", i as i64).unwrap();
        }
        assert_eq!(s.multi_last_seqs(&f(&["a.*"]), 7, 10), Some(vec![5, 6]));
        assert_eq!(
            s.multi_last_seqs(&f(&["a.1", "a.>", ">"]), 7, 10),
            Some(vec![3, 5, 6, 7])
        );
        assert_eq!(s.multi_last_seqs(&f(&["a.*"]), 4, 10), Some(vec![2, 4]));
        assert_eq!(s.multi_last_seqs(&f(&["a.*", "c"]), 1, 10), Some(vec![1]));
        s.remove_msg(4).unwrap();
        assert_eq!(s.multi_last_seqs(&f(&["a.1"]), 5, 10), Some(vec![1]));
        assert_eq!(s.multi_last_seqs(&f(&["x.>"]), 7, 10), Some(vec![]));
        assert_eq!(s.multi_last_seqs(&f(&[">"]), 7, 3), None);
        assert_eq!(s.multi_last_seqs(&f(&[">"]), 7, 4), Some(vec![3, 5, 6, 7]));
    });
}

/// nats-server: deleting past the end is "stream store EOF" (10057); deleting a deleted
/// sequence is "sequence N not found" (10043).
#[test]
fn remove_errors_distinguish_eof_and_not_found() {
    both(StoreLimits::default(), |s, _| {
        s.store_msg("a", b"", b"", 1).unwrap();
        s.store_msg("a", b"", b"", 2).unwrap();
        s.remove_msg(1).unwrap();
        assert_eq!(
            s.remove_msg(1).unwrap_err().to_string(),
            "sequence 1 not found"
        );
        assert_eq!(s.remove_msg(9).unwrap_err().to_string(), "stream store EOF");
        s.store_msg("a", b"", b"", 3).unwrap();
        s.erase_msg(2).unwrap();
        let st = s.state_with_deleted();
        assert_eq!((st.msgs, st.first_seq, st.num_deleted), (1, 3, 0));
    });
}

/// FEATURES.md: purge with keep compacts to last_seq - keep + 1; a filtered purge removes the
/// oldest matching messages below `seq`.
#[test]
fn purge_ex_filter_seq_keep() {
    both(StoreLimits::default(), |s, _| {
        for i in 1..=10 {
            let subj = if i % 2 == 0 { "e.x" } else { "o.x" };
            s.store_msg(subj, b"", b"", i).unwrap();
        }
        assert_eq!(s.purge_ex("e.*", 0, 2).unwrap(), 3);
        assert_eq!(s.subjects_state("e.x")["e.x"].first, 8);
        assert_eq!(s.purge_ex("o.x", 6, 0).unwrap(), 3);
        assert_eq!(s.subjects_state("o.x")["o.x"].first, 7);
        assert_eq!(s.purge_ex("", 0, 1).unwrap(), 3);
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (1, 10, 10));
        assert_eq!(s.purge().unwrap(), 1);
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.first_ts),
            (0, 11, 10, 0)
        );
        assert_eq!(s.compact(20).unwrap(), 0);
        let st = s.state();
        assert_eq!((st.first_seq, st.last_seq), (20, 19));
        assert_eq!(s.store_msg("a", b"", b"", 30).unwrap().0, 20);
    });
}

#[test]
fn truncate_and_expire() {
    let l = StoreLimits {
        max_age_ns: 10,
        ..StoreLimits::default()
    };
    both(l, |s, _| {
        for i in 1..=6 {
            s.store_msg("a", b"", b"", i * 10).unwrap();
        }
        s.truncate(4).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.last_seq, st.last_ts), (4, 4, 40));
        assert_eq!(s.next_expiry(), Some(20));
        assert_eq!(s.expire(30).unwrap(), 2);
        assert_eq!(s.next_expiry(), Some(40));
        assert_eq!(s.state().first_seq, 3);
        s.truncate(0).unwrap();
        assert_eq!(s.state(), crate::StreamState::default());
        assert_eq!(s.store_msg("a", b"", b"", 1).unwrap().0, 1);
    });
}

/// `skip_to` raises the last sequence past sequences the caller knows were assigned: the gap
/// counts as deleted and the next message follows it; a lower sequence changes nothing.
#[test]
fn skip_to_raises_last_seq_and_counts_the_gap_deleted() {
    both(StoreLimits::default(), |s, _| {
        s.skip_to(5, 50).unwrap();
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.last_ts),
            (0, 6, 5, 50)
        );
        assert_eq!(s.store_msg("a", b"", b"", 60).unwrap().0, 6);
        s.skip_to(9, 90).unwrap();
        s.skip_to(7, 70).unwrap();
        let st = s.state_with_deleted();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.last_ts),
            (1, 6, 9, 90)
        );
        assert_eq!((st.num_deleted, st.deleted), (3, Some(vec![7, 8, 9])));
        assert_eq!(s.store_msg("a", b"", b"", 100).unwrap().0, 10);
    });
}

#[test]
fn stopped_store_refuses() {
    both(StoreLimits::default(), |s, _| {
        s.stop().unwrap();
        assert!(matches!(s.store_msg("a", b"", b"", 1), Err(Error::Closed)));
    });
}

/// The stream stage thread owns its store, so both backends must move between threads.
#[test]
fn stores_are_send() {
    fn send<T: Send>() {}
    send::<MemStore>();
    send::<FileStore>();
}
