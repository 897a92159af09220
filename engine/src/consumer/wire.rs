//! What travels to and from a consumer as bytes: the ack reply subject, ack
//! bodies, pull request bodies and status message headers, as nats-server's
//! `consumer.go` forms and reads them.
use std::time::Duration;

use serde::Deserialize;

/// Header names nats-server puts on status messages and deliveries.
pub const HDR_PENDING_MSGS: &str = "Nats-Pending-Messages";
/// Bytes left in a pull request.
pub const HDR_PENDING_BYTES: &str = "Nats-Pending-Bytes";
/// Last consumer sequence, on idle heartbeats.
pub const HDR_LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// Last stream sequence, on idle heartbeats.
pub const HDR_LAST_STREAM: &str = "Nats-Last-Stream";
/// The outstanding flow control reply a stalled push consumer waits for.
pub const HDR_CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";
/// Payload size of a `headers_only` delivery.
pub const HDR_MSG_SIZE: &str = "Nats-Msg-Size";
/// The pin of a `pinned_client` consumer, on its deliveries.
pub const HDR_PIN_ID: &str = "Nats-Pin-Id";

/// What an ack reply subject says about the delivery it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckReply {
    /// Stream sequence of the delivered message.
    pub stream_seq: u64,
    /// Consumer (delivery) sequence.
    pub consumer_seq: u64,
    /// Delivery count at the time of delivery.
    pub delivered: u64,
    /// Message timestamp, ns since the Unix epoch.
    pub ts: i64,
    /// Messages pending for the consumer after this delivery.
    pub pending: u64,
}

/// Form the v1 ack reply nats-server 2.9/2.10 puts on every delivery:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`.
pub fn ack_reply(stream: &str, consumer: &str, r: &AckReply) -> String {
    let mut s = String::with_capacity(8 + stream.len() + consumer.len() + 5 * 21);
    s.push_str("$JS.ACK.");
    s.push_str(stream);
    s.push('.');
    s.push_str(consumer);
    // Negative timestamps do not occur (ns since the epoch); 0 stands in.
    for n in [
        r.delivered,
        r.stream_seq,
        r.consumer_seq,
        u64::try_from(r.ts).unwrap_or(0),
        r.pending,
    ] {
        s.push('.');
        push_decimal(&mut s, n);
    }
    s
}

/// Append the decimal digits of `n` (no formatting machinery: this runs for
/// every delivery).
fn push_decimal(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// Read an ack reply subject: the v1 form (9 tokens) or the v2 form with
/// domain and account hash tokens
/// (`$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>...]`,
/// 11 tokens or more). Returns the stream and consumer names with the numbers,
/// or `None` for anything else (nats-server then acks sequence 0: nothing).
pub fn parse_ack_reply(subject: &str) -> Option<(&str, &str, AckReply)> {
    // The first 11 tokens (all a v2 subject's fields) and the count.
    let mut tokens = [""; 11];
    let mut count = 0;
    let mut start = 0;
    let bytes = subject.as_bytes();
    for end in (0..bytes.len())
        .filter(|&i| bytes[i] == b'.')
        .chain([bytes.len()])
    {
        if let Some(slot) = tokens.get_mut(count) {
            // '.' is ASCII: both ends are char boundaries.
            *slot = &subject[start..end];
        }
        count += 1;
        start = end + 1;
    }
    if count < 2 || tokens[0] != "$JS" || tokens[1] != "ACK" {
        return None;
    }
    let off = match count {
        9 => 2,
        n if n >= 11 => 4,
        _ => return None,
    };
    let num = |i: usize| -> Option<u64> {
        let t = tokens[off + i];
        if t.is_empty() || t.len() > 20 {
            return None;
        }
        t.bytes().try_fold(0u64, |n, b| {
            let d = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
            n.checked_mul(10)?.checked_add(d)
        })
    };
    Some((
        tokens[off],
        tokens[off + 1],
        AckReply {
            delivered: num(2)?,
            stream_seq: num(3)?,
            consumer_seq: num(4)?,
            ts: i64::try_from(num(5)?).ok()?,
            pending: num(6)?,
        },
    ))
}

/// An ack body, as nats-server tells them apart (prefix matches where it uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    /// Empty, `+ACK` or the deprecated `+OK`.
    Ack,
    /// `-NAK`, with an optional delay (` {"delay": ns}` or ` <Go duration>`).
    /// A delay that does not parse is a plain NAK, as in nats-server.
    Nak(Option<Duration>),
    /// `+WPI`: still working, restart the ack wait.
    Progress,
    /// `+NXT` with the rest of the body as a pull request (batch or JSON).
    Next(Vec<u8>),
    /// `+TERM` with an optional reason.
    Term(String),
    /// Anything else: ignored (but a reply still gets its empty answer).
    Unknown,
}

#[derive(Deserialize)]
struct NakOptions {
    #[serde(default)]
    delay: i64,
}

/// Classify an ack body (the payload after any headers).
pub fn parse_ack(body: &[u8]) -> AckKind {
    if body.is_empty() || body == b"+ACK" || body == b"+OK" {
        return AckKind::Ack;
    }
    if let Some(rest) = body.strip_prefix(b"+NXT") {
        return AckKind::Next(rest.to_vec());
    }
    if let Some(rest) = body.strip_prefix(b"-NAK") {
        let arg = rest.trim_ascii();
        if arg.is_empty() {
            return AckKind::Nak(None);
        }
        let delay = if arg[0] == b'{' {
            serde_json::from_slice::<NakOptions>(arg)
                .ok()
                .map(|n| Duration::from_nanos(n.delay.max(0) as u64))
        } else {
            std::str::from_utf8(arg).ok().and_then(parse_go_duration)
        };
        return AckKind::Nak(delay);
    }
    if body == b"+WPI" {
        return AckKind::Progress;
    }
    if let Some(rest) = body.strip_prefix(b"+TERM") {
        return AckKind::Term(String::from_utf8_lossy(rest.trim_ascii()).into_owned());
    }
    AckKind::Unknown
}

/// Go's `time.ParseDuration` for non-negative values ("1.5s", "1m30s", "250ms").
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    Some(Duration::from_nanos(total as u64))
}

/// A parsed `$JS.API.CONSUMER.MSG.NEXT` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Messages wanted.
    pub batch: i64,
    /// How long the request lives; `None`: until satisfied.
    pub expires: Option<Duration>,
    /// Byte budget (subject + reply + headers + payload per message); 0: none.
    pub max_bytes: i64,
    /// Answer at once when nothing is pending.
    pub no_wait: bool,
    /// Heartbeat interval to the requester; zero: none.
    pub idle_heartbeat: Duration,
    /// The priority group fields; every JSON request has them (nats-server
    /// embeds its `PriorityGroup` in the request), a plain batch has none.
    pub priority: Option<PriorityRequest>,
}

/// The priority group part of a pull request [2.11].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorityRequest {
    /// `group`.
    pub group: String,
    /// `min_pending`: overflow only past this many pending messages.
    pub min_pending: i64,
    /// `min_ack_pending`: overflow only past this many unacknowledged.
    pub min_ack_pending: i64,
    /// `id`: the `Nats-Pin-Id` the client holds.
    pub id: String,
    /// `priority` (0..=9) for `prioritized`.
    pub priority: i64,
}

#[derive(Deserialize)]
struct NextJson {
    #[serde(default)]
    batch: i64,
    #[serde(default)]
    expires: i64,
    #[serde(default)]
    max_bytes: i64,
    #[serde(default)]
    no_wait: bool,
    #[serde(default)]
    idle_heartbeat: i64,
    // Clients send `null` for the priority fields they do not set.
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    min_pending: Option<i64>,
    #[serde(default)]
    min_ack_pending: Option<i64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
}

/// Parse a pull request body as nats-server's `nextReqFromMsg`: empty is a
/// batch of 1, a number is the batch, JSON is the full request, anything else
/// is a batch of 1. The error text follows `Bad Request - ` in a 400 status.
pub fn parse_pull_request(body: &[u8]) -> Result<PullRequest, String> {
    let req = body.trim_ascii();
    let mut pr = PullRequest {
        batch: 1,
        expires: None,
        max_bytes: 0,
        no_wait: false,
        idle_heartbeat: Duration::ZERO,
        priority: None,
    };
    if req.first() == Some(&b'{') {
        let j: NextJson = serde_json::from_slice(req).map_err(|e| e.to_string())?;
        if j.idle_heartbeat > 0 && j.idle_heartbeat.saturating_mul(2) > j.expires {
            return Err("heartbeat value too large".into());
        }
        pr.batch = j.batch;
        pr.max_bytes = j.max_bytes;
        pr.no_wait = j.no_wait;
        pr.idle_heartbeat = Duration::from_nanos(j.idle_heartbeat.max(0) as u64);
        if j.expires > 0 {
            pr.expires = Some(Duration::from_nanos(j.expires as u64));
        }
        pr.priority = Some(PriorityRequest {
            group: j.group.unwrap_or_default(),
            min_pending: j.min_pending.unwrap_or(0),
            min_ack_pending: j.min_ack_pending.unwrap_or(0),
            id: j.id.unwrap_or_default(),
            priority: j.priority.unwrap_or(0),
        });
    } else if let Some(n) = std::str::from_utf8(req)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        pr.batch = n;
    }
    Ok(pr)
}

/// `NATS/1.0 <code> <description>\r\n\r\n`.
pub fn status(code: u16, description: &str) -> Vec<u8> {
    format!("NATS/1.0 {code} {description}\r\n\r\n").into_bytes()
}

/// A status with the pull request's remaining messages and bytes.
pub fn status_pending(code: u16, description: &str, msgs: i64, bytes: i64) -> Vec<u8> {
    format!(
        "NATS/1.0 {code} {description}\r\n{HDR_PENDING_MSGS}: {msgs}\r\n{HDR_PENDING_BYTES}: {bytes}\r\n\r\n"
    )
    .into_bytes()
}

/// `100 Idle Heartbeat` with the last sequences, plus the stalled flow control
/// reply when one is outstanding.
pub fn idle_heartbeat(last_consumer: u64, last_stream: u64, stalled: Option<&str>) -> Vec<u8> {
    let mut s = format!(
        "NATS/1.0 100 Idle Heartbeat\r\n{HDR_LAST_CONSUMER}: {last_consumer}\r\n{HDR_LAST_STREAM}: {last_stream}\r\n"
    );
    if let Some(fc) = stalled {
        s.push_str(&format!("{HDR_CONSUMER_STALLED}: {fc}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// `hdr` (or a bare `NATS/1.0` block) with one more header line.
pub fn add_header(hdr: &[u8], name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(hdr.len() + name.len() + value.len() + 16);
    if hdr.len() >= 4 && hdr.ends_with(b"\r\n\r\n") {
        out.extend_from_slice(&hdr[..hdr.len() - 2]);
    } else {
        out.extend_from_slice(b"NATS/1.0\r\n");
    }
    out.extend_from_slice(format!("{name}: {value}\r\n\r\n").as_bytes());
    out
}

/// The header block of a `headers_only` delivery: the message's headers (or a
/// bare `NATS/1.0`) plus `Nats-Msg-Size`.
pub fn headers_only(hdr: &[u8], payload_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hdr.len() + 32);
    if hdr.len() >= 2 && hdr.ends_with(b"\r\n\r\n") {
        out.extend_from_slice(&hdr[..hdr.len() - 2]);
    } else {
        out.extend_from_slice(b"NATS/1.0\r\n");
    }
    out.extend_from_slice(format!("{HDR_MSG_SIZE}: {payload_len}\r\n\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_reply_round_trips_and_odd_forms_are_refused() {
        let r = AckReply {
            delivered: 1,
            stream_seq: 18_446_744_073_709_551_615,
            consumer_seq: 0,
            ts: 1_700_000_000_123_456_789,
            pending: 42,
        };
        let s = ack_reply("ORDERS", "c-1", &r);
        assert_eq!(
            s,
            "$JS.ACK.ORDERS.c-1.1.18446744073709551615.0.1700000000123456789.42"
        );
        assert_eq!(parse_ack_reply(&s), Some(("ORDERS", "c-1", r)));
        let v2 =
            "$JS.ACK.hub.ACCHASH.ORDERS.c-1.1.18446744073709551615.0.1700000000123456789.42.xyz";
        assert_eq!(parse_ack_reply(v2), Some(("ORDERS", "c-1", r)));
        for bad in [
            "$JS.ACK.S.C.1.2.3.4",
            "$JS.ACK.S.C.1.2.3.4.5.6",
            "$JS.ACK.S.C.1.2.x.4.5",
            "$JS.ACK.S.C.1..3.4.5",
            "$JS.ACK.S.C.1.18446744073709551616.3.4.5",
            "$JS.ACK.S.C.1.2.3.9223372036854775808.5",
            "$JS.NAK.S.C.1.2.3.4.5",
            "",
        ] {
            assert_eq!(parse_ack_reply(bad), None, "{bad}");
        }
    }
}
