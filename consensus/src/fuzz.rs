//! The property the `raft_node` fuzz target checks, shared with the stable replay of its
//! corpus (the test below). Built with the `_fuzz` feature (and in tests).
//!
//! One node (id 1 of voters 1, 2, 3) gets an arbitrary sequence of ticks, persist
//! confirmations, proposals, compactions, messages built from a few bytes and messages
//! decoded from raw bytes. It must never panic, its term and commit index must never go
//! back, it must never apply past its commit index, and what it applies must follow on.

use bytes::Bytes;

use crate::node::{Config, Node, Output};
use crate::types::{Entry, EntryType, NodeId};
use crate::wire::{decode, Body, Message};

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    /// A small number: most interesting terms and indexes are near each other.
    fn small(&mut self) -> Option<u64> {
        self.byte().map(|b| u64::from(b % 16))
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Runs one input; panics if a property fails.
pub fn raft_node(data: &[u8]) {
    let mut node = Node::new(Config::new(
        NodeId(1),
        vec![NodeId(1), NodeId(2), NodeId(3)],
    ));
    let mut input = Cursor(data);
    let (mut term, mut commit, mut applied, mut last_seq) = (0, 0, 0, 0);
    while let Some(op) = input.byte() {
        match op % 7 {
            0 | 1 => node.handle_tick(),
            2 => node.handle_persisted(last_seq),
            3 => {
                let _ = node.propose(Bytes::copy_from_slice(input.bytes(3)));
            }
            4 => {
                let applied_now = node.applied();
                node.compact(applied_now, Bytes::from_static(b"state"));
            }
            5 => {
                let Some(msg) = built(&mut input) else { break };
                node.handle_message(msg);
            }
            _ => {
                let len = usize::from(input.byte().unwrap_or(0));
                let raw = Bytes::copy_from_slice(input.bytes(len));
                if let Ok(mut msg) = decode(NodeId(1), &raw) {
                    msg.from = NodeId(2 + (msg.from.0 & 1));
                    node.handle_message(msg);
                }
            }
        }
        while let Some(out) = node.poll_output() {
            match out {
                Output::Persist(p) => last_seq = p.seq,
                Output::Apply(entries) => {
                    for e in entries {
                        assert_eq!(e.index, applied + 1, "applied entries follow on");
                        applied = e.index;
                    }
                }
                Output::Restore(s) => applied = s.index,
                Output::Send(_) | Output::State { .. } => {}
            }
        }
        assert!(node.term() >= term, "term went back");
        assert!(node.commit() >= commit, "commit went back");
        assert!(applied <= node.commit(), "applied past the commit index");
        assert_eq!(applied, node.applied());
        term = node.term();
        commit = node.commit();
    }
}

/// A message from peer 2 or 3 with small terms and indexes, so that it often makes sense.
fn built(input: &mut Cursor) -> Option<Message> {
    let kind = input.byte()?;
    let from = NodeId(2 + u64::from(kind & 1));
    let (term, a, b, c) = (
        input.small()?,
        input.small()?,
        input.small()?,
        input.small()?,
    );
    let body = match (kind >> 1) % 4 {
        0 => Body::VoteRequest {
            term,
            last_term: a,
            last_index: b,
            pre_vote: c & 1 == 1,
        },
        1 => Body::VoteResponse {
            term,
            granted: a & 1 == 1,
            empty: false,
            pre_vote: b & 1 == 1,
        },
        2 => Body::AppendResponse {
            term,
            index: a,
            success: b & 1 == 1,
        },
        _ => {
            let entries = (0..c % 4)
                .map(|k| Entry {
                    term,
                    index: a + 1 + k,
                    kind: EntryType::Normal,
                    data: Bytes::from_static(b"e"),
                })
                .collect();
            Body::AppendEntries {
                term,
                prev_index: a,
                prev_term: b,
                commit: c,
                entries,
            }
        }
    };
    Some(Message {
        from,
        to: NodeId(1),
        body,
    })
}

#[cfg(test)]
mod tests {
    /// Replays `fuzz/corpus/raft_node` on the stable toolchain (`term-overflow-regression`
    /// overflowed `term + 1` in debug builds before absurd terms were dropped).
    #[test]
    fn corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/raft_node");
        let Ok(files) = std::fs::read_dir(dir) else {
            return;
        };
        let mut n = 0;
        for f in files {
            super::raft_node(&std::fs::read(f.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "the corpus directory is empty");
    }

    #[test]
    fn a_busy_sequence_keeps_the_properties() {
        let mut data = Vec::new();
        for i in 0..2000u32 {
            data.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
        }
        super::raft_node(&data);
    }
}
