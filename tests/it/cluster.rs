//! Clusters on loopback: three servers joined by routes, natsd alone and mixed with
//! nats-server 2.15.1, driven through async-nats. Each server is a real process; a node is
//! killed with SIGKILL and restarted on the same ports.
use std::net::TcpListener;
use std::time::{Duration, Instant};

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::{natsd_bin, reference_bin, RawConn, Server};

use crate::{connect, drain_ready, flush, next_msg, round_trip, WAIT};

/// How long a cluster may take to form or re-form.
const MESH_WAIT: Duration = Duration::from_secs(15);

/// A free loopback port (bound and released; the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Which binary a node runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Natsd,
    Go,
}

/// Starts a node named `name` listening for routes on `cluster_port` and soliciting `routes`.
fn node(which: Impl, name: &str, cluster_port: u16, routes: &[u16]) -> Server {
    let listen = format!("nats://127.0.0.1:{cluster_port}");
    let routes: Vec<String> = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let routes = routes.join(",");
    let mut args = vec!["-n", name, "--cluster_name", "it", "--cluster", &listen];
    if !routes.is_empty() {
        args.extend(["--routes", routes.as_str()]);
    }
    let bin = match which {
        Impl::Natsd => natsd_bin(),
        Impl::Go => reference_bin().expect("reference nats-server"),
    };
    Server::with_bin(bin, &args)
}

/// Three nodes of the given kinds: the first is the seed, the other two know only it (they
/// find each other by gossip).
fn three(kinds: [Impl; 3]) -> Vec<Server> {
    let ports = [free_port(), free_port(), free_port()];
    let seed = node(kinds[0], "n0", ports[0], &[]);
    let mut nodes = vec![seed];
    for (i, &kind) in kinds.iter().enumerate().skip(1) {
        nodes.push(node(kind, &format!("n{i}"), ports[i], &[ports[0]]));
    }
    nodes
}

async fn clients(nodes: &[Server]) -> Vec<Client> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(connect(&n.url()).await);
    }
    out
}

/// Waits until a message published on `from` reaches a fresh subscription on `to`. Interest
/// travels in order over a route, so every subscription `to` made before this call is then
/// known where `from` is.
async fn until_routed(from: &Client, to: &Client) {
    let subject = to.new_inbox();
    let mut probe = to.subscribe(subject.clone()).await.expect("subscribe");
    round_trip(to).await;
    let deadline = Instant::now() + MESH_WAIT;
    loop {
        from.publish(subject.clone(), Bytes::from_static(b"probe"))
            .await
            .expect("publish");
        flush(from).await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), probe.next()).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no route carried {subject} within {MESH_WAIT:?}"
        );
    }
    probe.unsubscribe().await.expect("unsubscribe");
}

/// Every ordered pair of nodes routes messages.
async fn until_meshed(cs: &[Client]) {
    for (i, from) in cs.iter().enumerate() {
        for (j, to) in cs.iter().enumerate() {
            if i != j {
                until_routed(from, to).await;
            }
        }
    }
}

/// Reads `n` messages, then checks that nothing more arrives (after a round trip on the
/// subscriber's connection).
async fn take(client: &Client, sub: &mut Subscriber, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(String::from_utf8_lossy(&next_msg(sub).await.payload).into_owned());
    }
    round_trip(client).await;
    got.extend(
        drain_ready(sub)
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned()),
    );
    got
}

/// The behaviour every cluster must show, whatever its servers: plain and wildcard
/// subscriptions on other nodes, a queue group spread over two nodes (each message to exactly
/// one member), local members preferred, request/reply and headers across nodes,
/// no-responders, and interest gone after an unsubscribe.
async fn cluster_behaves(nodes: &[Server]) {
    let cs = clients(nodes).await;
    until_meshed(&cs).await;
    let (a, b, c) = (&cs[0], &cs[1], &cs[2]);

    // Plain and wildcard subscribers on two other nodes.
    let mut plain = b.subscribe("orders.new").await.unwrap();
    let mut wild = c.subscribe("orders.*").await.unwrap();
    until_routed(a, b).await;
    until_routed(a, c).await;
    for i in 0..5 {
        a.publish("orders.new", format!("o{i}").into())
            .await
            .unwrap();
    }
    flush(a).await;
    let want: Vec<String> = (0..5).map(|i| format!("o{i}")).collect();
    assert_eq!(take(b, &mut plain, 5).await, want);
    assert_eq!(take(c, &mut wild, 5).await, want);

    // A queue group with members on b and c: every message reaches exactly one member.
    let mut qb = b.queue_subscribe("work", "workers".into()).await.unwrap();
    let mut qc = c.queue_subscribe("work", "workers".into()).await.unwrap();
    until_routed(a, b).await;
    until_routed(a, c).await;
    for i in 0..60 {
        a.publish("work", format!("w{i}").into()).await.unwrap();
    }
    flush(a).await;
    let deadline = Instant::now() + WAIT;
    let (mut from_b, mut from_c) = (Vec::new(), Vec::new());
    while from_b.len() + from_c.len() < 60 && Instant::now() < deadline {
        tokio::select! {
            Some(m) = qb.next() => from_b.push(m.payload),
            Some(m) = qc.next() => from_c.push(m.payload),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    round_trip(b).await;
    round_trip(c).await;
    from_b.extend(drain_ready(&mut qb).into_iter().map(|m| m.payload));
    from_c.extend(drain_ready(&mut qc).into_iter().map(|m| m.payload));
    let mut all: Vec<Bytes> = from_b.iter().chain(&from_c).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        (from_b.len() + from_c.len(), all.len()),
        (60, 60),
        "each queue message exactly once (b {}, c {})",
        from_b.len(),
        from_c.len()
    );
    assert!(
        !from_b.is_empty() && !from_c.is_empty(),
        "both nodes' members take part (b {}, c {})",
        from_b.len(),
        from_c.len()
    );

    // With a member on the publisher's node too, the three share the work, still once each.
    let mut qa = a.queue_subscribe("work", "workers".into()).await.unwrap();
    round_trip(a).await;
    for i in 0..90 {
        a.publish("work", format!("m{i}").into()).await.unwrap();
    }
    flush(a).await;
    let mut counts = [0usize; 3];
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 90 && Instant::now() < deadline {
        let (who, m) = tokio::select! {
            Some(m) = qa.next() => (0, m),
            Some(m) = qb.next() => (1, m),
            Some(m) = qc.next() => (2, m),
            _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
        };
        counts[who] += 1;
        assert!(seen.insert(m.payload), "a queue message came twice");
    }
    for (client, sub) in [(a, &mut qa), (b, &mut qb), (c, &mut qc)] {
        round_trip(client).await;
        assert!(drain_ready(sub).is_empty(), "a queue message came twice");
    }
    assert_eq!(seen.len(), 90, "members got {counts:?}");
    assert!(
        counts.iter().all(|&n| n > 0),
        "every node's member takes part: {counts:?}"
    );

    // Request/reply with headers, the responder two nodes away from the requester's node.
    let mut service = c.subscribe("svc.echo").await.unwrap();
    until_routed(a, c).await;
    let responder = c.clone();
    let serve = tokio::spawn(async move {
        if let Some(m) = service.next().await {
            let mut headers = async_nats::HeaderMap::new();
            let seen = m
                .headers
                .as_ref()
                .and_then(|h| h.get("X-Trace"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            headers.insert("X-Seen", seen.as_str());
            responder
                .publish_with_headers(m.reply.unwrap(), headers, m.payload)
                .await
                .unwrap();
            responder.flush().await.unwrap();
        }
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "t-1");
    let reply = tokio::time::timeout(
        WAIT,
        a.request_with_headers("svc.echo", headers, "ping".into()),
    )
    .await
    .expect("request timed out")
    .expect("request");
    assert_eq!(&reply.payload[..], b"ping");
    assert_eq!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get("X-Seen"))
            .map(|v| v.to_string()),
        Some("t-1".to_string())
    );
    serve.await.unwrap();

    // Nobody anywhere: no responders.
    let err = tokio::time::timeout(WAIT, a.request("svc.nobody", "x".into()))
        .await
        .expect("request timed out")
        .expect_err("no responders");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);

    // Once the subscribers are gone, their nodes' interest is withdrawn everywhere.
    drop(plain);
    drop(wild);
    round_trip(b).await;
    round_trip(c).await;
    let deadline = Instant::now() + MESH_WAIT;
    loop {
        let request = async_nats::Request::new()
            .payload("x".into())
            .timeout(Some(Duration::from_millis(300)));
        let probe = a.send_request("orders.new", request).await;
        if matches!(&probe, Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "interest of closed subscriptions still routed: {probe:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_natsd_nodes_form_a_mesh_by_gossip_and_route_everything() {
    let nodes = three([Impl::Natsd; 3]);
    cluster_behaves(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natsd_joins_a_cluster_of_nats_server_nodes() {
    if reference_bin().is_none() {
        eprintln!("NOTE: no reference nats-server; mixed cluster skipped");
        return;
    }
    let nodes = three([Impl::Go, Impl::Go, Impl::Natsd]);
    cluster_behaves(&nodes).await;
    let nodes = three([Impl::Natsd, Impl::Go, Impl::Go]);
    cluster_behaves(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_joins_a_cluster_of_natsd_nodes() {
    if reference_bin().is_none() {
        eprintln!("NOTE: no reference nats-server; mixed cluster skipped");
        return;
    }
    let nodes = three([Impl::Natsd, Impl::Go, Impl::Natsd]);
    cluster_behaves(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_rejoins_and_traffic_flows_again() {
    let mut nodes = three([Impl::Natsd; 3]);
    let cs = clients(&nodes).await;
    until_meshed(&cs).await;
    nodes[1].signal("KILL");
    nodes[1].restart();
    let b = connect(&nodes[1].url()).await;
    let mut sub = b.subscribe("after.restart").await.unwrap();
    until_routed(&cs[0], &b).await;
    until_routed(&cs[2], &b).await;
    until_routed(&b, &cs[2]).await;
    cs[2].publish("after.restart", "back".into()).await.unwrap();
    flush(&cs[2]).await;
    assert_eq!(&next_msg(&mut sub).await.payload[..], b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_learn_the_other_nodes_and_fail_over() {
    let mut nodes = three([Impl::Natsd; 3]);
    let cs = clients(&nodes).await;
    until_meshed(&cs).await;
    // The INFO a new client gets lists every node's client URL.
    let mut raw = RawConn::connect_only(&nodes[0].addr());
    let info = raw.read_info();
    let urls: Vec<String> = info["connect_urls"]
        .as_array()
        .expect("connect_urls")
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    for n in &nodes {
        let port = format!(":{}", n.port());
        assert!(
            urls.iter().any(|u| u.ends_with(&port)),
            "{port} missing from {urls:?}"
        );
    }
    // A client that only knows node 0 moves to another node when node 0 dies.
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let client = async_nats::ConnectOptions::new()
        .event_callback(move |e| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push(e.to_string()) }
        })
        .connect(nodes[0].url())
        .await
        .expect("connect");
    let mut sub = cs[1].subscribe("failover").await.unwrap();
    until_routed(&client, &cs[1]).await;
    nodes[0].signal("KILL");
    let deadline = Instant::now() + MESH_WAIT;
    loop {
        let _ = client.publish("failover", "moved".into()).await;
        let _ = client.flush().await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(&m.payload[..], b"moved");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client did not fail over: {:?}",
            events.lock().unwrap()
        );
    }
    drop(nodes.remove(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_peers_are_refused_and_the_cluster_stays_up() {
    let ports = [free_port(), free_port()];
    let conf = |port: u16, routes: &str| {
        format!(
            "cluster {{\n  name: it\n  listen: 127.0.0.1:{port}\n  authorization {{ user: ruser, password: rpass }}\n  routes: [{routes}]\n}}\n"
        )
    };
    let a = Server::natsd_with_config(&conf(ports[0], ""), &[]);
    let b = Server::natsd_with_config(
        &conf(
            ports[1],
            &format!("nats://ruser:rpass@127.0.0.1:{}", ports[0]),
        ),
        &[],
    );
    let (ca, cb) = (connect(&a.url()).await, connect(&b.url()).await);
    until_meshed(&[ca.clone(), cb.clone()]).await;
    let route = format!("127.0.0.1:{}", ports[0]);

    // Garbage on the route port: an unknown op gets -ERR and a close, an op with bad
    // arguments a close (as from nats-server); the node stays up.
    let connect = r#"CONNECT {"user":"ruser","pass":"rpass","cluster":"it"}"#;
    let mut garbage = RawConn::connect_only(&route);
    garbage.send(format!("{connect}\r\nXYZZY\r\n"));
    let said = String::from_utf8_lossy(&garbage.expect_closed(WAIT)).into_owned();
    assert!(said.contains("-ERR 'Unknown Protocol Operation'"), "{said}");
    let mut garbage = RawConn::connect_only(&route);
    garbage.send(format!("{connect}\r\nRS+ \r\n"));
    garbage.expect_closed(WAIT);

    // Wrong credentials.
    let mut intruder = RawConn::connect_only(&route);
    intruder.send("CONNECT {\"user\":\"ruser\",\"pass\":\"wrong\",\"cluster\":\"it\"}\r\n");
    let said = String::from_utf8_lossy(&intruder.expect_closed(WAIT)).into_owned();
    assert!(said.contains("-ERR 'Authorization Violation'"), "{said}");

    // A server of another cluster.
    let mut stranger = RawConn::connect_only(&route);
    stranger.send("CONNECT {\"user\":\"ruser\",\"pass\":\"rpass\",\"cluster\":\"other\"}\r\n");
    let said = String::from_utf8_lossy(&stranger.expect_closed(WAIT)).into_owned();
    assert!(
        said.contains("-ERR 'Rejecting connection, cluster name \"other\" does not match \"it\"'"),
        "{said}"
    );
    assert!(a
        .log_contents()
        .contains("cluster name \"other\" does not match"));

    // An RS+ flood from a peer that never reads: the node keeps serving its clients and its
    // real route.
    let mut flood = RawConn::connect_only(&route);
    flood.send("CONNECT {\"user\":\"ruser\",\"pass\":\"rpass\",\"cluster\":\"it\"}\r\nINFO {\"server_id\":\"NFLOOD\",\"cluster\":\"it\"}\r\n");
    let mut burst = String::new();
    for i in 0..20_000 {
        burst.push_str(&format!("RS+ $G flood.{i}\r\n"));
    }
    flood.send(&burst);
    let mut sub = cb.subscribe("still.up").await.unwrap();
    until_routed(&ca, &cb).await;
    ca.publish("still.up", "yes".into()).await.unwrap();
    flush(&ca).await;
    assert_eq!(&next_msg(&mut sub).await.payload[..], b"yes");
    drop(flood);
}

/// A system account and an application account on every node, and a `cluster {}` block.
fn accounts_conf(port: u16, seed: Option<u16>) -> String {
    let routes = seed.map_or(String::new(), |p| format!("nats://127.0.0.1:{p}"));
    format!(
        r#"
system_account: SYS
accounts {{
  SYS {{ users [{{user: admin, password: pa}}] }}
  APP {{ users [{{user: app, password: pb}}] }}
}}
cluster {{ name: it, listen: "127.0.0.1:{port}", routes: [{routes}] }}
"#
    )
}

async fn login_as(server: &Server, user: &str, pass: &str) -> Client {
    tokio::time::timeout(
        WAIT,
        async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
            .connect(server.url()),
    )
    .await
    .expect("connect timed out")
    .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_stay_apart_and_every_node_answers_system_requests() {
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = vec![Server::natsd_with_config(
        &accounts_conf(ports[0], None),
        &[],
    )];
    for &port in &ports[1..] {
        nodes.push(Server::natsd_with_config(
            &accounts_conf(port, Some(ports[0])),
            &[],
        ));
    }
    let mut apps = Vec::new();
    for n in &nodes {
        apps.push(login_as(n, "app", "pb").await);
    }
    until_meshed(&apps).await;
    // The application account's messages cross the routes; another account on the same
    // nodes does not see them.
    let admin = login_as(&nodes[0], "admin", "pa").await;
    let others: Vec<Client> = {
        let mut v = Vec::new();
        for n in &nodes[1..] {
            v.push(login_as(n, "admin", "pa").await);
        }
        v
    };
    let mut outsider = others[1].subscribe("orders.>").await.unwrap();
    let mut member = apps[2].subscribe("orders.>").await.unwrap();
    until_routed(&apps[0], &apps[2]).await;
    until_routed(&admin, &others[1]).await;
    apps[0].publish("orders.1", "o".into()).await.unwrap();
    flush(&apps[0]).await;
    assert_eq!(&next_msg(&mut member).await.payload[..], b"o");
    round_trip(&others[1]).await;
    assert!(drain_ready(&mut outsider).is_empty());

    // `$SYS.REQ.SERVER.PING` from one node is answered by all three.
    for other in &others {
        until_routed(&admin, other).await;
        until_routed(other, &admin).await;
    }
    let inbox = admin.new_inbox();
    let mut answers = admin.subscribe(inbox.clone()).await.unwrap();
    round_trip(&admin).await;
    admin
        .publish_with_reply("$SYS.REQ.SERVER.PING", inbox, Bytes::new())
        .await
        .unwrap();
    flush(&admin).await;
    let mut ids = std::collections::BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while ids.len() < 3 && Instant::now() < deadline {
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), answers.next()).await
        {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("statsz JSON");
            ids.insert(v["server"]["id"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(ids.len(), 3, "answers from {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_advertise_keeps_the_other_nodes_out_of_client_info() {
    let mut kinds = vec![Impl::Natsd];
    if reference_bin().is_some() {
        kinds.push(Impl::Go);
    }
    for which in kinds {
        let ports = [free_port(), free_port()];
        let bin = || match which {
            Impl::Natsd => natsd_bin(),
            Impl::Go => reference_bin().expect("reference nats-server"),
        };
        let listen = |p: u16| format!("nats://127.0.0.1:{p}");
        let seed = listen(ports[0]);
        let a = Server::with_bin(
            bin(),
            &["--cluster_name", "it", "--cluster", &seed, "--no_advertise"],
        );
        let b = Server::with_bin(
            bin(),
            &[
                "--cluster_name",
                "it",
                "--cluster",
                &listen(ports[1]),
                "--routes",
                &seed,
                "--no_advertise",
            ],
        );
        let cs = [connect(&a.url()).await, connect(&b.url()).await];
        until_meshed(&cs).await;
        let info = RawConn::connect_only(&a.addr()).read_info();
        assert!(
            info.get("connect_urls")
                .and_then(|u| u.as_array())
                .is_none_or(|u| u.is_empty()),
            "{which:?}: {info}"
        );
    }
}

/// The client URLs a new client of `server` is told (INFO `connect_urls`).
fn advertised(server: &Server) -> Vec<String> {
    RawConn::connect_only(&server.addr()).read_info()["connect_urls"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_lame_duck_mode_is_no_longer_advertised() {
    let nodes = three([Impl::Natsd; 3]);
    let cs = clients(&nodes).await;
    until_meshed(&cs).await;
    let leaving = format!(":{}", nodes[0].port());
    assert!(advertised(&nodes[1]).iter().any(|u| u.ends_with(&leaving)));
    nodes[0].signal("USR2");
    let deadline = Instant::now() + WAIT;
    while advertised(&nodes[1]).iter().any(|u| u.ends_with(&leaving)) {
        assert!(
            Instant::now() < deadline,
            "{:?} still advertises the node in lame duck mode",
            advertised(&nodes[1])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The others still are.
    let staying = format!(":{}", nodes[2].port());
    assert!(advertised(&nodes[1]).iter().any(|u| u.ends_with(&staying)));
    // A server in lame-duck mode ignores SIGTERM until its duration ends.
    nodes[0].signal("KILL");
}
