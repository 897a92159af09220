//! The storage error type.

use std::fmt;

/// Everything a store operation can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The sequence is inside the stream's range but holds no message (deleted or never stored).
    NotFound {
        /// The sequence asked for.
        seq: u64,
    },
    /// The sequence is past the last sequence, or no message matches the filter
    /// (nats-server 10057 "stream store EOF" for deletes).
    Eof,
    /// Discard-new refusal: the stream is at `max_msgs` (nats-server 503/10077 "maximum messages exceeded").
    MaxMsgs,
    /// Discard-new refusal: the message would exceed `max_bytes` (nats-server 503/10077 "maximum bytes exceeded").
    MaxBytes,
    /// Discard-new-per-subject refusal: the subject is at `max_msgs_per_subject`.
    MaxMsgsPerSubject,
    /// The message is larger than `max_msg_size`.
    MsgTooLarge {
        /// Size of the refused message (subject + headers + payload).
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A sequence given to `store_raw_msg` is not after the last sequence.
    BadSequence {
        /// The sequence given.
        seq: u64,
        /// The store's last sequence.
        last: u64,
    },
    /// A subject, header block or payload does not fit the record format.
    TooLarge {
        /// Which part is too large.
        what: &'static str,
    },
    /// Bytes read from disk do not form a valid record or block header.
    Corrupt {
        /// Block file index.
        block: u32,
        /// Byte offset in the block file.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A record's stored checksum differs from the checksum of its bytes.
    ChecksumMismatch {
        /// Block file index.
        block: u32,
        /// Byte offset of the record in the block file.
        offset: u64,
        /// Checksum computed over the bytes read.
        got: u64,
        /// Checksum stored in the record.
        expected: u64,
    },
    /// The store holds encrypted blocks and no key was configured.
    KeyRequired,
    /// A record or block passed its checksum but did not decrypt: the key is wrong.
    Decrypt {
        /// Block file index.
        block: u32,
        /// Byte offset in the block file.
        offset: u64,
    },
    /// A block is encrypted with another cipher than the configured one.
    CipherMismatch {
        /// Block file index.
        block: u32,
        /// The block's cipher.
        stored: crate::Cipher,
        /// The configured cipher.
        configured: crate::Cipher,
    },
    /// The store was stopped; no further operations are accepted.
    Closed,
    /// An I/O error from the file system.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { seq } => write!(f, "sequence {seq} not found"),
            Error::Eof => f.write_str("stream store EOF"),
            Error::MaxMsgs => f.write_str("maximum messages exceeded"),
            Error::MaxBytes => f.write_str("maximum bytes exceeded"),
            Error::MaxMsgsPerSubject => f.write_str("maximum messages per subject exceeded"),
            Error::MsgTooLarge { size, max } => {
                write!(f, "message size {size} exceeds maximum allowed {max}")
            }
            Error::BadSequence { seq, last } => {
                write!(f, "sequence {seq} is not after last sequence {last}")
            }
            Error::TooLarge { what } => write!(f, "{what} too large for the record format"),
            Error::Corrupt {
                block,
                offset,
                reason,
            } => write!(f, "corrupt block {block} at offset {offset}: {reason}"),
            Error::ChecksumMismatch {
                block,
                offset,
                got,
                expected,
            } => write!(
                f,
                "checksum mismatch in block {block} at offset {offset}: got {got:016x}, expected {expected:016x}"
            ),
            Error::KeyRequired => f.write_str("store is encrypted and no key was configured"),
            Error::Decrypt { block, offset } => write!(
                f,
                "block {block} at offset {offset} does not decrypt with the configured key"
            ),
            Error::CipherMismatch {
                block,
                stored,
                configured,
            } => write!(
                f,
                "block {block} is encrypted with {stored}, the configured cipher is {configured}"
            ),
            Error::Closed => f.write_str("store is closed"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, Error>;
