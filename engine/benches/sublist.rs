//! Sublist micro-benchmarks: bulk insert, match (uncached and cached) and
//! remove, at 10k and 1M subscriptions.
//!
//! Run one group with `cargo bench -p natsd-engine --bench sublist -- insert`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use natsd_engine::sublist::{MatchCache, SubValue, Sublist};

#[derive(Clone)]
struct Sub(u64);

impl SubValue for Sub {
    fn key(&self) -> u64 {
        self.0
    }
}

/// `a.b.<n>`: one parent with `n` literal children.
fn flat_subject(i: u64) -> String {
    format!("a.b.{i}")
}

/// Mixed depths (2 to 5 tokens), spread over 100 x 100 prefixes, with one
/// subscription in 50 using `*` and one in 100 ending in `>`.
fn mixed_subject(i: u64) -> String {
    let (p, q, r) = (i % 100, (i / 100) % 100, i / 10_000);
    match i % 100 {
        0 => format!("svc.{p}.*.{r}.>"),
        50 => format!("svc.*.{q}.{r}"),
        x if x % 3 == 0 => format!("svc.{p}"),
        x if x % 3 == 1 => format!("svc.{p}.{q}.{r}"),
        _ => format!("svc.{p}.{q}.{r}.evt.{i}"),
    }
}

fn build(n: u64, subject: fn(u64) -> String) -> Sublist<Sub> {
    let sl = Sublist::new();
    for i in 0..n {
        sl.insert(subject(i).as_bytes(), None, Sub(i))
            .expect("benchmark subjects are valid");
    }
    sl
}

/// One timed run per sample: building a big sublist is the measurement.
fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("insert");
    g.sample_size(10);
    for (name, n, subject) in [
        ("flat_1m", 1_000_000u64, flat_subject as fn(u64) -> String),
        ("mixed_1m", 1_000_000, mixed_subject),
        ("flat_10k", 10_000, flat_subject),
    ] {
        let subjects: Vec<Vec<u8>> = (0..n).map(|i| subject(i).into_bytes()).collect();
        // Setup (the empty sublist) and teardown (dropping the full one)
        // are outside the timed part.
        g.bench_function(name, |b| {
            b.iter_batched(
                Sublist::new,
                |sl| {
                    for (i, s) in subjects.iter().enumerate() {
                        sl.insert(s, None, Sub(i as u64))
                            .expect("benchmark subjects are valid");
                    }
                    assert_eq!(sl.count(), n as usize);
                    sl
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("match");
    for (label, n) in [("10k", 10_000u64), ("1m", 1_000_000)] {
        let sl = build(n, mixed_subject);
        // Add wildcard and queue interest that every `svc.*` publish sees.
        sl.insert(b"svc.>", None, Sub(u64::MAX)).expect("valid");
        sl.insert(b"svc.*.*.*", Some(b"workers"), Sub(u64::MAX - 1))
            .expect("valid");
        let snap = sl.snapshot();
        let literal = b"svc.42.17.3.evt.31742".as_ref();
        let wide = b"svc.7.0.0".as_ref();
        let miss = b"other.subject.entirely".as_ref();
        for (what, subject) in [
            ("literal", literal),
            ("wildcard_hits", wide),
            ("no_interest", miss),
        ] {
            g.bench_function(format!("uncached/{label}/{what}"), |b| {
                b.iter(|| black_box(snap.matches(black_box(subject))))
            });
            let mut cache = MatchCache::new(4096);
            g.bench_function(format!("cached/{label}/{what}"), |b| {
                b.iter(|| black_box(cache.get(&sl, black_box(subject))))
            });
        }
        // A rotating set of 1000 subjects through a 4096-entry cache.
        let rotating: Vec<Vec<u8>> = (0..1000u64)
            .map(|i| format!("svc.{}.{}.{}", i % 100, (i / 100) % 100, 0).into_bytes())
            .collect();
        let mut cache = MatchCache::new(4096);
        let mut i = 0usize;
        g.bench_function(format!("cached/{label}/rotating_1000"), |b| {
            b.iter(|| {
                i = (i + 1) % rotating.len();
                black_box(cache.get(&sl, &rotating[i]))
            })
        });
    }
    g.finish();
}

fn remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("remove");
    g.sample_size(10);
    let n = 1_000_000u64;
    let sl = build(n, flat_subject);
    // Insert then remove one subscription on a 1M sublist: a steady-state
    // SUB/UNSUB pair, two snapshots.
    let mut k = n;
    g.bench_function("sub_unsub_pair_on_1m", |b| {
        b.iter(|| {
            k += 1;
            sl.insert(b"a.b.extra", None, Sub(k)).expect("valid");
            black_box(sl.remove(b"a.b.extra", None, k))
        })
    });
    // A client with 10,000 subscriptions closes: one batch removal.
    g.bench_function("batch_10k_from_1m", |b| {
        let batch: Vec<(Bytes, Option<Bytes>, u64)> = (0..10_000u64)
            .map(|i| (Bytes::from(flat_subject(i)), None, i))
            .collect();
        b.iter_batched(
            || {
                for (s, _, k) in &batch {
                    sl.insert(s, None, Sub(*k)).expect("valid");
                }
            },
            |()| black_box(sl.remove_batch(&batch)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, insert, matching, remove);
criterion_main!(benches);
