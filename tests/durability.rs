//! Disk buffers with real processes: a million syslog messages over TCP into a forward sink
//! whose aggregator is down, `kill -9`, a restart, the aggregator up: every message arrives,
//! once. And a buffer damaged by hand: the agent starts, delivers what is whole and counts
//! what it skipped.

mod common;

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, free_port, read_lines};

const TOKEN: &str = "durability-secret";

fn aggregator_config(api: u16, out: &Path) -> String {
    format!(
        r#"
[agent]
mode = "aggregator"
node_id = "aggregator"
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
token = "{TOKEN}"
max_body_bytes = 67108864
[sources.agents]
type = "aggregator"
[sinks.all]
type = "file"
inputs = ["agents"]
path = "{out}"
encoding = "text"
"#,
        out = out.display()
    )
}

fn agent_config(api: u16, syslog: u16, aggregator: u16) -> String {
    format!(
        r#"
[agent]
node_id = "edge-1"
data_dir = "data"
shutdown_timeout = "2s"
[api]
address = "127.0.0.1:{api}"
[sources.in]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{syslog}"
[sinks.ship]
type = "forward"
inputs = ["in"]
uri = "http://127.0.0.1:{aggregator}"
token = "{TOKEN}"
timeout = "5s"
buffer = {{ type = "disk", max_size = "2GiB" }}
"#
    )
}

/// Sends `message 0` … `message {count - 1}` as RFC 5424 lines over one TCP connection.
fn send_syslog(port: u16, first: usize, count: usize) {
    let stream = common::connect_when_listening(port, Duration::from_secs(10));
    let mut writer = BufWriter::with_capacity(1 << 20, stream);
    for i in first..first + count {
        writeln!(
            writer,
            "<13>1 2026-12-08T10:00:00.000Z web-1 shop 42 - - message {i}"
        )
        .expect("send");
    }
    writer.flush().expect("flush");
}

/// Waits until `path` holds `count` lines, or nothing was added for `idle`.
fn wait_for_count(path: &Path, count: usize, idle: Duration) -> Vec<String> {
    let mut last = (0, Instant::now());
    loop {
        let lines = read_lines(path);
        if lines.len() >= count {
            return lines;
        }
        if lines.len() != last.0 {
            last = (lines.len(), Instant::now());
        } else if last.1.elapsed() > idle {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn message_numbers(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect()
}

fn buffer_written(agent: &Agent) -> f64 {
    agent.metric(
        "tailfix_buffer_written_events_total",
        &[("component_id", "ship")],
    )
}

#[test]
fn a_million_messages_behind_a_dead_backend_survive_kill_9_each_once() {
    let count: usize = std::env::var("TAILFIX_DURABILITY_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().unwrap();
    let (agent_dir, aggregator_dir) = (root.path().join("agent"), root.path().join("aggregator"));
    std::fs::create_dir(&agent_dir).unwrap();
    std::fs::create_dir(&aggregator_dir).unwrap();
    let (api, syslog, aggregator_api) = (free_port(), free_port(), free_port());
    let config = agent_config(api, syslog, aggregator_api);

    let mut agent = Agent::start(&agent_dir, &config, api);
    send_syslog(syslog, 0, count);
    let written = agent.wait_metric(
        "tailfix_buffer_written_events_total",
        &[("component_id", "ship")],
        Duration::from_secs(300),
        |n| n >= count as f64,
    );
    assert_eq!(written, count as f64, "the buffer wrote every message");
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10));

    let out = aggregator_dir.join("all.log");
    let mut aggregator = Agent::start(
        &aggregator_dir,
        &aggregator_config(aggregator_api, &out),
        aggregator_api,
    );
    let mut agent = Agent::start(&agent_dir, &config, api);
    let lines = wait_for_count(&out, count, Duration::from_secs(60));
    let replayed = agent.metric(
        "tailfix_buffer_replayed_events_total",
        &[("component_id", "ship")],
    );
    let corrupt = agent.metric(
        "tailfix_buffer_corrupt_records_total",
        &[("component_id", "ship")],
    );
    agent.stop();
    aggregator.stop();

    let numbers = message_numbers(&lines);
    let distinct: HashSet<usize> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), count, "every message arrived");
    assert_eq!(numbers.len(), count, "and each once");
    assert!(distinct.iter().all(|n| *n < count));
    assert_eq!(replayed, count as f64);
    assert_eq!(corrupt, 0.0);
}

#[test]
fn a_buffer_damaged_by_hand_starts_delivers_the_rest_and_counts_the_skipped() {
    let count = 20_000;
    let root = tempfile::tempdir().unwrap();
    let (agent_dir, aggregator_dir) = (root.path().join("agent"), root.path().join("aggregator"));
    std::fs::create_dir(&agent_dir).unwrap();
    std::fs::create_dir(&aggregator_dir).unwrap();
    let (api, syslog, aggregator_api) = (free_port(), free_port(), free_port());
    // Small segments, so that the damage is in one and the truncation in another.
    let config = agent_config(api, syslog, aggregator_api).replace("2GiB", "4MiB");

    let mut agent = Agent::start(&agent_dir, &config, api);
    send_syslog(syslog, 0, count);
    let written = agent.wait_metric(
        "tailfix_buffer_written_events_total",
        &[("component_id", "ship")],
        Duration::from_secs(60),
        |n| n >= count as f64,
    );
    assert_eq!(written, count as f64);
    assert!(buffer_written(&agent) >= count as f64);
    agent.stop();

    let buffer = agent_dir.join("data/buffers/ship");
    let mut segments: Vec<_> = std::fs::read_dir(&buffer)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    // Bytes overwritten in the middle of the first segment; the last one cut short.
    let first = &segments[0];
    let mut bytes = std::fs::read(first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 64].fill(0x5A);
    std::fs::write(first, &bytes).unwrap();
    let last = segments.last().unwrap();
    let length = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(length - 100)
        .unwrap();

    let out = aggregator_dir.join("all.log");
    let mut aggregator = Agent::start(
        &aggregator_dir,
        &aggregator_config(aggregator_api, &out),
        aggregator_api,
    );
    let mut agent = Agent::start(&agent_dir, &config, api);
    let corrupt = agent.wait_metric(
        "tailfix_buffer_corrupt_records_total",
        &[("component_id", "ship")],
        Duration::from_secs(30),
        |n| n >= 2.0,
    );
    let lines = wait_for_count(&out, count, Duration::from_secs(5));
    let (status, health) = common::http_get(api, "/health").unwrap();
    agent.stop();
    aggregator.stop();

    assert_eq!(status, 200, "{health}");
    let numbers = message_numbers(&lines);
    let distinct: HashSet<usize> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "no duplicates");
    assert!(
        corrupt >= 2.0,
        "the overwritten and the torn record: {corrupt}"
    );
    // A record is a batch of up to 512 messages: what was lost is a few batches, no more.
    let lost = count - distinct.len();
    assert!(lost > 0 && lost <= 4 * 512, "lost {lost} of {count}");
}
