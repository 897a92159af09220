//! nats-server's dynamic JetStream limits: with no `max_memory_store` set,
//! 75% of the machine's memory; with no `max_file_store`, 75% of the space
//! available where the store lives (1 TB when that cannot be told).
use natsd_engine::options::Options;

/// nats-server's `JetStreamMaxStoreDefault`.
const MAX_STORE_DEFAULT: i64 = 1 << 40;
/// nats-server's `JetStreamMaxMemDefault`.
const MAX_MEM_DEFAULT: i64 = 256 << 20;

/// Fill the unset server JetStream limits as nats-server does.
pub fn fill_jetstream_limits(opts: &mut Options) {
    if !opts.jetstream.enabled {
        return;
    }
    if opts.jetstream.max_memory < 0 {
        opts.jetstream.max_memory = total_memory().map_or(MAX_MEM_DEFAULT, |m| m / 4 * 3);
    }
    if opts.jetstream.max_store < 0 {
        let root = natsd_engine::jetstream::store_root(opts);
        let _ = std::fs::create_dir_all(&root);
        opts.jetstream.max_store = disk_available(&root).map_or(MAX_STORE_DEFAULT, |b| b / 4 * 3);
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn total_memory() -> Option<i64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes available to an unprivileged user on the file system of `path`.
fn disk_available(path: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable
    // memory of the right size; statvfs fills it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let bytes = st.f_bavail.checked_mul(st.f_frsize)?;
    i64::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_limits_become_the_machines() {
        let dir = std::env::temp_dir().join(format!("natsd-sysres-{}", std::process::id()));
        let mut opts = Options::default();
        opts.jetstream.enabled = true;
        opts.store_dir = Some(dir.clone());
        fill_jetstream_limits(&mut opts);
        assert_eq!(opts.jetstream.max_memory, total_memory().unwrap() / 4 * 3);
        assert!(opts.jetstream.max_store > 0);
        // Set limits stay.
        opts.jetstream.max_memory = 5;
        fill_jetstream_limits(&mut opts);
        assert_eq!(opts.jetstream.max_memory, 5);
        let _ = std::fs::remove_dir_all(dir);
    }
}
