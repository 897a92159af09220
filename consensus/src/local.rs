//! A whole group in one thread over any [`LogStorage`]: the smallest real driver, used by
//! the benchmarks (memory and file logs) and by embedders' tests.
//!
//! It drives in rounds: every node's outputs are performed, each node that wrote something
//! syncs once for all of it (group commit) and is told so, then every message sent in the
//! round is delivered.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::node::{Config, Node, Output, Role};
use crate::storage::LogStorage;
use crate::types::{LogIndex, NodeId};
use crate::wire::Message;

/// Nodes `1..=n`, each with its storage, and an in-order lossless network.
#[derive(Debug)]
pub struct LocalCluster<S> {
    nodes: Vec<Node>,
    stores: Vec<S>,
    net: VecDeque<Message>,
    written: Vec<Option<u64>>,
    applied: Vec<LogIndex>,
}

impl<S: LogStorage> LocalCluster<S> {
    /// A new group of `stores.len()` voters; `tweak` adjusts each node's config.
    pub fn new(stores: Vec<S>, tweak: impl Fn(&mut Config)) -> LocalCluster<S> {
        let voters: Vec<NodeId> = (1..=stores.len() as u64).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|id| {
                let mut cfg = Config::new(*id, voters.clone());
                tweak(&mut cfg);
                Node::new(cfg)
            })
            .collect();
        let n = stores.len();
        LocalCluster {
            nodes,
            stores,
            net: VecDeque::new(),
            written: vec![None; n],
            applied: vec![0; n],
        }
    }

    /// The node at position `i` (node id `i + 1`).
    pub fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The highest index each node applied.
    pub fn applied(&self) -> &[LogIndex] {
        &self.applied
    }

    /// Ticks every node and runs rounds until one leads; returns its position.
    pub fn elect(&mut self) -> Result<usize, S::Error> {
        loop {
            for n in &mut self.nodes {
                n.handle_tick();
            }
            while self.round()? {}
            if let Some(l) = self.nodes.iter().position(|n| n.role() == Role::Leader) {
                return Ok(l);
            }
        }
    }

    /// Proposes each of `entries` at node `leader`.
    pub fn propose(&mut self, leader: usize, entries: impl IntoIterator<Item = Bytes>) -> LogIndex {
        let mut last = 0;
        for e in entries {
            last = self.nodes[leader]
                .propose(e)
                .expect("proposals go to the leader");
        }
        last
    }

    /// Runs rounds until every node applied `index`.
    pub fn run_until_applied(&mut self, index: LogIndex) -> Result<(), S::Error> {
        while self.applied.iter().any(|a| *a < index) {
            if !self.round()? {
                for n in &mut self.nodes {
                    n.handle_tick();
                }
            }
        }
        Ok(())
    }

    /// One round; false if nothing happened.
    pub fn round(&mut self) -> Result<bool, S::Error> {
        let mut busy = false;
        for i in 0..self.nodes.len() {
            while let Some(out) = self.nodes[i].poll_output() {
                busy = true;
                match out {
                    Output::Persist(p) => {
                        self.stores[i].write(&p)?;
                        self.written[i] = Some(p.seq);
                    }
                    Output::Send(m) => self.net.push_back(m),
                    Output::Apply(es) => {
                        self.applied[i] = es.last().map_or(self.applied[i], |e| e.index)
                    }
                    Output::Restore(s) => self.applied[i] = s.index,
                    Output::State { .. } => {}
                }
            }
        }
        for i in 0..self.nodes.len() {
            if let Some(seq) = self.written[i].take() {
                self.stores[i].sync()?;
                self.nodes[i].handle_persisted(seq);
                busy = true;
            }
        }
        while let Some(m) = self.net.pop_front() {
            let to = (m.to.0 - 1) as usize;
            self.nodes[to].handle_message(m);
            busy = true;
        }
        Ok(busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    #[test]
    fn a_local_cluster_commits_everywhere() {
        let mut c = LocalCluster::new(vec![MemStorage::new(); 3], |_| {});
        let l = c.elect().unwrap();
        let last = c.propose(l, (0..100).map(|_| Bytes::from_static(&[7; 100])));
        c.run_until_applied(last).unwrap();
        assert_eq!(c.applied(), &[last, last, last]);
    }
}
