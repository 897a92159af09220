//! A run's results and their text, JSON and CSV forms.
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::hist::Histogram;

const MIB: f64 = 1024.0 * 1024.0;

/// A message rate over some elapsed time.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Rate {
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Payload MiB per second (payload bytes only, as `nats bench`).
    pub mib_per_sec: f64,
    /// Messages counted.
    pub msgs: u64,
    /// Seconds they took.
    pub secs: f64,
}

impl Rate {
    /// `msgs` messages of `size` payload bytes in `elapsed`.
    pub fn new(msgs: u64, size: usize, elapsed: Duration) -> Rate {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 || msgs == 0 {
            return Rate {
                msgs,
                secs,
                ..Rate::default()
            };
        }
        let per_sec = msgs as f64 / secs;
        Rate {
            msgs_per_sec: per_sec,
            mib_per_sec: per_sec * size as f64 / MIB,
            msgs,
            secs,
        }
    }
}

/// Min, mean and max msgs/s over several clients.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for fewer than two clients (nothing to spread).
    pub fn of(rates: &[Rate]) -> Option<Spread> {
        if rates.len() < 2 {
            return None;
        }
        let v = rates.iter().map(|r| r.msgs_per_sec);
        Some(Spread {
            min: v.clone().fold(f64::INFINITY, f64::min),
            avg: v.clone().sum::<f64>() / rates.len() as f64,
            max: v.fold(0.0, f64::max),
        })
    }
}

/// Round-trip latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub min: f64,
    pub mean: f64,
    /// Round trips measured.
    pub count: u64,
}

impl Latency {
    /// From a histogram of nanoseconds.
    pub fn from_ns(h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50: us(h.percentile(50.0)),
            p90: us(h.percentile(90.0)),
            p99: us(h.percentile(99.0)),
            p999: us(h.percentile(99.9)),
            max: us(h.max()),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            count: h.len(),
        }
    }
}

/// What `--server-pid` measured.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ServerUsage {
    /// Server utime+stime during the measured phase (µs, 10 ms resolution).
    pub cpu_us: u64,
    /// `cpu_us` per delivered message.
    pub cpu_us_per_msg: f64,
    /// VmRSS at the end of the run (KiB).
    pub rss_kib: u64,
}

/// The idle scenario's memory figures.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct IdleUsage {
    /// Connections opened and held.
    pub conns: usize,
    /// Seconds to open them all (sequential CONNECT + PING/PONG).
    pub connect_secs: f64,
    /// Server VmRSS before connecting (KiB; needs `--server-pid`).
    pub rss_before_kib: Option<u64>,
    /// Server VmRSS while holding them (KiB).
    pub rss_after_kib: Option<u64>,
    /// `(after - before) / conns`.
    pub rss_per_conn_kib: Option<f64>,
}

/// Everything one run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub server: String,
    /// Server's `INFO.version` (and `natsd` version when it is natsd).
    pub server_version: String,
    pub size: usize,
    pub pubs: usize,
    pub subs: usize,
    /// Messages published (requests, for reqrep).
    pub sent: u64,
    /// Messages that should reach subscribers.
    pub expected: u64,
    /// Messages that reached subscribers.
    pub received: u64,
    /// `expected - received`.
    pub lost: u64,
    /// Messages the server delivered (the divisor of CPU per message).
    pub delivered: u64,
    /// Aggregate publisher rate: all sent over first start to last flush.
    pub publish: Option<Rate>,
    /// Aggregate subscriber rate: all received from the start of publishing
    /// to the last message.
    pub subscribe: Option<Rate>,
    /// Per-publisher msgs/s spread (several publishers only).
    pub publish_spread: Option<Spread>,
    /// Per-subscriber msgs/s spread (several subscribers only).
    pub subscribe_spread: Option<Spread>,
    /// Request/reply round trips.
    pub latency_us: Option<Latency>,
    pub server_usage: Option<ServerUsage>,
    pub idle: Option<IdleUsage>,
    /// JetStream: server RSS growth per stored message in bytes (from
    /// before the stream was created to after the last ack; needs
    /// `--server-pid`; meaningful for memory streams).
    pub stored_rss_per_msg: Option<f64>,
    /// Slow consumers, `-ERR`s, closed connections, measurement failures.
    pub errors: Vec<String>,
}

impl Report {
    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} ({}): {} B payload, {} pub, {} sub",
            self.scenario, self.server, self.server_version, self.size, self.pubs, self.subs
        );
        let rate = |r: &Rate| {
            format!(
                "{:>12.0} msgs/s {:>9.2} MiB/s ({} msgs in {:.3} s)",
                r.msgs_per_sec, r.mib_per_sec, r.msgs, r.secs
            )
        };
        let spread = |sp: &Spread| {
            format!(
                "  per client msgs/s min {:.0} avg {:.0} max {:.0}",
                sp.min, sp.avg, sp.max
            )
        };
        if let Some(r) = &self.publish {
            let _ = writeln!(s, "  pub {}", rate(r));
        }
        if let Some(sp) = &self.publish_spread {
            let _ = writeln!(s, "  {}", spread(sp));
        }
        if let Some(r) = &self.subscribe {
            let _ = writeln!(s, "  sub {}", rate(r));
        }
        if let Some(sp) = &self.subscribe_spread {
            let _ = writeln!(s, "  {}", spread(sp));
        }
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                s,
                "  latency µs: p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} (min {:.1} mean {:.1})",
                l.p50, l.p90, l.p99, l.p999, l.max, l.min, l.mean
            );
        }
        if self.scenario != "idle" {
            let _ = writeln!(
                s,
                "  sent {} received {} expected {} lost {}",
                self.sent, self.received, self.expected, self.lost
            );
        }
        if let Some(u) = &self.server_usage {
            let _ = writeln!(
                s,
                "  server cpu {:.3} s, {:.3} µs per delivered msg ({}), rss {} KiB",
                u.cpu_us as f64 / 1e6,
                u.cpu_us_per_msg,
                self.delivered,
                u.rss_kib
            );
        }
        if let Some(i) = &self.idle {
            let _ = write!(
                s,
                "  {} idle conns opened in {:.3} s",
                i.conns, i.connect_secs
            );
            if let (Some(b), Some(a), Some(per)) =
                (i.rss_before_kib, i.rss_after_kib, i.rss_per_conn_kib)
            {
                let _ = write!(
                    s,
                    ": server rss {b} -> {a} KiB, {per:.2} KiB per connection"
                );
            }
            s.push('\n');
        }
        if let Some(b) = self.stored_rss_per_msg {
            let _ = writeln!(s, "  server rss growth {b:.1} B per stored msg");
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        // A struct of numbers, strings and options: serialising cannot fail.
        serde_json::to_string(self).expect("Report always serialises")
    }

    /// CSV header line (no newline).
    pub fn csv_header() -> &'static str {
        "scenario,server,size,pubs,subs,sent,expected,received,lost,\
         pub_msgs_per_sec,pub_mib_per_sec,sub_msgs_per_sec,sub_mib_per_sec,\
         sub_min,sub_avg,sub_max,p50_us,p90_us,p99_us,p999_us,max_us,\
         server_cpu_us_per_msg,server_rss_kib,idle_rss_per_conn_kib,stored_rss_per_msg,errors"
    }

    /// One CSV row matching [`Report::csv_header`] (no newline).
    pub fn csv_row(&self) -> String {
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let f = |v: Option<f64>| opt(v.map(|v| format!("{v:.3}")));
        let errors = self.errors.join("; ").replace('"', "'");
        [
            self.scenario.to_string(),
            self.server.clone(),
            self.size.to_string(),
            self.pubs.to_string(),
            self.subs.to_string(),
            self.sent.to_string(),
            self.expected.to_string(),
            self.received.to_string(),
            self.lost.to_string(),
            f(self.publish.map(|r| r.msgs_per_sec)),
            f(self.publish.map(|r| r.mib_per_sec)),
            f(self.subscribe.map(|r| r.msgs_per_sec)),
            f(self.subscribe.map(|r| r.mib_per_sec)),
            f(self.subscribe_spread.map(|s| s.min)),
            f(self.subscribe_spread.map(|s| s.avg)),
            f(self.subscribe_spread.map(|s| s.max)),
            f(self.latency_us.map(|l| l.p50)),
            f(self.latency_us.map(|l| l.p90)),
            f(self.latency_us.map(|l| l.p99)),
            f(self.latency_us.map(|l| l.p999)),
            f(self.latency_us.map(|l| l.max)),
            f(self.server_usage.map(|u| u.cpu_us_per_msg)),
            opt(self.server_usage.map(|u| u.rss_kib)),
            f(self.idle.and_then(|i| i.rss_per_conn_kib)),
            f(self.stored_rss_per_msg),
            format!("\"{errors}\""),
        ]
        .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_spread() {
        let r = Rate::new(2_000_000, 1024, Duration::from_secs(2));
        assert_eq!(r.msgs_per_sec, 1_000_000.0);
        assert!((r.mib_per_sec - 976.5625).abs() < 1e-9);
        assert_eq!(Rate::new(0, 16, Duration::ZERO).msgs_per_sec, 0.0);
        let rates = [
            Rate::new(10, 1, Duration::from_secs(1)),
            Rate::new(30, 1, Duration::from_secs(1)),
        ];
        let sp = Spread::of(&rates).unwrap();
        assert_eq!((sp.min, sp.avg, sp.max), (10.0, 20.0, 30.0));
        assert!(Spread::of(&rates[..1]).is_none());
    }

    #[test]
    fn csv_row_has_header_arity() {
        let r = Report {
            scenario: "pub",
            server: "nats://127.0.0.1:4222".into(),
            server_version: "2.9.10".into(),
            size: 16,
            pubs: 1,
            subs: 0,
            sent: 5,
            expected: 0,
            received: 0,
            lost: 0,
            delivered: 5,
            publish: Some(Rate::new(5, 16, Duration::from_secs(1))),
            subscribe: None,
            publish_spread: None,
            subscribe_spread: None,
            latency_us: None,
            server_usage: None,
            idle: None,
            stored_rss_per_msg: None,
            errors: vec!["a, \"b\"".into()],
        };
        let cols = |s: &str| s.split(',').count();
        // The errors column quotes its commas away; count fields before it.
        let row = r.csv_row();
        let before_errors = row.rsplit_once(",\"").unwrap().0;
        assert_eq!(cols(before_errors) + 1, cols(Report::csv_header()));
        assert!(row.ends_with("\"a, 'b'\""));
        assert!(r.json().contains("\"scenario\":\"pub\""));
    }
}
