//! `$JS.API` wire types: errors with nats-server's codes, requests, and the
//! response envelopes (`{"type": ..., "error"?: ..., ...}`).
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::filters::TooComplex;

/// The `$JS.API` error: one type with the consumer machine's table
/// ([`crate::consumer::ApiError`]); the stream errors are added here.
pub use crate::consumer::ApiError;

impl ApiError {
    /// An error with these codes.
    pub fn new(code: u16, err_code: u16, description: &str) -> Self {
        ApiError {
            code,
            err_code,
            description: description.to_string(),
        }
    }

    /// 10052 `JSStreamInvalidConfigF`.
    pub fn invalid_config(err: &str) -> Self {
        Self::new(500, 10052, err)
    }

    /// 10003 `JSBadRequestErr`.
    pub fn bad_request() -> Self {
        Self::new(400, 10003, "bad request")
    }

    /// 10025 `JSInvalidJSONErr` with the parser's complaint.
    pub fn invalid_json_at(err: &serde_json::Error) -> Self {
        Self::new(400, 10025, &format!("invalid JSON: {err}"))
    }

    /// 10025 `JSInvalidJSONErr` with a complaint of ours.
    pub fn invalid_json_text(err: &str) -> Self {
        Self::new(400, 10025, &format!("invalid JSON: {err}"))
    }

    /// 10104 `JSConsumerStoreFailedErrF`.
    pub fn consumer_store_failed(err: &str) -> Self {
        Self::new(
            500,
            10104,
            &format!("error creating store for consumer: {err}"),
        )
    }

    /// 10059 `JSStreamNotFoundErr`.
    pub fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found")
    }

    /// 10037 `JSNoMessageFoundErr`.
    pub fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found")
    }

    /// 10109 `JSStreamSealedErr`.
    pub fn sealed() -> Self {
        Self::new(400, 10109, "invalid operation on sealed stream")
    }

    /// 10077 `JSStreamStoreFailedF`.
    pub fn store_failed(err: &str) -> Self {
        Self::new(503, 10077, err)
    }

    /// 10039 `JSNotEnabledForAccountErr`.
    pub fn not_enabled_for_account() -> Self {
        Self::new(503, 10039, "JetStream not enabled for account")
    }

    /// 10056 `JSStreamMismatchErr`.
    pub fn stream_mismatch() -> Self {
        Self::new(400, 10056, "stream name in subject does not match request")
    }

    /// 10014 `JSConsumerNotFoundErr`.
    pub fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found")
    }

    /// 10016 `JSConsumerDurableNameNotInSubjectErr`.
    pub fn durable_not_in_subject() -> Self {
        Self::new(
            400,
            10016,
            "consumer expected to be durable but no durable name set in subject",
        )
    }

    /// 10017 `JSConsumerDurableNameNotMatchSubjectErr`.
    pub fn durable_not_match_subject() -> Self {
        Self::new(
            400,
            10017,
            "consumer name in subject does not match durable name in request",
        )
    }

    /// 10018 `JSConsumerDurableNameNotSetErr`.
    pub fn durable_not_set() -> Self {
        Self::new(
            400,
            10018,
            "consumer expected to be durable but a durable name was not set",
        )
    }

    /// 10020 `JSConsumerEphemeralWithDurableNameErr`.
    pub fn ephemeral_with_durable() -> Self {
        Self::new(
            400,
            10020,
            "consumer expected to be ephemeral but a durable name was set in request",
        )
    }

    /// 10026 `JSMaximumConsumersLimitErr`.
    pub fn max_consumers() -> Self {
        Self::new(400, 10026, "maximum consumers limit reached")
    }

    /// 10099 `JSConsumerWQMultipleUnfilteredErr`.
    pub fn wq_multiple_unfiltered() -> Self {
        Self::new(
            400,
            10099,
            "multiple non-filtered consumers not allowed on workqueue stream",
        )
    }

    /// 10100 `JSConsumerWQConsumerNotUniqueErr`.
    pub fn wq_not_unique() -> Self {
        Self::new(
            400,
            10100,
            "filtered consumer not unique on workqueue stream",
        )
    }

    /// 10127 `JSConsumerNameContainsPathSeparatorsErr`.
    pub fn consumer_path_separators() -> Self {
        Self::new(400, 10127, "Consumer name can not contain path separators")
    }

    /// 10131 `JSConsumerCreateFilterSubjectMismatchErr`.
    pub fn filter_subject_mismatch() -> Self {
        Self::new(
            400,
            10131,
            "Consumer create request did not match filtered subject from create subject",
        )
    }

    /// 10137 `JSConsumerMultipleFiltersNotAllowed`.
    pub fn multiple_filters_not_allowed() -> Self {
        Self::new(
            400,
            10137,
            "consumer with multiple subject filters cannot use subject based API",
        )
    }

    /// 10148 `JSConsumerAlreadyExists`.
    pub fn consumer_already_exists() -> Self {
        Self::new(400, 10148, "consumer already exists")
    }

    /// 10149 `JSConsumerDoesNotExist`.
    pub fn consumer_does_not_exist() -> Self {
        Self::new(400, 10149, "consumer does not exist")
    }

    /// 10010 `JSClusterRequiredErr`: what a server without a cluster answers
    /// to the leader stepdown requests.
    pub fn cluster_required() -> Self {
        Self::new(503, 10010, "JetStream clustering support required")
    }

    /// 10027 `JSMaximumStreamsLimitErr`.
    pub fn max_streams() -> Self {
        Self::new(400, 10027, "maximum number of streams reached")
    }

    /// 10028 `JSMemoryResourcesExceededErr`.
    pub fn memory_resources_exceeded() -> Self {
        Self::new(500, 10028, "insufficient memory resources available")
    }

    /// 10047 `JSStorageResourcesExceededErr`.
    pub fn storage_resources_exceeded() -> Self {
        Self::new(500, 10047, "insufficient storage resources available")
    }

    /// 10023 `JSInsufficientResourcesErr`: a publish while the server holds
    /// more than its limit.
    pub fn insufficient_resources() -> Self {
        Self::new(503, 10023, "insufficient resources")
    }

    /// 10002 `JSAccountResourcesExceededErr`: a publish past the account's
    /// limit.
    pub fn account_resources_exceeded() -> Self {
        Self::new(400, 10002, "resource limits exceeded for account")
    }

    /// 10113 `JSStreamMaxBytesRequired`.
    pub fn max_bytes_required() -> Self {
        Self::new(
            400,
            10113,
            "account requires a stream config to have max bytes set",
        )
    }

    /// 10122 `JSStreamMaxStreamBytesExceeded`.
    pub fn max_stream_bytes_exceeded() -> Self {
        Self::new(
            400,
            10122,
            "stream max bytes exceeds account limit max stream bytes",
        )
    }

    /// 10074 `JSStreamReplicasNotSupportedErr`: more than one replica
    /// without a cluster (streams and consumers alike).
    pub fn replicas_not_supported() -> Self {
        Self::new(
            500,
            10074,
            "replicas > 1 not supported in non-clustered mode",
        )
    }

    /// 10128 `JSStreamNameContainsPathSeparatorsErr`.
    pub fn stream_path_separators() -> Self {
        Self::new(400, 10128, "Stream name can not contain path separators")
    }

    /// 10049 `JSStreamCreateErrF` as nats-server answers any store failure
    /// at creation (the cause goes to the log, not to the client).
    pub fn stream_store_create_failed() -> Self {
        Self::new(500, 10049, "error creating store for stream")
    }

    /// 10012 `JSConsumerCreateErrF` as nats-server answers any store
    /// failure at creation (the cause goes to the log).
    pub fn consumer_store_create_failed() -> Self {
        Self::new(500, 10012, "error creating store for consumer")
    }

    /// 10054 `JSStreamMessageExceedsMaximumErr`.
    pub fn message_too_big() -> Self {
        Self::new(400, 10054, "message size exceeds maximum allowed")
    }

    /// 10097 `JSStreamHeaderExceedsMaximumErr`: a header block over 64 KiB.
    pub fn header_too_big() -> Self {
        Self::new(400, 10097, "header size exceeds maximum allowed of 64k")
    }
}

/// A list of subjects or filters whose overlap check passed the work limit
/// of its [`FilterSet`](crate::filters::FilterSet): 10052, where
/// nats-server would grind on for seconds.
impl From<TooComplex> for ApiError {
    fn from(_: TooComplex) -> Self {
        Self::invalid_config("subjects too many or too wildcarded to check for overlaps")
    }
}

/// An optional JSON request body: empty means the defaults, as nats-server
/// reads them.
pub fn parse_request<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_body(body)
}

/// A request body that counts only when it is a JSON object or array
/// (nats-server's `isJSONObjectOrArray`); anything else means the defaults.
pub fn parse_object_request<T: Default + for<'de> Deserialize<'de>>(
    body: &[u8],
) -> Result<T, ApiError> {
    match body.trim_ascii_start().first() {
        Some(b'{' | b'[') => parse_body(body),
        _ => Ok(T::default()),
    }
}

/// A JSON request body read as Go's `json.Unmarshal` reads it: `null`
/// (the whole body or a field) leaves the default in place.
pub fn parse_body<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid_json_at(&e))?;
    if v.is_null() {
        return Ok(T::default());
    }
    drop_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| ApiError::invalid_json_at(&e))
}

fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// `{"type": kind, "error": err}`.
pub fn error_response(kind: &str, err: &ApiError) -> Vec<u8> {
    #[derive(Serialize)]
    struct E<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        error: &'a ApiError,
    }
    to_json(&E { kind, error: err })
}

/// `{"type": kind, ...body}`.
pub fn response<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct R<'a, T> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(flatten)]
        body: &'a T,
    }
    to_json(&R { kind, body })
}

/// Serialize a response; our types are maps of strings and numbers, which
/// cannot fail to serialize.
pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Go's JSON for a `time.Time` given as ns since the epoch: RFC 3339 in UTC
/// with nanoseconds; the zero time for 0.
pub fn time_json(ns: i64) -> String {
    match u64::try_from(ns) {
        Ok(n) if n > 0 => crate::monitor::rfc3339(UNIX_EPOCH + Duration::from_nanos(n)),
        _ => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// Response type strings.
pub mod kind {
    /// `$JS.API.INFO`.
    pub const ACCOUNT_INFO: &str = "io.nats.jetstream.api.v1.account_info_response";
    /// `STREAM.CREATE`.
    pub const STREAM_CREATE: &str = "io.nats.jetstream.api.v1.stream_create_response";
    /// `STREAM.UPDATE`.
    pub const STREAM_UPDATE: &str = "io.nats.jetstream.api.v1.stream_update_response";
    /// `STREAM.DELETE`.
    pub const STREAM_DELETE: &str = "io.nats.jetstream.api.v1.stream_delete_response";
    /// `STREAM.INFO`.
    pub const STREAM_INFO: &str = "io.nats.jetstream.api.v1.stream_info_response";
    /// `STREAM.NAMES`.
    pub const STREAM_NAMES: &str = "io.nats.jetstream.api.v1.stream_names_response";
    /// `STREAM.LIST`.
    pub const STREAM_LIST: &str = "io.nats.jetstream.api.v1.stream_list_response";
    /// `STREAM.PURGE`.
    pub const STREAM_PURGE: &str = "io.nats.jetstream.api.v1.stream_purge_response";
    /// `STREAM.MSG.DELETE`.
    pub const MSG_DELETE: &str = "io.nats.jetstream.api.v1.stream_msg_delete_response";
    /// `STREAM.MSG.GET`.
    pub const MSG_GET: &str = "io.nats.jetstream.api.v1.stream_msg_get_response";
    /// `CONSUMER.CREATE` / `CONSUMER.DURABLE.CREATE`.
    pub const CONSUMER_CREATE: &str = "io.nats.jetstream.api.v1.consumer_create_response";
    /// `CONSUMER.INFO`.
    pub const CONSUMER_INFO: &str = "io.nats.jetstream.api.v1.consumer_info_response";
    /// `CONSUMER.DELETE`.
    pub const CONSUMER_DELETE: &str = "io.nats.jetstream.api.v1.consumer_delete_response";
    /// `CONSUMER.NAMES`.
    pub const CONSUMER_NAMES: &str = "io.nats.jetstream.api.v1.consumer_names_response";
    /// `CONSUMER.LIST`.
    pub const CONSUMER_LIST: &str = "io.nats.jetstream.api.v1.consumer_list_response";
    /// `CONSUMER.PAUSE`.
    pub const CONSUMER_PAUSE: &str = "io.nats.jetstream.api.v1.consumer_pause_response";
    /// `CONSUMER.UNPIN`.
    pub const CONSUMER_UNPIN: &str = "io.nats.jetstream.api.v1.consumer_unpin_response";
    /// `CONSUMER.LEADER.STEPDOWN`.
    pub const CONSUMER_LEADER_STEPDOWN: &str =
        "io.nats.jetstream.api.v1.consumer_leader_stepdown_response";
    /// `STREAM.LEADER.STEPDOWN`.
    pub const STREAM_LEADER_STEPDOWN: &str =
        "io.nats.jetstream.api.v1.stream_leader_stepdown_response";
}

/// A paging `offset` as nats-server reads it: a JSON integer, negative
/// meaning 0.
fn offset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = i64::deserialize(d)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `STREAM.INFO` request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamInfoRequest {
    /// `offset` into the subjects.
    #[serde(default, deserialize_with = "offset")]
    pub offset: usize,
    /// `deleted_details`.
    #[serde(default)]
    pub deleted_details: bool,
    /// `subjects_filter`.
    #[serde(default)]
    pub subjects_filter: String,
}

/// `STREAM.NAMES` / `STREAM.LIST` request.
#[derive(Debug, Default, Deserialize)]
pub struct StreamListRequest {
    /// `offset`.
    #[serde(default, deserialize_with = "offset")]
    pub offset: usize,
    /// `subject` filter.
    #[serde(default)]
    pub subject: String,
}

/// `STREAM.PURGE` request.
#[derive(Debug, Default, Deserialize)]
pub struct PurgeRequest {
    /// `filter`.
    #[serde(default)]
    pub filter: String,
    /// `seq`: purge below it.
    #[serde(default)]
    pub seq: u64,
    /// `keep`: keep this many of the newest.
    #[serde(default)]
    pub keep: u64,
}

/// `STREAM.MSG.GET` / `DIRECT.GET` request (nats-server `JSApiMsgGetRequest`;
/// the batch and multi-last fields are ADR-31's, answered by direct gets only).
#[derive(Debug, Default, Deserialize)]
pub struct MsgGetRequest {
    /// `seq`: the message, or where a batch or `next_by_subj` starts.
    #[serde(default)]
    pub seq: u64,
    /// `last_by_subj`.
    #[serde(default)]
    pub last_by_subj: String,
    /// `next_by_subj`.
    #[serde(default)]
    pub next_by_subj: String,
    /// `batch`: how many messages (a batch answer when not 0).
    #[serde(default)]
    pub batch: i64,
    /// `max_bytes`: stop a batch once this much was sent (0: `max_pending`).
    #[serde(default)]
    pub max_bytes: i64,
    /// `start_time` (RFC 3339, read as ns since the epoch): start at the
    /// first message at or after it.
    #[serde(default, deserialize_with = "rfc3339_ns")]
    pub start_time: Option<i64>,
    /// `multi_last`: subject filters whose last messages are wanted.
    #[serde(default)]
    pub multi_last: Vec<String>,
    /// `up_to_seq`: the ceiling of a `multi_last` get.
    #[serde(default)]
    pub up_to_seq: u64,
    /// `up_to_time` (as `start_time`): the ceiling of a `multi_last` get.
    #[serde(default, deserialize_with = "rfc3339_ns")]
    pub up_to_time: Option<i64>,
    /// `no_hdr`: leave the message's own headers out.
    #[serde(default)]
    pub no_hdr: bool,
}

/// A JSON string holding an RFC 3339 time, as ns since the epoch (Go's
/// `*time.Time` field; [`parse_body`] has already dropped a `null`).
fn rfc3339_ns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::consumer::parse_rfc3339_ns(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("parsing time {text:?} as RFC 3339")))
}

/// `CONSUMER.CREATE` request.
#[derive(Debug, Default, Deserialize)]
pub struct CreateConsumerRequest {
    /// `stream_name`.
    #[serde(default)]
    pub stream_name: String,
    /// `config`.
    #[serde(default)]
    pub config: crate::consumer::ConsumerConfig,
    /// `action`: `create`, `update` or empty (either).
    #[serde(default)]
    pub action: String,
}

/// `CONSUMER.NAMES` / `CONSUMER.LIST` request.
#[derive(Debug, Default, Deserialize)]
pub struct ConsumerListRequest {
    /// `offset`.
    #[serde(default, deserialize_with = "offset")]
    pub offset: usize,
}

/// `CONSUMER.PAUSE` request: no `pause_until` (or Go's zero time) resumes.
#[derive(Debug, Default, Deserialize)]
pub struct ConsumerPauseRequest {
    /// `pause_until`, RFC 3339.
    #[serde(default)]
    pub pause_until: Option<String>,
}

/// `CONSUMER.UNPIN` request.
#[derive(Debug, Default, Deserialize)]
pub struct ConsumerUnpinRequest {
    /// `group`.
    #[serde(default)]
    pub group: String,
}

/// `STREAM.MSG.DELETE` request.
#[derive(Debug, Default, Deserialize)]
pub struct MsgDeleteRequest {
    /// `seq`.
    #[serde(default)]
    pub seq: u64,
    /// `no_erase`: remove without overwriting.
    #[serde(default)]
    pub no_erase: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let e = error_response(kind::STREAM_INFO, &ApiError::stream_not_found());
        assert_eq!(
            String::from_utf8(e).unwrap(),
            r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#
        );
        #[derive(Serialize)]
        struct B {
            success: bool,
        }
        let r = response(kind::STREAM_DELETE, &B { success: true });
        assert_eq!(
            String::from_utf8(r).unwrap(),
            r#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#
        );
        assert_eq!(time_json(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            time_json(1_700_000_000_120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        let r: PurgeRequest = parse_request(b"").unwrap();
        assert_eq!((r.seq, r.keep), (0, 0));
        assert_eq!(
            parse_request::<PurgeRequest>(b"{").unwrap_err().err_code,
            10025
        );
    }
}
