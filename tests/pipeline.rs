//! The spine end to end, through the real binary: socket sources over real TCP and UDP on
//! 127.0.0.1, the filter, file sinks writing the JSON contract, metrics that match what was
//! sent, SIGTERM draining in-flight entries, and both `when_full` policies under a slow sink.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::{Agent, free_port, free_udp_port, wait_for_lines};
use serde_json::Value;

fn is_rfc3339_utc(text: &str) -> bool {
    // 2026-01-01T00:00:00.000Z, with 3, 6 or 9 fractional digits.
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    bytes.len() >= 24
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19)
        && bytes[19] == b'.'
        && matches!(bytes.len() - 21, 3 | 6 | 9)
        && digits(20..bytes.len() - 1)
        && bytes[bytes.len() - 1] == b'Z'
}

fn check_contract_shape(line: &str) -> Value {
    let entry: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let keys: BTreeSet<&str> = entry
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "timestamp",
            "node_id",
            "source",
            "level",
            "message",
            "error_trace",
            "metadata"
        ]),
        "{line}"
    );
    assert!(
        is_rfc3339_utc(entry["timestamp"].as_str().unwrap()),
        "{line}"
    );
    assert!(entry["metadata"].is_object());
    assert!(entry["error_trace"].is_null());
    let message = entry["message"].as_str().unwrap();
    assert!(
        !message.ends_with('\n') && !message.ends_with('\r'),
        "{line}"
    );
    entry
}

#[test]
fn socket_lines_reach_file_sinks_as_contract_json_and_metrics_match() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp, udp) = (free_port(), free_port(), free_udp_port());
    let errors_path = dir.path().join("out/errors.json");
    let all_path = dir.path().join("out/all.json");
    let config = format!(
        r#"
[agent]
node_id = "node-7"
data_dir = "data"

[api]
address = "127.0.0.1:{api}"

[sources.tcp_in]
type = "socket"
mode = "tcp"
address = "127.0.0.1:{tcp}"

[sources.udp_in]
type = "socket"
mode = "udp"
address = "127.0.0.1:{udp}"

[transforms.errors]
type = "filter"
inputs = ["tcp_in", "udp_in"]
min_level = "error"

[sinks.errors_out]
type = "file"
inputs = ["errors"]
path = "{errors}"

[sinks.all_out]
type = "file"
inputs = ["tcp_in", "udp_in"]
path = "{all}"
encoding = "json"
"#,
        errors = errors_path.display(),
        all = all_path.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    assert!(dir.path().join("data").is_dir(), "data_dir is created");

    // TCP: 2,000 lines, every other one an error, plus lines that test the edges.
    let mut tcp_stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut payload = Vec::new();
    for i in 0..2000 {
        if i % 2 == 0 {
            writeln!(payload, "2026-01-01 12:00:00 INFO request {i} ok").unwrap();
        } else {
            writeln!(
                payload,
                "2026-01-01 12:00:00 ERROR request {i} failed: \"db\" down"
            )
            .unwrap();
        }
    }
    payload.extend_from_slice(b"ERROR crlf line\r\n");
    payload.extend_from_slice(b"ERROR invalid utf8 \xff\xfe here\n");
    payload.extend_from_slice(b"level=error msg=\"logfmt style\"\n");
    tcp_stream.write_all(&payload).unwrap();
    drop(tcp_stream);

    // UDP: 100 datagrams of two lines each.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..100 {
        let datagram = format!("WARN udp {i} first\nFATAL udp {i} second\n");
        socket
            .send_to(datagram.as_bytes(), ("127.0.0.1", udp))
            .unwrap();
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    let tcp_count = 2003;
    let udp_count = 200;
    let all = wait_for_lines(&all_path, tcp_count + udp_count, Duration::from_secs(30));
    assert_eq!(all.len(), tcp_count + udp_count);
    let mut by_source = std::collections::HashMap::<String, usize>::new();
    for line in &all {
        let entry = check_contract_shape(line);
        assert_eq!(entry["node_id"], "node-7");
        *by_source
            .entry(entry["source"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(by_source["tcp_in"], tcp_count);
    assert_eq!(by_source["udp_in"], udp_count);

    let errors = wait_for_lines(&errors_path, 1000 + 3 + 100, Duration::from_secs(10));
    let error_entries: Vec<Value> = errors
        .iter()
        .map(|line| check_contract_shape(line))
        .collect();
    assert_eq!(error_entries.len(), 1000 + 3 + 100);
    assert!(
        error_entries
            .iter()
            .all(|e| e["level"] == "error" || e["level"] == "fatal")
    );
    let messages: BTreeSet<&str> = error_entries
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains("2026-01-01 12:00:00 ERROR request 1 failed: \"db\" down"));
    assert!(messages.contains("ERROR crlf line"));
    assert!(messages.contains("ERROR invalid utf8 \u{fffd}\u{fffd} here"));
    assert!(
        messages.contains("logfmt style"),
        "format = auto parses logfmt lines"
    );
    assert!(messages.contains("FATAL udp 99 second"));
    assert!(!messages.iter().any(|m| m.contains("WARN udp")));

    // The counters agree with what was sent.
    let tcp_source = [("component_id", "tcp_in")];
    assert_eq!(
        agent.metric("tailfix_component_received_events_total", &tcp_source),
        tcp_count as f64
    );
    assert_eq!(
        agent.metric("tailfix_component_received_bytes_total", &tcp_source),
        (payload.len() - 2003 - 1) as f64,
        "bytes received are the line bytes without terminators"
    );
    assert_eq!(
        agent.metric("tailfix_component_sent_events_total", &tcp_source),
        tcp_count as f64
    );
    assert_eq!(
        agent.metric(
            "tailfix_component_received_events_total",
            &[("component_id", "udp_in")]
        ),
        udp_count as f64
    );
    assert_eq!(
        agent.metric(
            "tailfix_component_received_events_total",
            &[("component_id", "errors")]
        ),
        (tcp_count + udp_count) as f64
    );
    assert_eq!(
        agent.metric(
            "tailfix_component_discarded_events_total",
            &[("component_id", "errors"), ("reason", "filtered")]
        ),
        (1000 + 100) as f64
    );
    let all_sink = [
        ("component_id", "all_out"),
        ("component_kind", "sink"),
        ("component_type", "file"),
    ];
    assert_eq!(
        agent.metric("tailfix_component_sent_events_total", &all_sink),
        (tcp_count + udp_count) as f64
    );
    assert_eq!(
        agent.metric("tailfix_component_received_events_total", &all_sink),
        (tcp_count + udp_count) as f64
    );
    assert!(agent.metrics().contains("component_type=\"socket\""));

    let (status, body) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"tcp_in\""));

    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
}

/// Lines numbered from 0 must appear as an unbroken prefix 0..k.
fn contiguous_prefix(lines: &[String]) -> usize {
    for (index, line) in lines.iter().enumerate() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let expected = format!("line {index:08}");
        assert!(
            entry["message"].as_str().unwrap().starts_with(&expected),
            "line {index} is `{}`",
            entry["message"]
        );
    }
    lines.len()
}

#[test]
fn sigterm_writes_every_accepted_line_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    // The blackhole consumes 20,000 events/s and blocks: entries pile up in the channels, so
    // at SIGTERM there is plenty in flight to drain.
    let config = format!(
        r#"
[agent]
data_dir = "data"
shutdown_timeout = "20s"
[api]
address = "127.0.0.1:{api}"
[sources.tcp_in]
type = "socket"
address = "127.0.0.1:{tcp}"
[sinks.file_out]
type = "file"
inputs = ["tcp_in"]
path = "{out}"
[sinks.slow]
type = "blackhole"
inputs = ["tcp_in"]
rate = 20000
"#,
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let sender = std::thread::spawn(move || {
        // The API answering does not mean every listener is bound yet: retry briefly.
        let started = std::time::Instant::now();
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", tcp)) {
                Ok(stream) => break stream,
                Err(error) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = error;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("the socket source never listened: {error}"),
            }
        };
        let mut chunk = Vec::new();
        for i in 0..100_000 {
            writeln!(chunk, "line {i:08} some payload to make the line longer").unwrap();
            if chunk.len() > 64 * 1024 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                chunk.clear();
            }
        }
        let _ = stream.write_all(&chunk);
    });
    let received = agent.wait_metric(
        "tailfix_component_received_events_total",
        &[("component_id", "tcp_in")],
        Duration::from_secs(30),
        |value| value >= 15_000.0,
    );
    assert!(received >= 15_000.0);
    let written_before = common::read_lines(&out).len() as f64;
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let _ = sender.join();

    let lines = common::read_lines(&out);
    let written = contiguous_prefix(&lines) as f64;
    eprintln!(
        "sigterm: {received} accepted at signal, {written_before} written then, {written} written at exit"
    );
    assert!(
        written >= received,
        "every accepted line is written: {written} written, {received} were accepted before SIGTERM"
    );
    assert!(
        written > written_before,
        "entries in flight at SIGTERM were drained ({written_before} before, {written} after)"
    );
}

fn send_lines(port: u16, count: usize, line_bytes: usize) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let filler = "x".repeat(line_bytes.saturating_sub(20));
    let mut chunk = Vec::with_capacity(256 * 1024);
    for i in 0..count {
        writeln!(chunk, "{i:010} {filler}").unwrap();
        if chunk.len() > 200 * 1024 {
            stream.write_all(&chunk).unwrap();
            chunk.clear();
        }
    }
    stream.write_all(&chunk).unwrap();
}

#[test]
fn drop_newest_keeps_memory_bounded_and_counts_every_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let config = format!(
        r#"
[agent]
data_dir = "data"
shutdown_timeout = "1s"
[api]
address = "127.0.0.1:{api}"
[sources.tcp_in]
type = "socket"
address = "127.0.0.1:{tcp}"
[sinks.slow]
type = "blackhole"
inputs = ["tcp_in"]
rate = 1000
when_full = "drop_newest"
"#
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let total = 200_000;
    // 200 MB through a sink that takes 1,000 events/s: the source must never wait.
    send_lines(tcp, total, 1000);
    let received = agent.wait_metric(
        "tailfix_component_received_events_total",
        &[("component_id", "tcp_in")],
        Duration::from_secs(60),
        |value| value >= total as f64,
    );
    assert_eq!(received, total as f64, "the source accepted every line");
    let sink = [("component_id", "slow")];
    let metrics = agent.metrics();
    let discarded = common::metric_value(
        &metrics,
        "tailfix_component_discarded_events_total",
        &[("component_id", "slow"), ("reason", "buffer_full")],
    );
    let consumed = common::metric_value(&metrics, "tailfix_component_received_events_total", &sink);
    let buffered = common::metric_value(&metrics, "tailfix_buffer_events", &sink);
    assert!(discarded > 0.0, "drops are counted");
    assert_eq!(
        discarded + consumed + buffered,
        total as f64,
        "every entry is consumed, buffered or counted as dropped"
    );
    assert!(
        buffered <= (16 * 512) as f64,
        "the buffer holds at most its bound, got {buffered}"
    );
    let peak_kib = agent.peak_rss_kib();
    eprintln!(
        "drop_newest: consumed {consumed}, buffered {buffered}, discarded {discarded}, peak RSS {peak_kib} KiB"
    );
    assert!(
        peak_kib > 0 && peak_kib < 150 * 1024,
        "peak RSS {peak_kib} KiB after 200 MB through a slow sink"
    );
    common::report(&common::Row {
        fault: "a sink 200x slower than the input, drop_newest (lost = uncounted drops)",
        tries: total as u64,
        lost: total as u64 - (discarded + consumed + buffered) as u64,
        duplicates: 0,
        peak_rss_kib: Some(peak_kib),
    });

    agent.stop();
}

#[test]
fn block_slows_the_source_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.tcp_in]
type = "socket"
address = "127.0.0.1:{tcp}"
[sinks.slow]
type = "blackhole"
inputs = ["tcp_in"]
rate = 50000
when_full = "block"
"#
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let total = 100_000;
    send_lines(tcp, total, 100);
    let consumed = agent.wait_metric(
        "tailfix_component_sent_events_total",
        &[("component_id", "slow")],
        Duration::from_secs(60),
        |value| value >= total as f64,
    );
    assert_eq!(consumed, total as f64);
    assert_eq!(
        agent.metric(
            "tailfix_component_discarded_events_total",
            &[("component_id", "slow")]
        ),
        0.0
    );
    // Backpressure, not buffering: 10 MB sent faster than the sink takes stays bounded.
    let peak_kib = agent.peak_rss_kib();
    assert!(peak_kib < 150 * 1024, "peak RSS {peak_kib} KiB");
    common::report(&common::Row {
        fault: "a sink slower than the input, block (backpressure)",
        tries: total as u64,
        lost: total as u64 - consumed as u64,
        duplicates: 0,
        peak_rss_kib: Some(peak_kib),
    });
    agent.stop();
}

#[test]
fn a_failed_sink_is_reported_by_health_and_the_rest_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    // The broken sink's parent "directory" is a regular file: it cannot create its output.
    std::fs::write(dir.path().join("not-a-dir"), b"").unwrap();
    let good = dir.path().join("good.log");
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.tcp_in]
type = "socket"
address = "127.0.0.1:{tcp}"
[sinks.broken]
type = "file"
inputs = ["tcp_in"]
path = "not-a-dir/out.log"
[sinks.good]
type = "file"
inputs = ["tcp_in"]
path = "{good}"
encoding = "text"
"#,
        good = good.display()
    );
    let mut agent = Agent::spawn(dir.path(), &config, api);
    agent.wait_api(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = common::http_get(api, "/health").unwrap();
        if body.contains("\"failed\"") || started.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["components"]["broken"]["status"], "failed");
    assert!(
        health["components"]["broken"]["error"]
            .as_str()
            .unwrap()
            .contains("not-a-dir/out.log")
    );
    assert_eq!(health["components"]["good"]["status"], "running");

    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream
        .write_all(b"still flowing 1\nstill flowing 2\n")
        .unwrap();
    drop(stream);
    let lines = wait_for_lines(&good, 2, Duration::from_secs(10));
    assert_eq!(lines, vec!["still flowing 1", "still flowing 2"]);
    agent.stop();
}

#[test]
fn stdin_lines_are_shipped_and_the_agent_exits_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let out = dir.path().join("stdin.json");
    let config = format!(
        r#"
[agent]
data_dir = "data"
node_id = "n-stdin"
[api]
address = "127.0.0.1:{api}"
[sources.input]
type = "stdin"
[sinks.out]
type = "file"
inputs = ["input"]
path = "{out}"
"#,
        out = out.display()
    );
    let path = dir.path().join("stdin.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c"])
        .arg(&path)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"WARN first\nERROR second\nno newline at the end")
        .unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    let entries: Vec<Value> = common::read_lines(&out)
        .iter()
        .map(|l| check_contract_shape(l))
        .collect();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["level"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("warn", "WARN first"),
            ("error", "ERROR second"),
            ("info", "no newline at the end")
        ]
    );
}

#[test]
fn the_default_config_runs_as_is_and_prints_errors_to_the_console() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c"])
        .arg(root.join("conf/tailfix.toml"))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed if an assertion fails before the agent is stopped (it holds fixed ports).
    let guard = KillOnDrop(child.id());
    let started = std::time::Instant::now();
    while common::http_get(9598, "/health")
        .map(|(status, _)| status)
        .ok()
        != Some(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "default config never became healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Healthy means every source reported running; the listener may still be a moment behind
    // on a loaded machine, so the connection is retried within the same bound.
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", 5170)) {
            Ok(stream) => break stream,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "nothing listens on 5170: {error}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream
        .write_all(b"INFO not printed\nERROR payment failed\n")
        .unwrap();
    drop(stream);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            b"<11>Jan  1 00:00:00 host app: ERROR from udp",
            ("127.0.0.1", 5514),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    std::mem::forget(guard);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let messages: Vec<String> = stdout
        .lines()
        .map(|line| {
            check_contract_shape(line)["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        messages.contains(&"ERROR payment failed".to_string()),
        "{stdout}"
    );
    assert!(
        messages.iter().any(|m| m.contains("ERROR from udp")),
        "{stdout}"
    );
    assert!(!stdout.contains("not printed"));
    assert!(
        dir.path().join("data").is_dir(),
        "data_dir is created where the agent runs"
    );
    // Report-only remediation: each distinct error became an incident with a Markdown report.
    let reports = std::fs::read_dir(dir.path().join("data/incidents"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(reports, 2, "one report per distinct error");
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}
