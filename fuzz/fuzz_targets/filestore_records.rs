//! The file store's record and block format: arbitrary bytes decode without
//! panicking, a record that decodes encodes back to its bytes, and records
//! written into a block (plain, encrypted, packed, compressed) read back
//! whole.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    natsd_storage::fuzzing::filestore_records(data);
});
