//! One test per rule of the node, with a clock the test owns (ticks) and a network the test
//! delivers by hand. Section numbers cite the RAFT paper (§) or Ongaro's thesis (thesis §).

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::node::{Config, Node, Output, ProposeError, Role};
use crate::storage::{LogStorage, MemStorage};
use crate::types::{Entry, EntryType, NodeId};
use crate::wire::{Body, Message};

/// Nodes, their disks and an in-order network; persistence is synced at once unless a
/// node is set to hold its persists.
struct Cluster {
    nodes: Vec<Node>,
    disks: Vec<MemStorage>,
    net: VecDeque<Message>,
    down: BTreeSet<u64>,
    applied: Vec<Vec<Entry>>,
}

fn id(n: u64) -> NodeId {
    NodeId(n)
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        Cluster::with(size, |_| {})
    }

    fn with(size: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let voters: Vec<NodeId> = (1..=size).map(id).collect();
        let nodes = voters
            .iter()
            .map(|v| {
                let mut cfg = Config::new(*v, voters.clone());
                tweak(&mut cfg);
                Node::new(cfg)
            })
            .collect();
        let n = size as usize;
        Cluster {
            nodes,
            disks: vec![MemStorage::new(); n],
            net: VecDeque::new(),
            down: BTreeSet::new(),
            applied: vec![Vec::new(); n],
        }
    }

    fn node(&mut self, n: u64) -> &mut Node {
        &mut self.nodes[(n - 1) as usize]
    }

    /// Performs every output of node `n`, syncing persists at once.
    fn drain(&mut self, n: u64) {
        let i = (n - 1) as usize;
        while let Some(out) = self.nodes[i].poll_output() {
            match out {
                Output::Persist(p) => {
                    self.disks[i].write(&p).unwrap();
                    self.disks[i].sync().unwrap();
                    self.nodes[i].handle_persisted(p.seq);
                }
                Output::Send(m) => self.net.push_back(m),
                Output::Apply(es) => self.applied[i].extend(es),
                Output::Restore(s) => self.applied[i].retain(|e| e.index > s.index),
                Output::State { .. } => {}
            }
        }
    }

    fn deliver_all(&mut self) {
        for _ in 0..10_000 {
            let Some(m) = self.net.pop_front() else {
                return;
            };
            if self.down.contains(&m.from.0) || self.down.contains(&m.to.0) {
                continue;
            }
            let to = m.to.0;
            self.node(to).handle_message(m);
            self.drain(to);
        }
        panic!("the network never went quiet");
    }

    fn tick(&mut self, times: usize) {
        for _ in 0..times {
            for n in 1..=self.nodes.len() as u64 {
                if !self.down.contains(&n) {
                    self.node(n).handle_tick();
                    self.drain(n);
                }
            }
            self.deliver_all();
        }
    }

    fn leaders(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.role() == Role::Leader && !self.down.contains(&n.id().0))
            .map(|n| n.id().0)
            .collect()
    }

    fn elect(&mut self) -> u64 {
        for _ in 0..200 {
            self.tick(1);
            if let [l] = self.leaders()[..] {
                return l;
            }
        }
        panic!("no leader");
    }

    fn propose(&mut self, leader: u64, data: &'static [u8]) -> u64 {
        let index = self.node(leader).propose(Bytes::from_static(data)).unwrap();
        self.drain(leader);
        self.deliver_all();
        index
    }

    fn restart(&mut self, n: u64) {
        let i = (n - 1) as usize;
        let cfg = Config::new(id(n), self.nodes[i].voters().to_vec());
        self.nodes[i] = Node::restart(cfg, self.disks[i].recover().unwrap());
        self.applied[i].clear();
        self.down.remove(&n);
        self.drain(n);
    }
}

fn data_of(entries: &[Entry]) -> Vec<&[u8]> {
    entries
        .iter()
        .filter(|e| e.kind == EntryType::Normal)
        .map(|e| &e.data[..])
        .collect()
}

/// Outputs of `node` without performing them.
fn outputs(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn sends(outs: &[Output]) -> Vec<&Message> {
    outs.iter()
        .filter_map(|o| {
            if let Output::Send(m) = o {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

fn persist_seq(outs: &[Output]) -> Option<u64> {
    outs.iter().find_map(|o| {
        if let Output::Persist(p) = o {
            Some(p.seq)
        } else {
            None
        }
    })
}

#[test]
fn a_leader_is_elected_and_commits_on_every_node() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    assert_eq!(c.node(l).term(), 1);
    let index = c.propose(l, b"x");
    c.tick(3);
    for n in 1..=3 {
        assert!(c.node(n).commit() >= index);
        assert_eq!(data_of(&c.applied[(n - 1) as usize]), vec![&b"x"[..]]);
    }
}

#[test]
fn election_timeouts_are_randomized_from_the_seed() {
    let draws = |seed| {
        let mut cfg = Config::new(id(1), vec![id(1), id(2), id(3)]);
        cfg.seed = seed;
        let mut node = Node::new(cfg);
        (0..30).position(|_| {
            node.handle_tick();
            node.role() == Role::PreCandidate
        })
    };
    assert_eq!(draws(5), draws(5), "same seed, same timeout");
    let spread: BTreeSet<_> = (0..20).map(draws).collect();
    assert!(spread.len() > 3, "timeouts vary with the seed: {spread:?}");
    assert!(
        spread
            .iter()
            .all(|t| t.is_some_and(|t| (9..20).contains(&t))),
        "{spread:?}"
    );
}

/// Thesis §9.6: a node cut off from the leader runs pre-votes, which fail, so its term
/// stays put and it does not depose the leader when it comes back.
#[test]
fn pre_vote_keeps_a_returning_node_from_disrupting() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let term = c.node(l).term();
    let f = (1..=3).find(|n| *n != l).unwrap();
    c.down.insert(f);
    for _ in 0..100 {
        c.node(f).handle_tick();
        c.drain(f);
        c.tick(1);
    }
    assert_eq!(c.node(f).term(), term, "pre-votes do not raise the term");
    c.down.remove(&f);
    // Its next pre-vote reaches the others before any heartbeat reaches it: they still
    // hear from their leader, so they refuse.
    c.net.clear();
    while !c
        .net
        .iter()
        .any(|m| matches!(m.body, Body::VoteRequest { .. }))
    {
        c.node(f).handle_tick();
        c.drain(f);
    }
    c.deliver_all();
    assert_eq!(c.node(f).term(), term);
    c.tick(20);
    assert_eq!(c.leaders(), vec![l]);
    assert_eq!(c.node(l).term(), term);
}

/// Thesis §6.2: a leader that does not hear from a quorum within an election timeout
/// steps down.
#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.down.extend((1..=3).filter(|n| *n != l));
    for _ in 0..25 {
        c.node(l).handle_tick();
        c.drain(l);
        c.net.clear();
    }
    assert_eq!(c.node(l).role(), Role::Follower);
}

/// §5.2: at most one vote per term.
#[test]
fn a_node_votes_once_per_term() {
    let mut node = Node::new(Config::new(id(1), vec![id(1), id(2), id(3)]));
    let ask = |from| Message {
        from: id(from),
        to: id(1),
        body: Body::VoteRequest {
            term: 1,
            last_term: 0,
            last_index: 0,
            pre_vote: false,
        },
    };
    node.handle_message(ask(2));
    let outs = outputs(&mut node);
    node.handle_persisted(persist_seq(&outs).unwrap());
    node.handle_message(ask(3));
    node.handle_message(ask(2));
    let outs = outputs(&mut node);
    let granted: Vec<(u64, bool)> = sends(&outs)
        .iter()
        .map(|m| match m.body {
            Body::VoteResponse { granted, .. } => (m.to.0, granted),
            _ => panic!("unexpected {m:?}"),
        })
        .collect();
    assert_eq!(granted, vec![(2, true), (3, false), (2, true)]);
}

/// §5.4.1: no vote for a candidate whose log is behind.
#[test]
fn no_vote_for_a_candidate_with_an_older_log() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.propose(l, b"a");
    let f = (1..=3).find(|n| *n != l).unwrap();
    let term = c.node(f).term();
    let ask = Message {
        from: id(9),
        to: id(f),
        body: Body::VoteRequest {
            term: term + 1,
            last_term: term - 1,
            last_index: 9,
            pre_vote: false,
        },
    };
    c.node(f).handle_message(ask);
    let outs = outputs(c.node(f));
    assert!(sends(&outs)
        .iter()
        .all(|m| !matches!(m.body, Body::VoteResponse { granted: true, .. })));
}

/// raft-rs `Ready::persisted_messages`: a vote goes out only after the vote is durable.
#[test]
fn a_vote_waits_for_its_persist() {
    let mut node = Node::new(Config::new(id(1), vec![id(1), id(2), id(3)]));
    node.handle_message(Message {
        from: id(2),
        to: id(1),
        body: Body::VoteRequest {
            term: 1,
            last_term: 0,
            last_index: 0,
            pre_vote: false,
        },
    });
    let outs = outputs(&mut node);
    let Some(Output::Persist(p)) = outs.first() else {
        panic!("{outs:?}")
    };
    assert!(p.sync);
    assert_eq!(p.hard_state.unwrap().vote, Some(id(2)));
    assert!(
        sends(&outs).is_empty(),
        "nothing is sent before the vote is persisted"
    );
    node.handle_persisted(p.seq);
    let outs = outputs(&mut node);
    assert!(matches!(
        sends(&outs)[..],
        [Message {
            body: Body::VoteResponse { granted: true, .. },
            ..
        }]
    ));
}

/// An acknowledgement says the entries are durable, so it waits for their persist.
#[test]
fn an_append_is_acknowledged_only_once_persisted() {
    let mut node = Node::new(Config::new(id(1), vec![id(1), id(2), id(3)]));
    let e = Entry {
        term: 1,
        index: 1,
        kind: EntryType::Normal,
        data: Bytes::from_static(b"a"),
    };
    node.handle_message(Message {
        from: id(2),
        to: id(1),
        body: Body::AppendEntries {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            commit: 0,
            entries: vec![e.clone()],
        },
    });
    let outs = outputs(&mut node);
    let Some(Output::Persist(p)) = outs.iter().find(|o| matches!(o, Output::Persist(_))) else {
        panic!("{outs:?}")
    };
    assert_eq!(p.entries, vec![e]);
    assert!(sends(&outs).is_empty());
    node.handle_persisted(p.seq);
    let outs = outputs(&mut node);
    assert!(matches!(
        sends(&outs)[..],
        [Message {
            body: Body::AppendResponse {
                index: 1,
                success: true,
                ..
            },
            ..
        }]
    ));
}

/// §5.4.2 (Figure 8): a leader does not commit an entry of an earlier term by counting
/// replicas, only by committing an entry of its own term after it.
#[test]
fn only_entries_of_the_current_term_commit_by_counting() {
    let voters = vec![id(1), id(2), id(3)];
    let old = Entry {
        term: 1,
        index: 1,
        kind: EntryType::Normal,
        data: Bytes::from_static(b"old"),
    };
    let recovered = crate::types::Recovered {
        hard_state: crate::types::HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        snapshot: None,
        entries: vec![old],
    };
    let mut leader = Node::restart(Config::new(id(1), voters), recovered);
    for _ in 0..25 {
        leader.handle_tick();
        let outs = outputs(&mut leader);
        if let Some(seq) = persist_seq(&outs) {
            leader.handle_persisted(seq);
        }
        for m in sends(&outs) {
            if let Body::VoteRequest { term, pre_vote, .. } = m.body {
                leader.handle_message(Message {
                    from: m.to,
                    to: id(1),
                    body: Body::VoteResponse {
                        term,
                        granted: true,
                        empty: false,
                        pre_vote,
                    },
                });
            }
        }
        if leader.role() == Role::Leader {
            break;
        }
    }
    assert_eq!(leader.role(), Role::Leader);
    let drained = outputs(&mut leader);
    if let Some(seq) = persist_seq(&drained) {
        leader.handle_persisted(seq);
    }
    // Follower 2 holds entry 1 (term 1) but not yet the leader's entry 2 (its term).
    leader.handle_message(Message {
        from: id(2),
        to: id(1),
        body: Body::AppendResponse {
            term: leader.term(),
            index: 1,
            success: true,
        },
    });
    let _ = outputs(&mut leader);
    assert_eq!(
        leader.commit(),
        0,
        "entry 1 is on a majority but of an older term"
    );
    leader.handle_message(Message {
        from: id(2),
        to: id(1),
        body: Body::AppendResponse {
            term: leader.term(),
            index: 2,
            success: true,
        },
    });
    let _ = outputs(&mut leader);
    assert_eq!(leader.commit(), 2);
}

/// §5.3: a follower's conflicting uncommitted entries give way to the leader's.
#[test]
fn conflicting_entries_are_replaced() {
    let mut node = Node::new(Config::new(id(1), vec![id(1), id(2), id(3)]));
    let e = |t, i, d: &'static [u8]| Entry {
        term: t,
        index: i,
        kind: EntryType::Normal,
        data: Bytes::from_static(d),
    };
    let ae = |term, prev_index, prev_term, entries| Message {
        from: id(2),
        to: id(1),
        body: Body::AppendEntries {
            term,
            prev_index,
            prev_term,
            commit: 0,
            entries,
        },
    };
    node.handle_message(ae(1, 0, 0, vec![e(1, 1, b"a"), e(1, 2, b"stale")]));
    let _ = outputs(&mut node);
    node.handle_message(ae(2, 1, 1, vec![e(2, 2, b"new")]));
    let outs = outputs(&mut node);
    let Some(Output::Persist(p)) = outs.iter().find(|o| matches!(o, Output::Persist(_))) else {
        panic!()
    };
    assert_eq!(
        p.entries,
        vec![e(2, 2, b"new")],
        "the rewrite starts at the conflict"
    );
    assert_eq!(node.entry(2).unwrap().data, Bytes::from_static(b"new"));
}

/// A refused append gets a hint, so the leader backs up past a whole run of wrong terms.
#[test]
fn a_lagging_follower_catches_up() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let f = (1..=3).find(|n| *n != l).unwrap();
    c.down.insert(f);
    for _ in 0..20 {
        c.propose(l, b"v");
    }
    c.down.remove(&f);
    c.tick(10);
    assert_eq!(c.node(f).last_index(), c.node(l).last_index());
    assert_eq!(c.node(f).commit(), c.node(l).commit());
}

/// Proposals made before the driver polls travel in one append per follower (batching);
/// more appends go out before any answer (pipelining).
#[test]
fn proposals_are_batched_and_pipelined() {
    let mut c = Cluster::with(3, |cfg| cfg.max_batch_entries = 4);
    let l = c.elect();
    for _ in 0..8 {
        c.node(l).propose(Bytes::from_static(b"p")).unwrap();
    }
    let outs = outputs(c.node(l));
    let appends: Vec<usize> = sends(&outs)
        .iter()
        .filter_map(|m| {
            if let Body::AppendEntries { entries, .. } = &m.body {
                Some(entries.len())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        appends,
        vec![4, 4, 4, 4],
        "two full batches to each of two followers, unanswered"
    );
}

/// A follower behind the leader's compacted log gets the snapshot.
#[test]
fn a_far_behind_follower_gets_a_snapshot() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let f = (1..=3).find(|n| *n != l).unwrap();
    c.down.insert(f);
    for _ in 0..10 {
        c.propose(l, b"v");
    }
    c.tick(2);
    let applied = c.node(l).applied();
    c.node(l).compact(applied, Bytes::from_static(b"state"));
    c.drain(l);
    assert_eq!(c.node(l).snapshot_index(), applied);
    c.down.remove(&f);
    c.tick(10);
    assert_eq!(c.node(f).snapshot_index(), applied);
    assert!(c.node(f).commit() >= applied);
    c.propose(l, b"after");
    c.tick(2);
    assert_eq!(data_of(&c.applied[(f - 1) as usize]), vec![&b"after"[..]]);
}

/// Single-server membership changes (thesis §4.1): a new node joins, catches up and
/// counts; a node that stays down is removed and the rest go on.
#[test]
fn peers_are_added_and_removed_one_at_a_time() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.propose(l, b"before");
    // Node 4 starts knowing no voters: it learns them from the leader.
    c.nodes.push(Node::new(Config::new(id(4), vec![])));
    c.disks.push(MemStorage::new());
    c.applied.push(Vec::new());
    c.node(l).propose_add_peer(id(4)).unwrap();
    assert_eq!(
        c.node(l).propose_add_peer(id(5)),
        Err(ProposeError::ChangeInProgress)
    );
    c.drain(l);
    c.tick(10);
    assert_eq!(c.node(4).voters(), &[id(1), id(2), id(3), id(4)]);
    assert_eq!(data_of(&c.applied[3]), vec![&b"before"[..]]);
    // Two nodes go down for good; with four voters there is no quorum until one is removed.
    let gone: Vec<u64> = (1..=4).filter(|n| *n != l && *n != 4).collect();
    c.down.insert(gone[0]);
    c.node(l).propose_remove_peer(id(gone[0])).unwrap();
    c.drain(l);
    c.tick(5);
    assert_eq!(c.node(l).voters().len(), 3);
    c.down.insert(gone[1]);
    let index = c.propose(l, b"with two of three");
    c.tick(5);
    assert!(c.node(l).commit() >= index);
}

/// A leader changes membership only after committing an entry of its term (the fix to
/// single-server changes, Ongaro on raft-dev, 2015).
#[test]
fn no_membership_change_before_an_entry_of_the_term_commits() {
    let mut node = Node::new(Config::new(id(1), vec![id(1)]));
    let mut seqs = Vec::new();
    while node.role() != Role::Leader {
        node.handle_tick();
        seqs.extend(persist_seq(&outputs(&mut node)));
    }
    seqs.extend(persist_seq(&outputs(&mut node)));
    assert_eq!(
        node.propose_add_peer(id(2)),
        Err(ProposeError::ChangeInProgress)
    );
    node.handle_persisted(*seqs.last().unwrap());
    assert_eq!(node.commit(), node.last_index());
    assert!(node.propose_add_peer(id(2)).is_ok());
}

/// nats-server's leader transfer: the chosen voter runs at once and wins the next term.
#[test]
fn leadership_moves_to_the_chosen_peer() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let term = c.node(l).term();
    let target = (1..=3).find(|n| *n != l).unwrap();
    assert_eq!(
        c.node(l).transfer_leadership(Some(id(target))),
        Ok(id(target))
    );
    assert_eq!(
        c.node(l).propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress)
    );
    c.drain(l);
    c.deliver_all();
    c.tick(2);
    assert_eq!(c.leaders(), vec![target]);
    assert_eq!(c.node(target).term(), term + 1);
}

#[test]
fn an_observer_never_leads() {
    let mut c = Cluster::with(3, |cfg| cfg.observer = cfg.id != id(2));
    let l = c.elect();
    assert_eq!(l, 2);
    c.down.insert(2);
    c.tick(100);
    assert!(c.leaders().is_empty(), "observers 1 and 3 never run");
}

/// A restarted node finds its term, vote and log on disk.
#[test]
fn a_restart_recovers_what_was_persisted() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    c.propose(l, b"kept");
    c.tick(3);
    let f = (1..=3).find(|n| *n != l).unwrap();
    let (term, last, vote) = (
        c.node(f).term(),
        c.node(f).last_index(),
        c.node(f).hard_state().vote,
    );
    c.restart(f);
    assert_eq!(
        (
            c.node(f).term(),
            c.node(f).last_index(),
            c.node(f).hard_state().vote
        ),
        (term, last, vote)
    );
    assert_eq!(
        data_of(&c.applied[(f - 1) as usize]),
        vec![&b"kept"[..]],
        "the durable commit index is applied again"
    );
}

/// A leader that learns of a newer term steps down.
#[test]
fn a_stale_leader_steps_down() {
    let mut c = Cluster::new(3);
    let l = c.elect();
    let term = c.node(l).term();
    c.node(l).handle_message(Message {
        from: id(9),
        to: id(l),
        body: Body::AppendResponse {
            term: term + 5,
            index: 0,
            success: false,
        },
    });
    assert_eq!(c.node(l).role(), Role::Follower);
    assert_eq!(c.node(l).term(), term + 5);
}
