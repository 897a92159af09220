//! Per-message TTLs (`Nats-TTL` on streams with `allow_msg_ttl`, ADR-43)
//! and subject delete markers, as nats-server 2.11 has them.
//!
//! A stream with `allow_msg_ttl` ages its own messages (its store gets no
//! `max_age`): messages with a positive TTL leave at their deadline,
//! `Nats-TTL: never` messages outlive `max_age`, the others leave at
//! `max_age` as usual. The deadlines live in memory and are rebuilt from
//! the stored headers when a file stream is opened.
use std::collections::BTreeSet;
use std::time::Duration;

use natsd_proto::headers;

use crate::consumer::{go_duration, parse_go_duration};

/// The header a publisher sets.
pub const TTL_HEADER: &str = "Nats-TTL";
/// The header that marks a subject delete marker.
pub const MARKER_REASON: &str = "Nats-Marker-Reason";

/// A `Nats-TTL` value as nats-server reads it: `Ok(-1)` never expires,
/// `Ok(0)` no TTL, `Ok(n)` `n` seconds; a Go duration under a second or
/// anything else unreadable is `Err`.
pub fn parse_ttl(value: &str) -> Result<i64, ()> {
    if value.eq_ignore_ascii_case("never") {
        return Ok(-1);
    }
    if let Some(d) = parse_go_duration(value) {
        if d < Duration::from_secs(1) {
            return Err(());
        }
        return Ok(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    value.parse().map_err(|_| ())
}

/// The TTL of a stored header block (0 when none or unreadable).
pub fn stored_ttl(hdr: &[u8]) -> i64 {
    header_value(hdr, TTL_HEADER)
        .and_then(|v| parse_ttl(&v).ok())
        .unwrap_or(0)
}

/// Whether a stored header block is a subject delete marker's.
pub fn is_marker(hdr: &[u8]) -> bool {
    header_value(hdr, MARKER_REASON).is_some()
}

fn header_value(hdr: &[u8], key: &str) -> Option<String> {
    if hdr.is_empty() {
        return None;
    }
    let h = headers::parse(hdr).ok()?;
    h.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The header block of the marker that replaces a subject's last message
/// when `max_age` or its TTL removes it: it rolls the subject up and lives
/// `ttl_ns`.
pub fn marker_header(ttl_ns: i64) -> Vec<u8> {
    let ttl = go_duration(Duration::from_nanos(ttl_ns.unsigned_abs()));
    format!(
        "NATS/1.0\r\n{MARKER_REASON}: MaxAge\r\n{TTL_HEADER}: {ttl}\r\nNats-Rollup: sub\r\n\r\n"
    )
    .into_bytes()
}

/// A header block with `Nats-TTL` set to `secs` (replacing any).
pub fn with_ttl(hdr: &[u8], secs: i64) -> Vec<u8> {
    let mut h = headers::parse(hdr).unwrap_or_default();
    h.remove(TTL_HEADER);
    h.append(TTL_HEADER, secs.to_string());
    h.to_bytes().to_vec()
}

/// A stream's TTL bookkeeping.
#[derive(Debug, Default)]
pub struct Ttls {
    /// `(deadline ns, sequence)` of messages with a positive TTL.
    due: BTreeSet<(i64, u64)>,
    /// Messages that never expire.
    never: BTreeSet<u64>,
    /// When the oldest ageing message reaches `max_age` (may be early: a
    /// pass that finds nothing recomputes it).
    pub age_due: Option<i64>,
}

impl Ttls {
    /// Note a stored message's TTL (`ttl` as [`parse_ttl`] gives it).
    pub fn note(&mut self, seq: u64, ts: i64, ttl: i64) {
        match ttl {
            0 => {}
            t if t < 0 => {
                self.never.insert(seq);
            }
            t => {
                let deadline = ts.saturating_add(t.saturating_mul(1_000_000_000));
                self.due.insert((deadline, seq));
            }
        }
    }

    /// Whether `seq` never expires.
    pub fn is_never(&self, seq: u64) -> bool {
        self.never.contains(&seq)
    }

    /// The sequences whose deadline is at or before `now_ns`, taken out.
    pub fn take_due(&mut self, now_ns: i64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(&(deadline, seq)) = self.due.first() {
            if deadline > now_ns {
                break;
            }
            self.due.pop_first();
            out.push(seq);
        }
        out
    }

    /// Forget a removed message.
    pub fn forget(&mut self, seq: u64) {
        self.never.remove(&seq);
    }

    /// Forget the messages above `seq` (a failed write took them back).
    pub fn forget_above(&mut self, seq: u64) {
        self.due.retain(|&(_, s)| s <= seq);
        self.never.retain(|&s| s <= seq);
    }

    /// The next deadline or age check.
    pub fn next(&self) -> Option<i64> {
        let ttl = self.due.first().map(|(d, _)| *d);
        match (ttl, self.age_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values_as_nats_server_reads_them() {
        assert_eq!(parse_ttl("never"), Ok(-1));
        assert_eq!(parse_ttl("Never"), Ok(-1));
        assert_eq!(parse_ttl("5"), Ok(5));
        assert_eq!(parse_ttl("0"), Err(()), "a zero duration is under a second");
        assert_eq!(parse_ttl("1m30s"), Ok(90));
        assert_eq!(parse_ttl("1.5s"), Ok(1));
        assert_eq!(parse_ttl("500ms"), Err(()));
        assert_eq!(parse_ttl("-1"), Err(()));
        assert_eq!(parse_ttl("soon"), Err(()));
    }

    #[test]
    fn deadlines_in_order_and_never() {
        let mut t = Ttls::default();
        t.note(1, 0, 5);
        t.note(2, 0, 2);
        t.note(3, 0, -1);
        t.note(4, 0, 0);
        assert_eq!(t.next(), Some(2_000_000_000));
        assert_eq!(t.take_due(4_000_000_000), vec![2]);
        assert_eq!(t.take_due(5_000_000_000), vec![1]);
        assert!(t.is_never(3) && !t.is_never(4));
        t.forget(3);
        assert!(!t.is_never(3));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn marker_and_rewritten_headers() {
        let m = marker_header(900_000_000_000);
        assert_eq!(
            m,
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 15m0s\r\nNats-Rollup: sub\r\n\r\n"
        );
        assert!(is_marker(&m));
        assert_eq!(stored_ttl(&m), 900);
        let h = with_ttl(b"NATS/1.0\r\nA: b\r\nNats-TTL: 1\r\n\r\n", 60);
        assert_eq!(h, b"NATS/1.0\r\nA: b\r\nNats-TTL: 60\r\n\r\n");
    }
}
