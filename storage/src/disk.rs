//! The file store's file system calls, in one place so tests can make them fail.
//!
//! [`Disk`] creates, opens, reads, renames and removes files; [`DiskFile`] appends to, writes
//! in place, reads, cuts and syncs an open one. Release builds forward every call to `std`:
//! `Disk` is zero-sized, `DiskFile` is a `File`, every method is `#[inline]`. Test builds can
//! attach a `Faults` plan (`crate::faults`) that fails a chosen call with ENOSPC or EIO,
//! writes only part of a buffer before failing, or lets a write through and then fails
//! everything after it (a crash), and that remembers how much of each file was synced so a
//! test can cut files back as a power loss would. Without a plan the test build takes one
//! `Option` check per call.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
#[cfg(test)]
use std::sync::Arc;

#[cfg(test)]
use crate::faults::Faults;

/// Opens and names files.
#[derive(Clone, Default)]
pub(crate) struct Disk {
    #[cfg(test)]
    pub(crate) faults: Option<Arc<Faults>>,
}

/// An open file.
pub(crate) struct DiskFile {
    file: File,
    #[cfg(test)]
    hook: Option<(Arc<Faults>, PathBuf)>,
}

impl Disk {
    #[cfg(not(test))]
    #[inline]
    fn wrap(&self, file: File, _path: &Path) -> DiskFile {
        DiskFile { file }
    }

    #[cfg(test)]
    fn wrap(&self, file: File, path: &Path) -> DiskFile {
        DiskFile {
            file,
            hook: self.faults.clone().map(|f| (f, path.to_path_buf())),
        }
    }

    /// Run `f` unless the fault plan fails this call.
    #[inline]
    fn call<T>(
        &self,
        _call: Call,
        _path: &Path,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        #[cfg(test)]
        if let Some(faults) = &self.faults {
            return faults.call(_call, _path, f);
        }
        f()
    }

    /// Open `path` with `opts`; `fresh` says the file starts empty (for crash simulation).
    fn open_with(&self, path: &Path, opts: &OpenOptions, _fresh: bool) -> io::Result<DiskFile> {
        let file = self.call(Call::Open, path, || opts.open(path))?;
        #[cfg(test)]
        if let Some(faults) = &self.faults {
            faults.opened(path, _fresh);
        }
        Ok(self.wrap(file, path))
    }

    /// Create a new file for appending (it must not exist).
    #[inline]
    pub(crate) fn create_append(&self, path: &Path) -> io::Result<DiskFile> {
        let mut o = OpenOptions::new();
        o.read(true).append(true).create_new(true);
        self.open_with(path, &o, true)
    }

    /// Create or empty a file for writing.
    #[inline]
    pub(crate) fn create(&self, path: &Path) -> io::Result<DiskFile> {
        let mut o = OpenOptions::new();
        o.write(true).create(true).truncate(true);
        self.open_with(path, &o, true)
    }

    /// Open an existing file for reading and appending.
    #[inline]
    pub(crate) fn open_append(&self, path: &Path) -> io::Result<DiskFile> {
        let mut o = OpenOptions::new();
        o.read(true).append(true);
        self.open_with(path, &o, false)
    }

    /// Open a file for reading and writing in place, creating it empty if it is missing.
    #[inline]
    pub(crate) fn open_rw(&self, path: &Path) -> io::Result<DiskFile> {
        let fresh = !path.exists();
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        self.open_with(path, &o, fresh)
    }

    /// Open an existing file read-only.
    #[inline]
    pub(crate) fn open_read(&self, path: &Path) -> io::Result<DiskFile> {
        let mut o = OpenOptions::new();
        o.read(true);
        self.open_with(path, &o, false)
    }

    /// The whole contents of a file.
    #[inline]
    pub(crate) fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.call(Call::Read, path, || fs::read(path))
    }

    #[inline]
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.call(Call::Rename, from, || fs::rename(from, to))?;
        #[cfg(test)]
        if let Some(faults) = &self.faults {
            faults.renamed(from, to);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        self.call(Call::Remove, path, || fs::remove_file(path))?;
        #[cfg(test)]
        if let Some(faults) = &self.faults {
            faults.removed(path);
        }
        Ok(())
    }

    /// fsync a directory, so the names created or renamed in it are durable.
    #[inline]
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.call(Call::Sync, dir, || File::open(dir)?.sync_all())
    }
}

/// What a call does, for the fault plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Call {
    Open,
    Read,
    Write,
    SetLen,
    Sync,
    Rename,
    Remove,
}

impl DiskFile {
    /// The file, for mapping it.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Append all of `buf` (the file was opened for appending).
    #[inline]
    pub(crate) fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some((faults, path)) = &self.hook {
            return faults.write(path, false, buf, |b| (&self.file).write_all(b));
        }
        (&self.file).write_all(buf)
    }

    /// Write all of `buf` at `offset`, over what is there.
    #[inline]
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some((faults, path)) = &self.hook {
            return faults.write(path, true, buf, |b| self.file.write_all_at(b, offset));
        }
        self.file.write_all_at(buf, offset)
    }

    #[inline]
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some((faults, path)) = &self.hook {
            return faults.call(Call::Read, path, || self.file.read_exact_at(buf, offset));
        }
        self.file.read_exact_at(buf, offset)
    }

    /// Cut (or extend) the file to `len` bytes.
    #[inline]
    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some((faults, path)) = &self.hook {
            faults.call(Call::SetLen, path, || self.file.set_len(len))?;
            faults.cut(path, len);
            return Ok(());
        }
        self.file.set_len(len)
    }

    /// fsync the file's data (and its length).
    #[inline]
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        #[cfg(test)]
        if let Some((faults, path)) = &self.hook {
            faults.call(Call::Sync, path, || self.file.sync_data())?;
            faults.synced(path);
            return Ok(());
        }
        self.file.sync_data()
    }
}
