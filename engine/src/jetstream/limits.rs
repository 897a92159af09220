//! JetStream resource limits: the server's `max_memory_store` /
//! `max_file_store` and an account's `jetstream { ... }` limits, checked as
//! nats-server checks them.
//!
//! Streams reserve their `max_bytes` (when set). Creating or growing a
//! stream is refused when its reservation does not fit next to the other
//! reservations of its account (10028/10047), or of the whole server.
//! Publishes are refused once the server holds more than its limit
//! (10023, checked before storing) or once the account holds more than its
//! own (10002: the message is stored, found over, and removed again, as
//! nats-server does).
use super::api::ApiError;
use super::config::{Storage, StreamConfig};
use crate::options::JsAccountLimits;

/// Byte reservations (sums of `max_bytes`) next to which a stream's own is
/// checked, for the stream's storage type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reserved {
    /// The account's other streams (plus, for an update, the stream's old
    /// `max_bytes`, -1 included, as nats-server adds it).
    pub account: i64,
    /// Every stream of the server, the updated one included.
    pub server: i64,
}

/// What a publish may use: checked before and after the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quota {
    /// The server's `max_payload` (headers and payload together).
    pub max_payload: usize,
    /// The server already holds more than its limit for this storage type.
    pub server_full: bool,
    /// The account's limit for this storage type (the smaller of its
    /// `max_memory`/`max_store` and its per-stream byte limit) and what its
    /// other streams hold.
    pub account: Option<AccountRoom>,
}

/// An account's byte limit and the bytes its other streams hold.
#[derive(Debug, Clone, Copy)]
pub struct AccountRoom {
    /// The limit.
    pub max: u64,
    /// Bytes of the account's other streams of the same storage type.
    pub others: u64,
}

/// The server's limit for `storage` (-1: none).
pub fn server_max(storage: Storage, max_memory: i64, max_store: i64) -> i64 {
    match storage {
        Storage::Memory => max_memory,
        Storage::File => max_store,
    }
}

/// The account's byte limit for a publish to a stream of `storage`, if any:
/// nats-server refuses once the account's total passes either its
/// `max_memory`/`max_store` or its per-stream byte limit.
pub fn account_max(limits: &JsAccountLimits, storage: Storage) -> Option<u64> {
    let (total, per_stream) = match storage {
        Storage::Memory => (limits.max_memory, limits.memory_max_stream_bytes),
        Storage::File => (limits.max_store, limits.store_max_stream_bytes),
    };
    let total = u64::try_from(total).ok();
    let per_stream = u64::try_from(per_stream).ok().filter(|n| *n > 0);
    match (total, per_stream) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `max_streams`: refused once the account has that many (checked on
/// every create request, even for a stream that exists).
pub fn check_streams(limits: &JsAccountLimits, streams: usize) -> Result<(), ApiError> {
    match usize::try_from(limits.max_streams) {
        Ok(max) if max > 0 && streams >= max => Err(ApiError::max_streams()),
        _ => Ok(()),
    }
}

/// The account's `max_bytes_required` and per-stream byte limit, checked
/// at the end of nats-server's `checkStreamCfg`.
pub fn check_max_bytes(limits: &JsAccountLimits, cfg: &StreamConfig) -> Result<(), ApiError> {
    let per_stream = match cfg.storage {
        Storage::Memory => limits.memory_max_stream_bytes,
        Storage::File => limits.store_max_stream_bytes,
    };
    if limits.max_bytes_required && cfg.max_bytes <= 0 {
        return Err(ApiError::max_bytes_required());
    }
    if per_stream > 0 && cfg.max_bytes > per_stream {
        return Err(ApiError::max_stream_bytes_exceeded());
    }
    Ok(())
}

/// nats-server's `checkLimits`: the stream's `max_consumers` against the
/// account's, then `add` more reserved bytes (`max_bytes` on create, the
/// growth on update; unset counts as one byte) against the account's and
/// the server's limit.
pub fn check_reservation(
    limits: &JsAccountLimits,
    server_max: i64,
    cfg: &StreamConfig,
    add: i64,
    reserved: Reserved,
) -> Result<(), ApiError> {
    if cfg.max_consumers > 0 && limits.max_consumers > 0 && cfg.max_consumers > limits.max_consumers
    {
        return Err(ApiError::max_consumers());
    }
    let add = if add < 0 { 1 } else { add };
    let (account_max, refused) = match cfg.storage {
        Storage::Memory => (
            limits.max_memory,
            ApiError::memory_resources_exceeded as fn() -> ApiError,
        ),
        Storage::File => (limits.max_store, ApiError::storage_resources_exceeded as _),
    };
    if account_max >= 0 && reserved.account.saturating_add(add) > account_max {
        return Err(refused());
    }
    if server_max >= 0 && reserved.server.saturating_add(add) > server_max {
        return Err(refused());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> StreamConfig {
        serde_json::from_str::<StreamConfig>(json)
            .unwrap()
            .normalize()
            .unwrap()
    }

    fn limits(json: &str) -> JsAccountLimits {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let get = |k: &str| v[k].as_i64().unwrap_or(-1);
        JsAccountLimits {
            max_memory: get("max_memory"),
            max_store: get("max_store"),
            max_streams: get("max_streams"),
            max_consumers: get("max_consumers"),
            max_ack_pending: -1,
            memory_max_stream_bytes: get("memory_max_stream_bytes"),
            store_max_stream_bytes: get("store_max_stream_bytes"),
            max_bytes_required: v["max_bytes_required"] == true,
        }
    }

    /// The cases observed on nats-server 2.9.10 with an account limited
    /// to 100000 bytes of memory and a server limited to 1 MiB.
    #[test]
    fn reservations_as_nats_server() {
        let a = limits(r#"{"max_memory":100000,"max_streams":2,"max_consumers":1}"#);
        let mem = |max_bytes: i64| {
            cfg(&format!(
                r#"{{"name":"S","storage":"memory","max_bytes":{max_bytes}}}"#
            ))
        };
        let none = Reserved::default();
        let e = check_reservation(&a, -1, &mem(200_000), 200_000, none).unwrap_err();
        assert_eq!((e.code, e.err_code), (500, 10028));
        assert_eq!(e.description, "insufficient memory resources available");
        assert!(check_reservation(&a, -1, &mem(50_000), 50_000, none).is_ok());
        let after_50k = Reserved {
            account: 50_000,
            server: 50_000,
        };
        assert!(check_reservation(&a, -1, &mem(60_000), 60_000, after_50k).is_err());
        // Unset max_bytes reserves one byte.
        assert!(check_reservation(&a, -1, &mem(-1), -1, after_50k).is_ok());
        let full = Reserved {
            account: 100_000,
            server: 100_000,
        };
        assert!(check_reservation(&a, -1, &mem(-1), -1, full).is_err());
        // Growing on update: only the growth counts, against the server too.
        let b = JsAccountLimits::default();
        let t1 = Reserved {
            account: 800_000,
            server: 800_000,
        };
        assert!(check_reservation(&b, 1 << 20, &mem(1_100_000), 300_000, t1).is_err());
        assert!(check_reservation(&b, 1 << 20, &mem(1_000_000), 200_000, t1).is_ok());
        let file = cfg(r#"{"name":"S","max_bytes":11000000}"#);
        let e = check_reservation(&b, 10 << 20, &file, 11_000_000, none).unwrap_err();
        assert_eq!((e.code, e.err_code), (500, 10047));
        let many = cfg(r#"{"name":"S","storage":"memory","max_consumers":5}"#);
        assert_eq!(
            check_reservation(&a, -1, &many, -1, none)
                .unwrap_err()
                .err_code,
            10026
        );
        assert!(check_streams(&a, 1).is_ok());
        let e = check_streams(&a, 2).unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10027));
        assert!(check_streams(&b, 1000).is_ok());
    }

    #[test]
    fn max_bytes_rules() {
        let c = limits(
            r#"{"max_bytes_required":true,"memory_max_stream_bytes":1000,"store_max_stream_bytes":2000}"#,
        );
        let e = check_max_bytes(&c, &cfg(r#"{"name":"S","storage":"memory"}"#)).unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10113));
        let e = check_max_bytes(
            &c,
            &cfg(r#"{"name":"S","storage":"memory","max_bytes":2000}"#),
        )
        .unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10122));
        assert!(check_max_bytes(&c, &cfg(r#"{"name":"S","max_bytes":2000}"#)).is_ok());
        assert_eq!(account_max(&c, Storage::Memory), Some(1000));
        let a = limits(r#"{"max_memory":100000,"memory_max_stream_bytes":500}"#);
        assert_eq!(account_max(&a, Storage::Memory), Some(500));
        assert_eq!(account_max(&a, Storage::File), None);
        assert_eq!(
            account_max(&JsAccountLimits::default(), Storage::Memory),
            None
        );
    }
}
