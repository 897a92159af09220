//! The file store: checksummed records in fixed-size block files.
//!
//! A store directory holds `msgs/<index>.blk` block files, replayed in index order on open.
//! Only the highest-numbered block (the active block) is appended to, with `File::write`;
//! when the next record would not fit in `block_size`, the active block is sealed, mapped
//! read-only (see `mmap`) and a new block is started. Removals never rewrite a block in place:
//! they append a small marker record (tombstone, floor, truncate) to the active block. A sealed
//! block that is mostly or wholly dead is compacted into a new file that replaces it by rename.
//!
//! The index (sequence → block and offset, per-subject sequence sets) lives in memory and is
//! rebuilt by replaying every record on open. With `compress`, sealed blocks are snappy-packed
//! and read by decompressing the whole block (a few are cached) instead of through a map.
//!
//! ## Format
//!
//! All integers are little-endian. Each block file starts with a 40-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `NATSDBLK` |
//! | 8 | 1 | format version, `1` |
//! | 9 | 1 | flags: bit 0 = records snappy-compressed (a packed block); other bits zero |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | block index (u32, equals the file name) |
//! | 16 | 8 | first sequence: the stream's last sequence + 1 when the block was created (u64) |
//! | 24 | 8 | the stream's last timestamp when the block was created (i64 ns) |
//! | 32 | 8 | xxh3-64 of bytes 0..32 |
//!
//! followed by records:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | record length `n`, header to checksum inclusive (u32, at least 36) |
//! | 4 | 1 | kind: 0 message, 1 tombstone, 2 floor, 3 truncate |
//! | 5 | 1 | flags, zero |
//! | 6 | 2 | subject length `s` (u16) |
//! | 8 | 8 | sequence (u64) |
//! | 16 | 8 | timestamp (i64 ns since the Unix epoch) |
//! | 24 | 4 | header block length `h` (u32) |
//! | 28 | s | subject |
//! | 28+s | h | header block |
//! | 28+s+h | n-36-s-h | payload |
//! | n-8 | 8 | xxh3-64 of bytes 0..n-8 |
//!
//! A packed block (flag bit 0, only ever a sealed block, written with
//! [`FileStoreConfig::compress`]) holds, after the header, the records compressed with snappy
//! (raw format) and then an xxh3-64 of the compressed bytes (8 bytes). Offsets of records in
//! the index are offsets in the decompressed layout (header + records), as for a plain block.
//!
//! Record kinds, replayed in order:
//! - message: store `seq` with subject, headers and payload.
//! - tombstone: `seq` was removed.
//! - floor: every message below `seq` was removed (purge, compact); past the end, the last
//!   sequence becomes `seq - 1` with timestamp `ts`.
//! - truncate: every message after `seq` was removed; the last sequence becomes `seq` with
//!   timestamp `ts`.
//!
//! Marker records never point forward: a tombstone refers to a message in its own block or an
//! earlier one, so a compaction keeps a marker only while an earlier block still holds a
//! message record it affects.
//!
//! The checksum is xxh3-64, not the keyed HighwayHash of nats-server's filestore: a natsd store
//! directory cannot be read by nats-server, nor the reverse.
//!
//! ## Recovery
//!
//! On open every record of every block is checked. A record that fails (bad length, kind,
//! sizes or checksum) is reported with `log::warn!` and in [`FileStore::recovery_report`]; the
//! scan then looks for the next offset holding a valid record. If one exists the bad bytes are
//! skipped (their messages are lost, the rest is kept); if none does, the damage is a torn or
//! corrupt tail and the file is truncated at the first bad byte. A block whose header is bad,
//! or a packed block whose compressed bytes fail their checksum, is renamed to
//! `<index>.blk.corrupt` and skipped.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::index::{Entry, Index, PurgePlan, SizeRule};
use crate::mmap::map_sealed;
use crate::{Error, Result, Store, StoreLimits, StoredMsg, StreamState, SubjectState};

const MAGIC: &[u8; 8] = b"NATSDBLK";
const VERSION: u8 = 1;
const BLOCK_HDR: usize = 40;
const REC_HDR: usize = 28;
const SUM: usize = 8;
const MIN_REC: usize = REC_HDR + SUM;

/// Block header flag: the records are snappy-compressed (see `pack`).
const FLAG_SNAPPY: u8 = 1;
/// Unpacked blocks kept for reads.
const UNPACKED_CACHE: usize = 4;

const KIND_MSG: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
const KIND_FLOOR: u8 = 2;
const KIND_TRUNCATE: u8 = 3;

/// Default block size: 8 MiB. Big enough that a block holds ~100k small messages (few files,
/// few maps), small enough that compacting a mostly-deleted block is a short rewrite.
pub const DEFAULT_BLOCK_SIZE: u64 = 8 << 20;

/// File store settings.
#[derive(Debug, Clone)]
pub struct FileStoreConfig {
    /// Target size of a block file; a single larger record gets a block of its own.
    pub block_size: u64,
    /// `fsync` (`sync_data`) after every append: acknowledged messages survive power loss.
    /// Without it they survive a process crash, and power loss after the caller's `sync()`.
    pub sync_always: bool,
    /// Stream limits.
    pub limits: StoreLimits,
    /// Compress sealed blocks with snappy. Reads from a compressed block decompress it whole
    /// (a few recently used blocks are cached); the active block is never compressed.
    pub compress: bool,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            sync_always: false,
            limits: StoreLimits::default(),
            compress: false,
        }
    }
}

struct FileEntry {
    subject: Arc<str>,
    ts: i64,
    size: u64,
    block: u32,
    offset: u32,
    len: u32,
}

impl Entry for FileEntry {
    fn subject(&self) -> &Arc<str> {
        &self.subject
    }
    fn ts(&self) -> i64 {
        self.ts
    }
    fn size(&self) -> u64 {
        self.size
    }
}

enum Data {
    Active(File),
    Sealed(Mmap),
    /// A sealed, snappy-compressed block; read through `FileStore::unpacked`.
    Packed,
}

struct Block {
    path: PathBuf,
    hdr_first: u64,
    hdr_ts: i64,
    data: Data,
    len: u64,
    msg_records: u64,
    live: u64,
    min_seq: u64,
    max_seq: u64,
    /// Highest floor marker in the block (0 if none): it claims `last_seq >= max_floor - 1`.
    max_floor: u64,
}

impl Block {
    fn note_msg(&mut self, seq: u64) {
        if self.msg_records == 0 {
            self.min_seq = seq;
            self.max_seq = seq;
        } else {
            self.min_seq = self.min_seq.min(seq);
            self.max_seq = self.max_seq.max(seq);
        }
        self.msg_records += 1;
        self.live += 1;
    }

    fn read(&self, off: u32, len: u32) -> std::io::Result<Cow<'_, [u8]>> {
        let (off, len) = (off as usize, len as usize);
        match &self.data {
            Data::Sealed(m) => m
                .get(off..off + len)
                .map(Cow::Borrowed)
                .ok_or_else(past_end),
            Data::Packed => Err(std::io::Error::other("packed block read without unpacking")),
            Data::Active(f) => {
                let mut v = vec![0; len];
                f.read_exact_at(&mut v, off as u64)?;
                Ok(Cow::Owned(v))
            }
        }
    }
}

/// A decoded record borrowing the block bytes.
struct Rec<'a> {
    kind: u8,
    seq: u64,
    ts: i64,
    subject: &'a [u8],
    hdr: &'a [u8],
    msg: &'a [u8],
    len: usize,
}

fn past_end() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "record past block end")
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Decode the record at the start of `b`. Never panics on arbitrary bytes: every slice is
/// bounds-checked against lengths validated first.
fn decode(b: &[u8], block: u32, offset: u64) -> Result<Rec<'_>> {
    let corrupt = |reason| Error::Corrupt {
        block,
        offset,
        reason,
    };
    if b.len() < MIN_REC {
        return Err(corrupt("truncated record header"));
    }
    let len = u32_at(b, 0) as usize;
    if len < MIN_REC {
        return Err(corrupt("record length too small"));
    }
    if len > b.len() {
        return Err(corrupt("record length past end of block"));
    }
    let kind = b[4];
    if kind > KIND_TRUNCATE || b[5] != 0 {
        return Err(corrupt("unknown record kind or flags"));
    }
    let slen = u16::from_le_bytes([b[6], b[7]]) as usize;
    let hlen = u32_at(b, 24) as usize;
    if REC_HDR + slen + hlen > len - SUM {
        return Err(corrupt("field lengths exceed record length"));
    }
    let expected = u64_at(b, len - SUM);
    let got = xxh3_64(&b[..len - SUM]);
    if got != expected {
        return Err(Error::ChecksumMismatch {
            block,
            offset,
            got,
            expected,
        });
    }
    let body = &b[REC_HDR..len - SUM];
    Ok(Rec {
        kind,
        seq: u64_at(b, 8),
        ts: u64_at(b, 16) as i64,
        subject: &body[..slen],
        hdr: &body[slen..slen + hlen],
        msg: &body[slen + hlen..],
        len,
    })
}

/// Append one encoded record to `out`.
fn encode(
    out: &mut Vec<u8>,
    kind: u8,
    seq: u64,
    ts: i64,
    subject: &[u8],
    hdr: &[u8],
    msg: &[u8],
) -> Result<()> {
    let slen = u16::try_from(subject.len()).map_err(|_| Error::TooLarge { what: "subject" })?;
    let hlen = u32::try_from(hdr.len()).map_err(|_| Error::TooLarge { what: "headers" })?;
    let total = MIN_REC + subject.len() + hdr.len() + msg.len();
    let len = u32::try_from(total).map_err(|_| Error::TooLarge { what: "message" })?;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&slen.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(subject);
    out.extend_from_slice(hdr);
    out.extend_from_slice(msg);
    let sum = xxh3_64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
    assert_eq!(out.len() - start, total);
    Ok(())
}

fn block_header(index: u32, first: u64, ts: i64, flags: u8) -> [u8; BLOCK_HDR] {
    let mut h = [0u8; BLOCK_HDR];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[9] = flags;
    h[12..16].copy_from_slice(&index.to_le_bytes());
    h[16..24].copy_from_slice(&first.to_le_bytes());
    h[24..32].copy_from_slice(&ts.to_le_bytes());
    let sum = xxh3_64(&h[..32]);
    h[32..].copy_from_slice(&sum.to_le_bytes());
    h
}

fn parse_header(b: &[u8], index: u32) -> Result<(u64, i64, u8)> {
    let corrupt = |reason| Error::Corrupt {
        block: index,
        offset: 0,
        reason,
    };
    if b.len() < BLOCK_HDR {
        return Err(corrupt("block header truncated"));
    }
    if &b[..8] != MAGIC {
        return Err(corrupt("bad block magic"));
    }
    if b[8] != VERSION {
        return Err(corrupt("unsupported block format version"));
    }
    let expected = u64_at(b, 32);
    let got = xxh3_64(&b[..32]);
    if got != expected {
        return Err(Error::ChecksumMismatch {
            block: index,
            offset: 0,
            got,
            expected,
        });
    }
    if u32_at(b, 12) != index {
        return Err(corrupt("block index differs from file name"));
    }
    if b[9] & !FLAG_SNAPPY != 0 {
        return Err(corrupt("unknown block flags"));
    }
    Ok((u64_at(b, 16), u64_at(b, 24) as i64, b[9]))
}

/// A packed block file: header, snappy (raw format) of the records, xxh3-64 of the snappy bytes.
fn pack(header: &[u8; BLOCK_HDR], records: &[u8]) -> Result<Vec<u8>> {
    let body = snap::raw::Encoder::new()
        .compress_vec(records)
        .map_err(|_| Error::TooLarge { what: "block" })?;
    let mut out = Vec::with_capacity(BLOCK_HDR + body.len() + SUM);
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    Ok(out)
}

/// The raw layout (header + records) of a packed block file, so record offsets are the same
/// as in an unpacked block.
fn unpack(file: &[u8], index: u32) -> Result<Vec<u8>> {
    if file.len() < BLOCK_HDR + SUM {
        return Err(Error::Corrupt {
            block: index,
            offset: 0,
            reason: "packed block truncated",
        });
    }
    let body = &file[BLOCK_HDR..file.len() - SUM];
    let expected = u64_at(file, file.len() - SUM);
    let got = xxh3_64(body);
    if got != expected {
        return Err(Error::ChecksumMismatch {
            block: index,
            offset: BLOCK_HDR as u64,
            got,
            expected,
        });
    }
    let corrupt = || Error::Corrupt {
        block: index,
        offset: BLOCK_HDR as u64,
        reason: "packed block does not decompress",
    };
    let n = snap::raw::decompress_len(body).map_err(|_| corrupt())?;
    let mut out = vec![0; BLOCK_HDR + n];
    out[..BLOCK_HDR].copy_from_slice(&file[..BLOCK_HDR]);
    snap::raw::Decoder::new()
        .decompress(body, &mut out[BLOCK_HDR..])
        .map_err(|_| corrupt())?;
    Ok(out)
}

/// Valid records of a block's bytes with their offsets, the problems found, and the length
/// to keep (shorter than the input when the tail is damaged).
fn scan(b: &[u8], index: u32) -> (Vec<(usize, Rec<'_>)>, Vec<Error>, usize) {
    let mut recs = Vec::new();
    let mut problems = Vec::new();
    let mut off = BLOCK_HDR;
    while off < b.len() {
        match decode(&b[off..], index, off as u64) {
            Ok(r) => {
                off += r.len;
                recs.push((off - r.len, r));
            }
            Err(e) => {
                problems.push(e);
                let next = (off + 1..b.len().saturating_sub(MIN_REC - 1))
                    .find(|&p| decode(&b[p..], index, p as u64).is_ok());
                match next {
                    Some(p) => off = p,
                    None => return (recs, problems, off),
                }
            }
        }
    }
    (recs, problems, off)
}

/// A [`Store`] of checksummed records in block files under a directory.
///
/// Bytes are counted as nats-server 2.9.10 counts file streams: 22 + subject + payload + 8,
/// plus 4 + headers when the message has headers. One `FileStore` owns its directory; another
/// process writing to it is outside the contract.
pub struct FileStore {
    dir: PathBuf,
    cfg: FileStoreConfig,
    idx: Index<FileEntry>,
    blocks: BTreeMap<u32, Block>,
    active: u32,
    buf: Vec<u8>,
    report: Vec<Error>,
    closed: bool,
    unpacked: RefCell<VecDeque<(u32, Arc<[u8]>)>>,
}

impl FileStore {
    /// Open (or create) the store in `dir`, replaying and checking every block.
    pub fn open(dir: impl AsRef<Path>, cfg: FileStoreConfig) -> Result<Self> {
        let dir = dir.as_ref().join("msgs");
        fs::create_dir_all(&dir)?;
        let mut found: Vec<u32> = Vec::new();
        for ent in fs::read_dir(&dir)? {
            let name = ent?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".blk").and_then(|n| n.parse().ok()) {
                found.push(n);
            } else if name.ends_with(".blk.tmp") {
                // A compaction interrupted before its rename; the original block is intact.
                fs::remove_file(dir.join(name))?;
            }
        }
        found.sort_unstable();
        let mut fs_ = FileStore {
            dir,
            cfg,
            idx: Index::new(SizeRule::File),
            blocks: BTreeMap::new(),
            active: 0,
            buf: Vec::new(),
            report: Vec::new(),
            closed: false,
            unpacked: RefCell::new(VecDeque::new()),
        };
        let last = found.last().copied();
        for n in found {
            fs_.replay_block(n, Some(n) == last)?;
        }
        match fs_.blocks.last_key_value() {
            Some((&n, b)) if matches!(b.data, Data::Active(_)) => fs_.active = n,
            Some((&n, _)) => fs_.new_block(n + 1)?,
            None => fs_.new_block(1)?,
        }
        let limits = fs_.cfg.limits;
        fs_.enforce(None, &limits)?;
        Ok(fs_)
    }

    /// Problems found and repaired while opening: corrupt or torn records, bad block headers.
    pub fn recovery_report(&self) -> &[Error] {
        &self.report
    }

    fn block_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{n}.blk"))
    }

    fn replay_block(&mut self, n: u32, is_last: bool) -> Result<()> {
        let path = self.block_path(n);
        let mut bytes = fs::read(&path)?;
        let parsed = parse_header(&bytes, n).and_then(|(first, ts, flags)| {
            if flags & FLAG_SNAPPY != 0 {
                bytes = unpack(&bytes, n)?;
            }
            Ok((first, ts, flags & FLAG_SNAPPY != 0))
        });
        let (hdr_first, hdr_ts, packed) = match parsed {
            Ok(h) => h,
            Err(e) => {
                log::warn!("filestore: {e}; renaming {} aside", path.display());
                self.report.push(e);
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                fs::rename(&path, aside)?;
                return Ok(());
            }
        };
        let (recs, problems, keep) = scan(&bytes, n);
        for p in problems {
            log::warn!("filestore: {p}");
            self.report.push(p);
        }
        if keep < bytes.len() && !packed {
            log::warn!(
                "filestore: block {n}: truncating damaged tail at offset {keep} ({} bytes)",
                bytes.len() - keep
            );
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            f.sync_data()?;
        }
        self.blocks.insert(
            n,
            Block {
                path: path.clone(),
                hdr_first,
                hdr_ts,
                data: Data::Active(File::open(&path)?),
                len: keep as u64,
                msg_records: 0,
                live: 0,
                min_seq: 0,
                max_seq: 0,
                max_floor: 0,
            },
        );
        if hdr_first > 0 {
            self.idx.advance_last(hdr_first - 1, hdr_ts);
        }
        for (off, r) in recs {
            self.apply(n, off, &r);
        }
        let data = if packed {
            Data::Packed
        } else if is_last {
            Data::Active(OpenOptions::new().read(true).append(true).open(&path)?)
        } else {
            Data::Sealed(map_sealed(&File::open(&path)?)?)
        };
        if let Some(b) = self.blocks.get_mut(&n) {
            b.data = data;
        }
        Ok(())
    }

    /// Apply one replayed record to the index.
    fn apply(&mut self, n: u32, off: usize, r: &Rec<'_>) {
        match r.kind {
            KIND_MSG => {
                let subject = String::from_utf8_lossy(r.subject);
                let e = FileEntry {
                    subject: self.idx.intern(&subject),
                    ts: r.ts,
                    size: SizeRule::File.size(&subject, r.hdr, r.msg),
                    block: n,
                    offset: off as u32,
                    len: r.len as u32,
                };
                if let Some(old) = self.idx.remove(r.seq) {
                    self.dead(old.block, 1);
                }
                self.idx.insert(r.seq, e);
                if let Some(b) = self.blocks.get_mut(&n) {
                    b.note_msg(r.seq);
                }
            }
            KIND_TOMBSTONE => {
                if let Some(e) = self.idx.remove(r.seq) {
                    self.dead(e.block, 1);
                }
            }
            KIND_FLOOR => {
                if let Some(b) = self.blocks.get_mut(&n) {
                    b.max_floor = b.max_floor.max(r.seq);
                }
                let removed = self.idx.compact_floor(r.seq, r.ts);
                self.dead_all(&removed);
            }
            _ => {
                let removed = self.idx.truncate(r.seq, r.ts);
                self.dead_all(&removed);
            }
        }
    }

    fn dead(&mut self, block: u32, n: u64) {
        if let Some(b) = self.blocks.get_mut(&block) {
            b.live = b.live.saturating_sub(n);
        }
    }

    fn dead_all(&mut self, removed: &[(u64, FileEntry)]) {
        for (_, e) in removed {
            self.dead(e.block, 1);
        }
    }

    fn new_block(&mut self, n: u32) -> Result<()> {
        let path = self.block_path(n);
        let hdr_first = self.idx.last_seq + 1;
        let hdr_ts = self.idx.last_ts;
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        f.write_all(&block_header(n, hdr_first, hdr_ts, 0))?;
        if self.cfg.sync_always {
            f.sync_data()?;
            File::open(&self.dir)?.sync_all()?;
        }
        self.blocks.insert(
            n,
            Block {
                path,
                hdr_first,
                hdr_ts,
                data: Data::Active(f),
                len: BLOCK_HDR as u64,
                msg_records: 0,
                live: 0,
                min_seq: 0,
                max_seq: 0,
                max_floor: 0,
            },
        );
        self.active = n;
        Ok(())
    }

    /// Seal the active block (map it read-only) and start the next one.
    fn roll(&mut self) -> Result<()> {
        let n = self.active;
        if let Some(b) = self.blocks.get_mut(&n) {
            if let Data::Active(f) = &b.data {
                f.sync_data()?;
                b.data = Data::Sealed(map_sealed(f)?);
            }
        }
        self.new_block(n + 1)?;
        if self.cfg.compress {
            self.rewrite(n)?;
        }
        Ok(())
    }

    /// The raw bytes of packed block `n`, from the cache or decompressed from its file.
    fn unpacked(&self, n: u32) -> Result<Arc<[u8]>> {
        let mut cache = self.unpacked.borrow_mut();
        if let Some((_, b)) = cache.iter().find(|(i, _)| *i == n) {
            return Ok(b.clone());
        }
        let path = self.block_path(n);
        let b: Arc<[u8]> = unpack(&fs::read(path)?, n)?.into();
        if cache.len() >= UNPACKED_CACHE {
            cache.pop_front();
        }
        cache.push_back((n, b.clone()));
        Ok(b)
    }

    fn forget_unpacked(&self, n: u32) {
        self.unpacked.borrow_mut().retain(|(i, _)| *i != n);
    }

    fn active_block(&mut self) -> Result<&mut Block> {
        self.blocks.get_mut(&self.active).ok_or(Error::Corrupt {
            block: self.active,
            offset: 0,
            reason: "active block missing",
        })
    }

    /// Append the record in `self.buf` to the active block; returns (block, offset).
    fn append_buf(&mut self) -> Result<(u32, u64)> {
        let len = self.buf.len() as u64;
        let (blen, has_records) = {
            let b = self.active_block()?;
            (b.len, b.len > BLOCK_HDR as u64)
        };
        if has_records && blen + len > self.cfg.block_size {
            self.roll()?;
        }
        let sync = self.cfg.sync_always;
        let n = self.active;
        let buf = std::mem::take(&mut self.buf);
        let Some(b) = self.blocks.get_mut(&n) else {
            self.buf = buf;
            return Err(Error::Corrupt {
                block: n,
                offset: 0,
                reason: "active block missing",
            });
        };
        let off = b.len;
        let res = match &mut b.data {
            Data::Active(f) => {
                let r = f
                    .write_all(&buf)
                    .and_then(|()| if sync { f.sync_data() } else { Ok(()) });
                if r.is_err() {
                    // Drop a partial write so the next append starts on a record boundary.
                    let _ = f.set_len(off);
                }
                r
            }
            Data::Sealed(_) | Data::Packed => Err(std::io::Error::other("active block is sealed")),
        };
        if res.is_ok() {
            b.len += len;
        }
        self.buf = buf;
        res?;
        Ok((n, off))
    }

    fn write_marker(&mut self, kind: u8, seq: u64, ts: i64) -> Result<()> {
        self.buf.clear();
        let mut buf = std::mem::take(&mut self.buf);
        let r = encode(&mut buf, kind, seq, ts, b"", b"", b"");
        self.buf = buf;
        r?;
        self.append_buf().map(|_| ())
    }

    fn read_msg(&self, seq: u64) -> Result<StoredMsg> {
        let e = self
            .idx
            .msgs
            .get(&seq)
            .ok_or_else(|| self.idx.missing(seq))?;
        let b = self.blocks.get(&e.block).ok_or(Error::Corrupt {
            block: e.block,
            offset: u64::from(e.offset),
            reason: "index points at a missing block",
        })?;
        let whole;
        let bytes = if matches!(b.data, Data::Packed) {
            whole = self.unpacked(e.block)?;
            let (off, len) = (e.offset as usize, e.len as usize);
            Cow::Borrowed(whole.get(off..off + len).ok_or_else(past_end)?)
        } else {
            b.read(e.offset, e.len)?
        };
        let r = decode(&bytes, e.block, u64::from(e.offset))?;
        if r.kind != KIND_MSG || r.seq != seq {
            return Err(Error::Corrupt {
                block: e.block,
                offset: u64::from(e.offset),
                reason: "index points at a different record",
            });
        }
        Ok(StoredMsg {
            subject: String::from_utf8_lossy(r.subject).into_owned(),
            hdr: r.hdr.to_vec(),
            msg: r.msg.to_vec(),
            seq,
            ts: r.ts,
        })
    }

    fn remove_one(&mut self, seq: u64) -> Result<Option<u32>> {
        let Some(e) = self.idx.remove(seq) else {
            return Ok(None);
        };
        self.dead(e.block, 1);
        self.write_marker(KIND_TOMBSTONE, seq, 0)?;
        Ok(Some(e.block))
    }

    fn enforce(&mut self, subject: Option<&str>, limits: &StoreLimits) -> Result<()> {
        let mut touched = false;
        while let Some(v) = self.idx.victim(limits, subject) {
            self.remove_one(v)?;
            touched = true;
        }
        if touched {
            self.sweep()?;
        }
        Ok(())
    }

    /// Compact every sealed block that is mostly or wholly dead.
    fn sweep(&mut self) -> Result<()> {
        let candidates: Vec<u32> = self
            .blocks
            .iter()
            .filter(|(&n, b)| n != self.active && b.msg_records > 0 && b.live * 2 < b.msg_records)
            .map(|(&n, _)| n)
            .collect();
        for n in candidates {
            self.rewrite(n)?;
        }
        Ok(())
    }

    /// Does a marker record in block `n` still affect a message record in an earlier block?
    fn marker_needed(&self, n: u32, kind: u8, seq: u64) -> bool {
        self.blocks.range(..n).any(|(_, b)| {
            let has = b.msg_records > 0;
            match kind {
                KIND_TOMBSTONE => has && b.min_seq <= seq && seq <= b.max_seq,
                KIND_FLOOR => has && b.min_seq < seq,
                // A truncate also undoes the claims about the last sequence made by earlier
                // block headers and floor markers.
                _ => (has && b.max_seq > seq) || b.hdr_first > seq + 1 || b.max_floor > seq + 1,
            }
        })
    }

    /// Rewrite sealed block `n` with only its live messages and needed markers, replacing it
    /// by rename; delete it when nothing remains.
    fn rewrite(&mut self, n: u32) -> Result<()> {
        let Some(b) = self.blocks.get(&n) else {
            return Ok(());
        };
        let whole;
        let bytes: &[u8] = match &b.data {
            Data::Sealed(map) => map,
            Data::Packed => {
                whole = self.unpacked(n)?;
                &whole
            }
            Data::Active(_) => return Ok(()),
        };
        let (recs, _, _) = scan(bytes, n);
        let mut out = Vec::with_capacity(b.len as usize);
        out.extend_from_slice(&[0; BLOCK_HDR]);
        let mut hdr_first = b.hdr_first;
        let mut moved: Vec<(u64, u32)> = Vec::new();
        let mut kept = Block {
            path: b.path.clone(),
            hdr_first: 0,
            hdr_ts: b.hdr_ts,
            data: Data::Active(File::open(&b.path)?),
            len: 0,
            msg_records: 0,
            live: 0,
            min_seq: 0,
            max_seq: 0,
            max_floor: 0,
        };
        for (off, r) in &recs {
            if r.kind == KIND_TRUNCATE {
                // The truncate undid this header's claim about the last sequence; whether or
                // not the marker is kept, the rewritten header must not claim more.
                hdr_first = hdr_first.min(r.seq + 1);
            }
            let keep = match r.kind {
                KIND_MSG => self
                    .idx
                    .msgs
                    .get(&r.seq)
                    .is_some_and(|e| e.block == n && e.offset as usize == *off),
                // A floor kept earlier in this block may claim more than the truncate allows.
                KIND_TRUNCATE => kept.max_floor > r.seq + 1 || self.marker_needed(n, r.kind, r.seq),
                _ => self.marker_needed(n, r.kind, r.seq),
            };
            if !keep {
                continue;
            }
            if r.kind == KIND_FLOOR {
                kept.max_floor = kept.max_floor.max(r.seq);
            }
            if r.kind == KIND_MSG {
                hdr_first = hdr_first.min(r.seq);
                moved.push((r.seq, out.len() as u32));
                kept.note_msg(r.seq);
            }
            encode(&mut out, r.kind, r.seq, r.ts, r.subject, r.hdr, r.msg)?;
        }
        let path = b.path.clone();
        self.forget_unpacked(n);
        if out.len() == BLOCK_HDR {
            self.blocks.remove(&n);
            fs::remove_file(&path)?;
            return Ok(());
        }
        let compress = self.cfg.compress;
        let flags = if compress { FLAG_SNAPPY } else { 0 };
        let header = block_header(n, hdr_first, kept.hdr_ts, flags);
        out[..BLOCK_HDR].copy_from_slice(&header);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = File::create(&tmp)?;
            if compress {
                f.write_all(&pack(&header, &out[BLOCK_HDR..])?)?;
            } else {
                f.write_all(&out)?;
            }
            f.sync_data()?;
        }
        fs::rename(&tmp, &path)?;
        if self.cfg.sync_always {
            File::open(&self.dir)?.sync_all()?;
        }
        kept.hdr_first = hdr_first;
        kept.len = out.len() as u64;
        kept.data = if compress {
            Data::Packed
        } else {
            Data::Sealed(map_sealed(&File::open(&path)?)?)
        };
        for (seq, off) in moved {
            if let Some(e) = self.idx.msgs.get_mut(&seq) {
                e.offset = off;
            }
        }
        self.blocks.insert(n, kept);
        Ok(())
    }

    /// Delete every block and start over with a new, empty stream.
    fn reset(&mut self) -> Result<()> {
        let next = self.active + 1;
        self.unpacked.borrow_mut().clear();
        for (_, b) in std::mem::take(&mut self.blocks) {
            drop(b.data);
            fs::remove_file(&b.path)?;
        }
        self.idx.truncate(0, 0);
        self.new_block(next)
    }
}

impl Store for FileStore {
    fn store_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        ts_ns: i64,
    ) -> Result<(u64, i64)> {
        let seq = self.idx.last_seq + 1;
        self.store_raw_msg(subject, hdr, msg, seq, ts_ns)?;
        Ok((seq, ts_ns))
    }

    fn store_raw_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        seq: u64,
        ts_ns: i64,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if seq <= self.idx.last_seq {
            return Err(Error::BadSequence {
                seq,
                last: self.idx.last_seq,
            });
        }
        let limits = self.cfg.limits;
        Index::<FileEntry>::check_size(&limits, subject, hdr, msg)?;
        let size = SizeRule::File.size(subject, hdr, msg);
        self.idx.check_new(&limits, subject, size)?;
        self.buf.clear();
        let mut buf = std::mem::take(&mut self.buf);
        let r = encode(&mut buf, KIND_MSG, seq, ts_ns, subject.as_bytes(), hdr, msg);
        let len = buf.len() as u32;
        self.buf = buf;
        r?;
        let (n, off) = self.append_buf()?;
        if let Some(b) = self.blocks.get_mut(&n) {
            b.note_msg(seq);
        }
        let e = FileEntry {
            subject: self.idx.intern(subject),
            ts: ts_ns,
            size,
            block: n,
            offset: off as u32,
            len,
        };
        self.idx.insert(seq, e);
        self.enforce(Some(subject), &limits)
    }

    fn load_msg(&self, seq: u64) -> Result<StoredMsg> {
        self.read_msg(seq)
    }

    fn load_last_msg(&self, filter: &str) -> Result<StoredMsg> {
        self.read_msg(self.idx.last_for(filter).ok_or(Error::Eof)?)
    }

    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Result<StoredMsg> {
        self.read_msg(self.idx.next_for(filter, start_seq).ok_or(Error::Eof)?)
    }

    fn remove_msg(&mut self, seq: u64) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        match self.remove_one(seq)? {
            Some(n) => {
                let mostly_dead = self
                    .blocks
                    .get(&n)
                    .is_some_and(|b| b.live * 2 < b.msg_records);
                if n != self.active && mostly_dead {
                    self.rewrite(n)?;
                }
                Ok(())
            }
            None => Err(self.idx.missing(seq)),
        }
    }

    fn erase_msg(&mut self, seq: u64) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        match self.remove_one(seq)? {
            Some(n) => {
                if n == self.active {
                    self.roll()?;
                }
                self.rewrite(n)
            }
            None => Err(self.idx.missing(seq)),
        }
    }

    fn purge(&mut self) -> Result<u64> {
        let floor = self.idx.last_seq + 1;
        self.compact(floor)
    }

    fn purge_ex(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64> {
        if self.closed {
            return Err(Error::Closed);
        }
        match self.idx.purge_plan(filter, seq, keep) {
            None => Ok(0),
            Some(PurgePlan::Purge) => self.purge(),
            Some(PurgePlan::Compact(s)) => self.compact(s),
            Some(PurgePlan::Remove(seqs)) => {
                let mut n = 0;
                for s in seqs {
                    if self.remove_one(s)?.is_some() {
                        n += 1;
                    }
                }
                self.sweep()?;
                Ok(n)
            }
        }
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        if self.closed {
            return Err(Error::Closed);
        }
        let seq = if seq == 0 { self.idx.last_seq + 1 } else { seq };
        let ts = self.idx.last_ts;
        let removed = self.idx.compact_floor(seq, ts);
        self.dead_all(&removed);
        self.write_marker(KIND_FLOOR, seq, self.idx.last_ts)?;
        let active = self.active;
        if let Some(b) = self.blocks.get_mut(&active) {
            b.max_floor = b.max_floor.max(seq);
        }
        self.sweep()?;
        Ok(removed.len() as u64)
    }

    fn truncate(&mut self, seq: u64) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if seq == 0 {
            return self.reset();
        }
        if seq >= self.idx.last_seq {
            return Ok(());
        }
        let ts = self.idx.truncate_ts(seq);
        let removed = self.idx.truncate(seq, ts);
        self.dead_all(&removed);
        self.write_marker(KIND_TRUNCATE, seq, ts)?;
        self.sweep()
    }

    fn state(&self) -> StreamState {
        self.idx.state(false)
    }

    fn state_with_deleted(&self) -> StreamState {
        self.idx.state(true)
    }

    fn subjects_state(&self, filter: &str) -> BTreeMap<String, SubjectState> {
        self.idx.subjects_state(filter)
    }

    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64 {
        self.idx.num_pending(start_seq, filter, last_per_subject)
    }

    fn update_config(&mut self, limits: StoreLimits) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.cfg.limits = limits;
        self.enforce(None, &limits)
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        if self.closed {
            return Err(Error::Closed);
        }
        let limits = self.cfg.limits;
        let mut n = 0;
        while let Some(s) = self.idx.expired(&limits, now_ns) {
            self.remove_one(s)?;
            n += 1;
        }
        if n > 0 {
            self.sweep()?;
        }
        Ok(n)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.idx.next_expiry(&self.cfg.limits)
    }

    fn sync(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if let Data::Active(f) = &self.active_block()?.data {
            f.sync_data()?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.sync()?;
        self.closed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// Each record: 36 + 1 (subject "t") + 20 (payload) = 57 bytes.
    const REC: u64 = 57;

    fn cfg() -> FileStoreConfig {
        FileStoreConfig {
            block_size: BLOCK_HDR as u64 + 10 * REC,
            ..FileStoreConfig::default()
        }
    }

    /// 25 messages: blocks 1 and 2 sealed with 10 each, block 3 active with 5.
    fn fill(dir: &TempDir) {
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for i in 1..=25u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        assert_eq!(s.blocks.len(), 3);
        s.stop().unwrap();
    }

    fn block(dir: &TempDir, n: u32) -> PathBuf {
        dir.path().join("msgs").join(format!("{n}.blk"))
    }

    fn patch(path: &Path, off: u64, f: impl Fn(&mut u8)) {
        let mut b = fs::read(path).unwrap();
        f(&mut b[off as usize]);
        fs::write(path, b).unwrap();
    }

    fn rec_off(i: u64) -> u64 {
        BLOCK_HDR as u64 + i * REC
    }

    fn present(s: &FileStore) -> Vec<u64> {
        (1..=s.state().last_seq)
            .filter(|&q| s.load_msg(q).is_ok())
            .collect()
    }

    #[test]
    fn flipped_payload_byte_in_sealed_block_loses_only_that_message() {
        let dir = TempDir::new("flip");
        fill(&dir);
        // Message 5 is record 4 of block 1; flip a payload byte.
        patch(&block(&dir, 1), rec_off(4) + 40, |b| *b ^= 0xff);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(matches!(
            s.recovery_report(),
            [Error::ChecksumMismatch { block: 1, offset, .. }] if *offset == rec_off(4)
        ));
        let want: Vec<u64> = (1..=25).filter(|&q| q != 5).collect();
        assert_eq!(present(&s), want);
        assert_eq!(s.load_msg(6).unwrap().msg, vec![6; 20]);
    }

    #[test]
    fn corrupt_length_field_resyncs_to_next_record() {
        let dir = TempDir::new("len");
        fill(&dir);
        patch(&block(&dir, 2), rec_off(3), |b| *b = 0xee);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.recovery_report().len(), 1);
        assert!(matches!(
            s.recovery_report()[0],
            Error::Corrupt { block: 2, .. } | Error::ChecksumMismatch { block: 2, .. }
        ));
        let want: Vec<u64> = (1..=25).filter(|&q| q != 14).collect();
        assert_eq!(present(&s), want);
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = TempDir::new("torn");
        fill(&dir);
        let path = block(&dir, 3);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.recovery_report().len(), 1);
        assert_eq!(present(&s), (1..=24).collect::<Vec<_>>());
        assert_eq!(fs::metadata(&path).unwrap().len(), len - REC);
        assert_eq!(s.store_msg("t", b"", &[99; 20], 99).unwrap().0, 25);
        s.stop().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(s.recovery_report().is_empty());
        assert_eq!(s.load_msg(25).unwrap().msg, vec![99; 20]);
    }

    #[test]
    fn garbage_appended_is_reported_and_cut() {
        let dir = TempDir::new("garbage");
        fill(&dir);
        let path = block(&dir, 3);
        let len = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0x5a; 333]).unwrap();
        drop(f);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.recovery_report().len(), 1);
        assert_eq!(present(&s), (1..=25).collect::<Vec<_>>());
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn zeroed_tail_of_sealed_block_is_cut() {
        let dir = TempDir::new("zero");
        fill(&dir);
        let path = block(&dir, 1);
        let mut b = fs::read(&path).unwrap();
        let from = rec_off(8) as usize;
        b[from..].fill(0);
        fs::write(&path, b).unwrap();
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(!s.recovery_report().is_empty());
        let want: Vec<u64> = (1..=25).filter(|&q| q != 9 && q != 10).collect();
        assert_eq!(present(&s), want);
        assert_eq!(s.state().last_seq, 25);
    }

    #[test]
    fn bad_block_header_sets_block_aside() {
        let dir = TempDir::new("hdr");
        fill(&dir);
        patch(&block(&dir, 2), 3, |b| *b ^= 1);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(matches!(
            s.recovery_report(),
            [Error::Corrupt {
                block: 2,
                offset: 0,
                ..
            }]
        ));
        let want: Vec<u64> = (1..=10).chain(21..=25).collect();
        assert_eq!(present(&s), want);
        assert!(dir.path().join("msgs/2.blk.corrupt").exists());
    }

    #[test]
    fn random_damage_never_panics() {
        let dir = TempDir::new("fuzzish");
        fill(&dir);
        let clean = fs::read(block(&dir, 2)).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200 {
            let mut b = clean.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 32) as u8;
            }
            let (recs, _, keep) = scan(&b, 2);
            assert!(keep <= b.len());
            assert!(recs.iter().all(|(o, r)| o + r.len <= keep));
        }
    }

    #[test]
    fn mostly_deleted_sealed_block_is_compacted_and_empty_one_deleted() {
        let dir = TempDir::new("compact");
        fill(&dir);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for q in 1..=6 {
            s.remove_msg(q).unwrap();
        }
        let len = fs::metadata(block(&dir, 1)).unwrap().len();
        assert_eq!(len, BLOCK_HDR as u64 + 4 * REC);
        s.compact(11).unwrap();
        assert!(!block(&dir, 1).exists());
        s.erase_msg(12).unwrap();
        let b2 = fs::read(block(&dir, 2)).unwrap();
        assert!(!b2.windows(20).any(|w| w == [12u8; 20]));
        s.stop().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(s.recovery_report().is_empty());
        let want: Vec<u64> = (11..=25).filter(|&q| q != 12).collect();
        assert_eq!(present(&s), want);
    }

    #[test]
    fn compressed_blocks_reopen_and_a_damaged_one_is_set_aside() {
        let dir = TempDir::new("snappy");
        let c = FileStoreConfig {
            compress: true,
            ..cfg()
        };
        let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
        for i in 1..=25u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        assert!(matches!(s.blocks[&1].data, Data::Packed));
        assert_eq!(s.load_msg(3).unwrap().msg, vec![3; 20]);
        s.stop().unwrap();
        drop(s);
        // Repetitive payloads compress.
        assert!(fs::metadata(block(&dir, 1)).unwrap().len() < BLOCK_HDR as u64 + 10 * REC);
        let s = FileStore::open(dir.path(), c.clone()).unwrap();
        assert!(s.recovery_report().is_empty());
        assert_eq!(present(&s), (1..=25).collect::<Vec<_>>());
        drop(s);
        patch(&block(&dir, 2), BLOCK_HDR as u64 + 3, |b| *b ^= 0x10);
        let s = FileStore::open(dir.path(), c).unwrap();
        assert!(matches!(
            s.recovery_report(),
            [Error::ChecksumMismatch { block: 2, .. }]
        ));
        let want: Vec<u64> = (1..=10).chain(21..=25).collect();
        assert_eq!(present(&s), want);
    }
}
