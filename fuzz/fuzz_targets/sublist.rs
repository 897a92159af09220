//! The sublist under arbitrary inserts, removes and matches, checked against
//! a vector of subscriptions and a naive matcher: the same match results,
//! the same count, snapshots that never change, and no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::sublist(data);
});
