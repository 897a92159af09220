//! The file store's last-sequence file (`msgs/last.seq`): the store's last sequence and its
//! timestamp, kept apart from the blocks so that losing a block's tail cannot lower it (the
//! format is in the file store's `## Format` section).
//!
//! The file holds two fixed-size slots, 4 KiB apart so that a torn write of one sector cannot
//! damage both, each with a generation number; the valid slot with the higher generation
//! wins. Every write goes in place (one `pwrite`, no new disk space) into the slot that does
//! not hold the last synced value, so a write torn by a power loss leaves the synced value
//! readable. The file only ever claims a sequence the blocks have reached: it is written
//! after the records that raise the last sequence, and written and synced before the marker
//! that lowers it (a truncate).

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::disk::{Disk, DiskFile};
use crate::Result;

/// File name in the block directory.
pub(crate) const NAME: &str = "last.seq";
const MAGIC: &[u8; 8] = b"NATSDSEQ";
const VERSION: u8 = 1;
/// Bytes of a slot covered by its checksum.
const SUMMED: usize = 40;
/// Size of a slot.
const SLOT: usize = SUMMED + 8;
/// Offset of the second slot.
const SLOT_1: usize = 4096;
/// Size of the file.
pub(crate) const LEN: usize = SLOT_1 + SLOT;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    generation: u64,
    last: u64,
    ts: i64,
}

fn encode(h: Held) -> [u8; SLOT] {
    let mut b = [0; SLOT];
    b[..8].copy_from_slice(MAGIC);
    b[8] = VERSION;
    b[16..24].copy_from_slice(&h.generation.to_le_bytes());
    b[24..32].copy_from_slice(&h.last.to_le_bytes());
    b[32..40].copy_from_slice(&h.ts.to_le_bytes());
    let sum = xxh3_64(&b[..SUMMED]);
    b[SUMMED..].copy_from_slice(&sum.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> std::result::Result<Held, &'static str> {
    let b = b.get(..SLOT).ok_or("slot truncated")?;
    let word = |o: usize| {
        let mut a = [0; 8];
        a.copy_from_slice(&b[o..o + 8]);
        a
    };
    if u64::from_le_bytes(word(SUMMED)) != xxh3_64(&b[..SUMMED]) {
        return Err("checksum mismatch");
    }
    if &b[..8] != MAGIC || b[8] != VERSION || b[9..16].iter().any(|&x| x != 0) {
        return Err("unknown magic or version");
    }
    Ok(Held {
        generation: u64::from_le_bytes(word(16)),
        last: u64::from_le_bytes(word(24)),
        ts: i64::from_le_bytes(word(32)),
    })
}

fn slot_offset(slot: usize) -> usize {
    slot * SLOT_1
}

/// The newer valid slot of a file's bytes: (slot, what it holds).
fn newest(b: &[u8]) -> std::result::Result<(usize, Held), &'static str> {
    let slots = [0, 1].map(|i| {
        (
            i,
            b.get(slot_offset(i)..).map_or(Err("slot missing"), decode),
        )
    });
    let mut best: Option<(usize, Held)> = None;
    let mut problem = "no slot";
    for (i, r) in slots {
        match r {
            Ok(h) if best.is_none_or(|(_, b)| h.generation > b.generation) => best = Some((i, h)),
            Ok(_) => {}
            Err(e) => problem = e,
        }
    }
    best.ok_or(problem)
}

/// The open last-sequence file and what it holds.
pub(crate) struct LastSeqFile {
    path: PathBuf,
    /// Opened when the store is (a valid file is synced then) or, when missing or damaged,
    /// created at the first write.
    file: Option<DiskFile>,
    /// What the file holds; `None` when unknown (missing, damaged, or a write failed part-way).
    written: Option<(u64, i64)>,
    /// The highest generation written.
    generation: u64,
    /// The slot holding the last synced value: writes go to the other one.
    synced_slot: usize,
    /// Written since the last sync.
    unsynced: bool,
}

impl LastSeqFile {
    /// Read the file in `dir`. A missing file (a new store, or one written before the file
    /// existed) or a damaged one (logged) holds nothing: the blocks alone decide.
    pub(crate) fn open(disk: &Disk, dir: &Path) -> Result<(Self, Option<(u64, i64)>)> {
        let path = dir.join(NAME);
        let mut f = LastSeqFile {
            path,
            file: None,
            written: None,
            generation: 0,
            synced_slot: 1,
            unsynced: false,
        };
        match disk.read(&f.path) {
            Ok(b) => match newest(&b) {
                Ok((slot, h)) => {
                    // The slot read may have been written by a process that died before
                    // syncing it; sync it now, since the next writes go to the other slot.
                    let file = disk.open_rw(&f.path)?;
                    file.sync_data()?;
                    f.file = Some(file);
                    f.written = Some((h.last, h.ts));
                    f.generation = h.generation;
                    f.synced_slot = slot;
                }
                Err(reason) => log::warn!(
                    "filestore: {}: {reason}; the last sequence comes from the blocks",
                    f.path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let held = f.written;
        Ok((f, held))
    }

    /// Make the file hold `last` and `ts` (not synced). Nothing is written when it already
    /// does, so a flush that did not move the last sequence costs no call.
    pub(crate) fn write(&mut self, disk: &Disk, last: u64, ts: i64) -> Result<()> {
        if self.written == Some((last, ts)) {
            return Ok(());
        }
        self.written = None;
        let held = Held {
            generation: self.generation + 1,
            last,
            ts,
        };
        let slot = 1 - self.synced_slot;
        match &self.file {
            Some(f) => f.write_at(&encode(held), slot_offset(slot) as u64)?,
            None => {
                // A new file is written whole, so both slots have their disk space.
                let f = disk.open_rw(&self.path)?;
                let mut b = vec![0; LEN];
                let at = slot_offset(slot);
                b[at..at + SLOT].copy_from_slice(&encode(held));
                let kept = slot_offset(self.synced_slot);
                if let Some(old) = self.read_slot(disk, kept) {
                    b[kept..kept + SLOT].copy_from_slice(&old);
                }
                f.write_at(&b, 0)?;
                self.file = Some(f);
            }
        }
        self.generation = held.generation;
        self.written = Some((last, ts));
        self.unsynced = true;
        Ok(())
    }

    /// The slot at `at` of the file as it is, to carry over when the file is rewritten whole.
    fn read_slot(&self, disk: &Disk, at: usize) -> Option<[u8; SLOT]> {
        let b = disk.read(&self.path).ok()?;
        let slot = b.get(at..at + SLOT)?;
        decode(slot).ok()?;
        let mut out = [0; SLOT];
        out.copy_from_slice(slot);
        Some(out)
    }

    /// fsync what was written since the last sync; the slot written becomes the kept one.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if let (true, Some(f)) = (self.unsynced, &self.file) {
            f.sync_data()?;
            self.unsynced = false;
            self.synced_slot = 1 - self.synced_slot;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(generation: u64, last: u64) -> Held {
        Held {
            generation,
            last,
            ts: -7,
        }
    }

    #[test]
    fn encodes_and_refuses_damage() {
        let b = encode(held(3, 100));
        assert_eq!(decode(&b), Ok(held(3, 100)));
        for i in 0..SLOT {
            let mut d = b;
            d[i] ^= 0x20;
            assert!(decode(&d).is_err(), "byte {i}");
        }
        assert!(decode(&b[..SLOT - 1]).is_err());
    }

    #[test]
    fn the_newer_valid_slot_wins() {
        let mut f = vec![0; LEN];
        f[..SLOT].copy_from_slice(&encode(held(4, 40)));
        f[SLOT_1..].copy_from_slice(&encode(held(5, 30)));
        assert_eq!(newest(&f), Ok((1, held(5, 30))));
        f[SLOT_1 + 20] ^= 1;
        assert_eq!(newest(&f), Ok((0, held(4, 40))));
        f[3] ^= 1;
        assert!(newest(&f).is_err());
        assert!(newest(&f[..SLOT]).is_err());
    }
}
