//! Replays every file of `fuzz/corpus/<target>/` through the property its
//! cargo-fuzz target checks, so CI exercises the corpus on stable.
use std::fs;
use std::path::Path;
use std::time::Instant;

fn replay(target: &str, property: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable corpus entry").path();
        let data = fs::read(&path).expect("readable corpus file");
        property(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus files under {}", dir.display());
}

#[test]
fn client_proto_corpus() {
    replay("client_proto", natsd_proto::fuzz_props::client_proto);
}

#[test]
fn client_proto_chunked_corpus() {
    replay(
        "client_proto_chunked",
        natsd_proto::fuzz_props::client_proto_chunked,
    );
}

#[test]
fn client_conn_corpus() {
    let now = Instant::now();
    replay("client_conn", |data| {
        natsd_engine::fuzzing::client_conn(now, data)
    });
}

#[test]
fn route_conn_corpus() {
    let now = Instant::now();
    replay("route_conn", |data| {
        natsd_engine::fuzzing::route_conn(now, data)
    });
}

#[test]
fn conf_parse_corpus() {
    replay("conf_parse", natsd_engine::fuzzing::conf_parse);
}

#[test]
fn consumer_corpus() {
    let now = Instant::now();
    replay("consumer", |data| {
        natsd_engine::fuzzing::consumer(now, data)
    });
}

#[test]
fn subject_transform_corpus() {
    replay(
        "subject_transform",
        natsd_engine::fuzzing::subject_transform,
    );
}

#[test]
fn route_proto_corpus() {
    replay("route_proto", natsd_proto::route::fuzz_props::route_proto);
}

#[test]
fn sublist_corpus() {
    replay("sublist", natsd_engine::fuzzing::sublist);
}

#[test]
fn filestore_records_corpus() {
    replay(
        "filestore_records",
        natsd_storage::fuzzing::filestore_records,
    );
}
