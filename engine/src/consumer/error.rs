//! JetStream API errors a consumer can answer with, as nats-server's
//! `server/errors.json` defines them: HTTP-like `code`, JetStream `err_code`
//! and the exact `description` (templates already filled in).
use serde::{Deserialize, Serialize};

/// One `$JS.API` error, serialised as nats-server sends it inside a response:
/// `{"code":400,"err_code":10084,"description":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP-like status (400, 404, 500, 503).
    pub code: u16,
    /// The JetStream error code of `errors.json`.
    pub err_code: u16,
    /// The human description, templates filled in.
    pub description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (error code {})", self.description, self.err_code)
    }
}

impl std::error::Error for ApiError {}

fn e(code: u16, err_code: u16, description: impl Into<String>) -> ApiError {
    ApiError {
        code,
        err_code,
        description: description.into(),
    }
}

impl ApiError {
    /// JSConsumerReplicasExceedsStream.
    pub fn replicas_exceeds_stream() -> Self {
        e(
            400,
            10126,
            "consumer config replica count exceeds parent stream",
        )
    }
    /// JSReplicasCountCannotBeNegative.
    pub fn replicas_negative() -> Self {
        e(400, 10133, "replicas count cannot be negative")
    }
    /// JSConsumerReplicasShouldMatchStream.
    pub fn replicas_should_match_stream() -> Self {
        e(
            400,
            10134,
            "consumer config replicas must match interest retention stream's replicas",
        )
    }
    /// JSConsumerMaxDeliverBackoffErr.
    pub fn max_deliver_backoff() -> Self {
        e(
            400,
            10116,
            "max deliver is required to be > length of backoff values",
        )
    }
    /// JSConsumerDescriptionTooLongErrF.
    pub fn description_too_long(max: usize) -> Self {
        e(
            400,
            10107,
            format!("consumer description is too long, maximum allowed is {max}"),
        )
    }
    /// JSConsumerDeliverToWildcardsErr.
    pub fn deliver_to_wildcards() -> Self {
        e(400, 10079, "consumer deliver subject has wildcards")
    }
    /// JSConsumerInvalidDeliverSubject.
    pub fn invalid_deliver_subject() -> Self {
        e(400, 10112, "invalid push consumer deliver subject")
    }
    /// JSConsumerDeliverCycleErr.
    pub fn deliver_cycle() -> Self {
        e(400, 10081, "consumer deliver subject forms a cycle")
    }
    /// JSConsumerPushMaxWaitingErr.
    pub fn push_max_waiting() -> Self {
        e(400, 10080, "consumer in push mode can not set max waiting")
    }
    /// JSConsumerMaxPendingAckPolicyRequiredErr.
    pub fn max_pending_ack_policy_required() -> Self {
        e(
            400,
            10082,
            "consumer requires ack policy for max ack pending",
        )
    }
    /// JSConsumerSmallHeartbeatErr.
    pub fn small_heartbeat() -> Self {
        e(400, 10083, "consumer idle heartbeat needs to be >= 100ms")
    }
    /// JSConsumerPullRequiresAckErr.
    pub fn pull_requires_ack() -> Self {
        e(400, 10084, "consumer in pull mode requires ack policy")
    }
    /// JSConsumerPullWithRateLimitErr.
    pub fn pull_with_rate_limit() -> Self {
        e(
            400,
            10086,
            "consumer in pull mode can not have rate limit set",
        )
    }
    /// JSConsumerMaxWaitingNegativeErr.
    pub fn max_waiting_negative() -> Self {
        e(400, 10087, "consumer max waiting needs to be positive")
    }
    /// JSConsumerHBRequiresPushErr.
    pub fn hb_requires_push() -> Self {
        e(
            400,
            10088,
            "consumer idle heartbeat requires a push based consumer",
        )
    }
    /// JSConsumerFCRequiresPushErr.
    pub fn fc_requires_push() -> Self {
        e(
            400,
            10089,
            "consumer flow control requires a push based consumer",
        )
    }
    /// JSConsumerDirectRequiresPushErr.
    pub fn direct_requires_push() -> Self {
        e(400, 10090, "consumer direct requires a push based consumer")
    }
    /// JSConsumerDirectRequiresEphemeralErr.
    pub fn direct_requires_ephemeral() -> Self {
        e(400, 10091, "consumer direct requires an ephemeral consumer")
    }
    /// JSConsumerMaxRequestBatchNegativeErr.
    pub fn max_request_batch_negative() -> Self {
        e(400, 10114, "consumer max request batch needs to be > 0")
    }
    /// JSConsumerMaxRequestExpiresToSmall.
    pub fn max_request_expires_too_small() -> Self {
        e(
            400,
            10115,
            "consumer max request expires needs to be >= 1ms",
        )
    }
    /// JSConsumerMaxRequestBatchExceededF.
    pub fn max_request_batch_exceeded(limit: i64) -> Self {
        e(
            400,
            10125,
            format!("consumer max request batch exceeds server limit of {limit}"),
        )
    }
    /// JSConsumerMaxPendingAckExcessErrF.
    pub fn max_pending_ack_excess(limit: i64) -> Self {
        e(
            400,
            10121,
            format!("consumer max ack pending exceeds system limit of {limit}"),
        )
    }
    /// JSConsumerInactiveThresholdExcess; `limit` is Go's duration text.
    pub fn inactive_threshold_excess(limit: &str) -> Self {
        e(
            400,
            10153,
            format!("consumer inactive threshold exceeds system limit of {limit}"),
        )
    }
    /// JSConsumerDuplicateFilterSubjects.
    pub fn duplicate_filter_subjects() -> Self {
        e(
            400,
            10136,
            "consumer cannot have both FilterSubject and FilterSubjects specified",
        )
    }
    /// JSStreamInvalidConfigF with Go's `ErrBadSubject`.
    pub fn bad_filter_subject() -> Self {
        e(500, 10052, "invalid subject")
    }
    /// JSConsumerEmptyFilter.
    pub fn empty_filter() -> Self {
        e(
            400,
            10139,
            "consumer filter in FilterSubjects cannot be empty",
        )
    }
    /// JSConsumerOverlappingSubjectFilters.
    pub fn overlapping_filters() -> Self {
        e(400, 10138, "consumer subject filters cannot overlap")
    }
    /// JSConsumerInvalidPolicyErrF.
    pub fn invalid_policy(err: impl Into<String>) -> Self {
        e(400, 10094, err)
    }
    /// JSConsumerInvalidSamplingErrF.
    pub fn invalid_sampling(err: &str) -> Self {
        e(
            400,
            10095,
            format!("failed to parse consumer sampling configuration: {err}"),
        )
    }
    /// JSConsumerWithFlowControlNeedsHeartbeats.
    pub fn flow_control_needs_heartbeats() -> Self {
        e(
            400,
            10108,
            "consumer with flow control also needs heartbeats",
        )
    }
    /// JSConsumerCreateDurableAndNameMismatch.
    pub fn durable_and_name_mismatch() -> Self {
        e(
            400,
            10132,
            "Consumer Durable and Name have to be equal if both are provided",
        )
    }
    /// JSConsumerMetadataLengthErrF.
    pub fn metadata_length(limit: &str) -> Self {
        e(
            400,
            10135,
            format!("consumer metadata exceeds maximum size of {limit}"),
        )
    }
    /// JSConsumerBadDurableNameErr.
    pub fn bad_durable_name() -> Self {
        e(400, 10103, "durable name can not contain '.', '*', '>'")
    }
    /// JSConsumerNameTooLongErrF.
    pub fn name_too_long(max: usize) -> Self {
        e(
            400,
            10102,
            format!("consumer name is too long, maximum allowed is {max}"),
        )
    }
    /// JSConsumerNameExistErr: an update moved a bound push consumer's deliver subject.
    pub fn name_exist() -> Self {
        e(400, 10013, "consumer name already in use")
    }
    /// JSConsumerCreateErrF: an update changed a field nats-server keeps fixed
    /// (`deliver policy can not be updated`, ...).
    pub fn create(err: impl Into<String>) -> Self {
        e(500, 10012, err)
    }
    /// JSConsumerWQRequiresExplicitAckErr.
    pub fn wq_requires_explicit_ack() -> Self {
        e(400, 10098, "workqueue stream requires explicit ack")
    }
    /// JSConsumerWQConsumerNotDeliverAllErr.
    pub fn wq_not_deliver_all() -> Self {
        e(
            400,
            10101,
            "consumer must be deliver all on workqueue stream",
        )
    }
    /// JSInvalidJSONErr.
    pub fn invalid_json() -> Self {
        e(400, 10025, "invalid JSON")
    }
    /// JSConsumerPushWithPriorityGroupErr.
    pub fn push_with_priority_group() -> Self {
        e(
            400,
            10178,
            "priority groups can not be used with push consumers",
        )
    }
    /// JSConsumerPriorityPolicyWithoutGroup.
    pub fn priority_policy_without_group() -> Self {
        e(
            400,
            10159,
            "Setting PriorityPolicy requires at least one PriorityGroup to be set",
        )
    }
    /// JSConsumerEmptyGroupName.
    pub fn empty_group_name() -> Self {
        e(400, 10161, "Group name cannot be an empty string")
    }
    /// JSConsumerInvalidGroupNameErr.
    pub fn invalid_group_name() -> Self {
        e(
            400,
            10162,
            "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters",
        )
    }
    /// JSConsumerPriorityGroupWithPolicyNone.
    pub fn priority_group_with_policy_none() -> Self {
        e(
            400,
            10196,
            "consumer can not have priority groups when policy is none",
        )
    }
    /// JSConsumerPinnedTTLWithoutPriorityPolicyNone.
    pub fn pinned_ttl_without_priority_policy() -> Self {
        e(
            400,
            10197,
            "PinnedTTL cannot be set when PriorityPolicy is none",
        )
    }
    /// JSConsumerInvalidPriorityGroupErr.
    pub fn invalid_priority_group() -> Self {
        e(
            400,
            10160,
            "Provided priority group does not exist for this consumer",
        )
    }
}
