//! Subject mappings (`mappings {}` at the top level and in accounts), each case run against
//! natsd and, where installed, nats-server 2.9.10 with the same file.

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use natsd_tests::Server;

use crate::{login, next_msg, round_trip, WAIT};

const CONF: &str = r#"
accounts {
  A: {
    users: [
      {user: a, password: a}
      {user: p, password: p, permissions: {publish: ["bar", "_INBOX.>"], subscribe: ">"}}
    ]
    mappings: {
      foo: bar
      "orders.*.*": "o.$2.{{wildcard(1)}}"
      "w.*": [{destination: "w.one.$1", weight: 40%}, {destination: "w.two.$1", weight: 60%}]
      "half": [{destination: "half.mapped", weight: 50}]
    }
  }
}
"#;

#[tokio::test]
async fn mappings_route_publishes_as_nats_server() {
    for server in Server::natsd_and_reference(CONF) {
        let name = server.bin().to_owned();
        let a = login(&server, "a").await;
        let mut sub = a.subscribe(">").await.expect("subscribe");
        round_trip(&a).await;
        for subject in ["foo", "orders.1.x", "plain"] {
            a.publish(subject, Bytes::from_static(b"m")).await.unwrap();
        }
        round_trip(&a).await;
        let mut got = Vec::new();
        while got.len() < 3 {
            let subject = next_msg(&mut sub).await.subject.to_string();
            if !subject.starts_with("_INBOX.") {
                got.push(subject);
            }
        }
        assert_eq!(got, ["bar", "o.x.1", "plain"], "{name:?}");

        // Weighted: every message goes to one of the destinations; weights
        // under 100 leave the rest on the original subject.
        for _ in 0..200 {
            a.publish("w.k", Bytes::new()).await.unwrap();
            a.publish("half", Bytes::new()).await.unwrap();
        }
        round_trip(&a).await;
        let mut counts: HashMap<String, u32> = HashMap::new();
        while counts.values().sum::<u32>() < 400 {
            let m = tokio::time::timeout(WAIT, sub.next())
                .await
                .expect("message")
                .expect("message");
            if !m.subject.starts_with("_INBOX.") {
                *counts.entry(m.subject.to_string()).or_default() += 1;
            }
        }
        let n = |s: &str| counts.get(s).copied().unwrap_or(0);
        assert_eq!(n("w.one.k") + n("w.two.k"), 200, "{name:?}: {counts:?}");
        assert_eq!(n("half.mapped") + n("half"), 200, "{name:?}: {counts:?}");
        assert!((40..=120).contains(&n("w.one.k")), "{name:?}: {counts:?}");
        assert!((60..=140).contains(&n("half")), "{name:?}: {counts:?}");

        // Publish permissions are checked on the mapped subject: `p` may
        // publish to bar, so foo (mapped to bar) passes.
        let p = login(&server, "p").await;
        p.publish("foo", Bytes::from_static(b"via map"))
            .await
            .unwrap();
        round_trip(&p).await;
        let m = loop {
            let m = next_msg(&mut sub).await;
            if !m.subject.starts_with("_INBOX.") {
                break m;
            }
        };
        assert_eq!(
            (m.subject.as_str(), &m.payload[..]),
            ("bar", &b"via map"[..]),
            "{name:?}"
        );
    }
}
