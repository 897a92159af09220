//! What a consumer persists ([`ConsumerState`]), what it reports
//! ([`ConsumerInfo`]) and the advisories it publishes, in nats-server's JSON.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::config::ConsumerConfig;
use crate::monitor::rfc3339;

/// A pair of sequences (nats-server `SequencePair`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SequencePair {
    /// Consumer (delivery) sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
}

/// A delivery awaiting its ack (nats-server `Pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The consumer sequence of its first delivery.
    pub sequence: u64,
    /// When it was last delivered (or progressed), ns since the Unix epoch.
    pub ts: i64,
}

/// What a consumer needs to come back as it was (nats-server `ConsumerState`):
/// the last delivery, the ack floor, the deliveries awaiting acks by stream
/// sequence and the redelivery counts by stream sequence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumerState {
    /// Last delivered consumer and stream sequences.
    pub delivered: SequencePair,
    /// Everything at or below these is acknowledged.
    pub ack_floor: SequencePair,
    /// Deliveries awaiting acks, by stream sequence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<u64, Pending>,
    /// Redeliveries so far (deliveries - 1), by stream sequence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redelivered: BTreeMap<u64, u64>,
}

/// Sequences with the last activity (nats-server `SequenceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SequenceInfo {
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Last delivery or ack, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<String>,
}

/// `$JS.API.CONSUMER.INFO` as nats-server answers it (`cluster` is the stream
/// side's to fill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// Stream name.
    pub stream_name: String,
    /// Consumer name.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The effective config (defaults applied).
    pub config: ConsumerConfig,
    /// Last delivery.
    pub delivered: SequenceInfo,
    /// Ack floor.
    pub ack_floor: SequenceInfo,
    /// Deliveries awaiting acks.
    pub num_ack_pending: u64,
    /// Messages awaiting acks that were delivered more than once.
    pub num_redelivered: u64,
    /// Pull requests waiting.
    pub num_waiting: u64,
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// Cluster information (filled by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<serde_json::Value>,
    /// A push consumer with a subscriber on its deliver subject.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub push_bound: bool,
    /// `pause_until` is still ahead [2.11].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// How long the pause still lasts, ns (omitted when not paused).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pause_remaining: i64,
    /// When this was gathered, RFC 3339.
    pub ts: String,
    /// The first priority group with its pin (nats-server reports one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// nats-server's `PriorityGroupState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityGroupState {
    /// Group name.
    pub group: String,
    /// The pinned client's `Nats-Pin-Id`, omitted when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_client_id: String,
    /// When it was pinned, RFC 3339 (Go's zero time when none).
    pub pinned_ts: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// RFC 3339 of ns since the Unix epoch.
pub fn ns_rfc3339(ns: i64) -> String {
    let t = if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    };
    rfc3339(t)
}

/// A consumer advisory. The machine fills what it knows; the caller adds the
/// event id (a nuid) when it serialises with [`Advisory::to_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// Which advisory.
    pub kind: AdvisoryKind,
    /// Stream name.
    pub stream: String,
    /// Consumer name.
    pub consumer: String,
    /// Stream sequence concerned.
    pub stream_seq: u64,
    /// Consumer sequence concerned (not in `max_deliver`).
    pub consumer_seq: u64,
    /// Deliveries so far.
    pub deliveries: u64,
    /// `+TERM` reason (terminated only).
    pub reason: String,
    /// Ack latency in ns (ack metric only).
    pub ack_time_ns: i64,
    /// JetStream domain, omitted when empty.
    pub domain: String,
    /// When it happened, ns since the Unix epoch.
    pub time_ns: i64,
    /// Pause advisory: the consumer is paused now.
    pub paused: bool,
    /// Pause advisory: the configured `pause_until` (`None`: no pause).
    pub pause_until: Option<String>,
    /// Pinned and unpinned advisories: the priority group.
    pub group: String,
    /// Pinned advisory: the new `Nats-Pin-Id`.
    pub pin_id: String,
    /// Pinned and unpinned advisories: the account, omitted when empty.
    pub account: String,
}

/// The kinds of delivery advisories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisoryKind {
    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`.
    MaxDeliveries,
    /// `$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.<stream>.<consumer>`.
    Naked,
    /// `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<consumer>`.
    Terminated,
    /// `$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>` (sampled by `sample_freq`).
    AckMetric,
    /// `$JS.EVENT.ADVISORY.CONSUMER.PAUSE.<stream>.<consumer>`: paused or resumed [2.11].
    Pause,
    /// `$JS.EVENT.ADVISORY.CONSUMER.PINNED.<stream>.<consumer>`: a client was pinned [2.11].
    Pinned,
    /// `$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.<stream>.<consumer>`: a pin ended
    /// (`reason` `admin` or `timeout`) [2.11].
    Unpinned,
}

#[derive(Serialize)]
struct AdvisoryJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer_seq: Option<u64>,
    stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack_time: Option<i64>,
    deliveries: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
}

/// nats-server's `JSConsumerPauseAdvisory`.
#[derive(Serialize)]
struct PauseJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    timestamp: String,
    stream: &'a str,
    consumer: &'a str,
    paused: bool,
    /// Go's `time.Time` is never omitted: the zero time when there is no pause.
    pause_until: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
}

/// nats-server's `JSConsumerGroupPinnedAdvisory` and `JSConsumerGroupUnpinnedAdvisory`.
#[derive(Serialize)]
struct PinJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    account: &'a str,
    stream: &'a str,
    consumer: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// Go's zero `time.Time` as its JSON carries it.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Advisory {
    /// The subject nats-server publishes it on.
    pub fn subject(&self) -> String {
        let pre = match self.kind {
            AdvisoryKind::MaxDeliveries => "ADVISORY.CONSUMER.MAX_DELIVERIES",
            AdvisoryKind::Naked => "ADVISORY.CONSUMER.MSG_NAKED",
            AdvisoryKind::Terminated => "ADVISORY.CONSUMER.MSG_TERMINATED",
            AdvisoryKind::AckMetric => "METRIC.CONSUMER.ACK",
            AdvisoryKind::Pause => "ADVISORY.CONSUMER.PAUSE",
            AdvisoryKind::Pinned => "ADVISORY.CONSUMER.PINNED",
            AdvisoryKind::Unpinned => "ADVISORY.CONSUMER.UNPINNED",
        };
        format!("$JS.EVENT.{pre}.{}.{}", self.stream, self.consumer)
    }

    /// nats-server's JSON (`JSConsumerDeliveryExceededAdvisory`,
    /// `JSConsumerDeliveryNakAdvisory`, `JSConsumerDeliveryTerminatedAdvisory`,
    /// `JSConsumerAckMetric`, `JSConsumerPauseAdvisory`).
    pub fn to_json(&self, id: &str) -> String {
        let (kind, consumer_seq) = match self.kind {
            AdvisoryKind::Pause => {
                let j = PauseJson {
                    kind: "io.nats.jetstream.advisory.v1.consumer_pause",
                    id,
                    timestamp: ns_rfc3339(self.time_ns),
                    stream: &self.stream,
                    consumer: &self.consumer,
                    paused: self.paused,
                    pause_until: self.pause_until.as_deref().unwrap_or(GO_ZERO_TIME),
                    domain: &self.domain,
                };
                return serde_json::to_string(&j).unwrap_or_default();
            }
            AdvisoryKind::Pinned | AdvisoryKind::Unpinned => {
                let pinned = self.kind == AdvisoryKind::Pinned;
                let j = PinJson {
                    kind: if pinned {
                        "io.nats.jetstream.advisory.v1.consumer_group_pinned"
                    } else {
                        "io.nats.jetstream.advisory.v1.consumer_group_unpinned"
                    },
                    id,
                    timestamp: ns_rfc3339(self.time_ns),
                    account: &self.account,
                    stream: &self.stream,
                    consumer: &self.consumer,
                    domain: &self.domain,
                    group: &self.group,
                    pinned_id: pinned.then_some(self.pin_id.as_str()),
                    reason: (!pinned).then_some(self.reason.as_str()),
                };
                return serde_json::to_string(&j).unwrap_or_default();
            }
            AdvisoryKind::MaxDeliveries => ("io.nats.jetstream.advisory.v1.max_deliver", None),
            AdvisoryKind::Naked => ("io.nats.jetstream.advisory.v1.nak", Some(self.consumer_seq)),
            AdvisoryKind::Terminated => (
                "io.nats.jetstream.advisory.v1.terminated",
                Some(self.consumer_seq),
            ),
            AdvisoryKind::AckMetric => (
                "io.nats.jetstream.metric.v1.consumer_ack",
                Some(self.consumer_seq),
            ),
        };
        let ack_time = (self.kind == AdvisoryKind::AckMetric).then_some(self.ack_time_ns);
        let j = AdvisoryJson {
            kind,
            id,
            timestamp: ns_rfc3339(self.time_ns),
            stream: &self.stream,
            consumer: &self.consumer,
            consumer_seq,
            stream_seq: self.stream_seq,
            ack_time,
            deliveries: self.deliveries,
            reason: &self.reason,
            domain: &self.domain,
        };
        serde_json::to_string(&j).unwrap_or_default()
    }
}

/// Wall time for `SystemTime` users (the `io` side).
pub fn system_time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}
