//! The client connection machine on arbitrary bytes in arbitrary chunks:
//! everything it writes parses as server ops, it asks to be closed at most
//! once, and closing leaves no subscription or connection behind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::client_conn(std::time::Instant::now(), data);
});
