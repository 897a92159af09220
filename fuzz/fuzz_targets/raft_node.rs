//! One RAFT node driven by arbitrary ticks, persist confirmations, proposals, compactions
//! and messages (built from a few bytes or decoded from raw bytes): never panics, its term
//! and commit index never go back, and it applies in order and never past its commit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_consensus::fuzz::raft_node(data);
});
