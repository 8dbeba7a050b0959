//! A stack trace's JSON line (DESIGN §5) is a contract: the frames, exception and causes the
//! trace parser finds are written into `metadata` under fixed keys, in a fixed order, among the
//! keys other parts of the agent set before and after it. Each real crash of the corpus
//! (tests/corpus/traces) is parsed, fingerprinted and encoded as the agent does, and compared
//! byte for byte with its expected line in tests/corpus/traces/expected/.
//!
//! The same line, read back at an aggregator, must give the same fingerprint and remediation
//! input as on the agent that wrote it.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use tailfix::event::{LogEntry, StackTrace, encode_json};
use tailfix::fingerprint::template::MinerConfig;
use tailfix::fingerprint::{DEFAULT_FRAMES, Fingerprinter};
use tailfix::ingest::entry_from_json;
use tailfix::parse::trace::annotate;
use tailfix::remediation::context::frames_to_read;
use tailfix::time::Timestamp;

/// Every trace of the corpus, and one .NET trace (no .NET runtime made the corpus).
const NAMES: &[&str] = &[
    "go_panic",
    "java_caused_by",
    "java_worker_thread",
    "node_uncaught",
    "python_chained",
    "python_divide",
    "python_divide_again",
    "python_logged",
    "python_ratio_value",
    "python_ratio_zero",
    "ruby_nomethod",
    "rust_backtrace",
    "rust_panic",
    "rust_panic_again",
    "dotnet_unhandled",
];

const DOTNET: &str = "Unhandled exception. System.InvalidOperationException: Sequence contains no elements\n   at System.Linq.ThrowHelper.ThrowNoElementsException()\n   at System.Linq.Enumerable.First[TSource](IEnumerable`1 source)\n   at Shop.Orders.First() in /app/Orders.cs:line 12\n   at Shop.Program.Main(String[] args) in /app/Program.cs:line 7";

fn corpus_dir() -> String {
    format!("{}/tests/corpus/traces", env!("CARGO_MANIFEST_DIR"))
}

/// The trace in a corpus file: from its first line that is not an ordinary INFO line to the
/// last line but one (the supervisor's).
fn trace_text(name: &str) -> String {
    if name == "dotnet_unhandled" {
        return DOTNET.to_string();
    }
    let text = std::fs::read_to_string(format!("{}/{name}.log", corpus_dir())).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| !l.contains(" INFO ") && !l.contains(" info ") && !l.trim().is_empty())
        .unwrap();
    lines[start..lines.len() - 1].join("\n")
}

/// A trace as the file source makes it (a header field before the trace's keys, the file's
/// path after them), fingerprinted as the `fingerprint` transform does.
fn agent_entry(name: &str) -> LogEntry {
    let trace = Bytes::from(trace_text(name));
    let mut entry = LogEntry::from_line(
        trace.clone(),
        Arc::from("app"),
        Arc::from("node-a"),
        Timestamp::from_civil(2026, 1, 1, 12, 0, 0, 0).unwrap(),
    );
    entry.metadata.insert("host", "web-1");
    entry.error_trace = Some(trace);
    annotate(&mut entry);
    entry
        .metadata
        .insert("file", format!("/var/log/{name}.log"));
    let fingerprint = fingerprinter().fingerprint(&entry);
    entry.metadata.insert("fingerprint", fingerprint.hex);
    entry.metadata.insert("template", fingerprint.template);
    entry
}

fn fingerprinter() -> Fingerprinter {
    Fingerprinter::new(DEFAULT_FRAMES, MinerConfig::default())
}

fn json(entry: &LogEntry) -> String {
    let mut out = Vec::new();
    encode_json(entry, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_trace_of_each_language_encodes_to_its_expected_json_line() {
    let mut differ = Vec::new();
    for name in NAMES {
        let actual = json(&agent_entry(name));
        let path = format!("{}/expected/{name}.json", corpus_dir());
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            differ.push(format!("{name}:\n  expected {expected}  actual   {actual}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// What a JSON line carries of a trace: not the messages, modules and columns, nor which block
/// of a chain a frame came from (every frame is in `frames`).
fn as_carried(trace: &StackTrace) -> StackTrace {
    let mut carried = trace.clone();
    carried.message = None;
    for frame in &mut carried.frames {
        (frame.module, frame.column) = (None, None);
    }
    for cause in &mut carried.causes {
        cause.message = None;
        cause.frames.clear();
    }
    carried
}

#[test]
fn a_trace_read_back_at_an_aggregator_has_the_same_fingerprint_and_frames() {
    for name in NAMES {
        let sent = agent_entry(name);
        let line = json(&sent);
        let received = entry_from_json(line.trim_end().as_bytes(), &Arc::from("aggregator"))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            fingerprinter().fingerprint(&received),
            fingerprinter().fingerprint(&sent),
            "{name}"
        );
        let sent_trace = sent.trace.as_deref().unwrap();
        let received_trace = received.trace.as_deref().unwrap();
        assert_eq!(received_trace, &as_carried(sent_trace), "{name}");
        assert_eq!(
            frames_to_read(received_trace),
            frames_to_read(&as_carried(sent_trace)),
            "{name}: what remediation reads"
        );
        // An incident keeps the line as its sample, and reads the trace back from it.
        let sample: serde_json::Value = serde_json::from_str(&line).unwrap();
        let from_sample = StackTrace::deserialize(&sample["metadata"]).unwrap();
        assert_eq!(&from_sample, received_trace, "{name}");
        // Encoded again at the aggregator, the trace's keys are what the agent wrote.
        let again: serde_json::Value = serde_json::from_str(&json(&received)).unwrap();
        assert_eq!(again["metadata"], sample["metadata"], "{name}");
    }
}
