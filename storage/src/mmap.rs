//! The only `unsafe` in this crate: read-only memory maps of sealed block files.
//!
//! A sealed block is never written through any handle while it is mapped: appends go to the
//! active block only, and a sealed block is rewritten by writing a new file and renaming it over
//! the old path (the old map keeps the old inode alive until it is dropped). See `UNSAFE.md`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Map a sealed block file read-only.
pub(crate) fn map_sealed(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that the file is not modified or truncated while mapped. The
    // file store only maps sealed blocks, which it never writes, truncates or extends again: a
    // sealed block is replaced by rename of a new file, which leaves the mapped inode intact.
    // Another process modifying the store directory is outside the contract (documented in
    // FileStore's docs); bytes read through the map are still checksummed before use, so a
    // changed byte is reported as corruption rather than trusted.
    unsafe { Mmap::map(file) }
}
