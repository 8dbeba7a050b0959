//! Issue 16's property: a random log prefix shape (one of several timestamp formats or none, an
//! optional level word, thread, logger, program and pid), written before the first line of a
//! trace only or before every line of it, around any real trace of tests/corpus/crashes, with
//! random ordinary lines of the same shape before and after it, gives exactly the trace's
//! entries (one; two for Mono, which prints an unhandled exception twice) and every ordinary
//! line as an entry of its own, untouched.
//!
//! Driven at the library level as the file source does it: `LineAggregator` with
//! `multiline = "auto"` over the lines, then `entry_from_joined` (format `auto`) per entry.

#[path = "corpus/crashes/corpus.rs"]
mod corpus;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use tailfix::multiline::{LineAggregator, MultilineConfig};
use tailfix::parse::Format;
use tailfix::plugins::sources::entry_from_joined;
use tailfix::time::Timestamp;

static CORPUS: LazyLock<Vec<corpus::RawTrace>> = LazyLock::new(corpus::load);

/// Timestamp formats a prefix may start with (`{s}` the second); "" for none.
const TIMES: &[&str] = &[
    "",
    "2026-11-27T13:05:{s}.430Z",
    "2026-11-27T13:05:{s}.430+01:00",
    "2026-11-27 13:05:{s},430",
    "2026-11-27 13:05:{s}.430",
    "Nov 27 13:05:{s}",
    "[2026-11-27 13:05:{s}]",
    "2026/11/27 13:05:{s}",
    "13:05:{s}.430",
];

const THREADS: &[&str] = &[
    "[main]",
    "[worker-3]",
    "[http-nio-8080-exec-7]",
    "[pool-2-thread-1]",
];
const LOGGERS: &[&str] = &["com.shop.Cart", "shop.checkout", "app", "c.s.Cart"];
/// What ends the prefix after a logger.
const SEPARATORS: &[&str] = &[" - ", ": ", " "];

/// A prefix shape: which parts it has, and whether it is on every line of a trace.
#[derive(Debug, Clone)]
struct PrefixShape {
    time: usize,
    program: bool,
    level: bool,
    thread: Option<usize>,
    logger: Option<(usize, usize)>,
    every_line: bool,
}

impl PrefixShape {
    /// The prefix of a line at `second` with `level` (a trace's first line: ERROR).
    fn render(&self, second: u32, level: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        let time = TIMES[self.time].replace("{s}", &format!("{:02}", second % 60));
        if !time.is_empty() {
            parts.push(time);
        }
        if self.program {
            parts.push("web-1 shop[4242]:".to_string());
        }
        if self.level {
            parts.push(level.to_string());
        }
        if let Some(thread) = self.thread {
            parts.push(THREADS[thread].to_string());
        }
        let mut prefix = parts.join(" ");
        if !prefix.is_empty() {
            prefix.push(' ');
        }
        if let Some((logger, separator)) = self.logger {
            prefix.push_str(LOGGERS[logger]);
            prefix.push_str(SEPARATORS[separator]);
        }
        prefix
    }
}

fn prefix_shape() -> impl Strategy<Value = PrefixShape> {
    (
        0..TIMES.len(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0..THREADS.len()),
        proptest::option::of((0..LOGGERS.len(), 0..SEPARATORS.len())),
        any::<bool>(),
    )
        .prop_map(
            |(time, program, level, thread, logger, every_line)| PrefixShape {
                time,
                program,
                level,
                thread,
                logger,
                every_line,
            },
        )
}

/// Ordinary lines: an access line, one that says "error" without being one, one ending with a
/// colon, and a few more; `{n}` a number.
const ORDINARY: &[&str] = &[
    "GET /api/cart/{n} 200 in 12 ms",
    "payment retried after a transient error, now ok (attempt {n})",
    "refreshing price lists for store {n}:",
    "cache warmed with {n} entries",
    "user {n} signed in",
    "scheduled job nightly-report finished in {n} ms",
];
const LEVELS: &[&str] = &["INFO", "WARN", "DEBUG", "INFO"];

fn ordinary_lines() -> impl Strategy<Value = Vec<(usize, usize, u32)>> {
    proptest::collection::vec((0..ORDINARY.len(), 0..LEVELS.len(), 1u32..100_000), 1..5)
}

/// Feeds `lines` through the aggregator and makes entries as a file source does.
fn entries(lines: &[String]) -> Vec<tailfix::event::LogEntry> {
    let mut aggregator = LineAggregator::new(MultilineConfig::auto());
    let now = Instant::now();
    let mut joined = Vec::new();
    let mut offset = 0u64;
    for line in lines {
        offset += line.len() as u64 + 1;
        aggregator.push(Bytes::from(line.clone()), offset, now, &mut joined);
    }
    aggregator.flush(&mut joined);
    let (source, node): (Arc<str>, Arc<str>) = (Arc::from("app"), Arc::from("n1"));
    joined
        .into_iter()
        .map(|j| entry_from_joined(j, Format::Auto, &source, &node, Timestamp(0)))
        .collect()
}

proptest! {
    // No regression file: the failing case is printed, and the corpus is the fixed part.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_trace_in_any_prefix_shape_between_ordinary_lines_is_its_own_entries(
        shape in prefix_shape(),
        index in 0..56usize,
        before in ordinary_lines(),
        after in ordinary_lines(),
    ) {
        let trace = &CORPUS[index];
        let mut second = 0u32;
        let mut ordinary = Vec::new();
        let mut lines = Vec::new();
        let mut write_ordinary = |picks: &[(usize, usize, u32)], second: &mut u32, lines: &mut Vec<String>| {
            for (pick, level, n) in picks {
                let text = ORDINARY[*pick].replace("{n}", &n.to_string());
                let line = format!("{}{text}", shape.render(*second, LEVELS[*level]));
                *second += 1;
                ordinary.push(line.clone());
                lines.push(line);
            }
        };
        write_ordinary(&before, &mut second, &mut lines);
        let prefix = shape.render(second, "ERROR");
        second += 1;
        for (i, line) in trace.lines().iter().enumerate() {
            if i == 0 || shape.every_line {
                lines.push(format!("{prefix}{line}"));
            } else {
                lines.push(line.to_string());
            }
        }
        write_ordinary(&after, &mut second, &mut lines);

        let got = entries(&lines);
        let show = || {
            got.iter()
                .map(|e| format!(
                    "{} {:?}",
                    if e.error_trace.is_some() { "TRACE" } else { "line " },
                    String::from_utf8_lossy(&e.raw)
                ))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let traces = got.iter().filter(|e| e.error_trace.is_some()).count();
        prop_assert_eq!(
            traces,
            trace.expected.traces,
            "{}: trace entries, prefix {:?}:\n{}",
            trace.name,
            shape,
            show()
        );
        let plain: Vec<String> = got
            .iter()
            .filter(|e| e.error_trace.is_none())
            .map(|e| String::from_utf8_lossy(&e.raw).into_owned())
            .collect();
        prop_assert_eq!(
            &plain,
            &ordinary,
            "{}: the ordinary lines, untouched and alone, prefix {:?}:\n{}",
            trace.name,
            shape,
            show()
        );
    }
}
