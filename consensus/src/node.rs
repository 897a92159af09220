//! The RAFT node: one member of a group, as a pure state machine.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::log::Log;
use crate::rng::Rng;
use crate::types::{Entry, EntryType, HardState, LogIndex, NodeId, Recovered, Snapshot, Term};
use crate::wire::{decode_peer_state, encode_peer_state, Body, Message};

/// A rule the simulator may break on purpose (feature `mutation`), to show its checks bite.
#[cfg(feature = "mutation")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A node grants its vote to every candidate of a term.
    DoubleVote,
    /// A follower acknowledges entries before they are persisted.
    AckBeforePersist,
    /// A leader commits entries of earlier terms by counting replicas.
    CommitOldTerm,
    /// Not a node rule: the simulator's key/value store forgets client sessions, so a
    /// retried put can take effect twice (shows that the linearizability check bites).
    KvNoSessions,
}

#[cfg(feature = "mutation")]
impl Mutation {
    /// The mutation named `name` on the simulator's command line.
    pub fn from_name(name: &str) -> Option<Mutation> {
        match name {
            "double-vote" => Some(Mutation::DoubleVote),
            "ack-before-persist" => Some(Mutation::AckBeforePersist),
            "commit-old-term" => Some(Mutation::CommitOldTerm),
            "kv-no-sessions" => Some(Mutation::KvNoSessions),
            _ => None,
        }
    }

    /// Its name on the simulator's command line.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::DoubleVote => "double-vote",
            Mutation::AckBeforePersist => "ack-before-persist",
            Mutation::CommitOldTerm => "commit-old-term",
            Mutation::KvNoSessions => "kv-no-sessions",
        }
    }
}

/// Messages with terms at or above this are dropped as garbage.
const MAX_TERM: Term = u64::MAX / 2;

/// How a node behaves. Times are in ticks of the driver's clock.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// The voters when neither log nor snapshot says otherwise (a new group's bootstrap).
    /// A node that joins an existing group starts with none and learns them from the leader.
    pub voters: Vec<NodeId>,
    /// An observer votes and replicates but never starts an election (nats-server's observer).
    pub observer: bool,
    /// Election timeouts are drawn from `election_ticks..2 * election_ticks`; a follower that
    /// heard from its leader within `election_ticks` refuses pre-votes, and a leader that did
    /// not hear from a quorum within `election_ticks` steps down (check-quorum).
    pub election_ticks: u32,
    /// A leader sends heartbeats (and retransmits) every `heartbeat_ticks`.
    pub heartbeat_ticks: u32,
    /// At most this many entries in one append.
    pub max_batch_entries: usize,
    /// At most about this many data bytes in one append (one entry always goes).
    pub max_batch_bytes: usize,
    /// At most this many appends in flight to one follower (pipelining).
    pub max_inflight: usize,
    /// Seeds the election timeout draws.
    pub seed: u64,
    /// The rule to break (simulator only).
    #[cfg(feature = "mutation")]
    pub mutation: Option<Mutation>,
}

impl Config {
    /// A voter of the group `voters` with defaults: election 10 ticks, heartbeat 2 ticks.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            observer: false,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_batch_entries: 256,
            max_batch_bytes: 1 << 20,
            max_inflight: 32,
            seed: id.0,
            #[cfg(feature = "mutation")]
            mutation: None,
        }
    }
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without changing term.
    PreCandidate,
    /// Runs for leader in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// What the driver must write before it confirms with [`Node::handle_persisted`].
///
/// Apply in this order: `snapshot` (store it; drop log entries up to its index, and all of
/// them if the log has no entry with the snapshot's term at that index), `entries` (drop
/// every entry at or after the first one's index, then append), `hard_state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Confirm with this number once written (and synced, if `sync`).
    pub seq: u64,
    /// A new hard state.
    pub hard_state: Option<HardState>,
    /// A snapshot to store.
    pub snapshot: Option<Snapshot>,
    /// Entries to write.
    pub entries: Vec<Entry>,
    /// Whether this must reach stable storage before confirming: messages wait for it.
    /// False when only the commit index changed.
    pub sync: bool,
}

/// What a node reports to its driver.
#[derive(Debug)]
pub enum Output {
    /// Write this, then call [`Node::handle_persisted`] with its `seq`.
    Persist(Persist),
    /// Send this message (it depends on nothing unpersisted).
    Send(Message),
    /// Apply these committed entries, in order (internal kinds carry no application data).
    Apply(Vec<Entry>),
    /// Replace the application state with this snapshot (then apply what follows).
    Restore(Snapshot),
    /// The role, term or known leader changed.
    State {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The known leader.
        leader: Option<NodeId>,
    },
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader takes proposals; this is who the node thinks leads.
    NotLeader(Option<NodeId>),
    /// A leader transfer is under way.
    TransferInProgress,
    /// A membership change is not committed yet (changes go one at a time), or the leader
    /// has not committed an entry of its term yet.
    ChangeInProgress,
    /// The peer is not one this change applies to (already a voter, not a voter, the leader).
    BadPeer,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(Some(l)) => write!(f, "raft: not leader (leader is {l})"),
            ProposeError::NotLeader(None) => f.write_str("raft: not leader (no leader known)"),
            ProposeError::TransferInProgress => f.write_str("raft: leader transfer in progress"),
            ProposeError::ChangeInProgress => f.write_str("raft: membership change in progress"),
            ProposeError::BadPeer => f.write_str("raft: peer does not fit this change"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// What the leader knows of one follower.
#[derive(Debug, Default)]
struct Progress {
    matched: LogIndex,
    next: LogIndex,
    /// Pipelining: after a success, appends go out optimistically up to `max_inflight`.
    replicating: bool,
    /// Last index of each append in flight (replicating).
    inflight: VecDeque<LogIndex>,
    /// Probing: one append is out; wait for its answer (or the next heartbeat).
    probe_sent: bool,
    /// A snapshot is out; wait for its answer (or the next heartbeat).
    snapshot_sent: bool,
    /// Heard from since the last check-quorum round.
    active: bool,
    /// `matched` at the last heartbeat: no change in a round means something was lost.
    matched_at_heartbeat: LogIndex,
}

/// One RAFT node: a sans-IO state machine.
///
/// Inputs: [`Node::handle_tick`] (the driver's clock), [`Node::handle_message`],
/// [`Node::propose`] and the other leader calls, [`Node::handle_persisted`] (storage
/// caught up), [`Node::compact`] (the application took a snapshot).
///
/// Outputs, from [`Node::poll_output`]: [`Output::Persist`], [`Output::Send`],
/// [`Output::Apply`], [`Output::Restore`], [`Output::State`].
///
/// Drain rule: after every input call, call `poll_output` until it returns `None`, perform
/// each output in the order given, and call `handle_persisted` once a `Persist` is durable.
/// Nothing is sent that depends on state not yet persisted: a vote, an acknowledgement or a
/// vote request is held inside the node until the `Persist` it depends on is confirmed.
/// A leader's appends go out at once; the leader counts itself towards a commit only for
/// entries it has persisted (RAFT thesis §10.2.1).
///
/// A tick is one unit of the driver's clock; timeouts are counted in ticks, as in raft-rs.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    rng: Rng,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: Log,
    snapshot: Option<Snapshot>,
    voters: Vec<NodeId>,
    commit: LogIndex,
    applied: LogIndex,

    /// Term or vote changed since the last `Persist`.
    hard_dirty: bool,
    commit_dirty: bool,
    /// The lowest log index changed since the last `Persist`.
    unstable_from: Option<LogIndex>,
    snapshot_dirty: Option<Snapshot>,
    last_seq: u64,
    last_sync_seq: u64,
    confirmed_seq: u64,
    /// Persists not yet confirmed that rewrote the log: (seq, first index, last index).
    issued: VecDeque<(u64, LogIndex, LogIndex)>,
    durable_last: LogIndex,
    /// The last log index known durable and still in the log.
    persisted: LogIndex,
    held: VecDeque<(u64, Message)>,
    out: VecDeque<Output>,

    elapsed: u32,
    timeout: u32,
    heartbeat_elapsed: u32,
    since_leader: u32,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    transfer_ticks: Option<u32>,
    broadcast: bool,
    notify: bool,
    reported: Option<(Role, Term, Option<NodeId>)>,
}

impl Node {
    /// A node of a new group, with empty storage.
    pub fn new(cfg: Config) -> Node {
        Node::restart(cfg, Recovered::default())
    }

    /// A node that found `recovered` in its storage.
    pub fn restart(cfg: Config, recovered: Recovered) -> Node {
        let (snap_index, snap_term) = recovered
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.index, s.term));
        let log = Log::new(snap_index, snap_term, recovered.entries);
        let last = log.last_index();
        let hs = recovered.hard_state;
        let mut node = Node {
            rng: Rng::new(cfg.seed),
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: None,
            commit: hs.commit.min(last).max(snap_index),
            applied: snap_index,
            log,
            snapshot: recovered.snapshot.clone(),
            voters: Vec::new(),
            hard_dirty: false,
            commit_dirty: false,
            unstable_from: None,
            snapshot_dirty: None,
            last_seq: 0,
            last_sync_seq: 0,
            confirmed_seq: 0,
            issued: VecDeque::new(),
            durable_last: last,
            persisted: last,
            held: VecDeque::new(),
            out: VecDeque::new(),
            elapsed: 0,
            timeout: 0,
            heartbeat_elapsed: 0,
            since_leader: u32::MAX / 2,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer_ticks: None,
            broadcast: false,
            notify: false,
            reported: None,
            cfg,
        };
        node.recompute_voters();
        node.reset_timeout();
        if let Some(s) = recovered.snapshot {
            node.out.push_back(Output::Restore(s));
        }
        node
    }

    // ---- accessors ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// The commit index.
    pub fn commit(&self) -> LogIndex {
        self.commit
    }
    /// The last index handed out in [`Output::Apply`] (or restored).
    pub fn applied(&self) -> LogIndex {
        self.applied
    }
    /// The last log index.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }
    /// The index the log starts after (its snapshot point).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.snap_index
    }
    /// The term of the entry at `index`, if the log still holds it.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }
    /// The entry at `index`, if the log holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }
    /// The current voters.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }
    /// The hard state as this node holds it in memory.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    // ---- inputs ----

    /// One tick of the driver's clock.
    pub fn handle_tick(&mut self) {
        self.since_leader = self.since_leader.saturating_add(1);
        if self.role == Role::Leader {
            self.tick_leader();
            return;
        }
        self.elapsed += 1;
        if self.elapsed >= self.timeout {
            self.reset_timeout();
            if self.can_campaign() {
                self.pre_campaign();
            }
        }
    }

    /// A message from a peer (ignored unless addressed to this node).
    pub fn handle_message(&mut self, msg: Message) {
        if msg.to != self.cfg.id || msg.from == self.cfg.id {
            return;
        }
        let from = msg.from;
        let term = msg.body.term();
        // No group lives to see such a term: the message is garbage, and a node that took
        // it would overflow counting the next term (found by the raft_node fuzz target).
        if term >= MAX_TERM {
            return;
        }
        match msg.body {
            Body::VoteRequest {
                term,
                last_term,
                last_index,
                pre_vote,
            } => self.on_vote_request(from, term, last_term, last_index, pre_vote),
            Body::VoteResponse {
                term,
                granted,
                pre_vote,
                ..
            } => self.on_vote_response(from, term, granted, pre_vote),
            Body::AppendEntries {
                prev_index,
                prev_term,
                commit,
                entries,
                ..
            } => {
                if self.accept_leader(from, term) {
                    self.on_append(from, prev_index, prev_term, commit, entries);
                }
            }
            Body::InstallSnapshot { snapshot, .. } => {
                if self.accept_leader(from, term) {
                    self.on_snapshot(from, snapshot);
                }
            }
            Body::AppendResponse {
                term,
                index,
                success,
            } => self.on_append_response(from, term, index, success),
        }
    }

    /// Storage holds everything up to the `Persist` numbered `seq`.
    pub fn handle_persisted(&mut self, seq: u64) {
        if seq <= self.confirmed_seq || seq > self.last_seq {
            return;
        }
        self.confirmed_seq = seq;
        while self.issued.front().is_some_and(|r| r.0 <= seq) {
            let (_, _, last) = self.issued.pop_front().expect("front checked");
            self.durable_last = last;
        }
        self.update_persisted();
        while self.held.front().is_some_and(|h| h.0 <= seq) {
            let (_, msg) = self.held.pop_front().expect("front checked");
            self.out.push_back(Output::Send(msg));
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Proposes application data (leader only); returns the index it will have.
    pub fn propose(&mut self, data: Bytes) -> Result<LogIndex, ProposeError> {
        self.check_proposal()?;
        Ok(self.append_local(EntryType::Normal, data))
    }

    /// Proposes adding `peer` as a voter (one change at a time).
    pub fn propose_add_peer(&mut self, peer: NodeId) -> Result<LogIndex, ProposeError> {
        self.check_change()?;
        if self.voters.contains(&peer) {
            return Err(ProposeError::BadPeer);
        }
        Ok(self.append_local(EntryType::AddPeer, Bytes::copy_from_slice(&peer.name())))
    }

    /// Proposes removing the voter `peer` (not the leader itself: transfer first).
    pub fn propose_remove_peer(&mut self, peer: NodeId) -> Result<LogIndex, ProposeError> {
        self.check_change()?;
        if !self.voters.contains(&peer) || peer == self.cfg.id {
            return Err(ProposeError::BadPeer);
        }
        Ok(self.append_local(EntryType::RemovePeer, Bytes::copy_from_slice(&peer.name())))
    }

    /// Hands leadership to `to`, or to the most up-to-date voter, as nats-server does: a
    /// `LeaderTransfer` entry tells that voter to run at once. Proposals are refused until
    /// the transfer happens or an election timeout passes.
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<NodeId, ProposeError> {
        self.check_proposal()?;
        let target = match to {
            Some(t) => t,
            None => {
                let best = self
                    .progress
                    .iter()
                    .filter(|(id, _)| self.voters.contains(id))
                    .max_by_key(|(_, p)| p.matched);
                *best.ok_or(ProposeError::BadPeer)?.0
            }
        };
        if target == self.cfg.id || !self.voters.contains(&target) {
            return Err(ProposeError::BadPeer);
        }
        self.append_local(
            EntryType::LeaderTransfer,
            Bytes::copy_from_slice(&target.name()),
        );
        self.transfer_ticks = Some(self.cfg.election_ticks);
        Ok(target)
    }

    /// The application took a snapshot `data` of its state at `index` (at most the applied
    /// index): the log up to there is dropped and the snapshot stored.
    pub fn compact(&mut self, index: LogIndex, data: Bytes) {
        if index <= self.log.snap_index || index > self.applied {
            return;
        }
        let Some(term) = self.log.term_at(index) else {
            return;
        };
        let snapshot = Snapshot {
            index,
            term,
            voters: self.voters_at(index),
            data,
        };
        self.log.compact_to(index);
        self.snapshot = Some(snapshot.clone());
        self.snapshot_dirty = Some(snapshot);
    }

    /// The next thing the driver must do, or `None` when there is nothing left.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            self.flush();
        }
        self.out.pop_front()
    }

    // ---- leader ----

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.elapsed += 1;
        if self.elapsed >= self.cfg.election_ticks {
            self.elapsed = 0;
            let active = self
                .voters
                .iter()
                .filter(|v| **v == self.cfg.id || self.progress.get(v).is_some_and(|p| p.active))
                .count();
            if active < self.quorum() {
                self.become_follower(self.term, None);
                return;
            }
            for p in self.progress.values_mut() {
                p.active = false;
            }
        }
        if let Some(t) = self.transfer_ticks.as_mut() {
            *t = t.saturating_sub(1);
            if *t == 0 {
                self.transfer_ticks = None;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            let peers: Vec<NodeId> = self.progress.keys().copied().collect();
            for peer in peers {
                let p = self.progress.get_mut(&peer).expect("peer listed");
                if p.matched == p.matched_at_heartbeat
                    && (p.next > p.matched + 1 || p.snapshot_sent || p.probe_sent)
                {
                    // Nothing came back for a whole round: start over from what is known.
                    p.replicating = false;
                    p.inflight.clear();
                    p.probe_sent = false;
                    p.snapshot_sent = false;
                    p.next = p.matched + 1;
                }
                p.matched_at_heartbeat = p.matched;
                self.send_append(peer, true);
            }
        }
    }

    fn check_proposal(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader(self.leader));
        }
        if self.transfer_ticks.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    fn check_change(&self) -> Result<(), ProposeError> {
        self.check_proposal()?;
        let pending = self.log.entries().any(|e| {
            e.index > self.commit && matches!(e.kind, EntryType::AddPeer | EntryType::RemovePeer)
        });
        // A leader changes membership only once it committed an entry of its own term:
        // otherwise a change of an earlier leader, still uncommitted, and this one could
        // each have a majority without overlapping (Ongaro, raft-dev, 2015).
        if pending || self.log.term_at(self.commit) != Some(self.term) {
            return Err(ProposeError::ChangeInProgress);
        }
        Ok(())
    }

    fn append_local(&mut self, kind: EntryType, data: Bytes) -> LogIndex {
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            kind,
            data,
        });
        self.mark_unstable(index);
        if matches!(
            kind,
            EntryType::AddPeer | EntryType::RemovePeer | EntryType::PeerState
        ) {
            self.recompute_voters();
        }
        self.broadcast = true;
        index
    }

    /// Sends `peer` what it lacks, in as many appends as the pipeline allows; with
    /// `allow_empty`, at least a heartbeat.
    fn send_append(&mut self, peer: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        while self.send_one(peer, allow_empty) {
            allow_empty = false;
        }
    }

    /// Sends one append (or snapshot, or heartbeat); true if it carried entries while
    /// replicating, so that more may follow.
    fn send_one(&mut self, peer: NodeId, allow_empty: bool) -> bool {
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&peer) else {
            return false;
        };
        if p.next <= self.log.snap_index {
            if !p.snapshot_sent || allow_empty {
                let Some(snapshot) = self.snapshot.clone() else {
                    return false;
                };
                p.snapshot_sent = true;
                let body = Body::InstallSnapshot {
                    term: self.term,
                    commit: self.commit,
                    snapshot,
                };
                self.send(peer, body);
            }
            return false;
        }
        let can_send = !p.snapshot_sent
            && if p.replicating {
                p.inflight.len() < self.cfg.max_inflight
            } else {
                !p.probe_sent
            };
        if can_send && (p.next <= last || allow_empty) {
            let prev_index = p.next - 1;
            let prev_term = self
                .log
                .term_at(prev_index)
                .expect("next is past the snapshot point");
            let entries = batch(&self.log, p.next, &self.cfg);
            let more = p.replicating && !entries.is_empty();
            if let Some(e) = entries.last() {
                if p.replicating {
                    p.inflight.push_back(e.index);
                    p.next = e.index + 1;
                } else {
                    p.probe_sent = true;
                }
            }
            let body = Body::AppendEntries {
                term: self.term,
                prev_index,
                prev_term,
                commit: self.commit,
                entries,
            };
            self.send(peer, body);
            return more;
        } else if allow_empty {
            // A heartbeat names only what the follower is known to hold, so that it never
            // overtakes entries in flight and is never refused for them.
            let prev_index = p.matched.max(self.log.snap_index);
            let prev_term = self
                .log
                .term_at(prev_index)
                .expect("at or past the snapshot point");
            let body = Body::AppendEntries {
                term: self.term,
                prev_index,
                prev_term,
                commit: self.commit,
                entries: Vec::new(),
            };
            self.send(peer, body);
        }
        false
    }

    fn on_append_response(&mut self, from: NodeId, term: Term, index: LogIndex, success: bool) {
        if term > self.term {
            self.become_follower(term, None);
            return;
        }
        if term < self.term || self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.active = true;
        if success {
            let index = index.min(last);
            if index > p.matched {
                p.matched = index;
            }
            p.next = p.next.max(index + 1);
            p.inflight.retain(|l| *l > index);
            p.probe_sent = false;
            if p.snapshot_sent && index >= self.log.snap_index {
                p.snapshot_sent = false;
            }
            p.replicating = !p.snapshot_sent;
            self.maybe_commit();
        } else {
            if p.snapshot_sent {
                return;
            }
            p.replicating = false;
            p.inflight.clear();
            p.probe_sent = false;
            p.next = p.next.min(index + 1).max(p.matched + 1);
        }
        self.send_append(from, false);
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<LogIndex> = self
            .voters
            .iter()
            .map(|v| {
                if *v == self.cfg.id {
                    self.persisted
                } else {
                    self.progress.get(v).map_or(0, |p| p.matched)
                }
            })
            .collect();
        if matched.is_empty() {
            return;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let n = matched[self.quorum() - 1];
        if n <= self.commit {
            return;
        }
        // Only an entry of the current term is committed by counting (RAFT §5.4.2): an
        // older entry on a majority can still be overwritten by a leader that lacks it.
        if self.log.term_at(n) == Some(self.term) || self.mutated_commit_old_term() {
            self.commit = n;
            self.commit_dirty = true;
            self.broadcast = true;
            self.notify = true;
        }
    }

    // ---- elections ----

    fn can_campaign(&self) -> bool {
        !self.cfg.observer && self.voters.contains(&self.cfg.id)
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn reset_timeout(&mut self) {
        self.elapsed = 0;
        let e = u64::from(self.cfg.election_ticks);
        self.timeout = self.rng.range(e, 2 * e) as u32;
    }

    fn pre_campaign(&mut self) {
        self.set_role(Role::PreCandidate);
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.tally() {
            self.campaign();
            return;
        }
        self.request_votes(self.term + 1, true);
    }

    fn campaign(&mut self) {
        self.term += 1;
        self.vote = Some(self.cfg.id);
        self.hard_dirty = true;
        self.set_role(Role::Candidate);
        self.leader = None;
        self.reset_timeout();
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.tally() {
            self.become_leader();
            return;
        }
        self.request_votes(self.term, false);
    }

    fn request_votes(&mut self, term: Term, pre_vote: bool) {
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let peers: Vec<NodeId> = self
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.cfg.id)
            .collect();
        for peer in peers {
            self.send(
                peer,
                Body::VoteRequest {
                    term,
                    last_term,
                    last_index,
                    pre_vote,
                },
            );
        }
    }

    /// True when the granted votes make a quorum.
    fn tally(&self) -> bool {
        let granted = self
            .votes
            .iter()
            .filter(|(id, g)| **g && self.voters.contains(id))
            .count();
        granted >= self.quorum()
    }

    fn rejected(&self) -> bool {
        let refused = self
            .votes
            .iter()
            .filter(|(id, g)| !**g && self.voters.contains(id))
            .count();
        refused >= self.quorum()
    }

    fn on_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        last_term: Term,
        last_index: LogIndex,
        pre_vote: bool,
    ) {
        let up_to_date = (last_term, last_index) >= (self.log.last_term(), self.log.last_index());
        let empty = self.log.last_index() == 0;
        if pre_vote {
            // Pre-vote (thesis §9.6): grant only if a real vote could be granted and no
            // leader was heard from lately, so a node back from a partition cannot disrupt.
            let in_lease = self.role == Role::Leader
                || (self.leader.is_some() && self.since_leader < self.cfg.election_ticks);
            let granted = term > self.term && up_to_date && !in_lease;
            let term = if granted { term } else { self.term };
            self.send(
                from,
                Body::VoteResponse {
                    term,
                    granted,
                    empty,
                    pre_vote: true,
                },
            );
            return;
        }
        if term > self.term {
            self.become_follower(term, None);
        }
        let free = self.vote.is_none() || self.vote == Some(from) || self.mutated_double_vote();
        let granted = term == self.term && up_to_date && free;
        if granted {
            if self.vote != Some(from) {
                self.vote = Some(from);
                self.hard_dirty = true;
            }
            self.reset_timeout();
        }
        self.send(
            from,
            Body::VoteResponse {
                term: self.term,
                granted,
                empty,
                pre_vote: false,
            },
        );
    }

    fn on_vote_response(&mut self, from: NodeId, term: Term, granted: bool, pre_vote: bool) {
        if pre_vote {
            if granted {
                if self.role == Role::PreCandidate && term == self.term + 1 {
                    self.votes.insert(from, true);
                }
            } else if term > self.term {
                self.become_follower(term, None);
                return;
            } else if self.role == Role::PreCandidate {
                self.votes.insert(from, false);
            }
            if self.role == Role::PreCandidate {
                if self.tally() {
                    self.campaign();
                } else if self.rejected() {
                    self.become_follower(self.term, None);
                }
            }
            return;
        }
        if term > self.term {
            self.become_follower(term, None);
            return;
        }
        if self.role != Role::Candidate || term < self.term {
            return;
        }
        self.votes.insert(from, granted);
        if self.tally() {
            self.become_leader();
        } else if self.rejected() {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        self.set_role(Role::Leader);
        self.leader = Some(self.cfg.id);
        self.elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.transfer_ticks = None;
        self.progress.clear();
        self.sync_progress();
        // A leader's first entry is its view of the peers (nats-server's EntryPeerState); once
        // committed it commits every earlier entry too.
        let peers = Bytes::from(encode_peer_state(&self.voters));
        self.append_local(EntryType::PeerState, peers);
    }

    /// One progress per voter other than this node.
    fn sync_progress(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let next = self.log.last_index() + 1;
        let me = self.cfg.id;
        self.progress.retain(|id, _| self.voters.contains(id));
        for v in self.voters.iter().filter(|v| **v != me) {
            self.progress.entry(*v).or_insert_with(|| Progress {
                next,
                active: true,
                ..Progress::default()
            });
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_dirty = true;
        }
        self.set_role(Role::Follower);
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.transfer_ticks = None;
        self.reset_timeout();
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    // ---- followers ----

    /// Term rules for a message from a leader: a newer term makes this node follow it; an
    /// older one is answered so that the stale leader learns the term and steps down.
    fn accept_leader(&mut self, from: NodeId, term: Term) -> bool {
        if term < self.term {
            let index = self.log.last_index();
            self.send(
                from,
                Body::AppendResponse {
                    term: self.term,
                    index,
                    success: false,
                },
            );
            return false;
        }
        if term > self.term || self.role != Role::Follower {
            if self.role == Role::Leader && term == self.term {
                return false;
            }
            self.become_follower(term, Some(from));
        }
        self.leader = Some(from);
        self.since_leader = 0;
        self.elapsed = 0;
        true
    }

    fn on_append(
        &mut self,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        commit: LogIndex,
        mut entries: Vec<Entry>,
    ) {
        if !well_formed(prev_index, prev_term, self.term, &entries) {
            return;
        }
        let (mut prev_index, mut prev_term) = (prev_index, prev_term);
        if prev_index < self.commit {
            // Entries up to the commit index are committed here and so equal the leader's.
            let skip = (self.commit - prev_index) as usize;
            if skip >= entries.len() {
                let index = self.commit;
                self.send(
                    from,
                    Body::AppendResponse {
                        term: self.term,
                        index,
                        success: true,
                    },
                );
                return;
            }
            prev_term = entries[skip - 1].term;
            prev_index = self.commit;
            entries.drain(..skip);
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            let index = self.reject_hint(prev_index, prev_term);
            self.send(
                from,
                Body::AppendResponse {
                    term: self.term,
                    index,
                    success: false,
                },
            );
            return;
        }
        let last_new = prev_index + entries.len() as u64;
        let conflict = entries
            .iter()
            .position(|e| self.log.term_at(e.index) != Some(e.term));
        let mut transfer = false;
        if let Some(k) = conflict {
            let at = entries[k].index;
            if at <= self.commit {
                return;
            }
            let truncated = at <= self.log.last_index();
            if truncated {
                self.log.truncate_from(at);
            }
            let mut membership = truncated;
            for e in entries.drain(k..) {
                membership |= matches!(
                    e.kind,
                    EntryType::AddPeer | EntryType::RemovePeer | EntryType::PeerState
                );
                transfer |= e.kind == EntryType::LeaderTransfer
                    && e.term == self.term
                    && e.data[..] == self.cfg.id.name()[..];
                self.log.push(e);
            }
            self.mark_unstable(at);
            if membership {
                self.recompute_voters();
            }
        }
        self.send(
            from,
            Body::AppendResponse {
                term: self.term,
                index: last_new,
                success: true,
            },
        );
        let new_commit = commit.min(last_new);
        if new_commit > self.commit {
            self.commit = new_commit;
            self.commit_dirty = true;
        }
        if transfer && self.can_campaign() {
            self.campaign();
        }
    }

    /// Where the logs may still match after a refused append: this log's end if it is
    /// shorter, else before the run of entries newer than the leader's `prev_term`.
    fn reject_hint(&self, prev_index: LogIndex, prev_term: Term) -> LogIndex {
        let last = self.log.last_index();
        if prev_index > last {
            return last;
        }
        let mut i = prev_index.saturating_sub(1);
        while i > self.commit && self.log.term_at(i).is_some_and(|t| t > prev_term) {
            i -= 1;
        }
        i
    }

    fn on_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        if snapshot.term > self.term || snapshot.index >= u64::MAX / 2 {
            return;
        }
        if snapshot.index <= self.commit {
            let index = self.commit;
            self.send(
                from,
                Body::AppendResponse {
                    term: self.term,
                    index,
                    success: true,
                },
            );
            return;
        }
        let index = snapshot.index;
        if self.log.term_at(index) == Some(snapshot.term) {
            self.log.compact_to(index);
        } else {
            self.log.reset(index, snapshot.term);
            self.mark_unstable(index + 1);
        }
        self.commit = index;
        self.applied = index;
        self.commit_dirty = true;
        self.snapshot = Some(snapshot.clone());
        self.snapshot_dirty = Some(snapshot.clone());
        self.recompute_voters();
        self.out.push_back(Output::Restore(snapshot));
        self.send(
            from,
            Body::AppendResponse {
                term: self.term,
                index,
                success: true,
            },
        );
    }

    // ---- membership ----

    /// The voters after every membership entry in the log, starting from the snapshot's.
    fn recompute_voters(&mut self) {
        self.voters = self.voters_at(self.log.last_index());
        self.sync_progress();
    }

    fn voters_at(&self, index: LogIndex) -> Vec<NodeId> {
        let mut voters = self
            .snapshot
            .as_ref()
            .map_or_else(|| self.cfg.voters.clone(), |s| s.voters.clone());
        for e in self.log.entries().take_while(|e| e.index <= index) {
            let peer = <[u8; 8]>::try_from(&e.data[..]).map(NodeId::from_name);
            match (e.kind, peer) {
                (EntryType::AddPeer, Ok(p)) if !voters.contains(&p) => voters.push(p),
                (EntryType::RemovePeer, Ok(p)) => voters.retain(|v| *v != p),
                (EntryType::PeerState, _) => {
                    if let Ok(v) = decode_peer_state(&e.data) {
                        voters = v;
                    }
                }
                _ => {}
            }
        }
        voters.sort_unstable();
        voters.dedup();
        voters
    }

    // ---- persistence and output ----

    fn mark_unstable(&mut self, index: LogIndex) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
        self.persisted = self.persisted.min(index - 1);
    }

    fn sync_dirty(&self) -> bool {
        self.hard_dirty || self.unstable_from.is_some() || self.snapshot_dirty.is_some()
    }

    /// Queues `body` for `to`: at once if it depends on nothing unpersisted, else held
    /// until the `Persist` that carries what it depends on is confirmed.
    fn send(&mut self, to: NodeId, body: Body) {
        let independent = match &body {
            Body::AppendEntries { .. } | Body::InstallSnapshot { .. } => self.role == Role::Leader,
            Body::VoteRequest { pre_vote, .. } | Body::VoteResponse { pre_vote, .. } => *pre_vote,
            Body::AppendResponse { success, .. } => *success && self.mutated_ack_before_persist(),
        };
        let needs = if self.sync_dirty() {
            self.last_seq + 1
        } else {
            self.last_sync_seq
        };
        let msg = Message {
            from: self.cfg.id,
            to,
            body,
        };
        if independent || needs <= self.confirmed_seq {
            self.out.push_back(Output::Send(msg));
        } else {
            self.held.push_back((needs, msg));
        }
    }

    fn flush(&mut self) {
        if self.role == Role::Leader && self.broadcast {
            let peers: Vec<NodeId> = self.progress.keys().copied().collect();
            let notify = self.notify;
            for peer in peers {
                self.send_append(peer, notify);
            }
            self.broadcast = false;
            self.notify = false;
        }
        self.flush_persist();
        self.apply_committed();
        let now = (self.role, self.term, self.leader);
        if self.reported != Some(now) {
            self.reported = Some(now);
            self.out.push_back(Output::State {
                role: now.0,
                term: now.1,
                leader: now.2,
            });
        }
    }

    fn flush_persist(&mut self) {
        if !self.sync_dirty() && !self.commit_dirty {
            return;
        }
        let sync = self.sync_dirty();
        self.last_seq += 1;
        let seq = self.last_seq;
        if sync {
            self.last_sync_seq = seq;
        }
        let entries = match self.unstable_from.take() {
            Some(from) => {
                let from = from.max(self.log.snap_index + 1);
                let last = self.log.last_index();
                self.issued.push_back((seq, from, last));
                self.log.slice(from, last)
            }
            None => Vec::new(),
        };
        let hard_state = (self.hard_dirty || self.commit_dirty).then(|| self.hard_state());
        self.hard_dirty = false;
        self.commit_dirty = false;
        let snapshot = self.snapshot_dirty.take();
        self.out.push_back(Output::Persist(Persist {
            seq,
            hard_state,
            snapshot,
            entries,
            sync,
        }));
    }

    fn update_persisted(&mut self) {
        let mut p = self.durable_last.min(self.log.last_index());
        for (_, first, _) in &self.issued {
            p = p.min(first - 1);
        }
        self.persisted = p;
    }

    fn apply_committed(&mut self) {
        let upto = self.commit.min(self.persisted);
        if upto <= self.applied {
            return;
        }
        let entries = self.log.slice(self.applied + 1, upto);
        self.applied = upto;
        self.out.push_back(Output::Apply(entries));
    }

    // ---- mutations (feature `mutation`; without it each is a constant false) ----

    #[cfg(feature = "mutation")]
    fn mutated_double_vote(&self) -> bool {
        self.cfg.mutation == Some(Mutation::DoubleVote)
    }

    #[cfg(not(feature = "mutation"))]
    fn mutated_double_vote(&self) -> bool {
        false
    }

    #[cfg(feature = "mutation")]
    fn mutated_ack_before_persist(&self) -> bool {
        self.cfg.mutation == Some(Mutation::AckBeforePersist)
    }

    #[cfg(not(feature = "mutation"))]
    fn mutated_ack_before_persist(&self) -> bool {
        false
    }

    #[cfg(feature = "mutation")]
    fn mutated_commit_old_term(&self) -> bool {
        self.cfg.mutation == Some(Mutation::CommitOldTerm)
    }

    #[cfg(not(feature = "mutation"))]
    fn mutated_commit_old_term(&self) -> bool {
        false
    }
}

/// Entries from `from`, all of one term (nats-server's append entries carry one term),
/// within the batch limits.
fn batch(log: &Log, from: LogIndex, cfg: &Config) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut bytes = 0;
    let mut index = from;
    while let Some(e) = log.get(index) {
        let full = out.len() >= cfg.max_batch_entries
            || (!out.is_empty() && bytes + e.data.len() > cfg.max_batch_bytes);
        if full || out.first().is_some_and(|f| f.term != e.term) {
            break;
        }
        bytes += e.data.len();
        out.push(e.clone());
        index += 1;
    }
    out
}

/// An append a correct leader could have sent: consecutive indexes after `prev_index`,
/// terms not below `prev_term`, not decreasing and not above the leader's `term`.
fn well_formed(prev_index: LogIndex, prev_term: Term, term: Term, entries: &[Entry]) -> bool {
    let mut prev = (prev_index, prev_term);
    for e in entries {
        if Some(e.index) != prev.0.checked_add(1) || e.term < prev.1 || e.term > term {
            return false;
        }
        prev = (e.index, e.term);
    }
    prev_term <= term
}
