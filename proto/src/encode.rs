//! Encoders for every op, writing into the caller's buffer.
//!
//! Each function appends one complete op (or, for the `*_control`
//! functions, one control line with its CRLF) to `buf`. They reserve the
//! space they need once and never allocate anything else. Arguments are
//! written as given: validating subjects and sids is the caller's job.
//!
//! ## Format
//!
//! The bytes match what nats-server 2.9.10 writes (checked against its wire
//! output): single spaces between arguments, `\r\n` after the control line
//! and after every payload, `INFO {json} \r\n` with a space before the CRLF.
use bytes::{BufMut, BytesMut};

use crate::{ClientOp, ServerOp};

/// Longest decimal form of a `u64`.
pub(crate) const MAX_DIGITS: usize = 20;

/// Appends the decimal digits of `n`.
pub(crate) fn put_uint(buf: &mut BytesMut, mut n: u64) {
    let mut tmp = [0u8; MAX_DIGITS];
    let mut i = MAX_DIGITS;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&tmp[i..]);
}

fn put_arg(buf: &mut BytesMut, arg: &[u8]) {
    buf.put_u8(b' ');
    buf.put_slice(arg);
}

fn reply_len(reply: Option<&[u8]>) -> usize {
    reply.map_or(0, |r| r.len() + 1)
}

/// `MSG <subject> <sid> [reply] <#bytes>\r\n<payload>\r\n`.
pub fn msg(buf: &mut BytesMut, subject: &[u8], sid: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    buf.reserve(
        4 + subject.len() + 1 + sid.len() + reply_len(reply) + 1 + MAX_DIGITS + 4 + payload.len(),
    );
    msg_control(buf, subject, sid, reply, payload.len());
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// The control line of a `MSG`, CRLF included: `MSG <subject> <sid> [reply] <#bytes>\r\n`.
/// The caller sends the payload and its `\r\n` after it (vectored writes).
pub fn msg_control(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    payload_len: usize,
) {
    buf.reserve(4 + subject.len() + 1 + sid.len() + reply_len(reply) + 1 + MAX_DIGITS + 2);
    buf.put_slice(b"MSG ");
    buf.put_slice(subject);
    put_arg(buf, sid);
    if let Some(r) = reply {
        put_arg(buf, r);
    }
    buf.put_u8(b' ');
    put_uint(buf, payload_len as u64);
    buf.put_slice(b"\r\n");
}

/// `HMSG <subject> <sid> [reply] <#hdr> <#total>\r\n<headers><payload>\r\n`.
pub fn hmsg(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    let total = headers.len() + payload.len();
    buf.reserve(
        5 + subject.len() + 1 + sid.len() + reply_len(reply) + 2 * (1 + MAX_DIGITS) + 4 + total,
    );
    hmsg_control(buf, subject, sid, reply, headers.len(), total);
    buf.put_slice(headers);
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// The control line of an `HMSG`, CRLF included:
/// `HMSG <subject> <sid> [reply] <#hdr> <#total>\r\n`.
pub fn hmsg_control(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    hdr_len: usize,
    total_len: usize,
) {
    buf.reserve(5 + subject.len() + 1 + sid.len() + reply_len(reply) + 2 * (1 + MAX_DIGITS) + 2);
    buf.put_slice(b"HMSG ");
    buf.put_slice(subject);
    put_arg(buf, sid);
    if let Some(r) = reply {
        put_arg(buf, r);
    }
    buf.put_u8(b' ');
    put_uint(buf, hdr_len as u64);
    buf.put_u8(b' ');
    put_uint(buf, total_len as u64);
    buf.put_slice(b"\r\n");
}

/// `PUB <subject> [reply] <#bytes>\r\n<payload>\r\n`.
pub fn pub_msg(buf: &mut BytesMut, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    buf.reserve(4 + subject.len() + reply_len(reply) + 1 + MAX_DIGITS + 4 + payload.len());
    buf.put_slice(b"PUB ");
    buf.put_slice(subject);
    if let Some(r) = reply {
        put_arg(buf, r);
    }
    buf.put_u8(b' ');
    put_uint(buf, payload.len() as u64);
    buf.put_slice(b"\r\n");
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// `HPUB <subject> [reply] <#hdr> <#total>\r\n<headers><payload>\r\n`.
pub fn hpub(
    buf: &mut BytesMut,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    let total = headers.len() + payload.len();
    buf.reserve(5 + subject.len() + reply_len(reply) + 2 * (1 + MAX_DIGITS) + 4 + total);
    buf.put_slice(b"HPUB ");
    buf.put_slice(subject);
    if let Some(r) = reply {
        put_arg(buf, r);
    }
    buf.put_u8(b' ');
    put_uint(buf, headers.len() as u64);
    buf.put_u8(b' ');
    put_uint(buf, total as u64);
    buf.put_slice(b"\r\n");
    buf.put_slice(headers);
    buf.put_slice(payload);
    buf.put_slice(b"\r\n");
}

/// `SUB <subject> [queue] <sid>\r\n`.
pub fn sub(buf: &mut BytesMut, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
    buf.reserve(4 + subject.len() + reply_len(queue) + 1 + sid.len() + 2);
    buf.put_slice(b"SUB ");
    buf.put_slice(subject);
    if let Some(q) = queue {
        put_arg(buf, q);
    }
    put_arg(buf, sid);
    buf.put_slice(b"\r\n");
}

/// `UNSUB <sid> [max_msgs]\r\n`.
pub fn unsub(buf: &mut BytesMut, sid: &[u8], max: Option<u64>) {
    buf.reserve(6 + sid.len() + 1 + MAX_DIGITS + 2);
    buf.put_slice(b"UNSUB ");
    buf.put_slice(sid);
    if let Some(m) = max {
        buf.put_u8(b' ');
        put_uint(buf, m);
    }
    buf.put_slice(b"\r\n");
}

/// `CONNECT <json>\r\n`.
pub fn connect(buf: &mut BytesMut, json: &[u8]) {
    buf.reserve(8 + json.len() + 2);
    buf.put_slice(b"CONNECT ");
    buf.put_slice(json);
    buf.put_slice(b"\r\n");
}

/// `INFO <json> \r\n`: nats-server 2.9.10 joins `INFO`, the JSON and CRLF
/// with spaces, so a space precedes the CRLF.
pub fn info(buf: &mut BytesMut, json: &[u8]) {
    buf.reserve(5 + json.len() + 3);
    buf.put_slice(b"INFO ");
    buf.put_slice(json);
    buf.put_slice(b" \r\n");
}

/// `+OK\r\n`.
pub fn ok(buf: &mut BytesMut) {
    buf.put_slice(b"+OK\r\n");
}

/// `-ERR '<text>'\r\n`.
pub fn err(buf: &mut BytesMut, text: &[u8]) {
    buf.reserve(6 + text.len() + 3);
    buf.put_slice(b"-ERR '");
    buf.put_slice(text);
    buf.put_slice(b"'\r\n");
}

/// `PING\r\n`.
pub fn ping(buf: &mut BytesMut) {
    buf.put_slice(b"PING\r\n");
}

/// `PONG\r\n`.
pub fn pong(buf: &mut BytesMut) {
    buf.put_slice(b"PONG\r\n");
}

/// Any [`ClientOp`], in the form the encoders above give it.
pub fn client_op(buf: &mut BytesMut, op: &ClientOp) {
    match op {
        ClientOp::Connect(json) => connect(buf, json),
        ClientOp::Pub {
            subject,
            reply,
            payload,
        } => pub_msg(buf, subject, reply.as_deref(), payload),
        ClientOp::HPub {
            subject,
            reply,
            headers,
            payload,
        } => hpub(buf, subject, reply.as_deref(), headers, payload),
        ClientOp::Sub {
            subject,
            queue,
            sid,
        } => sub(buf, subject, queue.as_deref(), sid),
        ClientOp::Unsub { sid, max } => unsub(buf, sid, *max),
        ClientOp::Ping => ping(buf),
        ClientOp::Pong => pong(buf),
    }
}

/// Any [`ServerOp`], in the form the encoders above give it.
pub fn server_op(buf: &mut BytesMut, op: &ServerOp) {
    match op {
        ServerOp::Info(json) => info(buf, json),
        ServerOp::Msg {
            subject,
            sid,
            reply,
            payload,
        } => msg(buf, subject, sid, reply.as_deref(), payload),
        ServerOp::HMsg {
            subject,
            sid,
            reply,
            headers,
            payload,
        } => hmsg(buf, subject, sid, reply.as_deref(), headers, payload),
        ServerOp::Ok => ok(buf),
        ServerOp::Err(text) => err(buf, text),
        ServerOp::Ping => ping(buf),
        ServerOp::Pong => pong(buf),
    }
}

#[cfg(test)]
mod tests {
    //! Byte-exact encoder output; the MSG/HMSG/INFO/-ERR forms are the bytes
    //! nats-server 2.9.10 sent on this machine (FEATURES "Observed on 2.9.10").
    use super::*;

    fn out(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        f(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn encoder_output_table() {
        let table: Vec<(Vec<u8>, &[u8])> = vec![
            (
                out(|b| msg(b, b"foo", b"1", None, b"hi")),
                b"MSG foo 1 2\r\nhi\r\n",
            ),
            (
                out(|b| msg(b, b"foo", b"22", Some(b"bar"), b"")),
                b"MSG foo 22 bar 0\r\n\r\n",
            ),
            (
                out(|b| msg_control(b, b"foo", b"1", None, 1234)),
                b"MSG foo 1 1234\r\n",
            ),
            (
                out(|b| hmsg(b, b"_INBOX.x", b"1", None, b"NATS/1.0 503\r\n\r\n", b"")),
                b"HMSG _INBOX.x 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
            ),
            (
                out(|b| hmsg(b, b"foo", b"1", Some(b"r"), b"NATS/1.0\r\n\r\n", b"hi")),
                b"HMSG foo 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            ),
            (
                out(|b| hmsg_control(b, b"foo", b"1", Some(b"r"), 12, 14)),
                b"HMSG foo 1 r 12 14\r\n",
            ),
            (
                out(|b| pub_msg(b, b"foo", None, b"hi")),
                b"PUB foo 2\r\nhi\r\n",
            ),
            (
                out(|b| pub_msg(b, b"foo", Some(b"r"), b"hi")),
                b"PUB foo r 2\r\nhi\r\n",
            ),
            (
                out(|b| hpub(b, b"foo", None, b"NATS/1.0\r\n\r\n", b"hi")),
                b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            ),
            (out(|b| sub(b, b"foo.>", None, b"1")), b"SUB foo.> 1\r\n"),
            (
                out(|b| sub(b, b"foo", Some(b"q"), b"1")),
                b"SUB foo q 1\r\n",
            ),
            (out(|b| unsub(b, b"1", None)), b"UNSUB 1\r\n"),
            (out(|b| unsub(b, b"1", Some(0))), b"UNSUB 1 0\r\n"),
            (
                out(|b| connect(b, b"{\"verbose\":false}")),
                b"CONNECT {\"verbose\":false}\r\n",
            ),
            (out(|b| info(b, b"{}")), b"INFO {} \r\n"),
            (out(ok), b"+OK\r\n"),
            (
                out(|b| err(b, b"Unknown Protocol Operation")),
                b"-ERR 'Unknown Protocol Operation'\r\n",
            ),
            (out(ping), b"PING\r\n"),
            (out(pong), b"PONG\r\n"),
        ];
        for (got, want) in table {
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(want));
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0u64, 7, 9, 10, 99, 100, 1_048_576, u64::MAX] {
            assert_eq!(out(|b| put_uint(b, n)), n.to_string().into_bytes());
        }
    }

    #[test]
    fn encoders_append_to_existing_bytes() {
        let mut buf = BytesMut::from(&b"PONG\r\n"[..]);
        msg(&mut buf, b"a", b"1", None, b"x");
        assert_eq!(&buf[..], b"PONG\r\nMSG a 1 1\r\nx\r\n");
    }
}
