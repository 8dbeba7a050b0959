//! Mutation fuzzing of what reads untrusted bytes: the syslog, CRI and JSON parsers (and the
//! aggregator's NDJSON intake), the framers (LF and octet counting, fed in random chunks) and
//! multiline joining (stack-trace detection and trace analysis). Stable Rust has no libFuzzer,
//! so this is the equivalent that runs anywhere: seeds from the test corpora and real formats,
//! mutated (bit flips, byte changes, interesting bytes, insertions, deletions, duplicated and
//! spliced ranges, cut lines) by a seeded generator, for a time budget per target. No coverage
//! guidance: it finds what random damage to real inputs finds, not what needs a path search.
//!
//! Each input must return without a panic, and the invariants of each target hold (framers
//! lose no byte and emit nothing over their limit; a decoded entry keeps its raw line; joined
//! entries account for every line). `TAILFIX_FUZZ_SECONDS` sets the budget per target (default
//! 3: a smoke run in the ordinary suite); the figures are printed per target.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tailfix::framing::{Frame, LineFramer, OctetCountingFramer, StreamFramer};
use tailfix::multiline::{Joined, LineAggregator, MultilineConfig};
use tailfix::parse::cri::parse_cri;
use tailfix::parse::json::parse_json;
use tailfix::parse::syslog::parse_syslog;
use tailfix::parse::trace::analyse;
use tailfix::parse::{Format, decode};
use tailfix::time::Timestamp;

/// xorshift64*: deterministic per target, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = &[
    0, 0x7f, 0x80, 0xff, 0xc3, 0xe2, 0xf0, b'\n', b'\r', b' ', b'"', b'\\', b'<', b'>', b'[', b']',
    b'{', b'}', b':', b'=', b'0', b'9', b'-', b'.',
];

/// One random change to `input`, using `corpus` for splices.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = input.len();
    match rng.below(9) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next() as u8;
        }
        2 if len > 0 => {
            let at = rng.below(len);
            input[at] = INTERESTING[rng.below(INTERESTING.len())];
        }
        3 => {
            let at = rng.below(len + 1);
            let count = 1 + rng.below(8);
            let byte = INTERESTING[rng.below(INTERESTING.len())];
            input.splice(at..at, std::iter::repeat_n(byte, count));
        }
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(16)).min(len);
            input.drain(start..end);
        }
        5 if len > 0 => {
            // Duplicate a range: nesting, repeated fields, long runs.
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = input[start..end].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, copy);
        }
        6 if !corpus.is_empty() => {
            // Splice in a piece of another seed.
            let other = &corpus[rng.below(corpus.len())];
            if !other.is_empty() {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(128)).min(other.len());
                let at = rng.below(len + 1);
                input.splice(at..at, other[start..end].iter().copied());
            }
        }
        7 if len > 0 => input.truncate(rng.below(len)),
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next() as u8);
        }
    }
    // Keep inputs small enough for many runs a second; long lines have their own tests.
    input.truncate(64 * 1024);
}

/// Runs `check` on mutations of the seeds for the budget; returns (inputs, seconds).
fn fuzz(name: &str, seed: u64, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    let budget = std::env::var("TAILFIX_FUZZ_SECONDS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(3);
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs: u64 = 0;
    let mut current = seeds[0].clone();
    while started.elapsed() < Duration::from_secs(budget) {
        for _ in 0..64 {
            // Mostly keep mutating the same input (damage accumulates); sometimes start over.
            if rng.below(16) == 0 {
                current = seeds[rng.below(seeds.len())].clone();
            }
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut current, &seeds);
            }
            check(&current);
            runs += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: {runs} inputs in {seconds:.0} s ({:.0}/s), {} seeds, 0 failures",
        runs as f64 / seconds,
        seeds.len()
    );
    common::report(&common::Row {
        fault: &format!("fuzzing {name} for {seconds:.0} s (mutated inputs)"),
        tries: runs,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: None,
    });
}

fn now() -> Timestamp {
    Timestamp::from_civil(2026, 6, 15, 12, 0, 0, 0).expect("valid date")
}

/// Every line of the files under `tests/corpus/<dir>` (and the files whole).
fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            seeds.extend(bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec));
            seeds.push(bytes);
        }
    }
    seeds.retain(|seed| !seed.is_empty());
    seeds
}

fn decode_keeps_the_line(format: Format, input: &[u8]) {
    let line = Bytes::copy_from_slice(input);
    let entry = decode(format, line.clone(), Arc::from("s"), Arc::from("n"), now());
    assert_eq!(
        entry.raw, line,
        "{format:?} dropped or changed the raw line"
    );
}

#[test]
fn fuzz_syslog() {
    let mut seeds = corpus("syslog");
    seeds.push(
        br#"<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 [a@1 k="v\"x"][b@2] msg"#.to_vec(),
    );
    seeds.push(b"<34>Oct 11 22:14:15 mymachine su[77]: 'su root' failed".to_vec());
    fuzz("syslog", 0x5151_0001, seeds, |input| {
        let _ = parse_syslog(input, now());
        decode_keeps_the_line(Format::Syslog, input);
        decode_keeps_the_line(Format::Auto, input);
    });
}

#[test]
fn fuzz_cri() {
    let seeds = vec![
        b"2016-10-06T00:17:09.669794202Z stdout P The content of the log entry 1".to_vec(),
        b"2016-10-06T00:17:09.669794202Z stderr F {\"level\":\"error\",\"msg\":\"x\"}".to_vec(),
        b"2026-01-01T00:00:00Z stdout F Traceback (most recent call last):".to_vec(),
        br#"{"log":"Log line \"is\" here\u00e9\n","stream":"stderr","time":"2019-01-01T11:11:11.111111111Z"}"#.to_vec(),
    ];
    fuzz("cri", 0xc21_0002, seeds, |input| {
        let _ = parse_cri(input);
        decode_keeps_the_line(Format::Cri, input);
        decode_keeps_the_line(Format::Docker, input);
    });
}

#[test]
fn fuzz_json() {
    let seeds = vec![
        br#"{"level":50,"time":1750000000123,"msg":"payment failed","err":{"type":"Error","stack":["a","b"]},"n":-1.5e3,"ok":true,"x":null}"#.to_vec(),
        br#"{"timestamp":"2026-01-01T00:00:00.000Z","node_id":"n1","source":"app","level":"error","message":"boom","error_trace":"boom\n  at x","metadata":{"fingerprint":"ab","nested":{"a":[1,{"b":"\u00e9\ud83d\ude00"}]}}}"#.to_vec(),
        br#"{"@timestamp":"2026-06-15T12:00:00+02:00","log.level":"WARN","message":"slow","labels":{}}"#.to_vec(),
        // Deep nesting, the shape of a depth bomb.
        format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes(),
    ];
    let source: Arc<str> = Arc::from("aggregator");
    fuzz("json", 0x7503_0003, seeds, |input| {
        let _ = parse_json(input);
        decode_keeps_the_line(Format::Json, input);
        let _ = tailfix::ingest::entry_from_json(input, &source);
    });
}

/// Feeds `input` to a framer in random chunks; checks that every byte is accounted for.
fn framed_bytes(
    input: &[u8],
    chunks: &[usize],
    mut next: impl FnMut(&mut BytesMut) -> Option<Frame>,
    limit: usize,
) -> usize {
    let mut buffer = BytesMut::new();
    let mut at = 0;
    let mut framed = 0;
    for &size in chunks.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + size.max(1)).min(input.len());
        buffer.extend_from_slice(&input[at..end]);
        at = end;
        while let Some(frame) = next(&mut buffer) {
            let (Frame::Line(line) | Frame::Truncated(line)) = frame;
            assert!(
                line.len() <= limit,
                "a frame of {} bytes over the limit {limit}",
                line.len()
            );
            framed += line.len();
        }
    }
    framed
}

#[test]
fn fuzz_framing() {
    let mut seeds = corpus("syslog");
    seeds.push(b"12 <13>1 - - - - - x11 <13>1 - - - a\n".to_vec());
    seeds.push(b"line one\nline two\r\nno end".to_vec());
    let chunk_rng = std::cell::RefCell::new(Rng(0xf4a3_0004));
    fuzz("framing", 0xf4a3_0004, seeds, |input| {
        let chunks: Vec<usize> = {
            let mut rng = chunk_rng.borrow_mut();
            (0..8).map(|_| 1 + rng.below(300)).collect()
        };
        // LF framing: every byte but the terminators ends up in a frame or the buffer.
        let limit = 64;
        let mut lines = LineFramer::new(limit);
        let framed = framed_bytes(input, &chunks, |buffer| lines.decode(buffer), limit);
        let newlines = input.iter().filter(|b| **b == b'\n').count();
        assert!(framed <= input.len() - newlines.min(input.len()));
        // Octet counting and the detecting framer: no panic, no frame over the limit.
        let mut octets = OctetCountingFramer::new(limit);
        framed_bytes(
            input,
            &chunks,
            |buffer| octets.decode(buffer).ok().flatten(),
            limit,
        );
        let mut detect = StreamFramer::detect(limit);
        framed_bytes(input, &chunks, |buffer| detect.decode(buffer), limit);
    });
}

#[test]
fn fuzz_multiline() {
    let mut seeds = corpus("traces");
    seeds.push(b"2026-11-27 13:05:02,430 ERROR Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in f\n    g()\nValueError: bad".to_vec());
    seeds.push(b"Exception in thread \"main\" java.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\nCaused by: java.io.IOException\n\tat d.E.f(E.java:2)".to_vec());
    seeds.push(
        b"goroutine 1 [running]:\nmain.main()\n\t/app/main.go:9 +0x1d\nexit status 2".to_vec(),
    );
    let start = Instant::now();
    fuzz("multiline", 0x3171_0005, seeds, |input| {
        let mut aggregator = LineAggregator::new(MultilineConfig::Auto {
            timeout: Duration::from_secs(1),
        });
        let mut out: Vec<Joined> = Vec::new();
        let blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
        let mut lines = 0;
        for (index, line) in input.split(|b| *b == b'\n').enumerate() {
            aggregator.push(Bytes::copy_from_slice(line), index as u64, start, &mut out);
            lines += usize::from(!blank(line));
        }
        aggregator.flush(&mut out);
        // Blank lines are kept only inside a trace; every other line is in exactly one entry.
        let joined: usize = out
            .iter()
            .map(|entry| {
                entry
                    .text()
                    .split(|b| *b == b'\n')
                    .filter(|l| !blank(l))
                    .count()
            })
            .sum();
        assert_eq!(joined, lines, "every non-blank line in exactly one entry");
        for entry in &out {
            let _ = analyse(&String::from_utf8_lossy(entry.text()));
        }
        let _ = analyse(&String::from_utf8_lossy(input));
    });
}
