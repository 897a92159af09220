//! The NATS conf parser on arbitrary text: never panics, deterministic,
//! errors point inside the text, parsed trees map onto options.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_engine::fuzzing::conf_parse(data);
});
