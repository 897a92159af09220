//! The file store: checksummed records in fixed-size block files.
//!
//! A store directory holds `msgs/<index>.blk` block files, replayed in index order on open.
//! Only the highest-numbered block (the active block) is appended to. Message records are
//! collected in memory and written with one `write` per [`Store::flush`] (the caller flushes
//! once per batch of messages, before it acknowledges them), or when 256 KiB are waiting;
//! every other change (markers of removals, purges, expiry) is written before its call
//! returns. A write that fails is cut off the file and every change whose record it carried is
//! undone in the index (see [`Store::flush`]); nothing of it is written later. When the next
//! message record would not fit in `block_size`, the active block is sealed, mapped
//! read-only (see `mmap`) and a new block is started. Removals never rewrite a block in place:
//! they append a small marker record (tombstone, floor, truncate) to the active block. A sealed
//! block that is mostly or wholly dead is compacted into a new file that replaces it by rename.
//!
//! The index (sequence → block and offset, per-subject sequence sets) lives in memory and is
//! rebuilt by replaying every record on open; `msgs/last.seq` keeps the last sequence where a
//! lost block tail cannot lower it. Every file call goes through `disk`, where tests inject
//! faults. With `compress` or an `encryption_key`, a sealed
//! block is packed (snappy-compressed and/or encrypted as a whole with ChaCha20-Poly1305 or
//! AES-256-GCM) and read by unpacking the whole block (a few are cached) instead of through a
//! map.
//!
//! ## Format
//!
//! All integers are little-endian. Each block file starts with a 56-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `NATSDBLK` |
//! | 8 | 1 | format version, `1` |
//! | 9 | 1 | flags: bit 0 snappy body, bit 1 AES-256-GCM, bit 2 packed, bit 3 ChaCha20-Poly1305; other bits zero, bits 1 and 3 never both set |
//! | 10 | 2 | reserved, zero |
//! | 12 | 4 | block index (u32, equals the file name) |
//! | 16 | 8 | first sequence: the stream's last sequence + 1 when the block was created (u64) |
//! | 24 | 8 | the stream's last timestamp when the block was created (i64 ns) |
//! | 32 | 12 | nonce: random per block file when encrypted, zero otherwise |
//! | 44 | 4 | reserved, zero |
//! | 48 | 8 | xxh3-64 of bytes 0..48 |
//!
//! followed by records:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | record length `n`, header to checksum inclusive (u32, at least 36) |
//! | 4 | 1 | kind: 0 message, 1 tombstone, 2 floor, 3 truncate |
//! | 5 | 1 | flags: bit 0 = body encrypted (message records of an encrypted block only) |
//! | 6 | 2 | subject length `s` (u16) |
//! | 8 | 8 | sequence (u64) |
//! | 16 | 8 | timestamp (i64 ns since the Unix epoch) |
//! | 24 | 4 | header block length `h` (u32) |
//! | 28 | s | subject |
//! | 28+s | h | header block |
//! | 28+s+h | n-36-s-h | payload |
//! | n-8 | 8 | xxh3-64 of bytes 0..n-8 |
//!
//! Both ciphers are AEADs with a 32-byte key, a 12-byte nonce and a 16-byte tag, used the
//! same way; the block's flag says which one (the key is the caller's, see
//! [`EncryptionKey`]). An encrypted record replaces bytes 28..n-8 with the block cipher's
//! encryption of subject ‖ headers ‖ payload (the same lengths) followed by its 16-byte tag;
//! the associated data is bytes 0..28 and the nonce is the block nonce with its first 8 bytes
//! XORed with the record's offset. The checksum covers the ciphertext, so damage is found (and
//! skipped) without the key; a record whose checksum holds but which does not decrypt means a
//! wrong key, and open fails.
//!
//! A packed block (flag bit 2; only ever sealed, written when [`FileStoreConfig::compress`]
//! or an encryption key is set) holds after the header a body and then an xxh3-64 of the body
//! (8 bytes). The body is the plain records, snappy-compressed (raw format) if bit 0 is set,
//! then encrypted under the header nonce with header bytes 0..48 as associated data if bit 1
//! (AES-256-GCM) or bit 3 (ChaCha20-Poly1305) is set. Offsets of records in the index are offsets in the unpacked layout
//! (header + records), as for a plain block.
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
//! message record it affects, and always keeps the newest floor or truncate marker (it alone
//! records where an emptied stream starts and the last timestamp after a truncate).
//!
//! The last-sequence file `msgs/last.seq` is 4144 bytes: two slots, at offsets 0 and 4096 (so
//! that a torn write of one sector cannot damage both), each:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `NATSDSEQ` |
//! | 8 | 1 | format version, `1` |
//! | 9 | 7 | reserved, zero |
//! | 16 | 8 | generation (u64), one more than the previous write's |
//! | 24 | 8 | the store's last sequence (u64) |
//! | 32 | 8 | its timestamp (i64 ns) |
//! | 40 | 8 | xxh3-64 of bytes 0..40 |
//!
//! The valid slot with the higher generation holds the value. It is overwritten in place (one
//! `pwrite` of a slot, which needs no new disk space) after the records of every write that
//! moved the last sequence, always into the slot that does not hold the last synced value;
//! it is synced when the store is opened, by [`Store::sync`] and [`Store::stop`], and written
//! and synced before a truncate marker lowers the last sequence (a truncate that fails puts the
//! old value back), so it never claims more than the blocks reached.
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
//! or a packed block whose body fails its checksum, is renamed to `<index>.blk.corrupt` and
//! skipped. An encrypted store opened without its key fails with [`Error::KeyRequired`], with
//! the other cipher with [`Error::CipherMismatch`], with another key with [`Error::Decrypt`],
//! before anything is changed on disk; it never appends to a block written before the open (a
//! cut tail would otherwise reuse record nonces).
//!
//! After the blocks, `last.seq` is read: a last sequence above the one the blocks replay to
//! (their tail was torn or cut after it was written) becomes the store's, with its timestamp;
//! the sequences between count as deleted (an empty store starts after it, as after a purge),
//! so none is assigned twice (nats-server likewise keeps the last sequence). A missing file (a
//! store written before it existed) leaves the blocks to decide; a damaged one is logged and
//! does the same.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::disk::{Disk, DiskFile};
use crate::index::{Bounds, Entry, Index, PurgePlan, SizeRule};
use crate::lastseq::LastSeqFile;
use crate::mmap::map_sealed;
use crate::{Error, Result, Store, StoreLimits, StoredMsg, StreamState, SubjectState};

const MAGIC: &[u8; 8] = b"NATSDBLK";
const VERSION: u8 = 1;
const BLOCK_HDR: usize = 56;
/// Bytes of the block header covered by its checksum (and used as AES-GCM associated data).
const BLOCK_HDR_SUMMED: usize = 48;
const TAG: usize = 16;
const REC_HDR: usize = 28;
const SUM: usize = 8;
const MIN_REC: usize = REC_HDR + SUM;

/// Block header flag: a packed block's body is snappy-compressed.
const FLAG_SNAPPY: u8 = 1;
/// Block header flag: message records (plain layout) or the body (packed) are AES-256-GCM
/// encrypted with nonces derived from the header nonce.
const FLAG_AES: u8 = 2;
/// Block header flag: the file is a packed block (header, body, checksum; see `pack`).
const FLAG_PACKED: u8 = 4;
/// Block header flag: as `FLAG_AES`, with ChaCha20-Poly1305.
const FLAG_CHACHA: u8 = 8;
/// The block header flags that name a cipher; at most one is set.
const FLAGS_CIPHER: u8 = FLAG_AES | FLAG_CHACHA;
/// Record flag: the record body (subject, headers, payload) is encrypted, followed by a tag.
const REC_ENCRYPTED: u8 = 1;
/// Unpacked blocks kept for reads.
const UNPACKED_CACHE: usize = 4;
/// Pending records past this many bytes are written without waiting for a flush.
const PENDING_MAX: usize = 256 * 1024;
/// Bytes read ahead from the active block's file per `pread`.
const READ_AHEAD: usize = 64 * 1024;
/// A pending buffer that grew past this is released after its write.
const PENDING_KEEP: usize = 1024 * 1024;

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
    /// Encrypt with the key's cipher: each message record of the active block, and each
    /// sealed block whole (a fresh random nonce per block, in its header). A store written with
    /// a key cannot be opened without it ([`Error::KeyRequired`]), with the other cipher
    /// ([`Error::CipherMismatch`]) or with another key ([`Error::Decrypt`]).
    pub encryption_key: Option<EncryptionKey>,
}

/// The AEAD cipher of an encrypted store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
    /// AES-256 in Galois/Counter Mode.
    Aes256Gcm,
}

impl Cipher {
    /// The block header flag naming this cipher.
    fn flag(self) -> u8 {
        match self {
            Cipher::ChaCha20Poly1305 => FLAG_CHACHA,
            Cipher::Aes256Gcm => FLAG_AES,
        }
    }

    /// The cipher named by a block header's flags; `None` for a plain block. Call only on
    /// flags `parse_header` accepted (at most one cipher bit).
    fn of_flags(flags: u8) -> Option<Cipher> {
        match flags & FLAGS_CIPHER {
            FLAG_CHACHA => Some(Cipher::ChaCha20Poly1305),
            FLAG_AES => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
}

impl std::fmt::Display for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cipher::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Cipher::Aes256Gcm => "AES-256-GCM",
        })
    }
}

/// A 256-bit key and the cipher it is used with. Its `Debug` output does not show the key.
#[derive(Clone)]
pub struct EncryptionKey {
    /// The cipher.
    pub cipher: Cipher,
    /// The key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({}, ..)", self.cipher)
    }
}

/// A keyed cipher instance.
enum Sealer {
    ChaCha(ChaCha20Poly1305),
    Aes(Box<Aes256Gcm>),
}

impl Sealer {
    fn new(k: &EncryptionKey) -> Self {
        match k.cipher {
            Cipher::ChaCha20Poly1305 => Sealer::ChaCha(ChaCha20Poly1305::new(&k.key.into())),
            Cipher::Aes256Gcm => Sealer::Aes(Box::new(Aes256Gcm::new(&k.key.into()))),
        }
    }

    fn cipher(&self) -> Cipher {
        match self {
            Sealer::ChaCha(_) => Cipher::ChaCha20Poly1305,
            Sealer::Aes(_) => Cipher::Aes256Gcm,
        }
    }

    /// Ciphertext followed by the 16-byte tag; fails only for inputs beyond the cipher's
    /// length limit.
    fn encrypt(&self, nonce: [u8; 12], p: Payload<'_, '_>) -> aes_gcm::aead::Result<Vec<u8>> {
        match self {
            Sealer::ChaCha(c) => c.encrypt(&nonce.into(), p),
            Sealer::Aes(c) => c.encrypt(&nonce.into(), p),
        }
    }

    /// The plaintext, or `Err` when the tag does not verify (wrong key or altered bytes).
    fn decrypt(&self, nonce: [u8; 12], p: Payload<'_, '_>) -> aes_gcm::aead::Result<Vec<u8>> {
        match self {
            Sealer::ChaCha(c) => c.decrypt(&nonce.into(), p),
            Sealer::Aes(c) => c.decrypt(&nonce.into(), p),
        }
    }
}

/// The sealer for a block with header `flags`: `None` for a plain block; an error when the
/// block is encrypted and no key, or a key for the other cipher, is configured.
fn block_sealer(flags: u8, block: u32, sealer: Option<&Sealer>) -> Result<Option<&Sealer>> {
    let Some(stored) = Cipher::of_flags(flags) else {
        return Ok(None);
    };
    let s = sealer.ok_or(Error::KeyRequired)?;
    if s.cipher() != stored {
        return Err(Error::CipherMismatch {
            block,
            stored,
            configured: s.cipher(),
        });
    }
    Ok(Some(s))
}

/// The cipher and block nonce that a block's encrypted records use.
#[derive(Clone, Copy)]
struct Seal<'a> {
    sealer: &'a Sealer,
    nonce: [u8; 12],
}

/// Per-record nonce: the block's random nonce with its first 8 bytes XORed with the record's
/// offset, unique within the block because offsets are (a block that lost its tail is never
/// appended to again while encrypted; see `FileStore::open`).
fn record_nonce(block_nonce: [u8; 12], offset: u64) -> [u8; 12] {
    let mut n = block_nonce;
    for (a, b) in n.iter_mut().zip(offset.to_le_bytes()) {
        *a ^= b;
    }
    n
}

fn fresh_nonce() -> Result<[u8; 12]> {
    let mut n = [0; 12];
    File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(n)
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            sync_always: false,
            limits: StoreLimits::default(),
            compress: false,
            encryption_key: None,
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

/// The active block's file and the records appended since its last write.
struct ActiveFile {
    file: DiskFile,
    /// Bytes of the block in the file; the records after them are in `pending`.
    written: u64,
    pending: Vec<u8>,
    /// Read-ahead of written bytes: (offset, bytes). Written bytes never change while the
    /// block is active (a failed write is cut off before anything else is read or written),
    /// so the window stays valid; readers going forward (consumers) take one `pread` per
    /// window instead of one per message.
    ahead: RefCell<(u64, Vec<u8>)>,
}

impl ActiveFile {
    fn new(file: DiskFile, written: u64) -> Self {
        ActiveFile {
            file,
            written,
            pending: Vec::new(),
            ahead: RefCell::new((0, Vec::new())),
        }
    }

    /// `len` written bytes at `off`, through the read-ahead window.
    fn read_written(&self, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut ahead = self.ahead.borrow_mut();
        let (start, bytes) = &mut *ahead;
        let hit = off
            .checked_sub(*start)
            .and_then(|rel| bytes.get(rel as usize..rel as usize + len));
        if let Some(b) = hit {
            return Ok(b.to_vec());
        }
        let want = (READ_AHEAD.max(len) as u64).min(self.written.saturating_sub(off)) as usize;
        if want < len {
            return Err(past_end());
        }
        bytes.resize(want, 0);
        if let Err(e) = self.file.read_exact_at(bytes, off) {
            bytes.clear();
            return Err(e);
        }
        *start = off;
        Ok(bytes[..len].to_vec())
    }

    /// Write the pending records (and fsync with `sync`). They stay pending until
    /// [`ActiveFile::commit`]; on failure the caller drops them with [`ActiveFile::discard`].
    fn write_pending(&mut self, sync: bool) -> std::io::Result<()> {
        self.file.append(&self.pending)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The pending records were written: they are part of the file now.
    fn commit(&mut self) {
        self.written += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > PENDING_KEEP {
            self.pending = Vec::new();
        }
    }

    /// Drop the pending records.
    fn discard(&mut self) {
        self.pending.clear();
    }

    /// Cut the file back to its written bytes (whatever a failed write left after them), and
    /// fsync the cut with `sync`, so records written before a failed fsync cannot come back.
    fn cut(&self, sync: bool) -> std::io::Result<()> {
        self.file.set_len(self.written)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

enum Data {
    Active(ActiveFile),
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
    /// Highest truncate marker in the block (0 if none): replayed on an emptier index it
    /// claims `last_seq >= max_trunc`, so a later truncate below it must stay.
    max_trunc: u64,
    /// Header nonce (zero when not encrypted).
    nonce: [u8; 12],
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
            Data::Active(a) => match (off as u64).checked_sub(a.written) {
                // A record is either wholly written or wholly pending.
                Some(p) => a
                    .pending
                    .get(p as usize..p as usize + len)
                    .map(Cow::Borrowed)
                    .ok_or_else(past_end),
                None => a.read_written(off as u64, len).map(Cow::Owned),
            },
        }
    }
}

/// A decoded record borrowing the block bytes.
struct Rec<'a> {
    kind: u8,
    seq: u64,
    ts: i64,
    slen: usize,
    hlen: usize,
    /// Subject, headers and payload, decrypted when the record was encrypted.
    body: Cow<'a, [u8]>,
    len: usize,
}

impl Rec<'_> {
    fn subject(&self) -> &[u8] {
        &self.body[..self.slen]
    }
    fn hdr(&self) -> &[u8] {
        &self.body[self.slen..self.slen + self.hlen]
    }
    fn msg(&self) -> &[u8] {
        &self.body[self.slen + self.hlen..]
    }
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
fn decode<'a>(b: &'a [u8], block: u32, offset: u64, seal: Option<Seal<'_>>) -> Result<Rec<'a>> {
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
    if kind > KIND_TRUNCATE || b[5] & !REC_ENCRYPTED != 0 {
        return Err(corrupt("unknown record kind or flags"));
    }
    let encrypted = b[5] & REC_ENCRYPTED != 0;
    let slen = u16::from_le_bytes([b[6], b[7]]) as usize;
    let hlen = u32_at(b, 24) as usize;
    let tag = if encrypted { TAG } else { 0 };
    if REC_HDR + slen + hlen + tag > len - SUM {
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
    let raw = &b[REC_HDR..len - SUM];
    let body = if encrypted {
        let seal = seal.ok_or(Error::KeyRequired)?;
        let payload = Payload {
            msg: raw,
            aad: &b[..REC_HDR],
        };
        let plain = seal
            .sealer
            .decrypt(record_nonce(seal.nonce, offset), payload)
            .map_err(|_| Error::Decrypt { block, offset })?;
        if plain.len() < slen + hlen {
            return Err(corrupt("decrypted body shorter than its fields"));
        }
        Cow::Owned(plain)
    } else {
        Cow::Borrowed(raw)
    };
    Ok(Rec {
        kind,
        seq: u64_at(b, 8),
        ts: u64_at(b, 16) as i64,
        slen,
        hlen,
        body,
        len,
    })
}

/// Encoded size of a record; message records of an encrypted block carry a tag.
fn record_len(kind: u8, encrypted: bool, subject: &[u8], hdr: &[u8], msg: &[u8]) -> usize {
    let tag = if encrypted && kind == KIND_MSG {
        TAG
    } else {
        0
    };
    MIN_REC + subject.len() + hdr.len() + msg.len() + tag
}

/// Append one encoded record to `out`; `seal` with the record's offset in its block encrypts
/// a message record's body.
#[allow(clippy::too_many_arguments)]
fn encode(
    out: &mut Vec<u8>,
    kind: u8,
    seq: u64,
    ts: i64,
    subject: &[u8],
    hdr: &[u8],
    msg: &[u8],
    seal: Option<(Seal<'_>, u64)>,
) -> Result<()> {
    let slen = u16::try_from(subject.len()).map_err(|_| Error::TooLarge { what: "subject" })?;
    let hlen = u32::try_from(hdr.len()).map_err(|_| Error::TooLarge { what: "headers" })?;
    let seal = seal.filter(|_| kind == KIND_MSG);
    let total = record_len(kind, seal.is_some(), subject, hdr, msg);
    let len = u32::try_from(total).map_err(|_| Error::TooLarge { what: "message" })?;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.push(if seal.is_some() { REC_ENCRYPTED } else { 0 });
    out.extend_from_slice(&slen.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&hlen.to_le_bytes());
    if let Some((seal, offset)) = seal {
        let mut plain = Vec::with_capacity(subject.len() + hdr.len() + msg.len());
        plain.extend_from_slice(subject);
        plain.extend_from_slice(hdr);
        plain.extend_from_slice(msg);
        let payload = Payload {
            msg: &plain,
            aad: &out[start..start + REC_HDR],
        };
        let sealed = seal
            .sealer
            .encrypt(record_nonce(seal.nonce, offset), payload)
            .map_err(|_| Error::TooLarge { what: "message" })?;
        out.extend_from_slice(&sealed);
    } else {
        out.extend_from_slice(subject);
        out.extend_from_slice(hdr);
        out.extend_from_slice(msg);
    }
    let sum = xxh3_64(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
    assert_eq!(out.len() - start, total);
    Ok(())
}

fn block_header(index: u32, first: u64, ts: i64, flags: u8, nonce: [u8; 12]) -> [u8; BLOCK_HDR] {
    let mut h = [0u8; BLOCK_HDR];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[9] = flags;
    h[12..16].copy_from_slice(&index.to_le_bytes());
    h[16..24].copy_from_slice(&first.to_le_bytes());
    h[24..32].copy_from_slice(&ts.to_le_bytes());
    h[32..44].copy_from_slice(&nonce);
    let sum = xxh3_64(&h[..BLOCK_HDR_SUMMED]);
    h[BLOCK_HDR_SUMMED..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// A parsed block header.
struct Header {
    first: u64,
    ts: i64,
    flags: u8,
    nonce: [u8; 12],
}

fn parse_header(b: &[u8], index: u32) -> Result<Header> {
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
    let expected = u64_at(b, BLOCK_HDR_SUMMED);
    let got = xxh3_64(&b[..BLOCK_HDR_SUMMED]);
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
    if b[9] & !(FLAG_SNAPPY | FLAG_AES | FLAG_PACKED | FLAG_CHACHA) != 0 {
        return Err(corrupt("unknown block flags"));
    }
    if b[9] & FLAGS_CIPHER == FLAGS_CIPHER {
        return Err(corrupt("two cipher flags"));
    }
    let mut nonce = [0; 12];
    nonce.copy_from_slice(&b[32..44]);
    Ok(Header {
        first: u64_at(b, 16),
        ts: u64_at(b, 24) as i64,
        flags: b[9],
        nonce,
    })
}

/// A packed block file: header, body, xxh3-64 of the body. The body is the records,
/// snappy-compressed (raw format) if the header says so, then encrypted with the header's
/// cipher under the header nonce with the summed header bytes as associated data if the
/// header names one.
fn pack(header: &[u8; BLOCK_HDR], records: &[u8], sealer: Option<&Sealer>) -> Result<Vec<u8>> {
    let flags = header[9];
    let mut body = if flags & FLAG_SNAPPY != 0 {
        snap::raw::Encoder::new()
            .compress_vec(records)
            .map_err(|_| Error::TooLarge { what: "block" })?
    } else {
        records.to_vec()
    };
    if let Some(sealer) = block_sealer(flags, u32_at(header, 12), sealer)? {
        let mut nonce = [0; 12];
        nonce.copy_from_slice(&header[32..44]);
        let payload = Payload {
            msg: &body,
            aad: &header[..BLOCK_HDR_SUMMED],
        };
        body = sealer
            .encrypt(nonce, payload)
            .map_err(|_| Error::TooLarge { what: "block" })?;
    }
    let mut out = Vec::with_capacity(BLOCK_HDR + body.len() + SUM);
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    Ok(out)
}

/// The raw layout (header + records) of a packed block file, so record offsets are the same
/// as in an unpacked block.
fn unpack(file: &[u8], index: u32, sealer: Option<&Sealer>) -> Result<Vec<u8>> {
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
    let flags = file[9];
    let decrypted;
    let body = if let Some(sealer) = block_sealer(flags, index, sealer)? {
        let mut nonce = [0; 12];
        nonce.copy_from_slice(&file[32..44]);
        let payload = Payload {
            msg: body,
            aad: &file[..BLOCK_HDR_SUMMED],
        };
        decrypted = sealer.decrypt(nonce, payload).map_err(|_| Error::Decrypt {
            block: index,
            offset: BLOCK_HDR as u64,
        })?;
        &decrypted[..]
    } else {
        body
    };
    if flags & FLAG_SNAPPY == 0 {
        let mut out = Vec::with_capacity(BLOCK_HDR + body.len());
        out.extend_from_slice(&file[..BLOCK_HDR]);
        out.extend_from_slice(body);
        return Ok(out);
    }
    let n = snap::raw::decompress_len(body).map_err(|_| corrupt())?;
    let mut out = vec![0; BLOCK_HDR + n];
    out[..BLOCK_HDR].copy_from_slice(&file[..BLOCK_HDR]);
    snap::raw::Decoder::new()
        .decompress(body, &mut out[BLOCK_HDR..])
        .map_err(|_| corrupt())?;
    Ok(out)
}

/// Records of a block: the valid ones with their offsets, the problems found, and the length
/// to keep (shorter than the input when the tail is damaged).
type Scan<'a> = (Vec<(usize, Rec<'a>)>, Vec<Error>, usize);

/// Check every record of a block's bytes. A missing or wrong key is an error, not damage: the
/// bytes passed their checksum, so nothing may be cut.
fn scan<'a>(b: &'a [u8], index: u32, seal: Option<Seal<'_>>) -> Result<Scan<'a>> {
    let mut recs = Vec::new();
    let mut problems = Vec::new();
    let mut off = BLOCK_HDR;
    while off < b.len() {
        match decode(&b[off..], index, off as u64, seal) {
            Ok(r) => {
                off += r.len;
                recs.push((off - r.len, r));
            }
            Err(
                e @ (Error::KeyRequired | Error::Decrypt { .. } | Error::CipherMismatch { .. }),
            ) => return Err(e),
            Err(e) => {
                problems.push(e);
                let next = (off + 1..b.len().saturating_sub(MIN_REC - 1))
                    .find(|&p| decode(&b[p..], index, p as u64, seal).is_ok());
                match next {
                    Some(p) => off = p,
                    None => return Ok((recs, problems, off)),
                }
            }
        }
    }
    Ok((recs, problems, off))
}

/// A [`Store`] of checksummed records in block files under a directory.
///
/// Bytes are counted as nats-server 2.9.10 counts file streams: 22 + subject + payload + 8,
/// plus 4 + headers when the message has headers. One `FileStore` owns its directory; another
/// process writing to it is outside the contract.
pub struct FileStore {
    dir: PathBuf,
    cfg: FileStoreConfig,
    disk: Disk,
    idx: Index<FileEntry>,
    blocks: BTreeMap<u32, Block>,
    active: u32,
    buf: Vec<u8>,
    report: Vec<Error>,
    closed: bool,
    unpacked: RefCell<VecDeque<(u32, Arc<[u8]>)>>,
    sealer: Option<Sealer>,
    /// The last sequence and its timestamp, kept where a lost block tail cannot lower them.
    last: LastSeqFile,
    /// The changes whose records are pending in the active block, oldest first: a failed
    /// write undoes them newest first (see [`Store::flush`]).
    undo: Vec<Undo>,
    /// A failed write could not be cut off the active block's file: nothing more is written
    /// until the cut succeeds.
    cut_pending: bool,
    /// (block, offset) of the newest floor or truncate marker. Compaction keeps it even when
    /// no earlier message needs it: it alone says where an emptied stream starts and when its
    /// last message was, which block headers cannot.
    bounds_marker: Option<(u32, usize)>,
}

/// A change whose record is still pending, with what undoing it needs.
enum Undo {
    /// A message was stored in block `block`, whose sequence range was `seqs` before.
    Stored {
        seq: u64,
        block: u32,
        seqs: (u64, u64),
        bounds: Bounds,
    },
    /// A message was removed (by a limit or its age when `evicted`).
    Removed {
        seq: u64,
        entry: FileEntry,
        evicted: bool,
        bounds: Bounds,
    },
    /// A floor or truncate marker went to block `block` (whose highest floor and truncate
    /// were `marks` before) and removed `removed`.
    Marker {
        removed: Vec<(u64, FileEntry)>,
        block: u32,
        marks: (u64, u64),
        bounds_marker: Option<(u32, usize)>,
        bounds: Bounds,
    },
}

impl FileStore {
    /// Open (or create) the store in `dir`, replaying and checking every block.
    pub fn open(dir: impl AsRef<Path>, cfg: FileStoreConfig) -> Result<Self> {
        Self::open_on(Disk::default(), dir.as_ref(), cfg)
    }

    /// Open with every file call going through `faults`.
    #[cfg(test)]
    pub(crate) fn open_with_faults(
        dir: &Path,
        cfg: FileStoreConfig,
        faults: Arc<crate::faults::Faults>,
    ) -> Result<Self> {
        Self::open_on(
            Disk {
                faults: Some(faults),
            },
            dir,
            cfg,
        )
    }

    /// Stop without writing anything more, as a killed process would.
    #[cfg(test)]
    pub(crate) fn kill(mut self) {
        self.closed = true;
    }

    fn open_on(disk: Disk, dir: &Path, cfg: FileStoreConfig) -> Result<Self> {
        let dir = dir.join("msgs");
        fs::create_dir_all(&dir)?;
        let mut found: Vec<u32> = Vec::new();
        for ent in fs::read_dir(&dir)? {
            let name = ent?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".blk").and_then(|n| n.parse().ok()) {
                found.push(n);
            } else if name.ends_with(".blk.tmp") {
                // A compaction interrupted before its rename; the original block is intact.
                disk.remove(&dir.join(name))?;
            }
        }
        found.sort_unstable();
        let (last, held) = LastSeqFile::open(&disk, &dir)?;
        let mut fs_ = FileStore {
            dir,
            disk,
            sealer: cfg.encryption_key.as_ref().map(Sealer::new),
            cfg,
            idx: Index::new(SizeRule::File),
            blocks: BTreeMap::new(),
            active: 0,
            buf: Vec::new(),
            report: Vec::new(),
            closed: false,
            unpacked: RefCell::new(VecDeque::new()),
            last,
            undo: Vec::new(),
            cut_pending: false,
            bounds_marker: None,
        };
        let last_block = found.last().copied();
        for n in found {
            fs_.replay_block(n, Some(n) == last_block)?;
        }
        if let Some((seq, ts)) = held {
            if seq > fs_.idx.last_seq {
                log::warn!(
                    "filestore {}: blocks end at sequence {}, the store had reached {seq}; \
                     the sequences between count as deleted",
                    fs_.dir.display(),
                    fs_.idx.last_seq
                );
                fs_.idx.advance_last(seq, ts);
            }
        }
        match fs_.blocks.last_key_value() {
            // An encrypted store never appends to a block written before this open: its tail
            // may have been cut, and appending there again would reuse record nonces.
            Some((&n, b)) if matches!(b.data, Data::Active(_)) && fs_.sealer.is_some() => {
                fs_.active = n;
                fs_.roll()?;
            }
            Some((&n, b)) if matches!(b.data, Data::Active(_)) => fs_.active = n,
            Some((&n, _)) => fs_.new_block(n + 1)?,
            None => fs_.new_block(1)?,
        }
        // What the blocks proved is made durable before anything compacts them away.
        // A store that cannot write it (a full disk) still opens; the next write retries.
        let (last, ts) = (fs_.idx.last_seq, fs_.idx.last_ts);
        let held = fs_.last.write(&fs_.disk, last, ts);
        if let Err(e) = held.and_then(|()| fs_.last.sync()) {
            log::warn!(
                "filestore {}: writing the last sequence: {e}",
                fs_.dir.display()
            );
        }
        let limits = fs_.cfg.limits;
        fs_.change(|s| {
            s.enforce(None, &limits)?;
            s.flush_active()
        })?;
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
        let mut bytes = self.disk.read(&path)?;
        let sealer = self.sealer.as_ref();
        let parsed = parse_header(&bytes, n).and_then(|h| {
            block_sealer(h.flags, n, sealer)?;
            if h.flags & FLAG_PACKED != 0 {
                bytes = unpack(&bytes, n, sealer)?;
            }
            Ok(h)
        });
        let (hdr_first, hdr_ts, packed, nonce) = match parsed {
            Ok(h) => (h.first, h.ts, h.flags & FLAG_PACKED != 0, h.nonce),
            Err(
                e @ (Error::KeyRequired | Error::Decrypt { .. } | Error::CipherMismatch { .. }),
            ) => return Err(e),
            Err(e) => {
                log::warn!("filestore: {e}; renaming {} aside", path.display());
                self.report.push(e);
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                self.disk.rename(&path, Path::new(&aside))?;
                return Ok(());
            }
        };
        let seal = sealer.map(|sealer| Seal { sealer, nonce });
        let (recs, problems, keep) = scan(&bytes, n, seal)?;
        for p in problems {
            log::warn!("filestore: {p}");
            self.report.push(p);
        }
        if keep < bytes.len() && !packed {
            log::warn!(
                "filestore: block {n}: truncating damaged tail at offset {keep} ({} bytes)",
                bytes.len() - keep
            );
            let f = self.disk.open_append(&path)?;
            f.set_len(keep as u64)?;
            f.sync_data()?;
        }
        self.blocks.insert(
            n,
            Block {
                path: path.clone(),
                hdr_first,
                hdr_ts,
                data: Data::Packed,
                len: keep as u64,
                msg_records: 0,
                live: 0,
                min_seq: 0,
                max_seq: 0,
                max_floor: 0,
                max_trunc: 0,
                nonce,
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
            Data::Active(ActiveFile::new(self.disk.open_append(&path)?, keep as u64))
        } else {
            Data::Sealed(map_sealed(self.disk.open_read(&path)?.file())?)
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
                let subject = String::from_utf8_lossy(r.subject());
                let e = FileEntry {
                    subject: self.idx.intern(&subject),
                    ts: r.ts,
                    size: SizeRule::File.size(&subject, r.hdr(), r.msg()),
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
                self.bounds_marker = Some((n, off));
            }
            _ => {
                if let Some(b) = self.blocks.get_mut(&n) {
                    b.max_trunc = b.max_trunc.max(r.seq);
                }
                let removed = self.idx.truncate(r.seq, r.ts);
                self.dead_all(&removed);
                self.bounds_marker = Some((n, off));
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

    /// Start block `n` as the active block. A block file left half-written by a failure is
    /// removed again, so the next try starts over.
    fn new_block(&mut self, n: u32) -> Result<()> {
        let path = self.block_path(n);
        let hdr_first = self.idx.last_seq + 1;
        let hdr_ts = self.idx.last_ts;
        let (flags, nonce) = match &self.sealer {
            Some(s) => (s.cipher().flag(), fresh_nonce()?),
            None => (0, [0; 12]),
        };
        let mut f = self.disk.create_append(&path)?;
        let mut r = f.append(&block_header(n, hdr_first, hdr_ts, flags, nonce));
        if r.is_ok() && self.cfg.sync_always {
            r = f.sync_data().and_then(|()| self.disk.sync_dir(&self.dir));
        }
        if let Err(e) = r {
            drop(f);
            if let Err(e) = self.disk.remove(&path) {
                log::warn!("filestore: removing {}: {e}", path.display());
            }
            return Err(e.into());
        }
        self.blocks.insert(
            n,
            Block {
                path,
                hdr_first,
                hdr_ts,
                data: Data::Active(ActiveFile::new(f, BLOCK_HDR as u64)),
                len: BLOCK_HDR as u64,
                msg_records: 0,
                live: 0,
                min_seq: 0,
                max_seq: 0,
                max_floor: 0,
                max_trunc: 0,
                nonce,
            },
        );
        self.active = n;
        Ok(())
    }

    /// Start the next block when the active one was sealed and starting its successor failed.
    fn ensure_active(&mut self) -> Result<()> {
        match self.blocks.get(&self.active).map(|b| &b.data) {
            Some(Data::Active(_)) => Ok(()),
            _ => self.new_block(self.active + 1),
        }
    }

    /// Seal the active block (write it, fsync it, map it read-only) and start the next one.
    /// Packing the sealed block (compression, encryption) is best effort: a block that could
    /// not be packed stays readable as it is.
    fn roll(&mut self) -> Result<()> {
        let n = self.active;
        // Written and fsynced as one write: records whose fsync failed are rolled back, never
        // left written but not durable behind a later flush that has nothing to write.
        self.write_pending(true)?;
        if let Some(b) = self.blocks.get_mut(&n) {
            if let Data::Active(a) = &b.data {
                a.file.sync_data()?;
                b.data = Data::Sealed(map_sealed(a.file.file())?);
            }
        }
        self.new_block(n + 1)?;
        if self.cfg.compress || self.sealer.is_some() {
            if let Err(e) = self.rewrite(n) {
                log::warn!("filestore: packing block {n}: {e}; it stays unpacked");
            }
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
        let b: Arc<[u8]> = unpack(&self.disk.read(&path)?, n, self.sealer.as_ref())?.into();
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

    fn active_file(&mut self) -> Option<&mut ActiveFile> {
        match &mut self.blocks.get_mut(&self.active)?.data {
            Data::Active(a) => Some(a),
            _ => None,
        }
    }

    fn seal(&self, b: &Block) -> Option<Seal<'_>> {
        self.sealer.as_ref().map(|sealer| Seal {
            sealer,
            nonce: b.nonce,
        })
    }

    /// Encode and append one record to the active block's pending records. A message record
    /// that would not fit in `block_size` starts a new block first; marker records never do
    /// (they are small), so only the first record of an operation can write earlier ones.
    /// Returns (block, offset, record length).
    fn append(
        &mut self,
        kind: u8,
        seq: u64,
        ts: i64,
        rec: (&[u8], &[u8], &[u8]),
    ) -> Result<(u32, u64, u32)> {
        let (subject, hdr, msg) = rec;
        let len = record_len(kind, self.sealer.is_some(), subject, hdr, msg) as u64;
        self.ensure_active()?;
        let (blen, has_records) = {
            let b = self.active_block()?;
            (b.len, b.len > BLOCK_HDR as u64)
        };
        if kind == KIND_MSG && has_records && blen + len > self.cfg.block_size {
            self.roll()?;
        }
        let n = self.active;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let encoded = match self.blocks.get(&n) {
            Some(b) => {
                let seal = self.seal(b).map(|s| (s, b.len));
                encode(&mut buf, kind, seq, ts, subject, hdr, msg, seal)
            }
            None => Err(Error::Corrupt {
                block: n,
                offset: 0,
                reason: "active block missing",
            }),
        };
        let res = encoded.and_then(|()| self.push_pending(&buf));
        self.buf = buf;
        let off = res?;
        Ok((n, off, len as u32))
    }

    /// Add encoded bytes to the end of the active block; returns their offset. They are
    /// written at the next flush.
    fn push_pending(&mut self, buf: &[u8]) -> Result<u64> {
        let b = self.active_block()?;
        let off = b.len;
        let Data::Active(a) = &mut b.data else {
            return Err(Error::Io(std::io::Error::other("active block is sealed")));
        };
        a.pending.extend_from_slice(buf);
        b.len += buf.len() as u64;
        Ok(off)
    }

    /// Refuse when closed; first cut off what a failed write left, if that failed before.
    fn writable(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        if self.cut_pending {
            let sync = self.cfg.sync_always;
            if let Some(a) = self.active_file() {
                a.cut(sync)?;
            }
            self.cut_pending = false;
        }
        Ok(())
    }

    /// Run a change; if it fails, every pending change (its own included) is rolled back.
    fn change<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let r = f(self);
        if r.is_err() {
            self.rollback();
        }
        r
    }

    /// Write the active block's pending records (fsync them with `sync_always`).
    fn flush_active(&mut self) -> Result<()> {
        self.write_pending(self.cfg.sync_always)
    }

    /// Write the pending records (fsync them with `sync`), then the last sequence. When the
    /// records cannot be written, everything pending is rolled back.
    fn write_pending(&mut self, sync: bool) -> Result<()> {
        let Some(a) = self.active_file() else {
            return Ok(());
        };
        if a.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = a.write_pending(sync) {
            self.rollback();
            return Err(e.into());
        }
        a.commit();
        self.undo.clear();
        // The records are the truth; the last-sequence file only keeps a torn tail from
        // lowering the last sequence. Failing to update it fails nothing: the file still holds
        // a lower sequence (its synced slot is never overwritten), and the next write retries.
        if let Err(e) = self
            .last
            .write(&self.disk, self.idx.last_seq, self.idx.last_ts)
        {
            log::warn!(
                "filestore {}: writing the last sequence: {e}",
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Undo every change whose record is pending, newest first, drop the records and cut the
    /// active block's file back to its written bytes. A cut that fails is retried before
    /// anything else is written.
    fn rollback(&mut self) {
        while let Some(u) = self.undo.pop() {
            self.undo_one(u);
        }
        let sync = self.cfg.sync_always;
        let n = self.active;
        let Some(b) = self.blocks.get_mut(&n) else {
            return;
        };
        let Data::Active(a) = &mut b.data else {
            return;
        };
        if a.pending.is_empty() && b.len == a.written {
            return;
        }
        a.discard();
        b.len = a.written;
        if let Err(e) = a.cut(sync) {
            log::error!(
                "filestore {}: cutting a failed write off block {n}: {e}",
                self.dir.display()
            );
            self.cut_pending = true;
        }
    }

    fn undo_one(&mut self, u: Undo) {
        match u {
            Undo::Stored {
                seq,
                block,
                seqs,
                bounds,
            } => {
                self.idx.remove(seq);
                if let Some(b) = self.blocks.get_mut(&block) {
                    b.msg_records -= 1;
                    b.live -= 1;
                    (b.min_seq, b.max_seq) = seqs;
                }
                self.idx.set_bounds(bounds);
            }
            Undo::Removed {
                seq,
                entry,
                evicted,
                bounds,
            } => {
                self.restore(seq, entry);
                if evicted {
                    self.idx.unevict(seq);
                }
                self.idx.set_bounds(bounds);
            }
            Undo::Marker {
                removed,
                block,
                marks,
                bounds_marker,
                bounds,
            } => {
                for (seq, e) in removed {
                    self.restore(seq, e);
                }
                if let Some(b) = self.blocks.get_mut(&block) {
                    (b.max_floor, b.max_trunc) = marks;
                }
                self.bounds_marker = bounds_marker;
                self.idx.set_bounds(bounds);
            }
        }
    }

    /// Put a removed message back into the index.
    fn restore(&mut self, seq: u64, e: FileEntry) {
        if let Some(b) = self.blocks.get_mut(&e.block) {
            b.live += 1;
        }
        self.idx.insert(seq, e);
    }

    /// Append a floor or truncate marker and apply it: `removed` are the messages it takes.
    fn bounds_change(
        &mut self,
        kind: u8,
        seq: u64,
        ts: i64,
        apply: impl FnOnce(&mut Index<FileEntry>) -> Vec<(u64, FileEntry)>,
    ) -> Result<usize> {
        let (bounds, bounds_marker) = (self.idx.bounds(), self.bounds_marker);
        let (n, off, _) = self.append(kind, seq, ts, (b"", b"", b""))?;
        let marks = match self.blocks.get_mut(&n) {
            Some(b) => {
                let marks = (b.max_floor, b.max_trunc);
                if kind == KIND_FLOOR {
                    b.max_floor = b.max_floor.max(seq);
                } else {
                    b.max_trunc = b.max_trunc.max(seq);
                }
                marks
            }
            None => (0, 0),
        };
        self.bounds_marker = Some((n, off as usize));
        let removed = apply(&mut self.idx);
        self.dead_all(&removed);
        let count = removed.len();
        self.undo.push(Undo::Marker {
            removed,
            block: n,
            marks,
            bounds_marker,
            bounds,
        });
        Ok(count)
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
        let r = decode(&bytes, e.block, u64::from(e.offset), self.seal(b))?;
        if r.kind != KIND_MSG || r.seq != seq {
            return Err(Error::Corrupt {
                block: e.block,
                offset: u64::from(e.offset),
                reason: "index points at a different record",
            });
        }
        Ok(StoredMsg {
            subject: String::from_utf8_lossy(r.subject()).into_owned(),
            hdr: r.hdr().to_vec(),
            msg: r.msg().to_vec(),
            seq,
            ts: r.ts,
        })
    }

    /// Append a tombstone for `seq` and take it out of the index; `None` when it is not
    /// stored. `evicted` notes it for [`Store::take_evicted`].
    fn remove_one(&mut self, seq: u64, evicted: bool) -> Result<Option<u32>> {
        if self.idx.msgs.get(&seq).is_none() {
            return Ok(None);
        }
        let bounds = self.idx.bounds();
        self.append(KIND_TOMBSTONE, seq, 0, (b"", b"", b""))?;
        if evicted {
            self.idx.note_evicted(seq);
        }
        let Some(entry) = self.idx.remove(seq) else {
            return Ok(None);
        };
        let block = entry.block;
        self.dead(block, 1);
        self.undo.push(Undo::Removed {
            seq,
            entry,
            evicted,
            bounds,
        });
        Ok(Some(block))
    }

    fn enforce(&mut self, subject: Option<&str>, limits: &StoreLimits) -> Result<()> {
        let mut touched = false;
        while let Some(v) = self.idx.victim(limits, subject) {
            self.remove_one(v, true)?;
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
        self.compact_blocks(&candidates)
    }

    /// Write what is pending (the markers that make the blocks' messages dead must be on disk
    /// before a rewrite drops the messages), then rewrite `blocks`. A rewrite that fails is
    /// logged and left for a later sweep: the removals are written either way.
    fn compact_blocks(&mut self, blocks: &[u32]) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        self.flush_active()?;
        for &n in blocks {
            if let Err(e) = self.rewrite(n) {
                log::warn!(
                    "filestore {}: compacting block {n}: {e}",
                    self.dir.display()
                );
            }
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
                _ => {
                    (has && b.max_seq > seq)
                        || b.hdr_first > seq + 1
                        || b.max_floor > seq + 1
                        || b.max_trunc > seq
                }
            }
        })
    }

    /// Write a sealed block's new contents to a temporary file and fsync it.
    fn write_block_file(&self, tmp: &Path, bytes: &[u8]) -> Result<()> {
        let mut f = self.disk.create(tmp)?;
        f.append(bytes)?;
        f.sync_data()?;
        Ok(())
    }

    /// Rewrite sealed block `n` with only its live messages and needed markers, replacing it
    /// by rename; delete it when nothing remains. Every message it drops must already be
    /// dead on disk (its marker written). Until the rename nothing is changed; after it, the
    /// index follows the new file (if the new file cannot be mapped, the old map, which still
    /// holds the old file, keeps serving reads).
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
        let (recs, _, _) = scan(bytes, n, self.seal(b))?;
        let mut out = Vec::with_capacity(b.len as usize);
        out.extend_from_slice(&[0; BLOCK_HDR]);
        let mut hdr_first = b.hdr_first;
        let mut moved: Vec<(u64, u32, u32)> = Vec::new();
        let mut bounds_moved = None;
        let mut kept = Block {
            path: b.path.clone(),
            hdr_first: 0,
            hdr_ts: b.hdr_ts,
            data: Data::Packed,
            len: 0,
            msg_records: 0,
            live: 0,
            min_seq: 0,
            max_seq: 0,
            max_floor: 0,
            max_trunc: 0,
            nonce: b.nonce,
        };
        for (off, r) in &recs {
            if r.kind == KIND_TRUNCATE && r.seq < hdr_first {
                // The truncate undid this header's claim about the last sequence; whether or
                // not the marker is kept, the rewritten header must not claim more, and what it
                // claims is the truncate's last sequence and timestamp.
                hdr_first = r.seq + 1;
                kept.hdr_ts = r.ts;
            }
            let keep = match r.kind {
                KIND_MSG => self
                    .idx
                    .msgs
                    .get(&r.seq)
                    .is_some_and(|e| e.block == n && e.offset as usize == *off),
                // A floor kept earlier in this block may claim more than the truncate allows.
                _ if self.bounds_marker == Some((n, *off)) => {
                    bounds_moved = Some(out.len());
                    true
                }
                KIND_TRUNCATE => kept.max_floor > r.seq + 1 || self.marker_needed(n, r.kind, r.seq),
                _ => self.marker_needed(n, r.kind, r.seq),
            };
            if !keep {
                continue;
            }
            if r.kind == KIND_FLOOR {
                kept.max_floor = kept.max_floor.max(r.seq);
            }
            if r.kind == KIND_TRUNCATE {
                kept.max_trunc = kept.max_trunc.max(r.seq);
            }
            if r.kind == KIND_MSG {
                hdr_first = hdr_first.min(r.seq);
                let len = record_len(KIND_MSG, false, r.subject(), r.hdr(), r.msg()) as u32;
                moved.push((r.seq, out.len() as u32, len));
                kept.note_msg(r.seq);
            }
            encode(
                &mut out,
                r.kind,
                r.seq,
                r.ts,
                r.subject(),
                r.hdr(),
                r.msg(),
                None,
            )?;
        }
        let path = b.path.clone();
        self.forget_unpacked(n);
        if out.len() == BLOCK_HDR {
            self.disk.remove(&path)?;
            self.blocks.remove(&n);
            return Ok(());
        }
        let compress = self.cfg.compress;
        let packed = compress || self.sealer.is_some();
        let mut flags = 0;
        if compress {
            flags |= FLAG_SNAPPY | FLAG_PACKED;
        }
        if let Some(s) = &self.sealer {
            flags |= s.cipher().flag() | FLAG_PACKED;
            kept.nonce = fresh_nonce()?;
        }
        let header = block_header(n, hdr_first, kept.hdr_ts, flags, kept.nonce);
        out[..BLOCK_HDR].copy_from_slice(&header);
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = if packed {
            Cow::Owned(pack(&header, &out[BLOCK_HDR..], self.sealer.as_ref())?)
        } else {
            Cow::Borrowed(&out[..])
        };
        let written = self
            .write_block_file(&tmp, &file)
            .and_then(|()| Ok(self.disk.rename(&tmp, &path)?));
        if let Err(e) = written {
            if let Err(e) = self.disk.remove(&tmp) {
                log::warn!("filestore: removing {}: {e}", tmp.display());
            }
            return Err(e);
        }
        if self.cfg.sync_always {
            if let Err(e) = self.disk.sync_dir(&self.dir) {
                log::warn!("filestore {}: directory sync: {e}", self.dir.display());
            }
        }
        kept.data = if packed {
            Data::Packed
        } else {
            match self
                .disk
                .open_read(&path)
                .and_then(|f| map_sealed(f.file()))
            {
                Ok(map) => Data::Sealed(map),
                Err(e) => {
                    log::warn!("filestore: mapping rewritten {}: {e}", path.display());
                    return Ok(());
                }
            }
        };
        kept.hdr_first = hdr_first;
        kept.len = out.len() as u64;
        // Records in a rewritten block are plain (a packed block is encrypted whole), so an
        // encrypted record's length changes too.
        for (seq, off, len) in moved {
            if let Some(e) = self.idx.msgs.get_mut(&seq) {
                e.offset = off;
                e.len = len;
            }
        }
        if let Some(off) = bounds_moved {
            self.bounds_marker = Some((n, off));
        }
        self.blocks.insert(n, kept);
        Ok(())
    }
}

impl Store for FileStore {
    fn last_seq(&self) -> u64 {
        self.idx.last_seq
    }

    fn store_raw_msg(
        &mut self,
        subject: &str,
        hdr: &[u8],
        msg: &[u8],
        seq: u64,
        ts_ns: i64,
    ) -> Result<()> {
        self.writable()?;
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
        self.change(|s| {
            let bounds = s.idx.bounds();
            let (n, off, len) = s.append(KIND_MSG, seq, ts_ns, (subject.as_bytes(), hdr, msg))?;
            let mut seqs = (0, 0);
            if let Some(b) = s.blocks.get_mut(&n) {
                seqs = (b.min_seq, b.max_seq);
                b.note_msg(seq);
            }
            let e = FileEntry {
                subject: s.idx.intern(subject),
                ts: ts_ns,
                size,
                block: n,
                offset: off as u32,
                len,
            };
            s.idx.insert(seq, e);
            s.undo.push(Undo::Stored {
                seq,
                block: n,
                seqs,
                bounds,
            });
            s.enforce(Some(subject), &limits)?;
            let waiting = s.active_file().map_or(0, |a| a.pending.len());
            if waiting >= PENDING_MAX {
                s.flush_active()?;
            }
            Ok(())
        })
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

    fn seq_from_time(&self, ts_ns: i64) -> u64 {
        self.idx.seq_from_time(ts_ns)
    }

    fn multi_last_seqs(&self, filters: &[String], max_seq: u64, limit: usize) -> Option<Vec<u64>> {
        self.idx.multi_last_seqs(filters, max_seq, limit)
    }

    fn remove_msg(&mut self, seq: u64) -> Result<()> {
        self.writable()?;
        if self.idx.msgs.get(&seq).is_none() {
            return Err(self.idx.missing(seq));
        }
        self.change(|s| {
            if let Some(n) = s.remove_one(seq, false)? {
                let mostly_dead = s.blocks.get(&n).is_some_and(|b| b.live * 2 < b.msg_records);
                if n != s.active && mostly_dead {
                    s.compact_blocks(&[n])?;
                }
            }
            s.flush_active()
        })
    }

    /// The message's block is rewritten without it (the active block is sealed first), so
    /// its bytes leave the files; no tombstone is needed. If the rewrite fails the message
    /// stays stored.
    fn erase_msg(&mut self, seq: u64) -> Result<()> {
        self.writable()?;
        let Some(n) = self.idx.msgs.get(&seq).map(|e| e.block) else {
            return Err(self.idx.missing(seq));
        };
        if n == self.active {
            self.roll()?;
        } else {
            self.flush_active()?;
        }
        let bounds = self.idx.bounds();
        let Some(entry) = self.idx.remove(seq) else {
            return Err(self.idx.missing(seq));
        };
        self.dead(n, 1);
        if let Err(e) = self.rewrite(n) {
            self.restore(seq, entry);
            self.idx.set_bounds(bounds);
            return Err(e);
        }
        Ok(())
    }

    fn purge(&mut self) -> Result<u64> {
        let floor = self.idx.last_seq + 1;
        self.compact(floor)
    }

    fn purge_ex(&mut self, filter: &str, seq: u64, keep: u64) -> Result<u64> {
        self.writable()?;
        match self.idx.purge_plan(filter, seq, keep) {
            None => Ok(0),
            Some(PurgePlan::Purge) => self.purge(),
            Some(PurgePlan::Compact(s)) => self.compact(s),
            Some(PurgePlan::Remove(seqs)) => self.change(|s| {
                let mut n = 0;
                for q in seqs {
                    if s.remove_one(q, false)?.is_some() {
                        n += 1;
                    }
                }
                s.sweep()?;
                s.flush_active()?;
                Ok(n)
            }),
        }
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        self.writable()?;
        let seq = if seq == 0 { self.idx.last_seq + 1 } else { seq };
        if self.idx.first_seq > 0 && seq <= self.idx.first_seq {
            // Nothing below `seq` and nothing to claim: a marker would only take the place of
            // the newest bounds marker (which compaction keeps) and let an older one go.
            return Ok(0);
        }
        let ts = self.idx.last_ts;
        self.change(|s| {
            let n = s.bounds_change(KIND_FLOOR, seq, ts, |idx| idx.compact_floor(seq, ts))?;
            s.sweep()?;
            s.flush_active()?;
            Ok(n as u64)
        })
    }

    fn truncate(&mut self, seq: u64) -> Result<()> {
        self.writable()?;
        if seq != 0 && seq >= self.idx.last_seq {
            return Ok(());
        }
        let ts = self.idx.truncate_ts(seq);
        // The last-sequence file must never claim more than the blocks: lower it (durably)
        // before the marker is written.
        let (last, last_ts) = if seq == 0 { (0, 0) } else { (seq, ts) };
        let r = self.change(|s| {
            s.last.write(&s.disk, last, last_ts)?;
            s.last.sync()?;
            s.bounds_change(KIND_TRUNCATE, seq, ts, |idx| idx.truncate(seq, ts))?;
            s.sweep()?;
            s.flush_active()
        });
        if r.is_err() {
            // The truncate did not happen: put back the last sequence it lowered, or a later
            // loss of the blocks' tail could take the store below it.
            let (last, ts) = (self.idx.last_seq, self.idx.last_ts);
            if let Err(e) = self
                .last
                .write(&self.disk, last, ts)
                .and_then(|()| self.last.sync())
            {
                log::warn!(
                    "filestore {}: restoring the last sequence: {e}",
                    self.dir.display()
                );
            }
        }
        r
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
        self.writable()?;
        let old = std::mem::replace(&mut self.cfg.limits, limits);
        let r = self.change(|s| {
            s.enforce(None, &limits)?;
            s.flush_active()
        });
        if r.is_err() {
            self.cfg.limits = old;
        }
        r
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        self.writable()?;
        let limits = self.cfg.limits;
        self.change(|s| {
            let mut n = 0;
            while let Some(q) = s.idx.expired(&limits, now_ns) {
                s.remove_one(q, true)?;
                n += 1;
            }
            if n > 0 {
                s.sweep()?;
                s.flush_active()?;
            }
            Ok(n)
        })
    }

    fn take_evicted(&mut self) -> Vec<(u64, Arc<str>)> {
        std::mem::take(&mut self.idx.evicted)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.idx.next_expiry(&self.cfg.limits)
    }

    fn skip_to(&mut self, seq: u64, ts_ns: i64) -> Result<()> {
        self.writable()?;
        if seq <= self.idx.last_seq {
            return Ok(());
        }
        self.flush_active()?;
        let r = self
            .last
            .write(&self.disk, seq, ts_ns)
            .and_then(|()| self.last.sync());
        if let Err(e) = r {
            // The file may hold the new value unsynced: put the old one back, or leave it
            // unknown (rewritten at the next write) if that fails too.
            let _ = self
                .last
                .write(&self.disk, self.idx.last_seq, self.idx.last_ts);
            return Err(e);
        }
        self.idx.advance_last(seq, ts_ns);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.writable()?;
        self.write_pending(true)?;
        if let Some(a) = self.active_file() {
            a.file.sync_data()?;
        }
        self.last
            .write(&self.disk, self.idx.last_seq, self.idx.last_ts)?;
        self.last.sync()
    }

    fn flush(&mut self) -> Result<()> {
        self.writable()?;
        self.flush_active()
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

impl Drop for FileStore {
    /// A store dropped without [`Store::stop`] still writes what it took (not synced).
    fn drop(&mut self) {
        if !self.closed {
            if let Err(e) = self.writable().and_then(|()| self.flush_active()) {
                log::error!(
                    "filestore {}: write on close failed: {e}",
                    self.dir.display()
                );
            }
        }
    }
}

/// The record and block codec under arbitrary bytes (cargo-fuzz and its corpus replay).
#[cfg(any(test, feature = "_fuzz"))]
#[path = "fuzzing.rs"]
pub mod fuzzing;

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::faults::{Call, Fault, Faults};
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
    fn stored_messages_are_written_at_flush_and_readable_before() {
        let dir = TempDir::new("flush");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for i in 1..=3u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        let path = block(&dir, 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), BLOCK_HDR as u64);
        assert_eq!(s.load_msg(2).unwrap().msg, vec![2; 20]);
        s.flush().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), rec_off(3));
        // Written, not synced: a crash of the process keeps them.
        std::mem::forget(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(present(&s), vec![1, 2, 3]);
    }

    #[test]
    fn removals_are_written_before_they_return() {
        let dir = TempDir::new("rmflush");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for i in 1..=3u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        s.remove_msg(2).unwrap();
        std::mem::forget(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(present(&s), vec![1, 3]);
    }

    fn cut_tail(path: &Path, bytes: u64) {
        let len = fs::metadata(path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len - bytes)
            .unwrap();
    }

    /// Bug: a torn tail lowered `last_seq`, so the next publish got a sequence a consumer's
    /// ack floor already covered. nats-server keeps the last sequence and counts the lost
    /// message as deleted.
    #[test]
    fn torn_tail_keeps_last_seq_and_counts_the_gap_deleted() {
        let dir = TempDir::new("torn-last");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for i in 1..=100u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        let last = s.active;
        s.stop().unwrap();
        drop(s);
        cut_tail(&block(&dir, last), 50);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.recovery_report().len(), 1);
        let st = s.state_with_deleted();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (99, 1, 100));
        assert_eq!(st.last_ts, 100);
        assert_eq!((st.num_deleted, st.deleted), (1, Some(vec![100])));
        assert!(matches!(s.load_msg(100), Err(Error::NotFound { seq: 100 })));
        assert_eq!(s.store_msg("t", b"", &[0; 20], 101).unwrap().0, 101);
        s.stop().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.state().last_seq, 101);
        assert_eq!(s.state().num_deleted, 1);
    }

    /// The same with the only message lost: the store is empty and starts after it, as after
    /// a purge.
    #[test]
    fn torn_only_message_leaves_an_empty_store_after_it() {
        let dir = TempDir::new("torn-only");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        s.store_msg("t", b"", &[1; 20], 7).unwrap();
        s.stop().unwrap();
        drop(s);
        cut_tail(&block(&dir, 1), 10);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.last_ts),
            (0, 2, 1, 7)
        );
        assert_eq!(s.store_msg("t", b"", &[2; 20], 8).unwrap().0, 2);
    }

    /// A damaged last-sequence file is not fatal: the blocks decide.
    #[test]
    fn damaged_last_seq_file_falls_back_to_the_blocks() {
        let dir = TempDir::new("lastseq-bad");
        fill(&dir);
        let path = dir.path().join("msgs").join(crate::lastseq::NAME);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            crate::lastseq::LEN as u64
        );
        patch(&path, 17, |b| *b ^= 0xff);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.state().last_seq, 25);
        assert_eq!(s.store_msg("t", b"", &[0; 20], 26).unwrap().0, 26);
        s.stop().unwrap();
        drop(s);
        fs::remove_file(&path).unwrap();
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.state().last_seq, 26);
    }

    #[test]
    fn skip_to_is_durable_and_counts_the_gap_deleted() {
        let dir = TempDir::new("skip");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        s.skip_to(10, 5).unwrap();
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.last_ts),
            (0, 11, 10, 5)
        );
        drop(s);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(s.state().last_seq, 10);
        assert_eq!(s.store_msg("t", b"", &[1; 20], 6).unwrap().0, 11);
        s.skip_to(20, 7).unwrap();
        s.skip_to(15, 8).unwrap();
        drop(s);
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        let st = s.state_with_deleted();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.last_ts),
            (1, 11, 20, 7)
        );
        assert_eq!(st.deleted, Some((12..=20).collect()));
        assert_eq!(s.store_msg("t", b"", &[2; 20], 9).unwrap().0, 21);
    }

    fn open_faulty(dir: &TempDir, c: FileStoreConfig) -> (FileStore, Arc<Faults>) {
        let faults = Faults::new();
        let s = FileStore::open_with_faults(dir.path(), c, faults.clone()).unwrap();
        (s, faults)
    }

    fn contains(dir: &TempDir, needle: &[u8]) -> bool {
        fs::read_dir(dir.path().join("msgs")).unwrap().any(|e| {
            let b = fs::read(e.unwrap().path()).unwrap();
            b.windows(needle.len()).any(|w| w == needle)
        })
    }

    /// Bug: a failed write kept its records pending and a later flush wrote them, so
    /// messages refused with an i/o error appeared once the disk had room (twice for a client
    /// that retried). Now they are rolled back and never written.
    #[test]
    fn failed_flush_rolls_back_and_is_never_written_later() {
        for (fault, sync_always) in [
            (Fault::NoSpace, false),
            (Fault::Short, false),
            (Fault::Eio, true),
        ] {
            let dir = TempDir::new("wfail");
            let c = FileStoreConfig {
                sync_always,
                ..cfg()
            };
            let (mut s, faults) = open_faulty(&dir, c.clone());
            for i in 1..=3u8 {
                s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
            }
            s.flush().unwrap();
            let before = s.state_with_deleted();
            for i in 4..=6u8 {
                s.store_msg("u", b"", &[0xa0 + i; 20], i64::from(i))
                    .unwrap();
            }
            // A failed fsync is the call after the write; the other faults hit the write.
            faults.arm(u64::from(sync_always), fault);
            assert!(matches!(s.flush(), Err(Error::Io(_))), "{fault:?}");
            assert_eq!(faults.disarm().len(), 1);
            assert_eq!(s.last_seq(), 3);
            assert_eq!(s.state_with_deleted(), before);
            assert!(s.subjects_state("u").is_empty());
            assert!(matches!(s.load_msg(4), Err(Error::Eof)));
            assert_eq!(fs::metadata(block(&dir, 1)).unwrap().len(), rec_off(3));
            // The disk has room again: the store goes on without a reopen.
            assert_eq!(s.store_msg("t", b"", &[44; 20], 40).unwrap().0, 4);
            s.flush().unwrap();
            assert_eq!(s.load_msg(4).unwrap().msg, vec![44; 20]);
            s.stop().unwrap();
            drop(s);
            assert!(!contains(&dir, &[0xa4; 20]), "{fault:?}");
            let s = FileStore::open(dir.path(), c).unwrap();
            assert!(s.recovery_report().is_empty());
            assert_eq!(present(&s), vec![1, 2, 3, 4]);
            assert_eq!(s.load_msg(4).unwrap().msg, vec![44; 20]);
        }
    }

    /// A removal writes the pending messages with its tombstone; when that fails, neither the
    /// messages nor the removal happened.
    #[test]
    fn failed_removal_changes_nothing() {
        let dir = TempDir::new("rmfail");
        let (mut s, faults) = open_faulty(&dir, cfg());
        for i in 1..=5u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        s.flush().unwrap();
        let before = s.state_with_deleted();
        s.store_msg("t", b"", &[6; 20], 6).unwrap();
        faults.arm(0, Fault::NoSpace);
        assert!(s.remove_msg(2).is_err());
        assert_eq!(s.state_with_deleted(), before);
        assert_eq!(s.load_msg(2).unwrap().msg, vec![2; 20]);
        for fault in [Fault::NoSpace, Fault::Short] {
            faults.arm(0, fault);
            assert!(s.purge().is_err());
            assert_eq!(s.state_with_deleted(), before);
            faults.arm(0, fault);
            assert!(s.compact(3).is_err());
            assert_eq!(s.state_with_deleted(), before);
            // The last-sequence file is lowered first, then the marker is written.
            faults.arm(0, fault);
            faults.arm(1, fault);
            assert!(s.truncate(2).is_err());
            faults.disarm();
            assert_eq!(s.state_with_deleted(), before);
            faults.arm(0, fault);
            assert!(s.purge_ex("t", 4, 0).is_err());
            assert_eq!(s.state_with_deleted(), before);
        }
        s.remove_msg(2).unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(present(&s), vec![1, 3, 4, 5]);
    }

    /// Removals a rolled-back store caused through its limits are undone with it.
    #[test]
    fn evictions_of_a_rolled_back_store_are_undone() {
        let dir = TempDir::new("evfail");
        let c = FileStoreConfig {
            limits: StoreLimits {
                max_msgs: 3,
                ..StoreLimits::default()
            },
            ..cfg()
        };
        let (mut s, faults) = open_faulty(&dir, c);
        for i in 1..=3u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        s.flush().unwrap();
        let before = s.state_with_deleted();
        s.store_msg("t", b"", &[4; 20], 4).unwrap();
        assert_eq!(s.state().first_seq, 2);
        faults.arm(0, Fault::NoSpace);
        assert!(s.flush().is_err());
        assert_eq!(s.state_with_deleted(), before);
        assert!(s.take_evicted().is_empty());
        assert_eq!(present(&s), vec![1, 2, 3]);
    }

    /// A failed write whose cut-back also fails: nothing more is written until the cut
    /// succeeds, then the store goes on.
    #[test]
    fn failed_cut_is_retried_before_the_next_write() {
        let dir = TempDir::new("cutfail");
        let (mut s, faults) = open_faulty(&dir, cfg());
        s.store_msg("t", b"", &[1; 20], 1).unwrap();
        s.flush().unwrap();
        s.store_msg("t", b"", &[2; 20], 2).unwrap();
        faults.arm(0, Fault::Short);
        faults.arm(1, Fault::Eio);
        assert!(s.flush().is_err());
        assert_eq!(
            faults.disarm(),
            vec![(Call::Write, Fault::Short), (Call::SetLen, Fault::Eio)]
        );
        assert!(fs::metadata(block(&dir, 1)).unwrap().len() > rec_off(1));
        faults.arm(0, Fault::Eio);
        assert!(s.store_msg("t", b"", &[3; 20], 3).is_err());
        assert_eq!(s.last_seq(), 1);
        assert!(fs::metadata(block(&dir, 1)).unwrap().len() > rec_off(1));
        assert_eq!(s.store_msg("t", b"", &[3; 20], 3).unwrap().0, 2);
        assert_eq!(fs::metadata(block(&dir, 1)).unwrap().len(), rec_off(1));
        s.flush().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(s.recovery_report().is_empty());
        assert_eq!(s.load_msg(2).unwrap().msg, vec![3; 20]);
    }

    /// A block that cannot be started (the disk is full when the active one is sealed) is
    /// started by the next store.
    #[test]
    fn failed_new_block_is_retried() {
        let dir = TempDir::new("blkfail");
        let (mut s, faults) = open_faulty(&dir, cfg());
        for i in 1..=10u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        s.flush().unwrap();
        // Sealing block 1: write (nothing pending), fsync, then create block 2.
        faults.arm(1, Fault::NoSpace);
        assert!(s.store_msg("t", b"", &[11; 20], 11).is_err());
        assert_eq!(faults.disarm(), vec![(Call::Open, Fault::NoSpace)]);
        assert_eq!(s.last_seq(), 10);
        assert!(!block(&dir, 2).exists());
        assert_eq!(s.store_msg("t", b"", &[11; 20], 11).unwrap().0, 11);
        s.flush().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(present(&s), (1..=11).collect::<Vec<_>>());
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
        // The lost message's sequence is not assigned again.
        assert_eq!(s.store_msg("t", b"", &[99; 20], 99).unwrap().0, 26);
        s.stop().unwrap();
        drop(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(s.recovery_report().is_empty());
        assert_eq!(s.load_msg(26).unwrap().msg, vec![99; 20]);
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
            let (recs, _, keep) = scan(&b, 2, None).unwrap();
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

    const CIPHERS: [Cipher; 2] = [Cipher::ChaCha20Poly1305, Cipher::Aes256Gcm];

    fn key(cipher: Cipher, b: u8) -> FileStoreConfig {
        FileStoreConfig {
            encryption_key: Some(EncryptionKey {
                cipher,
                key: [b; 32],
            }),
            ..cfg()
        }
    }

    fn other(cipher: Cipher) -> Cipher {
        match cipher {
            Cipher::ChaCha20Poly1305 => Cipher::Aes256Gcm,
            Cipher::Aes256Gcm => Cipher::ChaCha20Poly1305,
        }
    }

    #[test]
    fn encrypted_store_hides_payloads_and_needs_its_key_and_cipher() {
        for cipher in CIPHERS {
            let dir = TempDir::new("crypt");
            let c = key(cipher, 1);
            let secret = *b"attack at dawn, bring snacks";
            let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
            for i in 1..=25u8 {
                s.store_msg("secret.subject", b"", &secret, i64::from(i))
                    .unwrap();
            }
            assert_eq!(s.load_msg(25).unwrap().msg, secret);
            assert_eq!(s.load_msg(2).unwrap().msg, secret);
            s.stop().unwrap();
            drop(s);
            let mut nonces = Vec::new();
            for ent in fs::read_dir(dir.path().join("msgs")).unwrap() {
                let path = ent.unwrap().path();
                let b = fs::read(&path).unwrap();
                if path.extension().is_none_or(|e| e != "blk") {
                    continue;
                }
                assert!(!b.windows(secret.len()).any(|w| w == secret));
                assert!(!b.windows(7).any(|w| w == b"subject"));
                // The header names the cipher: AES keeps its original flag bit.
                assert_eq!(b[9] & FLAGS_CIPHER, cipher.flag(), "{cipher}");
                nonces.push(b[32..44].to_vec());
            }
            assert!(nonces.len() > 2);
            let n = nonces.len();
            nonces.sort();
            nonces.dedup();
            assert_eq!(nonces.len(), n, "a nonce was reused across blocks");

            assert!(matches!(
                FileStore::open(dir.path(), cfg()),
                Err(Error::KeyRequired)
            ));
            assert!(matches!(
                FileStore::open(dir.path(), key(cipher, 2)),
                Err(Error::Decrypt { .. })
            ));
            let e = FileStore::open(dir.path(), key(other(cipher), 1))
                .err()
                .unwrap();
            let Error::CipherMismatch {
                stored, configured, ..
            } = e
            else {
                panic!("{e}");
            };
            assert_eq!((stored, configured), (cipher, other(cipher)));
            assert!(e.to_string().contains(&format!("encrypted with {cipher}")));
            let s = FileStore::open(dir.path(), c).unwrap();
            assert!(s.recovery_report().is_empty());
            assert_eq!(present(&s), (1..=25).collect::<Vec<_>>());
            assert_eq!(s.load_last_msg("secret.*").unwrap().msg, secret);
        }
    }

    #[test]
    fn encrypted_damage_is_skipped_and_a_forged_block_refused() {
        for cipher in CIPHERS {
            let dir = TempDir::new("crypt-damage");
            let c = key(cipher, 4);
            let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
            for i in 1..=25u8 {
                s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
            }
            let last = s.active;
            let last_first = s.blocks[&last].hdr_first;
            assert!(matches!(s.blocks[&1].data, Data::Packed));
            let block1: Vec<u64> = (1..last_first)
                .filter(|&q| s.idx.msgs.get(&q).is_some_and(|e| e.block == 1))
                .collect();
            s.stop().unwrap();
            drop(s);
            // Damage inside a record's ciphertext of the active block: its checksum fails,
            // the record is skipped without decrypting anything.
            patch(&block(&dir, last), BLOCK_HDR as u64 + 30, |b| *b ^= 1);
            // Damage inside a packed encrypted block: the body checksum fails and the block
            // is set aside.
            patch(&block(&dir, 1), BLOCK_HDR as u64 + 5, |b| *b ^= 1);
            let s = FileStore::open(dir.path(), c.clone()).unwrap();
            assert!(matches!(
                s.recovery_report(),
                [
                    Error::ChecksumMismatch { block: 1, .. },
                    Error::ChecksumMismatch { block, .. }
                ] if *block == last
            ));
            let want: Vec<u64> = (1..=25)
                .filter(|q| !block1.contains(q) && *q != last_first)
                .collect();
            assert_eq!(present(&s), want, "{cipher}");
            drop(s);
            // A body altered with a matching checksum passes the checksum, not the tag.
            let path = block(&dir, 2);
            let mut b = fs::read(&path).unwrap();
            let end = b.len() - SUM;
            b[BLOCK_HDR + 5] ^= 1;
            let sum = xxh3_64(&b[BLOCK_HDR..end]);
            b[end..].copy_from_slice(&sum.to_le_bytes());
            fs::write(&path, b).unwrap();
            assert!(matches!(
                FileStore::open(dir.path(), c),
                Err(Error::Decrypt { block: 2, .. })
            ));
        }
    }

    /// A key configured later: earlier plain blocks stay readable; new ones are encrypted.
    #[test]
    fn plain_store_opened_with_a_key_keeps_its_messages_and_encrypts_new_blocks() {
        for cipher in CIPHERS {
            let dir = TempDir::new("crypt-later");
            fill(&dir);
            let c = key(cipher, 5);
            let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
            assert_eq!(present(&s), (1..=25).collect::<Vec<_>>());
            s.store_msg("t", b"", &[99; 20], 26).unwrap();
            let active = s.active;
            drop(s);
            let flags = |n| fs::read(block(&dir, n)).unwrap()[9] & FLAGS_CIPHER;
            assert_eq!(flags(1), 0);
            assert_eq!(flags(active), cipher.flag());
            let s = FileStore::open(dir.path(), c).unwrap();
            assert!(s.recovery_report().is_empty());
            assert_eq!(present(&s), (1..=26).collect::<Vec<_>>());
            assert_eq!(s.load_msg(26).unwrap().msg, vec![99; 20]);
            drop(s);
            assert!(matches!(
                FileStore::open(dir.path(), cfg()),
                Err(Error::KeyRequired)
            ));
        }
    }

    #[test]
    fn encrypted_torn_tail_recovers_and_appends_to_a_new_block() {
        for cipher in CIPHERS {
            let dir = TempDir::new("crypt-torn");
            let c = key(cipher, 3);
            let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
            for i in 1..=5u8 {
                s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
            }
            let active = block(&dir, s.active);
            drop(s);
            let len = fs::metadata(&active).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(&active)
                .unwrap()
                .set_len(len - 3)
                .unwrap();
            let mut s = FileStore::open(dir.path(), c.clone()).unwrap();
            assert_eq!(s.recovery_report().len(), 1);
            assert_eq!(present(&s), vec![1, 2, 3, 4]);
            assert_ne!(block(&dir, s.active), active);
            assert_eq!(s.store_msg("t", b"", &[9; 20], 9).unwrap().0, 6);
            drop(s);
            let s = FileStore::open(dir.path(), c).unwrap();
            assert_eq!(present(&s), vec![1, 2, 3, 4, 6]);
            assert_eq!(s.load_msg(6).unwrap().msg, vec![9; 20]);
        }
    }
}
