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

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let chunk_lines = 20_000;
    let repeats = if full { 100 } else { 1 };
    let total = chunk_lines * repeats;

    let dir = tempfile::tempdir().expect("temp dir");
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
[sinks.sink]
type = "blackhole"
inputs = ["tcp_in"]
"#
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
    let consumed = agent.wait_metric(
        "tailfix_component_sent_events_total",
        &[("component_id", "sink")],
        Duration::from_secs(600),
        |value| value >= total as f64,
    );
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(agent.pid()) - cpu_before;
    let peak_kib = agent.peak_rss_kib();
    sender.join().expect("sender thread");
    assert_eq!(consumed, total as f64, "every line reached the sink");

    let mib = (total * 200) as f64 / (1024.0 * 1024.0);
    println!("e2e tcp -> blackhole ({total} lines of 200 bytes, {mib:.0} MiB)");
    println!("  lines/s        {:>12.0}", total as f64 / elapsed);
    println!("  MiB/s          {:>12.1}", mib / elapsed);
    println!(
        "  CPU seconds    {:>12.2}  ({:.2} per million lines)",
        cpu,
        cpu / (total as f64 / 1e6)
    );
    println!("  peak RSS       {:>12.1} MiB", peak_kib as f64 / 1024.0);

    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
}
