//! End-to-end throughput through the real binary: lines over TCP into the `socket` source,
//! through the runtime, into a `blackhole` sink. Prints lines/s, MiB/s, CPU seconds and peak RSS.
//!
//! `cargo bench --bench e2e` runs the full measurement (2,000,000 lines of 200 bytes);
//! under `cargo test` (no `--bench` argument) it runs a small smoke pass so the harness itself
//! stays tested.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Agent, free_port};

/// CPU time (user + system) of a process so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks_per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / ticks_per_second
}

/// A chunk of 200-byte lines to send repeatedly.
fn chunk_of_lines(lines: usize) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(lines * 200);
    for i in 0..lines {
        let line = format!(
            "<134>1 2026-01-01T12:00:00.{:03}Z web-{} checkout 4242 ORDER - order {} processed for customer {} in {} ms",
            i % 1000,
            i % 8,
            100_000 + i,
            i * 7,
            i % 500
        );
        chunk.extend_from_slice(format!("{line:<199}\n").as_bytes());
    }
    chunk
}

/// What one run measured.
struct Measurement {
    lines: usize,
    bytes: usize,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

impl Measurement {
    fn print(&self, title: &str) {
        let mib = self.bytes as f64 / (1024.0 * 1024.0);
        println!("{title} ({} lines, {mib:.0} MiB)", self.lines);
        println!(
            "  lines/s        {:>12.0}",
            self.lines as f64 / self.seconds
        );
        println!("  MiB/s          {:>12.1}", mib / self.seconds);
        println!(
            "  CPU seconds    {:>12.2}  ({:.2} per million lines)",
            self.cpu_seconds,
            self.cpu_seconds / (self.lines as f64 / 1e6)
        );
        println!(
            "  peak RSS       {:>12.1} MiB",
            self.peak_rss_kib as f64 / 1024.0
        );
    }
}

fn api_and_blackhole(api: u16) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sinks.sink]
type = "blackhole"
inputs = ["input"]
"#
    )
}

/// Waits until the blackhole has consumed `total` entries; returns the measurement from `started`.
fn finish(
    agent: &mut Agent,
    total: usize,
    bytes: usize,
    started: Instant,
    cpu_before: f64,
) -> Measurement {
    let consumed = agent.wait_metric(
        "tailfix_component_sent_events_total",
        &[("component_id", "sink")],
        Duration::from_secs(900),
        |value| value >= total as f64,
    );
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(consumed, total as f64, "every line reached the sink");
    Measurement {
        lines: total,
        bytes,
        seconds,
        cpu_seconds: cpu_seconds(agent.pid()) - cpu_before,
        peak_rss_kib: agent.peak_rss_kib(),
    }
}

/// TCP `socket` source → blackhole, one connection pushing as fast as it is read.
fn tcp_to_blackhole(repeats: usize) -> Measurement {
    let chunk_lines = 20_000;
    let total = chunk_lines * repeats;
    let dir = tempfile::tempdir().expect("temp dir");
    let (api, tcp) = (free_port(), free_port());
    let config = format!(
        "{}\n[sources.input]\ntype = \"socket\"\naddress = \"127.0.0.1:{tcp}\"\n",
        api_and_blackhole(api)
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let chunk = chunk_of_lines(chunk_lines);
    let cpu_before = cpu_seconds(agent.pid());
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", tcp)).expect("connect");
        for _ in 0..repeats {
            stream.write_all(&chunk).expect("send");
        }
    });
    let measurement = finish(&mut agent, total, total * 200, started, cpu_before);
    sender.join().expect("sender thread");
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
    measurement
}

/// `file` source reading one big file from the beginning → blackhole.
fn file_to_blackhole(repeats: usize) -> Measurement {
    let chunk_lines = 20_000;
    let total = chunk_lines * repeats;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("big.log");
    {
        let chunk = chunk_of_lines(chunk_lines);
        let mut file = std::fs::File::create(&input).expect("create input");
        for _ in 0..repeats {
            file.write_all(&chunk).expect("write input");
        }
        file.sync_all().expect("sync input");
    }
    let api = free_port();
    // The agent starts on an empty directory; the file is moved in once it is healthy, so the
    // timing covers reading, not startup.
    let watched = dir.path().join("watched");
    std::fs::create_dir(&watched).expect("dir");
    let config = format!(
        "{}\n[sources.input]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n",
        api_and_blackhole(api),
        watched.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let cpu_before = cpu_seconds(agent.pid());
    let started = Instant::now();
    std::fs::rename(&input, watched.join("big.log")).expect("move input in");
    let measurement = finish(&mut agent, total, total * 200, started, cpu_before);
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
    measurement
}

/// An agent (`file` → `forward`) shipping to an aggregator (`aggregator` → `blackhole`).
fn agent_to_aggregator(repeats: usize) -> Measurement {
    let chunk_lines = 20_000;
    let total = chunk_lines * repeats;
    let dir = tempfile::tempdir().expect("temp dir");
    let (aggregator_dir, agent_dir) = (dir.path().join("aggregator"), dir.path().join("agent"));
    let watched = agent_dir.join("logs");
    std::fs::create_dir_all(&aggregator_dir).expect("dir");
    std::fs::create_dir_all(&watched).expect("dir");
    let (aggregator_api, agent_api) = (free_port(), free_port());
    let aggregator_config = format!(
        "[agent]\nmode = \"aggregator\"\ndata_dir = \"data\"\n[api]\naddress = \"127.0.0.1:{aggregator_api}\"\n\
         [sources.input]\ntype = \"aggregator\"\n[sinks.sink]\ntype = \"blackhole\"\ninputs = [\"input\"]\n"
    );
    let mut aggregator = Agent::start(&aggregator_dir, &aggregator_config, aggregator_api);
    let agent_config = format!(
        "[agent]\nmode = \"agent\"\nnode_id = \"bench\"\ndata_dir = \"data\"\naggregator = \"http://127.0.0.1:{aggregator_api}\"\n\
         [api]\naddress = \"127.0.0.1:{agent_api}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\n\
         [sinks.ship]\ntype = \"forward\"\ninputs = [\"app\"]\n",
        watched.display()
    );
    let mut agent = Agent::start(&agent_dir, &agent_config, agent_api);
    let input = dir.path().join("big.log");
    {
        let chunk = chunk_of_lines(chunk_lines);
        let mut file = std::fs::File::create(&input).expect("create input");
        for _ in 0..repeats {
            file.write_all(&chunk).expect("write input");
        }
    }
    let cpu_before = cpu_seconds(agent.pid()) + cpu_seconds(aggregator.pid());
    let started = Instant::now();
    std::fs::rename(&input, watched.join("big.log")).expect("move input in");
    let mut measurement = finish(&mut aggregator, total, total * 200, started, 0.0);
    measurement.cpu_seconds = cpu_seconds(agent.pid()) + cpu_seconds(aggregator.pid()) - cpu_before;
    measurement.peak_rss_kib = agent.peak_rss_kib();
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
    aggregator.signal("TERM");
    assert!(aggregator.wait_exit(Duration::from_secs(30)).success());
    measurement
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    // Full: 2,000,000 lines (381 MiB) over TCP; 5,368,700 lines of 200 bytes (1 GiB) from a file.
    let (tcp_repeats, file_repeats) = if full { (100, 269) } else { (1, 1) };
    tcp_to_blackhole(tcp_repeats).print("e2e tcp socket -> blackhole");
    file_to_blackhole(file_repeats).print("e2e file -> blackhole");
    let fleet_repeats = if full { 50 } else { 1 };
    agent_to_aggregator(fleet_repeats).print(
        "e2e agent (file -> forward) -> aggregator (-> blackhole), CPU of both, RSS of the agent",
    );
}
