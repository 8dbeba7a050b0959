//! The fleet with real processes on 127.0.0.1: one aggregator and three agents tailing their own
//! files. One crash on all three makes one incident with three nodes and one model request;
//! nodes go active → stale → lost; an aggregator down for a while loses nothing; tokens and
//! body limits are enforced.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::fake_model::{FakeServer, openai_reply};
use common::shop_repo::fix_json;
use common::{Agent, free_port, http_request, read_lines};
use serde_json::Value;

const TOKEN: &str = "fleet-secret";

fn aggregator_config(api: u16, out: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[agent]
mode = "aggregator"
node_id = "aggregator"
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
token = "{TOKEN}"
[nodes]
stale_after = "1s"
lost_after = "3s"
[sources.agents]
type = "aggregator"
[sinks.all]
type = "file"
inputs = ["agents"]
path = "{out}"
encoding = "json"
{extra}
"#,
        out = out.display()
    )
}

fn agent_config(api: u16, aggregator: u16, node: &str, logs: &std::path::Path) -> String {
    format!(
        r#"
[agent]
mode = "agent"
node_id = "{node}"
data_dir = "data"
aggregator = "http://127.0.0.1:{aggregator}"
aggregator_token = "{TOKEN}"
heartbeat_interval = "200ms"
[api]
address = "127.0.0.1:{api}"
[sources.app]
type = "file"
include = ["{logs}/*.log"]
[sinks.ship]
type = "forward"
inputs = ["app"]
"#,
        logs = logs.display()
    )
}

fn get(api: u16, path: &str) -> Value {
    let (status, body) = http_request(
        api,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_crash_on_three_nodes_is_one_incident_and_nodes_age() {
    let root = tempfile::tempdir().unwrap();
    let model = FakeServer::start(openai_reply(&fix_json().to_string()));
    let aggregator_dir = root.path().join("aggregator");
    std::fs::create_dir(&aggregator_dir).unwrap();
    let aggregator_api = free_port();
    // The crashing program's repository: a model is asked only about code it is shown.
    let repo = root.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::copy(
        format!(
            "{}/tests/corpus/traces/programs/crash_divide.py",
            env!("CARGO_MANIFEST_DIR")
        ),
        repo.join("crash_divide.py"),
    )
    .unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "v1",
        ],
    ] {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    let remediation = format!(
        r#"
[model]
provider = "openai"
base_url = "{}/v1"
model = "test"
[transforms.incidents]
type = "fingerprint"
inputs = ["agents"]
[sinks.fix]
type = "remediate"
inputs = ["incidents"]
[sinks.fix.repository]
provider = "local"
path = "{}"
branch = "main"
# The fake model's answer is for another repository: one request, no repair rounds.
[sinks.fix.verify]
repair_rounds = 0
"#,
        model.base_url(),
        repo.display()
    );
    let mut aggregator = Agent::start(
        &aggregator_dir,
        &aggregator_config(
            aggregator_api,
            &aggregator_dir.join("all.json"),
            &remediation,
        ),
        aggregator_api,
    );

    let trace = std::fs::read_to_string(format!(
        "{}/tests/corpus/traces/python_divide.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut agents = Vec::new();
    for n in 1..=3 {
        let dir = root.path().join(format!("agent-{n}"));
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let api = free_port();
        let agent = Agent::start(
            &dir,
            &agent_config(api, aggregator_api, &format!("agent-{n}"), &logs),
            api,
        );
        std::fs::write(logs.join("app.log"), &trace).unwrap();
        agents.push(agent);
    }

    wait_for("three active nodes", Duration::from_secs(20), || {
        let nodes = get(aggregator_api, "/api/v1/nodes");
        nodes
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == "active")
            .count()
            == 3
    });
    wait_for(
        "the incident seen on three nodes",
        Duration::from_secs(30),
        || {
            get(aggregator_api, "/api/v1/incidents")
                .as_array()
                .unwrap()
                .iter()
                .any(|i| {
                    i["exception"] == "ZeroDivisionError"
                        && i["nodes"].as_array().unwrap().len() == 3
                })
        },
    );
    let incidents = get(aggregator_api, "/api/v1/incidents");
    let crashes: Vec<&Value> = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["exception"] == "ZeroDivisionError")
        .collect();
    assert_eq!(crashes.len(), 1, "one bug, one incident: {incidents:#}");
    assert_eq!(
        crashes[0]["nodes"],
        serde_json::json!(["agent-1", "agent-2", "agent-3"])
    );
    // The incident's analysis (reading the repository, asking the model, checking the answer)
    // settles; then exactly one request was made for the three nodes' crashes.
    wait_for("the incident analysed", Duration::from_secs(30), || {
        get(aggregator_api, "/api/v1/incidents")
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["exception"] == "ZeroDivisionError" && i["state"] == "rejected")
    });
    assert_eq!(
        model
            .requests()
            .iter()
            .filter(|r| r.raw.contains("ZeroDivisionError"))
            .count(),
        1,
        "one model request for the fleet"
    );
    let nodes = get(aggregator_api, "/api/v1/nodes");
    let node = &nodes[0];
    assert_eq!(node["id"], "agent-1");
    assert!(
        node["version"].as_str().is_some()
            && node["registered_at"].as_str().is_some()
            && node["labels"].is_object()
    );

    // An agent killed without warning goes stale, then lost.
    agents[2].signal("KILL");
    agents[2].wait_exit(Duration::from_secs(10));
    let status_of_3 = || {
        get(aggregator_api, "/api/v1/nodes")
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "agent-3")
            .unwrap()["status"]
            .clone()
    };
    wait_for("agent-3 stale", Duration::from_secs(10), || {
        status_of_3() == "stale"
    });
    wait_for("agent-3 lost", Duration::from_secs(10), || {
        status_of_3() == "lost"
    });
    assert!(
        aggregator
            .metrics()
            .contains("tailfix_nodes{status=\"active\"} 2")
    );
    for agent in agents.iter_mut().take(2) {
        agent.stop();
    }
    aggregator.stop();
}

#[test]
fn the_aggregator_down_for_a_while_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let aggregator_dir = root.path().join("aggregator");
    std::fs::create_dir(&aggregator_dir).unwrap();
    let out = aggregator_dir.join("all.json");
    let aggregator_api = free_port();
    let config = aggregator_config(aggregator_api, &out, "");
    let mut aggregator = Agent::start(&aggregator_dir, &config, aggregator_api);
    let agent_dir = root.path().join("agent");
    let logs = agent_dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let agent_api = free_port();
    let mut agent = Agent::start(
        &agent_dir,
        &agent_config(agent_api, aggregator_api, "agent-1", &logs),
        agent_api,
    );

    let total = 100_000u64;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("app.log"))
        .unwrap();
    let mut write_range = |range: std::ops::Range<u64>| {
        let mut chunk = String::new();
        for i in range {
            chunk.push_str(&format!("line {i:08} payload of an ordinary log line\n"));
        }
        file.write_all(chunk.as_bytes()).unwrap();
    };
    write_range(0..20_000);
    std::thread::sleep(Duration::from_millis(500));
    aggregator.stop();
    // 10 s down while the agent keeps reading its file.
    for step in 0..10 {
        write_range(20_000 + step * 8_000..20_000 + (step + 1) * 8_000);
        std::thread::sleep(Duration::from_secs(1));
    }
    // The agent's /health says which sink is failing, and why: the aggregator unreachable, or
    // (when the sink's backoff has not yet reached a retry since the stop) the 503 the busy
    // aggregator answered before it stopped.
    let (status, body) = common::http_get(agent_api, "/health").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"ship\"")
            && body.contains("retrying")
            && (body.contains("unreachable") || body.contains("answered 503")),
        "{body}"
    );
    let mut aggregator = Agent::start(&aggregator_dir, &config, aggregator_api);
    let started = Instant::now();
    let lines = loop {
        let lines = read_lines(&out);
        if lines.len() as u64 >= total || started.elapsed() > Duration::from_secs(60) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut seen = std::collections::HashMap::new();
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap();
        let message = entry["message"].as_str().unwrap();
        let number: u64 = message[5..13].parse().unwrap();
        *seen.entry(number).or_insert(0u32) += 1;
        assert_eq!(entry["node_id"], "agent-1");
    }
    let missing = (0..total).filter(|n| !seen.contains_key(n)).count();
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    let peak_kib = agent.peak_rss_kib();
    eprintln!(
        "aggregator outage: {} lines, {missing} missing, {duplicates} duplicates, agent peak RSS {peak_kib} KiB",
        lines.len()
    );
    assert_eq!(missing, 0, "every line arrives");
    assert_eq!(
        duplicates, 0,
        "exactly once: the agent sent each batch until it was acknowledged"
    );
    assert!(
        peak_kib < 100 * 1024,
        "the agent's memory stays within its buffers: {peak_kib} KiB"
    );
    let (status, body) = common::http_get(agent_api, "/health").unwrap();
    assert_eq!(status, 200, "recovered: {body}");
    common::report(&common::Row {
        fault: "the aggregator down for 10 s under an agent tailing 100,000 lines",
        tries: 1,
        lost: missing as u64,
        duplicates: duplicates as u64,
        peak_rss_kib: Some(peak_kib),
    });
    agent.stop();
    aggregator.stop();
}

#[test]
fn tokens_and_body_limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.json");
    let api = free_port();
    let mut aggregator = Agent::start(
        dir.path(),
        &aggregator_config(api, &out, "[api.limits]\n").replace("[api.limits]\n", ""),
        api,
    );
    let line = br#"{"timestamp":"2026-01-01T00:00:00.000Z","node_id":"n1","source":"app","level":"error","message":"boom","error_trace":null,"metadata":{}}"#;
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let (status, _) = http_request(api, "POST", "/api/v1/events", &headers, line).unwrap();
        assert_eq!(status, 401);
    }
    let (status, _) = http_request(
        api,
        "POST",
        "/api/v1/nodes/register",
        &[],
        br#"{"id":"n1"}"#,
    )
    .unwrap();
    assert_eq!(status, 401, "writes need the token");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        read_lines(&out).is_empty(),
        "nothing ingested without the token"
    );

    let auth = format!("Bearer {TOKEN}");
    let oversize = vec![b'x'; 11 * 1024 * 1024];
    let (status, _) = http_request(
        api,
        "POST",
        "/api/v1/events",
        &[("Authorization", &auth)],
        &oversize,
    )
    .unwrap();
    assert_eq!(status, 413);

    // A partly bad batch: the good line is accepted, the bad one reported, 400.
    let mut body = line.to_vec();
    body.extend_from_slice(b"\nnot an entry\n");
    let (status, answer) = http_request(
        api,
        "POST",
        "/api/v1/events",
        &[("Authorization", &auth)],
        &body,
    )
    .unwrap();
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["rejected"][0]["line"], 2);
    assert_eq!(
        common::wait_for_lines(&out, 1, Duration::from_secs(10)).len(),
        1
    );
    aggregator.stop();
}

#[test]
fn an_open_aggregator_on_a_public_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[agent]\nmode = \"aggregator\"\ndata_dir = \"data\"\n[api]\naddress = \"0.0.0.0:0\"\n[sources.agents]\ntype = \"aggregator\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"agents\"]\n";
    std::fs::write(dir.path().join("open.toml"), config).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["run", "-c", "open.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("without [api].token"));
}
