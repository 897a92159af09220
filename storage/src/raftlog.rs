//! The file log of one RAFT node: its entries, hard state and snapshot in one append-only
//! file of checksummed records, behind `natsd_consensus::LogStorage`.
//!
//! `write` encodes a node's `Persist` into memory; `sync` appends what was written with one
//! `write` and one `fdatasync`, so a driver that writes several persists and syncs once
//! commits them as a group. A persist carrying a snapshot makes the next `sync` rewrite the
//! file (snapshot, hard state, the entries after it) into `raft.log.tmp`, fsync it and
//! rename it over `raft.log`: that is log compaction. `open` reads the records back and cuts
//! the file at the first record that is short or fails its checksum (a torn last write).
//!
//! ## Format
//!
//! The file starts with the 8 bytes `NRAFTLG1` (format version 1). Then records:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | length of type + payload, u32 LE |
//! | 8 | xxh3-64 of type + payload, u64 LE |
//! | 1 | type: 1 entries, 2 hard state, 3 snapshot |
//! | n | payload |
//!
//! Entries: count u32, then per entry term u64, index u64, kind u8, data length u32, data
//! (the first entry's index drops every stored entry at or after it). Hard state: term u64,
//! has-vote u8, vote u64, commit u64. Snapshot: index u64, term u64, voter count u32,
//! voters u64 each, data length u32, data. All integers little-endian.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use natsd_consensus::{
    Entry, EntryType, HardState, LogStorage, NodeId, Persist, Recovered, Snapshot,
};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"NRAFTLG1";
const HEADER_BYTES: usize = 12;
const ENTRIES: u8 = 1;
const HARD: u8 = 2;
const SNAPSHOT: u8 = 3;
const FILE: &str = "raft.log";
const TMP: &str = "raft.log.tmp";

/// A RAFT node's log, hard state and snapshot in `dir/raft.log`.
#[derive(Debug)]
pub struct RaftFileLog {
    dir: PathBuf,
    file: File,
    /// Records written but not yet in the file.
    pending: Vec<u8>,
    /// The file must be rewritten from `state` at the next sync (a snapshot came).
    rewrite: bool,
    /// What the file holds once `pending` is in it.
    state: Recovered,
}

impl RaftFileLog {
    /// Opens (or creates) the log in `dir`, cutting a torn or corrupt tail.
    pub fn open(dir: &Path) -> Result<RaftFileLog> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut state = Recovered::default();
        if bytes.len() < MAGIC.len() {
            let mut f = File::create(&path)?;
            f.write_all(MAGIC)?;
            f.sync_all()?;
            File::open(dir)?.sync_all()?;
        } else if &bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::Corrupt {
                block: 0,
                offset: 0,
                reason: "not a raft log (bad magic)",
            });
        } else {
            let good = replay(&bytes, &mut state);
            if good < bytes.len() {
                log::warn!(
                    "raft log {}: cutting {} bytes of torn or corrupt tail at offset {good}",
                    path.display(),
                    bytes.len() - good
                );
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(good as u64)?;
                f.sync_all()?;
            }
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(RaftFileLog {
            dir: dir.to_path_buf(),
            file,
            pending: Vec::new(),
            rewrite: false,
            state,
        })
    }

    fn rewrite_file(&mut self) -> Result<()> {
        let mut buf = MAGIC.to_vec();
        if let Some(s) = &self.state.snapshot {
            put_record(&mut buf, SNAPSHOT, &encode_snapshot(s));
        }
        put_record(&mut buf, HARD, &encode_hard(&self.state.hard_state));
        if !self.state.entries.is_empty() {
            put_record(&mut buf, ENTRIES, &encode_entries(&self.state.entries));
        }
        let tmp = self.dir.join(TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(FILE))?;
        File::open(&self.dir)?.sync_all()?;
        self.file = OpenOptions::new().append(true).open(self.dir.join(FILE))?;
        Ok(())
    }
}

impl LogStorage for RaftFileLog {
    type Error = Error;

    fn write(&mut self, p: &Persist) -> Result<()> {
        if let Some(s) = &p.snapshot {
            put_record(&mut self.pending, SNAPSHOT, &encode_snapshot(s));
            apply_snapshot(&mut self.state, s.clone());
            self.rewrite = true;
        }
        if !p.entries.is_empty() {
            put_record(&mut self.pending, ENTRIES, &encode_entries(&p.entries));
            apply_entries(&mut self.state, &p.entries)?;
        }
        if let Some(h) = p.hard_state {
            put_record(&mut self.pending, HARD, &encode_hard(&h));
            self.state.hard_state = h;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.rewrite {
            self.rewrite_file()?;
            self.rewrite = false;
        } else if !self.pending.is_empty() {
            self.file.write_all(&self.pending)?;
            self.file.sync_data()?;
        }
        self.pending.clear();
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovered> {
        Ok(self.state.clone())
    }
}

/// Applies the file's records to `state`; returns how many bytes were good.
fn replay(bytes: &[u8], state: &mut Recovered) -> usize {
    let mut at = MAGIC.len();
    while bytes.len() - at >= HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().expect("8 bytes"));
        let body_at = at + HEADER_BYTES;
        if len == 0 || len > bytes.len() - body_at || xxh3_64(&bytes[body_at..body_at + len]) != sum
        {
            break;
        }
        let (kind, payload) = (bytes[body_at], &bytes[body_at + 1..body_at + len]);
        let ok = match kind {
            ENTRIES => decode_entries(payload).is_some_and(|es| apply_entries(state, &es).is_ok()),
            HARD => decode_hard(payload).map(|h| state.hard_state = h).is_some(),
            SNAPSHOT => decode_snapshot(payload)
                .map(|s| apply_snapshot(state, s))
                .is_some(),
            _ => false,
        };
        if !ok {
            break;
        }
        at = body_at + len;
    }
    at
}

fn apply_snapshot(state: &mut Recovered, s: Snapshot) {
    match state.entries.iter().position(|e| e.index == s.index) {
        Some(k) if state.entries[k].term == s.term => {
            state.entries.drain(..=k);
        }
        _ => state.entries.clear(),
    }
    state.snapshot = Some(s);
}

fn apply_entries(state: &mut Recovered, es: &[Entry]) -> Result<()> {
    let Some(first) = es.first().map(|e| e.index) else {
        return Ok(());
    };
    let base = state.snapshot.as_ref().map_or(0, |s| s.index);
    let keep = first
        .checked_sub(base + 1)
        .map(|k| k as usize)
        .filter(|k| *k <= state.entries.len());
    let Some(keep) = keep else {
        return Err(Error::Corrupt {
            block: 0,
            offset: first,
            reason: "raft entries do not continue the log",
        });
    };
    state.entries.truncate(keep);
    state.entries.extend_from_slice(es);
    Ok(())
}

fn put_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut body = Vec::with_capacity(payload.len() + 1);
    body.push(kind);
    body.extend_from_slice(payload);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    buf.extend_from_slice(&body);
}

fn encode_entries(es: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(es.iter().map(|e| 21 + e.data.len()).sum::<usize>() + 4);
    b.extend_from_slice(&(es.len() as u32).to_le_bytes());
    for e in es {
        b.extend_from_slice(&e.term.to_le_bytes());
        b.extend_from_slice(&e.index.to_le_bytes());
        b.push(e.kind as u8);
        b.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.data);
    }
    b
}

/// Reads little-endian fields off the front of a payload.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

fn decode_entries(payload: &[u8]) -> Option<Vec<Entry>> {
    let mut r = Reader(payload);
    let count = r.u32()? as usize;
    let mut es = Vec::with_capacity(count.min(payload.len() / 21));
    for _ in 0..count {
        let (term, index, kind) = (r.u64()?, r.u64()?, EntryType::from_byte(r.u8()?)?);
        let len = r.u32()? as usize;
        let data = bytes::Bytes::copy_from_slice(r.take(len)?);
        es.push(Entry {
            term,
            index,
            kind,
            data,
        });
    }
    Some(es)
}

fn encode_hard(h: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(25);
    b.extend_from_slice(&h.term.to_le_bytes());
    b.push(u8::from(h.vote.is_some()));
    b.extend_from_slice(&h.vote.map_or(0, |v| v.0).to_le_bytes());
    b.extend_from_slice(&h.commit.to_le_bytes());
    b
}

fn decode_hard(payload: &[u8]) -> Option<HardState> {
    let mut r = Reader(payload);
    let (term, has_vote, vote, commit) = (r.u64()?, r.u8()?, r.u64()?, r.u64()?);
    Some(HardState {
        term,
        vote: (has_vote == 1).then_some(NodeId(vote)),
        commit,
    })
}

fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + 8 * s.voters.len() + s.data.len());
    b.extend_from_slice(&s.index.to_le_bytes());
    b.extend_from_slice(&s.term.to_le_bytes());
    b.extend_from_slice(&(s.voters.len() as u32).to_le_bytes());
    for v in &s.voters {
        b.extend_from_slice(&v.0.to_le_bytes());
    }
    b.extend_from_slice(&(s.data.len() as u32).to_le_bytes());
    b.extend_from_slice(&s.data);
    b
}

fn decode_snapshot(payload: &[u8]) -> Option<Snapshot> {
    let mut r = Reader(payload);
    let (index, term, n) = (r.u64()?, r.u64()?, r.u32()? as usize);
    let mut voters = Vec::with_capacity(n.min(payload.len() / 8));
    for _ in 0..n {
        voters.push(NodeId(r.u64()?));
    }
    let len = r.u32()? as usize;
    let data = bytes::Bytes::copy_from_slice(r.take(len)?);
    Some(Snapshot {
        index,
        term,
        voters,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
        Entry {
            term,
            index,
            kind: EntryType::Normal,
            data: Bytes::from_static(data),
        }
    }

    fn persist(
        entries: Vec<Entry>,
        hard: Option<HardState>,
        snapshot: Option<Snapshot>,
    ) -> Persist {
        Persist {
            seq: 1,
            hard_state: hard,
            snapshot,
            entries,
            sync: true,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("natsd-raftlog-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn what_was_synced_comes_back_and_what_was_not_does_not() {
        let dir = tmp("sync");
        let mut log = RaftFileLog::open(&dir).unwrap();
        let hard = HardState {
            term: 2,
            vote: Some(NodeId(3)),
            commit: 1,
        };
        log.write(&persist(
            vec![entry(1, 1, b"a"), entry(2, 2, b"b")],
            Some(hard),
            None,
        ))
        .unwrap();
        log.sync().unwrap();
        log.write(&persist(vec![entry(2, 3, b"unsynced")], None, None))
            .unwrap();
        drop(log);
        let got = RaftFileLog::open(&dir).unwrap().recover().unwrap();
        assert_eq!(got.hard_state, hard);
        assert_eq!(got.entries, vec![entry(1, 1, b"a"), entry(2, 2, b"b")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_conflicting_append_replaces_the_tail() {
        let dir = tmp("conflict");
        let mut log = RaftFileLog::open(&dir).unwrap();
        log.write(&persist(
            vec![entry(1, 1, b"a"), entry(1, 2, b"b"), entry(1, 3, b"c")],
            None,
            None,
        ))
        .unwrap();
        log.write(&persist(vec![entry(2, 2, b"x")], None, None))
            .unwrap();
        log.sync().unwrap();
        drop(log);
        let got = RaftFileLog::open(&dir).unwrap().recover().unwrap();
        assert_eq!(got.entries, vec![entry(1, 1, b"a"), entry(2, 2, b"x")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A crash in the middle of a write leaves a partial record: it is cut on open, at any
    /// byte it was torn, and the records before it survive.
    #[test]
    fn a_torn_last_record_is_cut_on_open() {
        let dir = tmp("torn");
        let mut log = RaftFileLog::open(&dir).unwrap();
        log.write(&persist(vec![entry(1, 1, b"kept")], None, None))
            .unwrap();
        log.sync().unwrap();
        let whole = fs::metadata(dir.join(FILE)).unwrap().len();
        log.write(&persist(vec![entry(1, 2, b"torn")], None, None))
            .unwrap();
        log.sync().unwrap();
        drop(log);
        let full = fs::read(dir.join(FILE)).unwrap();
        for cut in whole as usize..full.len() {
            fs::write(dir.join(FILE), &full[..cut]).unwrap();
            let mut reopened = RaftFileLog::open(&dir).unwrap();
            assert_eq!(
                reopened.recover().unwrap().entries,
                vec![entry(1, 1, b"kept")],
                "cut at {cut}"
            );
            assert_eq!(
                fs::metadata(dir.join(FILE)).unwrap().len(),
                whole,
                "the tail is truncated"
            );
        }
        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 1;
        fs::write(dir.join(FILE), &flipped).unwrap();
        assert_eq!(
            RaftFileLog::open(&dir)
                .unwrap()
                .recover()
                .unwrap()
                .entries
                .len(),
            1,
            "a bad checksum is a torn record"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_snapshot_compacts_the_file() {
        let dir = tmp("snap");
        let mut log = RaftFileLog::open(&dir).unwrap();
        let many: Vec<Entry> = (1..=100).map(|i| entry(1, i, b"0123456789")).collect();
        log.write(&persist(many, None, None)).unwrap();
        log.sync().unwrap();
        let before = fs::metadata(dir.join(FILE)).unwrap().len();
        let snap = Snapshot {
            index: 99,
            term: 1,
            voters: vec![NodeId(1), NodeId(2)],
            data: Bytes::from_static(b"state"),
        };
        log.write(&persist(vec![], None, Some(snap.clone())))
            .unwrap();
        log.sync().unwrap();
        assert!(fs::metadata(dir.join(FILE)).unwrap().len() < before / 10);
        log.write(&persist(vec![entry(1, 101, b"after")], None, None))
            .unwrap();
        log.sync().unwrap();
        drop(log);
        let got = RaftFileLog::open(&dir).unwrap().recover().unwrap();
        assert_eq!(got.snapshot, Some(snap));
        assert_eq!(
            got.entries,
            vec![entry(1, 100, b"0123456789"), entry(1, 101, b"after")]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A node on the file log restarts with what it persisted and goes on.
    #[test]
    fn a_node_restarts_from_the_file_log() {
        use natsd_consensus::{Config, Node, Output};
        let dir = tmp("node");
        let run = |log: &mut RaftFileLog, node: &mut Node| {
            while let Some(out) = node.poll_output() {
                if let Output::Persist(p) = out {
                    log.write(&p).unwrap();
                    log.sync().unwrap();
                    node.handle_persisted(p.seq);
                }
            }
        };
        let mut log = RaftFileLog::open(&dir).unwrap();
        let mut node = Node::new(Config::new(NodeId(1), vec![NodeId(1)]));
        for _ in 0..30 {
            node.handle_tick();
            run(&mut log, &mut node);
        }
        node.propose(Bytes::from_static(b"durable")).unwrap();
        run(&mut log, &mut node);
        let (term, last) = (node.term(), node.last_index());
        drop(log);
        let mut log = RaftFileLog::open(&dir).unwrap();
        let node = Node::restart(
            Config::new(NodeId(1), vec![NodeId(1)]),
            log.recover().unwrap(),
        );
        assert_eq!((node.term(), node.last_index()), (term, last));
        assert_eq!(
            node.entry(last).unwrap().data,
            Bytes::from_static(b"durable")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
