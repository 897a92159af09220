//! The `INFO` and `CONNECT` JSON bodies of a route.
//!
//! Field names, order and `omitempty` rules follow nats-server's `Info`
//! struct (`server/server.go`: the fields its route INFO sets, in
//! `startRouteAcceptLoop`, `generateRouteInitialInfoJSON` and the gateway
//! gossip sent over routes) and its route `connectInfo` (`server/route.go`),
//! so `to_json` gives the text nats-server sends. Unknown fields are ignored
//! when reading (newer peers add fields), and a JSON `null` leaves a field at
//! its default, as Go's `encoding/json` does.
use serde::{Deserialize, Serialize};

use crate::info::{is_false, null_default};

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

/// Subjects a route may import or export (nats-server's
/// `SubjectPermission`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectPermission {
    /// Subjects allowed.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub allow: Vec<String>,
    /// Subjects denied.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub deny: Vec<String>,
}

/// The `INFO` a server sends on a route, in nats-server's field order.
///
/// The first INFO describes the sender; later ones update it (`ldm`,
/// permissions), gossip another server of the cluster (a different
/// `server_id`), ask for a dedicated account route (`route_acc_add_reqid`)
/// or gossip a gateway (`gateway`, `gateway_cmd`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteInfo {
    /// Server's public nkey.
    #[serde(deserialize_with = "null_default")]
    pub server_id: String,
    /// Server name (unique in the cluster; defaults to the id).
    #[serde(deserialize_with = "null_default")]
    pub server_name: String,
    /// Server release.
    #[serde(deserialize_with = "null_default")]
    pub version: String,
    /// Protocol level (nats-server 2.15.1 sends 3 on routes).
    #[serde(deserialize_with = "null_default")]
    pub proto: i32,
    /// Build commit.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub git_commit: String,
    /// Go version in nats-server.
    #[serde(deserialize_with = "null_default")]
    pub go: String,
    /// Route listen host.
    #[serde(deserialize_with = "null_default")]
    pub host: String,
    /// Route listen port.
    #[serde(deserialize_with = "null_default")]
    pub port: u16,
    /// Headers supported: `HMSG` may be sent to this server.
    #[serde(deserialize_with = "null_default")]
    pub headers: bool,
    /// Routes must authenticate (cluster `authorization`).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub auth_required: bool,
    /// TLS is required.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub tls_required: bool,
    /// Certificates are verified.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub tls_verify: bool,
    /// Largest payload the server accepts from its clients.
    #[serde(deserialize_with = "null_default")]
    pub max_payload: i32,
    /// JetStream is enabled.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub jetstream: bool,
    /// The route URL to use for this server (`nats-route://host:port/`),
    /// set from `cluster.advertise`.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub ip: String,
    /// Nonce (sent on a route's first INFO, not signed).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub nonce: String,
    /// Cluster name.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub cluster: String,
    /// The cluster name was generated, not configured: a peer with a
    /// configured name wins.
    #[serde(
        rename = "cluster_dynamic",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub cluster_dynamic: bool,
    /// JetStream domain.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub domain: String,
    /// Client URLs of the server, for clients' cluster discovery.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub connect_urls: Vec<String>,
    /// WebSocket client URLs of the server.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ws_connect_urls: Vec<String>,
    /// Lame duck mode: drop this server's client URLs.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub ldm: bool,
    /// Compression mode (`off`, `accept`, `s2_fast`, ...); empty from a
    /// server without route compression.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub compression: String,
    /// Subjects the peer may import over this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<SubjectPermission>,
    /// Subjects the peer may export over this route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<SubjectPermission>,
    /// Understands `LS+`/`LMSG` with a leafnode origin cluster.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub lnoc: bool,
    /// Understands, and sends, `LS-` with the origin cluster.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub lnocu: bool,
    /// Sent `true` by nats-server 2.15.1 (between `lnocu` and
    /// `route_pool_size`); not in the 2.15 development sources read for this
    /// module, so its meaning is unknown. Kept so an INFO re-serialises as
    /// sent.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub ln: bool,
    /// Number of pooled routes per server pair (nats-server's default is
    /// 3); 0 from a server without pooling.
    #[serde(skip_serializing_if = "is_zero_i32", deserialize_with = "null_default")]
    pub route_pool_size: i32,
    /// This connection's index in the pool.
    #[serde(skip_serializing_if = "is_zero_i32", deserialize_with = "null_default")]
    pub route_pool_idx: i32,
    /// The account this route is dedicated to (pinned): its ops carry no
    /// account.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub route_account: String,
    /// Request id of an "account now has a dedicated route" exchange.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub route_acc_add_reqid: String,
    /// Gossip mode of an implicit route (0 default, 1 disabled, 2 override).
    #[serde(skip_serializing_if = "is_zero_u8", deserialize_with = "null_default")]
    pub gossip_mode: u8,
    /// Name of a gateway being gossiped.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub gateway: String,
    /// URLs of the gossiped gateway.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub gateway_urls: Vec<String>,
    /// This server's gateway URL.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub gateway_url: String,
    /// Gateway gossip command.
    #[serde(skip_serializing_if = "is_zero_u8", deserialize_with = "null_default")]
    pub gateway_cmd: u8,
    /// This server's leafnode URL (one at most on routes).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub leafnode_urls: Vec<String>,
}

impl RouteInfo {
    /// Parses an `INFO` body.
    pub fn from_json(json: &[u8]) -> Result<RouteInfo, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The JSON text, as nats-server marshals it.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers, bools and string lists: serialising to a Vec
        // cannot fail.
        serde_json::to_vec(self).expect("RouteInfo always serialises")
    }
}

/// The `CONNECT` a server sends on a route it opened (nats-server's route
/// `connectInfo`). Absent fields are false or empty: nats-server reads a
/// route's CONNECT into zeroed options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteConnect {
    /// Deliver messages back to the sender (always true from nats-server).
    #[serde(deserialize_with = "null_default")]
    pub echo: bool,
    /// Answer every op with `+OK`.
    #[serde(deserialize_with = "null_default")]
    pub verbose: bool,
    /// Check subjects strictly.
    #[serde(deserialize_with = "null_default")]
    pub pedantic: bool,
    /// Route user (cluster `authorization`, or the route URL's user).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub user: String,
    /// Route password.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub pass: String,
    /// The route is TLS.
    #[serde(deserialize_with = "null_default")]
    pub tls_required: bool,
    /// Headers supported.
    #[serde(deserialize_with = "null_default")]
    pub headers: bool,
    /// The sender's server id.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// The sender's cluster name; nats-server refuses a mismatch unless its
    /// own name is dynamic.
    #[serde(deserialize_with = "null_default")]
    pub cluster: String,
    /// The sender's cluster name is dynamic.
    #[serde(
        rename = "cluster_dynamic",
        skip_serializing_if = "is_false",
        deserialize_with = "null_default"
    )]
    pub dynamic: bool,
    /// Understands `LS+`/`LMSG` with a leafnode origin cluster.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub lnoc: bool,
    /// Understands `LS-` with the origin cluster.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub lnocu: bool,
    /// Set by a gateway that dialled the route port by mistake; nats-server
    /// refuses it.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub gateway: String,
    /// Set by clients, never by servers: nats-server answers a CONNECT with
    /// a `lang` on the route port with `attempted to connect to route port`.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub lang: String,
}

impl RouteConnect {
    /// Parses a route `CONNECT` body.
    pub fn from_json(json: &[u8]) -> Result<RouteConnect, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The JSON text, in nats-server's `connectInfo` field order.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and bools only: serialising to a Vec cannot fail.
        serde_json::to_vec(self).expect("RouteConnect always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first route INFO nats-server 2.15.1 sent on this machine
    /// (`--cluster nats://127.0.0.1:16999 --cluster_name c1`).
    const INFO_2_15_1: &str = r#"{"server_id":"NDBPLV3E6LP6TAAM5AHTVGNHPOJH7NLVTJIM77SY76ZLS654PESWFYGM","server_name":"NDBPLV3E6LP6TAAM5AHTVGNHPOJH7NLVTJIM77SY76ZLS654PESWFYGM","version":"2.15.1","proto":3,"go":"go1.27.2","host":"127.0.0.1","port":16999,"headers":true,"max_payload":1048576,"nonce":"xqfS_b7D1AFBQtw","cluster":"c1","connect_urls":["127.0.0.1:14999"],"compression":"accept","lnoc":true,"lnocu":true,"ln":true,"route_pool_size":3}"#;

    #[test]
    fn route_info_from_2_15_1_reserialises_byte_for_byte() {
        let info = RouteInfo::from_json(INFO_2_15_1.as_bytes()).unwrap();
        assert_eq!(info.cluster, "c1");
        assert_eq!(info.route_pool_size, 3);
        assert!(info.lnoc && info.lnocu && info.headers);
        assert_eq!(String::from_utf8(info.to_json()).unwrap(), INFO_2_15_1);
    }

    #[test]
    fn route_info_field_order_matches_go_struct() {
        let info = RouteInfo {
            server_id: "ID".into(),
            server_name: "n".into(),
            version: "2.15.1".into(),
            proto: 3,
            git_commit: "abc".into(),
            go: "rustc".into(),
            host: "0.0.0.0".into(),
            port: 6222,
            headers: true,
            auth_required: true,
            tls_required: true,
            tls_verify: true,
            max_payload: 1_048_576,
            jetstream: true,
            ip: "nats-route://1.2.3.4:6222/".into(),
            nonce: "N".into(),
            cluster: "c".into(),
            cluster_dynamic: true,
            domain: "d".into(),
            connect_urls: vec!["a:1".into()],
            ws_connect_urls: vec!["b:2".into()],
            ldm: true,
            compression: "accept".into(),
            import: Some(SubjectPermission {
                allow: vec!["foo".into()],
                deny: vec![],
            }),
            export: Some(SubjectPermission {
                allow: vec![],
                deny: vec!["bar".into()],
            }),
            lnoc: true,
            lnocu: true,
            ln: true,
            route_pool_size: 3,
            route_pool_idx: 2,
            route_account: "A".into(),
            route_acc_add_reqid: "R".into(),
            gossip_mode: 1,
            gateway: "g".into(),
            gateway_urls: vec!["g:1".into()],
            gateway_url: "g:2".into(),
            gateway_cmd: 1,
            leafnode_urls: vec!["l:1".into()],
        };
        let json = String::from_utf8(info.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"server_id":"ID","server_name":"n","version":"2.15.1","proto":3,"git_commit":"abc","go":"rustc","host":"0.0.0.0","port":6222,"headers":true,"auth_required":true,"tls_required":true,"tls_verify":true,"max_payload":1048576,"jetstream":true,"ip":"nats-route://1.2.3.4:6222/","nonce":"N","cluster":"c","cluster_dynamic":true,"domain":"d","connect_urls":["a:1"],"ws_connect_urls":["b:2"],"ldm":true,"compression":"accept","import":{"allow":["foo"]},"export":{"deny":["bar"]},"lnoc":true,"lnocu":true,"ln":true,"route_pool_size":3,"route_pool_idx":2,"route_account":"A","route_acc_add_reqid":"R","gossip_mode":1,"gateway":"g","gateway_urls":["g:1"],"gateway_url":"g:2","gateway_cmd":1,"leafnode_urls":["l:1"]}"#
        );
        assert_eq!(RouteInfo::from_json(json.as_bytes()).unwrap(), info);
    }

    #[test]
    fn route_info_ignores_unknown_fields_and_nulls() {
        let info = RouteInfo::from_json(
            br#"{"server_id":"X","future":{"a":[1]},"cluster":null,"connect_urls":null,"import":null,"proto":null}"#,
        )
        .unwrap();
        assert_eq!(info.server_id, "X");
        assert_eq!(info.cluster, "");
        assert!(info.connect_urls.is_empty());
        assert_eq!(info.import, None);
        assert!(RouteInfo::from_json(b"{bad").is_err());
    }

    #[test]
    fn route_connect_matches_go_connect_info() {
        // What nats-server's sendRouteConnect marshals for a plain route.
        let go = r#"{"echo":true,"verbose":false,"pedantic":false,"tls_required":false,"headers":true,"name":"NID","cluster":"c1","lnoc":true}"#;
        let c = RouteConnect::from_json(go.as_bytes()).unwrap();
        assert!(c.echo && c.headers && c.lnoc);
        assert_eq!((c.name.as_str(), c.cluster.as_str()), ("NID", "c1"));
        assert_eq!(String::from_utf8(c.to_json()).unwrap(), go);
        let full = RouteConnect {
            user: "u".into(),
            pass: "p".into(),
            dynamic: true,
            lnocu: true,
            gateway: "g".into(),
            lang: "go".into(),
            ..c
        };
        assert_eq!(
            String::from_utf8(full.to_json()).unwrap(),
            r#"{"echo":true,"verbose":false,"pedantic":false,"user":"u","pass":"p","tls_required":false,"headers":true,"name":"NID","cluster":"c1","cluster_dynamic":true,"lnoc":true,"lnocu":true,"gateway":"g","lang":"go"}"#
        );
        assert_eq!(RouteConnect::from_json(&full.to_json()).unwrap(), full);
    }

    #[test]
    fn route_connect_absent_fields_are_false() {
        // nats-server reads a route CONNECT into zeroed options.
        let c = RouteConnect::from_json(br#"{"verbose":null,"x":1}"#).unwrap();
        assert_eq!(c, RouteConnect::default());
        assert!(!c.echo && !c.verbose && !c.pedantic);
    }
}
