//! Faults and hostile input probed from outside, against the real binary (issue 15): each test
//! here failed before its fix.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Agent, Row, free_port, report};

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
    report(&Row {
        fault: "SIGTERM after a source finished on its own",
        tries: 1,
        lost: 1 - common::read_lines(&out).len().min(1) as u64,
        duplicates: 0,
        peak_rss_kib: None,
    });
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
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("`raw`") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    report(&Row {
        fault: "a source's port taken at start (exit 1, named)",
        tries: 1,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: None,
    });
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
    report(&Row {
        fault: "4,718,592 malformed lines in two requests (plain, gzip)",
        tries: 2,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
}

/// Runs `tailfix run` on `config` in `dir`, expecting it to exit by itself within 30 s; returns
/// its exit code and what it wrote to stderr.
fn run_to_exit(dir: &std::path::Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("tailfix.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c"])
        .arg(&path)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("tailfix kept running on a config it should refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whatever accepts writes on a non-loopback address needs a token of 16 bytes or more: a
/// standalone agent with an `aggregator` source on 0.0.0.0 and no token took events and
/// registrations from anywhere. Without a token and without anything that takes events, the
/// API serves `/health` and `/metrics` only.
#[test]
fn an_api_open_to_other_machines_needs_a_real_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let with_api = |api_section: &str, source: &str| {
        format!(
            r#"
[agent]
data_dir = "data"
[api]
{api_section}
[sources.in]
{source}
[sinks.out]
type = "blackhole"
inputs = ["in"]
"#
        )
    };
    let aggregator = "type = \"aggregator\"";
    let everywhere = format!("address = \"0.0.0.0:{api}\"");
    let (code, stderr) = run_to_exit(dir.path(), &with_api(&everywhere, aggregator));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("without [api].token"), "{stderr}");

    let short_token = format!("{everywhere}\ntoken = \"hunter2\"");
    let (code, stderr) = run_to_exit(dir.path(), &with_api(&short_token, "type = \"stdin\""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("at least 16"), "{stderr}");

    // Allowed on purpose, or on loopback: it runs.
    let allowed = format!("{everywhere}\nallow_unauthenticated = true");
    let mut agent = Agent::start(dir.path(), &with_api(&allowed, aggregator), api);
    agent.stop();

    let tcp = free_port();
    let socket = format!("type = \"socket\"\naddress = \"127.0.0.1:{tcp}\"");
    let mut agent = Agent::start(dir.path(), &with_api(&everywhere, &socket), api);
    let (status, _) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200);
    let (status, body) = common::http_get(api, "/api/v1/incidents").unwrap();
    assert_eq!(status, 403, "{body}");
    let (status, _) = common::http_request(
        api,
        "POST",
        "/api/v1/nodes/register",
        &[],
        br#"{"id":"intruder"}"#,
    )
    .unwrap();
    assert_eq!(status, 403);
    report(&Row {
        fault: "an API on 0.0.0.0: no token, a short token, allowed, read-only",
        tries: 4,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}

/// The listen backlog of a port, as `ss` shows it for a listening socket (its Send-Q).
fn listen_backlog(port: u16) -> u32 {
    let output = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|send_q| send_q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port}: {text}"))
}

/// Connections are bounded: idle raw TCP connections are closed after `idle_timeout`, at most
/// `max_connections` are served at once (the rest wait in a backlog deep enough for bursts),
/// and the API keeps answering through a flood of them. 20,000 idle connections exhausted the
/// descriptors and `/health` went silent for 13 s before.
#[test]
fn connection_floods_are_bounded_and_health_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.log");
    let config = socket_to_text_file(
        api,
        tcp,
        &out,
        "max_connections = 50\nidle_timeout = \"1s\"",
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let minimum = 1024.min(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(1024),
    );
    assert!(
        listen_backlog(tcp) >= minimum,
        "source backlog {}",
        listen_backlog(tcp)
    );
    assert!(
        listen_backlog(api) >= minimum,
        "API backlog {}",
        listen_backlog(api)
    );

    // 500 idle connections: 50 served, the rest queued; each is closed once idle for 1 s.
    let idle: Vec<std::net::TcpStream> = (0..500)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap())
        .collect();
    let (status, _) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200);
    let closed_by_agent = |mut stream: &std::net::TcpStream| {
        use std::io::Read;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte), Ok(0) | Err(_))
    };
    assert!(closed_by_agent(&idle[0]), "an idle connection is closed");
    assert!(
        closed_by_agent(&idle[499]),
        "a queued idle connection is served, then closed"
    );
    assert!(
        agent.metric(
            "tailfix_component_errors_total",
            &[("component_id", "raw"), ("error_type", "connection_limit")]
        ) >= 1.0
    );

    // Then a client that sends is served.
    let mut writer = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    writer.write_all(b"after the flood\n").unwrap();
    drop(writer);
    assert_eq!(
        common::wait_for_lines(&out, 1, Duration::from_secs(30)),
        vec!["after the flood"]
    );
    report(&Row {
        fault: "500 idle TCP connections against max_connections = 50",
        tries: 500,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}

/// An HTTP client that never finishes its request head is disconnected (3,000 such
/// connections were kept for ever before).
#[test]
fn a_request_head_that_never_ends_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.in]
type = "socket"
address = "127.0.0.1:{tcp}"
[sinks.out]
type = "blackhole"
inputs = ["in"]
"#,
        tcp = free_port()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let mut slow: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", api)).unwrap();
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    let (status, _) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200, "the API answers others meanwhile");
    for stream in &mut slow {
        use std::io::Read;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut answer = Vec::new();
        // Closed by the agent (possibly after a 408 answer), not by this read's timeout.
        let result = stream.read_to_end(&mut answer);
        assert!(result.is_ok(), "{result:?}");
    }
    report(&Row {
        fault: "100 HTTP request heads that never end",
        tries: 100,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}

/// A config: a TCP `socket` source on `tcp` (with `source_keys`), its lines written as text to
/// `out`, the API on `api`.
fn socket_to_text_file(api: u16, tcp: u16, out: &std::path::Path, source_keys: &str) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.raw]
type = "socket"
address = "127.0.0.1:{tcp}"
{source_keys}
[sinks.out]
type = "file"
inputs = ["raw"]
path = "{out}"
encoding = "text"
"#,
        out = out.display()
    )
}

/// A config: a `file` source following `include`, its lines written as text to `out`, the API
/// on `api`.
fn files_to_text_file(api: u16, include: &str, out: &std::path::Path) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.logs]
type = "file"
include = ["{include}"]
[sinks.out]
type = "file"
inputs = ["logs"]
path = "{out}"
encoding = "text"
"#,
        out = out.display()
    )
}

/// A small tmpfs mounted for one test, unmounted when dropped (the tests run as root in CI).
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, bytes: usize) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (as CI runs): {status:?}"
        );
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A file sink on a full disk keeps what it cannot write, applies backpressure, says so in
/// `/health`, leaves no torn line, and writes everything once space returns (it stopped for
/// good before, and what arrived after was lost uncounted).
#[test]
fn a_full_disk_is_waited_out_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("small"), 256 * 1024);
    let out = disk.path.join("out.log");
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![b'f'; 200 * 1024]).unwrap();
    let (api, tcp) = (free_port(), free_port());
    let config = socket_to_text_file(api, tcp, &out, "");
    let mut agent = Agent::start(dir.path(), &config, api);
    let total = 2_000;
    let line = |i: usize| format!("line {i:05} {}", "p".repeat(88));
    let mut sender = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for i in 0..total {
        sender
            .write_all(format!("{}\n", line(i)).as_bytes())
            .unwrap();
    }
    drop(sender);

    let body = agent.wait_health_saying("No space left", Duration::from_secs(30));
    assert!(body.contains("\"failed\""), "{body}");
    let written = std::fs::read(&out).unwrap_or_default();
    assert!(
        written.is_empty() || written.ends_with(b"\n"),
        "a torn last line while the disk is full"
    );

    std::fs::remove_file(&filler).unwrap();
    let lines = common::wait_for_lines(&out, total, Duration::from_secs(60));
    let expected: Vec<String> = (0..total).map(line).collect();
    assert_eq!(lines, expected, "every line once, in order");
    let (status, body) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200, "recovered: {body}");
    report(&Row {
        fault: "disk full under the file sink, then freed (2,000 lines)",
        tries: 1,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
    drop(disk);
}

/// A sink path that cannot be opened (its directory is a file) is retried: once the obstacle
/// is gone, everything sent meanwhile is written.
#[test]
fn a_sink_path_that_cannot_be_opened_is_retried_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let out = blocked.join("out.log");
    let (api, tcp) = (free_port(), free_port());
    let config = socket_to_text_file(api, tcp, &out, "");
    let mut agent = Agent::spawn(dir.path(), &config, api);
    agent.wait_api(Duration::from_secs(30));
    let mut sender = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    sender
        .write_all(b"sent while blocked 1\nsent while blocked 2\n")
        .unwrap();
    drop(sender);
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("retrying"), "{body}");
    std::fs::remove_file(&blocked).unwrap();
    assert_eq!(
        common::wait_for_lines(&out, 2, Duration::from_secs(30)),
        vec!["sent while blocked 1", "sent while blocked 2"]
    );
    report(&Row {
        fault: "a sink directory blocked, then freed",
        tries: 1,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}

/// Resident memory of an agent following `files` small files once it has read them all, in KiB.
fn rss_following(files: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for i in 0..files {
        std::fs::write(
            logs.join(format!("app-{i:05}.log")),
            format!("started {i}\n"),
        )
        .unwrap();
    }
    let api = free_port();
    let out = dir.path().join("out.log");
    let config = files_to_text_file(api, &format!("{}/*.log", logs.display()), &out);
    let mut agent = Agent::start(dir.path(), &config, api);
    common::wait_for_lines(&out, files, Duration::from_secs(120));
    // A few idle polls of every file.
    std::thread::sleep(Duration::from_secs(2));
    let rss = common::proc_status_kib(agent.pid(), "VmRSS:");
    agent.stop();
    rss
}

/// Thousands of followed files cost a few KiB each, not a read buffer each (about 500 KB per
/// file before: 10,000 small files took 4.3 GB).
#[test]
fn an_idle_followed_file_costs_a_few_kib() {
    let few = rss_following(10);
    let many = rss_following(2_010);
    let per_file = many.saturating_sub(few) as f64 / 2_000.0;
    eprintln!(
        "RSS following 10 files: {few} KiB, 2,010 files: {many} KiB: {per_file:.1} KiB per file"
    );
    assert!(per_file <= 8.0, "{per_file:.1} KiB per followed file");
    report(&Row {
        fault: "2,010 followed files, idle",
        tries: 2010,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(many),
    });
}

/// JSON nested 10,000 deep (a stack-depth bomb) is an ordinary bad line: the socket source
/// keeps it as text, the aggregator's intake rejects it with a reason, nothing crashes.
#[test]
fn json_nested_ten_thousand_deep_crashes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let tcp = free_port();
    let out = dir.path().join("out.json");
    let config = format!(
        r#"
[agent]
mode = "aggregator"
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.raw]
type = "socket"
address = "127.0.0.1:{tcp}"
format = "json"
max_line_bytes = 1048576
[sources.agents]
type = "aggregator"
[sinks.out]
type = "file"
inputs = ["raw", "agents"]
path = "{out}"
"#,
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let arrays = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let message =
        format!("{{\"message\":\"deep\",\"node_id\":\"n1\",\"metadata\":{{\"x\":{arrays}}}}}");
    let mut sender = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for line in [&arrays, &objects, &message] {
        sender.write_all(line.as_bytes()).unwrap();
        sender.write_all(b"\n").unwrap();
    }
    drop(sender);
    let lines = common::wait_for_lines(&out, 3, Duration::from_secs(30));
    assert_eq!(lines.len(), 3);
    for body in [&arrays, &objects, &message] {
        let (status, answer) =
            common::http_request(api, "POST", "/api/v1/events", &[], body.as_bytes()).unwrap();
        assert_eq!(status, 400, "{answer}");
    }
    let (status, _) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200);
    report(&Row {
        fault: "JSON nested 10,000 deep, to a socket source and the aggregator intake",
        tries: 6,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}

/// `data_dir` read-only at start: the agent says so and exits 1.
#[test]
fn a_read_only_data_dir_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("ro");
    std::fs::create_dir_all(&disk).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(&disk)
        .status()
        .expect("run mount");
    assert!(status.success(), "mounting a tmpfs needs root (as CI runs)");
    let _unmount = SmallDisk { path: disk.clone() };
    let config = format!(
        "[agent]\ndata_dir = \"{}/data\"\n[api]\naddress = \"127.0.0.1:{}\"\n[sources.in]\ntype = \"socket\"\naddress = \"127.0.0.1:{}\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
        disk.display(),
        free_port(),
        free_port()
    );
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("data_dir") && stderr.contains("Read-only"),
        "{stderr}"
    );
    report(&Row {
        fault: "data_dir read-only at start (exit 1, named)",
        tries: 1,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: None,
    });
}

/// `data_dir` full while running: entries keep flowing (checkpoints cannot advance, so a
/// restart would replay, never lose), the failures are counted, and once space returns the
/// checkpoints catch up: a restart then reads nothing twice.
#[test]
fn a_full_data_dir_while_running_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("state"), 2 * 1024 * 1024);
    let input = dir.path().join("app.log");
    let out = dir.path().join("out.log");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "{data}"
[api]
address = "127.0.0.1:{api}"
[sources.logs]
type = "file"
include = ["{input}"]
[sinks.out]
type = "file"
inputs = ["logs"]
path = "{out}"
encoding = "text"
"#,
        data = disk.path.join("data").display(),
        input = input.display(),
        out = out.display()
    );
    let write = |from: usize, to: usize| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&input)
            .unwrap();
        for i in from..to {
            writeln!(file, "line {i:06}").unwrap();
        }
    };
    write(0, 1_000);
    let mut agent = Agent::start(dir.path(), &config, api);
    common::wait_for_lines(&out, 1_000, Duration::from_secs(30));
    // Fill the disk under the state store, then keep writing logs.
    let filler = disk.path.join("filler");
    let mut fill = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while fill.write_all(&chunk).is_ok() {}
    drop(fill);
    write(1_000, 5_000);
    let lines = common::wait_for_lines(&out, 5_000, Duration::from_secs(30));
    assert_eq!(
        lines.len(),
        5_000,
        "entries flow while checkpoints cannot be saved"
    );
    let (status, _) = common::http_get(api, "/health").unwrap();
    assert_eq!(status, 200, "the pipeline itself is healthy");
    let failed = agent.metric(
        "tailfix_component_errors_total",
        &[
            ("component_id", "logs"),
            ("error_type", "checkpoint_failed"),
        ],
    );
    assert!(failed >= 1.0, "checkpoint failures are counted: {failed}");
    std::fs::remove_file(&filler).unwrap();
    write(5_000, 6_000);
    common::wait_for_lines(&out, 6_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    agent.stop();
    // Restarted: the checkpoint caught up, nothing is read twice.
    let mut agent = Agent::start(dir.path(), &config, api);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        common::read_lines(&out).len(),
        6_000,
        "nothing replayed after catching up"
    );
    report(&Row {
        fault: "data_dir full while tailing 6,000 lines, then freed",
        tries: 1,
        lost: 6_000 - common::read_lines(&out).len().min(6_000) as u64,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
    drop(disk);
}

/// kill -9 at 20 points during a 1,000,000-line tail with rename rotation (numbered files,
/// never deleted): no line is lost; the duplicates a replay brings are counted and bounded.
#[test]
fn kill_9_twenty_times_during_a_rotating_tail_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out.log");
    let api = free_port();
    let config = files_to_text_file(api, &format!("{}/app.log*", logs.display()), &out);
    let total: u64 = 1_000_000;
    let line = |i: u64| format!("line {i:07} {}\n", "y".repeat(32));
    let line_bytes = line(0).len() as u64;
    let writer = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            let app = logs.join("app.log");
            let mut file = std::io::BufWriter::new(std::fs::File::create(&app).unwrap());
            for i in 0..total {
                if i > 0 && i % 100_000 == 0 {
                    file.flush().unwrap();
                    std::fs::rename(&app, logs.join(format!("app.log.{}", i / 100_000))).unwrap();
                    file = std::io::BufWriter::new(std::fs::File::create(&app).unwrap());
                }
                file.write_all(line(i).as_bytes()).unwrap();
                if i % 1_000 == 0 {
                    file.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            file.flush().unwrap();
        })
    };
    // Killed at pseudo-random moments 150-450 ms after each start, while the writer goes on
    // (it needs about ten seconds for the million lines).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    let mut peak_kib = 0;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut agent = Agent::start(dir.path(), &config, api);
        std::thread::sleep(Duration::from_millis(150 + seed % 300));
        peak_kib = peak_kib.max(agent.peak_rss_kib());
        agent.signal("KILL");
        agent.wait_exit(Duration::from_secs(10));
        kills += 1;
    }
    let writing = !writer.is_finished();
    writer.join().unwrap();
    let mut agent = Agent::start(dir.path(), &config, api);
    let count = |lines: &[String]| {
        let mut seen = std::collections::HashMap::new();
        for text in lines {
            let number: u64 = text[5..12].parse().unwrap();
            *seen.entry(number).or_insert(0u64) += 1;
        }
        seen
    };
    // Until every number has arrived (duplicates make the line count run ahead of it).
    let started = std::time::Instant::now();
    let mut seen = count(&common::read_lines(&out));
    while (seen.len() as u64) < total && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
        seen = count(&common::read_lines(&out));
    }
    std::thread::sleep(Duration::from_millis(500));
    let seen = count(&common::read_lines(&out));
    peak_kib = peak_kib.max(agent.peak_rss_kib());
    agent.stop();
    let mut by_file = std::collections::BTreeMap::new();
    for (number, count) in &seen {
        *by_file.entry(number / 100_000).or_insert(0u64) += count - 1;
    }
    eprintln!("duplicates per rotated file: {by_file:?}");
    let lost = (0..total).filter(|n| !seen.contains_key(n)).count();
    let duplicates: u64 = seen.values().map(|count| count - 1).sum();
    report(&Row {
        fault: "kill -9 at random moments during a 1,000,000-line tail with rotation",
        tries: kills,
        lost: lost as u64,
        duplicates,
        peak_rss_kib: Some(peak_kib),
    });
    assert_eq!(lost, 0, "no line lost across {kills} kills");
    assert!(
        writing,
        "the kills happened while the file was being written"
    );
    // A kill replays what was delivered after the last checkpoint: about one read round (256
    // KiB) of each file being read, and a restart may find several (rotated ones unfinished).
    let per_kill_bound = 4 * (256 * 1024 / line_bytes);
    assert!(
        duplicates <= kills * per_kill_bound,
        "{duplicates} duplicates for {kills} kills (bound {per_kill_bound} a kill)"
    );
}

/// A console sink whose reader has gone (a closed pipe) retries with backoff, shows why in
/// `/health`, and still stops cleanly (it failed for good on the first error before).
#[test]
fn a_console_whose_reader_is_gone_is_retried_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let config = format!(
        "[agent]\ndata_dir = \"data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.raw]\ntype = \"socket\"\naddress = \"127.0.0.1:{tcp}\"\n[sinks.out]\ntype = \"console\"\ninputs = [\"raw\"]\nencoding = \"text\"\n"
    );
    let mut agent = Agent::spawn(dir.path(), &config, api);
    agent.wait_healthy(Duration::from_secs(30));
    drop(agent.child.stdout.take());
    let mut sender = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    sender.write_all(b"nobody reads this\n").unwrap();
    drop(sender);
    let body = agent.wait_health_saying("retrying", Duration::from_secs(30));
    assert!(body.contains("Broken pipe"), "{body}");
    report(&Row {
        fault: "a console sink whose reader has gone",
        tries: 1,
        lost: 0,
        duplicates: 0,
        peak_rss_kib: Some(agent.peak_rss_kib()),
    });
    agent.stop();
}
