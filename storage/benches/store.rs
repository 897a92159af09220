//! Store micro-benchmarks: append (16 B, 1 KiB), load by sequence and load last by subject
//! with 1M messages, for both backends. File stores append without fsync, one write per 256
//! messages (a stage batch).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natsd_storage::{FileStore, FileStoreConfig, MemStore, Store, StoreLimits};

const N: u64 = 1_000_000;
const SUBJECTS: u64 = 10_000;

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("natsd-storage-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn open_file(tag: &str) -> (FileStore, PathBuf) {
    let p = tmp(tag);
    (FileStore::open(&p, FileStoreConfig::default()).unwrap(), p)
}

/// Messages written per flush, as a JetStream stage batch under load.
const BATCH: u64 = 256;

fn append(c: &mut Criterion) {
    for size in [16usize, 1024] {
        let mut g = c.benchmark_group(format!("append_{size}B"));
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(3));
        let payload = vec![b'x'; size];
        g.bench_function("mem", |b| {
            b.iter_custom(|iters| {
                let mut s = MemStore::new(StoreLimits::default());
                let t = Instant::now();
                for i in 0..iters {
                    black_box(
                        s.store_msg("bench.append", b"", &payload, i as i64)
                            .unwrap(),
                    );
                }
                t.elapsed()
            })
        });
        g.bench_function("file", |b| {
            b.iter_custom(|iters| {
                let (mut s, p) = open_file("append");
                let t = Instant::now();
                for i in 0..iters {
                    black_box(
                        s.store_msg("bench.append", b"", &payload, i as i64)
                            .unwrap(),
                    );
                    if i % BATCH == BATCH - 1 {
                        s.flush().unwrap();
                    }
                }
                s.flush().unwrap();
                let d = t.elapsed();
                drop(s);
                let _ = std::fs::remove_dir_all(p);
                d
            })
        });
        g.finish();
    }
}

fn fill(s: &mut dyn Store) {
    for i in 0..N {
        let subj = format!("kv.{}", i % SUBJECTS);
        s.store_msg(&subj, b"", &[7u8; 16], i as i64).unwrap();
    }
}

fn loads(c: &mut Criterion) {
    let mut mem = MemStore::new(StoreLimits::default());
    fill(&mut mem);
    let (mut file, p) = open_file("load");
    fill(&mut file);
    let subjects: Vec<String> = (0..SUBJECTS).map(|i| format!("kv.{i}")).collect();
    let stores: [(&str, &dyn Store); 2] = [("mem", &mem), ("file", &file)];
    let mut g = c.benchmark_group("load_by_seq_1M");
    g.throughput(Throughput::Elements(1));
    for (name, s) in stores {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        g.bench_function(name, |b| {
            b.iter(|| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                black_box(s.load_msg(1 + x % N).unwrap())
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("load_last_by_subject_1M");
    g.throughput(Throughput::Elements(1));
    for (name, s) in stores {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % subjects.len();
                black_box(s.load_last_msg(&subjects[i]).unwrap())
            })
        });
    }
    g.finish();
    drop(file);
    let _ = std::fs::remove_dir_all(p);
}

criterion_group!(benches, append, loads);
criterion_main!(benches);
