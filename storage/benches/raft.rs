//! Committed entries per second through a 3-node RAFT group in one thread on file logs:
//! 100-byte entries proposed in batches; each node writes all it has to persist in a round
//! and syncs once (group commit, one `fdatasync` per node per round). The memory-log
//! variant is `natsd-consensus`'s `cluster` benchmark.

use std::path::PathBuf;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natsd_consensus::local::LocalCluster;
use natsd_storage::RaftFileLog;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("natsd-raft-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_file_3_nodes");
    group.sample_size(10);
    for batch in [1usize, 64, 512] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("100B_x{batch}"), |b| {
            let dirs: Vec<PathBuf> = (0..3).map(|i| dir(&format!("{batch}-{i}"))).collect();
            let logs = dirs
                .iter()
                .map(|d| RaftFileLog::open(d).expect("open raft log"))
                .collect();
            let mut cluster = LocalCluster::new(logs, |cfg| cfg.max_batch_entries = 512);
            let leader = cluster.elect().expect("file log");
            let entry = Bytes::from(vec![b'x'; 100]);
            let mut since_compact = 0;
            b.iter(|| {
                let last = cluster.propose(leader, std::iter::repeat_n(entry.clone(), batch));
                cluster.run_until_applied(last).expect("file log");
                since_compact += batch;
                if since_compact >= 10_000 {
                    since_compact = 0;
                    for i in 0..3 {
                        let node = cluster.node(i);
                        let applied = node.applied();
                        node.compact(applied, Bytes::new());
                    }
                }
            });
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        });
    }
    group.finish();
}

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
