//! Committed entries per second through a 3-node group in one thread, with memory logs:
//! 100-byte entries proposed in batches, every node applying them. The file-log variant
//! (group commit with fsync) is `natsd-storage`'s `raft` benchmark.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natsd_consensus::local::LocalCluster;
use natsd_consensus::MemStorage;

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_mem_3_nodes");
    for batch in [1usize, 64, 512] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("100B_x{batch}"), |b| {
            let mut cluster = LocalCluster::new(vec![MemStorage::new(); 3], |cfg| {
                cfg.max_batch_entries = 512;
            });
            let leader = cluster.elect().expect("memory storage does not fail");
            let entry = Bytes::from(vec![b'x'; 100]);
            let mut since_compact = 0;
            b.iter(|| {
                let last = cluster.propose(leader, std::iter::repeat_n(entry.clone(), batch));
                cluster
                    .run_until_applied(last)
                    .expect("memory storage does not fail");
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
        });
    }
    group.finish();
}

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
