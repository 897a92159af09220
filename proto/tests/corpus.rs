//! Replays every file of `fuzz/corpus/client_proto*` through the property
//! its fuzz target checks, so the corpus is exercised on stable without
//! cargo-fuzz.
use std::fs;
use std::path::Path;

use natsd_proto::fuzz_props;

#[test]
fn fuzz_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for dir in fs::read_dir(&root).expect("fuzz/corpus exists") {
        let dir = dir.expect("readable corpus dir").path();
        let target = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let property: fn(&[u8]) = match target.as_str() {
            "client_proto" => fuzz_props::client_proto,
            "client_proto_chunked" => fuzz_props::client_proto_chunked,
            _ => continue,
        };
        for file in fs::read_dir(&dir).expect("readable corpus dir") {
            let path = file.expect("readable corpus entry").path();
            let data = fs::read(&path).expect("readable corpus file");
            property(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no corpus files under {}", root.display());
}
