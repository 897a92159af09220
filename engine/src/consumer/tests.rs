//! Deterministic tests of the consumer machine: the test owns the clock and
//! the stream (a `Vec`). Facts cited are nats-server 2.10 behaviour
//! (`server/consumer.go`) unless noted.
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

const WALL0: i64 = 1_700_000_000_000_000_000;

/// A stream in a `Vec`: `None` marks a removed message.
#[derive(Default)]
pub(super) struct VecSource {
    msgs: Vec<Option<SourceMsg>>,
    first: u64,
}

impl VecSource {
    fn store(&mut self, subject: &str, payload: &str, ts: i64) -> u64 {
        let seq = self.msgs.len() as u64 + 1;
        if self.first == 0 {
            self.first = seq;
        }
        self.msgs.push(Some(SourceMsg {
            seq,
            subject: subject.into(),
            hdr: Bytes::new(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            ts,
        }));
        seq
    }

    fn store_hdr(&mut self, subject: &str, hdr: &str, payload: &str) -> u64 {
        let seq = self.store(subject, payload, WALL0);
        if let Some(Some(m)) = self.msgs.last_mut() {
            m.hdr = Bytes::copy_from_slice(hdr.as_bytes());
        }
        seq
    }

    fn remove(&mut self, seq: u64) -> String {
        let m = self.msgs[seq as usize - 1].take().expect("present");
        self.fix_first();
        m.subject
    }

    fn fix_first(&mut self) {
        self.first = self
            .msgs
            .iter()
            .flatten()
            .map(|m| m.seq)
            .next()
            .unwrap_or(self.msgs.len() as u64 + 1);
    }

    fn iter(&self) -> impl Iterator<Item = &SourceMsg> {
        self.msgs.iter().flatten()
    }
}

fn fmatch(filter: &str, subject: &str) -> bool {
    filter.is_empty() || crate::subject::subject_matches(filter.as_bytes(), subject.as_bytes())
}

impl MsgSource for VecSource {
    fn state(&self) -> SourceState {
        SourceState {
            msgs: self.iter().count() as u64,
            first_seq: self.first,
            last_seq: self.msgs.len() as u64,
        }
    }
    fn load_msg(&self, seq: u64) -> Option<SourceMsg> {
        self.msgs.get((seq as usize).checked_sub(1)?)?.clone()
    }
    fn load_next_msg(&self, filter: &str, start_seq: u64) -> Option<SourceMsg> {
        self.iter()
            .find(|m| m.seq >= start_seq && fmatch(filter, &m.subject))
            .cloned()
    }
    fn load_last_msg(&self, filter: &str) -> Option<SourceMsg> {
        self.iter()
            .filter(|m| fmatch(filter, &m.subject))
            .last()
            .cloned()
    }
    fn num_pending(&self, start_seq: u64, filter: &str, last_per_subject: bool) -> u64 {
        let it = self
            .iter()
            .filter(|m| m.seq >= start_seq && fmatch(filter, &m.subject));
        if last_per_subject {
            let mut subjects: Vec<&str> = it.map(|m| m.subject.as_str()).collect();
            subjects.sort_unstable();
            subjects.dedup();
            subjects.len() as u64
        } else {
            it.count() as u64
        }
    }
    fn last_seqs(&self, filter: &str) -> Vec<u64> {
        let mut last = std::collections::BTreeMap::new();
        for m in self.iter().filter(|m| fmatch(filter, &m.subject)) {
            last.insert(m.subject.clone(), m.seq);
        }
        last.into_values().collect()
    }
}

/// Any instant serves as the origin; from there the test owns time.
#[allow(clippy::disallowed_methods)]
pub(super) fn origin() -> Instant {
    Instant::now()
}

struct H {
    src: VecSource,
    c: Consumer,
    now: Instant,
    t0: Instant,
}

fn facts() -> StreamFacts {
    StreamFacts {
        subjects: vec!["orders.>".into()],
        replicas: 1,
        ..StreamFacts::default()
    }
}

fn pull(ack: AckPolicy) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: "C".into(),
        ack_policy: ack,
        ..ConsumerConfig::default()
    }
}

fn push(ack: AckPolicy) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: "C".into(),
        ack_policy: ack,
        deliver_subject: "deliver.here".into(),
        ..ConsumerConfig::default()
    }
}

impl H {
    fn with(cfg: ConsumerConfig, msgs: usize) -> H {
        Self::with_facts(cfg, msgs, facts())
    }

    fn with_facts(cfg: ConsumerConfig, msgs: usize, facts: StreamFacts) -> H {
        let mut src = VecSource::default();
        for i in 0..msgs {
            src.store(&format!("orders.{}", i % 3), &format!("m{}", i + 1), WALL0);
        }
        let t0 = origin();
        let c = Consumer::new(
            "S",
            "C",
            cfg,
            &facts,
            &ServerLimits::default(),
            t0,
            WALL0,
            None,
            &src,
        )
        .expect("valid config");
        let mut h = H {
            src,
            c,
            now: t0,
            t0,
        };
        h.drain();
        h
    }

    fn ns(&self) -> i64 {
        WALL0 + (self.now - self.t0).as_nanos() as i64
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.c.poll_output()).collect()
    }

    fn input(&mut self, i: Input) -> Vec<Output> {
        self.c.handle_input(self.now, i, &self.src);
        self.drain()
    }

    fn next(&mut self, body: &str) -> Vec<Output> {
        self.input(Input::Next {
            reply: "_INBOX.r".into(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        })
    }

    fn publish(&mut self, subject: &str) -> Vec<Output> {
        let seq = self.src.store(subject, "new", self.ns());
        self.input(Input::Stored {
            seq,
            subject: subject.into(),
        })
    }

    fn ack(&mut self, d: &Delivery, body: &str) -> Vec<Output> {
        self.ack_with_reply(d, body, None)
    }

    fn ack_with_reply(&mut self, d: &Delivery, body: &str, reply: Option<&str>) -> Vec<Output> {
        self.input(Input::Ack {
            info: parse_ack_reply(&d.reply).map(|(_, _, r)| r),
            reply: reply.map(str::to_string),
            body: Bytes::copy_from_slice(body.as_bytes()),
        })
    }

    /// Advance the clock by `d`, firing every timeout on the way.
    fn advance(&mut self, d: Duration) -> Vec<Output> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.c.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.c.handle_timeout(self.now, &self.src);
            out.extend(self.drain());
        }
        self.now = end;
        self.c.handle_timeout(self.now, &self.src);
        out.extend(self.drain());
        out
    }

    fn info(&mut self) -> ConsumerInfo {
        self.c.info(self.now, &self.src)
    }
}

fn deliveries(out: &[Output]) -> Vec<Delivery> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn seqs(out: &[Output]) -> Vec<u64> {
    deliveries(out).iter().map(|d| d.stream_seq).collect()
}

fn statuses(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Status { hdr, .. } => Some(String::from_utf8_lossy(hdr).into_owned()),
            _ => None,
        })
        .collect()
}

fn advisories(out: &[Output]) -> Vec<Advisory> {
    out.iter()
        .filter_map(|o| match o {
            Output::Advisory(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

// ----------------------------------------------------------------------
// Config.

#[test]
fn defaults_as_set_consumer_config_defaults() {
    let mut c = pull(AckPolicy::Explicit);
    c.set_defaults(&facts(), &ServerLimits::default());
    assert_eq!(c.ack_wait, Duration::from_secs(30));
    assert_eq!(c.max_deliver, -1);
    assert_eq!(c.max_waiting, 512);
    assert_eq!(c.max_ack_pending, 1000);
    // A durable keeps no inactive threshold; an ephemeral gets 5s.
    assert_eq!(c.inactive_threshold, Duration::ZERO);
    let mut e = ConsumerConfig::default();
    e.set_defaults(&facts(), &ServerLimits::default());
    assert_eq!(e.inactive_threshold, Duration::from_secs(5));
    // ack none: no ack wait, no max ack pending.
    assert_eq!(e.ack_wait, Duration::ZERO);
    assert_eq!(e.max_ack_pending, 0);
    // Backoff's first step replaces ack_wait; limits lower max_ack_pending.
    let mut b = pull(AckPolicy::Explicit);
    b.backoff = vec![Duration::from_secs(1), Duration::from_secs(5)];
    let lim = ServerLimits {
        max_ack_pending: 200,
        account_max_ack_pending: 300,
        max_request_batch: 50,
    };
    b.set_defaults(&facts(), &lim);
    assert_eq!(b.ack_wait, Duration::from_secs(1));
    assert_eq!(b.max_ack_pending, 200);
    assert_eq!(b.max_batch, 50);
}

#[test]
fn config_json_uses_nats_server_names_and_nanoseconds() {
    let json = r#"{"durable_name":"D","deliver_policy":"by_start_sequence","opt_start_seq":7,
        "ack_policy":"explicit","ack_wait":5000000000,"backoff":[1000000000,2000000000],
        "max_deliver":5,"filter_subjects":["a.*","b.>"],"replay_policy":"original",
        "idle_heartbeat":3000000000,"max_expires":1000000,"num_replicas":0,"metadata":{"k":"v"}}"#;
    let c: ConsumerConfig = serde_json::from_str(json).expect("parses");
    assert_eq!(c.deliver_policy, DeliverPolicy::ByStartSequence);
    assert_eq!(c.ack_wait, Duration::from_secs(5));
    assert_eq!(
        c.backoff,
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(c.idle_heartbeat, Duration::from_secs(3));
    assert_eq!(c.replay_policy, ReplayPolicy::Original);
    let out = serde_json::to_value(&c).expect("serialises");
    assert_eq!(out["ack_wait"], 5_000_000_000i64);
    assert_eq!(out["backoff"][1], 2_000_000_000i64);
    assert_eq!(out["filter_subjects"][0], "a.*");
    assert_eq!(out["num_replicas"], 0);
    // Zero values are omitted as Go's omitempty does.
    assert!(out.get("max_waiting").is_none());
    assert!(out.get("flow_control").is_none());
    assert!(out.get("description").is_none());
    // A bare config reads ack none, deliver all, replay instant.
    let bare: ConsumerConfig = serde_json::from_str("{}").expect("parses");
    assert_eq!(bare.ack_policy, AckPolicy::None);
    assert_eq!(
        serde_json::to_string(&bare).expect("serialises"),
        r#"{"deliver_policy":"all","ack_policy":"none","replay_policy":"instant","num_replicas":0}"#
    );
}

fn invalid(cfg: ConsumerConfig, facts: &StreamFacts) -> (u16, String) {
    let mut cfg = cfg;
    cfg.set_defaults(facts, &ServerLimits::default());
    let e = cfg
        .validate(facts, &ServerLimits::default())
        .expect_err("invalid");
    (e.err_code, e.description)
}

#[test]
fn validation_errors_as_check_consumer_cfg() {
    let f = facts();
    let mut c = push(AckPolicy::None);
    c.deliver_subject = "orders.x".into();
    assert_eq!(invalid(c, &f).0, 10081, "deliver subject inside the stream");
    let mut c = push(AckPolicy::None);
    c.deliver_subject = "a.*".into();
    assert_eq!(invalid(c, &f).0, 10079);
    let mut c = push(AckPolicy::None);
    c.max_ack_pending = 10;
    assert_eq!(invalid(c, &f).0, 10082);
    let mut c = push(AckPolicy::Explicit);
    c.idle_heartbeat = Duration::from_millis(50);
    assert_eq!(invalid(c, &f).0, 10083);
    let mut c = push(AckPolicy::Explicit);
    c.flow_control = true;
    assert_eq!(
        invalid(c, &f),
        (
            10108,
            "consumer with flow control also needs heartbeats".into()
        )
    );
    let mut c = pull(AckPolicy::Explicit);
    c.idle_heartbeat = Duration::from_secs(1);
    assert_eq!(invalid(c, &f).0, 10088);
    let mut c = pull(AckPolicy::Explicit);
    c.rate_limit_bps = 10;
    assert_eq!(invalid(c, &f).0, 10086);
    let mut c = pull(AckPolicy::Explicit);
    c.backoff = vec![Duration::from_secs(1), Duration::from_secs(2)];
    c.max_deliver = 2;
    assert_eq!(invalid(c, &f).0, 10116);
    let mut c = pull(AckPolicy::Explicit);
    c.filter_subject = "a".into();
    c.filter_subjects = vec!["b".into()];
    assert_eq!(invalid(c, &f).0, 10136);
    let mut c = pull(AckPolicy::Explicit);
    c.filter_subjects = vec!["a.*".into(), "a.b".into()];
    assert_eq!(invalid(c, &f).0, 10138);
    let mut c = pull(AckPolicy::Explicit);
    c.deliver_policy = DeliverPolicy::ByStartSequence;
    assert_eq!(
        invalid(c, &f),
        (
            10094,
            "consumer delivery policy is deliver by start sequence, but optional start sequence is not set"
                .into()
        )
    );
    let mut c = pull(AckPolicy::Explicit);
    c.opt_start_seq = 3;
    assert_eq!(
        invalid(c, &f).1,
        "consumer delivery policy is deliver all, but optional start sequence is also set"
    );
    let mut c = pull(AckPolicy::Explicit);
    c.deliver_policy = DeliverPolicy::LastPerSubject;
    assert_eq!(
        invalid(c, &f).1,
        "consumer delivery policy is deliver last per subject, but optional filter subject is not set"
    );
    let mut c = pull(AckPolicy::Explicit);
    c.name = "other".into();
    assert_eq!(invalid(c, &f).0, 10132);
    let mut c = pull(AckPolicy::Explicit);
    c.durable_name = "a.b".into();
    assert_eq!(
        invalid(c, &f),
        (
            10052,
            "consumer durable name can not contain '.', '*', '>', '\\', '/'".into()
        )
    );
    let mut c = pull(AckPolicy::Explicit);
    c.num_replicas = 3;
    assert_eq!(invalid(c, &f).0, 10126);
    let mut c = pull(AckPolicy::Explicit);
    c.sample_freq = "x%".into();
    assert_eq!(invalid(c, &f).0, 10095);
    let wq = StreamFacts {
        retention: Retention::WorkQueue,
        ..facts()
    };
    assert_eq!(invalid(pull(AckPolicy::None), &wq).0, 10084);
    assert_eq!(invalid(pull(AckPolicy::All), &wq).0, 10098);
    let mut c = pull(AckPolicy::Explicit);
    c.deliver_policy = DeliverPolicy::New;
    assert_eq!(invalid(c, &wq).0, 10101);
    let limited = StreamFacts {
        consumer_max_ack_pending: 10,
        consumer_inactive_threshold: Duration::from_secs(90),
        ..facts()
    };
    let mut c = pull(AckPolicy::Explicit);
    c.max_ack_pending = 20;
    assert_eq!(
        invalid(c, &limited).1,
        "consumer max ack pending exceeds system limit of 10"
    );
    let mut c = pull(AckPolicy::Explicit);
    c.inactive_threshold = Duration::from_secs(120);
    assert_eq!(
        invalid(c, &limited).1,
        "consumer inactive threshold exceeds system limit of 1m30s"
    );
}

#[test]
fn update_rules_as_check_new_consumer_config() {
    let mut cur = push(AckPolicy::Explicit);
    cur.set_defaults(&facts(), &ServerLimits::default());
    let mut ok = cur.clone();
    ok.description = "new".into();
    ok.max_ack_pending = 10;
    ok.ack_wait = Duration::from_secs(3);
    assert_eq!(cur.check_update(&ok, false), Ok(()));
    let mut bad = cur.clone();
    bad.ack_policy = AckPolicy::All;
    let e = cur.check_update(&bad, false).expect_err("ack policy fixed");
    assert_eq!((e.code, e.err_code), (500, 10012));
    assert_eq!(e.description, "ack policy can not be updated");
    let mut bad = cur.clone();
    bad.deliver_policy = DeliverPolicy::New;
    assert_eq!(
        cur.check_update(&bad, false)
            .expect_err("fixed")
            .description,
        "deliver policy can not be updated"
    );
    let mut moved = cur.clone();
    moved.deliver_subject = "elsewhere".into();
    assert_eq!(cur.check_update(&moved, false), Ok(()));
    assert_eq!(
        cur.check_update(&moved, true).expect_err("bound").err_code,
        10013
    );
    let mut to_pull = cur.clone();
    to_pull.deliver_subject.clear();
    assert_eq!(
        cur.check_update(&to_pull, false)
            .expect_err("mode")
            .description,
        "can not update push consumer to pull based"
    );
}

// ----------------------------------------------------------------------
// Wire forms.

#[test]
fn ack_reply_forms() {
    let r = AckReply {
        stream_seq: 22,
        consumer_seq: 3,
        delivered: 2,
        ts: 1_700_000_000_123,
        pending: 9,
    };
    let s = ack_reply("ORDERS", "worker", &r);
    assert_eq!(s, "$JS.ACK.ORDERS.worker.2.22.3.1700000000123.9");
    assert_eq!(parse_ack_reply(&s), Some(("ORDERS", "worker", r)));
    // The v2 form with domain and account hash, plus a trailing random token.
    let v2 = "$JS.ACK.hub.AHASH.ORDERS.worker.2.22.3.1700000000123.9.xyz";
    assert_eq!(parse_ack_reply(v2), Some(("ORDERS", "worker", r)));
    let v2_exact = "$JS.ACK.hub.AHASH.ORDERS.worker.2.22.3.1700000000123.9";
    assert_eq!(parse_ack_reply(v2_exact), Some(("ORDERS", "worker", r)));
    assert_eq!(parse_ack_reply("$JS.ACK.S.C.1.2.3.4"), None);
    assert_eq!(parse_ack_reply("$JS.ACK.S.C.1.x.3.4.5"), None);
    assert_eq!(parse_ack_reply("$JS.NAK.S.C.1.2.3.4.5"), None);
}

#[test]
fn ack_bodies() {
    assert_eq!(parse_ack(b""), AckKind::Ack);
    assert_eq!(parse_ack(b"+ACK"), AckKind::Ack);
    assert_eq!(parse_ack(b"+OK"), AckKind::Ack);
    assert_eq!(parse_ack(b"-NAK"), AckKind::Nak(None));
    assert_eq!(
        parse_ack(br#"-NAK {"delay": 2000000000}"#),
        AckKind::Nak(Some(Duration::from_secs(2)))
    );
    assert_eq!(
        parse_ack(b"-NAK 1m30s"),
        AckKind::Nak(Some(Duration::from_secs(90)))
    );
    assert_eq!(parse_ack(b"-NAK soon"), AckKind::Nak(None));
    assert_eq!(parse_ack(b"+WPI"), AckKind::Progress);
    assert_eq!(parse_ack(b"+NXT 5"), AckKind::Next(b" 5".to_vec()));
    assert_eq!(parse_ack(b"+TERM"), AckKind::Term(String::new()));
    assert_eq!(
        parse_ack(b"+TERM bad data "),
        AckKind::Term("bad data".into())
    );
    assert_eq!(parse_ack(b"what"), AckKind::Unknown);
    assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_go_duration("1h2m"), Some(Duration::from_secs(3720)));
    assert_eq!(parse_go_duration("5"), None);
}

#[test]
fn pull_request_bodies_as_next_req_from_msg() {
    let p = parse_pull_request(b"").expect("empty");
    assert_eq!((p.batch, p.expires, p.no_wait), (1, None, false));
    assert_eq!(parse_pull_request(b" 10 ").expect("num").batch, 10);
    assert_eq!(parse_pull_request(b"junk").expect("junk").batch, 1);
    let p = parse_pull_request(
        br#"{"batch":5,"expires":2000000000,"max_bytes":100,"no_wait":true,"idle_heartbeat":500000000}"#,
    )
    .expect("json");
    assert_eq!(p.batch, 5);
    assert_eq!(p.expires, Some(Duration::from_secs(2)));
    assert_eq!(p.max_bytes, 100);
    assert!(p.no_wait);
    assert_eq!(p.idle_heartbeat, Duration::from_millis(500));
    assert_eq!(
        parse_pull_request(br#"{"batch":1,"expires":1000,"idle_heartbeat":600}"#),
        Err("heartbeat value too large".into())
    );
    assert!(parse_pull_request(b"{bad").is_err());
}

#[test]
fn rfc3339_parses_go_times() {
    assert_eq!(
        parse_rfc3339_ns("1970-01-01T00:00:01Z"),
        Some(1_000_000_000)
    );
    assert_eq!(
        parse_rfc3339_ns("2023-11-14T22:13:20.5Z"),
        Some(1_700_000_000_500_000_000)
    );
    assert_eq!(
        parse_rfc3339_ns("2023-11-15T00:13:20+02:00"),
        Some(1_700_000_000_000_000_000)
    );
    assert_eq!(parse_rfc3339_ns("2023-11-15"), None);
    assert_eq!(
        ns_rfc3339(1_700_000_000_500_000_000),
        "2023-11-14T22:13:20.5Z"
    );
}

// ----------------------------------------------------------------------
// Pull delivery and acks.

#[test]
fn pull_batch_delivers_with_nats_server_ack_replies() {
    let mut h = H::with(pull(AckPolicy::Explicit), 5);
    assert_eq!(h.info().num_pending, 5);
    let out = h.next("3");
    let d = deliveries(&out);
    assert_eq!(seqs(&out), vec![1, 2, 3]);
    assert_eq!(d[0].to, "_INBOX.r");
    assert_eq!(d[0].subject, "orders.0");
    assert_eq!(d[0].payload, Bytes::from_static(b"m1"));
    assert_eq!(d[0].reply, format!("$JS.ACK.S.C.1.1.1.{WALL0}.4"));
    assert_eq!(d[2].reply, format!("$JS.ACK.S.C.1.3.3.{WALL0}.2"));
    assert!(out.contains(&Output::StateChanged));
    let i = h.info();
    assert_eq!((i.delivered.consumer_seq, i.delivered.stream_seq), (3, 3));
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (0, 0));
    assert_eq!(i.num_ack_pending, 3);
    assert_eq!(i.num_pending, 2);
    assert_eq!(i.num_waiting, 0, "the batch is complete");
    assert_eq!(i.num_redelivered, 0);
    assert!(i.delivered.last_active.is_some());
    assert!(i.ack_floor.last_active.is_none());
}

/// nats-server `nextWaiting`/`processWaiting`: a request whose reply lost
/// its subscribers is dropped without a status, and the next message goes
/// to the request behind it.
#[test]
fn request_without_interest_is_dropped() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    assert_eq!(h.c.requests_queued(), 0);
    h.next(r#"{"batch":2,"expires":60000000000}"#);
    h.input(Input::Next {
        reply: "_INBOX.other".into(),
        body: Bytes::from_static(b"1"),
    });
    assert_eq!(h.c.requests_queued(), 2);
    let replies: Vec<&str> = h.c.waiting_replies().collect();
    assert_eq!(replies, ["_INBOX.r", "_INBOX.other"]);
    let out = h.input(Input::NextInterestGone {
        reply: "_INBOX.r".into(),
    });
    assert!(statuses(&out).is_empty(), "{out:?}");
    assert_eq!(h.info().num_waiting, 1);
    let out = h.publish("orders.1");
    let d = deliveries(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].to, "_INBOX.other");
    assert_eq!(h.c.waiting_replies().count(), 0);
    assert_eq!(h.c.requests_queued(), 2);
}

#[test]
fn explicit_acks_move_the_floor_only_from_the_bottom() {
    let mut h = H::with(pull(AckPolicy::Explicit), 4);
    let d = deliveries(&h.next("4"));
    h.ack(&d[1], "+ACK");
    let i = h.info();
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (0, 0));
    assert_eq!(i.num_ack_pending, 3);
    h.ack(&d[0], "");
    let i = h.info();
    assert_eq!(
        (i.ack_floor.consumer_seq, i.ack_floor.stream_seq),
        (2, 2),
        "floor jumps over the acked 2"
    );
    h.ack(&d[3], "+ACK");
    h.ack(&d[2], "+ACK");
    let i = h.info();
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (4, 4));
    assert_eq!(i.num_ack_pending, 0);
    assert!(i.ack_floor.last_active.is_some());
}

#[test]
fn double_ack_gets_an_empty_reply() {
    let mut h = H::with(pull(AckPolicy::Explicit), 1);
    let d = deliveries(&h.next("1"));
    let out = h.ack_with_reply(&d[0], "+ACK", Some("_INBOX.ack"));
    assert!(out.contains(&Output::AckReply("_INBOX.ack".into())));
    // Acking again still answers (nats-server's updateAcks replies).
    let out = h.ack_with_reply(&d[0], "+ACK", Some("_INBOX.ack2"));
    assert!(out.contains(&Output::AckReply("_INBOX.ack2".into())));
    // A bad ack subject gets no answer.
    let out = h.input(Input::Ack {
        info: parse_ack_reply("$JS.ACK.S.C.x").map(|(_, _, r)| r),
        reply: Some("_INBOX.bad".into()),
        body: Bytes::new(),
    });
    assert!(!out.iter().any(|o| matches!(o, Output::AckReply(_))));
}

#[test]
fn ack_none_moves_floor_on_delivery_and_never_redelivers() {
    let mut h = H::with(pull(AckPolicy::None), 3);
    assert_eq!(seqs(&h.next("2")), vec![1, 2]);
    let i = h.info();
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (2, 2));
    assert_eq!(i.num_ack_pending, 0);
    h.next(r#"{"batch":5,"expires":60000000000}"#);
    assert_eq!(seqs(&h.advance(Duration::from_secs(40))), Vec::<u64>::new());
    // With limits retention, an ack with a reply under ack none is not answered.
    let d = Delivery {
        reply: format!("$JS.ACK.S.C.1.1.1.{WALL0}.0"),
        ..Delivery::default_for_test()
    };
    let out = h.ack_with_reply(&d, "", Some("_INBOX.x"));
    assert!(!out.iter().any(|o| matches!(o, Output::AckReply(_))));
}

impl Delivery {
    fn default_for_test() -> Self {
        Delivery {
            to: String::new(),
            subject: String::new(),
            reply: String::new(),
            hdr: Bytes::new(),
            payload: Bytes::new(),
            stream_seq: 0,
            consumer_seq: 0,
            delivered: 0,
        }
    }
}

#[test]
fn ack_all_acknowledges_everything_below() {
    let mut h = H::with(pull(AckPolicy::All), 5);
    let d = deliveries(&h.next("5"));
    h.ack(&d[2], "+ACK");
    let i = h.info();
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (3, 3));
    assert_eq!(i.num_ack_pending, 2);
    // Acking below the floor changes nothing.
    h.ack(&d[0], "+ACK");
    assert_eq!(h.info().num_ack_pending, 2);
    h.ack(&d[4], "");
    let i = h.info();
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (5, 5));
    assert_eq!(i.num_ack_pending, 0);
}

#[test]
fn nak_redelivers_at_once_with_advisory() {
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    let d = deliveries(&h.next("1"));
    let out = h.ack(&d[0], "-NAK");
    let adv = advisories(&out);
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].kind, AdvisoryKind::Naked);
    assert_eq!(
        adv[0].subject(),
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.S.C"
    );
    let j: serde_json::Value = serde_json::from_str(&adv[0].to_json("ID1")).expect("json");
    assert_eq!(j["type"], "io.nats.jetstream.advisory.v1.nak");
    assert_eq!(j["id"], "ID1");
    assert_eq!(j["consumer_seq"], 1);
    assert_eq!(j["stream_seq"], 1);
    assert_eq!(j["deliveries"], 1);
    assert!(j.get("domain").is_none());
    // The redelivery goes first, before message 2.
    let out = h.next("2");
    let d = deliveries(&out);
    assert_eq!(seqs(&out), vec![1, 2]);
    assert_eq!(d[0].delivered, 2);
    assert_eq!(d[0].consumer_seq, 2);
    assert_eq!(d[0].reply, format!("$JS.ACK.S.C.2.1.2.{WALL0}.1"));
    let i = h.info();
    assert_eq!(i.num_redelivered, 1);
    assert_eq!(i.num_ack_pending, 2);
    assert_eq!(i.delivered.consumer_seq, 3);
}

#[test]
fn nak_with_delay_waits() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(30);
    let mut h = H::with(cfg, 1);
    let d = deliveries(&h.next("1"));
    h.ack(&d[0], r#"-NAK {"delay":5000000000}"#);
    h.next(r#"{"batch":1,"expires":60000000000}"#);
    assert!(seqs(&h.advance(Duration::from_millis(4900))).is_empty());
    let out = h.advance(Duration::from_millis(200));
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(deliveries(&out)[0].delivered, 2);
}

#[test]
fn progress_restarts_ack_wait() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(10);
    let mut h = H::with(cfg, 1);
    let d = deliveries(&h.next("1"));
    h.next(r#"{"batch":1,"expires":60000000000}"#);
    h.advance(Duration::from_secs(8));
    h.ack(&d[0], "+WPI");
    assert!(seqs(&h.advance(Duration::from_secs(8))).is_empty());
    assert_eq!(seqs(&h.advance(Duration::from_millis(2100))), vec![1]);
}

#[test]
fn term_acks_and_advises_with_reason() {
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    let d = deliveries(&h.next("2"));
    let out = h.ack_with_reply(&d[0], "+TERM not for me", Some("_INBOX.t"));
    let adv = advisories(&out);
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].kind, AdvisoryKind::Terminated);
    assert_eq!(adv[0].reason, "not for me");
    assert_eq!(
        adv[0].subject(),
        "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.S.C"
    );
    let j: serde_json::Value = serde_json::from_str(&adv[0].to_json("x")).expect("json");
    assert_eq!(j["type"], "io.nats.jetstream.advisory.v1.terminated");
    assert_eq!(j["reason"], "not for me");
    assert!(out.contains(&Output::AckReply("_INBOX.t".into())));
    let i = h.info();
    assert_eq!(i.num_ack_pending, 1);
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (1, 1));
}

#[test]
fn next_ack_acks_and_pulls_more() {
    let mut h = H::with(pull(AckPolicy::Explicit), 4);
    let d = deliveries(&h.next("1"));
    let out = h.ack_with_reply(&d[0], "+NXT 2", Some("_INBOX.nxt"));
    let got = deliveries(&out);
    assert_eq!(seqs(&out), vec![2, 3]);
    assert!(got.iter().all(|d| d.to == "_INBOX.nxt"));
    assert!(!out.iter().any(|o| matches!(o, Output::AckReply(_))));
    assert_eq!(h.info().ack_floor.stream_seq, 1);
}

// ----------------------------------------------------------------------
// Redelivery, backoff, max_deliver, max_ack_pending.

#[test]
fn redelivery_after_ack_wait() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(2);
    let mut h = H::with(cfg, 1);
    h.next("1");
    h.next(r#"{"batch":5,"expires":60000000000}"#);
    assert!(seqs(&h.advance(Duration::from_millis(1999))).is_empty());
    let out = h.advance(Duration::from_millis(10));
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(deliveries(&out)[0].delivered, 2);
    let i = h.info();
    assert_eq!(i.num_redelivered, 1);
    assert_eq!(i.num_ack_pending, 1);
    assert_eq!(i.delivered.consumer_seq, 2);
}

#[test]
fn backoff_steps_redeliveries() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.backoff = vec![Duration::from_secs(1), Duration::from_secs(3)];
    cfg.max_deliver = 10;
    let mut h = H::with(cfg, 1);
    h.next("1");
    h.next(r#"{"batch":10,"expires":100000000000}"#);
    let mut at_ms = Vec::new();
    for step in 1..=1100 {
        let out = h.advance(Duration::from_millis(10));
        if !deliveries(&out).is_empty() {
            at_ms.push(step * 10);
        }
    }
    // 1s, then 3s, then the last step again (each timer adds nats-server's 1ms).
    assert_eq!(at_ms, vec![1010, 4010, 7010, 10010]);
}

#[test]
fn max_deliver_retires_with_advisory() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(1);
    cfg.max_deliver = 2;
    let mut h = H::with(cfg, 2);
    h.next("1");
    assert_eq!(
        seqs(&h.next(r#"{"batch":10,"expires":100000000000}"#)),
        vec![2]
    );
    let out = h.advance(Duration::from_secs(5));
    // Each is redelivered once, then retires after its second ack wait.
    let d = deliveries(&out);
    assert_eq!(
        d.iter()
            .map(|d| (d.stream_seq, d.delivered))
            .collect::<Vec<_>>(),
        vec![(1, 2), (2, 2)]
    );
    let adv = advisories(&out);
    assert_eq!(adv.len(), 2);
    assert_eq!(adv[0].kind, AdvisoryKind::MaxDeliveries);
    assert_eq!((adv[0].stream_seq, adv[0].deliveries), (1, 2));
    assert_eq!(
        adv[0].subject(),
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.S.C"
    );
    let j: serde_json::Value = serde_json::from_str(&adv[0].to_json("x")).expect("json");
    assert_eq!(j["type"], "io.nats.jetstream.advisory.v1.max_deliver");
    assert!(j.get("consumer_seq").is_none());
    let i = h.info();
    assert_eq!(i.num_ack_pending, 0);
    // Their last deliveries were redeliveries (nats-server 2.15.1 counts them).
    assert_eq!(i.num_redelivered, 2);
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (4, 2));
}

/// nats-server 2.15.1 (`loopAndGatherMsgs`): a `no_wait` request blocked by
/// `max_ack_pending` is not at the end of the stream; it waits for acks.
#[test]
fn no_wait_request_waits_while_max_ack_pending_blocks() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.max_ack_pending = 2;
    let mut h = H::with(cfg, 3);
    let out = h.next(r#"{"batch":5,"no_wait":true}"#);
    let d = deliveries(&out);
    assert_eq!(seqs(&out), vec![1, 2]);
    assert!(statuses(&out).is_empty());
    // Within the ack wait: nothing ends it, nothing is redelivered.
    assert!(h.advance(Duration::from_secs(10)).is_empty());
    assert_eq!(h.info().num_waiting, 1);
    // An ack lets the last message go; blocked again, the request waits ...
    let out = h.ack(&d[0], "+ACK");
    assert_eq!(seqs(&out), vec![3]);
    assert!(statuses(&out).is_empty());
    // ... until the next ack lets it reach the end of the stream.
    let out = h.ack(&d[1], "+ACK");
    assert_eq!(statuses(&out), vec!["NATS/1.0 404 No Messages\r\n\r\n"]);
}

#[test]
fn shutdown_answers_waiting_requests_with_what_they_wanted() {
    let mut h = H::with(pull(AckPolicy::Explicit), 1);
    h.next(r#"{"batch":3,"expires":60000000000}"#);
    h.next(r#"{"batch":2,"max_bytes":1000,"expires":60000000000}"#);
    h.c.shutdown();
    let mut out = Vec::new();
    while let Some(o) = h.c.poll_output() {
        out.push(o);
    }
    assert_eq!(
        statuses(&out),
        vec![
            "NATS/1.0 409 Server Shutdown\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 0\r\n\r\n",
            "NATS/1.0 409 Server Shutdown\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 1000\r\n\r\n",
        ]
    );
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn max_ack_pending_blocks_until_acked() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.max_ack_pending = 2;
    let mut h = H::with(cfg, 5);
    let out = h.next(r#"{"batch":5,"expires":60000000000}"#);
    let d = deliveries(&out);
    assert_eq!(seqs(&out), vec![1, 2]);
    assert_eq!(h.info().num_waiting, 1, "the request waits, not expired");
    let out = h.ack(&d[0], "+ACK");
    assert_eq!(seqs(&out), vec![3]);
    assert_eq!(h.info().num_ack_pending, 2);
}

// ----------------------------------------------------------------------
// Pull request life cycle.

#[test]
fn pull_expires_with_request_timeout() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    h.next(r#"{"batch":3,"expires":1000000000}"#);
    assert_eq!(h.info().num_waiting, 1);
    let out = h.advance(Duration::from_millis(1000));
    assert_eq!(
        statuses(&out),
        vec!["NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 0\r\n\r\n"]
    );
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn waiting_request_gets_new_messages() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    h.next(r#"{"batch":2,"expires":5000000000}"#);
    let out = h.publish("orders.new");
    let d = deliveries(&out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].reply, format!("$JS.ACK.S.C.1.1.1.{WALL0}.0"));
    assert_eq!(h.info().num_waiting, 1);
    assert_eq!(seqs(&h.publish("orders.new")), vec![2]);
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn no_wait_answers() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    let out = h.next(r#"{"batch":2,"no_wait":true}"#);
    assert_eq!(statuses(&out), vec!["NATS/1.0 404 No Messages\r\n\r\n"]);
    h.publish("orders.a");
    // One message for a batch of two: delivered, then the request ends with
    // `404 No Messages`, as nats-server 2.15.1 ends it.
    let out = h.next(r#"{"batch":2,"no_wait":true}"#);
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(statuses(&out), vec!["NATS/1.0 404 No Messages\r\n\r\n"]);
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn max_bytes_limits_a_request() {
    let mut h = H::with(pull(AckPolicy::Explicit), 3);
    // Each delivery counts subject + ack reply + headers + payload.
    let reply_len = format!("$JS.ACK.S.C.1.1.1.{WALL0}.2").len() as i64;
    let one = "orders.0".len() as i64 + reply_len + 2;
    let out = h.next(&format!(r#"{{"batch":10,"max_bytes":{}}}"#, one + 5));
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(
        statuses(&out),
        vec!["NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 9\r\nNats-Pending-Bytes: 5\r\n\r\n"]
    );
    // Exactly the size of one message: delivered, then the batch is complete.
    let out = h.next(&format!(r#"{{"batch":10,"max_bytes":{one}}}"#));
    assert_eq!(seqs(&out), vec![2]);
    assert!(statuses(&out).is_empty());
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn batch_completed_with_bytes_left() {
    let mut h = H::with(pull(AckPolicy::Explicit), 3);
    let out = h.next(r#"{"batch":2,"max_bytes":100000}"#);
    assert_eq!(seqs(&out), vec![1, 2]);
    let st = statuses(&out);
    assert_eq!(st.len(), 1);
    assert!(
        st[0].starts_with(
            "NATS/1.0 409 Batch Completed\r\nNats-Pending-Messages: 0\r\nNats-Pending-Bytes: "
        ),
        "{}",
        st[0]
    );
}

#[test]
fn request_limits_and_max_waiting() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.max_waiting = 1;
    cfg.max_batch = 10;
    cfg.max_expires = Duration::from_secs(2);
    cfg.max_bytes = 1000;
    let mut h = H::with(cfg, 0);
    assert_eq!(
        statuses(&h.next("20")),
        vec!["NATS/1.0 409 Exceeded MaxRequestBatch of 10\r\n\r\n"]
    );
    assert_eq!(
        statuses(&h.next(r#"{"batch":1,"expires":3000000000}"#)),
        vec!["NATS/1.0 409 Exceeded MaxRequestExpires of 2s\r\n\r\n"]
    );
    assert_eq!(
        statuses(&h.next(r#"{"batch":1,"max_bytes":2000}"#)),
        vec!["NATS/1.0 409 Exceeded MaxRequestMaxBytes of 1000\r\n\r\n"]
    );
    assert!(statuses(&h.next(r#"{"batch":1,"expires":1000000000}"#)).is_empty());
    assert_eq!(
        statuses(&h.next(r#"{"batch":1,"expires":1000000000}"#)),
        vec!["NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n"]
    );
    assert_eq!(
        statuses(&h.next("{bad")),
        vec![format!(
            "NATS/1.0 400 Bad Request - {}\r\n\r\n",
            parse_pull_request(b"{bad").expect_err("bad")
        )]
    );
}

#[test]
fn pull_request_heartbeats() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    h.next(r#"{"batch":1,"expires":10000000000,"idle_heartbeat":2000000000}"#);
    let out = h.advance(Duration::from_millis(4500));
    assert_eq!(
        statuses(&out),
        vec![
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n";
            2
        ]
    );
}

#[test]
fn push_based_refuses_pulls_and_stop_releases_requests() {
    let mut h = H::with(push(AckPolicy::Explicit), 0);
    assert_eq!(
        statuses(&h.next("1")),
        vec!["NATS/1.0 409 Consumer is push based\r\n\r\n"]
    );
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    h.next(r#"{"batch":1,"expires":10000000000}"#);
    h.c.stop();
    assert_eq!(
        statuses(&h.drain()),
        vec!["NATS/1.0 409 Consumer Deleted\r\n\r\n"]
    );
    assert!(h.c.is_closed());
    assert_eq!(h.c.poll_timeout(), None);
}

// ----------------------------------------------------------------------
// Push.

#[test]
fn push_delivers_only_with_interest() {
    let mut h = H::with(push(AckPolicy::Explicit), 2);
    assert!(h.info().push_bound.eq(&false));
    let out = h.input(Input::Interest(true));
    let d = deliveries(&out);
    assert_eq!(seqs(&out), vec![1, 2]);
    assert_eq!(d[0].to, "deliver.here");
    assert!(h.info().push_bound);
    h.input(Input::Interest(false));
    assert!(seqs(&h.publish("orders.x")).is_empty());
    assert_eq!(seqs(&h.input(Input::Interest(true))), vec![3]);
}

#[test]
fn push_idle_heartbeat_headers() {
    let mut cfg = push(AckPolicy::Explicit);
    cfg.idle_heartbeat = Duration::from_secs(1);
    let mut h = H::with(cfg, 2);
    h.input(Input::Interest(true));
    let out = h.advance(Duration::from_millis(1000));
    assert_eq!(
        statuses(&out),
        vec!["NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2\r\n\r\n"]
    );
    // Without interest no heartbeat goes out.
    h.input(Input::Interest(false));
    assert!(statuses(&h.advance(Duration::from_secs(3))).is_empty());
}

#[test]
fn push_flow_control_stalls_until_answered() {
    let mut cfg = push(AckPolicy::None);
    cfg.idle_heartbeat = Duration::from_secs(5);
    cfg.flow_control = true;
    let mut h = H::with(cfg, 0);
    for _ in 0..3 {
        let seq = h.src.store("orders.big", &"x".repeat(700 * 1024), WALL0);
        h.input(Input::Stored {
            seq,
            subject: "orders.big".into(),
        });
    }
    let out = h.input(Input::Interest(true));
    // Window starts at 2 MiB: the FC request goes past half of it (the second
    // message), deliveries stop past the whole window (the third).
    assert_eq!(seqs(&out), vec![1, 2, 3]);
    let fc: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Status {
                reply: Some(r),
                hdr,
                to,
            } => Some((r.clone(), hdr.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(fc.len(), 1);
    assert_eq!(fc[0].0, "$JS.FC.S.C.1000");
    assert_eq!(
        fc[0].1,
        Bytes::from_static(b"NATS/1.0 100 FlowControl Request\r\n\r\n")
    );
    assert_eq!(fc[0].2, "deliver.here");
    let seq = h.src.store("orders.big", "y", WALL0);
    let out = h.input(Input::Stored {
        seq,
        subject: "orders.big".into(),
    });
    assert!(seqs(&out).is_empty(), "stalled past the window");
    let hb = h.advance(Duration::from_secs(5));
    assert_eq!(
        statuses(&hb),
        vec!["NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 3\r\nNats-Consumer-Stalled: $JS.FC.S.C.1000\r\n\r\n"]
    );
    let out = h.input(Input::FlowControlReply {
        subject: "$JS.FC.S.C.1000".into(),
    });
    assert_eq!(seqs(&out), vec![4]);
}

#[test]
fn headers_only_sends_size() {
    let mut cfg = pull(AckPolicy::None);
    cfg.headers_only = true;
    let mut h = H::with(cfg, 0);
    h.src
        .store_hdr("orders.h", "NATS/1.0\r\nA: b\r\n\r\n", "hello");
    h.src.store("orders.p", "12345678", WALL0);
    let d = deliveries(&h.next("2"));
    assert_eq!(
        d[0].hdr,
        Bytes::from_static(b"NATS/1.0\r\nA: b\r\nNats-Msg-Size: 5\r\n\r\n")
    );
    assert!(d[0].payload.is_empty());
    assert_eq!(
        d[1].hdr,
        Bytes::from_static(b"NATS/1.0\r\nNats-Msg-Size: 8\r\n\r\n")
    );
}

// ----------------------------------------------------------------------
// Deliver policies and filters.

fn first_seqs(cfg: ConsumerConfig) -> (u64, Vec<u64>) {
    let mut h = H::with(cfg, 9);
    let pending = h.info().num_pending;
    (pending, seqs(&h.next("20")))
}

#[test]
fn deliver_policies() {
    let base = pull(AckPolicy::None);
    assert_eq!(first_seqs(base.clone()).1, (1..=9).collect::<Vec<_>>());
    let mut c = base.clone();
    c.deliver_policy = DeliverPolicy::Last;
    assert_eq!(first_seqs(c), (1, vec![9]));
    let mut c = base.clone();
    c.deliver_policy = DeliverPolicy::New;
    assert_eq!(first_seqs(c), (0, vec![]));
    let mut c = base.clone();
    c.deliver_policy = DeliverPolicy::ByStartSequence;
    c.opt_start_seq = 7;
    assert_eq!(first_seqs(c), (3, vec![7, 8, 9]));
    let mut c = base.clone();
    c.deliver_policy = DeliverPolicy::LastPerSubject;
    c.filter_subject = "orders.*".into();
    assert_eq!(first_seqs(c), (3, vec![7, 8, 9]));
    let mut c = base.clone();
    c.deliver_policy = DeliverPolicy::Last;
    c.filter_subject = "orders.1".into();
    assert_eq!(first_seqs(c), (1, vec![8]));
    let mut c = base.clone();
    c.filter_subjects = vec!["orders.0".into(), "orders.2".into()];
    assert_eq!(first_seqs(c), (6, vec![1, 3, 4, 6, 7, 9]));
}

#[test]
fn deliver_by_start_time() {
    let mut src = VecSource::default();
    for i in 0..5 {
        src.store("orders.t", "x", WALL0 + i * 1_000_000_000);
    }
    let mut cfg = pull(AckPolicy::None);
    cfg.deliver_policy = DeliverPolicy::ByStartTime;
    cfg.opt_start_time = Some(ns_rfc3339(WALL0 + 2_500_000_000));
    let now = origin();
    let mut c = Consumer::new(
        "S",
        "C",
        cfg,
        &facts(),
        &ServerLimits::default(),
        now,
        WALL0,
        None,
        &src,
    )
    .expect("valid");
    assert_eq!(c.info(now, &src).num_pending, 2);
    assert_eq!(c.info(now, &src).delivered.stream_seq, 3);
}

#[test]
fn last_per_subject_then_new_messages() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.deliver_policy = DeliverPolicy::LastPerSubject;
    cfg.filter_subject = ">".into();
    let mut h = H::with(cfg, 6);
    assert_eq!(seqs(&h.next("2")), vec![4, 5]);
    h.publish("orders.9");
    assert_eq!(seqs(&h.next("5")), vec![6, 7]);
    assert_eq!(h.info().num_pending, 0);
    assert_eq!(h.info().delivered.stream_seq, 7);
}

#[test]
fn num_pending_tracks_stores_and_removals() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.filter_subject = "orders.1".into();
    let mut h = H::with(cfg, 6);
    assert_eq!(h.info().num_pending, 2);
    h.publish("orders.1");
    h.publish("orders.2");
    assert_eq!(h.c.npc, 3, "cached count follows stored messages");
    let subject = h.src.remove(5);
    h.input(Input::Removed { seq: 5, subject });
    assert_eq!(h.c.npc, 2);
    assert_eq!(h.info().num_pending, 2);
    let out = h.next("1");
    assert_eq!(
        deliveries(&out)[0].reply,
        format!("$JS.ACK.S.C.1.2.1.{WALL0}.1")
    );
}

// ----------------------------------------------------------------------
// Stream events, retention, state.

#[test]
fn removed_pending_message_is_terminated() {
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    h.next("2");
    let subject = h.src.remove(1);
    let out = h.input(Input::Removed { seq: 1, subject });
    let adv = advisories(&out);
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].kind, AdvisoryKind::Terminated);
    assert_eq!(adv[0].reason, "Unacknowledged message was deleted");
    let i = h.info();
    assert_eq!(i.num_ack_pending, 1);
    assert_eq!(i.ack_floor.stream_seq, 1);
}

#[test]
fn purge_moves_floors_and_pending() {
    let mut h = H::with(pull(AckPolicy::Explicit), 6);
    h.next("3");
    for s in 1..=4 {
        h.src.remove(s);
    }
    h.input(Input::Purged {
        seq: 5,
        wider: false,
    });
    let i = h.info();
    assert_eq!(i.num_ack_pending, 0);
    assert_eq!((i.ack_floor.consumer_seq, i.ack_floor.stream_seq), (3, 4));
    assert_eq!((i.delivered.consumer_seq, i.delivered.stream_seq), (3, 4));
    assert_eq!(i.num_pending, 2);
    assert_eq!(seqs(&h.next("5")), vec![5, 6]);
}

#[test]
fn interest_retention_reports_acks_and_needs() {
    let f = StreamFacts {
        retention: Retention::Interest,
        ..facts()
    };
    let mut h = H::with_facts(pull(AckPolicy::Explicit), 3, f.clone());
    assert!(h.c.needs_ack(1, "orders.0"));
    let d = deliveries(&h.next("3"));
    let out = h.ack_with_reply(&d[1], "", Some("_INBOX.a"));
    assert!(out.contains(&Output::Acked { first: 2, last: 2 }));
    assert!(out.contains(&Output::AckReply("_INBOX.a".into())));
    assert!(!h.c.needs_ack(2, "orders.1"));
    assert!(h.c.needs_ack(1, "orders.0"));
    assert!(h.c.needs_ack(9, "orders.9"), "not yet delivered");
    let mut all = H::with_facts(pull(AckPolicy::All), 4, f.clone());
    let d = deliveries(&all.next("4"));
    let out = all.ack(&d[2], "");
    assert!(out.contains(&Output::Acked { first: 1, last: 3 }));
    let mut none = H::with_facts(pull(AckPolicy::None), 2, f);
    let out = none.next("2");
    assert!(out.contains(&Output::Acked { first: 1, last: 1 }));
    assert!(out.contains(&Output::Acked { first: 2, last: 2 }));
    // Filtered consumers don't need messages outside their filter.
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.filter_subject = "orders.0".into();
    let h = H::with(cfg, 3);
    assert!(!h.c.needs_ack(2, "orders.1"));
}

#[test]
fn state_round_trip_restores_the_same_info() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(5);
    let mut h = H::with(cfg.clone(), 8);
    let d = deliveries(&h.next("5"));
    h.ack(&d[0], "");
    h.ack(&d[2], "");
    h.ack(&d[3], "-NAK");
    h.next("1");
    let before = h.info();
    let state = h.c.state();
    // The server is down for 6s, longer than the ack wait.
    let now = h.now + Duration::from_secs(6);
    let json = serde_json::to_string(&state).expect("serialises");
    let back: ConsumerState = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, state);
    assert_eq!(back.redelivered.get(&4), Some(&1));
    let mut c2 = Consumer::new(
        "S",
        "C",
        cfg,
        &facts(),
        &ServerLimits::default(),
        now,
        h.ns() + 6_000_000_000,
        Some(back),
        &h.src,
    )
    .expect("valid");
    c2.set_created(WALL0);
    let after = c2.info(now, &h.src);
    assert_eq!(after.delivered.consumer_seq, before.delivered.consumer_seq);
    assert_eq!(after.delivered.stream_seq, before.delivered.stream_seq);
    assert_eq!(
        after.ack_floor,
        SequenceInfo {
            last_active: None,
            ..before.ack_floor.clone()
        }
    );
    assert_eq!(after.num_ack_pending, before.num_ack_pending);
    assert_eq!(after.num_redelivered, before.num_redelivered);
    assert_eq!(after.num_pending, before.num_pending);
    assert_eq!(after.created, before.created);
    // Pending deliveries come back due: a request after the ack wait gets them.
    let mut out = Vec::new();
    let mut now = now;
    c2.handle_input(
        now,
        Input::Next {
            reply: "_INBOX.r2".into(),
            body: Bytes::from_static(br#"{"batch":10,"expires":30000000000}"#),
        },
        &h.src,
    );
    while let Some(o) = c2.poll_output() {
        out.push(o);
    }
    let end = now + Duration::from_secs(2);
    while let Some(t) = c2.poll_timeout().filter(|t| *t <= end) {
        now = t;
        c2.handle_timeout(now, &h.src);
        while let Some(o) = c2.poll_output() {
            out.push(o);
        }
    }
    let mut got = seqs(&out);
    got.sort_unstable();
    assert_eq!(got, vec![2, 4, 5, 6, 7, 8]);
}

#[test]
fn inactive_threshold_fires_for_idle_consumers() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.inactive_threshold = Duration::from_secs(10);
    let mut h = H::with(cfg, 0);
    // Idle for the threshold since the last request: inactive.
    assert!(!h
        .advance(Duration::from_secs(9))
        .contains(&Output::Inactive));
    h.next(r#"{"batch":1,"expires":15000000000}"#);
    // A waiting request keeps it alive past the threshold.
    assert!(!h
        .advance(Duration::from_secs(14))
        .contains(&Output::Inactive));
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(statuses(&out).len(), 1, "the request expired");
    assert!(out.contains(&Output::Inactive));
    let mut cfg = push(AckPolicy::Explicit);
    cfg.inactive_threshold = Duration::from_secs(2);
    let mut h = H::with(cfg, 0);
    h.input(Input::Interest(true));
    assert!(!h
        .advance(Duration::from_secs(5))
        .contains(&Output::Inactive));
    h.input(Input::Interest(false));
    assert!(h
        .advance(Duration::from_secs(3))
        .contains(&Output::Inactive));
}

#[test]
fn replay_original_keeps_gaps() {
    let mut src = VecSource::default();
    src.store("orders.a", "1", WALL0);
    src.store("orders.a", "2", WALL0 + 2_000_000_000);
    src.store("orders.a", "3", WALL0 + 2_500_000_000);
    let mut cfg = push(AckPolicy::None);
    cfg.replay_policy = ReplayPolicy::Original;
    let t0 = origin();
    let c = Consumer::new(
        "S",
        "C",
        cfg,
        &facts(),
        &ServerLimits::default(),
        t0,
        WALL0,
        None,
        &src,
    )
    .expect("valid");
    let mut h = H {
        src,
        c,
        now: t0,
        t0,
    };
    h.drain();
    assert_eq!(seqs(&h.input(Input::Interest(true))), vec![1]);
    assert!(seqs(&h.advance(Duration::from_millis(1900))).is_empty());
    assert_eq!(seqs(&h.advance(Duration::from_millis(200))), vec![2]);
    assert_eq!(seqs(&h.advance(Duration::from_millis(600))), vec![3]);
}

#[test]
fn update_config_applies_new_limits() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.max_ack_pending = 1;
    let mut h = H::with(cfg.clone(), 3);
    h.next(r#"{"batch":3,"expires":10000000000}"#);
    assert_eq!(h.info().num_ack_pending, 1);
    cfg.max_ack_pending = 3;
    h.c.update_config(
        h.now,
        cfg.clone(),
        &facts(),
        &ServerLimits::default(),
        false,
        &h.src,
    )
    .expect("allowed");
    let out = h.drain();
    assert_eq!(seqs(&out), vec![2, 3]);
    assert_eq!(h.c.config().max_ack_pending, 3);
    cfg.ack_policy = AckPolicy::All;
    assert!(h
        .c
        .update_config(
            h.now,
            cfg,
            &facts(),
            &ServerLimits::default(),
            false,
            &h.src
        )
        .is_err());
}

#[test]
fn sampled_acks_publish_metrics() {
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.sample_freq = "50%".into();
    let mut h = H::with(cfg, 4);
    let d = deliveries(&h.next("4"));
    h.now += Duration::from_millis(250);
    let mut metrics = Vec::new();
    for (i, d) in d.iter().enumerate() {
        let body = if i == 3 { "+TERM" } else { "+ACK" };
        metrics.extend(
            advisories(&h.ack(d, body))
                .into_iter()
                .filter(|a| a.kind == AdvisoryKind::AckMetric),
        );
    }
    // Half of the three sampled acks (+TERM is not sampled, as in nats-server).
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].subject(), "$JS.EVENT.METRIC.CONSUMER.ACK.S.C");
    let j: serde_json::Value = serde_json::from_str(&metrics[0].to_json("m")).expect("json");
    assert_eq!(j["type"], "io.nats.jetstream.metric.v1.consumer_ack");
    assert_eq!(j["stream_seq"], 2);
    assert_eq!(j["consumer_seq"], 2);
    assert_eq!(j["ack_time"], 250_000_000);
    assert_eq!(j["deliveries"], 1);
}

#[test]
fn last_per_subject_pending_counts_the_start_list_and_new_messages() {
    // KV watchers read the ack reply's pending token to know when the
    // initial values are done: it must reach 0 on the last one.
    let mut cfg = pull(AckPolicy::None);
    cfg.deliver_policy = DeliverPolicy::LastPerSubject;
    cfg.filter_subject = "orders.*".into();
    let mut h = H::with(cfg, 6);
    assert_eq!(h.info().num_pending, 3);
    h.publish("orders.0");
    assert_eq!(h.info().num_pending, 4);
    // A removed message that is neither in the start list nor new changes nothing.
    let subject = h.src.remove(1);
    h.input(Input::Removed { seq: 1, subject });
    assert_eq!(h.c.cached_num_pending(), 4);
    // Removing one of the start list does.
    let subject = h.src.remove(5);
    h.input(Input::Removed { seq: 5, subject });
    assert_eq!(h.c.cached_num_pending(), 3);
    assert_eq!(h.info().num_pending, 3);
    let d = deliveries(&h.next("10"));
    assert_eq!(
        d.iter()
            .map(|d| (d.stream_seq, d.reply.rsplit('.').next().map(str::to_string)))
            .collect::<Vec<_>>(),
        vec![
            (4, Some("2".to_string())),
            (6, Some("1".to_string())),
            (7, Some("0".to_string()))
        ]
    );
}

#[test]
fn wider_purge_drops_pending_deliveries_of_purged_subjects() {
    let mut h = H::with(pull(AckPolicy::Explicit), 6);
    h.next("4");
    // Purge of subject orders.1 only (seqs 2 and 5), narrower than the consumer.
    h.src.remove(2);
    h.src.remove(5);
    h.input(Input::Purged {
        seq: 0,
        wider: true,
    });
    let st = h.c.state();
    assert_eq!(
        st.pending.keys().copied().collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert_eq!(h.info().num_pending, 1);
    assert_eq!(seqs(&h.next("5")), vec![6]);
}

#[test]
fn no_wait_with_expires_waits_for_a_first_message() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    assert!(statuses(&h.next(r#"{"batch":3,"no_wait":true,"expires":2000000000}"#)).is_empty());
    assert_eq!(h.info().num_waiting, 1);
    // The first message is delivered and the one-shot request ends with it.
    let out = h.publish("orders.a");
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(statuses(&out), vec!["NATS/1.0 404 No Messages\r\n\r\n"]);
    // Nothing arrives: it lives until it expires.
    h.next(r#"{"batch":3,"no_wait":true,"expires":2000000000}"#);
    assert!(statuses(&h.advance(Duration::from_millis(1900))).is_empty());
    assert_eq!(statuses(&h.advance(Duration::from_millis(100))).len(), 1);
    assert_eq!(h.info().num_waiting, 0);
}

#[test]
fn rate_limit_spaces_push_deliveries() {
    let mut cfg = push(AckPolicy::None);
    cfg.rate_limit_bps = 8_000;
    let mut h = H::with(cfg, 3);
    let out = h.input(Input::Interest(true));
    let d = deliveries(&out);
    assert_eq!(d.len(), 1, "the first goes at once");
    // Each delivery costs its size in bits at 8000 bits per second.
    let size = (d[0].subject.len() + d[0].reply.len() + d[0].payload.len()) as u64;
    let gap = Duration::from_nanos(size * 8 * 1_000_000_000 / 8_000);
    assert!(seqs(&h.advance(gap - Duration::from_millis(1))).is_empty());
    assert_eq!(seqs(&h.advance(Duration::from_millis(1))), vec![2]);
    assert_eq!(seqs(&h.advance(gap)), vec![3]);
}

#[test]
fn deliveries_of_vanished_messages_are_dropped_at_the_ack_wait_check() {
    // nats-server's checkPending: pending below the stream's first sequence is stale.
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.ack_wait = Duration::from_secs(1);
    let mut h = H::with(cfg, 3);
    h.next("3");
    h.src.remove(1);
    h.src.remove(2);
    h.next(r#"{"batch":5,"expires":10000000000}"#);
    let out = h.advance(Duration::from_millis(1010));
    assert_eq!(
        seqs(&out),
        vec![3],
        "only the message still stored comes back"
    );
    let st = h.c.state();
    assert_eq!(st.pending.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(
        st.ack_floor,
        SequencePair {
            consumer_seq: 2,
            stream_seq: 2
        }
    );
}

#[test]
fn info_json_has_nats_server_fields_in_order() {
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    h.next("1");
    let json = serde_json::to_string(&h.info()).expect("serialises");
    let keys = [
        "\"stream_name\":\"S\"",
        "\"name\":\"C\"",
        "\"created\":\"2023-11-14T22:13:20Z\"",
        "\"config\":{",
        "\"delivered\":{\"consumer_seq\":1,\"stream_seq\":1,\"last_active\":\"2023-11-14T22:13:20Z\"}",
        "\"ack_floor\":{\"consumer_seq\":0,\"stream_seq\":0}",
        "\"num_ack_pending\":1",
        "\"num_redelivered\":0",
        "\"num_waiting\":0",
        "\"num_pending\":1",
        "\"ts\":\"2023-11-14T22:13:20Z\"",
    ];
    let mut at = 0;
    for k in keys {
        let i = json[at..]
            .find(k)
            .unwrap_or_else(|| panic!("{k} after {at} in {json}"));
        at += i + k.len();
    }
    assert!(!json.contains("push_bound"), "omitted when false");
    assert!(!json.contains("cluster"));
    // Null durations read as zero, as Go does.
    let c: ConsumerConfig =
        serde_json::from_str(r#"{"ack_wait":null,"backoff":null,"metadata":null}"#).expect("nulls");
    assert_eq!(c.ack_wait, Duration::ZERO);
}

// ----------------------------------------------------------------------
// Pause (nats-server 2.11 `pause_until`, `CONSUMER.PAUSE`).

fn rfc(ns: i64) -> String {
    ns_rfc3339(ns)
}

fn pause_advisories(out: &[Output]) -> Vec<(bool, Option<String>)> {
    advisories(out)
        .into_iter()
        .filter(|a| a.kind == AdvisoryKind::Pause)
        .map(|a| (a.paused, a.pause_until))
        .collect()
}

#[test]
fn paused_pull_consumer_delivers_nothing_until_the_time_passes() {
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    let until = rfc(h.ns() + 5_000_000_000);
    h.c.pause(h.now, Some(until.clone()), &h.src);
    assert_eq!(
        pause_advisories(&h.drain()),
        vec![(true, Some(until.clone()))]
    );
    let info = h.info();
    assert!(info.paused);
    assert_eq!(info.pause_remaining, 5_000_000_000);
    assert_eq!(info.config.pause_until.as_deref(), Some(until.as_str()));
    // A request waits; nothing goes out while paused (heartbeats do).
    let out = h.next(r#"{"batch":5,"expires":20000000000,"idle_heartbeat":2000000000}"#);
    assert!(seqs(&out).is_empty());
    assert_eq!(h.info().num_waiting, 1);
    let out = h.advance(Duration::from_millis(4999));
    assert!(seqs(&out).is_empty());
    assert_eq!(
        statuses(&out),
        vec![
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n";
            2
        ]
    );
    assert!(seqs(&h.publish("orders.x")).is_empty());
    // At pause_until: the unpause advisory, then delivery.
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(pause_advisories(&out), vec![(false, Some(until))]);
    assert_eq!(seqs(&out), vec![1, 2, 3]);
    let info = h.info();
    assert!(!info.paused);
    assert_eq!(info.pause_remaining, 0);
}

#[test]
fn paused_no_wait_request_ends_at_once() {
    // nats-server answers a no_wait request of a paused consumer as at the
    // end of the stream.
    let mut h = H::with(pull(AckPolicy::Explicit), 2);
    h.c.pause(h.now, Some(rfc(h.ns() + 60_000_000_000)), &h.src);
    h.drain();
    let out = h.next(r#"{"batch":2,"no_wait":true}"#);
    assert!(seqs(&out).is_empty());
    assert_eq!(statuses(&out), vec!["NATS/1.0 404 No Messages\r\n\r\n"]);
}

#[test]
fn resume_delivers_at_once_with_an_advisory() {
    let mut h = H::with(pull(AckPolicy::Explicit), 1);
    h.c.pause(h.now, Some(rfc(h.ns() + 60_000_000_000)), &h.src);
    h.drain();
    h.next(r#"{"batch":1,"expires":30000000000}"#);
    h.c.pause(h.now, None, &h.src);
    let out = h.drain();
    assert_eq!(pause_advisories(&out), vec![(false, None)]);
    assert_eq!(seqs(&out), vec![1]);
    assert_eq!(h.info().config.pause_until, None);
    // Pausing again to the same time is no change: no advisory.
    h.c.pause(h.now, None, &h.src);
    assert!(pause_advisories(&h.drain()).is_empty());
    // A pause in the past pauses nothing but is still a change.
    let past = rfc(h.ns() - 1);
    h.c.pause(h.now, Some(past.clone()), &h.src);
    assert_eq!(pause_advisories(&h.drain()), vec![(false, Some(past))]);
    assert!(h.c.pause_remaining(h.now).is_zero());
}

#[test]
fn paused_push_consumer_sends_only_heartbeats() {
    let mut cfg = push(AckPolicy::Explicit);
    cfg.idle_heartbeat = Duration::from_secs(1);
    cfg.pause_until = Some(rfc(WALL0 + 3_500_000_000));
    let mut h = H::with(cfg, 2);
    assert!(h.c.pause_remaining(h.now) == Duration::from_millis(3500));
    let out = h.input(Input::Interest(true));
    assert!(seqs(&out).is_empty());
    let out = h.advance(Duration::from_millis(3000));
    assert!(seqs(&out).is_empty());
    assert_eq!(statuses(&out).len(), 3);
    let out = h.advance(Duration::from_millis(500));
    assert_eq!(seqs(&out), vec![1, 2]);
    assert_eq!(pause_advisories(&out).len(), 1);
}

#[test]
fn create_request_repeats_the_pause_advisory_and_update_keeps_the_pause() {
    let until = rfc(WALL0 + 10_000_000_000);
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.pause_until = Some("2023-11-15T00:13:30+02:00".into());
    let mut h = H::with(cfg.clone(), 0);
    // Stored in UTC, as nats-server keeps it.
    assert_eq!(h.c.config().pause_until.as_deref(), Some(until.as_str()));
    h.c.created_request(h.now);
    assert_eq!(
        pause_advisories(&h.drain()),
        vec![(true, Some(until.clone()))]
    );
    // An update with another pause_until changes the pause (the API handler
    // keeps the old one, as nats-server's create request does).
    cfg.pause_until = None;
    cfg.description = "d".into();
    h.c.update_config(
        h.now,
        cfg,
        &facts(),
        &ServerLimits::default(),
        false,
        &h.src,
    )
    .unwrap();
    assert_eq!(pause_advisories(&h.drain()), vec![(false, None)]);
    h.c.created_request(h.now);
    assert!(pause_advisories(&h.drain()).is_empty());
}

#[test]
fn pause_advisory_json_as_nats_server() {
    let mut h = H::with(pull(AckPolicy::Explicit), 0);
    h.c.set_domain("hub");
    h.c.pause(h.now, Some("2030-01-02T03:04:05.5Z".into()), &h.src);
    let a = advisories(&h.drain()).remove(0);
    assert_eq!(a.subject(), "$JS.EVENT.ADVISORY.CONSUMER.PAUSE.S.C");
    assert_eq!(
        a.to_json("ID"),
        format!(
            r#"{{"type":"io.nats.jetstream.advisory.v1.consumer_pause","id":"ID","timestamp":"{}","stream":"S","consumer":"C","paused":true,"pause_until":"2030-01-02T03:04:05.5Z","domain":"hub"}}"#,
            rfc(WALL0)
        )
    );
    h.c.pause(h.now, None, &h.src);
    let a = advisories(&h.drain()).remove(0);
    assert!(a
        .to_json("ID")
        .contains(r#""paused":false,"pause_until":"0001-01-01T00:00:00Z""#));
}

#[test]
fn go_zero_time_parses_saturated() {
    assert_eq!(parse_rfc3339_ns("0001-01-01T00:00:00Z"), Some(i64::MIN));
    let mut cfg = pull(AckPolicy::Explicit);
    cfg.pause_until = Some("0001-01-01T00:00:00Z".into());
    let mut h = H::with(cfg, 1);
    assert_eq!(
        h.c.config().pause_until.as_deref(),
        Some("0001-01-01T00:00:00Z")
    );
    assert_eq!(seqs(&h.next("1")), vec![1]);
    assert!(!h.info().paused);
}

// ----------------------------------------------------------------------
// Priority groups (nats-server 2.11 overflow and pinned_client, 2.12 prioritized).

fn grouped(policy: PriorityPolicy) -> ConsumerConfig {
    ConsumerConfig {
        priority_policy: policy,
        priority_groups: vec!["A".into()],
        ..pull(AckPolicy::Explicit)
    }
}

impl H {
    fn next_to(&mut self, reply: &str, body: &str) -> Vec<Output> {
        self.input(Input::Next {
            reply: reply.into(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        })
    }
}

fn delivered_to(out: &[Output]) -> Vec<(String, u64)> {
    deliveries(out)
        .into_iter()
        .map(|d| (d.to, d.stream_seq))
        .collect()
}

fn header_value(hdr: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(hdr)
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

#[test]
fn priority_config_validation_as_check_consumer_cfg() {
    let f = facts();
    let mut cfg = grouped(PriorityPolicy::Overflow);
    cfg.deliver_subject = "d".into();
    assert_eq!(invalid(cfg, &f).0, 10178);
    let mut cfg = grouped(PriorityPolicy::PinnedClient);
    cfg.priority_groups.clear();
    assert_eq!(invalid(cfg, &f).0, 10159);
    let mut cfg = grouped(PriorityPolicy::Overflow);
    cfg.priority_groups = vec!["A".into(), String::new()];
    assert_eq!(invalid(cfg, &f).0, 10161);
    for bad in ["a.b", "seventeen-chars-x", "a b"] {
        let mut cfg = grouped(PriorityPolicy::Overflow);
        cfg.priority_groups = vec![bad.into()];
        assert_eq!(invalid(cfg, &f).0, 10162, "{bad}");
    }
    let mut cfg = grouped(PriorityPolicy::None);
    assert_eq!(invalid(cfg.clone(), &f).0, 10196);
    cfg.priority_groups.clear();
    cfg.priority_timeout = Duration::from_secs(1);
    assert_eq!(invalid(cfg, &f).0, 10197);
    // pinned_client defaults priority_timeout to 2 minutes; the JSON uses
    // nats-server's names.
    let h = H::with(grouped(PriorityPolicy::PinnedClient), 0);
    assert_eq!(h.c.config().priority_timeout, Duration::from_secs(120));
    let j = serde_json::to_value(h.c.config()).unwrap();
    assert_eq!(j["priority_policy"], "pinned_client");
    assert_eq!(j["priority_groups"], serde_json::json!(["A"]));
    assert_eq!(j["priority_timeout"], 120_000_000_000i64);
    let j = serde_json::to_value(pull(AckPolicy::Explicit)).unwrap();
    assert!(j.get("priority_policy").is_none());
}

#[test]
fn pull_request_priority_fields_checked_as_process_next_msg_request() {
    let bad = |cfg: ConsumerConfig, body: &str| {
        let mut h = H::with(cfg, 1);
        statuses(&h.next(body))
    };
    let plain = pull(AckPolicy::Explicit);
    assert_eq!(
        bad(plain.clone(), r#"{"batch":1,"min_pending":1}"#),
        vec!["NATS/1.0 400 Bad Request - Not a Overflow Priority consumer\r\n\r\n"]
    );
    assert_eq!(
        bad(plain.clone(), r#"{"batch":1,"id":"x"}"#),
        vec!["NATS/1.0 400 Bad Request - Not a Pinned Client Priority consumer\r\n\r\n"]
    );
    assert_eq!(
        bad(plain, r#"{"batch":1,"priority":10}"#),
        vec!["NATS/1.0 400 Bad Request - Priority must be between 0 and 9\r\n\r\n"]
    );
    assert_eq!(
        bad(grouped(PriorityPolicy::Overflow), r#"{"batch":1}"#),
        vec!["NATS/1.0 400 Bad Request - Priority Group missing\r\n\r\n"]
    );
    assert_eq!(
        bad(
            grouped(PriorityPolicy::Overflow),
            r#"{"batch":1,"group":"B"}"#
        ),
        vec!["NATS/1.0 400 Bad Request - Invalid Priority Group\r\n\r\n"]
    );
    // async-nats sends null for the fields it does not set.
    let mut h = H::with(grouped(PriorityPolicy::Overflow), 1);
    let out = h.next(
        r#"{"batch":1,"group":"A","min_pending":null,"min_ack_pending":null,"id":null,"priority":null}"#,
    );
    assert_eq!(seqs(&out), vec![1]);
}

#[test]
fn overflow_serves_a_threshold_request_only_past_it() {
    let mut h = H::with(grouped(PriorityPolicy::Overflow), 2);
    let out = h.next_to(
        "over",
        r#"{"batch":5,"expires":30000000000,"group":"A","min_pending":3}"#,
    );
    assert!(seqs(&out).is_empty());
    // The third message makes 3 pending: one goes out, then 2 are pending again.
    let out = h.publish("orders.x");
    assert_eq!(delivered_to(&out), vec![("over".to_string(), 1)]);
    // A request without thresholds takes the rest; the overflow one is skipped.
    let out = h.next_to("main", r#"{"batch":5,"expires":30000000000,"group":"A"}"#);
    assert_eq!(
        delivered_to(&out),
        vec![("main".to_string(), 2), ("main".to_string(), 3)]
    );
    // min_ack_pending: served once that many deliveries await acks.
    let mut h = H::with(grouped(PriorityPolicy::Overflow), 3);
    let out = h.next_to(
        "ack",
        r#"{"batch":5,"expires":30000000000,"group":"A","min_ack_pending":1}"#,
    );
    assert!(seqs(&out).is_empty());
    let out = h.next_to("main", r#"{"batch":1,"expires":30000000000,"group":"A"}"#);
    assert_eq!(
        delivered_to(&out),
        vec![
            ("main".to_string(), 1),
            ("ack".to_string(), 2),
            ("ack".to_string(), 3)
        ]
    );
}

#[test]
fn pinned_client_serves_one_client_until_unpinned_or_timed_out() {
    let mut cfg = grouped(PriorityPolicy::PinnedClient);
    cfg.priority_timeout = Duration::from_secs(10);
    let mut h = H::with(cfg, 2);
    h.c.set_ids("ACC", "pfx");
    let req = r#"{"batch":1,"expires":60000000000,"group":"A"}"#;
    let out = h.next_to("first", req);
    let d = deliveries(&out);
    assert_eq!(delivered_to(&out), vec![("first".to_string(), 1)]);
    let pin = header_value(&d[0].hdr, "Nats-Pin-Id").expect("pin header");
    assert_eq!(pin, "pfx1000");
    let adv = advisories(&out);
    assert_eq!(adv[0].kind, AdvisoryKind::Pinned);
    assert_eq!(adv[0].subject(), "$JS.EVENT.ADVISORY.CONSUMER.PINNED.S.C");
    let j: serde_json::Value = serde_json::from_str(&adv[0].to_json("ID")).unwrap();
    assert_eq!(
        j["type"],
        "io.nats.jetstream.advisory.v1.consumer_group_pinned"
    );
    assert_eq!(
        (&j["account"], &j["group"], &j["pinned_id"]),
        (&"ACC".into(), &"A".into(), &pin.as_str().into())
    );
    let info = h.info();
    assert_eq!(info.priority_groups.len(), 1);
    assert_eq!(info.priority_groups[0].pinned_client_id, pin);
    assert_eq!(info.priority_groups[0].pinned_ts, ns_rfc3339(h.ns()));
    // Another client waits on standby; a wrong pin is refused at once.
    assert!(seqs(&h.next_to("second", req)).is_empty());
    assert_eq!(
        statuses(&h.next_to(
            "wrong",
            r#"{"batch":1,"group":"A","id":"nope","expires":60000000000}"#
        )),
        vec!["NATS/1.0 423 Nats-Pin-Id mismatch\r\n\r\n"]
    );
    // The pinned client pulls again with its pin.
    let out = h.next_to(
        "first",
        &format!(r#"{{"batch":1,"expires":60000000000,"group":"A","id":"{pin}"}}"#),
    );
    assert_eq!(delivered_to(&out), vec![("first".to_string(), 2)]);
    // One more request with the pin waits; unpin: it gets 423, the standby is pinned.
    h.next_to(
        "first",
        &format!(r#"{{"batch":1,"expires":60000000000,"group":"A","id":"{pin}"}}"#),
    );
    h.c.unpin(h.now, "A", &h.src);
    let out = h.drain();
    let adv = advisories(&out);
    assert_eq!(adv[0].kind, AdvisoryKind::Unpinned);
    assert!(adv[0]
        .to_json("ID")
        .contains(r#""group":"A","reason":"admin""#));
    assert!(h.info().priority_groups[0].pinned_client_id.is_empty());
    assert_eq!(h.info().priority_groups[0].pinned_ts, GO_ZERO_TIME);
    let out = h.publish("orders.x");
    assert_eq!(delivered_to(&out), vec![("second".to_string(), 3)]);
    let pin2 = header_value(&deliveries(&out)[0].hdr, "Nats-Pin-Id").unwrap();
    assert_ne!(pin2, pin);
    let out = h.publish("orders.x");
    assert!(seqs(&out).is_empty());
    assert_eq!(
        statuses(&out),
        vec!["NATS/1.0 423 Nats-Wrong-Pin-Id\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n"]
    );
    // Without a request carrying the pin for priority_timeout, it lapses.
    let out = h.advance(Duration::from_secs(10));
    let adv = advisories(&out);
    assert_eq!(adv.len(), 1);
    assert!(adv[0].to_json("ID").contains(r#""reason":"timeout""#));
    // A request carrying the pin renews it.
    let mut cfg = grouped(PriorityPolicy::PinnedClient);
    cfg.priority_timeout = Duration::from_secs(10);
    let mut h = H::with(cfg, 1);
    let out = h.next_to("c", req);
    let pin = header_value(&deliveries(&out)[0].hdr, "Nats-Pin-Id").unwrap();
    h.advance(Duration::from_secs(6));
    h.next_to(
        "c",
        &format!(r#"{{"batch":1,"expires":60000000000,"group":"A","id":"{pin}"}}"#),
    );
    assert!(advisories(&h.advance(Duration::from_secs(6))).is_empty());
    assert_eq!(advisories(&h.advance(Duration::from_secs(4))).len(), 1);
}

#[test]
fn prioritized_serves_the_lowest_priority_first() {
    let mut h = H::with(grouped(PriorityPolicy::Prioritized), 0);
    h.next_to(
        "low",
        r#"{"batch":2,"expires":60000000000,"group":"A","priority":5}"#,
    );
    h.next_to(
        "high",
        r#"{"batch":1,"expires":60000000000,"group":"A","priority":1}"#,
    );
    h.next_to(
        "mid",
        r#"{"batch":1,"expires":60000000000,"group":"A","priority":5}"#,
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        got.extend(delivered_to(&h.publish("orders.x")));
    }
    let to: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    // low stays ahead of mid within priority 5 and is requeued behind it.
    assert_eq!(to, vec!["high", "low", "mid", "low"]);
}
