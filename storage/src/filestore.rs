//! The file store: checksummed records in fixed-size block files.
//!
//! A store directory holds `msgs/<index>.blk` block files, replayed in index order on open.
//! Only the highest-numbered block (the active block) is appended to. Message records are
//! collected in memory and written with one `write` per [`Store::flush`] (the caller flushes
//! once per batch of messages, before it acknowledges them), or when 256 KiB are waiting;
//! every other change (markers of removals, purges, expiry) is written before its call
//! returns. When the next record would not fit in `block_size`, the active block is sealed, mapped
//! read-only (see `mmap`) and a new block is started. Removals never rewrite a block in place:
//! they append a small marker record (tombstone, floor, truncate) to the active block. A sealed
//! block that is mostly or wholly dead is compacted into a new file that replaces it by rename.
//!
//! The index (sequence → block and offset, per-subject sequence sets) lives in memory and is
//! rebuilt by replaying every record on open. With `compress` or an `encryption_key`, a sealed
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

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::index::{Entry, Index, PurgePlan, SizeRule};
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
    file: File,
    /// Bytes of the block in the file; the records after them are in `pending`.
    written: u64,
    pending: Vec<u8>,
    /// Read-ahead of written bytes: (offset, bytes). Written bytes never change while the
    /// block is active, so the window stays valid; readers going forward (consumers) take one
    /// `pread` per window instead of one per message.
    ahead: RefCell<(u64, Vec<u8>)>,
}

impl ActiveFile {
    fn new(file: File, written: u64) -> Self {
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

    /// Write the pending records (and fsync with `sync`). On failure the file is cut back to
    /// what was written before and the records stay pending, so a later flush writes them
    /// again at the same offset: the block always ends on a record boundary.
    fn flush(&mut self, sync: bool) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.pending).and_then(|()| {
            if sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                if self.pending.capacity() > PENDING_KEEP {
                    self.pending = Vec::new();
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.written);
                Err(e)
            }
        }
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
    idx: Index<FileEntry>,
    blocks: BTreeMap<u32, Block>,
    active: u32,
    buf: Vec<u8>,
    report: Vec<Error>,
    closed: bool,
    unpacked: RefCell<VecDeque<(u32, Arc<[u8]>)>>,
    sealer: Option<Sealer>,
    /// The last write of pending records failed: nothing more is taken until one succeeds.
    flush_failed: bool,
    /// (block, offset) of the newest floor or truncate marker. Compaction keeps it even when
    /// no earlier message needs it: it alone says where an emptied stream starts and when its
    /// last message was, which block headers cannot.
    bounds_marker: Option<(u32, usize)>,
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
            sealer: cfg.encryption_key.as_ref().map(Sealer::new),
            cfg,
            idx: Index::new(SizeRule::File),
            blocks: BTreeMap::new(),
            active: 0,
            buf: Vec::new(),
            report: Vec::new(),
            closed: false,
            unpacked: RefCell::new(VecDeque::new()),
            flush_failed: false,
            bounds_marker: None,
        };
        let last = found.last().copied();
        for n in found {
            fs_.replay_block(n, Some(n) == last)?;
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
                fs::rename(&path, aside)?;
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
            Data::Active(ActiveFile::new(
                OpenOptions::new().read(true).append(true).open(&path)?,
                keep as u64,
            ))
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

    fn new_block(&mut self, n: u32) -> Result<()> {
        let path = self.block_path(n);
        let hdr_first = self.idx.last_seq + 1;
        let hdr_ts = self.idx.last_ts;
        let (flags, nonce) = match &self.sealer {
            Some(s) => (s.cipher().flag(), fresh_nonce()?),
            None => (0, [0; 12]),
        };
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        f.write_all(&block_header(n, hdr_first, hdr_ts, flags, nonce))?;
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

    /// Seal the active block (map it read-only) and start the next one.
    fn roll(&mut self) -> Result<()> {
        let n = self.active;
        if let Some(b) = self.blocks.get_mut(&n) {
            if let Data::Active(a) = &mut b.data {
                a.flush(false)?;
                a.file.sync_data()?;
                b.data = Data::Sealed(map_sealed(&a.file)?);
            }
        }
        self.new_block(n + 1)?;
        if self.cfg.compress || self.sealer.is_some() {
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
        let b: Arc<[u8]> = unpack(&fs::read(path)?, n, self.sealer.as_ref())?.into();
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

    fn seal(&self, b: &Block) -> Option<Seal<'_>> {
        self.sealer.as_ref().map(|sealer| Seal {
            sealer,
            nonce: b.nonce,
        })
    }

    /// Encode and append one record to the active block, starting a new block first when it
    /// would not fit. Returns (block, offset, record length).
    fn append(
        &mut self,
        kind: u8,
        seq: u64,
        ts: i64,
        rec: (&[u8], &[u8], &[u8]),
    ) -> Result<(u32, u64, u32)> {
        let (subject, hdr, msg) = rec;
        let len = record_len(kind, self.sealer.is_some(), subject, hdr, msg) as u64;
        let (blen, has_records) = {
            let b = self.active_block()?;
            (b.len, b.len > BLOCK_HDR as u64)
        };
        if has_records && blen + len > self.cfg.block_size {
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
        let res = encoded.and_then(|()| self.write_active(&buf));
        self.buf = buf;
        let off = res?;
        Ok((n, off, len as u32))
    }

    /// Add encoded bytes to the end of the active block; returns their offset. They are
    /// written at the next flush, or now when enough are waiting.
    fn write_active(&mut self, buf: &[u8]) -> Result<u64> {
        let sync = self.cfg.sync_always;
        let n = self.active;
        let b = self.blocks.get_mut(&n).ok_or(Error::Corrupt {
            block: n,
            offset: 0,
            reason: "active block missing",
        })?;
        let off = b.len;
        let Data::Active(a) = &mut b.data else {
            return Err(Error::Io(std::io::Error::other("active block is sealed")));
        };
        a.pending.extend_from_slice(buf);
        b.len += buf.len() as u64;
        if a.pending.len() >= PENDING_MAX {
            // A failure leaves the records pending; the caller's flush reports it.
            self.flush_failed = a.flush(sync).is_err();
        }
        Ok(off)
    }

    /// Write the active block's pending records (fsync them with `sync_always`).
    fn flush_active(&mut self) -> Result<()> {
        let sync = self.cfg.sync_always;
        let n = self.active;
        let r = match self.blocks.get_mut(&n).map(|b| &mut b.data) {
            Some(Data::Active(a)) => a.flush(sync),
            _ => Ok(()),
        };
        self.flush_failed = r.is_err();
        Ok(r?)
    }

    fn write_marker(&mut self, kind: u8, seq: u64, ts: i64) -> Result<()> {
        let (n, off, _) = self.append(kind, seq, ts, (b"", b"", b""))?;
        if kind != KIND_TOMBSTONE {
            self.bounds_marker = Some((n, off as usize));
        }
        Ok(())
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
            self.idx.note_evicted(v);
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
                _ => {
                    (has && b.max_seq > seq)
                        || b.hdr_first > seq + 1
                        || b.max_floor > seq + 1
                        || b.max_trunc > seq
                }
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
            self.blocks.remove(&n);
            fs::remove_file(&path)?;
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
        {
            let mut f = File::create(&tmp)?;
            if packed {
                f.write_all(&pack(&header, &out[BLOCK_HDR..], self.sealer.as_ref())?)?;
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
        kept.data = if packed {
            Data::Packed
        } else {
            Data::Sealed(map_sealed(&File::open(&path)?)?)
        };
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
        if self.closed {
            return Err(Error::Closed);
        }
        if seq <= self.idx.last_seq {
            return Err(Error::BadSequence {
                seq,
                last: self.idx.last_seq,
            });
        }
        if self.flush_failed {
            self.flush_active()?;
        }
        let limits = self.cfg.limits;
        Index::<FileEntry>::check_size(&limits, subject, hdr, msg)?;
        let size = SizeRule::File.size(subject, hdr, msg);
        self.idx.check_new(&limits, subject, size)?;
        let (n, off, len) = self.append(KIND_MSG, seq, ts_ns, (subject.as_bytes(), hdr, msg))?;
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

    fn seq_from_time(&self, ts_ns: i64) -> u64 {
        self.idx.seq_from_time(ts_ns)
    }

    fn multi_last_seqs(&self, filters: &[String], max_seq: u64, limit: usize) -> Option<Vec<u64>> {
        self.idx.multi_last_seqs(filters, max_seq, limit)
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
                self.flush_active()
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
                self.rewrite(n)?;
                self.flush_active()
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
                self.flush_active()?;
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
        self.flush_active()?;
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
        let active = self.active;
        if let Some(b) = self.blocks.get_mut(&active) {
            b.max_trunc = b.max_trunc.max(seq);
        }
        self.sweep()?;
        self.flush_active()
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
        self.enforce(None, &limits)?;
        self.flush_active()
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64> {
        if self.closed {
            return Err(Error::Closed);
        }
        let limits = self.cfg.limits;
        let mut n = 0;
        while let Some(s) = self.idx.expired(&limits, now_ns) {
            self.idx.note_evicted(s);
            self.remove_one(s)?;
            n += 1;
        }
        if n > 0 {
            self.sweep()?;
            self.flush_active()?;
        }
        Ok(n)
    }

    fn take_evicted(&mut self) -> Vec<(u64, Arc<str>)> {
        std::mem::take(&mut self.idx.evicted)
    }

    fn next_expiry(&self) -> Option<i64> {
        self.idx.next_expiry(&self.cfg.limits)
    }

    fn sync(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.flush_active()?;
        if let Data::Active(a) = &self.active_block()?.data {
            a.file.sync_data()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
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
            if let Err(e) = self.flush_active() {
                log::error!(
                    "filestore {}: write on close failed: {e}",
                    self.dir.display()
                );
            }
        }
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

    fn active_file(s: &mut FileStore) -> &mut ActiveFile {
        let n = s.active;
        match &mut s.blocks.get_mut(&n).unwrap().data {
            Data::Active(a) => a,
            _ => panic!("active block is not active"),
        }
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

    #[test]
    fn failed_write_keeps_records_and_refuses_new_ones_until_it_succeeds() {
        let dir = TempDir::new("wfail");
        let mut s = FileStore::open(dir.path(), cfg()).unwrap();
        for i in 1..=3u8 {
            s.store_msg("t", b"", &[i; 20], i64::from(i)).unwrap();
        }
        let path = block(&dir, 1);
        // A read-only handle makes every write fail.
        let good = std::mem::replace(&mut active_file(&mut s).file, File::open(&path).unwrap());
        assert!(matches!(s.flush(), Err(Error::Io(_))));
        assert_eq!(fs::metadata(&path).unwrap().len(), BLOCK_HDR as u64);
        assert_eq!(s.load_msg(3).unwrap().msg, vec![3; 20]);
        assert!(matches!(
            s.store_msg("t", b"", &[4; 20], 4),
            Err(Error::Io(_))
        ));
        assert_eq!(s.state().last_seq, 3);
        active_file(&mut s).file = good;
        s.store_msg("t", b"", &[4; 20], 4).unwrap();
        s.flush().unwrap();
        std::mem::forget(s);
        let s = FileStore::open(dir.path(), cfg()).unwrap();
        assert!(s.recovery_report().is_empty());
        assert_eq!(present(&s), vec![1, 2, 3, 4]);
        assert_eq!(s.load_msg(4).unwrap().msg, vec![4; 20]);
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
                let b = fs::read(ent.unwrap().path()).unwrap();
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
            s.store_msg("t", b"", &[9; 20], 9).unwrap();
            drop(s);
            let s = FileStore::open(dir.path(), c).unwrap();
            assert_eq!(present(&s), vec![1, 2, 3, 4, 5]);
            assert_eq!(s.load_msg(5).unwrap().msg, vec![9; 20]);
        }
    }
}
