//! The server's CPU time and resident memory, from Linux `/proc`.
use std::fs;

/// Clock ticks per second of `utime`/`stime`. `USER_HZ` is 100 on every
/// Linux architecture that natsd targets (the kernel's ABI value, not `HZ`).
const USER_HZ: u64 = 100;

/// utime + stime of process `pid`, in microseconds (10 ms resolution).
pub fn cpu_us(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_stat_cpu_ticks(&text)
        .map(|ticks| ticks * (1_000_000 / USER_HZ))
        .ok_or_else(|| format!("{path}: unexpected format"))
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_status_rss_kib(&text).ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// Fields 14 and 15 (utime, stime) of `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may hold spaces, so count from the last `)`.
fn parse_stat_cpu_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ')' come field 3 (state) onwards: utime is field 14, 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_rss_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_name() {
        let stat = "1234 (nats server) S 1 1234 1234 0 -1 4194560 2500 0 0 0 \
                    150 37 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(187));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_rss() {
        let status = "Name:\tnatsd\nVmPeak:\t  10000 kB\nVmRSS:\t    5120 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss_kib(status), Some(5120));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        cpu_us(me).unwrap();
    }
}
