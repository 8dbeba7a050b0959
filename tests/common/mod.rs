//! Shared helpers for the integration tests: start the real `tailfix` binary with a config,
//! wait for it, talk HTTP to its API, read its metrics, stop it with a real signal.

#![allow(dead_code)]

pub mod fake_model;
pub mod shop_repo;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the agent to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

/// Connects to a source's TCP port, retrying while it is not listening yet (a source binds
/// as it starts, which `/health` may report a moment before).
pub fn connect_when_listening(port: u16, limit: Duration) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(error) if started.elapsed() > limit => {
                panic!("nothing listens on 127.0.0.1:{port}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .expect("a free UDP port on 127.0.0.1")
}

/// A running agent process; killed if the test ends without stopping it.
pub struct Agent {
    pub child: Child,
    pub api_port: u16,
    pub dir: PathBuf,
}

impl Agent {
    /// Writes `config` (which must use `api_port` for `[api].address`) into `dir` and starts
    /// `tailfix run` on it, waiting until `/health` answers 200.
    pub fn start(dir: &Path, config: &str, api_port: u16) -> Agent {
        let mut agent = Agent::spawn(dir, config, api_port);
        agent.wait_healthy(Duration::from_secs(30));
        agent
    }

    /// Starts the agent without waiting for it to become healthy.
    pub fn spawn(dir: &Path, config: &str, api_port: u16) -> Agent {
        Agent::spawn_with(dir, config, api_port, &[])
    }

    /// As `spawn`, with more arguments to `tailfix run` (`--watch-config`).
    pub fn spawn_with(dir: &Path, config: &str, api_port: u16, args: &[&str]) -> Agent {
        let path = dir.join("tailfix.toml");
        std::fs::write(&path, config).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_tailfix"))
            .arg("run")
            .arg("-c")
            .arg(&path)
            .args(args)
            .current_dir(dir)
            .env(
                "RUST_LOG",
                std::env::var("TAILFIX_TEST_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tailfix");
        Agent {
            child,
            api_port,
            dir: dir.to_path_buf(),
        }
    }

    /// Waits until the API answers at all and returns `/health`'s status and body.
    pub fn wait_api(&mut self, limit: Duration) -> (u16, String) {
        let started = Instant::now();
        loop {
            if let Ok(response) = http_get(self.api_port, "/health") {
                return response;
            }
            assert!(
                started.elapsed() < limit,
                "the API did not answer within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_healthy(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("tailfix exited before becoming healthy: {status}");
            }
            if let Ok((200, _)) = http_get(self.api_port, "/health") {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "tailfix did not become healthy within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.api_port, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        body
    }

    /// One sample of `/metrics`, matched by name and every `label="value"` pair given.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Polls a metric until `done(value)` or `limit` passes; returns the last value.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        limit: Duration,
        done: impl Fn(f64) -> bool,
    ) -> f64 {
        let started = Instant::now();
        loop {
            let value = self.metric(name, labels);
            if done(value) || started.elapsed() > limit {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`) with the real `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "tailfix did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent with SIGTERM and asserts it drained and exited 0 within 30 s.
    pub fn stop(&mut self) {
        self.signal("TERM");
        assert!(self.wait_exit(Duration::from_secs(30)).success());
    }

    /// Waits until `/health` mentions `text` (a failing component's reason); returns the body.
    pub fn wait_health_saying(&self, text: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let (_, body) = http_get(self.api_port, "/health").expect("GET /health");
            if body.contains(text) {
                return body;
            }
            assert!(
                started.elapsed() < limit,
                "/health never said `{text}`: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// A minimal HTTP/1.1 GET; returns status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, &[], b"")
}

/// A minimal HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the first sample of `name` whose labels include all of `labels`; 0 if absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(with_labels) => match with_labels.split_once("} ") {
                Some(parts) => parts,
                None => continue,
            },
            None => ("", rest.trim()),
        };
        if labels
            .iter()
            .all(|(key, wanted)| label_text.contains(&format!("{key}=\"{wanted}\"")))
        {
            return value.trim().parse().unwrap_or(0.0);
        }
    }
    0.0
}

/// Lines of a file, or none if it does not exist yet.
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits until `path` has at least `count` lines or `limit` passes; returns its lines.
pub fn wait_for_lines(path: &Path, count: usize, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = read_lines(path);
        if lines.len() >= count || started.elapsed() > limit {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One row of the README's Reliability table (`tests/reliability_report.sh` collects them from
/// the suite's output): a fault or input, how often it was tried, what was lost or duplicated,
/// and the agent's peak memory where a separate agent process ran. A test that reports has
/// passed its assertions, so it saw no crash.
pub struct Row<'a> {
    pub fault: &'a str,
    pub tries: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub peak_rss_kib: Option<u64>,
}

pub fn report(row: &Row<'_>) {
    println!(
        "reliability: {}",
        serde_json::json!({
            "fault": row.fault,
            "tries": row.tries,
            "lost": row.lost,
            "duplicates": row.duplicates,
            "crashes": 0,
            "peak_rss_mib": row.peak_rss_kib.map(|kib| kib.div_ceil(1024)),
        })
    );
}
