//! Route protocol parser on arbitrary bytes (the first byte picks the
//! dialect and a chunk size): never panics, parsing in chunks and with
//! `parse_ref` gives what parsing whole gives, and the ops re-encode and
//! re-parse to the same ops.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_proto::route::fuzz_props::route_proto(data);
});
