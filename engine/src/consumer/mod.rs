//! The JetStream consumer as a sans-IO delivery machine.
//!
//! A [`Consumer`] decides what a nats-server consumer decides: which stored
//! message goes next, to whom, with which `$JS.ACK` reply; what an ack, NAK,
//! progress, next or term means; when a delivery is due again (ack wait,
//! backoff, NAK delay); when a message has had its `max_deliver`; how pull
//! requests queue, expire and complete; idle heartbeats and push flow
//! control; and the exact numbers of `CONSUMER.INFO`. It owns no thread,
//! clock, socket or store: the stream is read through [`MsgSource`], time is
//! passed in, and everything it wants done comes out of [`Consumer::poll_output`].
//!
//! ```text
//!   stream stage ──Input (stored, removed, purged, ack, pull request, interest)──► Consumer
//!                ◄──Output (deliver, status, advisory, acked, ack reply, state changed)──
//!                ──handle_timeout at poll_timeout()──►
//! ```
//!
//! Drain rule: after [`Consumer::handle_input`], [`Consumer::handle_timeout`],
//! [`Consumer::stop`] or [`Consumer::update_config`], call
//! [`Consumer::poll_output`] until it returns `None`, then
//! [`Consumer::poll_timeout`] and call `handle_timeout` at that instant. A
//! timeout means: a delivery's ack wait or backoff ran out, a pull request
//! expired or owes a heartbeat, a push heartbeat is due, a replay or rate-limit
//! pause ended, `pause_until` passed, or the consumer may have gone inactive.
//!
//! How a stream drives its consumers:
//! - create with [`Consumer::new`] (`state: None`), or bring back with the
//!   persisted [`ConsumerState`] and [`Consumer::set_created`];
//! - after storing a message: [`Input::Stored`] to every consumer; after
//!   removing one (limits, delete, retention): [`Input::Removed`]; after a
//!   purge: [`Input::Purged`];
//! - messages on [`Consumer::ack_subject`] → [`Input::Ack`]; on
//!   `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` → [`Input::Next`];
//!   a reply in [`Consumer::waiting_replies`] nobody subscribes to any more →
//!   [`Input::NextInterestGone`] (nats-server checks before it serves a
//!   request);
//!   on the `$JS.FC.<stream>.<consumer>.*` replies → [`Input::FlowControlReply`];
//!   subscribers appearing on / leaving the deliver subject → [`Input::Interest`];
//! - outputs: publish [`Output::Deliver`], [`Output::Status`],
//!   [`Output::Advisory`] and [`Output::AckReply`]; on [`Output::Acked`]
//!   (interest and workqueue retention) remove each sequence no consumer
//!   still [`Consumer::needs_ack`]; on [`Output::StateChanged`] write
//!   [`Consumer::state`] (writes may be coalesced: `state` is always the
//!   whole current state); on [`Output::Inactive`] delete the consumer;
//! - `$JS.API.CONSUMER.UNPIN` → [`Consumer::unpin`];
//! - `$JS.API.CONSUMER.PAUSE` → [`Consumer::pause`]; after a `CONSUMER.CREATE`
//!   request → [`Consumer::created_request`] (a paused consumer repeats its
//!   pause advisory, as nats-server does).
//!
//! Time: every call takes the monotonic `now`; the wall clock (message
//! timestamps, pending timestamps that persist, `last_active`) is derived from
//! the pair (`Instant`, wall ns) given to [`Consumer::new`], so a test that
//! owns the `Instant` owns all time.
mod config;
mod error;
mod source;
mod state;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use config::{
    go_duration, is_valid_asset_name, parse_rfc3339_ns, subjects_collide, valid_group_name,
    AckPolicy, ConsumerConfig, DeliverPolicy, PriorityPolicy, ReplayPolicy, Retention,
    ServerLimits, StreamFacts, ACK_WAIT_DEFAULT, EPHEMERAL_INACTIVE_DEFAULT,
    MAX_ACK_PENDING_DEFAULT, MAX_WAITING_DEFAULT, PINNED_TTL_DEFAULT,
};
pub use error::ApiError;
pub use source::StoreSource;
pub use state::{
    ns_rfc3339, system_time_ns, Advisory, AdvisoryKind, ConsumerInfo, ConsumerState, Pending,
    PriorityGroupState, SequenceInfo, SequencePair, GO_ZERO_TIME,
};
pub use wire::{
    ack_reply, parse_ack, parse_ack_reply, parse_go_duration, parse_pull_request, AckKind,
    AckReply, PriorityRequest, PullRequest,
};

/// Push flow control window limit (nats-server `JsFlowControlMaxPending`).
pub const FLOW_CONTROL_MAX_PENDING_BYTES: i64 = 32 * 1024 * 1024;
/// Messages a push consumer sends per call before it yields to the stage.
const PUSH_CHUNK: usize = 1024;
/// nats-server adds this to every ack-wait timer so bursts share one check.
const ACK_WAIT_DELAY: Duration = Duration::from_millis(1);
/// After a restart, pending deliveries are checked this soon (nats-server picks 0.5–1.5 s).
const RESTORE_CHECK_DELAY: Duration = Duration::from_secs(1);

/// A stored message as the consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMsg {
    /// Stream sequence.
    pub seq: u64,
    /// Subject it was stored under.
    pub subject: String,
    /// Raw header block, empty when none.
    pub hdr: Bytes,
    /// Payload.
    pub payload: Bytes,
    /// Timestamp, ns since the Unix epoch.
    pub ts: i64,
}

/// Bounds of the stream as the consumer needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceState {
    /// Messages stored.
    pub msgs: u64,
    /// First sequence (0 for a stream that never had a message, `last + 1` after a purge).
    pub first_seq: u64,
    /// Last sequence ever assigned.
    pub last_seq: u64,
}

/// Read access to the consumer's stream. Filters are NATS subject filters;
/// `""` means every subject. [`StoreSource`] implements it over any
/// `natsd_storage::Store`; each method maps onto the store's:
/// `state` onto `Store::state`, `load_msg`/`load_next_msg`/`load_last_msg`
/// onto the methods of the same name (an `Err` is `None`), `num_pending`
/// onto `Store::num_pending`, `last_seqs` onto `Store::subjects_state`
/// (each subject's `last`).
pub trait MsgSource {
    /// Counts and bounds.
    fn state(&self) -> SourceState;
    /// The message at `seq`.
    fn load_msg(&self, seq: u64) -> Option<SourceMsg>;
    /// The first message at or after `start_seq` matching `filter`.
    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Option<SourceMsg>;
    /// The last message matching `filter`.
    fn load_last_msg(&self, filter: &str) -> Option<SourceMsg>;
    /// Messages at or after `start_seq` matching `filter`; with
    /// `last_per_subject` only the last of each subject counts.
    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64;
    /// The last sequence of every subject matching `filter`.
    fn last_seqs(&self, filter: &str) -> Vec<u64>;
    /// The first sequence whose message is at or after `ts_ns` (past the end: last + 1).
    /// The default walks the stream.
    fn seq_for_time(&self, ts_ns: i64) -> u64 {
        let st = self.state();
        let mut seq = st.first_seq.max(1);
        while let Some(m) = self.load_next_msg("", seq) {
            if m.ts >= ts_ns {
                return m.seq;
            }
            seq = m.seq + 1;
        }
        st.last_seq + 1
    }
}

/// What the stream side tells the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message was stored.
    Stored {
        /// Its sequence.
        seq: u64,
        /// Its subject.
        subject: String,
    },
    /// A message was removed (limits, delete API, workqueue/interest ack by
    /// another path). A pending delivery of it is terminated as nats-server does.
    Removed {
        /// Its sequence.
        seq: u64,
        /// Its subject.
        subject: String,
    },
    /// Messages below `seq` were purged (`seq` 0: the whole stream). `wider`:
    /// the purge had a subject filter narrower than the consumer's, so pending
    /// deliveries are checked one by one against the stream.
    Purged {
        /// New first sequence of the purged range (0: everything).
        seq: u64,
        /// The purge was filtered more narrowly than the consumer.
        wider: bool,
    },
    /// A message arrived on the consumer's ack subject.
    Ack {
        /// The numbers of the `$JS.ACK...` subject it was published to, as
        /// [`parse_ack_reply`] reads them (the caller parsed the subject to
        /// find the consumer); `None` for a subject that is no ack reply
        /// (nats-server then acks sequence 0: nothing).
        info: Option<AckReply>,
        /// Its reply subject (a double ack wants an empty answer there).
        reply: Option<String>,
        /// The payload (headers already stripped).
        body: Bytes,
    },
    /// A `$JS.API.CONSUMER.MSG.NEXT` request.
    Next {
        /// Where deliveries and statuses go.
        reply: String,
        /// The payload: empty, a batch number or JSON.
        body: Bytes,
    },
    /// The subscriber that waited for a pull request's reply went away.
    NextInterestGone {
        /// The request's reply subject.
        reply: String,
    },
    /// A flow control reply arrived (its subject is the `$JS.FC...` reply we sent).
    FlowControlReply {
        /// The subject it was published to.
        subject: String,
    },
    /// Someone does (true) or no longer does (false) subscribe on the push deliver subject.
    Interest(bool),
}

/// A message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where to route it: the deliver subject, or the pull request's reply.
    pub to: String,
    /// The subject the client sees: the message's stream subject.
    pub subject: String,
    /// The `$JS.ACK...` reply.
    pub reply: String,
    /// Header block (with `Nats-Msg-Size` for `headers_only`), empty when none.
    pub hdr: Bytes,
    /// Payload (empty for `headers_only`).
    pub payload: Bytes,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence.
    pub consumer_seq: u64,
    /// Delivery count (1 for a first delivery).
    pub delivered: u64,
}

/// What the consumer wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Deliver a stored message.
    Deliver(Delivery),
    /// Send a header-only status message (`NATS/1.0 <code> <text>` ...).
    Status {
        /// Route and subject: the deliver subject or the pull request's reply.
        to: String,
        /// A reply subject (flow control requests carry one).
        reply: Option<String>,
        /// The header block.
        hdr: Bytes,
    },
    /// Publish an advisory on [`Advisory::subject`].
    Advisory(Advisory),
    /// Stream sequences `first..=last` were acknowledged (only for interest
    /// and workqueue retention): each may now be removed if no other consumer
    /// needs it ([`Consumer::needs_ack`]).
    Acked {
        /// First acknowledged sequence.
        first: u64,
        /// Last acknowledged sequence.
        last: u64,
    },
    /// Send an empty message to this subject (the answer to a double ack).
    AckReply(String),
    /// [`Consumer::state`] changed; persist it.
    StateChanged,
    /// The consumer passed its inactive threshold; the stream side deletes it.
    Inactive,
}

#[derive(Debug, Clone)]
struct Waiting {
    reply: String,
    /// Messages still wanted.
    n: i64,
    /// Messages delivered.
    d: i64,
    /// Bytes still allowed (0: no limit).
    b: i64,
    expires_ns: Option<i64>,
    hb: Duration,
    hb_next_ns: Option<i64>,
    no_wait: bool,
    /// The priority group fields of a JSON request (the pin id once pinned).
    priority: Option<PriorityRequest>,
}

impl Waiting {
    /// Its place in a `prioritized` queue: lower first; a request without
    /// priority fields last (nats-server uses `math.MaxInt32`).
    fn rank(&self) -> i64 {
        self.priority
            .as_ref()
            .map_or(i64::from(i32::MAX), |p| p.priority)
    }

    fn pin_id(&self) -> &str {
        self.priority.as_ref().map_or("", |p| p.id.as_str())
    }
}

/// The client a `pinned_client` consumer delivers to.
#[derive(Debug, Clone)]
struct Pin {
    id: String,
    ts_ns: i64,
}

/// Where a candidate message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Redelivery,
    SkipList,
    Fresh,
}

enum Next {
    Msg(SourceMsg, u64, Origin),
    /// max_ack_pending reached.
    Blocked,
    Eof,
}

struct FlowControl {
    pbytes: i64,
    maxpb: i64,
    limit: i64,
    /// Outstanding request reply subject.
    id: Option<String>,
    size: i64,
    counter: u64,
}

/// One JetStream consumer. See the module docs for the drain rule.
pub struct Consumer {
    stream: String,
    name: String,
    cfg: ConsumerConfig,
    retention: Retention,
    domain: String,
    filters: Vec<String>,
    epoch: Instant,
    epoch_ns: i64,
    created_ns: i64,
    /// Next stream sequence to look at.
    sseq: u64,
    /// Next consumer sequence to assign.
    dseq: u64,
    /// Ack floor, consumer sequence.
    adflr: u64,
    /// Ack floor, stream sequence.
    asflr: u64,
    /// Cached count of matching messages at or after `sseq`.
    npc: i64,
    pending: BTreeMap<u64, Pending>,
    /// Redeliveries per stream sequence.
    rdc: BTreeMap<u64, u64>,
    rdq: VecDeque<u64>,
    rdq_set: BTreeSet<u64>,
    /// deliver last_per_subject start list and the sequence to resume at.
    lss: VecDeque<u64>,
    lss_resume: u64,
    waiting: VecDeque<Waiting>,
    /// Pull requests ever queued (see [`Consumer::requests_queued`]).
    requests_queued: u64,
    max_waiting: usize,
    /// Last pull activity, for the inactive threshold.
    waiting_last_ns: i64,
    /// Push: someone subscribes on the deliver subject.
    active: bool,
    /// Push: when interest went away (for the inactive threshold).
    inactive_since_ns: Option<i64>,
    inactive_sent: bool,
    ptmr_ns: Option<i64>,
    hb_next_ns: Option<i64>,
    fc: Option<FlowControl>,
    replay: bool,
    replay_last_seq: u64,
    replay_lts: i64,
    replay_hold_ns: Option<i64>,
    rate_next_ns: i64,
    /// A push pump stopped at [`PUSH_CHUNK`] with more to send: carry on
    /// at this time (the next turn of the stage).
    push_more_ns: Option<i64>,
    /// Running share for `sample_freq`.
    sample_acc: i64,
    ldt_ns: Option<i64>,
    lat_ns: Option<i64>,
    /// `pause_until` as ns (saturated for times outside i64).
    pause_ns: Option<i64>,
    /// When the pause ends, while it is ahead (nats-server's unpause timer).
    unpause_ns: Option<i64>,
    /// `pinned_client`: the current pin and when it lapses without a request.
    pin: Option<Pin>,
    pin_timer_ns: Option<i64>,
    /// Pin ids are this prefix and a counter (see [`Consumer::set_ids`]).
    pin_prefix: String,
    pins: u64,
    /// The account advisories name.
    account: String,
    out: VecDeque<Output>,
    dirty: bool,
    closed: bool,
}

impl Consumer {
    /// Create a consumer (`state: None`) or bring one back from persisted
    /// state. `config` is applied defaults to and validated against the stream
    /// and limits. `now`/`now_wall_ns` anchor the consumer's clock (creation
    /// time is `now_wall_ns` unless [`Consumer::set_created`] says otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: &str,
        name: &str,
        mut config: ConsumerConfig,
        facts: &StreamFacts,
        limits: &ServerLimits,
        now: Instant,
        now_wall_ns: i64,
        state: Option<ConsumerState>,
        src: &dyn MsgSource,
    ) -> Result<Self, ApiError> {
        config.set_defaults(facts, limits);
        config.validate(facts, limits)?;
        let fc = config.flow_control.then(|| FlowControl {
            pbytes: 0,
            maxpb: (FLOW_CONTROL_MAX_PENDING_BYTES / 16).max(1),
            limit: FLOW_CONTROL_MAX_PENDING_BYTES,
            id: None,
            size: 0,
            counter: 0,
        });
        let replay = config.replay_policy == ReplayPolicy::Original;
        let hb_next_ns = (!config.idle_heartbeat.is_zero())
            .then(|| now_wall_ns.saturating_add(dur_ns(config.idle_heartbeat)));
        let mut c = Consumer {
            stream: stream.to_string(),
            name: name.to_string(),
            filters: config.filters(),
            max_waiting: usize::try_from(config.max_waiting.max(0)).unwrap_or(usize::MAX),
            cfg: config,
            retention: facts.retention,
            domain: String::new(),
            epoch: now,
            epoch_ns: now_wall_ns,
            created_ns: now_wall_ns,
            sseq: 1,
            dseq: 1,
            adflr: 0,
            asflr: 0,
            npc: 0,
            pending: BTreeMap::new(),
            rdc: BTreeMap::new(),
            rdq: VecDeque::new(),
            rdq_set: BTreeSet::new(),
            lss: VecDeque::new(),
            lss_resume: 0,
            waiting: VecDeque::new(),
            requests_queued: 0,
            waiting_last_ns: now_wall_ns,
            active: false,
            inactive_since_ns: Some(now_wall_ns),
            inactive_sent: false,
            ptmr_ns: None,
            hb_next_ns,
            fc,
            replay,
            replay_last_seq: 0,
            replay_lts: 0,
            replay_hold_ns: None,
            rate_next_ns: 0,
            push_more_ns: None,
            sample_acc: 0,
            ldt_ns: None,
            lat_ns: None,
            pause_ns: None,
            unpause_ns: None,
            pin: None,
            pin_timer_ns: None,
            pin_prefix: String::new(),
            pins: 0,
            account: String::new(),
            out: VecDeque::new(),
            dirty: false,
            closed: false,
        };
        match state {
            Some(st) => c.apply_state(st, now_wall_ns, src),
            None => {
                c.select_start(src, facts);
                c.dirty = true;
            }
        }
        if c.replay {
            c.replay_last_seq = src.state().last_seq;
        }
        c.npc = c.calc_num_pending(src) as i64;
        c.pause_ns = c.cfg.pause_until.as_deref().and_then(parse_rfc3339_ns);
        c.unpause_ns = c.pause_ns.filter(|&p| p > now_wall_ns);
        c.flush_dirty();
        Ok(c)
    }

    /// The JetStream domain advisories carry.
    pub fn set_domain(&mut self, domain: &str) {
        self.domain = domain.to_string();
    }

    /// The account the pin advisories name, and a unique prefix for the
    /// `Nats-Pin-Id`s this consumer hands out (nats-server draws a nuid per
    /// pin; a prefix the caller draws once and a counter keep the machine
    /// deterministic).
    pub fn set_ids(&mut self, account: &str, pin_prefix: &str) {
        self.account = account.to_string();
        self.pin_prefix = pin_prefix.to_string();
    }

    /// The creation time reported by info (ns since the Unix epoch), for a
    /// consumer brought back from disk.
    pub fn set_created(&mut self, created_ns: i64) {
        self.created_ns = created_ns;
    }

    /// Stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Consumer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The effective config.
    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    /// Messages not yet delivered as the consumer counts them between recounts
    /// (what the ack reply's `pending` token carries); [`Consumer::info`]
    /// recounts from the stream.
    pub fn cached_num_pending(&self) -> u64 {
        self.npc.max(0) as u64
    }

    /// The reply subjects of the queued pull requests, for the stream side
    /// to check that someone still listens on them (see
    /// [`Input::NextInterestGone`]).
    pub fn waiting_replies(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(|w| w.reply.as_str())
    }

    /// How many pull requests were ever queued: while it stays the same,
    /// [`Consumer::waiting_replies`] holds no request the stream side has
    /// not seen.
    pub fn requests_queued(&self) -> u64 {
        self.requests_queued
    }

    /// Has [`Consumer::stop`] been called?
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The subject to receive acks on: `$JS.ACK.<stream>.<consumer>.>`
    /// covers the v1 replies this consumer puts on its deliveries. (The v2
    /// form with domain and account hash tokens is parsed too when a caller
    /// routes one here.)
    pub fn ack_subject(&self) -> String {
        format!("$JS.ACK.{}.{}.>", self.stream, self.name)
    }

    fn now_ns(&self, now: Instant) -> i64 {
        match now.checked_duration_since(self.epoch) {
            Some(d) => self.epoch_ns.saturating_add(dur_ns(d)),
            None => self
                .epoch_ns
                .saturating_sub(dur_ns(self.epoch.duration_since(now))),
        }
    }

    fn instant(&self, ns: i64) -> Instant {
        if ns >= self.epoch_ns {
            self.epoch + Duration::from_nanos((ns - self.epoch_ns) as u64)
        } else {
            self.epoch
        }
    }

    // ------------------------------------------------------------------
    // Starting point and state.

    fn select_start(&mut self, src: &dyn MsgSource, facts: &StreamFacts) {
        let st = src.state();
        let mut sseq = if self.cfg.opt_start_seq > 0 {
            self.cfg.opt_start_seq
        } else {
            match self.cfg.deliver_policy {
                DeliverPolicy::All | DeliverPolicy::ByStartSequence => st.first_seq,
                DeliverPolicy::Last => {
                    if self.filters.is_empty() {
                        st.last_seq
                    } else {
                        self.filters
                            .iter()
                            .filter_map(|f| src.load_last_msg(f).map(|m| m.seq))
                            .max()
                            .unwrap_or(0)
                    }
                }
                DeliverPolicy::LastPerSubject if facts.max_msgs_per_subject == 1 => st.first_seq,
                DeliverPolicy::LastPerSubject => {
                    let mut seqs: Vec<u64> = if self.filters.is_empty() {
                        src.last_seqs("")
                    } else {
                        self.filters.iter().flat_map(|f| src.last_seqs(f)).collect()
                    };
                    seqs.sort_unstable();
                    seqs.dedup();
                    self.lss_resume = st.last_seq;
                    let first = seqs.first().copied().unwrap_or(st.last_seq);
                    self.lss = seqs.into();
                    first
                }
                DeliverPolicy::ByStartTime => {
                    let t = self
                        .cfg
                        .opt_start_time
                        .as_deref()
                        .and_then(parse_rfc3339_ns)
                        .unwrap_or(0);
                    src.seq_for_time(t)
                }
                DeliverPolicy::New => st.last_seq + 1,
            }
        };
        if st.first_seq == 0 {
            sseq = 1;
        } else if sseq < st.first_seq {
            sseq = st.first_seq;
        } else if sseq > st.last_seq {
            sseq = st.last_seq + 1;
        }
        self.sseq = sseq;
        self.dseq = 1;
        self.adflr = 0;
        self.asflr = sseq - 1;
    }

    fn apply_state(&mut self, st: ConsumerState, now_ns: i64, src: &dyn MsgSource) {
        self.sseq = st.delivered.stream_seq + 1;
        self.dseq = st.delivered.consumer_seq + 1;
        self.adflr = st.ack_floor.consumer_seq;
        self.asflr = st.ack_floor.stream_seq;
        self.pending = st.pending;
        self.rdc = st.redelivered;
        // nats-server's checkRedelivered: counts below the floor or past the stream are stale.
        let last = src.state().last_seq;
        let asflr = self.asflr;
        self.rdc.retain(|&s, _| s > asflr && s <= last);
        if !self.pending.is_empty() {
            let delay = self.cfg.ack_wait.min(RESTORE_CHECK_DELAY) + ACK_WAIT_DELAY;
            self.ptmr_ns = Some(now_ns + dur_ns(delay));
        }
    }

    /// What to persist: last delivery, ack floor, pending deliveries and
    /// redelivery counts.
    pub fn state(&self) -> ConsumerState {
        ConsumerState {
            delivered: SequencePair {
                consumer_seq: self.dseq - 1,
                stream_seq: self.sseq - 1,
            },
            ack_floor: SequencePair {
                consumer_seq: self.adflr,
                stream_seq: self.asflr,
            },
            pending: self.pending.clone(),
            redelivered: self.rdc.clone(),
        }
    }

    /// `CONSUMER.INFO`, numbers as nats-server reports them. `num_pending` is
    /// recounted from the stream here (nats-server's `checkNumPending`).
    pub fn info(&mut self, now: Instant, src: &dyn MsgSource) -> ConsumerInfo {
        let now_ns = self.now_ns(now);
        self.npc = self.calc_num_pending(src) as i64;
        let num_waiting = self
            .waiting
            .iter()
            .filter(|w| w.expires_ns.is_none_or(|e| now_ns <= e))
            .count() as u64;
        let remaining = self.pause_remaining_ns(now_ns);
        ConsumerInfo {
            stream_name: self.stream.clone(),
            name: self.name.clone(),
            created: ns_rfc3339(self.created_ns),
            config: self.cfg.clone(),
            delivered: SequenceInfo {
                consumer_seq: self.dseq - 1,
                stream_seq: self.sseq - 1,
                last_active: self.ldt_ns.map(ns_rfc3339),
            },
            ack_floor: SequenceInfo {
                consumer_seq: self.adflr,
                stream_seq: self.asflr,
                last_active: self.lat_ns.map(ns_rfc3339),
            },
            num_ack_pending: self.pending.len() as u64,
            num_redelivered: self.rdc.len() as u64,
            num_waiting: if self.cfg.is_push() { 0 } else { num_waiting },
            num_pending: self.npc.max(0) as u64,
            cluster: None,
            push_bound: self.cfg.is_push() && self.active,
            paused: remaining > 0,
            pause_remaining: remaining,
            ts: ns_rfc3339(now_ns),
            priority_groups: self
                .cfg
                .priority_groups
                .first()
                .map(|g| PriorityGroupState {
                    group: g.clone(),
                    pinned_client_id: self.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                    pinned_ts: self
                        .pin
                        .as_ref()
                        .map_or_else(|| GO_ZERO_TIME.to_string(), |p| ns_rfc3339(p.ts_ns)),
                })
                .into_iter()
                .collect(),
        }
    }

    /// Does this consumer still need `seq` (interest retention asks every
    /// consumer before removing a message; nats-server `needAck`)?
    pub fn needs_ack(&self, seq: u64, subject: &str) -> bool {
        if !self.matches(subject) {
            return false;
        }
        match self.cfg.ack_policy {
            AckPolicy::None | AckPolicy::All => seq > self.asflr,
            AckPolicy::Explicit => {
                seq > self.asflr && (seq >= self.sseq || self.pending.contains_key(&seq))
            }
        }
    }

    /// Replace the config (nats-server's update rules). `deliver_bound`: the
    /// current deliver subject has a subscriber.
    pub fn update_config(
        &mut self,
        now: Instant,
        mut config: ConsumerConfig,
        facts: &StreamFacts,
        limits: &ServerLimits,
        deliver_bound: bool,
        src: &dyn MsgSource,
    ) -> Result<(), ApiError> {
        config.set_defaults(facts, limits);
        config.validate(facts, limits)?;
        self.cfg.check_update(&config, deliver_bound)?;
        let filters_changed = config.filters() != self.filters;
        if config.deliver_subject != self.cfg.deliver_subject {
            self.active = false;
        }
        let pause = config.pause_until.clone();
        config.pause_until.clone_from(&self.cfg.pause_until);
        self.cfg = config;
        self.filters = self.cfg.filters();
        if filters_changed {
            self.npc = self.calc_num_pending(src) as i64;
        }
        self.dirty = true;
        let now_ns = self.now_ns(now);
        self.set_pause(now_ns, pause);
        self.pump(now_ns, src);
        self.flush_dirty();
        Ok(())
    }

    /// `$JS.API.CONSUMER.PAUSE`: pause until `until` (RFC 3339), or resume
    /// (`None`). A change publishes the pause advisory; delivery resumes at
    /// once when the time is not ahead. The caller writes the changed config.
    pub fn pause(&mut self, now: Instant, until: Option<String>, src: &dyn MsgSource) {
        if self.closed {
            return;
        }
        let now_ns = self.now_ns(now);
        let until = until.map(|u| match parse_rfc3339_ns(&u) {
            Some(ns) if ns != i64::MIN && ns != i64::MAX => ns_rfc3339(ns),
            _ => u,
        });
        self.set_pause(now_ns, until);
        // nats-server updates the version metadata with the pause.
        self.cfg.set_static_metadata();
        self.pump(now_ns, src);
        self.flush_dirty();
    }

    /// A `CONSUMER.CREATE` request for this consumer succeeded: a paused
    /// consumer publishes its pause advisory again (nats-server does so after
    /// every create or update answer).
    pub fn created_request(&mut self, now: Instant) {
        let now_ns = self.now_ns(now);
        if !self.closed && self.pause_remaining_ns(now_ns) > 0 {
            self.pause_advisory(now_ns);
        }
    }

    /// `$JS.API.CONSUMER.UNPIN`: release the pin (the caller has checked that
    /// `group` is one of the consumer's). The unpinned advisory goes out even
    /// when nobody was pinned, as nats-server sends it; waiting requests that
    /// still carry the old pin get `423`, the next one without a pin is pinned.
    pub fn unpin(&mut self, now: Instant, group: &str, src: &dyn MsgSource) {
        if self.closed {
            return;
        }
        let now_ns = self.now_ns(now);
        self.pin = None;
        self.pin_timer_ns = None;
        self.pin_advisory(now_ns, AdvisoryKind::Unpinned, group, "admin");
        self.pump(now_ns, src);
        self.flush_dirty();
    }

    fn pin_advisory(&mut self, now_ns: i64, kind: AdvisoryKind, group: &str, reason: &str) {
        let mut a = self.new_advisory(now_ns, kind);
        a.group = group.to_string();
        a.reason = reason.to_string();
        a.pin_id = self.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default();
        self.out.push_back(Output::Advisory(a));
    }

    /// What is left of the pause at `now` (zero: not paused).
    pub fn pause_remaining(&self, now: Instant) -> Duration {
        Duration::from_nanos(self.pause_remaining_ns(self.now_ns(now)) as u64)
    }

    /// What is left of the pause at `now_ns` (0: not paused).
    fn pause_remaining_ns(&self, now_ns: i64) -> i64 {
        self.pause_ns.map_or(0, |p| p.saturating_sub(now_ns).max(0))
    }

    /// Apply a new `pause_until`; when it changed, the advisory (nats-server
    /// `updateConfig` then `sendPauseAdvisoryLocked`).
    fn set_pause(&mut self, now_ns: i64, until: Option<String>) {
        let ns = until.as_deref().and_then(parse_rfc3339_ns);
        let changed = ns != self.pause_ns;
        self.cfg.pause_until = until;
        self.pause_ns = ns;
        self.unpause_ns = ns.filter(|&p| p > now_ns);
        if changed {
            self.pause_advisory(now_ns);
        }
    }

    fn pause_advisory(&mut self, now_ns: i64) {
        let mut a = self.new_advisory(now_ns, AdvisoryKind::Pause);
        a.paused = self.pause_remaining_ns(now_ns) > 0;
        a.pause_until.clone_from(&self.cfg.pause_until);
        self.out.push_back(Output::Advisory(a));
    }

    /// The consumer is being deleted: waiting pull requests get
    /// `409 Consumer Deleted`; nothing more is delivered.
    pub fn stop(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for w in std::mem::take(&mut self.waiting) {
            self.status(w.reply, wire::status(409, "Consumer Deleted"));
        }
    }

    /// The server is shutting down: each waiting pull request gets `409
    /// Server Shutdown` with what it still wanted (nats-server's
    /// `signalPullConsumers`), so its client asks again elsewhere instead
    /// of waiting for an expiry that will not come.
    pub fn shutdown(&mut self) {
        for w in std::mem::take(&mut self.waiting) {
            let hdr = wire::status_pending(409, "Server Shutdown", w.n, w.b);
            self.status(w.reply, hdr);
        }
    }

    // ------------------------------------------------------------------
    // The sans-IO surface.

    /// Feed one input.
    pub fn handle_input(&mut self, now: Instant, input: Input, src: &dyn MsgSource) {
        if self.closed {
            return;
        }
        let now_ns = self.now_ns(now);
        match input {
            Input::Stored { seq, subject } => {
                let counted = if self.lss.is_empty() {
                    seq >= self.sseq
                } else {
                    seq > self.lss_resume
                };
                if counted && self.matches(&subject) {
                    self.npc += 1;
                }
            }
            Input::Removed { seq, subject } => self.removed(now_ns, seq, &subject, src),
            Input::Purged { seq, wider } => self.purged(seq, wider, src),
            Input::Ack { info, reply, body } => self.ack(now_ns, info, reply, &body),
            Input::Next { reply, body } => self.next_request(now_ns, reply, &body),
            Input::NextInterestGone { reply } => self.waiting.retain(|w| w.reply != reply),
            Input::FlowControlReply { subject } => self.flow_control_reply(&subject),
            Input::Interest(on) => self.interest(now_ns, on),
        }
        self.pump(now_ns, src);
        self.flush_dirty();
    }

    /// Time passed: redeliveries, pull request expiry and heartbeats, push
    /// heartbeats, replay and rate pauses, inactivity.
    pub fn handle_timeout(&mut self, now: Instant, src: &dyn MsgSource) {
        if self.closed {
            return;
        }
        let now_ns = self.now_ns(now);
        if self.ptmr_ns.is_some_and(|t| now_ns >= t) {
            self.check_pending(now_ns, src);
        }
        self.process_waiting(now_ns, false);
        if let Some(t) = self.hb_next_ns {
            if now_ns >= t {
                if self.cfg.is_push() && self.active {
                    let stalled = self.fc.as_ref().and_then(|f| f.id.clone());
                    let hdr =
                        wire::idle_heartbeat(self.dseq - 1, self.sseq - 1, stalled.as_deref());
                    self.status(self.cfg.deliver_subject.clone(), hdr);
                }
                self.hb_next_ns = Some(now_ns + dur_ns(self.cfg.idle_heartbeat));
            }
        }
        if self.pin_timer_ns.is_some_and(|t| now_ns >= t) {
            // No request carried the pin for priority_timeout.
            self.pin_timer_ns = None;
            self.pin = None;
            let group = self
                .cfg
                .priority_groups
                .first()
                .cloned()
                .unwrap_or_default();
            self.pin_advisory(now_ns, AdvisoryKind::Unpinned, &group, "timeout");
        }
        if self.unpause_ns.is_some_and(|t| now_ns >= t) {
            // nats-server's unpause timer: the advisory, then delivery.
            self.unpause_ns = None;
            self.pause_advisory(now_ns);
        }
        if self.replay_hold_ns.is_some_and(|t| now_ns >= t) {
            self.replay_hold_ns = None;
            self.pump_replay_released(now_ns, src);
        }
        self.pump(now_ns, src);
        if !self.inactive_sent && self.inactive_at().is_some_and(|t| now_ns >= t) {
            self.inactive_sent = true;
            self.out.push_back(Output::Inactive);
        }
        self.flush_dirty();
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Consumer::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t: Option<i64> = None;
        let mut at = |x: Option<i64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        at(self.ptmr_ns);
        for w in &self.waiting {
            at(w.expires_ns);
            at(w.hb_next_ns);
        }
        if self.cfg.is_push() {
            at(self.hb_next_ns);
        }
        at(self.replay_hold_ns);
        at(self.push_more_ns);
        at(self.unpause_ns);
        at(self.pin_timer_ns);
        if self.rate_next_ns > 0 && self.has_work() {
            at(Some(self.rate_next_ns));
        }
        if !self.inactive_sent {
            at(self.inactive_at());
        }
        t.map(|ns| self.instant(ns))
    }

    fn has_work(&self) -> bool {
        self.npc > 0 || !self.rdq.is_empty() || !self.lss.is_empty()
    }

    fn inactive_at(&self) -> Option<i64> {
        let th = self.cfg.inactive_threshold;
        if th.is_zero() {
            return None;
        }
        if self.cfg.is_push() {
            if self.active {
                return None;
            }
            self.inactive_since_ns.map(|s| s + dur_ns(th))
        } else {
            if !self.waiting.is_empty() {
                return None;
            }
            Some(self.waiting_last_ns + dur_ns(th))
        }
    }

    // ------------------------------------------------------------------
    // Helpers.

    fn matches(&self, subject: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| crate::subject::subject_matches(f.as_bytes(), subject.as_bytes()))
    }

    /// Count what is left to deliver. While the `last_per_subject` start
    /// list is being delivered that is the list plus everything stored after
    /// it was taken; otherwise every matching message from `sseq`.
    fn calc_num_pending(&self, src: &dyn MsgSource) -> u64 {
        let (base, start) = if self.lss.is_empty() {
            (0, self.sseq)
        } else {
            (self.lss.len() as u64, self.lss_resume + 1)
        };
        let rest: u64 = if self.filters.is_empty() {
            src.num_pending(start, "", false)
        } else {
            self.filters
                .iter()
                .map(|f| src.num_pending(start, f, false))
                .sum()
        };
        base + rest
    }

    fn status(&mut self, to: String, hdr: Vec<u8>) {
        self.out.push_back(Output::Status {
            to,
            reply: None,
            hdr: Bytes::from(hdr),
        });
    }

    fn advisory(&mut self, now_ns: i64, kind: AdvisoryKind, sseq: u64, dseq: u64, dc: u64) {
        self.advisory_with_reason(now_ns, kind, sseq, dseq, dc, String::new());
    }

    fn advisory_with_reason(
        &mut self,
        now_ns: i64,
        kind: AdvisoryKind,
        sseq: u64,
        dseq: u64,
        dc: u64,
        reason: String,
    ) {
        let mut a = self.new_advisory(now_ns, kind);
        a.stream_seq = sseq;
        a.consumer_seq = dseq;
        a.deliveries = dc;
        a.reason = reason;
        self.out.push_back(Output::Advisory(a));
    }

    /// An advisory of this consumer with only its names, domain and time set.
    fn new_advisory(&self, now_ns: i64, kind: AdvisoryKind) -> Advisory {
        Advisory {
            kind,
            stream: self.stream.clone(),
            consumer: self.name.clone(),
            stream_seq: 0,
            consumer_seq: 0,
            deliveries: 0,
            reason: String::new(),
            ack_time_ns: 0,
            domain: self.domain.clone(),
            time_ns: now_ns,
            paused: false,
            pause_until: None,
            group: String::new(),
            pin_id: String::new(),
            account: self.account.clone(),
        }
    }

    /// The ack sampling percentage of `sample_freq` (`"NN%"` or `"NN"`).
    fn sample_percent(&self) -> i64 {
        self.cfg
            .sample_freq
            .trim_end_matches('%')
            .parse()
            .unwrap_or(0)
    }

    /// Publish an ack metric for a sampled explicit ack (nats-server
    /// `sampleAck`). nats-server samples at random; this keeps an exact
    /// running share of `sample_freq` percent so the machine stays
    /// deterministic.
    fn sample_ack(&mut self, now_ns: i64, sseq: u64, dseq: u64, dc: u64, delivered_ns: i64) {
        let pct = self.sample_percent();
        if pct <= 0 {
            return;
        }
        self.sample_acc += pct.min(100);
        if self.sample_acc < 100 {
            return;
        }
        self.sample_acc -= 100;
        let mut a = self.new_advisory(now_ns, AdvisoryKind::AckMetric);
        a.stream_seq = sseq;
        a.consumer_seq = dseq;
        a.deliveries = dc;
        a.ack_time_ns = now_ns - delivered_ns;
        self.out.push_back(Output::Advisory(a));
    }

    fn flush_dirty(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.out.push_back(Output::StateChanged);
        }
    }

    fn deliveries(&self, seq: u64) -> u64 {
        1 + self.rdc.get(&seq).copied().unwrap_or(0)
    }

    fn add_rdq(&mut self, seq: u64) {
        if self.rdq_set.insert(seq) {
            self.rdq.push_back(seq);
        }
    }

    fn remove_rdq(&mut self, seq: u64) {
        if self.rdq_set.remove(&seq) {
            self.rdq.retain(|&s| s != seq);
        }
    }

    fn max_ack_pending_reached(&self) -> bool {
        self.cfg.ack_policy != AckPolicy::None
            && self.cfg.max_ack_pending > 0
            && self.pending.len() as i64 >= self.cfg.max_ack_pending
    }

    /// Move the ack floor after deliveries left pending: just below the
    /// oldest delivery still pending, or to the last delivery when none is.
    /// nats-server's `moveAckFloor` does this step by step from an ack at the
    /// floor; computing it from the oldest pending gives the same floor and
    /// stays right after an `AckAll` moved the consumer floor past a
    /// redelivery. Floors never go down.
    fn move_ack_floor(&mut self) {
        let (d, s) = match self.pending.iter().next() {
            Some((&s, p)) => (p.sequence.saturating_sub(1), s - 1),
            None => (self.dseq - 1, self.sseq - 1),
        };
        self.adflr = self.adflr.max(d);
        self.asflr = self.asflr.max(s);
    }

    fn acked_out(&mut self, first: u64, last: u64) {
        if self.retention != Retention::Limits && first <= last {
            self.out.push_back(Output::Acked { first, last });
        }
    }

    // ------------------------------------------------------------------
    // Stream events.

    fn removed(&mut self, now_ns: i64, seq: u64, subject: &str, src: &dyn MsgSource) {
        let counted = if self.lss.is_empty() {
            seq >= self.sseq
        } else {
            seq > self.lss_resume || self.lss.contains(&seq)
        };
        if counted && self.matches(subject) {
            self.npc -= 1;
        }
        if let Some(p) = self.pending.get(&seq).copied() {
            let dc = self.deliveries(seq);
            self.term(
                now_ns,
                seq,
                p.sequence,
                dc,
                "Unacknowledged message was deleted".into(),
            );
            // An ack-all below its floor acks nothing: the message is gone all the same.
            if self.pending.remove(&seq).is_some() {
                self.rdc.remove(&seq);
                self.remove_rdq(seq);
                self.move_ack_floor();
                self.dirty = true;
            }
        }
        if let Some(i) = self.lss.iter().position(|&s| s == seq) {
            self.lss.remove(i);
            if self.lss.is_empty() {
                self.sseq = self.lss_resume + 1;
                self.npc = self.calc_num_pending(src) as i64;
            }
        }
    }

    fn purged(&mut self, seq: u64, wider: bool, src: &dyn MsgSource) {
        let seq = if seq == 0 && !wider {
            src.state().last_seq + 1
        } else {
            seq
        };
        if self.sseq < seq {
            self.sseq = seq;
        }
        if !self.lss.is_empty() {
            self.lss.retain(|&s| s >= seq);
            if self.lss.is_empty() {
                self.sseq = self.sseq.max(self.lss_resume + 1);
            }
        }
        let mut gone: Vec<(u64, u64)> = Vec::new();
        if self.asflr < seq {
            self.asflr = seq.saturating_sub(1);
            let asflr = self.asflr;
            gone.extend(self.pending.range(..=asflr).map(|(&s, p)| (s, p.sequence)));
        }
        if wider {
            // The purge was narrower than our filter: check each delivery.
            let asflr = self.asflr;
            gone.extend(
                self.pending
                    .range(asflr + 1..)
                    .filter(|(&s, _)| src.load_msg(s).is_none())
                    .map(|(&s, p)| (s, p.sequence)),
            );
        }
        for (s, d) in gone {
            if d > self.adflr {
                self.adflr = d;
                if self.adflr > self.dseq {
                    self.dseq = self.adflr;
                }
            }
            self.pending.remove(&s);
            self.rdc.remove(&s);
        }
        if self.pending.is_empty() {
            self.rdc.clear();
            self.adflr = self.dseq - 1;
            self.asflr = self.sseq - 1;
            self.ptmr_ns = None;
        }
        let sseq = self.sseq;
        let rdq: Vec<u64> = self.rdq.iter().copied().filter(|&s| s >= sseq).collect();
        self.rdq = rdq.into();
        self.rdq_set = self.rdq.iter().copied().collect();
        self.npc = self.calc_num_pending(src) as i64;
        self.dirty = true;
    }

    fn interest(&mut self, now_ns: i64, on: bool) {
        if !self.cfg.is_push() {
            return;
        }
        self.active = on;
        if on {
            self.inactive_since_ns = None;
            self.inactive_sent = false;
        } else if self.inactive_since_ns.is_none() {
            self.inactive_since_ns = Some(now_ns);
        }
    }

    // ------------------------------------------------------------------
    // Acks.

    fn ack(&mut self, now_ns: i64, info: Option<AckReply>, reply: Option<String>, body: &[u8]) {
        let r = info.unwrap_or_default();
        let mut send_reply = info.is_some();
        match parse_ack(body) {
            AckKind::Ack => {
                self.sample(now_ns, &r);
                if !self.ack_msg(now_ns, r.stream_seq, r.consumer_seq) {
                    send_reply = false;
                }
            }
            AckKind::Next(req) => {
                self.sample(now_ns, &r);
                self.ack_msg(now_ns, r.stream_seq, r.consumer_seq);
                if let Some(reply) = reply.clone() {
                    self.next_request(now_ns, reply, &req);
                }
                send_reply = false;
            }
            AckKind::Nak(delay) => self.nak(now_ns, r.stream_seq, r.consumer_seq, delay),
            AckKind::Progress => {
                if let Some(p) = self.pending.get_mut(&r.stream_seq) {
                    p.ts = now_ns;
                    self.ldt_ns = Some(now_ns);
                    self.dirty = true;
                }
            }
            AckKind::Term(reason) => {
                if !self.term(now_ns, r.stream_seq, r.consumer_seq, r.delivered, reason) {
                    send_reply = false;
                }
            }
            AckKind::Unknown => {}
        }
        if let Some(reply) = reply.filter(|_| send_reply) {
            self.out.push_back(Output::AckReply(reply));
        }
    }

    /// Ack sampling applies to explicit acks of pending deliveries.
    fn sample(&mut self, now_ns: i64, r: &AckReply) {
        if self.cfg.ack_policy != AckPolicy::Explicit || r.stream_seq >= self.sseq {
            return;
        }
        if let Some(p) = self.pending.get(&r.stream_seq).copied() {
            self.sample_ack(now_ns, r.stream_seq, r.consumer_seq, r.delivered, p.ts);
        }
    }

    /// Acknowledge `(sseq, dseq)`. Returns whether the ack was processed (a
    /// double ack is then answered), as nats-server's `processAckMsg`.
    fn ack_msg(&mut self, now_ns: i64, sseq: u64, dseq: u64) -> bool {
        let in_place = self.retention != Retention::Limits;
        // Only sequences this consumer delivered can be acked.
        if sseq == 0 || sseq >= self.sseq {
            return in_place;
        }
        match self.cfg.ack_policy {
            AckPolicy::Explicit => {
                if self.pending.remove(&sseq).is_some() {
                    self.move_ack_floor();
                    self.acked_out(sseq, sseq);
                }
                self.rdc.remove(&sseq);
                self.remove_rdq(sseq);
            }
            AckPolicy::All => {
                if dseq <= self.adflr || sseq <= self.asflr || dseq >= self.dseq {
                    return in_place;
                }
                let first = self.asflr + 1;
                self.adflr = dseq;
                self.asflr = sseq;
                let gone: Vec<u64> = self.pending.range(..=sseq).map(|(&s, _)| s).collect();
                for s in gone {
                    self.pending.remove(&s);
                    self.rdc.remove(&s);
                    self.remove_rdq(s);
                }
                self.acked_out(first, sseq);
            }
            AckPolicy::None => return in_place,
        }
        if self.pending.is_empty() {
            self.ptmr_ns = None;
        }
        self.lat_ns = Some(now_ns);
        self.dirty = true;
        true
    }

    fn nak(&mut self, now_ns: i64, sseq: u64, dseq: u64, delay: Option<Duration>) {
        if dseq <= self.adflr || dseq >= self.dseq {
            return;
        }
        let Some(p) = self.pending.get(&sseq).copied() else {
            return;
        };
        let dc = self.deliveries(sseq);
        self.advisory(now_ns, AdvisoryKind::Naked, sseq, dseq, dc);
        if let Some(d) = delay {
            self.remove_rdq(sseq);
            // nats-server: the delivery looks as if it was made at now - ack_wait + delay.
            let ts = now_ns - dur_ns(self.cfg.ack_wait) + dur_ns(d);
            self.pending.insert(
                sseq,
                Pending {
                    sequence: p.sequence,
                    ts,
                },
            );
            self.dirty = true;
            let soon = now_ns + dur_ns(Duration::from_millis(10));
            self.ptmr_ns = Some(self.ptmr_ns.map_or(soon, |t| t.min(soon)));
            return;
        }
        self.add_rdq(sseq);
    }

    /// `+TERM` (also a deleted pending message): ack it, then the advisory.
    fn term(&mut self, now_ns: i64, sseq: u64, dseq: u64, dc: u64, reason: String) -> bool {
        let was_pending = self.pending.contains_key(&sseq);
        let processed = self.ack_msg(now_ns, sseq, dseq);
        if sseq > 0
            && sseq < self.sseq
            && (was_pending || self.cfg.ack_policy != AckPolicy::Explicit)
        {
            self.advisory_with_reason(now_ns, AdvisoryKind::Terminated, sseq, dseq, dc, reason);
        }
        processed
    }

    // ------------------------------------------------------------------
    // Redelivery.

    /// nats-server's `checkPending`: find deliveries whose ack wait (or
    /// backoff step) ran out, queue them for redelivery or retire them at
    /// `max_deliver`, and set the next check.
    fn check_pending(&mut self, now_ns: i64, src: &dyn MsgSource) {
        let first = src.state().first_seq;
        let ttl = dur_ns(self.cfg.ack_wait);
        let backoff = &self.cfg.backoff;
        let mut next = match backoff.last() {
            Some(b) => dur_ns(*b),
            None => ttl + dur_ns(ACK_WAIT_DELAY),
        };
        let mut expired = Vec::new();
        let mut stale = Vec::new();
        for (&seq, p) in &self.pending {
            if seq < first || seq <= self.asflr {
                stale.push(seq);
                continue;
            }
            let elapsed = now_ns - p.ts;
            let mut deadline = ttl;
            if !backoff.is_empty() {
                let dc = self.rdc.get(&seq).copied().unwrap_or(0) as usize;
                let (idx, nidx) = if dc + 1 >= backoff.len() {
                    (backoff.len() - 1, backoff.len() - 1)
                } else {
                    (dc, dc + 1)
                };
                deadline = dur_ns(backoff[idx]);
                next = next.min(dur_ns(backoff[nidx]));
            }
            if elapsed >= deadline {
                if !self.rdq_set.contains(&seq) {
                    expired.push(seq);
                }
            } else if deadline - elapsed < next {
                next = deadline - elapsed;
            }
        }
        // Deliveries of messages the stream no longer has.
        if !stale.is_empty() {
            for seq in stale {
                self.pending.remove(&seq);
                self.rdc.remove(&seq);
                self.remove_rdq(seq);
            }
            self.move_ack_floor();
            self.dirty = true;
        }
        if let Some(&first_expired) = expired.first() {
            let off = now_ns - self.pending[&first_expired].ts;
            for seq in expired {
                let dc = self.deliveries(seq);
                if self.cfg.max_deliver > 0 && dc >= self.cfg.max_deliver as u64 {
                    self.retire(now_ns, seq, dc);
                    continue;
                }
                self.add_rdq(seq);
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.ts += off;
                }
            }
        }
        if self.pending.is_empty() {
            self.ptmr_ns = None;
            self.rdq.clear();
            self.rdq_set.clear();
            self.adflr = self.dseq - 1;
            self.asflr = self.sseq - 1;
        } else {
            self.ptmr_ns = Some(now_ns + next.max(0) + dur_ns(ACK_WAIT_DELAY));
        }
    }

    /// A message reached `max_deliver`: the advisory, and it stops being
    /// pending. Its delivery count stays, as nats-server keeps it: it still
    /// counts in `num_redelivered` (the last delivery was a redelivery).
    fn retire(&mut self, now_ns: i64, seq: u64, dc: u64) {
        self.advisory(now_ns, AdvisoryKind::MaxDeliveries, seq, 0, dc);
        if self.pending.remove(&seq).is_some() {
            self.move_ack_floor();
        }
        self.remove_rdq(seq);
        self.dirty = true;
    }

    // ------------------------------------------------------------------
    // Pull requests.

    fn next_request(&mut self, now_ns: i64, reply: String, body: &[u8]) {
        if self.cfg.is_push() {
            self.status(reply, wire::status(409, "Consumer is push based"));
            return;
        }
        let req = match parse_pull_request(body) {
            Ok(r) => r,
            Err(e) => {
                self.status(reply, wire::status(400, &format!("Bad Request - {e}")));
                return;
            }
        };
        if self.cfg.max_batch > 0 && req.batch > self.cfg.max_batch {
            let text = format!("Exceeded MaxRequestBatch of {}", self.cfg.max_batch);
            self.status(reply, wire::status(409, &text));
            return;
        }
        if let Some(exp) = req.expires {
            if !self.cfg.max_expires.is_zero() && exp > self.cfg.max_expires {
                let text = format!(
                    "Exceeded MaxRequestExpires of {}",
                    go_duration(self.cfg.max_expires)
                );
                self.status(reply, wire::status(409, &text));
                return;
            }
        }
        if req.max_bytes > 0 && self.cfg.max_bytes > 0 && req.max_bytes > self.cfg.max_bytes {
            let text = format!("Exceeded MaxRequestMaxBytes of {}", self.cfg.max_bytes);
            self.status(reply, wire::status(409, &text));
            return;
        }
        if let Some(p) = &req.priority {
            if let Err((code, text)) = self.check_priority(now_ns, p) {
                self.status(reply, wire::status(code, text));
                return;
            }
        }
        if self.waiting.len() >= self.max_waiting {
            self.process_waiting(now_ns, false);
        }
        if req.no_wait {
            let msgs_pending = self.npc.max(0) as u64 + self.rdq.len() as u64;
            if msgs_pending == 0 && req.expires.is_none() {
                self.waiting_last_ns = now_ns;
                self.status(reply, wire::status(404, "No Messages"));
                return;
            }
            if msgs_pending > 0 {
                let batch_pending: i64 = self.waiting.iter().map(|w| w.n).sum();
                if (msgs_pending as i64) < batch_pending {
                    self.waiting_last_ns = now_ns;
                    self.status(reply, wire::status(408, "Requests Pending"));
                    return;
                }
            }
        }
        if self.waiting.len() >= self.max_waiting {
            self.status(reply, wire::status(409, "Exceeded MaxWaiting"));
            return;
        }
        let hb = req.idle_heartbeat;
        let w = Waiting {
            reply,
            n: req.batch.max(1),
            d: 0,
            b: req.max_bytes.max(0),
            expires_ns: req.expires.map(|e| now_ns + dur_ns(e)),
            hb,
            hb_next_ns: (!hb.is_zero()).then(|| now_ns + dur_ns(hb)),
            no_wait: req.no_wait,
            priority: req.priority,
        };
        self.enqueue(w);
        self.waiting_last_ns = now_ns;
        self.inactive_sent = false;
    }

    /// A request's priority fields against the config (nats-server
    /// `processNextMsgRequest`): `Err` is the status to answer with. A request
    /// carrying the current pin keeps it for another `priority_timeout`.
    fn check_priority(
        &mut self,
        now_ns: i64,
        p: &PriorityRequest,
    ) -> Result<(), (u16, &'static str)> {
        let policy = self.cfg.priority_policy;
        if (p.min_pending != 0 || p.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
            return Err((400, "Bad Request - Not a Overflow Priority consumer"));
        }
        if !p.id.is_empty() && policy != PriorityPolicy::PinnedClient {
            return Err((400, "Bad Request - Not a Pinned Client Priority consumer"));
        }
        if !(0..=9).contains(&p.priority) {
            return Err((400, "Bad Request - Priority must be between 0 and 9"));
        }
        if policy == PriorityPolicy::None {
            return Ok(());
        }
        if p.group.is_empty() {
            return Err((400, "Bad Request - Priority Group missing"));
        }
        if !self.cfg.priority_groups.contains(&p.group) {
            return Err((400, "Bad Request - Invalid Priority Group"));
        }
        if let Some(pin) = &self.pin {
            if p.id == pin.id {
                self.pin_timer_ns = Some(now_ns + dur_ns(self.cfg.priority_timeout));
            } else if !p.id.is_empty() {
                return Err((423, "Nats-Pin-Id mismatch"));
            }
        }
        Ok(())
    }

    /// Queue a pull request: at the back, or for `prioritized` behind every
    /// request of the same or a better rank.
    fn enqueue(&mut self, w: Waiting) {
        self.requests_queued += 1;
        if self.cfg.priority_policy == PriorityPolicy::Prioritized {
            let rank = w.rank();
            let at = self
                .waiting
                .iter()
                .position(|x| x.rank() > rank)
                .unwrap_or(self.waiting.len());
            self.waiting.insert(at, w);
        } else {
            self.waiting.push_back(w);
        }
    }

    /// nats-server's `processWaiting`: expire requests (and, at the end of
    /// the stream, finish `no_wait` ones), send request heartbeats.
    fn process_waiting(&mut self, now_ns: i64, eos: bool) {
        // A no_wait request ends at the end of the stream once it got
        // something or when it has no expiry to wait for, with `404 No
        // Messages` either way (nats-server 2.15.1); with an expiry and
        // nothing delivered it waits for it (the one-shot request).
        let ends = |w: &Waiting| eos && w.no_wait && (w.d > 0 || w.expires_ns.is_none());
        let due = |w: &Waiting| {
            ends(w)
                || w.expires_ns.is_some_and(|e| now_ns >= e)
                || w.hb_next_ns.is_some_and(|t| now_ns >= t)
        };
        if !self.waiting.iter().any(due) {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        for mut w in std::mem::take(&mut self.waiting) {
            if ends(&w) {
                self.status(w.reply, wire::status(404, "No Messages"));
                continue;
            }
            if w.expires_ns.is_some_and(|e| now_ns >= e) {
                self.status(
                    w.reply,
                    wire::status_pending(408, "Request Timeout", w.n, w.b),
                );
                continue;
            }
            if let Some(t) = w.hb_next_ns {
                if now_ns >= t {
                    let hdr = wire::idle_heartbeat(self.dseq - 1, self.sseq - 1, None);
                    self.status(w.reply.clone(), hdr);
                    w.hb_next_ns = Some(now_ns + dur_ns(w.hb));
                }
            }
            keep.push_back(w);
        }
        self.waiting = keep;
    }

    /// The request the next message of `size` bytes goes to (nats-server's
    /// `nextWaiting` then `pop`): requests whose byte budget it exceeds end
    /// with `409 Message Size Exceeds MaxBytes`; the chosen one moves to the
    /// back of the queue while it wants more (round robin; `prioritized`:
    /// behind its rank). Priority groups: `pinned_client` pins the first
    /// request without a pin id, serves only the pin, answers requests with
    /// an old pin `423` and skips the others; `overflow` skips requests whose
    /// `min_pending`/`min_ack_pending` are not reached (`pending`: messages
    /// pending counting this one). Returns the reply, what the request still
    /// wants and the pin to put on the delivery.
    fn next_waiting(
        &mut self,
        now_ns: i64,
        size: i64,
        pending: i64,
    ) -> Option<(String, i64, i64, Option<String>)> {
        let policy = self.cfg.priority_policy;
        let mut cycled = 0;
        while !self.waiting.is_empty() {
            if self.waiting[0].expires_ns.is_some_and(|e| now_ns >= e) {
                let w = self.waiting.pop_front()?;
                let hdr = wire::status_pending(408, "Request Timeout", w.n, w.b);
                self.status(w.reply, hdr);
                continue;
            }
            let mut assigned_pin = false;
            if policy == PriorityPolicy::PinnedClient {
                let id = self.waiting[0].pin_id().to_string();
                match &self.pin {
                    None if id.is_empty() => {
                        assigned_pin = self.assign_pin(now_ns);
                    }
                    Some(pin) if id == pin.id => {}
                    Some(_) if id.is_empty() => {
                        self.waiting.rotate_left(1);
                        cycled += 1;
                        if cycled >= self.waiting.len() {
                            return None;
                        }
                        continue;
                    }
                    _ => {
                        // An old pin: tell the client and drop the request.
                        let w = self.waiting.pop_front()?;
                        let hdr = wire::status_pending(423, "Nats-Wrong-Pin-Id", w.n, w.b);
                        self.status(w.reply, hdr);
                        continue;
                    }
                }
            }
            if policy == PriorityPolicy::Overflow {
                let (mp, map) = self.waiting[0]
                    .priority
                    .as_ref()
                    .map_or((0, 0), |p| (p.min_pending, p.min_ack_pending));
                let over =
                    (mp > 0 && mp <= pending) || (map > 0 && map <= self.pending.len() as i64);
                if (mp > 0 || map > 0) && !over {
                    self.waiting.rotate_left(1);
                    cycled += 1;
                    if cycled >= self.waiting.len() {
                        return None;
                    }
                    continue;
                }
            }
            let w = &mut self.waiting[0];
            if w.b > 0 {
                if size <= w.b {
                    w.b -= size;
                    if w.b == 0 {
                        w.n = 1;
                    }
                } else {
                    let w = self.waiting.pop_front()?;
                    let hdr = wire::status_pending(409, "Message Size Exceeds MaxBytes", w.n, w.b);
                    self.status(w.reply, hdr);
                    if assigned_pin {
                        self.pin = None;
                        self.pin_timer_ns = None;
                    }
                    continue;
                }
            }
            let mut w = self.waiting.pop_front()?;
            w.d += 1;
            w.n -= 1;
            let pin = (policy == PriorityPolicy::PinnedClient)
                .then(|| self.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default());
            let picked = (w.reply.clone(), w.n, w.b, pin);
            if w.n > 0 {
                if !w.hb.is_zero() {
                    w.hb_next_ns = Some(now_ns + dur_ns(w.hb));
                }
                self.enqueue(w);
            }
            return Some(picked);
        }
        None
    }

    /// Pin the request at the front of the queue (nats-server
    /// `assignNewPinId`): a request without priority fields gets no pin.
    fn assign_pin(&mut self, now_ns: i64) -> bool {
        let Some(group) = self.waiting[0].priority.as_ref().map(|p| p.group.clone()) else {
            return false;
        };
        self.pins += 1;
        let id = format!("{}{}", self.pin_prefix, base62_4(self.pins));
        if let Some(p) = self.waiting[0].priority.as_mut() {
            p.id.clone_from(&id);
        }
        self.pin = Some(Pin { id, ts_ns: now_ns });
        self.pin_timer_ns = Some(now_ns + dur_ns(self.cfg.priority_timeout));
        self.pin_advisory(now_ns, AdvisoryKind::Pinned, &group, "");
        true
    }

    // ------------------------------------------------------------------
    // Push flow control and interest.

    fn flow_control_reply(&mut self, subject: &str) {
        let Some(fc) = self.fc.as_mut() else {
            return;
        };
        if fc.id.as_deref() != Some(subject) {
            return;
        }
        if fc.maxpb < fc.limit {
            fc.maxpb = (fc.maxpb * 2).min(fc.limit);
        }
        fc.pbytes = (fc.pbytes - fc.size).max(0);
        fc.id = None;
        fc.size = 0;
    }

    fn fc_account(&mut self, size: i64) {
        let stream = self.stream.clone();
        let name = self.name.clone();
        let deliver = self.cfg.deliver_subject.clone();
        let Some(fc) = self.fc.as_mut() else {
            return;
        };
        fc.pbytes += size;
        if fc.id.is_none() && fc.pbytes > fc.maxpb / 2 {
            fc.counter += 1;
            let id = format!("$JS.FC.{stream}.{name}.{}", base62_4(fc.counter));
            fc.size = fc.pbytes;
            fc.id = Some(id.clone());
            self.out.push_back(Output::Status {
                to: deliver,
                reply: Some(id),
                hdr: Bytes::from_static(b"NATS/1.0 100 FlowControl Request\r\n\r\n"),
            });
        } else if fc.id.is_some() && fc.pbytes - fc.size >= fc.maxpb {
            fc.size += size;
        }
    }

    // ------------------------------------------------------------------
    // Delivery.

    /// The next message for this consumer without taking it: redeliveries
    /// first (retiring those past `max_deliver`), then the last-per-subject
    /// start list, then the stream from `sseq`.
    fn candidate(&mut self, now_ns: i64, src: &dyn MsgSource) -> Next {
        while let Some(&seq) = self.rdq.front() {
            let dc = self.deliveries(seq) + 1;
            if self.cfg.max_deliver > 0 && dc > self.cfg.max_deliver as u64 {
                self.retire(now_ns, seq, dc - 1);
                continue;
            }
            match src.load_msg(seq) {
                Some(m) => return Next::Msg(m, dc, Origin::Redelivery),
                None => {
                    // Gone from the stream: nothing left to redeliver.
                    self.remove_rdq(seq);
                    if self.pending.remove(&seq).is_some() {
                        self.move_ack_floor();
                    }
                    self.rdc.remove(&seq);
                    self.dirty = true;
                }
            }
        }
        if self.max_ack_pending_reached() {
            return Next::Blocked;
        }
        while let Some(&seq) = self.lss.front() {
            match src.load_msg(seq) {
                Some(m) => return Next::Msg(m, 1, Origin::SkipList),
                None => {
                    self.lss.pop_front();
                    if self.lss.is_empty() {
                        self.sseq = self.lss_resume + 1;
                    }
                }
            }
        }
        let found = if self.filters.is_empty() {
            src.load_next_msg("", self.sseq)
        } else {
            self.filters
                .iter()
                .filter_map(|f| src.load_next_msg(f, self.sseq))
                .min_by_key(|m| m.seq)
        };
        match found {
            Some(m) => Next::Msg(m, 1, Origin::Fresh),
            None => {
                let last = src.state().last_seq;
                if self.sseq <= last {
                    self.sseq = last + 1;
                    self.npc = 0;
                }
                Next::Eof
            }
        }
    }

    /// Deliver while there is someone to deliver to and something to deliver.
    fn pump(&mut self, now_ns: i64, src: &dyn MsgSource) {
        let mut eos = false;
        if self.pause_remaining_ns(now_ns) > 0 {
            // Paused: nothing goes out; pull requests wait as at the end of
            // the stream (no_wait ones end), heartbeats go on (nats-server
            // `loopAndGatherMsgs` goes straight to `processWaiting(true)`).
            if !self.closed && !self.cfg.is_push() {
                self.process_waiting(now_ns, true);
            }
            return;
        }
        if !self.cfg.is_push() {
            self.process_waiting(now_ns, false);
        }
        self.push_more_ns = None;
        let mut pushed = 0;
        loop {
            if self.closed {
                return;
            }
            if self.cfg.is_push() {
                if !self.active {
                    break;
                }
                if pushed == PUSH_CHUNK {
                    // The rest on the stage's next turn: the outputs of one
                    // call stay small, and acks and flow control replies get
                    // in between.
                    self.push_more_ns = Some(now_ns);
                    break;
                }
                pushed += 1;
                if self.fc.as_ref().is_some_and(|f| f.pbytes > f.maxpb) {
                    break;
                }
            } else if self.waiting.is_empty() {
                break;
            }
            if self.replay_hold_ns.is_some() || now_ns < self.rate_next_ns {
                break;
            }
            let (msg, dc, origin) = match self.candidate(now_ns, src) {
                Next::Msg(m, dc, o) => (m, dc, o),
                Next::Blocked => break,
                Next::Eof => {
                    eos = true;
                    break;
                }
            };
            if self.replay && self.replay_lts > 0 {
                let delay = msg.ts - self.replay_lts;
                if delay > dur_ns(Duration::from_millis(1)) {
                    self.replay_hold_ns = Some(now_ns + delay);
                    break;
                }
            }
            if !self.deliver(now_ns, msg, dc, origin) {
                break;
            }
        }
        if self.replay && self.sseq > self.replay_last_seq {
            self.replay = false;
        }
        if !self.cfg.is_push() && eos {
            self.process_waiting(now_ns, true);
        }
    }

    /// A replay pause ended: deliver the held message regardless of its gap.
    fn pump_replay_released(&mut self, now_ns: i64, src: &dyn MsgSource) {
        if self.pause_remaining_ns(now_ns) > 0 {
            return;
        }
        let ready = if self.cfg.is_push() {
            self.active
        } else {
            self.process_waiting(now_ns, false);
            !self.waiting.is_empty()
        };
        if !ready || now_ns < self.rate_next_ns {
            return;
        }
        if let Next::Msg(m, dc, o) = self.candidate(now_ns, src) {
            self.deliver(now_ns, m, dc, o);
        }
    }

    /// Take `msg` and send it. Returns false when no pull request could take it.
    fn deliver(&mut self, now_ns: i64, msg: SourceMsg, dc: u64, origin: Origin) -> bool {
        let pending_after = if dc == 1 {
            (self.npc - 1).max(0) as u64
        } else {
            self.npc.max(0) as u64
        };
        let dseq = self.dseq;
        let reply = ack_reply(
            &self.stream,
            &self.name,
            &AckReply {
                stream_seq: msg.seq,
                consumer_seq: dseq,
                delivered: dc,
                ts: msg.ts,
                pending: pending_after,
            },
        );
        let (hdr, payload) = if self.cfg.headers_only {
            (
                Bytes::from(wire::headers_only(&msg.hdr, msg.payload.len())),
                Bytes::new(),
            )
        } else {
            (msg.hdr, msg.payload)
        };
        let size = (msg.subject.len() + reply.len() + hdr.len() + payload.len()) as i64;
        let mut batch_done_bytes = None;
        let mut hdr = hdr;
        let to = if self.cfg.is_push() {
            self.cfg.deliver_subject.clone()
        } else {
            // Overflow thresholds count this message as still pending.
            let pending = if dc == 1 { self.npc } else { self.npc + 1 };
            match self.next_waiting(now_ns, size, pending) {
                Some((to, n, b, pin)) => {
                    if n <= 0 && b > 0 {
                        batch_done_bytes = Some((n, b));
                    }
                    if let Some(pin) = pin {
                        hdr = Bytes::from(wire::add_header(&hdr, wire::HDR_PIN_ID, &pin));
                    }
                    to
                }
                None => return false,
            }
        };
        // Commit: the message is taken.
        match origin {
            Origin::Redelivery => {
                self.rdq.pop_front();
                self.rdq_set.remove(&msg.seq);
                *self.rdc.entry(msg.seq).or_insert(0) += 1;
            }
            Origin::SkipList => {
                self.lss.pop_front();
                self.npc -= 1;
                if self.lss.is_empty() {
                    self.sseq = self.lss_resume + 1;
                } else {
                    self.sseq = self.sseq.max(msg.seq + 1);
                }
            }
            Origin::Fresh => {
                self.npc -= 1;
                self.sseq = msg.seq + 1;
            }
        }
        self.dseq += 1;
        self.ldt_ns = Some(now_ns);
        self.dirty = true;
        match self.cfg.ack_policy {
            AckPolicy::Explicit | AckPolicy::All => {
                let p = self.pending.entry(msg.seq).or_insert(Pending {
                    sequence: dseq,
                    ts: now_ns,
                });
                p.ts = now_ns;
                if self.ptmr_ns.is_none() {
                    self.ptmr_ns = Some(now_ns + dur_ns(self.cfg.ack_wait + ACK_WAIT_DELAY));
                }
            }
            AckPolicy::None => {
                self.adflr = dseq;
                self.asflr = msg.seq;
            }
        }
        let seq = msg.seq;
        self.out.push_back(Output::Deliver(Delivery {
            to: to.clone(),
            subject: msg.subject,
            reply,
            hdr,
            payload,
            stream_seq: seq,
            consumer_seq: dseq,
            delivered: dc,
        }));
        if self.cfg.ack_policy == AckPolicy::None {
            // Interest retention: an unacknowledged delivery is final once sent.
            self.acked_out(seq, seq);
        }
        if let Some((n, b)) = batch_done_bytes {
            self.status(to, wire::status_pending(409, "Batch Completed", n, b));
        }
        if self.cfg.is_push() {
            self.fc_account(size);
            if let Some(t) = self.hb_next_ns.as_mut() {
                *t = now_ns + dur_ns(self.cfg.idle_heartbeat);
            }
        } else {
            self.waiting_last_ns = now_ns;
        }
        if self.replay {
            self.replay_lts = msg.ts;
        }
        if self.cfg.rate_limit_bps > 0 {
            let ns = (size as u128 * 8 * 1_000_000_000) / u128::from(self.cfg.rate_limit_bps);
            let start = self.rate_next_ns.max(now_ns);
            self.rate_next_ns = start.saturating_add(i64::try_from(ns).unwrap_or(i64::MAX));
        }
        true
    }
}

fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Four base-62 digits (nats-server draws them at random; a counter is as
/// unique for one consumer and keeps the machine deterministic).
fn base62_4(mut n: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut s = String::with_capacity(4);
    for _ in 0..4 {
        s.push(DIGITS[(n % 62) as usize] as char);
        n /= 62;
    }
    s
}
