//! Parser and encoder throughput (bytes/s).
use std::hint::black_box;

use bytes::{Buf, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use natsd_proto::{encode, ClientOpParser};

/// A buffer of `n` PUBs with `size`-byte payloads.
fn pubs(n: usize, size: usize) -> Vec<u8> {
    let payload = vec![b'x'; size];
    let mut buf = BytesMut::new();
    for _ in 0..n {
        encode::pub_msg(&mut buf, b"bench.subject.foo", None, &payload);
    }
    buf.to_vec()
}

fn parse_pubs(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_pub");
    for (name, n, size) in [("16B", 4096, 16), ("1KiB", 256, 1024)] {
        let input = pubs(n, size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut parser = ClientOpParser::default();
                let mut buf = BytesMut::from(&input[..]);
                let mut count = 0;
                while let Ok(Some(op)) = parser.parse(&mut buf) {
                    black_box(op);
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });
        // The same input and buffer handling, borrowing instead of splitting.
        group.bench_function(format!("{name}_ref"), |b| {
            b.iter(|| {
                let mut parser = ClientOpParser::default();
                let mut buf = BytesMut::from(&input[..]);
                let mut count = 0;
                while let Ok(step) = parser.parse_ref(&buf) {
                    if step.consumed == 0 {
                        break;
                    }
                    if let Some(op) = step.op {
                        black_box(op);
                        count += 1;
                    }
                    buf.advance(step.consumed);
                }
                assert_eq!(count, n);
            })
        });
    }
    group.finish();
}

fn encode_msg(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_msg");
    for (name, size) in [("16B", 16), ("1KiB", 1024)] {
        let payload = vec![b'x'; size];
        let mut one = BytesMut::new();
        encode::msg(
            &mut one,
            b"bench.subject.foo",
            b"12",
            Some(b"_INBOX.abc"),
            &payload,
        );
        const N: usize = 1024;
        group.throughput(Throughput::Bytes((one.len() * N) as u64));
        let mut buf = BytesMut::with_capacity(one.len() * N);
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                for _ in 0..N {
                    encode::msg(
                        &mut buf,
                        black_box(b"bench.subject.foo"),
                        b"12",
                        Some(b"_INBOX.abc"),
                        &payload,
                    );
                }
                black_box(&buf);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_pubs, encode_msg);
criterion_main!(benches);
