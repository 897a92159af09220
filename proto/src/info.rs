//! `INFO` and `CONNECT` JSON bodies.
//!
//! Field names, order and `omitempty` rules follow nats-server's `Info` and
//! `ClientOpts` structs (`server/server.go`, `server/client.go`): 2.9.10's
//! fields plus 2.11's `api_lvl`, so `serde_json::to_vec(&info)` gives the
//! same text nats-server sends.
use serde::{Deserialize, Deserializer, Serialize};

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Go's `encoding/json` leaves a field alone when the JSON value is `null`;
/// serde would fail. This reads `null` as the type's default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// As [`null_default`], for the flags that default to true.
fn null_true<'de, D>(d: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

fn default_true() -> bool {
    true
}

/// The `INFO` a server sends, in nats-server 2.9.10's field order.
///
/// Route, gateway and leafnode fields are not part of the client protocol
/// and are left out; unknown fields are ignored when reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// Server's public nkey (56 characters).
    #[serde(rename = "server_id", deserialize_with = "null_default")]
    pub server_id: String,
    /// Server name (defaults to the id).
    #[serde(deserialize_with = "null_default")]
    pub server_name: String,
    /// The nats-server release whose client-visible features are implemented.
    #[serde(deserialize_with = "null_default")]
    pub version: String,
    /// Protocol level (1: async INFO supported).
    pub proto: i32,
    /// Build commit.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub git_commit: String,
    /// Go version in nats-server; natsd puts its toolchain here.
    #[serde(rename = "go", deserialize_with = "null_default")]
    pub go: String,
    /// Listen host.
    #[serde(deserialize_with = "null_default")]
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Headers supported (`HPUB`/`HMSG`).
    pub headers: bool,
    /// Clients must authenticate.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// TLS is required.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// TLS is available but optional.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    /// Largest payload accepted.
    pub max_payload: i32,
    /// JetStream is enabled.
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// Server IP (advertise).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub ip: String,
    /// The client's connection id.
    #[serde(rename = "client_id", skip_serializing_if = "is_zero")]
    pub client_id: u64,
    /// The client's IP as the server sees it.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub client_ip: String,
    /// Nonce to sign (nkey/JWT auth).
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
    /// Cluster name was chosen dynamically.
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_dynamic: bool,
    /// JetStream domain.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub domain: String,
    /// URLs of the cluster's servers for clients.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub connect_urls: Vec<String>,
    /// WebSocket URLs of the cluster's servers.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub ws_connect_urls: Vec<String>,
    /// Lame duck mode: the server is about to shut down (ADR-5).
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// JetStream API level (nats-server 2.11+): clients check it before using
    /// features newer releases added to the JetStream API.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub api_lvl: u32,
    /// natsd's own version (not sent by nats-server; clients ignore it).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub natsd: String,
}

impl ServerInfo {
    /// The JSON text, as nats-server marshals it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers, bools and string lists to
        // a Vec cannot fail (no maps with non-string keys, no I/O).
        serde_json::to_vec(self).expect("ServerInfo always serialises")
    }
}

/// The `CONNECT` a client sends.
///
/// Absent `verbose`, `pedantic` and `echo` are true, as nats-server's
/// `defaultOpts`; a JSON `null` leaves a field at its default; unknown
/// fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectInfo {
    /// Deliver the client's own publishes back to it.
    #[serde(default = "default_true", deserialize_with = "null_true")]
    pub echo: bool,
    /// Answer every op with `+OK`.
    #[serde(default = "default_true", deserialize_with = "null_true")]
    pub verbose: bool,
    /// Check subjects strictly.
    #[serde(default = "default_true", deserialize_with = "null_true")]
    pub pedantic: bool,
    /// The client requires TLS.
    #[serde(deserialize_with = "null_default")]
    pub tls_required: bool,
    /// Public nkey.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub nkey: String,
    /// User JWT.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub jwt: String,
    /// Signature of the INFO nonce.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub sig: String,
    /// Token.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub auth_token: String,
    /// User name.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub user: String,
    /// Password.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub pass: String,
    /// Connection name.
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Client language.
    #[serde(deserialize_with = "null_default")]
    pub lang: String,
    /// Client library version.
    #[serde(deserialize_with = "null_default")]
    pub version: String,
    /// Protocol level: 0 original, 1 async INFO. Others are refused by the
    /// server (`invalid client protocol`).
    #[serde(deserialize_with = "null_default")]
    pub protocol: i64,
    /// Account to bind to.
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub account: String,
    /// Create the account if missing.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub new_account: bool,
    /// Client understands `HMSG`.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub headers: bool,
    /// Client wants 503 no-responders replies (needs `headers`).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "null_default")]
    pub no_responders: bool,
}

impl Default for ConnectInfo {
    fn default() -> Self {
        ConnectInfo {
            echo: true,
            verbose: true,
            pedantic: true,
            tls_required: false,
            nkey: String::new(),
            jwt: String::new(),
            sig: String::new(),
            auth_token: String::new(),
            user: String::new(),
            pass: String::new(),
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            account: String::new(),
            new_account: false,
            headers: false,
            no_responders: false,
        }
    }
}

impl ConnectInfo {
    /// Parses a `CONNECT` body.
    pub fn from_json(json: &[u8]) -> Result<ConnectInfo, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The JSON text, in nats-server's `ClientOpts` field order.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, numbers and bools: serialising to a Vec cannot fail.
        serde_json::to_vec(self).expect("ConnectInfo always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INFO bodies nats-server 2.9.10 sent on this machine (plain, and with
    /// `--user/--pass`).
    const INFO_2_9_10: &[&str] = &[
        r#"{"server_id":"NDYJ23QD3EV3CNUS4CFM5WAL6GLO7SKWNNOVRNEE5EZ3BSVPWGTXJWKO","server_name":"NDYJ23QD3EV3CNUS4CFM5WAL6GLO7SKWNNOVRNEE5EZ3BSVPWGTXJWKO","version":"2.9.10","proto":1,"go":"go1.19.8","host":"127.0.0.1","port":14222,"headers":true,"max_payload":1048576,"client_id":90,"client_ip":"127.0.0.1"}"#,
        r#"{"server_id":"NDZPP4EBCFFSKMVEZ76ZEP5XKBE2HIFT437FAGIG32P7CSQLCUJNT4LV","server_name":"NDZPP4EBCFFSKMVEZ76ZEP5XKBE2HIFT437FAGIG32P7CSQLCUJNT4LV","version":"2.9.10","proto":1,"go":"go1.19.8","host":"127.0.0.1","port":14223,"headers":true,"auth_required":true,"max_payload":1048576,"client_id":4,"client_ip":"127.0.0.1"}"#,
    ];

    #[test]
    fn server_info_reserialises_byte_for_byte() {
        for json in INFO_2_9_10 {
            let info: ServerInfo = serde_json::from_str(json).unwrap();
            assert_eq!(String::from_utf8(info.to_json()).unwrap(), *json);
        }
    }

    #[test]
    fn server_info_field_order_matches_go_struct() {
        let info = ServerInfo {
            server_id: "ID".into(),
            server_name: "n".into(),
            version: "2.9.0".into(),
            proto: 1,
            git_commit: "abc".into(),
            go: "rustc".into(),
            host: "0.0.0.0".into(),
            port: 4222,
            headers: true,
            auth_required: true,
            tls_required: true,
            tls_verify: true,
            tls_available: true,
            max_payload: 1_048_576,
            jetstream: true,
            ip: "1.2.3.4".into(),
            client_id: 5,
            client_ip: "127.0.0.1".into(),
            nonce: "N".into(),
            cluster: "c".into(),
            cluster_dynamic: true,
            domain: "d".into(),
            connect_urls: vec!["a:1".into()],
            ws_connect_urls: vec!["b:2".into()],
            ldm: true,
            api_lvl: 1,
            natsd: "0.1.0".into(),
        };
        let json = String::from_utf8(info.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"server_id":"ID","server_name":"n","version":"2.9.0","proto":1,"git_commit":"abc","go":"rustc","host":"0.0.0.0","port":4222,"headers":true,"auth_required":true,"tls_required":true,"tls_verify":true,"tls_available":true,"max_payload":1048576,"jetstream":true,"ip":"1.2.3.4","client_id":5,"client_ip":"127.0.0.1","nonce":"N","cluster":"c","cluster_dynamic":true,"domain":"d","connect_urls":["a:1"],"ws_connect_urls":["b:2"],"ldm":true,"api_lvl":1,"natsd":"0.1.0"}"#
        );
        assert_eq!(serde_json::from_str::<ServerInfo>(&json).unwrap(), info);
    }

    #[test]
    fn connect_defaults_follow_go_default_opts() {
        // nats-server `defaultOpts`: verbose, pedantic and echo are true.
        let c = ConnectInfo::from_json(b"{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo);
        assert_eq!(c, ConnectInfo::default());
        let c = ConnectInfo::from_json(br#"{"verbose":null,"name":null,"unknown":[1]}"#).unwrap();
        assert!(c.verbose);
        assert_eq!(c.name, "");
    }

    #[test]
    fn connect_reads_client_fields() {
        let json = br#"{"verbose":false,"pedantic":false,"tls_required":false,"name":"svc","lang":"rust","version":"0.51.0","protocol":1,"echo":false,"headers":true,"no_responders":true,"user":"a","pass":"b","auth_token":"t","jwt":"j","nkey":"k","sig":"s","account":"A","new_account":true}"#;
        let c = ConnectInfo::from_json(json).unwrap();
        assert!(!c.verbose && !c.pedantic && !c.echo);
        assert!(c.headers && c.no_responders && c.new_account);
        assert_eq!(
            (c.user.as_str(), c.pass.as_str(), c.auth_token.as_str()),
            ("a", "b", "t")
        );
        assert_eq!(
            (c.jwt.as_str(), c.nkey.as_str(), c.sig.as_str()),
            ("j", "k", "s")
        );
        assert_eq!(
            (c.name.as_str(), c.lang.as_str(), c.version.as_str()),
            ("svc", "rust", "0.51.0")
        );
        assert_eq!((c.protocol, c.account.as_str()), (1, "A"));
        assert_eq!(ConnectInfo::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn connect_rejects_bad_json() {
        assert!(ConnectInfo::from_json(b"{bad").is_err());
        assert!(ConnectInfo::from_json(b"").is_err());
    }
}
