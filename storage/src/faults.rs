//! Test-only fault plan for the file store's I/O seam (`crate::disk`).
//!
//! A plan counts the calls that go through the seam. A test arms it to fail the `n`-th call
//! from now with a [`Fault`]; the call fails once and later ones run again. The plan also
//! tracks, per file, the length at its last successful sync (and, for a file written in
//! place, its bytes then), so [`Faults::power_loss`] can cut every file back to a random
//! length at or after what was synced, as a power loss after a crash would.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use crate::disk::Call;

/// How an armed call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// ENOSPC before anything happens.
    NoSpace,
    /// EIO before anything happens.
    Eio,
    /// A write puts the first half of its buffer in the file, then fails with ENOSPC; any
    /// other call fails with ENOSPC.
    Short,
    /// The call runs; every later call fails with EIO (the process died after it).
    Crash,
}

#[derive(Default)]
struct Tracked {
    synced_len: u64,
    /// Bytes at the last sync (or when first seen), kept for files written in place.
    image: Vec<u8>,
    in_place: bool,
}

#[derive(Default)]
struct Plan {
    calls: u64,
    armed: Vec<(u64, Fault)>,
    tripped: Vec<(Call, Fault)>,
    dead: bool,
    files: HashMap<PathBuf, Tracked>,
}

/// What the plan decided for one call.
enum Step {
    Run,
    Fail(io::Error),
    Short,
    RunThenDie,
}

/// A shared fault plan; clone the `Arc` into the store.
#[derive(Default)]
pub(crate) struct Faults(Mutex<Plan>);

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl Faults {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Faults::default())
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail the `n`-th call from now (0 = the next one) with `fault`.
    pub(crate) fn arm(&self, n: u64, fault: Fault) {
        let mut p = self.plan();
        let at = p.calls + n;
        p.armed.push((at, fault));
    }

    /// Disarm every fault; returns the calls the armed faults hit.
    pub(crate) fn disarm(&self) -> Vec<(Call, Fault)> {
        let mut p = self.plan();
        p.armed.clear();
        std::mem::take(&mut p.tripped)
    }

    fn step(&self, call: Call) -> Step {
        let mut p = self.plan();
        if p.dead {
            return Step::Fail(eio());
        }
        let n = p.calls;
        p.calls += 1;
        match p.armed.iter().position(|&(at, _)| at == n) {
            Some(i) => {
                let (_, fault) = p.armed.swap_remove(i);
                p.tripped.push((call, fault));
                match fault {
                    Fault::NoSpace => Step::Fail(no_space()),
                    Fault::Eio => Step::Fail(eio()),
                    Fault::Short => Step::Short,
                    Fault::Crash => Step::RunThenDie,
                }
            }
            None => Step::Run,
        }
    }

    /// Run a call that is not a write, unless the plan fails it.
    pub(crate) fn call<T>(
        &self,
        call: Call,
        _path: &Path,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        match self.step(call) {
            Step::Run => f(),
            Step::Fail(e) => Err(e),
            Step::Short => Err(no_space()),
            Step::RunThenDie => {
                let r = f();
                self.plan().dead = true;
                r
            }
        }
    }

    /// Run a write of `buf` through `f`, unless the plan fails it or cuts it short.
    pub(crate) fn write(
        &self,
        path: &Path,
        in_place: bool,
        buf: &[u8],
        f: impl Fn(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if in_place {
            self.plan()
                .files
                .entry(path.to_path_buf())
                .or_default()
                .in_place = true;
        }
        match self.step(Call::Write) {
            Step::Run => f(buf),
            Step::Fail(e) => Err(e),
            Step::Short => {
                f(&buf[..buf.len() / 2])?;
                Err(no_space())
            }
            Step::RunThenDie => {
                let r = f(buf);
                self.plan().dead = true;
                r
            }
        }
    }

    /// A file was opened; `fresh` when it was just created empty.
    pub(crate) fn opened(&self, path: &Path, fresh: bool) {
        let mut p = self.plan();
        if fresh {
            p.files.insert(path.to_path_buf(), Tracked::default());
        } else if !p.files.contains_key(path) {
            // A file from before the plan saw it is taken as synced.
            let image = fs::read(path).unwrap_or_default();
            let t = Tracked {
                synced_len: image.len() as u64,
                image,
                in_place: false,
            };
            p.files.insert(path.to_path_buf(), t);
        }
    }

    pub(crate) fn synced(&self, path: &Path) {
        let image = fs::read(path).unwrap_or_default();
        let mut p = self.plan();
        let t = p.files.entry(path.to_path_buf()).or_default();
        t.synced_len = image.len() as u64;
        t.image = image;
    }

    pub(crate) fn cut(&self, path: &Path, len: u64) {
        let mut p = self.plan();
        if let Some(t) = p.files.get_mut(path) {
            t.synced_len = t.synced_len.min(len);
        }
    }

    pub(crate) fn renamed(&self, from: &Path, to: &Path) {
        let mut p = self.plan();
        if let Some(t) = p.files.remove(from) {
            p.files.insert(to.to_path_buf(), t);
        }
    }

    pub(crate) fn removed(&self, path: &Path) {
        self.plan().files.remove(path);
    }

    /// After the store was dropped: cut every file written since it was last synced back to a
    /// random length at or after its synced length; a file written in place gets its new
    /// bytes up to a random point and its synced bytes after it (a torn overwrite). Clears
    /// the plan.
    pub(crate) fn power_loss(&self, seed: u64) {
        let mut p = self.plan();
        let mut x = seed | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut files: Vec<(PathBuf, Tracked)> = p.files.drain().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, t) in files {
            let Ok(now) = fs::read(&path) else { continue };
            let out = if t.in_place {
                let k = next(now.len().max(t.image.len()) as u64 + 1) as usize;
                let mut out = now[..k.min(now.len())].to_vec();
                out.extend_from_slice(&t.image[k.min(t.image.len())..]);
                out
            } else {
                let lo = t.synced_len.min(now.len() as u64);
                let keep = lo + next(now.len() as u64 - lo + 1);
                now[..keep as usize].to_vec()
            };
            if out != now {
                fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
        *p = Plan::default();
    }

    /// Forget the crash: calls run again (the files are left as they are).
    pub(crate) fn revive(&self) {
        let mut p = self.plan();
        p.dead = false;
        p.armed.clear();
    }
}
