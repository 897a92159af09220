//! The route connection machine on arbitrary bytes in arbitrary chunks:
//! everything it writes parses as route ops (and as server ops to a local
//! client), it asks to be closed at most once, and closing leaves none of
//! the peer's interest behind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::route_conn(std::time::Instant::now(), data);
});
