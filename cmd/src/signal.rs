//! `natsd --signal <cmd>[=<pid or pid file>]`: signal a running server, as
//! `nats-server --signal` does: `stop` (SIGKILL), `quit` (SIGINT), `term`
//! (SIGTERM), `reopen` (SIGUSR1), `reload` (SIGHUP), `ldm` (SIGUSR2).
use std::path::Path;

/// The signal a command name stands for.
fn signal_for(command: &str) -> Result<libc::c_int, String> {
    Ok(match command {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "term" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        other => return Err(format!("unknown signal \"{other}\"")),
    })
}

/// A pid given as a number or as the path of a pid file.
fn resolve_pid(target: &str) -> Result<i32, String> {
    if let Ok(pid) = target.parse::<i32>() {
        return Ok(pid);
    }
    let text = std::fs::read_to_string(Path::new(target))
        .map_err(|e| format!("could not read pid file {target}: {e}"))?;
    text.trim()
        .parse::<i32>()
        .map_err(|_| format!("invalid pid file {target}: {:?}", text.trim()))
}

/// The one running process called `natsd` (other than this one).
fn find_natsd() -> Result<i32, String> {
    let me = std::process::id().to_string();
    let entries = std::fs::read_dir("/proc").map_err(|e| format!("reading /proc: {e}"))?;
    let pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.parse::<i32>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == "natsd" && name != me).then_some(pid)
        })
        .collect();
    match pids.as_slice() {
        [pid] => Ok(*pid),
        [] => Err("no natsd process found".to_string()),
        _ => Err(format!(
            "multiple natsd processes running ({pids:?}); name one: --signal <cmd>=<pid>"
        )),
    }
}

/// Send the signal `spec` (`cmd[=target]`) names; `pid_file` is `-P`.
pub fn send(spec: &str, pid_file: Option<&str>) -> Result<(), String> {
    let (command, target) = match spec.split_once('=') {
        Some((c, t)) => (c, Some(t)),
        None => (spec, None),
    };
    let signal = signal_for(&command.to_ascii_lowercase())?;
    let pid = match target.or(pid_file) {
        Some(t) => resolve_pid(t)?,
        None => find_natsd()?,
    };
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a
    // bad pid is an error return.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        return Err(format!(
            "signal {command} to pid {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_nats_server_signals() {
        assert_eq!(signal_for("reload"), Ok(libc::SIGHUP));
        assert_eq!(signal_for("ldm"), Ok(libc::SIGUSR2));
        assert_eq!(signal_for("reopen"), Ok(libc::SIGUSR1));
        assert_eq!(signal_for("quit"), Ok(libc::SIGINT));
        assert_eq!(signal_for("term"), Ok(libc::SIGTERM));
        assert_eq!(signal_for("stop"), Ok(libc::SIGKILL));
        assert!(signal_for("nope").is_err());
    }

    #[test]
    fn pid_from_number_or_file() {
        assert_eq!(resolve_pid("42"), Ok(42));
        let path = std::env::temp_dir().join(format!("natsd-sig-{}.pid", std::process::id()));
        std::fs::write(&path, "1234").unwrap();
        assert_eq!(resolve_pid(path.to_str().unwrap()), Ok(1234));
        std::fs::remove_file(&path).unwrap();
        assert!(resolve_pid("/nonexistent/natsd.pid").is_err());
    }
}
