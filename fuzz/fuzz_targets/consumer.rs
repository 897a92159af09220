//! The JetStream consumer machine under random stream events, acks of every
//! kind, pull requests, interest changes and time: max_ack_pending holds,
//! acked messages never come back, sequences never go down and every matching
//! message is accounted for exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::consumer(std::time::Instant::now(), data);
});
