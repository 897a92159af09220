//! Sans-IO RAFT for natsd.
//!
//! This crate owns the RAFT node ([`Node`]): leader election with seeded randomized
//! timeouts, pre-vote and check-quorum, log replication with batching and pipelining,
//! commit by counting only entries of the leader's term, follower catch-up, snapshots and
//! log compaction, membership changes one peer at a time, leader transfer and observers.
//! It also owns the wire form of its messages ([`wire`], nats-server's `$NRG.*` bytes), the
//! storage seam ([`LogStorage`], with [`MemStorage`]) and a deterministic simulator
//! ([`sim`], run by the `simulate` binary).
//!
//! It never reads a clock, starts a thread, opens a socket or touches a file: the driver
//! passes ticks, messages and proposals in, and performs the outputs it polls.
//!
//! ```text
//!   ticks, messages, proposals ─┐            ┌─► Persist (then handle_persisted(seq))
//!   handle_persisted(seq)  ─────┼─► Node ────┼─► Send (only what is durable to say)
//!   compact(index, data)  ──────┘            └─► Apply / Restore / State
//! ```
//!
//! Driving one single-voter group to a commit:
//!
//! ```
//! use natsd_consensus::{Config, LogStorage, MemStorage, Node, NodeId, Output};
//! let mut node = Node::new(Config::new(NodeId(1), vec![NodeId(1)]));
//! let mut disk = MemStorage::new();
//! let mut applied = Vec::new();
//! for tick in 0..40 {
//!     node.handle_tick();
//!     if tick == 30 {
//!         node.propose("hello".into()).unwrap();
//!     }
//!     while let Some(out) = node.poll_output() {
//!         match out {
//!             Output::Persist(p) => {
//!                 disk.write(&p).unwrap();
//!                 disk.sync().unwrap();
//!                 node.handle_persisted(p.seq);
//!             }
//!             Output::Apply(entries) => applied.extend(entries.into_iter().map(|e| e.data)),
//!             _ => {}
//!         }
//!     }
//! }
//! assert!(applied.contains(&"hello".into()));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
pub mod local;
mod log;
mod node;
#[cfg(test)]
mod node_tests;
pub mod rng;
pub mod sim;
mod storage;
mod types;
pub mod wire;

#[cfg(feature = "mutation")]
pub use node::Mutation;
pub use node::{Config, Node, Output, Persist, ProposeError, Role};
pub use storage::{LogStorage, MemStorage, Never};
pub use types::{Entry, EntryType, HardState, LogIndex, NodeId, Recovered, Snapshot, Term};
pub use wire::{Body, Message, WireError};
