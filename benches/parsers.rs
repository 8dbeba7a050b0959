//! Parser throughput on realistic ~200-byte lines, one bench per parser, in bytes per second.
//!
//! `json/serde_json_value` is not ours: it is the yardstick for the hand-written JSON scanner
//! (`serde_json::from_slice` into a `serde_json::Value`, which copies every string).
//!
//! Run: `cargo bench --bench parsers` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tailfix::parse::cri::parse_cri;
use tailfix::parse::docker::parse_docker;
use tailfix::parse::json::parse_json;
use tailfix::parse::logfmt::parse_logfmt;
use tailfix::parse::syslog::{parse_rfc3164, parse_syslog};
use tailfix::parse::{Format, decode};
use tailfix::time::Timestamp;

const RFC5424: &[u8] = br#"<165>1 2026-06-15T12:00:00.123456+02:00 web-01.prod.example.com checkout 24117 ORDER [origin@32473 ip="10.20.30.40" region="eu-west-1"] order 8f14e45f failed: card declined by issuer (code 51)"#;
/// The same without structured data: nothing to allocate.
const RFC5424_NIL_SD: &[u8] = b"<165>1 2026-06-15T12:00:00.123456+02:00 web-01.prod.example.com checkout 24117 ORDER - order 8f14e45f failed: card declined by issuer (code 51) for customer 42 region eu-west-1";
const RFC3164: &[u8] = b"<86>Jun 15 09:01:02 web-01.prod.example.com sshd[2101]: Accepted publickey for deploy from 10.20.30.40 port 50432 ssh2: RSA SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg";
const CRI: &[u8] = b"2026-06-15T12:00:00.123456789Z stdout F 2026-06-15 12:00:00,123 INFO [http-nio-8080-exec-7] c.e.shop.OrderController - order 8f14e45f accepted for customer 42 in 183 ms";
const DOCKER: &[u8] = br#"{"log":"2026-06-15 12:00:00,123 INFO [http-nio-8080-exec-7] c.e.shop.OrderController - order 8f14e45f accepted in 183 ms\n","stream":"stdout","time":"2026-06-15T12:00:00.123456789Z"}"#;
const JSON: &[u8] = br#"{"level":30,"time":1750000000123,"pid":657,"hostname":"web-01","reqId":"req-7f3a","msg":"request completed","req":{"method":"GET","url":"/api/orders/42"},"res":{"statusCode":200},"responseTime":18.3}"#;
const LOGFMT: &[u8] = br#"time="2026-06-15T12:00:00Z" level=info msg="request completed" method=GET path=/api/orders/42 status=200 duration=18.3ms request_id=7f3a9c2e user=ann bytes=5123 host=web-01"#;
const TEXT: &[u8] = b"2026-06-15 12:00:00,123 ERROR [http-nio-8080-exec-7] c.e.shop.OrderController - order 8f14e45f failed: java.lang.IllegalStateException: inventory service unavailable";

fn now() -> Timestamp {
    Timestamp::from_civil(2026, 6, 15, 12, 0, 0, 0).expect("valid date")
}

fn parsers(c: &mut Criterion) {
    let now = now();
    let mut group = c.benchmark_group("parse");
    let mut bench = |name: &str, line: &'static [u8], run: &dyn Fn(&[u8]) -> bool| {
        assert!(run(line), "{name} must parse its sample");
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| run(black_box(line))));
    };
    bench("rfc5424", RFC5424, &|line| parse_syslog(line, now).is_ok());
    bench("rfc5424_nil_sd", RFC5424_NIL_SD, &|line| {
        parse_syslog(line, now).is_ok()
    });
    bench("rfc3164", RFC3164, &|line| parse_rfc3164(line, now).is_ok());
    bench("rfc3164_auto", RFC3164, &|line| {
        parse_syslog(line, now).is_ok()
    });
    bench("cri", CRI, &|line| parse_cri(line).is_ok());
    bench("docker", DOCKER, &|line| parse_docker(line).is_ok());
    bench("json", JSON, &|line| parse_json(line).is_ok());
    bench("json/serde_json_value", JSON, &|line| {
        serde_json::from_slice::<serde_json::Value>(line).is_ok()
    });
    bench("logfmt", LOGFMT, &|line| parse_logfmt(line).is_ok());
    group.finish();
}

fn auto_and_decode(c: &mut Criterion) {
    let now = now();
    let mixed: Vec<&'static [u8]> = vec![RFC5424, RFC3164, CRI, DOCKER, JSON, LOGFMT, TEXT];
    let total: usize = mixed.iter().map(|line| line.len()).sum();
    let mut group = c.benchmark_group("format");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("auto_detect/mixed", |b| {
        b.iter(|| {
            for line in &mixed {
                black_box(Format::detect(black_box(line)));
            }
        })
    });
    let source: Arc<str> = Arc::from("app");
    let node: Arc<str> = Arc::from("node-1");
    let lines: Vec<Bytes> = mixed.iter().map(|line| Bytes::from_static(line)).collect();
    group.bench_function("decode/auto_mixed", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode(
                    Format::Auto,
                    line.clone(),
                    source.clone(),
                    node.clone(),
                    now,
                ));
            }
        })
    });
    for (name, format, line) in [
        ("decode/rfc5424", Format::Syslog, RFC5424),
        ("decode/rfc3164", Format::Syslog, RFC3164),
        ("decode/cri", Format::Cri, CRI),
        ("decode/docker", Format::Docker, DOCKER),
        ("decode/json", Format::Json, JSON),
        ("decode/logfmt", Format::Logfmt, LOGFMT),
        ("decode/text", Format::Text, TEXT),
    ] {
        let line = Bytes::from_static(line);
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(decode(
                    format,
                    line.clone(),
                    source.clone(),
                    node.clone(),
                    now,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parsers, auto_and_decode);
criterion_main!(benches);
