//! The `kubernetes_logs` source on a pod log tree laid out as the kubelet writes it, with real
//! CRI records: partial records joined per stream, stdout and stderr kept apart, a Java stack
//! trace split over partial records assembled into one entry, and the pod's metadata on every
//! entry.

mod common;

use std::time::Duration;

use common::{Agent, free_port, wait_for_lines};
use serde_json::Value;

#[test]
fn cri_records_become_entries_per_stream_with_pod_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let container = pods.join("shop_checkout-7d9f_0a1b2c3d-uid/checkout");
    std::fs::create_dir_all(&container).unwrap();
    let out = dir.path().join("out.json");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.pods]
type = "kubernetes_logs"
pods_root = "{pods}"
[sinks.out]
type = "file"
inputs = ["pods"]
path = "{out}"
"#,
        pods = pods.display(),
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let records = [
        "2026-01-01T00:00:00.000000001Z stdout F INFO starting checkout",
        "2026-01-01T00:00:01.000000000Z stderr P Exception in thread \"main\" java.lang.IllegalStateException: cart",
        "2026-01-01T00:00:01.000000001Z stdout F INFO request 1 ok",
        "2026-01-01T00:00:01.000000002Z stderr F  is empty",
        "2026-01-01T00:00:01.000000003Z stderr F \tat shop.Cart.checkout(Cart.java:42)",
        "2026-01-01T00:00:01.000000004Z stdout P a long stdout line split in",
        "2026-01-01T00:00:01.000000005Z stderr F \tat shop.Api.handle(Api.java:7)",
        "2026-01-01T00:00:01.000000006Z stdout F  two records",
        "2026-01-01T00:00:02.000000000Z stderr F INFO stderr line after the trace",
    ];
    std::fs::write(container.join("0.log"), records.join("\n") + "\n").unwrap();
    let lines = wait_for_lines(&out, 5, Duration::from_secs(20));
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["metadata"]["stream"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 5, "{summary:#?}");
    let stdout: Vec<&str> = summary
        .iter()
        .filter(|(s, _)| *s == "stdout")
        .map(|(_, m)| *m)
        .collect();
    let stderr: Vec<&str> = summary
        .iter()
        .filter(|(s, _)| *s == "stderr")
        .map(|(_, m)| *m)
        .collect();
    assert_eq!(
        stdout,
        vec![
            "INFO starting checkout",
            "INFO request 1 ok",
            "a long stdout line split in two records"
        ]
    );
    assert_eq!(
        stderr,
        vec![
            "Exception in thread \"main\" java.lang.IllegalStateException: cart is empty",
            "INFO stderr line after the trace"
        ]
    );
    let trace = entries
        .iter()
        .find(|e| !e["error_trace"].is_null())
        .unwrap();
    assert_eq!(
        trace["error_trace"],
        "Exception in thread \"main\" java.lang.IllegalStateException: cart is empty\n\tat shop.Cart.checkout(Cart.java:42)\n\tat shop.Api.handle(Api.java:7)"
    );
    assert_eq!(trace["timestamp"], "2026-01-01T00:00:01.000Z");
    assert_eq!(
        trace["metadata"]["exception"],
        "java.lang.IllegalStateException"
    );
    assert_eq!(trace["level"], "error");
    for entry in &entries {
        let metadata = &entry["metadata"];
        assert_eq!(
            (
                metadata["namespace"].as_str(),
                metadata["pod"].as_str(),
                metadata["pod_uid"].as_str(),
                metadata["container"].as_str()
            ),
            (
                Some("shop"),
                Some("checkout-7d9f"),
                Some("0a1b2c3d-uid"),
                Some("checkout")
            )
        );
    }
    assert_eq!(entries[0]["timestamp"], "2026-01-01T00:00:00.000000001Z");
    agent.stop();
}

#[test]
fn docker_json_file_partial_records_and_traces_are_joined_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("containers");
    std::fs::create_dir_all(&logs).unwrap();
    let out = dir.path().join("out.json");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.docker]
type = "file"
include = ["{logs}/*-json.log"]
format = "docker"
[sinks.out]
type = "file"
inputs = ["docker"]
path = "{out}"
"#,
        logs = logs.display(),
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    let record = |stream: &str, log: &str, second: u32| {
        serde_json::json!({"log": log, "stream": stream, "time": format!("2026-01-01T00:00:{second:02}.000000000Z")}).to_string()
    };
    // Docker splits lines over 16 KiB into records without a trailing newline.
    let records = [
        record("stdout", "INFO ready\n", 0),
        record("stderr", "Traceback (most recent call last):\n", 1),
        record("stdout", "INFO a long line spl", 1),
        record(
            "stderr",
            "  File \"/app/shop/cart.py\", line 5, in discount\n",
            1,
        ),
        record("stdout", "it in two records\n", 1),
        record("stderr", "    return total / parts\n", 1),
        record("stderr", "ZeroDivisionError: division by zero\n", 1),
        record("stdout", "INFO after\n", 2),
    ];
    std::fs::write(logs.join("abc123-json.log"), records.join("\n") + "\n").unwrap();
    let lines = wait_for_lines(&out, 4, Duration::from_secs(20));
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["metadata"]["stream"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 4, "{messages:#?}");
    assert!(messages.contains(&("stdout", "INFO a long line split in two records")));
    let trace = entries
        .iter()
        .find(|e| !e["error_trace"].is_null())
        .unwrap();
    assert_eq!(trace["metadata"]["stream"], "stderr");
    assert_eq!(trace["metadata"]["exception"], "ZeroDivisionError");
    assert_eq!(trace["timestamp"], "2026-01-01T00:00:01.000Z");
    agent.stop();
}

#[test]
fn pod_labels_come_from_a_fake_api_server_once_per_pod() {
    use common::fake_model::{FakeServer, Recorded, Reply};

    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let container = pods.join("shop_checkout-7d9f_0a1b2c3d-uid/checkout");
    std::fs::create_dir_all(&container).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "service-account-token\n").unwrap();
    let api_server = FakeServer::start(Reply::json(
        404,
        serde_json::json!({"kind": "Status", "code": 404}),
    ));
    api_server.set_responder(|request: &Recorded| {
        (request.path == "/api/v1/namespaces/shop/pods/checkout-7d9f").then(|| {
            Reply::json(
                200,
                serde_json::json!({
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": "checkout-7d9f",
                        "namespace": "shop",
                        "uid": "0a1b2c3d-uid",
                        "labels": {"app": "checkout", "pod-template-hash": "7d9f"}
                    },
                    "spec": {"nodeName": "node-1", "containers": [{"name": "checkout", "image": "acme/checkout:1.4"}]},
                    "status": {"phase": "Running"}
                }),
            )
        })
    });
    let out = dir.path().join("out.json");
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[sources.pods]
type = "kubernetes_logs"
pods_root = "{pods}"
multiline = "none"
enrich = true
api_server = "{server}"
token_file = "{token}"
ca_file = "{missing}"
[sinks.out]
type = "file"
inputs = ["pods"]
path = "{out}"
"#,
        pods = pods.display(),
        server = api_server.base_url(),
        token = token.display(),
        missing = dir.path().join("no-ca.crt").display(),
        out = out.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    std::fs::write(
        container.join("0.log"),
        "2026-01-01T00:00:00.000000000Z stdout F one\n2026-01-01T00:00:01.000000000Z stdout F two\n",
    )
    .unwrap();
    let lines = wait_for_lines(&out, 2, Duration::from_secs(20));
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            entry["metadata"]["labels"],
            serde_json::json!({"app": "checkout", "pod-template-hash": "7d9f"})
        );
    }
    assert_eq!(api_server.request_count(), 1, "cached per pod");
    assert_eq!(
        api_server.requests()[0].headers["authorization"],
        "Bearer service-account-token"
    );
    agent.stop();
}
