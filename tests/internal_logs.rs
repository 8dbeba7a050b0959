//! The `internal_logs` source: the agent's own warnings become entries that can be shipped,
//! with their level and fields, and shipping them does not feed on itself.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Agent, free_port, read_lines, wait_for_lines};
use serde_json::Value;

#[test]
fn the_agents_own_warnings_are_entries_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (api, dead, port) = (free_port(), free_port(), free_port());
    let out = dir.path().join("self.json");
    let config = format!(
        r#"
[agent]
data_dir = "data"
log_level = "info"
shutdown_timeout = "2s"
[api]
address = "127.0.0.1:{api}"
[sources.self]
type = "internal_logs"
min_level = "warn"
[sources.app]
type = "socket"
address = "127.0.0.1:{port}"
[sinks.ship]
type = "forward"
inputs = ["app"]
uri = "http://127.0.0.1:{dead}"
[sinks.own]
type = "file"
inputs = ["self"]
path = "{out}"
"#,
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let mut stream = common::connect_when_listening(port, Duration::from_secs(10));
    writeln!(stream, "a line for a dead aggregator").unwrap();
    drop(stream);
    let lines = wait_for_lines(&out, 1, Duration::from_secs(20));
    let entries: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    let warning = entries
        .iter()
        .find(|e| e["metadata"]["component_id"] == "ship")
        .unwrap_or_else(|| panic!("no warning about the sink: {entries:?}"));
    assert_eq!(warning["level"], "warn");
    assert_eq!(warning["source"], "self");
    assert!(
        warning["message"].as_str().unwrap().contains("unreachable"),
        "{warning}"
    );
    assert!(
        warning["metadata"]["target"]
            .as_str()
            .unwrap()
            .starts_with("tailfix::")
    );
    assert!(
        entries
            .iter()
            .all(|e| e["level"] == "warn" || e["level"] == "error")
    );
    // Writing its own records makes no more records: a few seconds later, still a handful.
    std::thread::sleep(Duration::from_secs(2));
    assert!(read_lines(&out).len() < 20, "{:?}", read_lines(&out));
    agent.stop();
}
