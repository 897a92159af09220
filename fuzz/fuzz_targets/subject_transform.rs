//! Subject transforms and account mappings on arbitrary source, destination
//! and subject: never panic, deterministic, consistent with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::subject_transform(data);
});
