//! The route protocol codec (`natsd_proto::route`) against nats-server 2.15.1 on the wire: the
//! test dials the reference server's cluster port as if it were a natsd route, parses everything
//! nats-server sends with `RouteOpParser`, and sends ops made by the route encoders, which
//! nats-server must accept and deliver to its clients. Skipped (with a NOTE) when the reference
//! binary is missing.
use async_nats::HeaderMap;
use bytes::{Bytes, BytesMut};
use natsd_proto::route::{
    encode, QueueWeight, RemoteSub, RouteConnect, RouteDialect, RouteInfo, RouteOp, RouteOpParser,
    RoutedMsg,
};
use natsd_tests::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{drain_ready, next_msg, round_trip, WAIT};

/// `$G` for the `g` user, account `A` for `a`, and `P`, which has a route of its own.
const CONF: &str = r#"
authorization { users = [ {user: g, password: g} ] }
accounts {
  A: { users: [ {user: a, password: a} ] }
  P: { users: [ {user: p, password: p} ] }
}
cluster { name: c1, listen: "127.0.0.1:-1", accounts: [P] }
"#;

const ROUTE_LISTENING: &str = "Listening for route connections on ";

/// Our side's server id on every route (a made-up nkey-shaped id).
const PEER_ID: &str = "NROUTEWIRETESTNATSDPROTOCODEC000000000000000000000000000";

/// One route connection, from our side: a socket, its read buffer and our parser.
struct RoutePeer {
    stream: TcpStream,
    buf: BytesMut,
    parser: RouteOpParser,
    /// Every op received, for failure messages.
    seen: Vec<RouteOp<Bytes>>,
}

impl RoutePeer {
    async fn connect(port: u16) -> RoutePeer {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("route connect timed out")
            .expect("route connect");
        stream.set_nodelay(true).expect("nodelay");
        RoutePeer {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            parser: RouteOpParser::default(),
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("route write");
    }

    /// The next op nats-server sends, bounded by [`WAIT`]; `what` names what we wait for.
    async fn next_op(&mut self, what: &str) -> RouteOp<Bytes> {
        loop {
            match self.parser.parse(&mut self.buf) {
                Ok(Some(op)) => {
                    self.seen.push(op.clone());
                    return op;
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "our route parser refused nats-server's bytes: {e}; {}",
                    self.recent()
                ),
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; {}", self.recent()))
                .expect("route read");
            assert!(read > 0, "nats-server closed the route; {}", self.recent());
        }
    }

    /// The last ops received, for failure messages.
    fn recent(&self) -> String {
        let from = self.seen.len().saturating_sub(12);
        format!("last ops received: {:?}", &self.seen[from..])
    }

    /// Reads ops until one satisfies `want`, answering nats-server's PINGs on the way.
    async fn until(
        &mut self,
        what: &str,
        want: impl Fn(&RouteOp<Bytes>) -> bool,
    ) -> RouteOp<Bytes> {
        loop {
            let op = self.next_op(what).await;
            if want(&op) {
                return op;
            }
            if op == RouteOp::Ping {
                self.send(b"PONG\r\n").await;
            }
        }
    }

    /// A PING/PONG round trip: nats-server has processed everything we sent before.
    async fn sync(&mut self) {
        self.send(b"PING\r\n").await;
        self.until("PONG", |op| *op == RouteOp::Pong).await;
    }

    /// Reads nats-server's first INFO, then introduces us with our CONNECT and INFO.
    async fn handshake(&mut self, route_account: &str) -> RouteInfo {
        let RouteOp::Info(json) = self.next_op("INFO").await else {
            panic!("route did not start with INFO: {}", self.recent());
        };
        let info = RouteInfo::from_json(&json).expect("nats-server's route INFO parses");
        // Every field nats-server sent is known, in its order and omitempty form.
        assert_eq!(
            String::from_utf8_lossy(&info.to_json()),
            String::from_utf8_lossy(&json)
        );
        let connect = RouteConnect {
            echo: true,
            headers: true,
            name: PEER_ID.into(),
            cluster: "c1".into(),
            lnoc: true,
            ..RouteConnect::default()
        };
        let ours = RouteInfo {
            server_id: PEER_ID.into(),
            server_name: "natsd-route-wire".into(),
            version: "2.11.0".into(),
            proto: 3,
            go: "rustc".into(),
            host: "127.0.0.1".into(),
            port: 1,
            headers: true,
            max_payload: 1024 * 1024,
            cluster: "c1".into(),
            compression: "off".into(),
            lnoc: true,
            lnocu: true,
            // A pinned route is part of a pool; without one, nats-server treats us as a server
            // without pooling and sends every account over this route.
            route_pool_size: if route_account.is_empty() { 0 } else { 3 },
            route_account: route_account.into(),
            ..RouteInfo::default()
        };
        let mut out = BytesMut::new();
        encode::connect(&mut out, &connect.to_json());
        encode::info(&mut out, &ours.to_json());
        self.send(&out).await;
        self.parser.set_dialect(RouteDialect {
            pinned: !route_account.is_empty(),
            ls_unsub_origin: info.lnocu,
        });
        self.sync().await;
        info
    }
}

fn route_port(server: &Server) -> u16 {
    assert!(
        server.wait_for_log(ROUTE_LISTENING, WAIT),
        "no route listener: {}",
        server.log_contents()
    );
    let log = server.log_contents();
    let line = log
        .lines()
        .find(|l| l.contains(ROUTE_LISTENING))
        .expect("route line");
    let addr = &line[line.find(ROUTE_LISTENING).expect("found") + ROUTE_LISTENING.len()..];
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("route port")
}

async fn login(server: &Server, user: &str) -> async_nats::Client {
    tokio::time::timeout(
        WAIT,
        async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
            .connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn is_rsub(
    op: &RouteOp<Bytes>,
    account: Option<&str>,
    subject: &str,
    queue: Option<(&str, u32)>,
) -> bool {
    let RouteOp::RSub(sub) = op else {
        return false;
    };
    sub.account.as_deref() == account.map(str::as_bytes)
        && &sub.subject[..] == subject.as_bytes()
        && sub.queue.as_ref().map(|q| (&q.name[..], q.weight))
            == queue.map(|(name, weight)| (name.as_bytes(), weight))
}

fn routed(op: RouteOp<Bytes>) -> RoutedMsg<Bytes> {
    match op {
        RouteOp::RMsg(msg) => msg,
        other => panic!("expected RMSG/HMSG, got {other:?}"),
    }
}

fn is_msg(op: &RouteOp<Bytes>) -> bool {
    matches!(op, RouteOp::RMsg(_))
}

/// nats-server's interest reaches us as RS+ (plain, queue with its weight, `$G` and a named
/// account), its messages as RMSG/HMSG with the reply and queue forms, and the RMSG/HMSG we encode
/// are delivered to its subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_ops_cross_the_wire_both_ways() {
    let Some(server) = Server::reference_with_config(&[], Some(CONF)) else {
        return;
    };
    let port = route_port(&server);
    let mut route = RoutePeer::connect(port).await;
    let info = route.handshake("").await;
    assert_eq!(info.cluster, "c1");
    assert_eq!(info.version, "2.15.1");
    assert_eq!(info.route_pool_size, 3);
    assert!(info.headers && info.lnoc && info.lnocu);

    // nats-server -> us: interest. One client at a time: nats-server sends each connection's
    // interest in order, but two connections' interest may interleave.
    let a = login(&server, "a").await;
    let mut plain = a.subscribe("foo").await.expect("subscribe");
    let mut member1 = a
        .queue_subscribe("fq", "w".into())
        .await
        .expect("queue subscribe");
    let mut member2 = a
        .queue_subscribe("fq", "w".into())
        .await
        .expect("queue subscribe");
    round_trip(&a).await;
    route
        .until("RS+ A foo", |op| is_rsub(op, Some("A"), "foo", None))
        .await;
    route
        .until("RS+ A fq w 1", |op| {
            is_rsub(op, Some("A"), "fq", Some(("w", 1)))
        })
        .await;
    route
        .until("RS+ A fq w 2", |op| {
            is_rsub(op, Some("A"), "fq", Some(("w", 2)))
        })
        .await;
    let g = login(&server, "g").await;
    let mut global = g.subscribe("gfoo").await.expect("subscribe");
    round_trip(&g).await;
    route
        .until("RS+ $G gfoo", |op| is_rsub(op, Some("$G"), "gfoo", None))
        .await;

    // Our interest, then nats-server -> us: messages in every form.
    let mut out = BytesMut::new();
    for (subject, queue) in [("bar", None), ("barq", Some("grp"))] {
        let sub = RemoteSub {
            account: Some(&b"A"[..]),
            subject: subject.as_bytes(),
            queue: queue.map(|q| QueueWeight {
                name: q.as_bytes(),
                weight: 1,
            }),
        };
        encode::rs_sub(&mut out, &sub);
    }
    route.send(&out).await;
    route.sync().await;
    a.publish("bar", "hello".into()).await.expect("publish");
    a.publish_with_reply("bar", "r.1", "hello".into())
        .await
        .expect("publish");
    let mut headers = HeaderMap::new();
    headers.insert("X-Test", "1");
    a.publish_with_headers("bar", headers, "hello".into())
        .await
        .expect("publish");
    a.publish_with_reply("barq", "r.2", "hi".into())
        .await
        .expect("publish");
    a.publish("barq", "hi".into()).await.expect("publish");
    round_trip(&a).await;
    let want = [
        ("bar", None, "", false, "hello"),
        ("bar", Some("r.1"), "", false, "hello"),
        ("bar", None, "", true, "hello"),
        ("barq", Some("r.2"), "grp", false, "hi"),
        ("barq", None, "grp", false, "hi"),
    ];
    for (subject, reply, queues, has_headers, payload) in want {
        let msg = routed(route.until("RMSG/HMSG", is_msg).await);
        assert_eq!(msg.account.as_deref(), Some(&b"A"[..]));
        assert_eq!(&msg.subject[..], subject.as_bytes());
        assert_eq!(msg.reply.as_deref(), reply.map(str::as_bytes));
        assert_eq!(&msg.queues[..], queues.as_bytes());
        assert_eq!(&msg.payload[..], payload.as_bytes());
        match (&msg.headers, has_headers) {
            (Some(h), true) => assert_eq!(&h[..], b"NATS/1.0\r\nX-Test: 1\r\n\r\n"),
            (None, false) => {}
            (h, _) => panic!("{subject}: headers {h:?}, wanted some: {has_headers}"),
        }
    }

    // Us -> nats-server: messages we encode reach its subscribers.
    let msg = |account: &'static [u8], subject: &'static [u8]| RoutedMsg {
        account: Some(account),
        subject,
        reply: None,
        queues: &b""[..],
        headers: None,
        payload: &b"world"[..],
    };
    let mut out = BytesMut::new();
    encode::rmsg(&mut out, &msg(b"A", b"foo"));
    encode::rmsg(
        &mut out,
        &RoutedMsg {
            reply: Some(&b"r.3"[..]),
            ..msg(b"A", b"foo")
        },
    );
    encode::rmsg(
        &mut out,
        &RoutedMsg {
            headers: Some(&b"NATS/1.0\r\nX-Route: yes\r\n\r\n"[..]),
            ..msg(b"A", b"foo")
        },
    );
    encode::rmsg(
        &mut out,
        &RoutedMsg {
            queues: &b"w"[..],
            ..msg(b"A", b"fq")
        },
    );
    encode::rmsg(&mut out, &msg(b"$G", b"gfoo"));
    route.send(&out).await;
    route.sync().await;
    let first = next_msg(&mut plain).await;
    assert_eq!(
        (first.payload.as_ref(), first.reply.as_deref()),
        (&b"world"[..], None)
    );
    let second = next_msg(&mut plain).await;
    assert_eq!(second.reply.as_deref(), Some("r.3"));
    let third = next_msg(&mut plain).await;
    let got = third.headers.expect("headers delivered");
    assert_eq!(got.get("X-Route").map(|v| v.as_str()), Some("yes"));
    assert_eq!(next_msg(&mut global).await.payload, "world");
    // The queue message went to exactly one member of `w`.
    round_trip(&a).await;
    let members = drain_ready(&mut member1).len() + drain_ready(&mut member2).len();
    assert_eq!(members, 1);
}

/// On a route pinned to account `P` neither side names the account: nats-server's RS+ and RMSG
/// parse in the pinned dialect, and our account-less RMSG reaches P's subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_account_route_leaves_the_account_out() {
    let Some(server) = Server::reference_with_config(&[], Some(CONF)) else {
        return;
    };
    let port = route_port(&server);
    let mut route = RoutePeer::connect(port).await;
    route.handshake("P").await;
    let p = login(&server, "p").await;
    let mut sub = p.subscribe("px").await.expect("subscribe");
    round_trip(&p).await;
    route
        .until("RS+ px", |op| is_rsub(op, None, "px", None))
        .await;

    let mut out = BytesMut::new();
    encode::rs_sub(
        &mut out,
        &RemoteSub {
            account: None,
            subject: &b"py"[..],
            queue: None,
        },
    );
    let msg = RoutedMsg {
        account: None,
        subject: &b"px"[..],
        reply: None,
        queues: &b""[..],
        headers: None,
        payload: &b"xx"[..],
    };
    encode::rmsg(&mut out, &msg);
    route.send(&out).await;
    route.sync().await;
    assert_eq!(next_msg(&mut sub).await.payload, "xx");

    p.publish("py", "yy".into()).await.expect("publish");
    round_trip(&p).await;
    let got = routed(route.until("RMSG py", is_msg).await);
    assert_eq!(
        (got.account, &got.subject[..], &got.payload[..]),
        (None, &b"py"[..], &b"yy"[..])
    );
}
