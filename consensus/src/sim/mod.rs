//! A deterministic simulator: one seeded cluster of [`Node`]s in one thread, with a network
//! that loses, duplicates, reorders and delays messages and partitions nodes, disks that
//! lose unsynced writes (and tear the last one) when a node crashes, clocks that drift, and
//! clients that run a key/value store on top. One `u64` seed decides everything, so a seed
//! replays exactly.
//!
//! After every step it checks: at most one leader per term, log matching, leader
//! completeness, that no committed entry is lost or changed, that every node applies the
//! same sequence, that terms and commit indexes never go back within a node's life. At the
//! end it checks that the clients' history is linearizable and, since faults stop a while
//! before the end, that a leader was elected and every pending operation completed.

pub mod kv;
pub mod linear;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use bytes::Bytes;

#[cfg(feature = "mutation")]
use crate::node::Mutation;
use crate::node::{Config, Node, Output, ProposeError, Role};
use crate::rng::Rng;
use crate::storage::{LogStorage, MemStorage};
use crate::types::{Entry, LogIndex, NodeId, Term};
use crate::wire::{decode, encode, Message};
use kv::{Command, Kv, KvOp};
use linear::Call;

/// A kind of fault the simulator injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Messages lost.
    Loss,
    /// Messages delivered twice.
    Duplicate,
    /// Messages delayed 50-300 ms (far past the others).
    LongDelay,
    /// The nodes split into two sides for a while.
    Partition,
    /// Nodes crash (losing unsynced writes, tearing the last) and restart.
    Crash,
    /// New leaders crash soon after their election.
    LeaderKill,
    /// Leaders hand over leadership.
    Transfer,
    /// Peers are removed, wiped and added back.
    Membership,
}

impl Fault {
    /// Every kind, in the order a failure is minimized.
    pub const ALL: [Fault; 8] = [
        Fault::Membership,
        Fault::Transfer,
        Fault::Duplicate,
        Fault::LongDelay,
        Fault::Partition,
        Fault::Loss,
        Fault::LeaderKill,
        Fault::Crash,
    ];

    /// Its name on the simulator's command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Loss => "loss",
            Fault::Duplicate => "dup",
            Fault::LongDelay => "long-delay",
            Fault::Partition => "partition",
            Fault::Crash => "crash",
            Fault::LeaderKill => "leader-kill",
            Fault::Transfer => "transfer",
            Fault::Membership => "membership",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// How to run a simulation.
#[derive(Clone, Debug)]
pub struct Options {
    /// Fault kinds not injected (a failure is minimized by turning kinds off).
    pub without: Vec<Fault>,
    /// Cluster size.
    pub nodes: usize,
    /// Keep every step in the trace (for replaying one seed), not only the last ones.
    pub full_trace: bool,
    /// The rule every node breaks.
    #[cfg(feature = "mutation")]
    pub mutation: Option<Mutation>,
}

impl Options {
    /// `nodes` nodes, nothing broken, a short trace.
    pub fn new(nodes: usize) -> Options {
        Options {
            without: Vec::new(),
            nodes,
            full_trace: false,
            #[cfg(feature = "mutation")]
            mutation: None,
        }
    }
}

/// What one simulated cluster did.
#[derive(Debug, Default)]
pub struct Report {
    /// The broken rule, if one was seen.
    pub violation: Option<String>,
    /// The steps before the violation (or all steps with `full_trace`).
    pub trace: Vec<String>,
    /// Steps run.
    pub steps: u64,
    /// Messages sent (before loss).
    pub messages: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Partitions.
    pub partitions: u64,
    /// Client operations completed.
    pub completed: u64,
    /// The highest commit index reached.
    pub committed: LogIndex,
}

const TRACE_TAIL: usize = 60;
const FAULTS_MS: u64 = 20_000;
/// After faults stop, everything pending must complete within this long.
const LIVENESS_MS: u64 = 3_000;
const CLIENTS: u32 = 5;
const CLIENT_TIMEOUT_MS: u64 = 250;
const KEYS: u8 = 3;

#[derive(Debug)]
enum Event {
    Tick(usize, u64),
    /// A message, when it was sent and in which life of its sender.
    Deliver(Message, u64, u64),
    SyncDone(usize, u64),
    Crash(usize),
    /// Crash this node if it is still in this life.
    Kill(usize, u64),
    Restart(usize),
    Partition,
    Heal,
    Transfer,
    /// Remove a peer, finish a removal once committed, or add a removed peer back.
    Membership,
    FaultsEnd,
    Client(u32),
    ClientTimeout(u32, u64),
}

struct SimNode {
    id: NodeId,
    node: Option<Node>,
    disk: MemStorage,
    kv: Kv,
    kv_applied: LogIndex,
    tick_ms: u64,
    /// Bumped at each crash, so events of an earlier life are dropped.
    life: u64,
    written_seq: u64,
    sync_pending: bool,
    checked_commit: LogIndex,
    last_term: Term,
    /// Per ended life: messages sent at or after this time were lost in the crash.
    crash_cuts: Vec<u64>,
    /// Never runs for leader (an observer).
    observer: bool,
    /// The removal of this node (index and term of its entry), until it commits.
    removing: Option<(LogIndex, Term)>,
    /// Removed from the group: stopped and its disk wiped.
    removed: bool,
    /// Added back as a new member: it starts knowing no voters.
    fresh: bool,
    /// Messages from lives before this one are from a member that was removed; a real
    /// transport tells incarnations apart, so they are dropped.
    reborn_life: u64,
}

struct Client {
    seq: u64,
    /// The operation in flight: (command, node asked, attempt number, index in history).
    waiting: Option<(Command, usize, u64, usize)>,
    target: Option<NodeId>,
    attempts: u64,
}

struct Faults {
    loss: u64,
    dup: u64,
    long_delay: u64,
    max_delay_ms: u64,
    crash_every_ms: u64,
    partition_every_ms: u64,
    sync_ms_max: u64,
    /// Per mille of new leaders crashed soon after their election (Figure 8 of the RAFT
    /// paper needs leaders that die before replicating their term's first entry).
    leader_kill: u64,
}

struct Sim {
    rng: Rng,
    now: u64,
    step: u64,
    next_event: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    nodes: Vec<SimNode>,
    group: Vec<u8>,
    faults_on: bool,
    without: Vec<Fault>,
    /// The key/value store keeps client sessions (off only for the `kv-no-sessions` mutation).
    kv_sessions: bool,
    faults: Faults,
    clients: Vec<Client>,
    history: Vec<Call>,
    leaders: BTreeMap<Term, NodeId>,
    /// The committed log as first seen: (term, hash of kind and data) per index, from 1.
    committed: Vec<(Term, u64)>,
    /// A hash of the key/value store after each index, as first seen.
    states: Vec<Option<u64>>,
    /// Log matching: (index, term) to (hash, previous entry's term).
    written: HashMap<(LogIndex, Term), (u64, Option<Term>)>,
    compact_every: u64,
    trace: VecDeque<String>,
    full_trace: bool,
    report: Report,
    cfg_template: Config,
}

/// Runs one cluster from `seed`.
pub fn run(seed: u64, opts: &Options) -> Report {
    let mut sim = Sim::new(seed, opts);
    if let Err(v) = sim.run() {
        sim.report.violation = Some(v);
    }
    sim.report.trace = sim.trace.into_iter().collect();
    sim.report
}

/// Shrinks a failing seed: turns fault kinds off one at a time, keeping each off if the
/// seed still fails without it. Returns the kinds turned off and the last failing run.
pub fn minimize(seed: u64, opts: &Options) -> (Vec<Fault>, Report) {
    let mut best = opts.clone();
    let mut report = run(seed, &best);
    for fault in Fault::ALL {
        if best.without.contains(&fault) {
            continue;
        }
        let mut next = best.clone();
        next.without.push(fault);
        let r = run(seed, &next);
        if r.violation.is_some() {
            best = next;
            report = r;
        }
    }
    (best.without, report)
}

fn hash(bytes: &[u8], kind: u8) -> u64 {
    // FNV-1a: only has to tell entries apart within one run.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn entry_hash(e: &Entry) -> u64 {
    hash(&e.data, e.kind as u8)
}

impl Sim {
    fn new(seed: u64, opts: &Options) -> Sim {
        let mut rng = Rng::new(seed);
        let ids: Vec<NodeId> = (1..=opts.nodes as u64).map(NodeId).collect();
        let mut cfg = Config::new(NodeId(0), ids.clone());
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 3;
        cfg.max_batch_entries = rng.range(1, 9) as usize;
        cfg.max_inflight = rng.range(1, 9) as usize;
        #[cfg(feature = "mutation")]
        {
            cfg.mutation = opts.mutation;
        }
        let faults = Faults {
            loss: rng.range(0, 100),
            dup: rng.range(0, 50),
            long_delay: rng.range(0, 30),
            max_delay_ms: rng.range(2, 30),
            crash_every_ms: rng.range(50, 600),
            partition_every_ms: rng.range(200, 1000),
            sync_ms_max: rng.range(2, 20),
            leader_kill: rng.range(200, 900),
        };
        let nodes = ids
            .iter()
            .map(|id| SimNode {
                id: *id,
                node: None,
                disk: MemStorage::new(),
                kv: Kv::default(),
                kv_applied: 0,
                // Clock drift: each node's tick lasts 7 to 13 ms of simulated time.
                tick_ms: rng.range(7, 14),
                life: 0,
                written_seq: 0,
                sync_pending: false,
                checked_commit: 0,
                last_term: 0,
                crash_cuts: Vec::new(),
                observer: false,
                removing: None,
                removed: false,
                fresh: false,
                reborn_life: 0,
            })
            .collect();
        let mut nodes: Vec<SimNode> = nodes;
        if rng.chance(300) {
            let k = rng.range(0, opts.nodes as u64) as usize;
            nodes[k].observer = true;
        }
        let clients = (0..CLIENTS)
            .map(|_| Client {
                seq: 0,
                waiting: None,
                target: None,
                attempts: 0,
            })
            .collect();
        let compact_every = rng.range(5, 60);
        Sim {
            rng,
            now: 0,
            step: 0,
            next_event: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            nodes,
            group: vec![0; opts.nodes],
            faults_on: true,
            without: opts.without.clone(),
            #[cfg(feature = "mutation")]
            kv_sessions: opts.mutation != Some(Mutation::KvNoSessions),
            #[cfg(not(feature = "mutation"))]
            kv_sessions: true,
            faults,
            clients,
            history: Vec::new(),
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            written: HashMap::new(),
            states: Vec::new(),
            compact_every,
            trace: VecDeque::new(),
            full_trace: opts.full_trace,
            report: Report::default(),
            cfg_template: cfg,
        }
    }

    /// Whether faults of this kind are injected now.
    fn on(&self, fault: Fault) -> bool {
        self.faults_on && !self.without.contains(&fault)
    }

    fn schedule(&mut self, after_ms: u64, ev: Event) {
        let key = self.next_event;
        self.next_event += 1;
        self.queue.push(Reverse((self.now + after_ms, key)));
        self.events.insert(key, ev);
    }

    fn log(&mut self, line: String) {
        if !self.full_trace && self.trace.len() == TRACE_TAIL {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{:>6}ms #{}: {line}", self.now, self.step));
    }

    fn run(&mut self) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            self.start_node(n)?;
        }
        for c in 0..CLIENTS {
            let after = self.rng.range(50, 300);
            self.schedule(after, Event::Client(c));
        }
        let (crash, part) = (self.faults.crash_every_ms, self.faults.partition_every_ms);
        let first = self.rng.range(0, self.nodes.len() as u64) as usize;
        let after = self.rng.range(0, crash);
        self.schedule(after, Event::Crash(first));
        let after = self.rng.range(0, part);
        self.schedule(after, Event::Partition);
        let after = self.rng.range(300, 1500);
        self.schedule(after, Event::Transfer);
        let after = self.rng.range(100, 1000);
        self.schedule(after, Event::Membership);
        self.schedule(FAULTS_MS, Event::FaultsEnd);
        let end = FAULTS_MS + LIVENESS_MS;
        while let Some(Reverse((at, key))) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now = at;
            self.step += 1;
            let ev = self
                .events
                .remove(&key)
                .expect("every queued key has an event");
            self.handle(ev)?;
        }
        self.report.steps = self.step;
        self.check_end()
    }

    fn handle(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::Tick(n, life) => {
                if self.nodes[n].life != life {
                    return Ok(());
                }
                if let Some(node) = self.nodes[n].node.as_mut() {
                    node.handle_tick();
                    self.drain(n)?;
                    let ms = self.nodes[n].tick_ms;
                    self.schedule(ms, Event::Tick(n, life));
                }
            }
            Event::Deliver(msg, sent_at, life) => {
                let (from, to) = ((msg.from.0 - 1) as usize, (msg.to.0 - 1) as usize);
                if self.group[from] != self.group[to] || self.nodes[to].node.is_none() {
                    return Ok(());
                }
                // A machine that crashed took the messages it had just sent down with it.
                let sender = &self.nodes[from];
                if sender.life > life && sent_at >= sender.crash_cuts[life as usize] {
                    return Ok(());
                }
                if life < sender.reborn_life {
                    return Ok(());
                }
                if self.full_trace {
                    self.log(format!(
                        "deliver {} -> {}: {:?}",
                        msg.from, msg.to, msg.body
                    ));
                }
                self.nodes[to]
                    .node
                    .as_mut()
                    .expect("checked")
                    .handle_message(msg);
                self.drain(to)?;
            }
            Event::SyncDone(n, life) => {
                let sn = &mut self.nodes[n];
                if sn.life != life || sn.node.is_none() {
                    return Ok(());
                }
                sn.sync_pending = false;
                sn.disk.sync().expect("memory storage does not fail");
                let seq = sn.written_seq;
                sn.node.as_mut().expect("checked").handle_persisted(seq);
                self.drain(n)?;
            }
            Event::Crash(n) => {
                if self.on(Fault::Crash) {
                    self.crash(n);
                    let next = self.rng.range(0, 2 * self.faults.crash_every_ms);
                    let who = self.rng.range(0, self.nodes.len() as u64) as usize;
                    self.schedule(next, Event::Crash(who));
                }
            }
            Event::Kill(n, life) => {
                if self.on(Fault::LeaderKill) && self.nodes[n].life == life {
                    self.crash(n);
                }
            }
            Event::Restart(n) => {
                if self.nodes[n].node.is_none() && !self.nodes[n].removed {
                    self.start_node(n)?;
                }
            }
            Event::Partition => {
                if self.on(Fault::Partition) {
                    self.partition();
                    let heal = self.rng.range(50, 600);
                    self.schedule(heal, Event::Heal);
                    let next = heal + self.rng.range(0, 2 * self.faults.partition_every_ms);
                    self.schedule(next, Event::Partition);
                }
            }
            Event::Heal => {
                self.group.iter_mut().for_each(|g| *g = 0);
                self.log("heal".into());
            }
            Event::Transfer => {
                if self.on(Fault::Transfer) {
                    self.transfer()?;
                    let next = self.rng.range(300, 1500);
                    self.schedule(next, Event::Transfer);
                }
            }
            Event::Membership => {
                if self.on(Fault::Membership) {
                    self.membership()?;
                    let next = self.rng.range(100, 400);
                    self.schedule(next, Event::Membership);
                }
            }
            Event::FaultsEnd => {
                self.faults_on = false;
                self.group.iter_mut().for_each(|g| *g = 0);
                self.log("faults end: network heals, crashed nodes restart".into());
                for n in 0..self.nodes.len() {
                    if self.nodes[n].node.is_none() && !self.nodes[n].removed {
                        self.start_node(n)?;
                    }
                }
            }
            Event::Client(c) => self.client_step(c)?,
            Event::ClientTimeout(c, attempt) => {
                let cl = &mut self.clients[c as usize];
                if let Some((cmd, _, a, h)) = cl.waiting {
                    if a == attempt {
                        cl.target = None;
                        self.submit(c, cmd, h)?;
                    }
                }
            }
        }
        Ok(())
    }

    // ---- nodes ----

    fn start_node(&mut self, n: usize) -> Result<(), String> {
        let mut cfg = self.cfg_template.clone();
        let sn = &mut self.nodes[n];
        cfg.id = sn.id;
        cfg.observer = sn.observer;
        if sn.fresh {
            cfg.voters.clear();
        }
        cfg.seed = self.rng.next_u64();
        let recovered = sn.disk.recover().expect("memory storage does not fail");
        let node = Node::restart(cfg, recovered);
        sn.kv = Kv::default();
        sn.kv_applied = 0;
        sn.checked_commit = node.snapshot_index();
        sn.last_term = node.term();
        sn.written_seq = 0;
        sn.sync_pending = false;
        sn.node = Some(node);
        let (life, ms) = (sn.life, sn.tick_ms);
        self.log(format!("start n{}", n + 1));
        let after = self.rng.range(1, ms + 1);
        self.schedule(after, Event::Tick(n, life));
        self.drain(n)
    }

    /// One membership step on the leader, if there is one.
    fn membership(&mut self) -> Result<(), String> {
        let Some(l) = self
            .nodes
            .iter()
            .position(|s| s.node.as_ref().is_some_and(|x| x.role() == Role::Leader))
        else {
            return Ok(());
        };
        if let Some(k) = self.nodes.iter().position(|s| s.removing.is_some()) {
            let (index, term) = self.nodes[k].removing.expect("found");
            match self.committed.get(index as usize - 1) {
                Some((t, _)) if *t == term => {
                    let sn = &mut self.nodes[k];
                    sn.removing = None;
                    sn.removed = true;
                    sn.fresh = true;
                    if sn.node.take().is_some() {
                        sn.life += 1;
                        sn.crash_cuts.push(self.now);
                    }
                    sn.reborn_life = sn.life;
                    sn.disk = MemStorage::new();
                    self.log(format!("n{} removed and wiped", k + 1));
                }
                Some(_) => self.nodes[k].removing = None,
                None => {}
            }
            return Ok(());
        }
        if let Some(k) = self.nodes.iter().position(|s| s.removed) {
            let id = self.nodes[k].id;
            let result = self.nodes[l]
                .node
                .as_mut()
                .expect("leader runs")
                .propose_add_peer(id);
            self.log(format!("n{} adds n{}: {result:?}", l + 1, k + 1));
            if result.is_ok() {
                self.nodes[k].removed = false;
                self.drain(l)?;
                self.start_node(k)?;
            }
            return Ok(());
        }
        // Not with an observer: with one voter gone, the only node holding the newest
        // entries may be the observer, which never runs, and the group could not elect.
        let observed = self.nodes.iter().any(|s| s.observer);
        if !observed && self.rng.chance(300) {
            let k = self.rng.range(0, self.nodes.len() as u64) as usize;
            let id = self.nodes[k].id;
            let leader = self.nodes[l].node.as_mut().expect("leader runs");
            let result = leader.propose_remove_peer(id);
            let term = leader.term();
            self.log(format!("n{} removes n{}: {result:?}", l + 1, k + 1));
            if let Ok(index) = result {
                self.nodes[k].removing = Some((index, term));
                self.drain(l)?;
            }
        }
        Ok(())
    }

    fn crash(&mut self, n: usize) {
        let sn = &mut self.nodes[n];
        if sn.node.is_none() {
            return;
        }
        sn.node = None;
        sn.life += 1;
        sn.crash_cuts
            .push(self.now.saturating_sub(self.rng.range(0, 20)));
        sn.disk.crash(&mut self.rng);
        self.report.crashes += 1;
        self.log(format!("crash n{}", n + 1));
        let down = self.rng.range(20, 400);
        self.schedule(down, Event::Restart(n));
    }

    fn partition(&mut self) {
        for g in self.group.iter_mut() {
            *g = (self.rng.next_u64() % 2) as u8;
        }
        self.report.partitions += 1;
        let line = format!("partition {:?}", self.group);
        self.log(line);
    }

    fn transfer(&mut self) -> Result<(), String> {
        let Some(n) = self
            .nodes
            .iter()
            .position(|s| s.node.as_ref().is_some_and(|x| x.role() == Role::Leader))
        else {
            return Ok(());
        };
        let result = self.nodes[n]
            .node
            .as_mut()
            .expect("found")
            .transfer_leadership(None);
        self.log(format!("n{} transfers leadership: {result:?}", n + 1));
        self.drain(n)
    }

    /// Performs node `n`'s outputs and checks the invariants they touch.
    fn drain(&mut self, n: usize) -> Result<(), String> {
        loop {
            let Some(out) = self.nodes[n].node.as_mut().and_then(|x| x.poll_output()) else {
                break;
            };
            match out {
                Output::Persist(p) => {
                    self.check_written(n, &p.entries)?;
                    let sn = &mut self.nodes[n];
                    sn.disk.write(&p).expect("memory storage does not fail");
                    sn.written_seq = p.seq;
                    if p.sync {
                        if !sn.sync_pending {
                            sn.sync_pending = true;
                            let life = sn.life;
                            let latency = self.rng.range(1, self.faults.sync_ms_max);
                            self.schedule(latency, Event::SyncDone(n, life));
                        }
                    } else if !sn.sync_pending {
                        sn.node.as_mut().expect("running").handle_persisted(p.seq);
                    }
                }
                Output::Send(m) => self.send(m)?,
                Output::Apply(entries) => {
                    for e in entries {
                        self.apply(n, &e)?;
                    }
                }
                Output::Restore(s) => {
                    let sn = &mut self.nodes[n];
                    sn.kv = Kv::decode(&s.data).ok_or("snapshot data does not decode")?;
                    sn.kv_applied = s.index;
                    self.log(format!("n{} restores snapshot at {}", n + 1, s.index));
                    if s.index > 0 {
                        self.check_state(n, s.index)?;
                    }
                }
                Output::State { role, term, leader } => {
                    self.log(format!(
                        "n{} is {role:?} in term {term} (leader {leader:?})",
                        n + 1
                    ));
                    if role == Role::Leader {
                        self.check_leader(n, term)?;
                        if self.on(Fault::LeaderKill) && self.rng.chance(self.faults.leader_kill) {
                            let after = self.rng.range(0, 40);
                            self.schedule(after, Event::Kill(n, self.nodes[n].life));
                        }
                    }
                }
            }
        }
        self.check_node(n)?;
        self.maybe_compact(n);
        Ok(())
    }

    fn maybe_compact(&mut self, n: usize) {
        let sn = &mut self.nodes[n];
        let Some(node) = sn.node.as_mut() else { return };
        if sn.kv_applied == node.applied()
            && node.applied() >= node.snapshot_index() + self.compact_every
        {
            node.compact(sn.kv_applied, sn.kv.encode());
        }
    }

    fn send(&mut self, m: Message) -> Result<(), String> {
        self.report.messages += 1;
        let mut bytes = Vec::new();
        encode(m.from, &m.body, &mut bytes).map_err(|e| format!("encode: {e}"))?;
        let decoded = decode(m.to, &Bytes::from(bytes)).map_err(|e| format!("decode: {e}"))?;
        if decoded != m {
            return Err(format!("wire round trip changed {m:?} into {decoded:?}"));
        }
        if self.on(Fault::Loss) && self.rng.chance(self.faults.loss) {
            return Ok(());
        }
        let copies = if self.on(Fault::Duplicate) && self.rng.chance(self.faults.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if !self.faults_on {
                self.rng.range(1, 4)
            } else if self.on(Fault::LongDelay) && self.rng.chance(self.faults.long_delay) {
                self.rng.range(50, 300)
            } else {
                self.rng.range(1, self.faults.max_delay_ms)
            };
            let life = self.nodes[(m.from.0 - 1) as usize].life;
            self.schedule(delay, Event::Deliver(m.clone(), self.now, life));
        }
        Ok(())
    }

    fn apply(&mut self, n: usize, e: &Entry) -> Result<(), String> {
        let sn = &mut self.nodes[n];
        if e.index != sn.kv_applied + 1 {
            return Err(format!(
                "n{} applied index {} after {}",
                n + 1,
                e.index,
                sn.kv_applied
            ));
        }
        sn.kv_applied = e.index;
        let h = entry_hash(e);
        let i = e.index as usize;
        if i <= self.committed.len() {
            if self.committed[i - 1] != (e.term, h) {
                return Err(format!(
                    "n{} applied {}@{} but {}@{} was committed there",
                    n + 1,
                    e.term,
                    e.index,
                    self.committed[i - 1].0,
                    e.index
                ));
            }
        } else if i == self.committed.len() + 1 {
            self.committed.push((e.term, h));
        } else {
            return Err(format!(
                "n{} applied {} beyond the known commit {}",
                n + 1,
                e.index,
                self.committed.len()
            ));
        }
        if let Some(cmd) =
            Command::decode(&e.data).filter(|_| e.kind == crate::types::EntryType::Normal)
        {
            self.apply_command(n, cmd);
        }
        self.check_state(n, e.index)
    }

    /// State machine safety, snapshots included: every node's store after index `index`
    /// (by applying or by restoring a snapshot) is the same.
    fn check_state(&mut self, n: usize, index: LogIndex) -> Result<(), String> {
        let h = hash(&self.nodes[n].kv.encode(), 0);
        let i = index as usize;
        if self.states.len() < i {
            self.states.resize(i, None);
        }
        match self.states[i - 1] {
            Some(seen) if seen != h => Err(format!(
                "n{} store after {index} differs from another node's",
                n + 1
            )),
            Some(_) => Ok(()),
            None => {
                self.states[i - 1] = Some(h);
                Ok(())
            }
        }
    }

    /// Runs a client's command on node `n`'s store and answers the client if it waits on `n`.
    fn apply_command(&mut self, n: usize, cmd: Command) {
        let result = self.nodes[n].kv.apply_with(&cmd, self.kv_sessions);
        let cl = &mut self.clients[cmd.client as usize];
        if let (Some(result), Some((w, at, _, h))) = (result, cl.waiting) {
            if w.seq == cmd.seq && at == n {
                cl.waiting = None;
                self.history[h].response = Some((self.step, result));
                self.report.completed += 1;
                let think = self.rng.range(0, 30);
                self.schedule(think, Event::Client(cmd.client));
            }
        }
    }

    // ---- clients ----

    fn client_step(&mut self, c: u32) -> Result<(), String> {
        let cl = &mut self.clients[c as usize];
        if let Some((cmd, _, _, h)) = cl.waiting {
            return self.submit(c, cmd, h);
        }
        if !self.faults_on {
            return Ok(());
        }
        cl.seq += 1;
        let key = (self.rng.next_u64() % u64::from(KEYS)) as u8;
        let op = if self.rng.chance(500) {
            KvOp::Put {
                key,
                value: (u64::from(c) << 32) | cl.seq,
            }
        } else {
            KvOp::Get { key }
        };
        let cmd = Command {
            client: c,
            seq: cl.seq,
            op,
        };
        self.history.push(Call {
            client: c,
            op,
            invoke: self.step,
            response: None,
        });
        let h = self.history.len() - 1;
        self.submit(c, cmd, h)
    }

    /// Offers the client's operation to the node it thinks leads (or a random one).
    fn submit(&mut self, c: u32, cmd: Command, h: usize) -> Result<(), String> {
        let target = self.clients[c as usize].target;
        let n = match target {
            Some(id) => (id.0 - 1) as usize,
            None => self.rng.range(0, self.nodes.len() as u64) as usize,
        };
        let cl = &mut self.clients[c as usize];
        cl.attempts += 1;
        let attempt = cl.attempts;
        cl.waiting = Some((cmd, n, attempt, h));
        let Some(node) = self.nodes[n].node.as_mut() else {
            cl.target = None;
            self.schedule(10, Event::Client(c));
            return Ok(());
        };
        match node.propose(cmd.encode()) {
            Ok(_) => {
                self.schedule(CLIENT_TIMEOUT_MS, Event::ClientTimeout(c, attempt));
                self.drain(n)
            }
            Err(ProposeError::NotLeader(hint)) => {
                cl.target = hint;
                self.schedule(if hint.is_some() { 1 } else { 20 }, Event::Client(c));
                Ok(())
            }
            Err(_) => {
                self.schedule(20, Event::Client(c));
                Ok(())
            }
        }
    }

    // ---- checks ----

    /// Log matching: an entry is identified by its index and term, and so is everything
    /// before it.
    fn check_written(&mut self, n: usize, entries: &[Entry]) -> Result<(), String> {
        let node = self.nodes[n].node.as_ref().expect("running");
        for e in entries {
            let prev = if e.index == 1 {
                Some(0)
            } else {
                node.term_at(e.index - 1)
            };
            let me = (entry_hash(e), prev);
            match self.written.get(&(e.index, e.term)) {
                None => {
                    self.written.insert((e.index, e.term), me);
                }
                Some(seen) => {
                    let same_prev = seen.1.is_none() || me.1.is_none() || seen.1 == me.1;
                    if seen.0 != me.0 || !same_prev {
                        return Err(format!(
                            "log matching: n{} wrote a different entry {}@{}",
                            n + 1,
                            e.term,
                            e.index
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Election safety and leader completeness.
    fn check_leader(&mut self, n: usize, term: Term) -> Result<(), String> {
        let id = self.nodes[n].id;
        if let Some(other) = self.leaders.insert(term, id) {
            if other != id {
                return Err(format!("two leaders in term {term}: {other} and {id}"));
            }
        }
        let node = self.nodes[n].node.as_ref().expect("running");
        for (k, (t, _)) in self.committed.iter().enumerate() {
            let index = k as u64 + 1;
            if index > node.snapshot_index() && node.term_at(index) != Some(*t) {
                return Err(format!(
                    "leader completeness: leader {id} of term {term} lacks committed {t}@{index}"
                ));
            }
        }
        Ok(())
    }

    /// Per node: term and commit never go back; committed entries equal the cluster's.
    fn check_node(&mut self, n: usize) -> Result<(), String> {
        let sn = &mut self.nodes[n];
        let Some(node) = sn.node.as_ref() else {
            return Ok(());
        };
        if node.term() < sn.last_term {
            return Err(format!(
                "n{} term went back from {} to {}",
                n + 1,
                sn.last_term,
                node.term()
            ));
        }
        sn.last_term = node.term();
        let commit = node.commit();
        if commit < sn.checked_commit {
            return Err(format!(
                "n{} commit went back from {} to {commit}",
                n + 1,
                sn.checked_commit
            ));
        }
        for index in sn.checked_commit + 1..=commit {
            let Some(e) = node.entry(index) else { continue };
            let me = (e.term, entry_hash(e));
            let i = index as usize;
            if i <= self.committed.len() {
                if self.committed[i - 1] != me {
                    return Err(format!(
                        "n{} committed {}@{index}, but {}@{index} was committed",
                        n + 1,
                        me.0,
                        self.committed[i - 1].0
                    ));
                }
            } else if i == self.committed.len() + 1 {
                self.committed.push(me);
            }
        }
        sn.checked_commit = commit;
        self.report.committed = self.report.committed.max(commit);
        Ok(())
    }

    /// Liveness after the faults stopped, then linearizability of what the clients saw.
    fn check_end(&mut self) -> Result<(), String> {
        let leaders = self
            .nodes
            .iter()
            .filter(|s| s.node.as_ref().is_some_and(|x| x.role() == Role::Leader))
            .count();
        if leaders == 0 {
            return Err(format!(
                "liveness: no leader {LIVENESS_MS} ms after faults stopped"
            ));
        }
        if let Some((c, cl)) = self
            .clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.waiting.is_some())
        {
            let cmd = cl.waiting.map(|w| w.0);
            return Err(format!("liveness: client {c} still waits for {cmd:?} {LIVENESS_MS} ms after faults stopped"));
        }
        linear::check(&self.history).map_err(|e| format!("linearizability: {e}"))
    }
}
