//! The storage seam: where a driver writes a node's [`Persist`] outputs and what it reads
//! back on restart. [`MemStorage`] keeps it in memory and models a disk that loses what
//! was not synced; `natsd-storage` has the file implementation.

use crate::node::Persist;
use crate::rng::Rng;
use crate::types::{Entry, HardState, Recovered, Snapshot};

/// Durable storage for one node's log, hard state and snapshot.
///
/// Contract: `write` takes the node's persists in order; after `sync` returns `Ok`,
/// everything written before it survives a crash; `recover` returns what survived, with
/// the log contiguous after the snapshot.
pub trait LogStorage {
    /// What can go wrong.
    type Error: std::error::Error;
    /// Writes one persist (not necessarily durable until [`LogStorage::sync`]).
    fn write(&mut self, persist: &Persist) -> Result<(), Self::Error>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> Result<(), Self::Error>;
    /// What a restarting node finds.
    fn recover(&mut self) -> Result<Recovered, Self::Error>;
}

/// One write, as it reaches the disk.
#[derive(Clone, Debug)]
enum Op {
    Snapshot(Snapshot),
    Entries(Vec<Entry>),
    Hard(HardState),
}

/// The persistent state after a sequence of writes.
#[derive(Clone, Debug, Default)]
struct State {
    hard: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl State {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Snapshot(s) => {
                match self.entries.iter().position(|e| e.index == s.index) {
                    Some(k) if self.entries[k].term == s.term => {
                        self.entries.drain(..=k);
                    }
                    _ => self.entries.clear(),
                }
                self.snapshot = Some(s);
            }
            Op::Entries(es) => {
                let Some(first) = es.first().map(|e| e.index) else {
                    return;
                };
                let base = self.snapshot.as_ref().map_or(0, |s| s.index);
                assert!(first > base, "entries must follow the snapshot");
                let keep = (first - base - 1) as usize;
                assert!(keep <= self.entries.len(), "entries must continue the log");
                self.entries.truncate(keep);
                self.entries.extend(es);
            }
            Op::Hard(h) => self.hard = h,
        }
    }
}

/// Storage in memory that tells synced from unsynced writes, so that a simulated crash
/// loses exactly what a real one could.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    durable: State,
    pending: Vec<Op>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// A crash: unsynced writes are lost, except a random prefix of them that reached the
    /// disk; the last write of that prefix may be torn after any entry (the file log
    /// drops a torn record on open, so only whole entries survive).
    pub fn crash(&mut self, rng: &mut Rng) {
        let pending = std::mem::take(&mut self.pending);
        let keep = rng.range(0, pending.len() as u64 + 1) as usize;
        let torn = rng.chance(500);
        for (i, op) in pending.into_iter().take(keep).enumerate() {
            match op {
                Op::Entries(mut es) if torn && i + 1 == keep => {
                    es.truncate(rng.range(0, es.len() as u64 + 1) as usize);
                    self.durable.apply(Op::Entries(es));
                }
                op => self.durable.apply(op),
            }
        }
    }

    /// Whether some writes are not synced yet.
    pub fn has_unsynced(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Memory storage cannot fail.
#[derive(Debug)]
pub enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl LogStorage for MemStorage {
    type Error = Never;

    fn write(&mut self, p: &Persist) -> Result<(), Never> {
        if let Some(s) = &p.snapshot {
            self.pending.push(Op::Snapshot(s.clone()));
        }
        if !p.entries.is_empty() {
            self.pending.push(Op::Entries(p.entries.clone()));
        }
        if let Some(h) = p.hard_state {
            self.pending.push(Op::Hard(h));
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Never> {
        for op in std::mem::take(&mut self.pending) {
            self.durable.apply(op);
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovered, Never> {
        let d = &self.durable;
        Ok(Recovered {
            hard_state: d.hard,
            snapshot: d.snapshot.clone(),
            entries: d.entries.clone(),
        })
    }
}
