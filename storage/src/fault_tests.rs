//! Fault-injection property test: the file store under random operations while its file
//! calls fail (ENOSPC, EIO, short writes, failed fsyncs), the process dies after a write, or
//! the power goes (unsynced bytes cut at a random point), checked against a memory-store
//! model:
//! - an operation reported as failed left no trace: the store equals the model after some
//!   prefix of the operations not yet confirmed written, without the failed one;
//! - an operation reported as done stays done: a clean reopen equals the model, and after a
//!   process kill the store equals the model after a prefix that includes every confirmed
//!   write; after a power loss every message present at the last sync (and not removed
//!   since) is still there;
//! - sequences never repeat: every stored sequence is above every sequence confirmed
//!   written (synced, across a power loss), and the last sequence never drops below them;
//! - a reader never gets wrong bytes: every load returns what was stored under that
//!   sequence, or not-found.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use proptest::prelude::*;

use crate::faults::{Fault, Faults};
use crate::testutil::TempDir;
use crate::{
    Cipher, EncryptionKey, FileStore, FileStoreConfig, MemStore, Store, StoreLimits, StoredMsg,
};

const SUBJECTS: [&str; 3] = ["a.1", "a.2", "b"];
const FILTERS: [&str; 3] = [">", "a.*", "b"];
const HDR: &[u8] = b"NATS/1.0\r\nK: v\r\n\r\n";

#[derive(Debug, Clone)]
enum Op {
    Store { subj: usize, hdr: bool, len: usize },
    Flush,
    Sync,
    Remove(u64),
    Erase(u64),
    Purge,
    PurgeSubject { filter: usize, keep: u64 },
    Compact(u64),
    Truncate(u64),
    Expire(i64),
    Load(u64),
    Reopen,
    Kill { power: bool, seed: u64 },
}

/// A change as the model replays it.
#[derive(Debug, Clone)]
enum Change {
    Store(StoredMsg),
    StoreAt(StoredMsg),
    Remove(u64),
    Erase(u64),
    PurgeEx(usize, u64),
    Compact(u64),
    Truncate(u64),
    Expire(i64),
    Skip(u64, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..SUBJECTS.len(), any::<bool>(), 0..40usize)
            .prop_map(|(subj, hdr, len)| Op::Store { subj, hdr, len }),
        4 => Just(Op::Flush),
        1 => Just(Op::Sync),
        2 => (0..40u64).prop_map(Op::Remove),
        1 => (0..40u64).prop_map(Op::Erase),
        1 => Just(Op::Purge),
        1 => (0..FILTERS.len(), 0..3u64)
            .prop_map(|(filter, keep)| Op::PurgeSubject { filter, keep }),
        1 => (0..45u64).prop_map(Op::Compact),
        1 => (0..40u64).prop_map(Op::Truncate),
        1 => (0..40i64).prop_map(Op::Expire),
        1 => (0..40u64).prop_map(Op::Load),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(power, seed)| Op::Kill { power, seed }),
    ]
}

fn fault() -> impl Strategy<Value = Option<(u64, Fault)>> {
    let kind = prop_oneof![
        Just(Fault::NoSpace),
        Just(Fault::Eio),
        Just(Fault::Short),
        Just(Fault::Crash),
    ];
    prop_oneof![
        3 => Just(None),
        2 => (0..6u64, kind).prop_map(Some),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    block_size: u64,
    sync_always: bool,
    compress: bool,
    cipher: Option<Cipher>,
    max_msgs: u64,
    per_subject: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![Just(300u64), Just(1000u64)],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(Cipher::ChaCha20Poly1305)),
            1 => Just(Some(Cipher::Aes256Gcm)),
        ],
        prop_oneof![Just(0u64), Just(6u64)],
        prop_oneof![Just(0u64), Just(3u64)],
    )
        .prop_map(
            |(block_size, sync_always, compress, cipher, max_msgs, per_subject)| Setup {
                block_size,
                sync_always,
                compress,
                cipher,
                max_msgs,
                per_subject,
            },
        )
}

fn outcome<T: std::fmt::Debug>(r: &crate::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e}"),
    }
}

/// Everything a reader can see of a store.
fn fingerprint(s: &dyn Store) -> String {
    let st = s.state_with_deleted();
    let mut out = format!("{st:?}\n{:?}\n", s.subjects_state(">"));
    for seq in st.first_seq.saturating_sub(1)..=st.last_seq + 1 {
        out += &format!("{seq}: {}\n", outcome(&s.load_msg(seq)));
    }
    for f in FILTERS {
        out += &format!(
            "{f}: {} {}\n",
            outcome(&s.load_last_msg(f)),
            s.num_pending(0, f, false)
        );
    }
    out
}

fn present(s: &dyn Store) -> BTreeSet<u64> {
    let st = s.state();
    (st.first_seq..=st.last_seq)
        .filter(|&q| s.load_msg(q).is_ok())
        .collect()
}

/// Apply a change; the outcome as text, so the store and the model can be compared.
fn apply(s: &mut dyn Store, c: &Change) -> String {
    match c {
        Change::Store(m) => outcome(&s.store_msg(&m.subject, &m.hdr, &m.msg, m.ts)),
        Change::StoreAt(m) => outcome(&s.store_raw_msg(&m.subject, &m.hdr, &m.msg, m.seq, m.ts)),
        Change::Remove(q) => outcome(&s.remove_msg(*q)),
        Change::Erase(q) => outcome(&s.erase_msg(*q)),
        Change::PurgeEx(f, keep) => outcome(&s.purge_ex(FILTERS[*f], 0, *keep)),
        Change::Compact(q) => outcome(&s.compact(*q)),
        Change::Truncate(q) => outcome(&s.truncate(*q)),
        Change::Expire(now) => outcome(&s.expire(*now)),
        Change::Skip(q, ts) => outcome(&s.skip_to(*q, *ts)),
    }
}

struct Harness {
    dir: TempDir,
    cfg: FileStoreConfig,
    faults: Arc<Faults>,
    fs: Option<FileStore>,
    /// Changes known to be written, then those applied since (not yet confirmed).
    committed: Vec<Change>,
    pending: Vec<Change>,
    model: MemStore,
    /// The message last handed to the store under each sequence.
    ever: HashMap<u64, StoredMsg>,
    /// Messages a truncate removed: a power loss may undo an unsynced truncate.
    truncated_away: HashMap<u64, Vec<StoredMsg>>,
    /// The highest stored sequence confirmed written (synced, after a power loss).
    confirmed: u64,
    /// Messages present, and the last sequence, at the last sync.
    synced: BTreeSet<u64>,
    synced_last: u64,
    synced_max: u64,
    truncated_since_sync: bool,
    ts: i64,
}

impl Harness {
    fn new(s: &Setup) -> Self {
        let dir = TempDir::new("faults");
        let cfg = FileStoreConfig {
            block_size: s.block_size,
            sync_always: s.sync_always,
            compress: s.compress,
            encryption_key: s.cipher.map(|cipher| EncryptionKey {
                cipher,
                key: [3; 32],
            }),
            limits: StoreLimits {
                max_msgs: s.max_msgs,
                max_msgs_per_subject: s.per_subject,
                max_age_ns: 30,
                ..StoreLimits::default()
            },
        };
        let faults = Faults::new();
        let fs = FileStore::open_with_faults(dir.path(), cfg.clone(), faults.clone()).unwrap();
        Harness {
            model: MemStore::with_file_accounting(cfg.limits),
            dir,
            cfg,
            faults,
            fs: Some(fs),
            committed: Vec::new(),
            pending: Vec::new(),
            ever: HashMap::new(),
            truncated_away: HashMap::new(),
            confirmed: 0,
            synced: BTreeSet::new(),
            synced_last: 0,
            synced_max: 0,
            truncated_since_sync: false,
            ts: 0,
        }
    }

    fn fs(&mut self) -> &mut FileStore {
        self.fs.as_mut().expect("store open")
    }

    fn open(&self) -> crate::Result<FileStore> {
        FileStore::open_with_faults(self.dir.path(), self.cfg.clone(), self.faults.clone())
    }

    fn replay(&self, changes: &[Change]) -> MemStore {
        let mut m = MemStore::with_file_accounting(self.cfg.limits);
        for c in self.committed.iter().chain(changes) {
            apply(&mut m, c);
        }
        m
    }

    /// The longest prefix of `pending` (then `extra`) after which the model looks like the
    /// store.
    fn matching_prefix(&self, extra: Option<&Change>) -> Option<usize> {
        let mut changes = self.pending.clone();
        changes.extend(extra.cloned());
        let got = fingerprint(self.fs.as_ref().expect("store open"));
        (0..=changes.len())
            .rev()
            .find(|&k| fingerprint(&self.replay(&changes[..k])) == got)
    }

    /// Everything pending up to `k` (of pending, then `extra`) was written; nothing is
    /// pending any more.
    fn settle(&mut self, k: usize, extra: Option<Change>) {
        let returned = self.pending.len();
        let mut changes = std::mem::take(&mut self.pending);
        changes.extend(extra);
        changes.truncate(k);
        // Truncates that returned were noted then; one that was running is noted now.
        if let (true, Some(&Change::Truncate(q))) = (k > returned, changes.last()) {
            self.truncated(q);
        }
        self.committed.extend(changes);
        self.model = self.replay(&[]);
    }

    /// A truncate to `q` was (or may have been) written: it hands the sequences after `q`
    /// out again on purpose, and the synced messages after it are gone.
    fn truncated(&mut self, q: u64) {
        let gone: Vec<u64> = self.ever.keys().copied().filter(|&s| s > q).collect();
        for s in gone {
            if let Some(m) = self.ever.remove(&s) {
                self.truncated_away.entry(s).or_default().push(m);
            }
        }
        self.confirmed = self.confirmed.min(q);
        self.synced_max = self.synced_max.min(q);
        self.synced.retain(|&s| s <= q);
        self.truncated_since_sync = true;
    }

    fn confirm(&mut self, synced: bool) {
        for c in &self.pending {
            match c {
                Change::Store(m) => self.confirmed = self.confirmed.max(m.seq),
                // A truncate hands its sequences out again on purpose.
                Change::Truncate(q) => self.confirmed = self.confirmed.min(*q),
                _ => {}
            }
        }
        self.committed.append(&mut self.pending);
        if synced {
            self.synced = present(&self.model);
            self.synced_last = self.model.last_seq();
            self.synced_max = self.confirmed;
            self.truncated_since_sync = false;
        }
    }

    fn max_stored(&self) -> u64 {
        self.committed
            .iter()
            .filter_map(|c| match c {
                Change::Store(m) | Change::StoreAt(m) => Some(m.seq),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn check(&self) {
        let fs = self.fs.as_ref().expect("store open");
        assert_eq!(fingerprint(&self.model), fingerprint(fs));
    }

    fn change_for(&mut self, op: &Op) -> Option<Change> {
        Some(match *op {
            Op::Store { subj, hdr, len } => {
                self.ts += 1;
                Change::Store(StoredMsg {
                    subject: SUBJECTS[subj].to_string(),
                    hdr: if hdr { HDR.to_vec() } else { Vec::new() },
                    msg: vec![b'a' + (self.ts % 26) as u8; len],
                    seq: 0,
                    ts: self.ts,
                })
            }
            Op::Remove(q) => Change::Remove(q),
            Op::Erase(q) => Change::Erase(q),
            Op::Purge => Change::Compact(0),
            Op::PurgeSubject { filter, keep } => Change::PurgeEx(filter, keep),
            Op::Compact(q) => Change::Compact(q),
            Op::Truncate(q) => Change::Truncate(q),
            Op::Expire(back) => Change::Expire(self.ts + 30 - back),
            _ => return None,
        })
    }

    fn step(&mut self, op: Op, fault: Option<(u64, Fault)>) {
        match op {
            Op::Reopen => return self.reopen(fault),
            Op::Kill { power, seed } => return self.crash(power, seed, None),
            _ => {}
        }
        let change = self.change_for(&op);
        if let Some((n, f)) = fault {
            self.faults.arm(n, f);
        }
        let fs = self.fs();
        let got = match (&op, &change) {
            (_, Some(c)) => apply(fs, c),
            (Op::Flush, _) => outcome(&fs.flush()),
            (Op::Sync, _) => outcome(&fs.sync()),
            (Op::Load(q), _) => outcome(&fs.load_msg(*q)),
            _ => unreachable!("{op:?}"),
        };
        let tripped = self.faults.disarm();
        if tripped.iter().any(|(_, f)| *f == Fault::Crash) {
            let seed = self.ts as u64 ^ 0x5eed;
            let power = seed.is_multiple_of(2);
            return self.crash(power, seed, change.map(|c| self.with_seq(c, &got)));
        }
        let failed = got.starts_with("err i/o");
        assert!(
            !failed || !tripped.is_empty(),
            "{op:?} failed unprovoked: {got}"
        );
        match (&op, change) {
            (Op::Load(q), _) => {
                if !failed {
                    assert_eq!(got, outcome(&self.model.load_msg(*q)));
                }
            }
            (Op::Flush | Op::Sync, _) if failed => self.rolled_back(),
            (Op::Flush, _) => self.confirm(self.cfg.sync_always),
            (Op::Sync, _) => self.confirm(true),
            (_, Some(_)) if failed => self.rolled_back(),
            (_, Some(c)) => {
                let want = apply(&mut self.model, &c);
                assert_eq!(got, want, "{op:?}");
                let c = self.with_seq(c, &got);
                if let Change::Store(m) = &c {
                    assert!(m.seq > self.confirmed, "sequence {} reused", m.seq);
                    self.ever.insert(m.seq, m.clone());
                }
                if let Change::Truncate(q) = c {
                    self.truncated(q);
                }
                self.pending.push(c);
            }
            _ => unreachable!(),
        }
        self.check();
    }

    /// A store change with the sequence the store reported.
    fn with_seq(&self, c: Change, got: &str) -> Change {
        match c {
            Change::Store(mut m) => {
                m.seq = got
                    .strip_prefix("ok (")
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(self.model.last_seq() + 1);
                Change::Store(m)
            }
            c => c,
        }
    }

    /// A write failed: the store must look like the model after a prefix of what was pending.
    fn rolled_back(&mut self) {
        let k = self
            .matching_prefix(None)
            .unwrap_or_else(|| panic!("a failed write left a trace:\n{}", self.show()));
        self.settle(k, None);
        if self
            .committed
            .iter()
            .any(|c| matches!(c, Change::Truncate(_)))
        {
            self.truncated_since_sync = true;
        }
    }

    fn show(&self) -> String {
        format!(
            "store:\n{}\nmodel:\n{}\npending: {:?}",
            fingerprint(self.fs.as_ref().expect("store open")),
            fingerprint(&self.model),
            self.pending
        )
    }

    fn reopen(&mut self, fault: Option<(u64, Fault)>) {
        self.fs().stop().unwrap();
        self.confirm(true);
        self.fs = None;
        if let Some((n, f)) = fault.filter(|(_, f)| *f != Fault::Crash) {
            self.faults.arm(n, f);
        }
        let first = self.open();
        self.faults.disarm();
        let fs = first.or_else(|_| self.open()).unwrap();
        assert!(
            fs.recovery_report().is_empty(),
            "{:?}",
            fs.recovery_report()
        );
        self.fs = Some(fs);
        self.check();
    }

    /// The process died (after the op that was running wrote `inflight`'s records, or not);
    /// with `power`, bytes not synced are cut at a random point.
    fn crash(&mut self, power: bool, seed: u64, inflight: Option<Change>) {
        let before = present(&self.model);
        let after = match &inflight {
            Some(c) => {
                let mut changes = self.pending.clone();
                changes.push(c.clone());
                present(&self.replay(&changes))
            }
            None => before.clone(),
        };
        match &inflight {
            Some(Change::Store(m)) => {
                self.ever.insert(m.seq, m.clone());
            }
            // The truncate may have been written.
            Some(Change::Truncate(q)) if power => self.truncated(*q),
            _ => {}
        }
        if let Some(fs) = self.fs.take() {
            fs.kill();
        }
        if power {
            self.faults.power_loss(seed);
        } else {
            self.faults.revive();
        }
        let fs = self.open().unwrap();
        for q in present(&fs) {
            let m = fs.load_msg(q).unwrap();
            let undone = power && self.truncated_away.get(&q).is_some_and(|v| v.contains(&m));
            if !undone {
                assert_eq!(Some(&m), self.ever.get(&q), "wrong message at {q}");
            }
        }
        self.fs = Some(fs);
        if !power {
            let k = self
                .matching_prefix(inflight.as_ref())
                .unwrap_or_else(|| panic!("a killed store is no prefix:\n{}", self.show()));
            self.settle(k, inflight);
            assert!(self.fs().last_seq() >= self.confirmed);
            self.check();
            return;
        }
        let fs = self.fs.as_ref().expect("store open");
        let now = present(fs);
        for q in self
            .synced
            .iter()
            .filter(|q| before.contains(q) && after.contains(q))
        {
            assert!(now.contains(q), "synced message {q} lost:\n{}", self.show());
        }
        if !self.truncated_since_sync {
            assert!(fs.last_seq() >= self.synced_last, "{}", self.show());
        }
        assert!(fs.last_seq() >= self.synced_max);
        self.reseed();
    }

    /// After a power loss the model starts over from what the store recovered.
    fn reseed(&mut self) {
        let fs = self.fs.as_ref().expect("store open");
        let st = fs.state();
        let mut changes = Vec::new();
        if st.msgs > 0 {
            changes.push(Change::Compact(st.first_seq));
            for q in present(fs) {
                let m = fs.load_msg(q).unwrap();
                self.ever.insert(q, m.clone());
                changes.push(Change::StoreAt(m));
            }
        } else if st.first_seq == 1 {
            changes.push(Change::Compact(1));
        }
        changes.push(Change::Skip(st.last_seq, st.last_ts));
        self.committed = changes;
        self.pending.clear();
        self.model = self.replay(&[]);
        self.confirmed = self.max_stored().max(self.synced_max).min(st.last_seq);
        self.synced = present(&self.model);
        self.synced_last = st.last_seq;
        self.synced_max = self.confirmed;
        self.truncated_since_sync = false;
        self.check();
    }
}

fn run(s: Setup, steps: Vec<(Op, Option<(u64, Fault)>)>) {
    let mut h = Harness::new(&s);
    for (op, fault) in steps {
        h.step(op, fault);
    }
    h.reopen(None);
}

fn steps(n: usize) -> impl Strategy<Value = Vec<(Op, Option<(u64, Fault)>)>> {
    proptest::collection::vec((op(), fault()), 1..n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn filestore_survives_injected_faults(s in setup(), steps in steps(60)) {
        run(s, steps);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// The soak: `cargo test -p natsd-storage --release -- --ignored fault_soak`.
    #[test]
    #[ignore]
    fn fault_soak(s in setup(), steps in steps(200)) {
        run(s, steps);
    }
}

/// The soak's shrunk case: a power loss undid an unsynced truncate, bringing back the message
/// it had removed from a synced block, while the message later stored under the same sequence
/// was lost. That is a state the store was in (before the truncate), not wrong bytes.
#[test]
fn power_loss_may_undo_an_unsynced_truncate() {
    let setup = Setup {
        block_size: 300,
        sync_always: false,
        compress: false,
        cipher: None,
        max_msgs: 0,
        per_subject: 0,
    };
    let st = |subj, hdr, len| (Op::Store { subj, hdr, len }, None);
    let mut steps = vec![st(0, false, 0); 5];
    steps.push((Op::Compact(8), None));
    steps.extend(vec![st(0, false, 0); 4]);
    steps.extend([
        (Op::Compact(1), None),
        st(0, false, 15),
        (Op::Expire(5), None),
        st(0, true, 2),
        st(0, false, 1),
        st(2, false, 1),
        st(0, false, 0),
        (Op::Truncate(10), None),
        st(0, false, 0),
        (Op::Truncate(9), None),
        st(0, false, 0),
        (
            Op::Kill {
                power: true,
                seed: 0,
            },
            None,
        ),
    ]);
    run(setup, steps);
}

/// The shrunk case that showed the model forgetting, after a power loss undid a truncate,
/// which messages the store had recovered.
#[test]
fn a_power_loss_that_undid_a_truncate_then_a_kill() {
    let setup = Setup {
        block_size: 300,
        sync_always: false,
        compress: false,
        cipher: None,
        max_msgs: 0,
        per_subject: 0,
    };
    let store = Op::Store {
        subj: 0,
        hdr: false,
        len: 0,
    };
    let mut steps = vec![(store, None); 19];
    steps.push((Op::Truncate(0), Some((0, Fault::Crash))));
    steps.push((
        Op::Kill {
            power: false,
            seed: 0,
        },
        None,
    ));
    run(setup, steps);
}

/// The soak's shrunk case: a truncate that failed had already lowered (and synced) the
/// last-sequence file; after compaction deleted the blocks and a power loss took the unsynced
/// tail, the store fell below the last sequence synced before.
#[test]
fn a_failed_truncate_leaves_the_last_sequence_as_it_was() {
    let setup = Setup {
        block_size: 300,
        sync_always: false,
        compress: true,
        cipher: None,
        max_msgs: 0,
        per_subject: 0,
    };
    let st = |len| {
        (
            Op::Store {
                subj: 0,
                hdr: false,
                len,
            },
            None,
        )
    };
    let power = |seed| (Op::Kill { power: true, seed }, None);
    let steps = vec![
        st(10),
        (Op::Purge, None),
        power(821_927_822_799_291_712),
        st(0),
        st(0),
        st(0),
        st(0),
        (Op::Reopen, None),
        (Op::Truncate(0), Some((4, Fault::NoSpace))),
        (Op::Expire(0), None),
        st(0),
        power(666_162_268_583_363_356),
    ];
    run(setup, steps);
}

/// The soak's shrunk case: after a process kill, the slot of the last-sequence file read at
/// open had not been synced, the next writes went to the other slot (the synced one), and a
/// power loss then took both.
#[test]
fn the_slot_read_at_open_is_synced() {
    let setup = Setup {
        block_size: 300,
        sync_always: false,
        compress: false,
        cipher: Some(Cipher::ChaCha20Poly1305),
        max_msgs: 0,
        per_subject: 0,
    };
    let st = |hdr, len| (Op::Store { subj: 0, hdr, len }, None);
    let mut steps = vec![st(false, 0); 7];
    steps.extend([
        st(true, 24),
        st(false, 19),
        st(false, 19),
        st(true, 0),
        st(true, 25),
        st(false, 0),
        st(false, 0),
        (Op::Flush, None),
        st(false, 0),
        st(false, 0),
        (Op::Sync, None),
        st(false, 0),
        st(false, 0),
        st(false, 0),
        (Op::Purge, Some((0, Fault::Crash))),
    ]);
    steps.extend(vec![st(false, 0); 7]);
    steps.extend([
        (Op::Remove(0), None),
        (
            Op::Kill {
                power: false,
                seed: 0,
            },
            None,
        ),
        (Op::Purge, None),
        st(false, 7),
        (Op::Flush, Some((0, Fault::Crash))),
    ]);
    run(setup, steps);
}

/// The soak's shrunk case: with `sync_always`, sealing a full block wrote the pending
/// records, its fsync failed, and a later flush returned `Ok` with them unsynced; a power loss
/// then took them. Sealing now writes and fsyncs them as one write that is rolled back.
#[test]
fn records_whose_fsync_failed_while_sealing_are_rolled_back() {
    let setup = Setup {
        block_size: 300,
        sync_always: true,
        compress: false,
        cipher: None,
        max_msgs: 0,
        per_subject: 0,
    };
    let st = |hdr, len| Op::Store { subj: 0, hdr, len };
    run(
        setup,
        vec![
            (st(false, 26), None),
            (st(true, 37), None),
            (st(true, 29), Some((2, Fault::NoSpace))),
            (Op::Flush, None),
            (
                Op::Kill {
                    power: true,
                    seed: 0,
                },
                None,
            ),
        ],
    );
}
