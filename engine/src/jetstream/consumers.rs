//! Consumers in the JetStream service: the `$JS.API.CONSUMER.*` handlers and
//! the driving of each stream's [`Consumer`] machines.
//!
//! A stream owns its consumers ([`Slot`]s). The service feeds them what
//! happens to the stream (stored, removed, purged), the acks arriving on
//! `$JS.ACK.>` and flow control replies on `$JS.FC.>` (one subscription of
//! each per account), pull requests on `CONSUMER.MSG.NEXT`, the interest
//! on push deliver subjects (checked in the account's sublist every
//! [`INTEREST_CHECK`]) and the loss of interest on waiting pull requests'
//! replies (checked before each input and every [`INTEREST_CHECK`]). Their outputs become internal publishes; acks on
//! interest and workqueue streams remove the messages no consumer still
//! needs. Durable consumers of file streams keep `obs/<name>/meta.inf`
//! (config, creation time) and `obs/<name>/o.dat` (state, written at most
//! every [`PERSIST_INTERVAL`], at shutdown, and before the confirmation of
//! an ack sent with a reply subject goes out) in the stream's directory.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::api::{self, kind, parse_request, ApiError};
use super::config::{Retention, Storage};
use super::stream::Stream;
use super::{JetStream, Reply, LIST_LIMIT, NAMES_LIMIT};
use crate::accounts::SERVICE_REPLY_PREFIX;
use crate::consumer::{
    parse_ack_reply, parse_rfc3339_ns, valid_group_name, Consumer, ConsumerConfig, ConsumerState,
    Input, MsgSource, Output, ServerLimits, GO_ZERO_TIME,
};
use crate::filters::FilterSet;
use crate::internal::{Delivery, Internal};
use crate::server::Account;

/// How often push consumers' deliver subjects, and the replies of waiting
/// pull requests, are checked for interest.
pub const INTEREST_CHECK: Duration = Duration::from_millis(200);
/// How often changed consumer state is written.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(1);
/// Outputs kept allocated between drives.
const OUTS_KEEP: usize = 4096;

/// One consumer of a stream.
pub struct Slot {
    /// The machine.
    pub c: Consumer,
    /// Creation time, ns since the epoch.
    created: i64,
    /// Durable on a file stream: written under `obs/<name>/`.
    persist: bool,
    /// Its state changed since it was last written.
    dirty: bool,
    /// Push: the interest last told to the machine.
    interest: bool,
    /// Pull: the account's sublist generation and the machine's
    /// [`Consumer::requests_queued`] when the waiting requests' replies were
    /// last checked for interest.
    requests_checked: Option<(u64, u64)>,
}

/// The confirmation of an ack that came with a reply subject (a client's
/// "ack sync"), held until the consumer's state holding the ack is written:
/// a confirmed ack survives `kill -9`.
pub struct Confirm {
    acc: usize,
    stream: Arc<str>,
    consumer: Arc<str>,
    to: String,
}

/// `obs/<name>/meta.inf`.
#[derive(Serialize, Deserialize)]
struct Meta {
    config: ConsumerConfig,
    created: i64,
}

/// Drop the pull requests of `slot` whose requester went away: nats-server
/// checks that a request's reply still has a subscriber before it serves
/// the request or sends its heartbeat, and forgets it (without a status)
/// when none is left. Checked again only once the account's subscriptions
/// or the queued requests changed. A reply through a service import
/// (`_R_.`) has no subscriber in this account and is not followed.
fn forget_gone_requests(account: &Account, slot: &mut Slot, now: Instant, src: &dyn MsgSource) {
    if slot.c.config().is_push() {
        return;
    }
    let mark = (account.sublist.generation(), slot.c.requests_queued());
    if slot.requests_checked == Some(mark) {
        return;
    }
    slot.requests_checked = Some(mark);
    let mut gone: Vec<String> = slot
        .c
        .waiting_replies()
        .filter(|r| {
            !r.as_bytes().starts_with(SERVICE_REPLY_PREFIX)
                && account.sublist.matches(r.as_bytes()).is_empty()
        })
        .map(str::to_string)
        .collect();
    gone.dedup();
    for reply in gone {
        slot.c
            .handle_input(now, Input::NextInterestGone { reply }, src);
    }
}

/// A consumer info answer with the server's version metadata (create and
/// info answers carry it, list entries do not, as in nats-server).
fn with_version(mut info: serde_json::Value) -> serde_json::Value {
    if let Some(config) = info.get_mut("config") {
        super::versioning::add_dynamic(config);
    }
    info
}

/// How a `CONSUMER.CREATE` subject names the consumer.
#[derive(PartialEq, Eq)]
enum CreateKind {
    LegacyEphemeral,
    LegacyDurable,
    New,
}

fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

fn consumer_dir(stream: &Stream, name: &str) -> Option<std::path::PathBuf> {
    stream.dir().map(|d| d.join("obs").join(name))
}

fn write_meta(stream: &Stream, name: &str, slot: &Slot) -> Result<(), String> {
    let Some(dir) = consumer_dir(stream, name).filter(|_| slot.persist) else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let meta = Meta {
        config: slot.c.config().clone(),
        created: slot.created,
    };
    let body = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
    write_atomic(&dir.join("meta.inf"), &body).map_err(|e| e.to_string())?;
    write_state(stream, name, slot)
}

fn write_state(stream: &Stream, name: &str, slot: &Slot) -> Result<(), String> {
    let Some(dir) = consumer_dir(stream, name).filter(|_| slot.persist) else {
        return Ok(());
    };
    let body = serde_json::to_vec(&slot.c.state()).map_err(|e| e.to_string())?;
    write_atomic(&dir.join("o.dat"), &body).map_err(|e| e.to_string())
}

/// The highest stream sequence that the saved state of `stream`'s durable
/// consumers mentions (delivered or acknowledged): the stream handed it
/// out, whatever its files hold now.
pub(super) fn saved_stream_seq(stream: &Stream) -> u64 {
    let Some(obs) = stream.dir().map(|d| d.join("obs")) else {
        return 0;
    };
    std::fs::read_dir(obs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("o.dat")).ok())
        .filter_map(|b| serde_json::from_slice::<ConsumerState>(&b).ok())
        .map(|st| st.delivered.stream_seq.max(st.ack_floor.stream_seq))
        .max()
        .unwrap_or(0)
}

/// 18 letters and digits drawn from the server's nonces: with the
/// consumer's 4-digit counter a pin id is 22 characters, as nats-server's
/// nuids.
fn pin_prefix(server: &crate::server::Server) -> String {
    let mut p = String::with_capacity(18);
    while p.len() < 18 {
        p.extend(
            server
                .new_nonce()
                .chars()
                .filter(char::is_ascii_alphanumeric),
        );
    }
    p.truncate(18);
    p
}

/// Do the filters of a new workqueue consumer stay clear of every other
/// consumer's (nats-server `partitionUnique`)? The others' filters are
/// asked of a [`FilterSet`] of the new ones: linear in them, not their
/// product.
fn partition_unique(stream: &Stream, name: &str, filters: &[String]) -> Result<bool, ApiError> {
    let mut set = FilterSet::new();
    for (i, f) in filters.iter().enumerate() {
        set.insert(f, i);
    }
    for (_, slot) in stream.consumers.iter().filter(|(n, _)| ***n != *name) {
        let theirs = slot.c.config().filters();
        if theirs.is_empty() {
            return Ok(false);
        }
        for t in &theirs {
            if set.overlapping(t, None)?.is_some() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Remove the messages in `first..=last` no consumer of an interest or
/// workqueue stream still needs.
fn drop_unneeded(stream: &mut Stream, first: u64, last: u64) {
    if stream.cfg.retention == Retention::Limits {
        return;
    }
    let st = stream.state();
    let (first, last) = (first.max(st.first_seq), last.min(st.last_seq));
    for seq in first..=last {
        let Some(subject) = stream.subject_of(seq) else {
            continue;
        };
        if !stream
            .consumers
            .values()
            .any(|s| s.c.needs_ack(seq, &subject))
        {
            stream.remove_retained(seq);
        }
    }
}

impl JetStream {
    /// The server's `jetstream.limits` and account `acc`'s `max_ack_pending`.
    fn server_limits(&self, acc: usize) -> ServerLimits {
        ServerLimits {
            max_ack_pending: self.opts.limits.max_ack_pending,
            max_request_batch: self.opts.limits.max_request_batch,
            account_max_ack_pending: self.accounts[acc].limits.max_ack_pending,
        }
    }

    /// A fresh id for an event (advisories).
    fn event_id(&self) -> String {
        self.server.new_nonce()
    }

    /// The `$JS.API.CONSUMER.*` requests (except `MSG.NEXT`).
    pub(super) fn consumer_api(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        tokens: &[&str],
        body: &[u8],
    ) -> Reply {
        let k = match tokens {
            ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", ..] => {
                kind::CONSUMER_CREATE
            }
            ["CONSUMER", "INFO", _, _] => kind::CONSUMER_INFO,
            ["CONSUMER", "DELETE", _, _] => kind::CONSUMER_DELETE,
            ["CONSUMER", "NAMES", _] => kind::CONSUMER_NAMES,
            ["CONSUMER", "LIST", _] => kind::CONSUMER_LIST,
            ["CONSUMER", "PAUSE", _, _] => kind::CONSUMER_PAUSE,
            ["CONSUMER", "UNPIN", _, _] => kind::CONSUMER_UNPIN,
            ["CONSUMER", "LEADER", "STEPDOWN", _, _] => {
                // nats-server without a cluster refuses before any other check.
                return Reply::error(
                    kind::CONSUMER_LEADER_STEPDOWN,
                    &ApiError::cluster_required(),
                );
            }
            _ => return Reply::no_responders(),
        };
        if !self.accounts[acc].enabled {
            return Reply::error(k, &ApiError::not_enabled_for_account());
        }
        let result = match tokens {
            ["CONSUMER", "INFO", s, c] => self
                .consumer_info(now, net, acc, s, c)
                .and_then(|v| v.ok_or_else(ApiError::consumer_not_found))
                .map(with_version),
            ["CONSUMER", "DELETE", s, c] => self
                .consumer_delete(now, net, acc, s, c)
                .map(|()| serde_json::json!({"success": true})),
            ["CONSUMER", "NAMES", s] => self.consumer_names(now, net, acc, s, body, false),
            ["CONSUMER", "LIST", s] => self.consumer_names(now, net, acc, s, body, true),
            ["CONSUMER", "PAUSE", s, c] => self.consumer_pause(now, net, acc, s, c, body),
            ["CONSUMER", "UNPIN", s, c] => self
                .consumer_unpin(now, net, acc, s, c, body)
                .map(|()| serde_json::json!({})),
            _ => self
                .consumer_create(now, net, acc, tokens, body)
                .map(with_version),
        };
        match result {
            Ok(v) => Reply::json(api::response(k, &v)),
            Err(e) => Reply::error(k, &e),
        }
    }

    /// `CONSUMER.PAUSE.<stream>.<consumer>`: a body that is not a JSON object
    /// or array is no request (resume), as nats-server reads it.
    fn consumer_pause(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, ApiError> {
        let req: api::ConsumerPauseRequest = match body.trim_ascii().first() {
            Some(b'{' | b'[') => api::parse_body(body)?,
            _ => api::ConsumerPauseRequest::default(),
        };
        let until = match req.pause_until {
            Some(t) => match parse_rfc3339_ns(&t) {
                None => return Err(ApiError::invalid_json_text(&format!("parsing time {t:?}"))),
                // Go's zero time (or anything as old) is no pause.
                Some(i64::MIN) => None,
                Some(_) => Some(t),
            },
            None => None,
        };
        let s = self.accounts[acc]
            .streams
            .get_mut(stream)
            .ok_or_else(ApiError::stream_not_found)?;
        let (consumers, src) = s.consumers_and_source();
        let slot = consumers
            .get_mut(name)
            .ok_or_else(ApiError::consumer_not_found)?;
        slot.c.pause(now, until, &src);
        let until = slot.c.config().pause_until.clone();
        let remaining = slot.c.pause_remaining(now);
        if let Some(slot) = s.consumers.get(name) {
            write_meta(s, name, slot).map_err(|e| ApiError::consumer_store_failed(&e))?;
        }
        self.drive(now, net, acc, stream, name, |_, _| {});
        let mut v = serde_json::json!({
            "paused": !remaining.is_zero(),
            "pause_until": until.as_deref().unwrap_or(GO_ZERO_TIME),
        });
        if !remaining.is_zero() {
            v["pause_remaining"] = u64::try_from(remaining.as_nanos())
                .unwrap_or(u64::MAX)
                .into();
        }
        Ok(v)
    }

    /// `CONSUMER.UNPIN.<stream>.<consumer>` `{"group": ...}`, with
    /// nats-server's checks in its order.
    fn consumer_unpin(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let req: api::ConsumerUnpinRequest = api::parse_body(body)?;
        if req.group.is_empty() {
            return Err(ApiError::invalid_json_text("consumer group not specified"));
        }
        if !valid_group_name(&req.group) {
            return Err(ApiError::invalid_group_name());
        }
        let s = self.accounts[acc]
            .streams
            .get(stream)
            .ok_or_else(ApiError::stream_not_found)?;
        let slot = s
            .consumers
            .get(name)
            .ok_or_else(ApiError::consumer_not_found)?;
        if !slot.c.config().priority_groups.contains(&req.group) {
            return Err(ApiError::invalid_priority_group());
        }
        self.drive(now, net, acc, stream, name, |c, src| {
            c.unpin(now, &req.group, src);
        });
        Ok(())
    }

    /// `CONSUMER.INFO` JSON: `Ok(None)` when the stream has no such consumer.
    fn consumer_info(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        // num_waiting counts only requests someone still waits for.
        self.drive(now, net, acc, stream, name, |_, _| {});
        let leader = self.server.name().to_string();
        let s = self.accounts[acc]
            .streams
            .get_mut(stream)
            .ok_or_else(ApiError::stream_not_found)?;
        let (consumers, src) = s.consumers_and_source();
        let Some(slot) = consumers.get_mut(name) else {
            return Ok(None);
        };
        let mut info = slot.c.info(now, &src);
        info.cluster = Some(serde_json::json!({ "leader": leader }));
        Ok(serde_json::to_value(info).ok())
    }

    fn consumer_names(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        body: &[u8],
        list: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let req: api::ConsumerListRequest = parse_request(body)?;
        let s = self.accounts[acc]
            .streams
            .get(stream)
            .ok_or_else(ApiError::stream_not_found)?;
        let total = s.consumers.len();
        let limit = if list { LIST_LIMIT } else { NAMES_LIMIT };
        let names: Vec<Arc<str>> = s
            .consumers
            .keys()
            .skip(req.offset)
            .take(limit)
            .cloned()
            .collect();
        let items: Vec<serde_json::Value> = if list {
            let mut v = Vec::with_capacity(names.len());
            for n in &names {
                if let Some(info) = self.consumer_info(now, net, acc, stream, n)? {
                    v.push(info);
                }
            }
            v
        } else {
            names
                .iter()
                .map(|n| serde_json::Value::from(&**n))
                .collect()
        };
        Ok(serde_json::json!({
            "total": total,
            "offset": req.offset,
            "limit": limit,
            "consumers": items,
        }))
    }

    /// `CONSUMER.CREATE.<stream>[.<consumer>[.<filter>]]` and
    /// `CONSUMER.DURABLE.CREATE.<stream>.<durable>`, with nats-server's
    /// checks in its order.
    fn consumer_create(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        tokens: &[&str],
        body: &[u8],
    ) -> Result<serde_json::Value, ApiError> {
        let (rt, stream_name, cname, filter) = match tokens {
            ["CONSUMER", "CREATE", s] => (CreateKind::LegacyEphemeral, *s, "", String::new()),
            ["CONSUMER", "DURABLE", "CREATE", s, d] => {
                (CreateKind::LegacyDurable, *s, *d, String::new())
            }
            ["CONSUMER", "DURABLE", "CREATE", ..] => return Err(ApiError::durable_not_in_subject()),
            ["CONSUMER", "CREATE", s, c, rest @ ..] => (CreateKind::New, *s, *c, rest.join(".")),
            _ => return Err(ApiError::bad_request()),
        };
        let mut req: api::CreateConsumerRequest = api::parse_body(body)?;
        // nats-server's checks of the request itself, in its order, before
        // it looks the stream up.
        if stream_name != req.stream_name {
            return Err(ApiError::stream_mismatch());
        }
        let requested = match rt {
            CreateKind::LegacyEphemeral => req.config.name.as_str(),
            CreateKind::LegacyDurable | CreateKind::New => cname,
        };
        if requested.contains(['\\', '/']) {
            return Err(ApiError::consumer_path_separators());
        }
        match rt {
            CreateKind::LegacyEphemeral => {
                if req.config.is_durable() {
                    return Err(ApiError::ephemeral_with_durable());
                }
            }
            CreateKind::LegacyDurable => {
                if !req.config.is_durable() {
                    return Err(ApiError::durable_not_set());
                }
                if req.config.durable_name != cname {
                    return Err(ApiError::durable_not_match_subject());
                }
                req.config.name = cname.to_string();
            }
            CreateKind::New => {
                if req.config.is_durable() && req.config.durable_name != cname {
                    return Err(ApiError::durable_not_match_subject());
                }
                req.config.name = cname.to_string();
            }
        }
        if !filter.is_empty() && !req.config.filter_subjects.is_empty() {
            return Err(ApiError::multiple_filters_not_allowed());
        }
        if !filter.is_empty() && req.config.filter_subject != filter {
            return Err(ApiError::filter_subject_mismatch());
        }
        if req.config.num_replicas > 1 {
            return Err(ApiError::replicas_not_supported());
        }
        let limits = self.server_limits(acc);
        let account_max_consumers = self.accounts[acc].limits.max_consumers;
        let now_ns = self.now_ns(now);
        let domain = self.opts.domain.clone().unwrap_or_default();
        let account_name = self.accounts[acc].account.name.clone();
        let stream = self.accounts[acc]
            .streams
            .get_mut(stream_name)
            .ok_or_else(ApiError::stream_not_found)?;
        let facts = stream.facts();
        let mut cfg = req.config.clone();
        cfg.set_defaults(&facts, &limits);
        let name = if cfg.is_durable() {
            cfg.durable_name.clone()
        } else if !cfg.name.is_empty() {
            cfg.name.clone()
        } else {
            let mut n = String::new();
            while n.len() < 8 || stream.consumers.contains_key(n.as_str()) {
                if n.len() >= 8 {
                    n.clear();
                }
                n.extend(
                    self.server
                        .new_nonce()
                        .chars()
                        .filter(char::is_ascii_alphanumeric),
                );
                n.truncate(8);
            }
            req.config.name.clone_from(&n);
            n
        };
        let workqueue = stream.cfg.retention == Retention::Workqueue;
        if let Some(slot) = stream.consumers.get(name.as_str()) {
            // nats-server: a create or update request never changes the pause
            // of an existing consumer (that is `CONSUMER.PAUSE`'s job).
            let pause = slot.c.config().pause_until.clone();
            cfg.pause_until.clone_from(&pause);
            req.config.pause_until = pause;
        }
        cfg.set_static_metadata();
        req.config.set_static_metadata();
        if let Some(existing) = stream.consumers.get(name.as_str()).map(|s| s.c.config()) {
            // The version metadata is no difference (nats-server's
            // `copyConsumerMetadata`).
            let mut probe = cfg.clone();
            super::versioning::copy_required(&mut probe.metadata, &existing.metadata);
            if req.action == "create" && existing != &probe {
                return Err(ApiError::consumer_already_exists());
            }
            if workqueue && !partition_unique(stream, &name, &cfg.filters())? {
                return Err(ApiError::wq_not_unique());
            }
            let (consumers, src) = stream.consumers_and_source();
            let slot = consumers
                .get_mut(name.as_str())
                .ok_or_else(ApiError::consumer_not_found)?;
            let bound = slot.c.config().is_push() && slot.interest;
            slot.c
                .update_config(now, req.config, &facts, &limits, bound, &src)?;
            if let Some(slot) = stream.consumers.get(name.as_str()) {
                if let Err(e) = write_meta(stream, &name, slot) {
                    log::error!("JetStream consumer '{stream_name} > {name}' write: {e}");
                }
            }
        } else {
            if req.action == "update" {
                return Err(ApiError::consumer_does_not_exist());
            }
            cfg.validate(&facts, &limits)?;
            let max_consumers = stream.max_consumers(account_max_consumers);
            if max_consumers > 0 && stream.consumers.len() as i64 >= max_consumers {
                return Err(ApiError::max_consumers());
            }
            if workqueue && !cfg.direct && !stream.consumers.is_empty() {
                let filters = cfg.filters();
                if filters.is_empty() {
                    return Err(ApiError::wq_multiple_unfiltered());
                }
                if !partition_unique(stream, &name, &filters)? {
                    return Err(ApiError::wq_not_unique());
                }
            }
            let mut c = Consumer::new(
                stream_name,
                &name,
                req.config,
                &facts,
                &limits,
                now,
                now_ns,
                None,
                &stream.source(),
            )?;
            c.set_domain(&domain);
            c.set_ids(&account_name, &pin_prefix(&self.server));
            let persist = stream.cfg.storage == Storage::File
                && c.config().is_durable()
                && !c.config().mem_storage;
            let push = c.config().is_push();
            let slot = Slot {
                c,
                created: now_ns,
                persist,
                dirty: false,
                interest: false,
                requests_checked: None,
            };
            // An ephemeral writes nothing, but nats-server creates a file
            // store for it too, which a NUL in its name fails.
            let file_backed = stream.cfg.storage == Storage::File && !slot.c.config().mem_storage;
            let store = if file_backed && name.contains('\0') {
                Err("name contains a NUL byte".to_string())
            } else {
                write_meta(stream, &name, &slot)
            };
            if let Err(e) = store {
                log::warn!("Consumer create failed for '{stream_name} > {name}': {e}");
                return Err(ApiError::consumer_store_create_failed());
            }
            stream.consumers.insert(name.as_str().into(), slot);
            self.advisory_action(now, net, acc, stream_name, &name, "create");
            if push {
                self.interest_due.get_or_insert(now);
                self.check_interest(now, net, acc, stream_name, &name);
            }
        }
        self.drive(now, net, acc, stream_name, &name, |_, _| {});
        let info = self
            .consumer_info(now, net, acc, stream_name, &name)?
            .ok_or_else(ApiError::consumer_not_found)?;
        // After the answer, as nats-server: a paused consumer's advisory.
        self.drive(now, net, acc, stream_name, &name, |c, _| {
            c.created_request(now);
        });
        Ok(info)
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.CREATED|DELETED.<stream>.<consumer>`.
    fn advisory_action(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        action: &str,
    ) {
        let mut adv = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.consumer_action",
            "id": self.event_id(),
            "timestamp": api::time_json(self.now_ns(now)),
            "stream": stream,
            "consumer": name,
            "action": action,
        });
        if let Some(d) = self.domain() {
            adv["domain"] = d.into();
        }
        let what = if action == "create" {
            "CREATED"
        } else {
            "DELETED"
        };
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{what}.{stream}.{name}");
        let account = self.accounts[acc].account.clone();
        net.publish(
            now,
            &account,
            subject.as_bytes(),
            None,
            None,
            &api::to_json(&adv),
        );
    }

    /// `CONSUMER.DELETE`: pull requests still waiting get `409 Consumer
    /// Deleted`; on an interest stream the messages only it needed go.
    pub(super) fn consumer_delete(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let s = self.accounts[acc]
            .streams
            .get_mut(stream)
            .ok_or_else(ApiError::stream_not_found)?;
        let mut slot = s
            .consumers
            .remove(name)
            .ok_or_else(ApiError::consumer_not_found)?;
        slot.c.stop();
        self.stats_due.get_or_insert(now + super::STATS_DELAY);
        let mut outs = Vec::new();
        while let Some(o) = slot.c.poll_output() {
            outs.push(o);
        }
        if let Some(dir) = consumer_dir(s, name) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::error!("JetStream consumer '{stream} > {name}' delete: {e}"),
            }
        }
        if s.cfg.retention == Retention::Interest {
            let st = s.state();
            drop_unneeded(s, st.first_seq, st.last_seq);
        }
        self.apply(now, net, acc, stream, name, outs.into_iter());
        self.advisory_action(now, net, acc, stream, name, "delete");
        Ok(())
    }

    /// Stream `stream` is being deleted: its consumers stop as a deleted
    /// consumer does, so their waiting pull requests get `409 Consumer
    /// Deleted` instead of running into their expiry.
    pub(super) fn stop_consumers(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        consumers: &mut BTreeMap<Arc<str>, Slot>,
    ) {
        for (name, slot) in consumers.iter_mut() {
            slot.c.stop();
            let mut outs = Vec::new();
            while let Some(o) = slot.c.poll_output() {
                outs.push(o);
            }
            self.apply(now, net, acc, stream, name, outs.into_iter());
        }
    }

    /// Run `f` on one consumer, then carry out what it wants done.
    fn drive(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        f: impl FnOnce(&mut Consumer, &dyn MsgSource),
    ) {
        let a = &mut self.accounts[acc];
        let Some(s) = a.streams.get_mut(stream) else {
            return;
        };
        let (consumers, src) = s.consumers_and_source();
        let Some(slot) = consumers.get_mut(name) else {
            return;
        };
        forget_gone_requests(&a.account, slot, now, &src);
        f(&mut slot.c, &src);
        // One buffer for every drive: a pull batch's outputs are large, and
        // freeing them each time makes glibc consolidate its heap.
        let mut outs = std::mem::take(&mut self.outs);
        while let Some(o) = slot.c.poll_output() {
            outs.push(o);
        }
        self.apply(now, net, acc, stream, name, outs.drain(..));
        if outs.capacity() > OUTS_KEEP {
            outs = Vec::new();
        }
        self.outs = outs;
    }

    /// Feed one input to every consumer of a stream.
    fn feed_all(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        input: &Input,
    ) {
        // The names go into a reused buffer: this runs for every stored message.
        let mut names = std::mem::take(&mut self.names);
        match self.accounts[acc].streams.get(stream) {
            Some(s) => names.extend(s.consumers.keys().cloned()),
            None => return,
        }
        for name in names.drain(..) {
            self.drive(now, net, acc, stream, &name, |c, src| {
                c.handle_input(now, input.clone(), src);
            });
        }
        self.names = names;
    }

    /// Carry out a consumer's outputs.
    fn apply(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        outs: impl ExactSizeIterator<Item = Output>,
    ) {
        if outs.len() == 0 {
            return;
        }
        let account = self.accounts[acc].account.clone();
        let (mut dirty, mut inactive) = (false, false);
        let mut acked = Vec::new();
        let persist = self.accounts[acc]
            .streams
            .get(stream)
            .and_then(|s| s.consumers.get(name))
            .is_some_and(|slot| slot.persist);
        for o in outs {
            match o {
                Output::Deliver(d) => net.deliver_as(
                    now,
                    &account,
                    &d.to,
                    &d.subject,
                    Some(&d.reply),
                    (!d.hdr.is_empty()).then_some(&d.hdr[..]),
                    &d.payload,
                ),
                Output::Status { to, reply, hdr } => net.publish(
                    now,
                    &account,
                    to.as_bytes(),
                    reply.as_deref().map(str::as_bytes),
                    Some(&hdr),
                    b"",
                ),
                Output::Advisory(a) => {
                    let id = self.event_id();
                    net.publish(
                        now,
                        &account,
                        a.subject().as_bytes(),
                        None,
                        None,
                        a.to_json(&id).as_bytes(),
                    );
                }
                Output::Acked { first, last } => acked.push((first, last)),
                Output::AckReply(to) if persist => self.confirms.push(Confirm {
                    acc,
                    stream: stream.into(),
                    consumer: name.into(),
                    to,
                }),
                Output::AckReply(to) => net.publish(now, &account, to.as_bytes(), None, None, b""),
                Output::StateChanged => dirty = true,
                Output::Inactive => inactive = true,
            }
        }
        let Some(s) = self.accounts[acc].streams.get_mut(stream) else {
            return;
        };
        if dirty {
            if let Some(slot) = s.consumers.get_mut(name).filter(|s| s.persist) {
                slot.dirty = true;
                self.persist_due.get_or_insert(now + PERSIST_INTERVAL);
            }
        }
        for (first, last) in acked {
            drop_unneeded(s, first, last);
        }
        if inactive {
            let _ = self.consumer_delete(now, net, acc, stream, name);
        }
    }

    /// A message was stored in `stream` (`rolled_up`: a roll-up purged
    /// older ones). On an interest stream a message no consumer wants is
    /// removed at once, as nats-server skips it.
    pub(super) fn stream_stored(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        (seq, rolled_up): (u64, bool),
        subject: &str,
    ) {
        if rolled_up {
            self.stream_purged(now, net, acc, stream, true);
        }
        let Some(s) = self.accounts[acc].streams.get_mut(stream) else {
            return;
        };
        if s.cfg.retention == Retention::Interest
            && !s.consumers.values().any(|c| c.c.needs_ack(seq, subject))
        {
            s.remove_retained(seq);
            return;
        }
        let input = Input::Stored {
            seq,
            subject: subject.to_string(),
        };
        self.feed_all(now, net, acc, stream, &input);
    }

    /// Messages were purged from `stream` (`filtered`: only some subjects).
    pub(super) fn stream_purged(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        filtered: bool,
    ) {
        let Some(s) = self.accounts[acc].streams.get(stream) else {
            return;
        };
        let input = Input::Purged {
            seq: s.state().first_seq,
            wider: filtered,
        };
        self.feed_all(now, net, acc, stream, &input);
    }

    /// A message was deleted from `stream` through the API.
    pub(super) fn stream_removed(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        seq: u64,
        subject: String,
    ) {
        self.feed_all(now, net, acc, stream, &Input::Removed { seq, subject });
    }

    /// A message on `$JS.ACK.>` of account `acc`.
    pub(super) fn handle_ack(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        msg: Delivery,
    ) {
        let Ok(subject) = std::str::from_utf8(&msg.subject) else {
            return;
        };
        let Some((stream, name, info)) = parse_ack_reply(subject) else {
            return;
        };
        let input = Input::Ack {
            info: Some(info),
            reply: msg
                .reply
                .as_deref()
                .filter(|r| !r.is_empty())
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            body: msg.payload.clone(),
        };
        self.drive(now, net, acc, stream, name, |c, src| {
            c.handle_input(now, input, src);
        });
    }

    /// A flow control reply on `$JS.FC.<stream>.<consumer>.<id>`.
    pub(super) fn handle_flow_control(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        msg: &Delivery,
    ) {
        let subject = String::from_utf8_lossy(&msg.subject).into_owned();
        let tokens: Vec<&str> = subject.split('.').collect();
        let ["$JS", "FC", stream, name, _] = tokens.as_slice() else {
            return;
        };
        let input = Input::FlowControlReply {
            subject: subject.clone(),
        };
        self.drive(now, net, acc, stream, name, |c, src| {
            c.handle_input(now, input, src);
        });
    }

    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`: a pull request. A
    /// request for a consumer that does not pull has no responder, as with
    /// nats-server.
    pub(super) fn handle_next(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
        msg: &Delivery,
    ) {
        let Some(reply) = msg.reply.as_deref().filter(|r| !r.is_empty()) else {
            return;
        };
        let reply = String::from_utf8_lossy(reply).into_owned();
        let pull = self.accounts[acc].enabled
            && self.accounts[acc]
                .streams
                .get(stream)
                .and_then(|s| s.consumers.get(name))
                .is_some_and(|slot| !slot.c.config().is_push());
        if !pull {
            let account = self.accounts[acc].account.clone();
            let r = Reply::no_responders();
            net.publish(
                now,
                &account,
                reply.as_bytes(),
                None,
                r.headers.as_deref(),
                &r.body,
            );
            return;
        }
        let input = Input::Next {
            reply,
            body: msg.payload.clone(),
        };
        self.interest_due.get_or_insert(now + INTEREST_CHECK);
        self.drive(now, net, acc, stream, name, |c, src| {
            c.handle_input(now, input, src);
        });
    }

    /// Tell a push consumer whether its deliver subject has a subscriber
    /// now, if that changed.
    fn check_interest(
        &mut self,
        now: Instant,
        net: &mut Internal,
        acc: usize,
        stream: &str,
        name: &str,
    ) {
        let account = self.accounts[acc].account.clone();
        let Some(slot) = self.accounts[acc]
            .streams
            .get_mut(stream)
            .and_then(|s| s.consumers.get_mut(name))
        else {
            return;
        };
        let deliver = &slot.c.config().deliver_subject;
        if deliver.is_empty() {
            return;
        }
        let on = !account.sublist.matches(deliver.as_bytes()).is_empty();
        if on == slot.interest {
            return;
        }
        slot.interest = on;
        self.drive(now, net, acc, stream, name, |c, src| {
            c.handle_input(now, Input::Interest(on), src);
        });
    }

    /// Every (account, stream, consumer) triple.
    fn all_consumers(&self) -> Vec<(usize, String, String)> {
        let mut v = Vec::new();
        for (acc, a) in self.accounts.iter().enumerate() {
            for (sname, s) in &a.streams {
                for cname in s.consumers.keys() {
                    v.push((acc, sname.clone(), cname.to_string()));
                }
            }
        }
        v
    }

    /// The consumers' share of the service timer: their own timeouts, the
    /// push interest check and the coalesced state writes.
    pub(super) fn consumers_timeout(&mut self, now: Instant, net: &mut Internal) {
        let due: Vec<(usize, String, String)> = self
            .all_consumers()
            .into_iter()
            .filter(|(acc, s, c)| {
                self.accounts[*acc]
                    .streams
                    .get(s)
                    .and_then(|st| st.consumers.get(c.as_str()))
                    .and_then(|slot| slot.c.poll_timeout())
                    .is_some_and(|t| t <= now)
            })
            .collect();
        for (acc, s, c) in due {
            self.drive(now, net, acc, &s, &c, |c, src| c.handle_timeout(now, src));
        }
        if self.interest_due.is_some_and(|t| t <= now) {
            self.interest_due = None;
            let mut again = false;
            for (acc, s, c) in self.all_consumers() {
                let Some(slot) = self.accounts[acc]
                    .streams
                    .get(&s)
                    .and_then(|st| st.consumers.get(c.as_str()))
                else {
                    continue;
                };
                if slot.c.config().is_push() {
                    again = true;
                    self.check_interest(now, net, acc, &s, &c);
                } else if slot.c.waiting_replies().next().is_some() {
                    // Pull requests whose requester left go (see
                    // forget_gone_requests) even while nothing else happens.
                    again = true;
                    self.drive(now, net, acc, &s, &c, |_, _| {});
                }
            }
            if again {
                self.interest_due = Some(now + INTEREST_CHECK);
            }
        }
        if self.persist_due.is_some_and(|t| t <= now) {
            self.persist_due = None;
            self.persist_consumers();
        }
    }

    /// The server is shutting down: every waiting pull request gets `409
    /// Server Shutdown` (see [`Consumer::shutdown`]).
    pub(super) fn signal_pull_consumers(&mut self, now: Instant, net: &mut Internal) {
        for (acc, s, c) in self.all_consumers() {
            self.drive(now, net, acc, &s, &c, |c, _| c.shutdown());
        }
    }

    /// When [`consumers_timeout`](Self::consumers_timeout) has work next.
    pub(super) fn consumers_poll_timeout(&self) -> Option<Instant> {
        let machines = self
            .accounts
            .iter()
            .flat_map(|a| a.streams.values())
            .flat_map(|s| s.consumers.values())
            .filter_map(|slot| slot.c.poll_timeout())
            .min();
        [machines, self.interest_due, self.persist_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Write the state of the consumers with held ack confirmations, then
    /// send the confirmations whose consumer is written. One write per
    /// consumer and batch; a failed write sends none of its confirmations
    /// (the client's ack times out and it acks again) and is retried by the
    /// persist timer.
    pub(super) fn confirm_acks(&mut self, now: Instant, net: &mut Internal) {
        let confirms = std::mem::take(&mut self.confirms);
        let mut failed: Vec<(usize, &str, &str)> = Vec::new();
        let mut written: Vec<(usize, &str, &str)> = Vec::new();
        for c in &confirms {
            let key = (c.acc, &*c.stream, &*c.consumer);
            if written.contains(&key) || failed.contains(&key) {
                continue;
            }
            let Some(s) = self.accounts[c.acc].streams.get_mut(&*c.stream) else {
                continue;
            };
            let Some(slot) = s.consumers.get(&*c.consumer).filter(|slot| slot.dirty) else {
                written.push(key);
                continue;
            };
            match write_state(s, &c.consumer, slot) {
                Ok(()) => {
                    if let Some(slot) = s.consumers.get_mut(&*c.consumer) {
                        slot.dirty = false;
                    }
                    written.push(key);
                }
                Err(e) => {
                    log::error!(
                        "JetStream consumer '{} > {}' state write: {e}",
                        c.stream,
                        c.consumer
                    );
                    failed.push(key);
                }
            }
        }
        for c in &confirms {
            if failed.contains(&(c.acc, &*c.stream, &*c.consumer)) {
                continue;
            }
            let account = &self.accounts[c.acc].account;
            net.publish(now, account, c.to.as_bytes(), None, None, b"");
        }
    }

    /// Write the state of every consumer that changed.
    pub(super) fn persist_consumers(&mut self) {
        for a in &mut self.accounts {
            for s in a.streams.values_mut() {
                let names: Vec<Arc<str>> = s
                    .consumers
                    .iter()
                    .filter(|(_, slot)| slot.dirty)
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in names {
                    if let Some(slot) = s.consumers.get(&name) {
                        if let Err(e) = write_state(s, &name, slot) {
                            log::error!(
                                "JetStream consumer '{} > {name}' state write: {e}",
                                s.cfg.name
                            );
                        }
                    }
                    if let Some(slot) = s.consumers.get_mut(&name) {
                        slot.dirty = false;
                    }
                }
            }
        }
    }

    /// Bring back the durable consumers of a restored file stream.
    pub(super) fn restore_consumers(&mut self, now: Instant, acc: usize, stream: &str) {
        let limits = self.server_limits(acc);
        let now_ns = self.now_ns(now);
        let domain = self.opts.domain.clone().unwrap_or_default();
        let account = self.accounts[acc].account.name.clone();
        let Some(s) = self.accounts[acc].streams.get_mut(stream) else {
            return;
        };
        let Some(obs) = s.dir().map(|d| d.join("obs")) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&obs) else {
            return;
        };
        let mut dirs: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let facts = s.facts();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let meta = std::fs::read(dir.join("meta.inf"))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Meta>(&b).map_err(|e| e.to_string()));
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("  Error restoring consumer from {}: {e}", dir.display());
                    continue;
                }
            };
            let state: Option<ConsumerState> = std::fs::read(dir.join("o.dat"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match Consumer::new(
                stream,
                &name,
                meta.config,
                &facts,
                &limits,
                now,
                now_ns,
                state,
                &s.source(),
            ) {
                Ok(mut c) => {
                    c.set_created(meta.created);
                    c.set_domain(&domain);
                    c.set_ids(&account, &pin_prefix(&self.server));
                    while c.poll_output().is_some() {}
                    if c.config().is_push() {
                        self.interest_due.get_or_insert(now);
                    }
                    s.consumers.insert(
                        name.as_str().into(),
                        Slot {
                            c,
                            created: meta.created,
                            persist: true,
                            dirty: false,
                            interest: false,
                            requests_checked: None,
                        },
                    );
                    log::info!("  Restored consumer '{account} > {stream} > {name}'");
                }
                Err(e) => log::warn!("  Error restoring consumer '{name}': {e}"),
            }
        }
    }
}
