//! Encoders for every route op, writing into the caller's buffer.
//!
//! Each function appends one complete op (or, for the `*_control`
//! functions, one control line with its CRLF) to `buf`, reserving the space
//! once and allocating nothing else. Arguments are written as given: pass
//! `account: None` on a route pinned to one account, and never empty names.
//!
//! `INFO`, `CONNECT`, `PING`, `PONG`, `+OK` and `-ERR` are the same bytes as
//! in the client protocol (nats-server writes route `INFO` with
//! `generateInfoJSON`, `INFO {json} \r\n`, and route `CONNECT` as
//! `CONNECT {json}\r\n`), so they are re-exported from [`crate::encode`].
//!
//! ## Format
//!
//! As nats-server's `addRouteSubOrUnsubProtoToBuf` and
//! `msgHeaderForRouteOrLeaf` write them: single spaces, the account unless
//! pinned, a queue weight only on `RS+`/`LS+`, and a message's queue groups
//! after a `+ <reply>` or `|` marker:
//!
//! ```text
//! RS+ $G foo q 2\r\n                      LS+ hub $G foo\r\n
//! RS- $G foo q\r\n                        LS- hub $G foo\r\n  (origin when lnocu)
//! RMSG $G foo bar 5\r\nhello\r\n          RMSG $G foo + bar q1 q2 5\r\nhello\r\n
//! RMSG $G foo | q1 5\r\nhello\r\n         HMSG $G foo 12 17\r\nNATS/1.0\r\n\r\nhello\r\n
//! LMSG hub $G foo 0 5\r\nhello\r\n        (an LMSG always has a header size)
//! ```
use bytes::{BufMut, BytesMut};

use super::ops::{RemoteSub, RemoteUnsub, RouteOp, RoutedMsg};
use crate::encode::{put_uint, MAX_DIGITS};

pub use crate::encode::{connect, err, info, ok, ping, pong};

fn put_arg(buf: &mut BytesMut, arg: &[u8]) {
    buf.put_slice(arg);
    buf.put_u8(b' ');
}

fn opt_len<B: AsRef<[u8]>>(arg: Option<&B>) -> usize {
    arg.map_or(0, |a| a.as_ref().len() + 1)
}

fn interest<B: AsRef<[u8]>>(
    buf: &mut BytesMut,
    name: &[u8],
    origin: Option<&[u8]>,
    account: Option<&B>,
    subject: &B,
    queue: Option<(&B, Option<u32>)>,
) {
    let queue_len = queue.map_or(0, |(q, _)| q.as_ref().len() + 2 + MAX_DIGITS);
    buf.reserve(
        name.len()
            + origin.map_or(0, |o| o.len() + 1)
            + opt_len(account)
            + subject.as_ref().len()
            + queue_len
            + 2,
    );
    buf.put_slice(name);
    if let Some(origin) = origin {
        put_arg(buf, origin);
    }
    if let Some(account) = account {
        put_arg(buf, account.as_ref());
    }
    buf.put_slice(subject.as_ref());
    if let Some((queue, weight)) = queue {
        buf.put_u8(b' ');
        buf.put_slice(queue.as_ref());
        if let Some(weight) = weight {
            buf.put_u8(b' ');
            put_uint(buf, u64::from(weight));
        }
    }
    buf.put_slice(b"\r\n");
}

/// `RS+ [account] <subject> [<queue> <weight>]\r\n`.
pub fn rs_sub<B: AsRef<[u8]>>(buf: &mut BytesMut, sub: &RemoteSub<B>) {
    let queue = sub.queue.as_ref().map(|q| (&q.name, Some(q.weight)));
    interest(
        buf,
        b"RS+ ",
        None,
        sub.account.as_ref(),
        &sub.subject,
        queue,
    );
}

/// `RS- [account] <subject> [queue]\r\n`.
pub fn rs_unsub<B: AsRef<[u8]>>(buf: &mut BytesMut, unsub: &RemoteUnsub<B>) {
    let queue = unsub.queue.as_ref().map(|q| (q, None));
    interest(
        buf,
        b"RS- ",
        None,
        unsub.account.as_ref(),
        &unsub.subject,
        queue,
    );
}

/// `LS+ <origin> [account] <subject> [<queue> <weight>]\r\n`.
pub fn ls_sub<B: AsRef<[u8]>>(buf: &mut BytesMut, origin: &[u8], sub: &RemoteSub<B>) {
    let queue = sub.queue.as_ref().map(|q| (&q.name, Some(q.weight)));
    interest(
        buf,
        b"LS+ ",
        Some(origin),
        sub.account.as_ref(),
        &sub.subject,
        queue,
    );
}

/// `LS- [origin] [account] <subject> [queue]\r\n`: give the origin only to
/// a peer that announced `lnocu`.
pub fn ls_unsub<B: AsRef<[u8]>>(buf: &mut BytesMut, origin: Option<&[u8]>, unsub: &RemoteUnsub<B>) {
    let queue = unsub.queue.as_ref().map(|q| (q, None));
    interest(
        buf,
        b"LS- ",
        origin,
        unsub.account.as_ref(),
        &unsub.subject,
        queue,
    );
}

/// Bytes of a message's control line, an upper bound.
fn control_len<B: AsRef<[u8]>>(origin: Option<&[u8]>, msg: &RoutedMsg<B>) -> usize {
    5 + origin.map_or(0, |o| o.len() + 1)
        + opt_len(msg.account.as_ref())
        + msg.subject.as_ref().len()
        + 1
        + 2
        + opt_len(msg.reply.as_ref())
        + msg.queues.as_ref().len()
        + 1
        + 2 * (MAX_DIGITS + 1)
        + 2
}

/// The control line of an `RMSG` (or `HMSG`, when `msg.headers` is
/// `Some`), CRLF included; the sizes come from `msg`. The caller sends the
/// headers, the payload and `\r\n` after it (vectored writes).
pub fn rmsg_control<B: AsRef<[u8]>>(buf: &mut BytesMut, msg: &RoutedMsg<B>) {
    buf.reserve(control_len(None, msg));
    let name: &[u8] = if msg.headers.is_some() {
        b"HMSG "
    } else {
        b"RMSG "
    };
    buf.put_slice(name);
    msg_args(buf, msg, msg.headers.is_some());
}

/// The control line of an `LMSG`, CRLF included; as [`rmsg_control`].
pub fn lmsg_control<B: AsRef<[u8]>>(buf: &mut BytesMut, origin: &[u8], msg: &RoutedMsg<B>) {
    buf.reserve(control_len(Some(origin), msg));
    buf.put_slice(b"LMSG ");
    put_arg(buf, origin);
    msg_args(buf, msg, true);
}

/// `[account] <subject> <tail> [#hdr] <#total>\r\n`.
fn msg_args<B: AsRef<[u8]>>(buf: &mut BytesMut, msg: &RoutedMsg<B>, with_hdr: bool) {
    if let Some(account) = &msg.account {
        put_arg(buf, account.as_ref());
    }
    put_arg(buf, msg.subject.as_ref());
    let queues = msg.queues.as_ref();
    // nats-server's reading: one tail argument is a reply; two or more
    // start with the marker.
    match (&msg.reply, queues.is_empty()) {
        (Some(reply), true) => put_arg(buf, reply.as_ref()),
        (None, true) => {}
        (Some(reply), false) => {
            buf.put_slice(b"+ ");
            put_arg(buf, reply.as_ref());
            put_arg(buf, queues);
        }
        (None, false) => {
            buf.put_slice(b"| ");
            put_arg(buf, queues);
        }
    }
    if with_hdr {
        let hdr = msg.headers.as_ref().map_or(0, |h| h.as_ref().len());
        put_uint(buf, hdr as u64);
        buf.put_u8(b' ');
    }
    put_uint(buf, msg.total_len() as u64);
    buf.put_slice(b"\r\n");
}

fn body<B: AsRef<[u8]>>(buf: &mut BytesMut, msg: &RoutedMsg<B>) {
    if let Some(headers) = &msg.headers {
        buf.put_slice(headers.as_ref());
    }
    buf.put_slice(msg.payload.as_ref());
    buf.put_slice(b"\r\n");
}

/// `RMSG [account] <subject> <tail> <#bytes>\r\n<payload>\r\n`, or `HMSG
/// ... <#hdr> <#total>\r\n<headers><payload>\r\n` when `msg.headers` is
/// `Some`.
pub fn rmsg<B: AsRef<[u8]>>(buf: &mut BytesMut, msg: &RoutedMsg<B>) {
    buf.reserve(control_len(None, msg) + msg.total_len() + 2);
    rmsg_control(buf, msg);
    body(buf, msg);
}

/// `LMSG <origin> [account] <subject> <tail> <#hdr> <#total>\r\n<headers><payload>\r\n`
/// (`#hdr` is 0 without headers).
pub fn lmsg<B: AsRef<[u8]>>(buf: &mut BytesMut, origin: &[u8], msg: &RoutedMsg<B>) {
    buf.reserve(control_len(Some(origin), msg) + msg.total_len() + 2);
    lmsg_control(buf, origin, msg);
    body(buf, msg);
}

/// Any route op.
pub fn op<B: AsRef<[u8]>>(buf: &mut BytesMut, op: &RouteOp<B>) {
    match op {
        RouteOp::Info(json) => info(buf, json.as_ref()),
        RouteOp::Connect(json) => connect(buf, json.as_ref()),
        RouteOp::Ping => ping(buf),
        RouteOp::Pong => pong(buf),
        RouteOp::Ok => ok(buf),
        RouteOp::Err(text) => err(buf, text.as_ref()),
        RouteOp::RSub(sub) => rs_sub(buf, sub),
        RouteOp::RUnsub(unsub) => rs_unsub(buf, unsub),
        RouteOp::LSub { origin, sub } => ls_sub(buf, origin.as_ref(), sub),
        RouteOp::LUnsub { origin, unsub } => {
            ls_unsub(buf, origin.as_ref().map(|o| o.as_ref()), unsub)
        }
        RouteOp::RMsg(msg) => rmsg(buf, msg),
        RouteOp::LMsg { origin, msg } => lmsg(buf, origin.as_ref(), msg),
    }
}

#[cfg(test)]
mod tests {
    //! Expected bytes are what nats-server's `addRouteSubOrUnsubProtoToBuf`
    //! and `msgHeaderForRouteOrLeaf` write for the same values.
    use super::*;
    use crate::route::{QueueWeight, RemoteSub, RemoteUnsub, RoutedMsg};

    fn encoded(f: impl FnOnce(&mut BytesMut)) -> String {
        let mut buf = BytesMut::new();
        f(&mut buf);
        String::from_utf8(buf.to_vec()).unwrap()
    }

    fn routed<'a>(
        account: Option<&'a [u8]>,
        reply: Option<&'a [u8]>,
        queues: &'a [u8],
        headers: Option<&'a [u8]>,
    ) -> RoutedMsg<&'a [u8]> {
        RoutedMsg {
            account,
            subject: b"foo.bar",
            reply,
            queues,
            headers,
            payload: b"hello",
        }
    }

    #[test]
    fn interest_ops() {
        let queue = Some(QueueWeight {
            name: &b"q"[..],
            weight: 12,
        });
        let sub = RemoteSub {
            account: Some(&b"$G"[..]),
            subject: &b"foo"[..],
            queue,
        };
        assert_eq!(encoded(|b| rs_sub(b, &sub)), "RS+ $G foo q 12\r\n");
        assert_eq!(
            encoded(|b| ls_sub(b, b"hub", &sub)),
            "LS+ hub $G foo q 12\r\n"
        );
        let pinned = RemoteSub {
            account: None,
            queue: None,
            ..sub
        };
        assert_eq!(encoded(|b| rs_sub(b, &pinned)), "RS+ foo\r\n");
        let unsub = RemoteUnsub {
            account: Some(&b"$G"[..]),
            subject: &b"foo"[..],
            queue: Some(&b"q"[..]),
        };
        assert_eq!(encoded(|b| rs_unsub(b, &unsub)), "RS- $G foo q\r\n");
        assert_eq!(encoded(|b| ls_unsub(b, None, &unsub)), "LS- $G foo q\r\n");
        assert_eq!(
            encoded(|b| ls_unsub(b, Some(b"hub"), &unsub)),
            "LS- hub $G foo q\r\n"
        );
    }

    #[test]
    fn message_ops() {
        let g = Some(&b"$G"[..]);
        assert_eq!(
            encoded(|b| rmsg(b, &routed(g, None, b"", None))),
            "RMSG $G foo.bar 5\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| rmsg(b, &routed(g, Some(b"INBOX.22"), b"", None))),
            "RMSG $G foo.bar INBOX.22 5\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| rmsg(b, &routed(g, Some(b"r"), b"q1 q2", None))),
            "RMSG $G foo.bar + r q1 q2 5\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| rmsg(b, &routed(g, None, b"q1", None))),
            "RMSG $G foo.bar | q1 5\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| rmsg(b, &routed(None, None, b"", Some(b"NATS/1.0\r\n\r\n")))),
            "HMSG foo.bar 12 17\r\nNATS/1.0\r\n\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| lmsg(b, b"hub", &routed(g, None, b"q", None))),
            "LMSG hub $G foo.bar | q 0 5\r\nhello\r\n"
        );
        assert_eq!(
            encoded(|b| rmsg_control(b, &routed(g, Some(b"r"), b"", Some(b"H:")))),
            "HMSG $G foo.bar r 2 7\r\n"
        );
        assert_eq!(
            encoded(|b| lmsg_control(b, b"hub", &routed(None, None, b"", Some(b"H:")))),
            "LMSG hub foo.bar 2 7\r\n"
        );
    }
}
