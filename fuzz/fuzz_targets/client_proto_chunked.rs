//! First byte picks a chunk size; parsing the rest in chunks of that size,
//! with `parse` or `parse_ref`, gives the same ops and error as parsing it
//! whole.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_proto::fuzz_props::client_proto_chunked(data);
});
