//! Faults and hostile input probed from outside, against the real binary (issue 15): each test
//! here failed before its fix.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Agent, free_port};

/// SIGTERM after one source has finished on its own (stdin at end of input) while another
/// still runs: the agent drains and exits 0 (it panicked with exit 101 polling the finished
/// source's task a second time).
#[test]
fn sigterm_after_a_source_finished_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let tcp = free_port();
    let out = dir.path().join("out.json");
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.input]
type = "stdin"
[sources.raw]
type = "socket"
mode = "tcp"
address = "127.0.0.1:{tcp}"
[sinks.out]
type = "file"
inputs = ["input", "raw"]
path = "{out}"
"#,
        out = out.display()
    );
    let path = dir.path().join("tailfix.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c"])
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut agent = Agent {
        child,
        api_port: api,
        dir: dir.path().to_path_buf(),
    };
    let mut stdin = agent.child.stdin.take().unwrap();
    stdin.write_all(b"last words from stdin\n").unwrap();
    drop(stdin);
    agent.wait_api(Duration::from_secs(30));
    // The stdin line is written once the source has read its end of input.
    let started = std::time::Instant::now();
    while common::read_lines(&out).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stdin line never written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(common::read_lines(&out).len(), 1);
}

/// A source whose address is taken: the agent says which and exits non-zero, instead of
/// running (or exiting 0) with nothing to do.
#[test]
fn a_source_whose_port_is_taken_stops_the_agent_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.raw]
type = "socket"
mode = "tcp"
address = "127.0.0.1:{port}"
[sinks.out]
type = "blackhole"
inputs = ["raw"]
"#
    );
    let path = dir.path().join("tailfix.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c"])
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`raw`") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    drop(taken);
}

/// An aggregator on 127.0.0.1 with a file sink.
fn aggregator(dir: &std::path::Path, extra: &str) -> Agent {
    let api = free_port();
    let config = format!(
        r#"
[agent]
mode = "aggregator"
data_dir = "data"
[sources.agents]
type = "aggregator"
[api]
address = "127.0.0.1:{api}"
{extra}
[sinks.all]
type = "file"
inputs = ["agents"]
path = "{out}"
"#,
        out = dir.join("all.json").display()
    );
    Agent::start(dir, &config, api)
}

/// A body of millions of malformed lines (plain, and gzip-compressed up to the decoded limit)
/// is answered 400 with the first errors and their total, in bounded memory: each bad line got
/// its own JSON object in the answer before (a 10 MiB body passed 6 GB).
#[test]
fn a_body_of_malformed_lines_gets_a_bounded_answer_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Bodies up to 1 MiB, so up to 8 MiB decoded: 4 million one-byte lines at most.
    let agent = aggregator(dir.path(), "max_body_bytes = 1048576");
    let idle_kib = agent.peak_rss_kib();
    let plain = b"x\n".repeat(512 * 1024);
    let (status, answer) =
        common::http_request(agent.api_port, "POST", "/api/v1/events", &[], &plain).unwrap();
    assert_eq!(status, 400, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["rejected_total"], 512 * 1024);
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(20));
    assert_eq!(answer["rejected"][19]["line"], 20);

    let decoded = b"x\n".repeat(4 * 1024 * 1024);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&decoded).unwrap();
    let gzip = encoder.finish().unwrap();
    let (status, answer) = common::http_request(
        agent.api_port,
        "POST",
        "/api/v1/events",
        &[("Content-Encoding", "gzip")],
        &gzip,
    )
    .unwrap();
    assert_eq!(status, 400, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["rejected_total"], 4 * 1024 * 1024);
    let grown_mib = agent.peak_rss_kib().saturating_sub(idle_kib) / 1024;
    // The decoded body (8 MiB) is held once and the answer is a few KiB; one JSON object per
    // bad line made this 4 million objects, gigabytes.
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
}
