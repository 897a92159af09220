//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the stable
//! corpus replay test (`engine/tests/fuzz_corpus.rs`). Each checks
//! properties, not just "no panic".
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use natsd_proto::{Limits, ServerOpParser};

use crate::client::{ClientConn, Context};
use crate::options::Options;
use crate::outbound::Owner;
use crate::server::Server;

/// Drive one client connection with arbitrary bytes, with a second
/// connection subscribed to everything.
///
/// Input layout: byte 0 picks the chunk size (1..=64), byte 1 picks options
/// (bit 0: token auth, bit 1: tiny max_pending), the rest is the client's
/// byte stream. Checked:
/// - everything the server writes to either client parses as server ops;
/// - a connection the machine closed asks its driver to close it, once;
/// - closing both connections leaves no subscription and no connection.
pub fn client_conn(now: Instant, data: &[u8]) {
    let (Some(&chunk), Some(&flags)) = (data.first(), data.get(1)) else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;
    let stream = &data[2..];
    let opts = Options {
        token: (flags & 1 != 0).then(|| "s3cr3t".to_string()),
        max_pending: if flags & 2 != 0 { 512 } else { 64 * 1024 },
        max_payload: 4096,
        max_control_line: 512,
        ping_interval: Duration::from_secs(1),
        ..Options::default()
    };
    let server = Arc::new(Server::new(opts, [9u8; 32]));
    let mut ctx = Context::new(42);
    let mut watcher = new_conn(&server, now, 0);
    watcher.handle_bytes(
        now,
        &mut ctx,
        b"CONNECT {\"verbose\":false,\"headers\":true,\"auth_token\":\"s3cr3t\"}\r\nSUB > 1\r\nSUB > q 2\r\n",
    );
    let mut subject = new_conn(&server, now, 1);
    let mut t = now;
    for piece in stream.chunks(chunk) {
        subject.handle_bytes(t, &mut ctx, piece);
        t += Duration::from_millis(300);
        subject.handle_timeout(t);
        watcher.handle_timeout(t);
        assert_server_ops(&subject);
        assert_server_ops(&watcher);
        ctx.wakes.clear();
    }
    let mut closes = 0;
    while let Some(out) = subject.poll_output() {
        let crate::client::Output::Close(_) = out;
        closes += 1;
    }
    assert!(closes <= 1, "one close request per connection");
    assert_eq!(closes == 1, subject.is_closed());
    subject.close(crate::client::CloseReason::ClientClosed);
    watcher.close(crate::client::CloseReason::ClientClosed);
    assert_eq!(server.global.sublist.count(), 0, "subscriptions leaked");
    assert_eq!(server.stats.connections.load(Ordering::Relaxed), 0);
}

fn new_conn(server: &Arc<Server>, now: Instant, slot: usize) -> ClientConn {
    let cid = server.next_cid();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 4000 + slot as u16));
    ClientConn::new(server.clone(), now, peer, Owner { reactor: 0, slot }, cid)
}

/// Whatever the connection was sent must parse as server ops.
fn assert_server_ops(conn: &ClientConn) {
    let mut buf = BytesMut::new();
    conn.outbound().take(&mut buf);
    conn.outbound().written(buf.len());
    let mut parser = ServerOpParser::new(Limits {
        max_control_line: 64 * 1024,
        max_payload: 64 * 1024 * 1024,
    });
    loop {
        match parser.parse(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("server wrote bytes that do not parse: {e}"),
        }
    }
    assert!(buf.is_empty(), "server wrote a partial frame: {buf:?}");
}

/// The NATS conf parser on arbitrary text (invalid UTF-8 is cut at the
/// first bad byte, as a file reader would refuse it). Checked: parsing never
/// panics and is deterministic, an error names a position inside the text,
/// and a parsed tree maps onto options without panicking.
pub fn conf_parse(data: &[u8]) {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.valid_up_to();
            // `valid_up_to` marks the longest valid UTF-8 prefix.
            std::str::from_utf8(&data[..valid]).unwrap_or_default()
        }
    };
    let first = crate::conf::parse(text);
    let second = crate::conf::parse(text);
    assert_eq!(
        first.as_ref().err().map(ToString::to_string),
        second.as_ref().err().map(ToString::to_string),
        "parsing is deterministic"
    );
    match first {
        Ok(map) => {
            let mut opts = Options::default();
            let _ = opts.apply_conf(&map);
        }
        Err(e) => {
            // Line breaks the lexer may count: \n, and \r on its own.
            let lines = text.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 1;
            if let Some(at) = &e.at {
                assert!(
                    at.line as usize <= lines,
                    "error line {} past the text ({lines} lines): {e}",
                    at.line
                );
            }
        }
    }
}
