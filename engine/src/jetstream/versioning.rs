//! Asset versioning metadata (ADR-44, nats-server's `jetstream_versioning.go`):
//! streams and consumers store the API level their configuration needs as
//! `_nats.req.level`, and every create, update and info answer adds the
//! server's version (`_nats.ver`) and API level (`_nats.level`), which are
//! never stored. A client learns from them whether a server may run an
//! asset it restores elsewhere.
use std::collections::BTreeMap;

use crate::server::{COMPAT_VERSION, JS_API_LEVEL};

/// The API level the configuration needs (stored).
pub const REQUIRED_LEVEL: &str = "_nats.req.level";
/// The server's version (answers only).
pub const SERVER_VERSION: &str = "_nats.ver";
/// The server's API level (answers only).
pub const SERVER_LEVEL: &str = "_nats.level";

/// Set the stored part of `metadata`: `_nats.req.level` to `level`, with the
/// answer-only keys a request may carry taken out (nats-server's
/// `setStatic*Metadata`).
pub fn set_static(metadata: &mut BTreeMap<String, String>, level: u32) {
    metadata.remove(SERVER_VERSION);
    metadata.remove(SERVER_LEVEL);
    metadata.insert(REQUIRED_LEVEL.to_string(), level.to_string());
}

/// Give `metadata` the `_nats.req.level` of `prev` (none if it has none), so
/// that an idempotent create compares configurations without it (nats-server's
/// `copy*Metadata`).
pub fn copy_required(metadata: &mut BTreeMap<String, String>, prev: &BTreeMap<String, String>) {
    metadata.remove(SERVER_VERSION);
    metadata.remove(SERVER_LEVEL);
    match prev.get(REQUIRED_LEVEL) {
        Some(level) => metadata.insert(REQUIRED_LEVEL.to_string(), level.clone()),
        None => metadata.remove(REQUIRED_LEVEL),
    };
}

/// Add the server's version and API level to the `metadata` of the
/// configuration JSON `config` of an answer (nats-server's
/// `setDynamic*Metadata`). natsd names the release it implements
/// ([`COMPAT_VERSION`]), as its INFO does.
pub fn add_dynamic(config: &mut serde_json::Value) {
    let Some(config) = config.as_object_mut() else {
        return;
    };
    let metadata = config
        .entry("metadata")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(m) = metadata.as_object_mut() {
        m.insert(SERVER_VERSION.into(), COMPAT_VERSION.into());
        m.insert(SERVER_LEVEL.into(), JS_API_LEVEL.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_keys_are_stored_and_dynamic_ones_are_not() {
        let mut m = BTreeMap::from([
            ("a".to_string(), "b".to_string()),
            (SERVER_VERSION.to_string(), "1.0".to_string()),
            (SERVER_LEVEL.to_string(), "9".to_string()),
            (REQUIRED_LEVEL.to_string(), "7".to_string()),
        ]);
        set_static(&mut m, 1);
        let keys: Vec<_> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(keys, [("_nats.req.level", "1"), ("a", "b")]);

        let mut req = BTreeMap::from([(REQUIRED_LEVEL.to_string(), "0".to_string())]);
        copy_required(&mut req, &BTreeMap::new());
        assert!(req.is_empty(), "a stream stored without a level keeps none");
        copy_required(&mut req, &m);
        assert_eq!(req.get(REQUIRED_LEVEL).map(String::as_str), Some("1"));

        let mut cfg = serde_json::json!({"name": "S"});
        add_dynamic(&mut cfg);
        assert_eq!(cfg["metadata"][SERVER_VERSION], COMPAT_VERSION);
        assert_eq!(cfg["metadata"][SERVER_LEVEL], JS_API_LEVEL.to_string());
    }
}
