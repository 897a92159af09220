//! Stream configuration as nats-server reads and writes it (`StreamConfig`),
//! with its defaults and validation (`checkStreamCfg`, `configUpdateCheck`).
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::api::ApiError;
use crate::accounts::is_subset_match;
use crate::consumer::{go_duration, is_valid_asset_name, subjects_collide};
use crate::filters::FilterSet;
use crate::subject::is_valid_subject;
use crate::transform::SubjectTransform;

/// nats-server's `StreamDefaultDuplicatesWindow`: 2 minutes.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
const MAX_NAME_LEN: usize = 255;
const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
const MAX_METADATA_LEN: usize = 128 * 1024;
const MAX_REPLICAS: i64 = 5;

/// `retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    /// Keep messages until a limit removes them.
    #[default]
    Limits,
    /// Keep messages while a consumer is interested (needs consumers).
    Interest,
    /// Remove a message once a consumer acknowledged it (needs consumers).
    Workqueue,
}

/// `discard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    /// Evict the oldest message.
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// `storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// The block file store.
    #[default]
    File,
    /// In memory; gone at restart.
    Memory,
}

/// `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// nats-server compresses with S2; natsd's file store compresses sealed
    /// blocks with snappy (the on-disk format is natsd's own).
    S2,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `subject_transform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformConfig {
    /// `src`: the subjects it applies to (empty: all).
    #[serde(default, rename = "src")]
    pub source: String,
    /// `dest`: the template.
    #[serde(default, rename = "dest")]
    pub destination: String,
}

/// `republish`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepublishConfig {
    /// `src`: the stored subjects republished (empty: all).
    #[serde(default, rename = "src")]
    pub source: String,
    /// `dest`: where to, a transform template.
    #[serde(default, rename = "dest")]
    pub destination: String,
    /// `headers_only`: the payload is left out (its size is a header).
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

/// A stream's configuration, field for field as nats-server marshals it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `description`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `subjects`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// `retention`.
    #[serde(default)]
    pub retention: Retention,
    /// `max_consumers` (-1 = unlimited).
    #[serde(default)]
    pub max_consumers: i64,
    /// `max_msgs` (-1 = unlimited).
    #[serde(default)]
    pub max_msgs: i64,
    /// `max_bytes` (-1 = unlimited).
    #[serde(default)]
    pub max_bytes: i64,
    /// `max_age` in ns (0 = unlimited).
    #[serde(default)]
    pub max_age: i64,
    /// `max_msgs_per_subject` (-1 = unlimited).
    #[serde(default)]
    pub max_msgs_per_subject: i64,
    /// `max_msg_size` (-1 = unlimited).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_msg_size: i64,
    /// `discard`.
    #[serde(default)]
    pub discard: Discard,
    /// `storage`.
    #[serde(default)]
    pub storage: Storage,
    /// `num_replicas` (1 without clustering).
    #[serde(default)]
    pub num_replicas: i64,
    /// `no_ack`: publishes are not acknowledged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_ack: bool,
    /// `duplicate_window` in ns.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicate_window: i64,
    /// `placement`, kept as given (meaningful with clustering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<serde_json::Value>,
    /// `mirror`: refused (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    /// `sources`: refused when not empty (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<serde_json::Value>>,
    /// `compression`.
    #[serde(default)]
    pub compression: Compression,
    /// `first_seq`: the first sequence of a new stream.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    /// `subject_transform`: applied to a published subject before it is
    /// stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<TransformConfig>,
    /// `republish`: stored messages are published again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RepublishConfig>,
    /// `allow_msg_ttl`: `Nats-TTL` headers honoured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_msg_ttl: bool,
    /// `subject_delete_marker_ttl` in ns: a message that `max_age` or its
    /// TTL removes, last of its subject, leaves a marker living this long.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subject_delete_marker_ttl: i64,
    /// `allow_direct`: answer `$JS.API.DIRECT.GET`.
    #[serde(default)]
    pub allow_direct: bool,
    /// `mirror_direct`.
    #[serde(default)]
    pub mirror_direct: bool,
    /// `discard_new_per_subject`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    /// `sealed`: no more writes, deletes or purges.
    #[serde(default)]
    pub sealed: bool,
    /// `deny_delete`: `MSG.DELETE` refused.
    #[serde(default)]
    pub deny_delete: bool,
    /// `deny_purge`: `PURGE` refused.
    #[serde(default)]
    pub deny_purge: bool,
    /// `allow_rollup_hdrs`: `Nats-Rollup` honoured.
    #[serde(default)]
    pub allow_rollup_hdrs: bool,
    /// `consumer_limits`, kept as given (meaningful with consumers).
    #[serde(default = "empty_object")]
    pub consumer_limits: serde_json::Value,
    /// `metadata`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl StreamConfig {
    /// The JetStream API level the configuration needs (nats-server's
    /// `setStaticStreamMetadata`): 1 for per-message TTLs and subject delete
    /// markers (2.11), else 0.
    pub fn required_api_level(&self) -> u32 {
        u32::from(self.allow_msg_ttl || self.subject_delete_marker_ttl > 0)
    }

    /// Store `_nats.req.level` in the metadata (see
    /// [`versioning`](super::versioning)).
    pub fn set_static_metadata(&mut self) {
        let level = self.required_api_level();
        super::versioning::set_static(&mut self.metadata, level);
    }

    /// [`normalize_within`](Self::normalize_within) without a server limit.
    #[cfg(test)]
    pub fn normalize(self) -> Result<StreamConfig, ApiError> {
        self.normalize_within(0)
    }

    /// nats-server's `checkStreamCfg` for a standalone server under the
    /// server's `jetstream.limits.duplicate_window` (ns, 0 for none): fills
    /// the defaults (unlimited is -1, one replica, the duplicate window, which
    /// the server limit lowers) and refuses what is invalid, with
    /// nats-server's messages.
    pub fn normalize_within(mut self, duplicate_window_max: i64) -> Result<StreamConfig, ApiError> {
        let invalid = ApiError::invalid_config;
        if !is_valid_asset_name(&self.name) {
            return Err(invalid(
                "stream name is required and can not contain '.', '*', '>', '\\', '/'",
            ));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(invalid(&format!(
                "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
            )));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid(&format!(
                "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
            )));
        }
        let metadata_len: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata_len > MAX_METADATA_LEN {
            return Err(invalid(&format!(
                "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
            )));
        }
        if self.num_replicas < 0 {
            return Err(ApiError::new(
                400,
                10133,
                "replicas count cannot be negative",
            ));
        }
        if self.num_replicas > MAX_REPLICAS {
            return Err(invalid(&format!("maximum replicas is {MAX_REPLICAS}")));
        }
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        for v in [
            &mut self.max_msgs,
            &mut self.max_msgs_per_subject,
            &mut self.max_bytes,
            &mut self.max_msg_size,
            &mut self.max_consumers,
        ] {
            if *v == 0 {
                *v = -1;
            }
        }
        if self.max_age < 0 {
            return Err(invalid("max age can not be negative"));
        }
        if self.max_age > 0 && self.max_age < 100_000_000 {
            return Err(invalid("max age needs to be >= 100ms"));
        }
        if self.duplicate_window == 0 {
            let mut window = DEFAULT_DUPLICATE_WINDOW;
            if duplicate_window_max > 0 {
                window = window.min(duplicate_window_max);
            }
            self.duplicate_window = if self.max_age > 0 && self.max_age < window {
                self.max_age
            } else {
                window
            };
        }
        if self.duplicate_window < 0 {
            return Err(invalid("duplicates window can not be negative"));
        }
        if self.max_age != 0 && self.duplicate_window > self.max_age {
            return Err(invalid("duplicates window can not be larger then max age"));
        }
        if duplicate_window_max > 0 && self.duplicate_window > duplicate_window_max {
            let max = Duration::from_nanos(duplicate_window_max.unsigned_abs());
            return Err(invalid(&format!(
                "duplicates window can not be larger then server limit of {}",
                go_duration(max)
            )));
        }
        if self.duplicate_window < 100_000_000 {
            return Err(invalid("duplicates window needs to be >= 100ms"));
        }
        if self.subject_delete_marker_ttl < 0 {
            return Err(invalid("subject delete marker TTL must not be negative"));
        }
        if self.subject_delete_marker_ttl > 0 {
            if self.subject_delete_marker_ttl < 1_000_000_000 {
                return Err(invalid(
                    "subject delete marker TTL must be at least 1 second",
                ));
            }
            // Markers need TTLs and roll-ups; nats-server turns them on.
            self.allow_msg_ttl = true;
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        if self.deny_purge && self.allow_rollup_hdrs {
            return Err(invalid("roll-ups require the purge permission"));
        }
        if self.discard_new_per_subject {
            if self.discard != Discard::New {
                return Err(invalid(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if self.max_msgs_per_subject <= 0 {
                return Err(invalid(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }
        if self.mirror.is_some() {
            return Err(invalid("stream mirrors are not supported yet"));
        }
        if self.sources.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(invalid("stream sources are not supported yet"));
        }
        if self.subjects.is_empty() {
            self.subjects.push(self.name.clone());
        }
        self.check_subjects()?;
        self.check_transforms()?;
        Ok(self)
    }

    /// nats-server's checks of the subjects, in its order: subject by
    /// subject, its own checks, then whether a later subject overlaps it
    /// (the first such is named). A [`FilterSet`] of the subjects answers
    /// the overlap question without comparing every pair.
    fn check_subjects(&self) -> Result<(), ApiError> {
        let invalid = ApiError::invalid_config;
        let mut set = FilterSet::new();
        for (i, subj) in self.subjects.iter().enumerate() {
            if is_valid_subject(subj.as_bytes()) {
                set.insert(subj, i);
            }
        }
        for (i, subj) in self.subjects.iter().enumerate() {
            if !is_valid_subject(subj.as_bytes()) {
                return Err(invalid("invalid subject"));
            }
            if subj == ">" {
                if !self.no_ack {
                    return Err(invalid("capturing all subjects requires no-ack to be true"));
                }
                if self.num_replicas != 1 {
                    return Err(invalid("capturing all subjects requires replicas of 1"));
                }
            }
            if !self.no_ack {
                for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                    if subjects_collide(subj, ns) && !is_subset_match(subj, "$JS.EVENT.>") {
                        return Err(invalid(
                            "subjects that overlap with jetstream api require no-ack to be true",
                        ));
                    }
                }
                if subjects_collide(subj, "$SYS.>") && !is_subset_match(subj, "$SYS.ACCOUNT.>") {
                    return Err(invalid(
                        "subjects that overlap with system api require no-ack to be true",
                    ));
                }
            }
            // No earlier subject overlaps this one (it would have failed
            // first), so the member found is a later one; nats-server names
            // the first.
            if let Some(j) = set.overlapping(subj, Some(i))? {
                let other = self.subjects[i + 1..]
                    .iter()
                    .find(|t| is_valid_subject(t.as_bytes()) && subjects_collide(t, subj))
                    .unwrap_or(&self.subjects[j]);
                return Err(invalid(&format!(
                    "subject {subj:?} overlaps with {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// `subject_transform` and `republish` as nats-server checks them (a
    /// republish source that is empty becomes `>`; `>` to `>` with an input
    /// transform from the stream's only subject republishes the
    /// transformed subjects).
    fn check_transforms(&mut self) -> Result<(), ApiError> {
        let invalid = ApiError::invalid_config;
        if let Some(t) = &self.subject_transform {
            if !t.source.is_empty() && !is_valid_subject(t.source.as_bytes()) {
                return Err(ApiError::new(
                    400,
                    10155,
                    &format!("stream transform source: invalid subject {}", t.source),
                ));
            }
            if !t.destination.is_empty() {
                SubjectTransform::new(&t.source, &t.destination)
                    .map_err(|e| ApiError::new(400, 10156, &format!("stream transform: {e}")))?;
            }
        }
        let Some(r) = &mut self.republish else {
            return Ok(());
        };
        if r.source.is_empty() {
            r.source = ">".into();
        }
        match &self.subject_transform {
            Some(t)
                if r.source == ">"
                    && r.destination == ">"
                    && self.subjects.len() == 1
                    && t.source == self.subjects[0] =>
            {
                r.source.clone_from(&t.destination);
                r.destination.clone_from(&t.destination);
            }
            // Stored subjects are transformed ones: nats-server checks the
            // source against the stream's subjects only without a transform.
            None if !self.subjects.iter().any(|s| subjects_collide(&r.source, s)) => {
                return Err(invalid(
                    "stream configuration for republish source is not valid subset of subjects",
                ));
            }
            _ => {}
        }
        if self
            .subjects
            .iter()
            .any(|s| subjects_collide(&r.destination, s))
        {
            return Err(invalid(
                "stream configuration for republish destination forms a cycle",
            ));
        }
        if SubjectTransform::new(&r.source, &r.destination).is_err() {
            return Err(invalid("stream configuration for republish not valid"));
        }
        Ok(())
    }

    /// What nats-server refuses in a `STREAM.CREATE` request before it looks
    /// at limits or fills in defaults, in its order.
    pub fn check_create_request(&self) -> Result<(), ApiError> {
        if self.name.contains(['\\', '/']) {
            return Err(ApiError::stream_path_separators());
        }
        if self.sealed {
            return Err(ApiError::invalid_config(
                "stream configuration for create can not be sealed",
            ));
        }
        if self.mirror_direct && self.mirror.is_none() {
            return Err(ApiError::invalid_config(
                "stream has no mirror but does have mirror direct",
            ));
        }
        Ok(())
    }

    /// A server without a cluster places one replica only; nats-server
    /// refuses more (10074) once the configuration is otherwise valid.
    pub fn check_replicas_standalone(&self) -> Result<(), ApiError> {
        if self.num_replicas > 1 {
            return Err(ApiError::replicas_not_supported());
        }
        Ok(())
    }

    /// The compiled input transform, if any.
    pub fn input_transform(&self) -> Option<SubjectTransform> {
        let t = self.subject_transform.as_ref()?;
        SubjectTransform::new(&t.source, &t.destination).ok()
    }

    /// The compiled republish transform and `headers_only`, if any.
    pub fn republish_transform(&self) -> Option<(SubjectTransform, bool)> {
        let r = self.republish.as_ref()?;
        let t = SubjectTransform::new(&r.source, &r.destination).ok()?;
        Some((t, r.headers_only))
    }

    /// nats-server's `configUpdateCheck`: what an update may not change.
    /// `self` is the normalized new configuration.
    pub fn check_update(&self, old: &StreamConfig) -> Result<(), ApiError> {
        let invalid = ApiError::invalid_config;
        if self.name != old.name {
            return Err(invalid("stream configuration name must match original"));
        }
        self.check_replicas_standalone()?;
        if self.storage != old.storage {
            return Err(invalid(
                "stream configuration update can not change storage type",
            ));
        }
        if self.retention != old.retention
            && (self.retention == Retention::Workqueue || old.retention == Retention::Workqueue)
        {
            return Err(invalid(
                "stream configuration update can not change retention policy to/from workqueue",
            ));
        }
        if old.sealed && !self.sealed {
            return Err(invalid(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        if old.deny_delete && !self.deny_delete {
            return Err(invalid(
                "stream configuration update can not cancel deny message deletes",
            ));
        }
        if old.deny_purge && !self.deny_purge {
            return Err(invalid(
                "stream configuration update can not cancel deny purge",
            ));
        }
        if old.allow_msg_ttl && !self.allow_msg_ttl {
            return Err(invalid("message TTL status can not be disabled"));
        }
        if self.first_seq != old.first_seq && self.first_seq != 0 {
            return Err(invalid(
                "stream configuration update can not change first sequence",
            ));
        }
        Ok(())
    }

    /// Whether a subject of one of the `others` overlaps one of this
    /// (normalized) configuration's subjects, asked of a [`FilterSet`] of
    /// ours: linear in the others' subjects, not their product with ours.
    pub fn overlaps_any<'s>(
        &self,
        others: impl IntoIterator<Item = &'s StreamConfig>,
    ) -> Result<bool, ApiError> {
        let mut set = FilterSet::new();
        for (i, subj) in self.subjects.iter().enumerate() {
            set.insert(subj, i);
        }
        for other in others {
            for subj in &other.subjects {
                if set.overlapping(subj, None)?.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The store limits this configuration asks for.
    pub fn store_limits(&self) -> natsd_storage::StoreLimits {
        let pos = |v: i64| u64::try_from(v).unwrap_or(0);
        natsd_storage::StoreLimits {
            max_msgs: pos(self.max_msgs),
            max_bytes: pos(self.max_bytes),
            // With per-message TTLs the stream ages its messages itself
            // (a `Nats-TTL: never` message outlives `max_age`).
            max_age_ns: if self.allow_msg_ttl {
                0
            } else {
                pos(self.max_age)
            },
            max_msgs_per_subject: pos(self.max_msgs_per_subject),
            // Checked before the store, with nats-server's error.
            max_msg_size: 0,
            discard: match self.discard {
                Discard::Old => natsd_storage::Discard::Old,
                Discard::New => natsd_storage::Discard::New,
            },
            discard_new_per_subject: self.discard_new_per_subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<StreamConfig, ApiError> {
        serde_json::from_str::<StreamConfig>(json)
            .expect("json")
            .normalize()
    }

    /// nats-server `checkStreamCfg` under `jetstream.limits.duplicate_window`.
    #[test]
    fn server_duplicate_window_limit() {
        let within = |json: &str| {
            serde_json::from_str::<StreamConfig>(json)
                .expect("json")
                .normalize_within(30_000_000_000)
        };
        let c = within(r#"{"name":"S"}"#).unwrap();
        assert_eq!(c.duplicate_window, 30_000_000_000);
        let c = within(r#"{"name":"S","max_age":10000000000}"#).unwrap();
        assert_eq!(c.duplicate_window, 10_000_000_000);
        let e = within(r#"{"name":"S","duplicate_window":60000000000}"#).unwrap_err();
        assert_eq!(
            e.description,
            "duplicates window can not be larger then server limit of 30s"
        );
        assert_eq!((e.code, e.err_code), (500, 10052));
    }

    #[test]
    fn defaults_are_nats_servers() {
        let c = cfg(r#"{"name":"S","num_replicas":0}"#).unwrap();
        assert_eq!(c.subjects, ["S"]);
        assert_eq!(
            (
                c.max_msgs,
                c.max_bytes,
                c.max_msgs_per_subject,
                c.max_msg_size,
                c.max_consumers
            ),
            (-1, -1, -1, -1, -1)
        );
        assert_eq!(c.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        assert_eq!(c.num_replicas, 1);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["retention"], "limits");
        assert_eq!(v["storage"], "file");
        assert_eq!(v["discard"], "old");
        assert_eq!(v["compression"], "none");
        assert_eq!(v["consumer_limits"], serde_json::json!({}));
        assert!(v.get("no_ack").is_none() && v.get("description").is_none());
        // A short max_age bounds the duplicate window.
        let c = cfg(r#"{"name":"S","max_age":1000000000}"#).unwrap();
        assert_eq!(c.duplicate_window, 1_000_000_000);
    }

    #[test]
    fn invalid_configs_get_nats_server_errors() {
        let e = cfg(r#"{"name":"a.b"}"#).unwrap_err();
        assert_eq!((e.code, e.err_code), (500, 10052));
        let e = cfg(r#"{"name":"S","subjects":["a.>","a.b"]}"#).unwrap_err();
        assert_eq!(e.description, r#"subject "a.>" overlaps with "a.b""#);
        let e = cfg(r#"{"name":"S","max_age":5}"#).unwrap_err();
        assert_eq!(e.description, "max age needs to be >= 100ms");
        let e = cfg(r#"{"name":"S","discard_new_per_subject":true}"#).unwrap_err();
        assert_eq!(
            e.description,
            "discard new per subject requires discard new policy to be set"
        );
        let e = cfg(r#"{"name":"S","subjects":["$JS.API.x"]}"#).unwrap_err();
        assert!(e.description.contains("jetstream api"));
        let e = cfg(r#"{"name":"S","deny_purge":true,"allow_rollup_hdrs":true}"#).unwrap_err();
        assert_eq!(e.description, "roll-ups require the purge permission");
        assert!(serde_json::from_str::<StreamConfig>(r#"{"name":"S","storage":"disk"}"#).is_err());
    }

    /// Subject checks in nats-server 2.15.1's order and words: subject by
    /// subject, the first later subject that overlaps is named.
    #[test]
    fn subject_checks_name_the_pair_nats_server_names() {
        let desc = |json: &str| cfg(json).unwrap_err().description;
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.a","t.b","t.a"]}"#),
            r#"subject "t.a" overlaps with "t.a""#
        );
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.a.>","t.b","t.a.x","t.b"]}"#),
            r#"subject "t.a.>" overlaps with "t.a.x""#
        );
        // An overlap found before an invalid subject wins, even with a
        // subject after it.
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.a","t.b.>","t..c","t.b.c"]}"#),
            r#"subject "t.b.>" overlaps with "t.b.c""#
        );
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.a","t..c","t.a"]}"#),
            r#"subject "t.a" overlaps with "t.a""#
        );
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.x","t..c","t.a"]}"#),
            "invalid subject"
        );
        assert_eq!(
            desc(r#"{"name":"S","subjects":["t.*.b","t.a.*"]}"#),
            r#"subject "t.*.b" overlaps with "t.a.*""#
        );
        assert!(cfg(r#"{"name":"S","subjects":["hello","hello.>","$JS"]}"#).is_ok());
        assert_eq!(
            desc(r#"{"name":"S","subjects":[">"],"no_ack":true,"num_replicas":3}"#),
            "capturing all subjects requires replicas of 1"
        );
    }

    #[test]
    fn sixty_thousand_subjects_are_checked() {
        let subjects: Vec<String> = (0..60_000).map(|i| format!("big.{i:05}.x")).collect();
        let mut c = StreamConfig {
            name: "S".into(),
            subjects,
            ..StreamConfig::default()
        };
        assert!(c.clone().normalize().is_ok());
        c.subjects.push("big.*.x".into());
        assert_eq!(
            c.normalize().unwrap_err().description,
            r#"subject "big.00000.x" overlaps with "big.*.x""#
        );
    }

    #[test]
    fn create_request_and_standalone_replicas() {
        let req = |json: &str| serde_json::from_str::<StreamConfig>(json).expect("json");
        let e = req(r#"{"name":"a/b"}"#).check_create_request().unwrap_err();
        assert_eq!((e.code, e.err_code), (400, 10128));
        let e = req(r#"{"name":"S","mirror_direct":true,"num_replicas":3}"#)
            .check_create_request()
            .unwrap_err();
        assert_eq!(
            e.description,
            "stream has no mirror but does have mirror direct"
        );
        let e = req(r#"{"name":"S","sealed":true}"#)
            .check_create_request()
            .unwrap_err();
        assert_eq!(
            e.description,
            "stream configuration for create can not be sealed"
        );
        let c = cfg(r#"{"name":"S","num_replicas":3}"#).unwrap();
        let e = c.check_replicas_standalone().unwrap_err();
        assert_eq!((e.code, e.err_code), (500, 10074));
        assert!(cfg(r#"{"name":"S"}"#)
            .unwrap()
            .check_replicas_standalone()
            .is_ok());
        let e = cfg(r#"{"name":"a\\b"}"#).unwrap_err();
        assert_eq!(
            e.description,
            r"stream name is required and can not contain '.', '*', '>', '\', '/'"
        );
    }

    #[test]
    fn overlap_with_other_streams() {
        let a = cfg(r#"{"name":"A","subjects":["a.*","b.>"]}"#).unwrap();
        let b = cfg(r#"{"name":"B","subjects":["a"]}"#).unwrap();
        let c = cfg(r#"{"name":"C","subjects":["x","b.c.d"]}"#).unwrap();
        let d = cfg(r#"{"name":"D","subjects":["b"]}"#).unwrap();
        assert_eq!(a.overlaps_any([&b, &d]), Ok(false));
        assert_eq!(a.overlaps_any([&b, &c]), Ok(true));
        assert_eq!(c.overlaps_any([&a]), Ok(true));
    }

    #[test]
    fn update_rules() {
        let old = cfg(r#"{"name":"S","deny_delete":true}"#).unwrap();
        let new = cfg(r#"{"name":"S","storage":"memory","deny_delete":true}"#).unwrap();
        assert_eq!(
            new.check_update(&old).unwrap_err().description,
            "stream configuration update can not change storage type"
        );
        let new = cfg(r#"{"name":"S"}"#).unwrap();
        assert_eq!(
            new.check_update(&old).unwrap_err().description,
            "stream configuration update can not cancel deny message deletes"
        );
        let new = cfg(r#"{"name":"S","deny_delete":true,"max_msgs":5}"#).unwrap();
        assert!(new.check_update(&old).is_ok());
    }
}
