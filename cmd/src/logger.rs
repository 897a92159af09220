//! nats-server's log lines on top of `log` and `env_logger`:
//! `[pid] 2006/01/02 15:04:05.000000 [INF] message`.
//!
//! `-D` shows DBG and `-V` TRC (without DBG, as nats-server) for natsd's own
//! crates; dependencies stay at INF. `-T=false` drops the timestamp,
//! `--logtime_utc` prints UTC instead of local time, and `-l file` appends to
//! a file instead of stderr. `RUST_LOG`, when set, replaces the level choice.
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::{OnceLock, RwLock};

use env_logger::fmt::Target;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use log::{Level, LevelFilter, Log, Metadata, Record};
use natsd_engine::options::Options;

/// Log target that turns an error into a fatal (`[FTL]`) line:
/// `log::error!(target: logger::FATAL, "...")`.
pub const FATAL: &str = "fatal";

/// Target prefix of natsd's own crates (`natsd`, `natsd_io`, `natsd_engine`):
/// `-D`/`-V` open their debug and trace lines, not those of dependencies.
const OUR_CRATES: &str = "natsd";

static LOGGER: OnceLock<&'static NatsLogger> = OnceLock::new();

/// Install the global logger for these options.
pub fn init(opts: &Options) -> Result<(), String> {
    let inner = build(opts)?;
    let max = inner.logger.filter();
    let logger: &'static NatsLogger = Box::leak(Box::new(NatsLogger {
        state: RwLock::new(inner),
    }));
    log::set_logger(logger).map_err(|e| e.to_string())?;
    log::set_max_level(max);
    // `set_logger` succeeds once per process, so this cell was empty.
    let _ = LOGGER.set(logger);
    Ok(())
}

/// Rebuild the logger from (reloaded) options: levels, time format and the
/// log file, which is opened again (SIGUSR1 after rotation, SIGHUP reload).
pub fn reconfigure(opts: &Options) -> Result<(), String> {
    let inner = build(opts)?;
    let logger = LOGGER.get().ok_or("the logger is not set up")?;
    log::set_max_level(inner.logger.filter());
    *logger.state.write().unwrap_or_else(|e| e.into_inner()) = inner;
    Ok(())
}

fn build(opts: &Options) -> Result<Inner, String> {
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(LevelFilter::Info)
        .filter_module(OUR_CRATES, level_filter(opts));
    if let Some(filters) = &rust_log {
        builder.parse_filters(filters);
    }
    if let Some(path) = &opts.log_file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("unable to open log file {}: {e}", path.display()))?;
        builder.target(Target::Pipe(Box::new(file)));
    }
    let pid = std::process::id();
    let clock = clock(opts);
    builder.format(move |buf, record| {
        let time = clock.as_ref().map(|tz| tz.to_datetime(Timestamp::now()));
        write_line(buf, pid, time, label(record), record.args())
    });
    Ok(Inner {
        hide_debug: rust_log.is_none() && opts.trace && !opts.debug,
        logger: builder.build(),
    })
}

/// The level `-D`/`-V` ask for.
fn level_filter(opts: &Options) -> LevelFilter {
    if opts.trace {
        LevelFilter::Trace
    } else if opts.debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    }
}

/// The time zone for timestamps, or `None` without them (`-T=false`).
fn clock(opts: &Options) -> Option<TimeZone> {
    match (opts.logtime, opts.logtime_utc) {
        (false, _) => None,
        (true, true) => Some(TimeZone::UTC),
        (true, false) => Some(TimeZone::system()),
    }
}

/// nats-server's three-letter level label.
fn label(record: &Record<'_>) -> &'static str {
    match record.level() {
        Level::Error if record.target() == FATAL => "FTL",
        Level::Error => "ERR",
        Level::Warn => "WRN",
        Level::Info => "INF",
        Level::Debug => "DBG",
        Level::Trace => "TRC",
    }
}

/// One log line, newline included, in nats-server's layout.
fn write_line(
    out: &mut impl Write,
    pid: u32,
    time: Option<DateTime>,
    label: &str,
    message: &std::fmt::Arguments<'_>,
) -> std::io::Result<()> {
    write!(out, "[{pid}] ")?;
    if let Some(t) = time {
        write!(
            out,
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06} ",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.subsec_nanosecond() / 1000
        )?;
    }
    writeln!(out, "[{label}] {message}")
}

/// env_logger's logger, minus DBG lines under `-V` alone (nats-server's
/// trace does not imply debug). Swappable, for reload and log reopening.
struct NatsLogger {
    state: RwLock<Inner>,
}

struct Inner {
    logger: env_logger::Logger,
    hide_debug: bool,
}

impl Inner {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !(self.hide_debug && metadata.level() == Level::Debug) && self.logger.enabled(metadata)
    }
}

impl Log for NatsLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        let inner = self.state.read().unwrap_or_else(|e| e.into_inner());
        if inner.enabled(record.metadata()) {
            inner.logger.log(record);
        }
    }

    fn flush(&self) {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .logger
            .flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: Option<DateTime>, label: &str, message: std::fmt::Arguments<'_>) -> String {
        let mut out = Vec::new();
        write_line(&mut out, 5294, time, label, &message).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_matches_nats_server_layout() {
        let t = jiff::civil::date(2026, 11, 22).at(3, 18, 25, 161_294_999);
        assert_eq!(
            line(Some(t), "INF", format_args!("Starting nats-server")),
            "[5294] 2026/11/22 03:18:25.161294 [INF] Starting nats-server\n"
        );
        let t = jiff::civil::date(987, 1, 2).at(4, 5, 6, 7_000);
        assert_eq!(
            line(Some(t), "INF", format_args!("  Version:  {}", "2.9.0")),
            "[5294] 0987/01/02 04:05:06.000007 [INF]   Version:  2.9.0\n"
        );
    }

    #[test]
    fn line_without_time() {
        assert_eq!(line(None, "DBG", format_args!("x")), "[5294] [DBG] x\n");
    }

    #[test]
    fn labels() {
        let label_of = |level, target| {
            label(
                &Record::builder()
                    .level(level)
                    .target(target)
                    .args(format_args!(""))
                    .build(),
            )
        };
        assert_eq!(label_of(Level::Error, FATAL), "FTL");
        assert_eq!(label_of(Level::Error, "natsd_io"), "ERR");
        assert_eq!(label_of(Level::Warn, "natsd"), "WRN");
        assert_eq!(label_of(Level::Info, "natsd"), "INF");
        assert_eq!(label_of(Level::Debug, "natsd"), "DBG");
        assert_eq!(label_of(Level::Trace, "natsd"), "TRC");
    }

    #[test]
    fn levels_from_flags() {
        let with = |debug, trace| Options {
            debug,
            trace,
            ..Options::default()
        };
        assert_eq!(level_filter(&with(false, false)), LevelFilter::Info);
        assert_eq!(level_filter(&with(true, false)), LevelFilter::Debug);
        assert_eq!(level_filter(&with(false, true)), LevelFilter::Trace);
        assert_eq!(level_filter(&with(true, true)), LevelFilter::Trace);
    }

    #[test]
    fn clock_from_flags() {
        let with = |logtime, logtime_utc| Options {
            logtime,
            logtime_utc,
            ..Options::default()
        };
        assert_eq!(clock(&with(false, true)), None);
        assert_eq!(clock(&with(true, true)), Some(TimeZone::UTC));
        assert!(clock(&with(true, false)).is_some());
    }

    #[test]
    fn trace_alone_hides_debug() {
        let logger = Inner {
            logger: env_logger::Builder::new()
                .filter_level(LevelFilter::Trace)
                .build(),
            hide_debug: true,
        };
        let at = |level| Metadata::builder().level(level).target("natsd").build();
        assert!(logger.enabled(&at(Level::Trace)));
        assert!(logger.enabled(&at(Level::Info)));
        assert!(!logger.enabled(&at(Level::Debug)));
    }
}
