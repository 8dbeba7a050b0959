//! A trace that arrives as one message holding several lines (a syslog message from Python's
//! SysLogHandler, a JSON log line with the trace in its message, an entry POSTed to the
//! aggregator) becomes a trace entry like joined lines do: `error_trace`, `exception`, frames.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Agent, free_port};
use serde_json::Value;

const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"/app/shop/cart.py\", line 12, in total\n    return sum(prices) / len(prices)\nZeroDivisionError: division by zero";

fn entries(path: &std::path::Path, count: usize) -> Vec<Value> {
    common::wait_for_lines(path, count, Duration::from_secs(30))
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

fn assert_traced(entry: &Value) {
    assert_eq!(entry["error_trace"], TRACEBACK, "{entry}");
    assert_eq!(entry["message"], "Traceback (most recent call last):");
    assert_eq!(
        entry["metadata"]["exception"], "ZeroDivisionError",
        "{entry}"
    );
    assert_eq!(
        entry["metadata"]["frames"][0]["file"], "/app/shop/cart.py",
        "{entry}"
    );
}

#[test]
fn a_trace_in_one_message_is_a_trace_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let (api, syslog, socket) = (free_port(), free_port(), free_port());
    let out = dir.path().join("out.json");
    let config = format!(
        r#"
[agent]
mode = "aggregator"
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.syslog]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:{syslog}"
[sources.json]
type = "socket"
address = "127.0.0.1:{socket}"
format = "json"
[sources.agents]
type = "aggregator"
[sinks.out]
type = "file"
inputs = ["syslog", "json", "agents"]
path = "{out}"
"#,
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);

    // RFC 5424 with octet counting: the message keeps its newlines.
    let message = format!("<11>1 2026-11-27T13:05:02.430Z web-1 shop 4242 - - {TRACEBACK}");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    write!(stream, "{} {message}", message.len()).unwrap();
    drop(stream);
    let traced = entries(&out, 1);
    assert_traced(&traced[0]);
    assert_eq!(traced[0]["level"], "error", "the syslog severity stays");

    let line = serde_json::json!({"level": "error", "message": TRACEBACK}).to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", socket)).unwrap();
    writeln!(stream, "{line}").unwrap();
    drop(stream);
    assert_traced(&entries(&out, 2)[1]);

    let posted =
        serde_json::json!({"node_id": "n1", "level": "error", "message": TRACEBACK}).to_string();
    let (status, answer) =
        common::http_request(api, "POST", "/api/v1/events", &[], posted.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_traced(&entries(&out, 3)[2]);

    // An ordinary message with a newline is not a trace.
    let plain = serde_json::json!({"message": "first line\nsecond line"}).to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", socket)).unwrap();
    writeln!(stream, "{plain}").unwrap();
    drop(stream);
    let last = &entries(&out, 4)[3];
    assert_eq!(last["error_trace"], Value::Null, "{last}");
    agent.stop();
}

/// A JSON line with the trace in a field of its own (Python's `exc_info`, pino's `err.stack`,
/// ECS's `error.stack_trace`, OpenTelemetry's `exception.stacktrace`) keeps its message and
/// gets the field's trace.
#[test]
fn a_trace_in_a_field_of_a_json_line_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (api, socket) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    let config = format!(
        "[agent]\ndata_dir = \"data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.json]\ntype = \"socket\"\naddress = \"127.0.0.1:{socket}\"\n[sinks.out]\ntype = \"file\"\ninputs = [\"json\"]\npath = \"{}\"\n",
        out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let node = "Error: stock exhausted\n    at reserve (/srv/app/src/stock.js:41:11)\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)";
    let lines = [
        (
            serde_json::json!({"levelname": "ERROR", "message": "checkout failed", "exc_info": TRACEBACK}),
            TRACEBACK,
            "ZeroDivisionError",
        ),
        (
            serde_json::json!({"level": 50, "msg": "reservation failed", "err": {"type": "Error", "message": "stock exhausted", "stack": node}}),
            node,
            "Error",
        ),
        (
            serde_json::json!({"log.level": "error", "message": "checkout failed", "error.stack_trace": TRACEBACK}),
            TRACEBACK,
            "ZeroDivisionError",
        ),
        (
            serde_json::json!({"severity": "ERROR", "body": "checkout failed", "exception": {"type": "ZeroDivisionError", "stacktrace": TRACEBACK}}),
            TRACEBACK,
            "ZeroDivisionError",
        ),
    ];
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", socket)).unwrap();
    for (line, _, _) in &lines {
        writeln!(stream, "{line}").unwrap();
    }
    drop(stream);
    let got = entries(&out, lines.len());
    for (entry, (sent, trace, exception)) in got.iter().zip(&lines) {
        assert_eq!(entry["error_trace"], *trace, "{sent} -> {entry}");
        assert_eq!(entry["metadata"]["exception"], *exception, "{entry}");
        assert!(
            !entry["message"].as_str().unwrap().contains('\n'),
            "the line's own message stays: {entry}"
        );
    }
    agent.stop();
}
