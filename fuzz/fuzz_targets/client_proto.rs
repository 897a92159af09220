//! Client protocol parser on arbitrary bytes: never panics, `parse_ref` and
//! the general machine (no fast path) agree with `parse`, and the ops it
//! yields re-encode and re-parse to the same ops.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_proto::fuzz_props::client_proto(data);
});
