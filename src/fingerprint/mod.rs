//! Fingerprints of recurring errors (DESIGN §6.1): what makes "the same bug" one key whatever
//! node, request id or timestamp it shows up with.
//!
//! * An entry with a stack trace: the exception type, the types of its causes, and the top
//!   in-app frames (file and function, never line numbers or addresses). Two runs of one bug
//!   from other inputs, threads or processes hash alike; two exception types at the same line
//!   of code do not. This needs no state ([`trace_fingerprint`]).
//! * An entry without one: the template the online miner ([`template`]) assigns to its message,
//!   with its level and source.
//!
//! The hash is FNV-1a over 128 bits, written as 32 lowercase hex digits: stable across versions
//! and platforms, as a key stored in the incident store and in branch names must be.

pub mod template;

use crate::event::{Frame, LogEntry, StackTrace};
use template::{MinerConfig, TemplateMiner};

/// Number of top in-app frames that make up a trace's fingerprint.
pub const DEFAULT_FRAMES: usize = 3;

/// FNV-1a, 128 bits.
pub fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.iter() {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// A frame as it counts for identity: the file's last two path components (deployments put
/// the same code under different roots) and the function without addresses or generated ids.
fn frame_identity(frame: &Frame) -> Option<String> {
    let file = frame.file.as_deref().map(|file| {
        let parts: Vec<&str> = file.rsplit('/').take(2).collect();
        parts.into_iter().rev().collect::<Vec<_>>().join("/")
    });
    let function = frame.function.as_deref().map(normalize_function);
    (file.is_some() || function.is_some()).then(|| {
        format!(
            "{}:{}",
            file.unwrap_or_default(),
            function.unwrap_or_default()
        )
    })
}

/// Drops what differs between runs of the same code: `0x…` addresses, and the numbers of
/// generated classes and lambdas (`Foo$1`, `lambda$main$0`).
fn normalize_function(function: &str) -> String {
    let mut out = String::with_capacity(function.len());
    let mut chars = function.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '0' && chars.peek() == Some(&'x') {
            chars.next();
            while chars.peek().is_some_and(char::is_ascii_hexdigit) {
                chars.next();
            }
            out.push_str("0x");
        } else if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push_str("$#");
        } else {
            out.push(c);
        }
    }
    out
}

/// Assigns fingerprints and templates to entries.
pub struct Fingerprinter {
    miner: TemplateMiner,
    frames: usize,
}

/// What the fingerprinter says of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 32 lowercase hex digits.
    pub hex: String,
    /// A readable name of the bug: the message's template, or `Exception in function (file)`.
    pub template: String,
}

impl Fingerprinter {
    pub fn new(frames: usize, miner: MinerConfig) -> Self {
        Fingerprinter {
            miner: TemplateMiner::new(miner),
            frames: frames.max(1),
        }
    }

    pub fn fingerprint(&mut self, entry: &LogEntry) -> Fingerprint {
        if let Some(fingerprint) = entry
            .stack_trace()
            .and_then(|trace| trace_fingerprint(&trace, self.frames))
        {
            return fingerprint;
        }
        let found = self.miner.add(&entry.message);
        let hash = fnv1a_128(&[
            b"template",
            found.template.as_bytes(),
            entry.level.as_str().as_bytes(),
            entry.source.as_bytes(),
        ]);
        Fingerprint {
            hex: format!("{hash:032x}"),
            template: found.template.to_string(),
        }
    }
}

/// `text` with each quoted value (`"7 pcs"`, `'x'`, `` `y` ``) as one wildcard: a value may hold
/// spaces, and then is several words to the miner. An apostrophe inside a word is no quote.
fn without_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(['"', '\'', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        let opens_value = rest[..open]
            .chars()
            .next_back()
            .is_none_or(|before| !before.is_alphanumeric());
        let close = rest[open + 1..].find(quote).map(|at| open + 1 + at);
        match close {
            Some(close) if opens_value => {
                out.push_str(&rest[..open]);
                out.push_str(template::WILDCARD);
                rest = &rest[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The fingerprint of a stack trace, from its exception type, its causes' types and its top
/// `frames` in-app frames (its top frames when none is in-app); `None` for a trace that names
/// neither an exception nor a frame, which is fingerprinted as a message. Needs no state: the
/// same trace has the same fingerprint in every fingerprinter.
pub fn trace_fingerprint(trace: &StackTrace, frames: usize) -> Option<Fingerprint> {
    if !trace.is_identified() {
        return None;
    }
    let frames = frames.max(1);
    let mut chosen: Vec<&Frame> = trace
        .frames
        .iter()
        .filter(|frame| frame.in_app)
        .take(frames)
        .collect();
    if chosen.is_empty() {
        chosen = trace.frames.iter().take(frames).collect();
    }
    let identities: Vec<String> = chosen
        .iter()
        .filter_map(|frame| frame_identity(frame))
        .collect();
    let exception = trace.exception.as_deref().unwrap_or("");
    // An exception named by a phrase rather than a type (a Go or Rust panic's message) carries
    // the failing values: the same bug with other values is the same incident.
    let kind = |text: &str| {
        if text.contains(' ') {
            template::masked(&without_quoted(text))
        } else {
            text.to_string()
        }
    };
    let kinds: Vec<String> = std::iter::once(exception)
        .chain(
            trace
                .causes
                .iter()
                .filter_map(|cause| cause.exception.as_deref()),
        )
        .map(kind)
        .collect();
    let mut parts: Vec<&[u8]> = vec![b"trace"];
    parts.extend(kinds.iter().map(|kind| kind.as_bytes()));
    parts.push(b"frames");
    parts.extend(identities.iter().map(|identity| identity.as_bytes()));
    let hash = fnv1a_128(&parts);
    let top = chosen.first();
    let function = top
        .and_then(|frame| frame.function.as_deref())
        .unwrap_or_default();
    let file = top
        .and_then(|frame| frame.file.as_deref())
        .map(|file| file.rsplit('/').next().unwrap_or_default())
        .unwrap_or_default();
    let name = if exception.is_empty() {
        "error"
    } else {
        exception
    };
    let template = match (function.is_empty(), file.is_empty()) {
        (false, false) => format!("{name} in {function} ({file})"),
        (false, true) => format!("{name} in {function}"),
        (true, false) => format!("{name} in {file}"),
        (true, true) => name.to_string(),
    };
    Some(Fingerprint {
        hex: format!("{hash:032x}"),
        template,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::event::Level;
    use crate::parse::trace::annotate;
    use crate::time::Timestamp;

    fn trace_entry(name: &str) -> LogEntry {
        let path = format!(
            "{}/tests/corpus/traces/{name}.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The trace: from the first line that is not an ordinary INFO line to the last but one.
        let start = lines
            .iter()
            .position(|l| !l.contains(" INFO ") && !l.contains(" info ") && !l.trim().is_empty())
            .unwrap();
        let trace = Bytes::from(lines[start..lines.len() - 1].join("\n"));
        let mut entry = LogEntry::from_line(
            trace.clone(),
            Arc::from("app"),
            Arc::from("node-a"),
            Timestamp(0),
        );
        entry.error_trace = Some(trace);
        annotate(&mut entry);
        entry
    }

    fn fingerprint(name: &str) -> Fingerprint {
        Fingerprinter::new(DEFAULT_FRAMES, MinerConfig::default()).fingerprint(&trace_entry(name))
    }

    #[test]
    fn one_bug_from_other_inputs_threads_and_processes_is_one_fingerprint() {
        assert_eq!(
            fingerprint("python_divide").hex,
            fingerprint("python_divide_again").hex
        );
        assert_eq!(
            fingerprint("rust_panic").hex,
            fingerprint("rust_panic_again").hex
        );
        assert_eq!(
            fingerprint("java_caused_by").hex,
            fingerprint("java_worker_thread").hex
        );
        assert_eq!(
            fingerprint("python_divide").template,
            "ZeroDivisionError in discount (crash_divide.py)"
        );
        let hex = fingerprint("go_panic").hex;
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn two_exception_types_at_one_line_are_two_fingerprints() {
        let value = fingerprint("python_ratio_value");
        let zero = fingerprint("python_ratio_zero");
        assert_ne!(value.hex, zero.hex);
        assert_eq!(value.template, "ValueError in ratio (crash_ratio.py)");
        assert_eq!(zero.template, "ZeroDivisionError in ratio (crash_ratio.py)");
        assert_ne!(fingerprint("python_divide").hex, zero.hex);
    }

    #[test]
    fn messages_without_traces_share_a_fingerprint_across_ids_and_nodes() {
        let mut fingerprinter = Fingerprinter::new(DEFAULT_FRAMES, MinerConfig::default());
        let mut line = |text: &str, node: &str| {
            let mut entry = LogEntry::from_line(
                Bytes::from(text.to_string()),
                Arc::from("app"),
                Arc::from(node),
                Timestamp(0),
            );
            entry.level = Level::Error;
            fingerprinter.fingerprint(&entry)
        };
        let a = line(
            "payment 4711 failed for user 10.0.0.7: card declined",
            "node-1",
        );
        let b = line(
            "payment 9123 failed for user 10.0.3.9: card declined",
            "node-2",
        );
        let other = line("inventory service unreachable after 3 retries", "node-1");
        assert_eq!(a.hex, b.hex);
        assert_ne!(a.hex, other.hex);
        assert!(a.template.contains("<*>"), "{}", a.template);
    }

    #[test]
    fn the_parsed_trace_and_its_metadata_keys_fingerprint_alike() {
        let mut fingerprinter = Fingerprinter::new(DEFAULT_FRAMES, MinerConfig::default());
        let parsed = trace_entry("java_caused_by");
        // Without its parsed trace, an entry is fingerprinted by the trace its metadata names.
        let mut keys_only = parsed.clone();
        keys_only.trace = None;
        assert_eq!(
            fingerprinter.fingerprint(&keys_only),
            fingerprinter.fingerprint(&parsed)
        );
        // A line that names its exception in a field of its own (JSON logging) is one too.
        let mut line = LogEntry::from_line(
            Bytes::from_static(b"request failed"),
            Arc::from("app"),
            Arc::from("node-a"),
            Timestamp(0),
        );
        line.metadata.insert("exception", "TimeoutError");
        assert_eq!(fingerprinter.fingerprint(&line).template, "TimeoutError");
    }

    #[test]
    fn function_names_lose_addresses_and_generated_ids() {
        assert_eq!(
            normalize_function("Worker.lambda$main$0"),
            "Worker.lambda$main$#"
        );
        assert_eq!(normalize_function("handler at 0x7ffd12ab"), "handler at 0x");
    }

    /// A panic's message is part of its kind; its values are not: the same bug on other values
    /// and pids is one fingerprint, another message another.
    #[test]
    fn a_panic_message_counts_without_its_values() {
        let panic = |message: &str, line: u32| {
            let text = format!(
                "thread 'worker-3' panicked at src/stock.rs:{line}:9:\n{message}\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
            );
            let trace = crate::parse::trace::analyse(&text).expect("a panic");
            trace_fingerprint(&trace, DEFAULT_FRAMES)
                .expect("fingerprinted")
                .hex
        };
        let one = panic(
            "reservation for sku 4411 exceeds stock (5 > 3) in pid 11817",
            19,
        );
        let again = panic("reservation for sku 87 exceeds stock (12 > 0) in pid 2", 21);
        let other = panic("warehouse code missing for region 4", 19);
        assert_eq!(one, again);
        assert_ne!(one, other);
        let go = |value: &str| {
            let text = format!(
                "panic: order {value} has no lines\n\ngoroutine 1 [running]:\nmain.checkout(...)\n\t/build/cmd/shop/main.go:14 +0x1d\nexit status 2"
            );
            let trace = crate::parse::trace::analyse(&text).expect("a panic");
            trace_fingerprint(&trace, DEFAULT_FRAMES)
                .expect("fingerprinted")
                .hex
        };
        assert_eq!(go("A-1029"), go("B-77"));
    }
}
