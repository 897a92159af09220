//! `-P file`: the process id, written as nats-server does (decimal, no
//! newline), removed when the guard drops.
use std::path::{Path, PathBuf};

/// Removes the pid file on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Write this process's id to `path`.
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        std::fs::write(path, std::process::id().to_string())?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pid_and_removes_on_drop() {
        let path =
            std::env::temp_dir().join(format!("natsd-pidfile-test-{}.pid", std::process::id()));
        let guard = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        drop(guard);
        assert!(!path.exists());
    }

    #[test]
    fn unwritable_path_is_an_error() {
        assert!(PidFile::create(Path::new("/nonexistent-dir/natsd.pid")).is_err());
    }
}
