//! Consumer configuration as nats-server's `ConsumerConfig` JSON carries it
//! (field names, omitted zero values, durations in nanoseconds), its defaults
//! (`setConsumerConfigDefaults`), its validation (`checkConsumerCfg`, the
//! workqueue rules of `addConsumer`) and the update rules
//! (`checkNewConsumerConfig`).
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::filters::FilterSet;
use crate::subject;

/// Default `ack_wait` for ack policies `explicit` and `all`.
pub const ACK_WAIT_DEFAULT: Duration = Duration::from_secs(30);
/// Default `max_ack_pending` for ack policies `explicit` and `all`.
pub const MAX_ACK_PENDING_DEFAULT: i64 = 1000;
/// Default `max_waiting` of a pull consumer (nats-server `JSWaitQueueDefaultMax`).
pub const MAX_WAITING_DEFAULT: i64 = 512;
/// The inactive threshold an ephemeral gets when it sets none.
pub const EPHEMERAL_INACTIVE_DEFAULT: Duration = Duration::from_secs(5);
/// Longest accepted description (nats-server `JSMaxDescriptionLen`).
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Longest accepted metadata, keys plus values (nats-server `JSMaxMetadataLen`).
pub const MAX_METADATA_LEN: usize = 128 * 1024;
/// Longest accepted consumer name (nats-server `JSMaxNameLen`).
pub const MAX_NAME_LEN: usize = 255;

/// Where a new consumer starts in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    All,
    /// From the last message (of the filter).
    Last,
    /// Only messages stored after creation.
    New,
    /// From `opt_start_seq`.
    ByStartSequence,
    /// From the first message at or after `opt_start_time`.
    ByStartTime,
    /// The last message of each subject, then everything new.
    LastPerSubject,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    /// No acks: a delivery is final (Go's zero value, the JSON default).
    #[default]
    None,
    /// An ack acknowledges every earlier delivery too.
    All,
    /// Each delivery is acknowledged on its own.
    Explicit,
}

/// How fast stored messages are replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPolicy {
    /// As fast as the consumer can take them.
    #[default]
    Instant,
    /// With the gaps they were stored with.
    Original,
}

/// How pull requests of a priority group share the messages [2.11/2.12].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityPolicy {
    /// No priority groups.
    #[default]
    None,
    /// A request with `min_pending`/`min_ack_pending` gets messages only
    /// past those thresholds.
    Overflow,
    /// One client (its `Nats-Pin-Id`) gets everything; the others wait.
    PinnedClient,
    /// Requests with a lower `priority` are served first.
    Prioritized,
}

/// The default `priority_timeout` of a `pinned_client` consumer (nats-server
/// `JsDefaultPinnedTTL`).
pub const PINNED_TTL_DEFAULT: Duration = Duration::from_secs(120);

/// nats-server's `validGroupName`: `^[a-zA-Z0-9/_=-]{1,16}$`.
pub fn valid_group_name(g: &str) -> bool {
    (1..=16).contains(&g.len())
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// nats-server's `isValidAssetName`: what a stream or consumer name may not
/// contain (it names a directory).
pub fn is_valid_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.bytes().any(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'.' | b'*' | b'>' | b'\\' | b'/'
            )
        })
}

/// The stream's retention, which decides whether acks remove messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Limits only; acks change nothing in the stream.
    #[default]
    Limits,
    /// A message goes once every interested consumer acked it.
    Interest,
    /// A message goes once its one consumer acked it.
    WorkQueue,
}

/// Nanosecond durations as nats-server's JSON carries `time.Duration`.
mod nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        // Go reads null as zero and accepts negative durations; none of those
        // mean anything for a consumer.
        let n = Option::<i64>::deserialize(d)?.unwrap_or(0);
        Ok(Duration::from_nanos(n.max(0) as u64))
    }

    pub mod vec {
        use std::time::Duration;

        use serde::ser::SerializeSeq;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for d in v {
                seq.serialize_element(&i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
            let v = Option::<Vec<i64>>::deserialize(d)?.unwrap_or_default();
            Ok(v.into_iter()
                .map(|n| Duration::from_nanos(n.max(0) as u64))
                .collect())
        }
    }
}

fn is_zero_dur(d: &Duration) -> bool {
    d.is_zero()
}
fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// nats-server's `ConsumerConfig`, field for field on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Durable name (deprecated in favour of `name`, still what makes a consumer durable).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    /// Consumer name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where to start.
    pub deliver_policy: DeliverPolicy,
    /// Start sequence for `by_start_sequence`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    /// Start time for `by_start_time`, RFC 3339 as Go writes `time.Time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// Ack policy.
    pub ack_policy: AckPolicy,
    /// How long a delivery waits for its ack before it is redelivered.
    #[serde(with = "nanos", skip_serializing_if = "is_zero_dur")]
    pub ack_wait: Duration,
    /// Deliveries per message; -1 for unlimited (the default after defaults).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_deliver: i64,
    /// Redelivery delays by delivery count; the first replaces `ack_wait`.
    #[serde(with = "nanos::vec", skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<Duration>,
    /// One subject filter.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    /// Several non-overlapping subject filters [2.10].
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub filter_subjects: Vec<String>,
    /// Replay speed.
    pub replay_policy: ReplayPolicy,
    /// Delivery rate limit in bits per second (push only).
    #[serde(rename = "rate_limit_bps", skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    /// Ack sampling, `"NN%"`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    /// Pull requests kept waiting at most.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_waiting: i64,
    /// Deliveries awaiting an ack at most; -1 for unlimited.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
    /// Push idle heartbeat interval.
    #[serde(
        rename = "idle_heartbeat",
        with = "nanos",
        skip_serializing_if = "is_zero_dur"
    )]
    pub idle_heartbeat: Duration,
    /// Push flow control.
    #[serde(skip_serializing_if = "is_false")]
    pub flow_control: bool,
    /// Deliver headers and `Nats-Msg-Size` only.
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
    /// Largest pull batch accepted.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_batch: i64,
    /// Longest pull `expires` accepted.
    #[serde(with = "nanos", skip_serializing_if = "is_zero_dur")]
    pub max_expires: Duration,
    /// Largest pull `max_bytes` accepted.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_bytes: i64,
    /// Push delivery subject; empty for a pull consumer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    /// Push queue group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    /// Idle time after which the consumer is removed.
    #[serde(with = "nanos", skip_serializing_if = "is_zero_dur")]
    pub inactive_threshold: Duration,
    /// Replicas (always serialised, as Go does).
    pub num_replicas: i64,
    /// Keep consumer state in memory.
    #[serde(skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    /// Internal direct consumer (sources/mirrors).
    #[serde(skip_serializing_if = "is_false")]
    pub direct: bool,
    /// User metadata.
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub metadata: BTreeMap<String, String>,
    /// Deliver nothing before this time, RFC 3339 (kept in UTC, as nats-server
    /// stores it) [2.11].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<String>,
    /// Priority group names (nats-server uses the first) [2.11].
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub priority_groups: Vec<String>,
    /// How the groups' pull requests share messages.
    #[serde(skip_serializing_if = "is_no_priority")]
    pub priority_policy: PriorityPolicy,
    /// `pinned_client`: how long a pin lasts without a request carrying it.
    #[serde(with = "nanos", skip_serializing_if = "is_zero_dur")]
    pub priority_timeout: Duration,
}

fn is_no_priority(p: &PriorityPolicy) -> bool {
    *p == PriorityPolicy::None
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What the consumer needs to know about its stream to validate a config.
#[derive(Debug, Clone, Default)]
pub struct StreamFacts {
    /// The stream's subjects (for the deliver-subject cycle check).
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: Retention,
    /// Stream replicas.
    pub replicas: i64,
    /// The stream's `max_msgs_per_subject` (1 makes `last_per_subject` plain `all`).
    pub max_msgs_per_subject: i64,
    /// `consumer_limits.max_ack_pending` of the stream (0: none).
    pub consumer_max_ack_pending: i64,
    /// `consumer_limits.inactive_threshold` of the stream (zero: none).
    pub consumer_inactive_threshold: Duration,
}

/// Server and account limits that bound a consumer config (0: none).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLimits {
    /// `jetstream.limits.max_ack_pending`.
    pub max_ack_pending: i64,
    /// `jetstream.limits.max_request_batch`.
    pub max_request_batch: i64,
    /// The account's `max_ack_pending`.
    pub account_max_ack_pending: i64,
}

impl ConsumerConfig {
    /// The JetStream API level the configuration needs (nats-server's
    /// `setStaticConsumerMetadata`): 1 for a pause or priority groups
    /// (2.11), else 0.
    pub fn required_api_level(&self) -> u32 {
        // Go's zero time is no pause.
        let paused = self
            .pause_until
            .as_deref()
            .is_some_and(|t| parse_rfc3339_ns(t) != Some(i64::MIN));
        let priority = self.priority_policy != PriorityPolicy::None
            || !self.priority_timeout.is_zero()
            || !self.priority_groups.is_empty();
        u32::from(paused || priority)
    }

    /// Store `_nats.req.level` in the metadata (see
    /// [`versioning`](crate::jetstream::versioning)).
    pub fn set_static_metadata(&mut self) {
        let level = self.required_api_level();
        crate::jetstream::versioning::set_static(&mut self.metadata, level);
    }

    /// A push consumer (has a deliver subject).
    pub fn is_push(&self) -> bool {
        !self.deliver_subject.is_empty()
    }

    /// A durable consumer (has a durable name).
    pub fn is_durable(&self) -> bool {
        !self.durable_name.is_empty()
    }

    /// The subject filters, `filter_subject` and `filter_subjects` together.
    pub fn filters(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.filter_subject.is_empty() {
            v.push(self.filter_subject.clone());
        }
        v.extend(self.filter_subjects.iter().cloned());
        v
    }

    /// Fill in nats-server's defaults (`setConsumerConfigDefaults`), then the
    /// ephemeral inactive threshold (`updateInactiveThreshold` stamps 5s).
    pub fn set_defaults(&mut self, stream: &StreamFacts, limits: &ServerLimits) {
        // nats-server keeps pause_until in UTC; a saturated time (Go's zero
        // time) stays as written.
        if let Some(ns) = self.pause_until.as_deref().and_then(parse_rfc3339_ns) {
            if ns != i64::MIN && ns != i64::MAX {
                self.pause_until = Some(super::state::ns_rfc3339(ns));
            }
        }
        if self.deliver_subject.is_empty() && self.max_waiting == 0 {
            self.max_waiting = MAX_WAITING_DEFAULT;
        }
        let acks = matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All);
        if self.ack_wait.is_zero() && acks {
            self.ack_wait = ACK_WAIT_DEFAULT;
        }
        if self.max_deliver == 0 {
            self.max_deliver = -1;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        if self.max_ack_pending == 0 {
            self.max_ack_pending = stream.consumer_max_ack_pending;
        }
        if self.inactive_threshold.is_zero() {
            self.inactive_threshold = stream.consumer_inactive_threshold;
        }
        if acks && self.max_ack_pending == 0 {
            let mut pending = MAX_ACK_PENDING_DEFAULT;
            for lim in [limits.max_ack_pending, limits.account_max_ack_pending] {
                if lim > 0 && lim < pending {
                    pending = lim;
                }
            }
            self.max_ack_pending = pending;
        }
        if self.deliver_subject.is_empty() && self.max_batch == 0 && limits.max_request_batch > 0 {
            self.max_batch = limits.max_request_batch;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout.is_zero() {
            self.priority_timeout = PINNED_TTL_DEFAULT;
        }
        if !self.is_durable() && self.inactive_threshold.is_zero() {
            self.inactive_threshold = EPHEMERAL_INACTIVE_DEFAULT;
        }
    }

    /// Validate as nats-server's `checkConsumerCfg` and the workqueue rules of
    /// `addConsumer` do, in the same order (so the same error wins).
    pub fn validate(&self, stream: &StreamFacts, limits: &ServerLimits) -> Result<(), ApiError> {
        if !self.name.is_empty() && !is_valid_asset_name(&self.name) {
            return Err(ApiError::invalid_config(
                "consumer name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if !self.durable_name.is_empty() && !is_valid_asset_name(&self.durable_name) {
            return Err(ApiError::invalid_config(
                "consumer durable name can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if [&self.durable_name, &self.name]
            .iter()
            .any(|name| name.len() > MAX_NAME_LEN)
        {
            return Err(ApiError::name_too_long(MAX_NAME_LEN));
        }
        if self.num_replicas > 0 && self.num_replicas > stream.replicas {
            return Err(ApiError::replicas_exceeds_stream());
        }
        if self.num_replicas < 0 {
            return Err(ApiError::replicas_negative());
        }
        if stream.retention != Retention::Limits
            && self.num_replicas != 0
            && self.num_replicas != stream.replicas
        {
            return Err(ApiError::replicas_should_match_stream());
        }
        let backoffs = self.backoff.len() as i64;
        if backoffs > 0 && self.max_deliver != -1 && self.max_deliver <= backoffs {
            return Err(ApiError::max_deliver_backoff());
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(ApiError::description_too_long(MAX_DESCRIPTION_LEN));
        }
        if self.is_push() {
            let ds = self.deliver_subject.as_bytes();
            if subject::has_wildcard(ds) {
                return Err(ApiError::deliver_to_wildcards());
            }
            if !subject::is_valid_subject(ds) {
                return Err(ApiError::invalid_deliver_subject());
            }
            if stream
                .subjects
                .iter()
                .any(|s| subject::subject_matches(s.as_bytes(), ds))
            {
                return Err(ApiError::deliver_cycle());
            }
            if self.max_waiting != 0 {
                return Err(ApiError::push_max_waiting());
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(ApiError::max_pending_ack_policy_required());
            }
            if !self.idle_heartbeat.is_zero() && self.idle_heartbeat < Duration::from_millis(100) {
                return Err(ApiError::small_heartbeat());
            }
        } else {
            if self.ack_policy == AckPolicy::None && stream.retention == Retention::WorkQueue {
                return Err(ApiError::pull_requires_ack());
            }
            if self.rate_limit_bps > 0 {
                return Err(ApiError::pull_with_rate_limit());
            }
            if self.max_waiting < 0 {
                return Err(ApiError::max_waiting_negative());
            }
            if !self.idle_heartbeat.is_zero() {
                return Err(ApiError::hb_requires_push());
            }
            if self.flow_control {
                return Err(ApiError::fc_requires_push());
            }
            if self.max_batch < 0 {
                return Err(ApiError::max_request_batch_negative());
            }
            if !self.max_expires.is_zero() && self.max_expires < Duration::from_millis(1) {
                return Err(ApiError::max_request_expires_too_small());
            }
            if limits.max_request_batch > 0 && self.max_batch > limits.max_request_batch {
                return Err(ApiError::max_request_batch_exceeded(
                    limits.max_request_batch,
                ));
            }
        }
        for lim in [
            limits.max_ack_pending,
            limits.account_max_ack_pending,
            stream.consumer_max_ack_pending,
        ] {
            if lim > 0 && self.max_ack_pending > lim {
                return Err(ApiError::max_pending_ack_excess(lim));
            }
        }
        let lim = stream.consumer_inactive_threshold;
        if !lim.is_zero() && self.inactive_threshold > lim {
            return Err(ApiError::inactive_threshold_excess(&go_duration(lim)));
        }
        if self.direct {
            if !self.is_push() {
                return Err(ApiError::direct_requires_push());
            }
            if self.is_durable() {
                return Err(ApiError::direct_requires_ephemeral());
            }
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(ApiError::duplicate_filter_subjects());
        }
        if !self.filter_subject.is_empty()
            && !subject::is_valid_subject(self.filter_subject.as_bytes())
        {
            return Err(ApiError::bad_filter_subject());
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(ApiError::empty_filter());
        }
        check_filters(&self.filters())?;
        self.check_start_policy()?;
        if !self.sample_freq.is_empty() {
            let s = self.sample_freq.trim_end_matches('%');
            match s.parse::<i64>() {
                Ok(n) if n >= 0 => {}
                Ok(_) => return Err(ApiError::invalid_sampling("<nil>")),
                Err(_) => {
                    return Err(ApiError::invalid_sampling(&format!(
                        "strconv.Atoi: parsing {s:?}: invalid syntax"
                    )))
                }
            }
        }
        if self.flow_control && self.idle_heartbeat.is_zero() {
            return Err(ApiError::flow_control_needs_heartbeats());
        }
        if self.is_durable() && !self.name.is_empty() && self.name != self.durable_name {
            return Err(ApiError::durable_and_name_mismatch());
        }
        let meta: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta > MAX_METADATA_LEN {
            return Err(ApiError::metadata_length(&format!(
                "{}KB",
                MAX_METADATA_LEN / 1024
            )));
        }
        if self.priority_policy != PriorityPolicy::None {
            if self.is_push() {
                return Err(ApiError::push_with_priority_group());
            }
            if self.priority_groups.is_empty() {
                return Err(ApiError::priority_policy_without_group());
            }
            for g in &self.priority_groups {
                if g.is_empty() {
                    return Err(ApiError::empty_group_name());
                }
                if !valid_group_name(g) {
                    return Err(ApiError::invalid_group_name());
                }
            }
        } else {
            if !self.priority_groups.is_empty() {
                return Err(ApiError::priority_group_with_policy_none());
            }
            if !self.priority_timeout.is_zero() {
                return Err(ApiError::pinned_ttl_without_priority_policy());
            }
        }
        if stream.retention == Retention::WorkQueue && !self.direct {
            if self.ack_policy != AckPolicy::Explicit {
                return Err(ApiError::wq_requires_explicit_ack());
            }
            if self.deliver_policy != DeliverPolicy::All {
                return Err(ApiError::wq_not_deliver_all());
            }
        }
        for t in [&self.opt_start_time, &self.pause_until]
            .into_iter()
            .flatten()
        {
            if parse_rfc3339_ns(t).is_none() {
                return Err(ApiError::invalid_json());
            }
        }
        Ok(())
    }

    fn check_start_policy(&self) -> Result<(), ApiError> {
        let bad_start = |dp: &str, start: &str| {
            Err(ApiError::invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
            )))
        };
        let not_set = |dp: &str, what: &str| {
            Err(ApiError::invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional {what} is not set"
            )))
        };
        let seq = self.opt_start_seq > 0;
        let time = self.opt_start_time.is_some();
        let (dp, forbids_seq, forbids_time) = match self.deliver_policy {
            DeliverPolicy::All => ("all", true, true),
            DeliverPolicy::Last => ("last", true, true),
            DeliverPolicy::LastPerSubject => ("last per subject", true, true),
            DeliverPolicy::New => ("new", true, true),
            DeliverPolicy::ByStartSequence => {
                if !seq {
                    return not_set("by start sequence", "start sequence");
                }
                ("by start sequence", false, true)
            }
            DeliverPolicy::ByStartTime => {
                if !time {
                    return not_set("by start time", "start time");
                }
                if seq {
                    return bad_start("by start time", "start sequence");
                }
                return Ok(());
            }
        };
        if forbids_seq && seq {
            return bad_start(dp, "sequence");
        }
        if forbids_time && time {
            return bad_start(dp, "time");
        }
        if self.deliver_policy == DeliverPolicy::LastPerSubject && self.filters().is_empty() {
            return not_set("last per subject", "filter subject");
        }
        Ok(())
    }

    /// May `self` (the current config) be replaced by `new`? nats-server's
    /// `checkNewConsumerConfig`. `deliver_bound` says whether someone
    /// subscribes on the current deliver subject (moving it then is refused).
    pub fn check_update(&self, new: &ConsumerConfig, deliver_bound: bool) -> Result<(), ApiError> {
        if self == new {
            return Ok(());
        }
        let fixed = |what: &str| Err(ApiError::create(format!("{what} can not be updated")));
        if self.deliver_policy != new.deliver_policy {
            return fixed("deliver policy");
        }
        if self.opt_start_seq != new.opt_start_seq {
            return fixed("start sequence");
        }
        let t = |c: &ConsumerConfig| c.opt_start_time.as_deref().map(parse_rfc3339_ns);
        if t(self) != t(new) {
            return fixed("start time");
        }
        if self.ack_policy != new.ack_policy {
            return fixed("ack policy");
        }
        if self.replay_policy != new.replay_policy {
            return fixed("replay policy");
        }
        if self.idle_heartbeat != new.idle_heartbeat {
            return fixed("heart beats");
        }
        if self.flow_control != new.flow_control {
            return fixed("flow control");
        }
        if self.max_waiting != new.max_waiting {
            return fixed("max waiting");
        }
        if self.deliver_subject != new.deliver_subject {
            if self.deliver_subject.is_empty() {
                return Err(ApiError::create(
                    "can not update pull consumer to push based",
                ));
            }
            if new.deliver_subject.is_empty() {
                return Err(ApiError::create(
                    "can not update push consumer to pull based",
                ));
            }
            if deliver_bound {
                return Err(ApiError::name_exist());
            }
        }
        let backoffs = new.backoff.len() as i64;
        if backoffs > 0 && new.max_deliver != -1 && new.max_deliver <= backoffs {
            return Err(ApiError::max_deliver_backoff());
        }
        Ok(())
    }
}

/// nats-server's check of a consumer's filters, in its order: filter by
/// filter, whether it is valid, then whether another filter contains it
/// (all of its subjects; `a.*` and `*.b` may go together). A [`FilterSet`]
/// answers without comparing every pair.
fn check_filters(filters: &[String]) -> Result<(), ApiError> {
    let mut set = FilterSet::new();
    for (i, f) in filters.iter().enumerate() {
        if can_contain(f) {
            set.insert(f, i);
        }
    }
    for (i, f) in filters.iter().enumerate() {
        if !subject::is_valid_subject(f.as_bytes()) {
            return Err(ApiError::bad_filter_subject());
        }
        if set.containing(f, Some(i))?.is_some() {
            return Err(ApiError::overlapping_filters());
        }
    }
    Ok(())
}

/// Whether a filter can contain a valid one as nats-server's subset check
/// reads it: token by token up to its first `>`, which takes the rest
/// however invalid (`a.>.b` contains `a.b`); an empty or blank token before
/// that matches nothing.
fn can_contain(filter: &str) -> bool {
    for tok in subject::tokens(filter.as_bytes()) {
        if subject::is_fwc(tok) {
            return true;
        }
        if tok.is_empty()
            || tok
                .iter()
                .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c'))
        {
            return false;
        }
    }
    true
}

/// Could one literal subject match both `a` and `b`? (nats-server `SubjectsCollide`.)
pub fn subjects_collide(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(s), Some(t)) => {
                if s != "*" && t != "*" && s != t {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Go's `time.Duration.String()` for the durations a limit error prints.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim_frac(ns as f64 / 1e3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim_frac(ns as f64 / 1e6));
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, total / 60 % 60);
    let s = (ns % 60_000_000_000) as f64 / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_frac(s)));
    out
}

fn trim_frac(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Parse RFC 3339 (as Go marshals `time.Time`) into ns since the Unix epoch,
/// saturating outside the i64 range.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if t.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(t).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        frac_ns = format!("{digits:0<9}").parse().ok()?;
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    // Times outside i64 nanoseconds (years before 1678 or after 2261, such as
    // Go's zero time 0001-01-01T00:00:00Z) saturate: they are still valid
    // times, only always past or always future.
    Some(secs.saturating_mul(1_000_000_000).saturating_add(frac_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nats-server 2.15.1's answers: a filter may not lie within another,
    /// overlapping is allowed; the first filter at fault decides the error.
    #[test]
    fn filters_may_overlap_but_not_contain() {
        let check = |filters: &[&str]| {
            let v: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
            check_filters(&v).map_err(|e| e.err_code)
        };
        assert_eq!(check(&["s.a.*", "s.*.b"]), Ok(()));
        assert_eq!(check(&["s.a.*", "s.a.b"]), Err(10138));
        assert_eq!(check(&["s.a", "s.a"]), Err(10138));
        assert_eq!(check(&["s.a.>", "s..b"]), Err(10052));
        assert_eq!(check(&["s.a", "s.>.b"]), Err(10138));
        assert_eq!(check(&["s.x", "s..b", "s.x"]), Err(10138));
        let many: Vec<String> = (0..50_000).map(|i| format!("f.{i}.>")).collect();
        assert_eq!(check_filters(&many), Ok(()));
    }
}
