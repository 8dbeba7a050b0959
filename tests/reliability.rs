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
