//! Criterion benches for the per-line work every source and sink does: splitting a read buffer
//! into lines, detecting a plain line's level, joining stack traces (`multiline = "auto"`, the
//! file source's default), and encoding an entry as the JSON contract.

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tailfix::event::{LogEntry, encode_json};
use tailfix::framing::LineFramer;
use tailfix::multiline::{LineAggregator, MultilineConfig};
use tailfix::parse::level::detect_level;
use tailfix::time::Timestamp;

/// 200-byte lines shaped like an application log.
fn sample_lines(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 200);
    for i in 0..count {
        let level = ["INFO", "WARN", "ERROR", "DEBUG"][i % 4];
        let line = format!(
            "2026-01-01T12:00:{:02}.{:03}Z {level} [worker-{}] shop.checkout - order {} processed for customer {} in {} ms",
            i % 60,
            i % 1000,
            i % 16,
            100_000 + i,
            i * 7,
            i % 500
        );
        out.extend_from_slice(format!("{line:<199}\n").as_bytes());
    }
    out
}

fn framing(c: &mut Criterion) {
    let input = sample_lines(20_000);
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("lf_200b_lines", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new(102_400);
            let mut buffer = BytesMut::from(&input[..]);
            let mut lines = 0usize;
            while let Some(frame) = framer.decode(&mut buffer) {
                black_box(&frame);
                lines += 1;
            }
            assert_eq!(lines, 20_000);
        })
    });
    group.finish();
}

fn level_detection(c: &mut Criterion) {
    let input = sample_lines(10_000);
    let lines: Vec<&[u8]> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut group = c.benchmark_group("level");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("detect_level_200b_lines", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(detect_level(line));
            }
        })
    });
    group.finish();
}

fn json_encoding(c: &mut Criterion) {
    let input = Bytes::from(sample_lines(10_000));
    let source: Arc<str> = Arc::from("app");
    let node: Arc<str> = Arc::from("node-1");
    let entries: Vec<LogEntry> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut entry = LogEntry::from_line(
                input.slice_ref(line),
                source.clone(),
                node.clone(),
                Timestamp::now(),
            );
            entry.metadata.insert("host", "web-1");
            entry
        })
        .collect();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("json_200b_lines", |b| {
        let mut out = Vec::with_capacity(input.len() * 2);
        b.iter(|| {
            out.clear();
            for entry in &entries {
                encode_json(entry, &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

/// Ordinary lines through `multiline = "auto"`: each is classified (and its prefix read) and
/// comes out as its own entry; a real Python trace every 1,000 lines is joined.
fn multiline_auto(c: &mut Criterion) {
    let input = sample_lines(20_000);
    let trace = "2026-01-01T12:00:00.000Z ERROR [worker-1] shop.checkout - Traceback (most recent call last):\n  File \"/app/shop/cart.py\", line 12, in total\n    return sum(prices) / len(prices)\nZeroDivisionError: division by zero";
    let mut lines: Vec<Bytes> = Vec::new();
    for (i, line) in input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i % 1000 == 999 {
            lines.extend(
                trace
                    .split('\n')
                    .map(|l| Bytes::copy_from_slice(l.as_bytes())),
            );
        }
        lines.push(Bytes::copy_from_slice(line));
    }
    let mut group = c.benchmark_group("multiline");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("auto_200b_lines", |b| {
        b.iter(|| {
            let mut aggregator = LineAggregator::new(MultilineConfig::auto());
            let now = std::time::Instant::now();
            let mut out = Vec::with_capacity(lines.len());
            for (offset, line) in lines.iter().enumerate() {
                aggregator.push(line.clone(), offset as u64, now, &mut out);
            }
            aggregator.flush(&mut out);
            assert!(out.len() < lines.len());
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    framing,
    level_detection,
    multiline_auto,
    json_encoding
);
criterion_main!(benches);
