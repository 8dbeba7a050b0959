//! Stack traces through the real binary: the corpus of real crashes (tests/corpus/traces, made
//! by running crashing programs) written into two log files at once, line by line interleaved
//! in time; each trace must come out as one entry with its first line and the whole trace, and
//! the ordinary lines around them untouched.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Agent, free_port, wait_for_lines};
use serde_json::Value;

fn corpus(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/corpus/traces/{name}.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// (file, first line of the trace, its message, the exception the frames parser names)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "python_divide",
        "Traceback (most recent call last):",
        "Traceback (most recent call last):",
        "ZeroDivisionError",
    ),
    (
        "java_caused_by",
        "Exception in thread",
        "Exception in thread \"main\" java.lang.IllegalStateException: order A-1 could not be loaded",
        "java.lang.IllegalStateException",
    ),
    (
        "python_logged",
        "2026-11-27 15:39:21,612 ERROR payments:",
        "charge failed for order 4711",
        "ValueError",
    ),
    (
        "rust_backtrace",
        "thread 'main'",
        "thread 'main' (8885) panicked at programs/crash.rs:3:25:",
        "quantity must be a number",
    ),
    (
        "go_panic",
        "panic:",
        "panic: assignment to entry in nil map",
        "assignment to entry in nil map",
    ),
    (
        "python_chained",
        "Traceback (most recent call last):",
        "Traceback (most recent call last):",
        "NameError",
    ),
    (
        "node_uncaught",
        "/work/main/tests/corpus/traces/programs/crash.js:4",
        "/work/main/tests/corpus/traces/programs/crash.js:4",
        "Error",
    ),
    (
        "ruby_nomethod",
        "programs/crash.rb:7",
        "programs/crash.rb:7:in `greet': undefined method `name' for nil:NilClass (NoMethodError)",
        "NoMethodError",
    ),
];

#[test]
fn real_traces_from_two_interleaved_files_come_out_whole() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = dir.path().join("out.json");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.apps]
type = "file"
include = ["{logs}/*.log"]
format = "text"
[sinks.out]
type = "file"
inputs = ["apps"]
path = "{out}"
"#,
        logs = logs.display(),
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);

    // Stream A gets the even cases, stream B the odd ones; their lines alternate in time.
    let stream_text = |parity: usize| -> String {
        CASES
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, case)| corpus(case.0))
            .collect()
    };
    let (text_a, text_b) = (stream_text(0), stream_text(1));
    let mut file_a = std::fs::File::create(logs.join("a.log")).unwrap();
    let mut file_b = std::fs::File::create(logs.join("b.log")).unwrap();
    let (mut lines_a, mut lines_b) = (text_a.lines(), text_b.lines());
    loop {
        let (a, b) = (lines_a.next(), lines_b.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if let Some(line) = a {
            writeln!(file_a, "{line}").unwrap();
        }
        if let Some(line) = b {
            writeln!(file_b, "{line}").unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    drop((file_a, file_b));

    let ordinary_expected: usize = CASES
        .iter()
        .map(|case| match case.0 {
            // supervisor lines, the program's own info lines
            "python_logged" => 4,
            "node_uncaught" => 3,
            _ => 3,
        })
        .sum();
    // node_uncaught also holds a logged error with its frames: one more trace.
    let total = ordinary_expected + CASES.len() + 1;
    let lines = wait_for_lines(&out, total, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let lines = if lines.len() < total {
        common::read_lines(&out)
    } else {
        lines
    };
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.len(),
        total,
        "{:#?}",
        entries.iter().map(|e| &e["message"]).collect::<Vec<_>>()
    );

    for (name, first, message, exception) in CASES {
        let text = corpus(name);
        let all: Vec<&str> = text.lines().collect();
        let start = all.iter().position(|l| l.starts_with(first)).unwrap();
        let expected = all[start..all.len() - 1].join("\n").trim_end().to_string();
        let entry = entries
            .iter()
            .find(|e| {
                e["error_trace"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(first) && t.contains(exception))
            })
            .unwrap_or_else(|| panic!("{name}: no trace entry"));
        let trace = entry["error_trace"].as_str().unwrap();
        // python_logged: the log line after the trace is ordinary and not part of it.
        let expected = if *name == "python_logged" {
            expected.lines().take(7).collect::<Vec<_>>().join("\n")
        } else {
            expected
        };
        assert_eq!(trace, expected, "{name}");
        assert_eq!(entry["message"], *message, "{name}");
        assert_eq!(entry["metadata"]["exception"], *exception, "{name}");
        assert!(
            entry["metadata"]["frames"]
                .as_array()
                .is_some_and(|f| !f.is_empty()),
            "{name}"
        );
        assert!(
            entry["level"] == "error" || entry["level"] == "fatal",
            "{name}: {}",
            entry["level"]
        );
    }
    let ordinary: Vec<&Value> = entries
        .iter()
        .filter(|e| e["error_trace"].is_null())
        .collect();
    assert_eq!(ordinary.len(), ordinary_expected);
    assert!(
        ordinary
            .iter()
            .any(|e| e["message"] == "2026-01-01T11:59:59Z INFO  supervisor: starting go_panic")
    );
    agent.stop();
}

#[test]
fn the_fingerprint_transform_gives_one_bug_one_key_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = dir.path().join("out.json");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.apps]
type = "file"
include = ["{logs}/*.log"]
[transforms.errors]
type = "filter"
inputs = ["apps"]
min_level = "error"
[transforms.incidents]
type = "fingerprint"
inputs = ["errors"]
[sinks.out]
type = "file"
inputs = ["incidents"]
path = "{out}"
"#,
        logs = logs.display(),
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    std::fs::write(
        logs.join("node-a.log"),
        corpus("python_divide") + &corpus("python_ratio_value"),
    )
    .unwrap();
    std::fs::write(
        logs.join("node-b.log"),
        corpus("python_divide_again") + &corpus("python_ratio_zero"),
    )
    .unwrap();
    let lines = wait_for_lines(&out, 4, Duration::from_secs(30));
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 4, "only the four traces are errors");
    let fingerprint_of = |exception: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["metadata"]["exception"] == exception)
            .map(|e| e["metadata"]["fingerprint"].as_str().unwrap().to_string())
            .collect()
    };
    let divide = fingerprint_of("ZeroDivisionError");
    let value = fingerprint_of("ValueError");
    assert_eq!(divide.len(), 3);
    let discount: Vec<&Value> = entries
        .iter()
        .filter(|e| e["metadata"]["template"] == "ZeroDivisionError in discount (crash_divide.py)")
        .collect();
    assert_eq!(discount.len(), 2, "one bug in two files from two runs");
    assert_eq!(
        discount[0]["metadata"]["fingerprint"],
        discount[1]["metadata"]["fingerprint"]
    );
    assert_ne!(value[0], divide[0]);
    let zero_in_ratio = entries
        .iter()
        .find(|e| e["metadata"]["template"] == "ZeroDivisionError in ratio (crash_ratio.py)")
        .unwrap();
    assert_ne!(
        zero_in_ratio["metadata"]["fingerprint"].as_str().unwrap(),
        value[0],
        "two exception types on one line"
    );
    agent.stop();
}

#[test]
fn a_tcp_socket_with_multiline_auto_joins_traces_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let (api, tcp) = (free_port(), free_port());
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.raw]
type = "socket"
address = "127.0.0.1:{tcp}"
multiline = "auto"
[sinks.out]
type = "file"
inputs = ["raw"]
path = "{out}"
"#,
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    // Two connections, interleaved: each keeps its own trace.
    let mut first = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut second = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let java = corpus("java_caused_by");
    let python = corpus("python_divide");
    let (mut java_lines, mut python_lines) = (java.lines(), python.lines());
    loop {
        let (a, b) = (java_lines.next(), python_lines.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if let Some(line) = a {
            writeln!(first, "{line}").unwrap();
        }
        if let Some(line) = b {
            writeln!(second, "{line}").unwrap();
        }
        first.flush().unwrap();
        second.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // The last line of each stream is released by the timeout (1 s) or the connection's end.
    drop((first, second));
    let lines = wait_for_lines(&out, 8, Duration::from_secs(20));
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.len(),
        8,
        "{:#?}",
        entries.iter().map(|e| &e["message"]).collect::<Vec<_>>()
    );
    let traces: Vec<&Value> = entries
        .iter()
        .filter(|e| !e["error_trace"].is_null())
        .collect();
    assert_eq!(traces.len(), 2);
    assert!(
        traces
            .iter()
            .any(|t| t["metadata"]["exception"] == "java.lang.IllegalStateException")
    );
    assert!(
        traces
            .iter()
            .any(|t| t["metadata"]["exception"] == "ZeroDivisionError")
    );
    agent.stop();
}
