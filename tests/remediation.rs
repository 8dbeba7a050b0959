//! Remediation end to end through the real binary: a real crash of a real small program in a
//! temporary git repository is tailed, fingerprinted, and sent to a local server speaking the
//! OpenAI or Anthropic wire format, which answers with a fix; the request must carry the right
//! source lines and the JSON schema and none of the secrets planted in the log; the validated
//! fix shows on the incident in the API and in `tailfix incidents`.

mod common;

use std::time::{Duration, Instant};

use common::fake_model::{FakeServer, anthropic_reply, openai_reply};
use common::shop_repo::{self, PLANTED_SECRETS, fix_json};
use common::{Agent, free_port};
use serde_json::Value;

fn config(api: u16, logs: &std::path::Path, repo: &std::path::Path, model: &str) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
node_id = "web-1"
[api]
address = "127.0.0.1:{api}"
token = "test-token"
[sources.app]
type = "file"
include = ["{logs}/*.log"]
[transforms.errors]
type = "filter"
inputs = ["app"]
min_level = "error"
[transforms.incidents]
type = "fingerprint"
inputs = ["errors"]
[sinks.fix]
type = "remediate"
inputs = ["incidents"]
[sinks.fix.repository]
provider = "local"
path = "{repo}"
branch = "main"
{model}
"#,
        logs = logs.display(),
        repo = repo.display()
    )
}

fn incidents(api: u16) -> Vec<Value> {
    let (status, body) = common::http_request(
        api,
        "GET",
        "/api/v1/incidents",
        &[("Authorization", "Bearer test-token")],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_for_state(api: u16, state: &str) -> Value {
    let started = Instant::now();
    loop {
        let list = incidents(api);
        if let Some(incident) = list.iter().find(|incident| incident["state"] == state) {
            return incident.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no incident became {state}: {list:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_no_secrets(raw: &str) {
    for secret in PLANTED_SECRETS {
        assert!(!raw.contains(secret), "`{secret}` left the machine");
    }
    assert!(
        raw.contains("[REDACTED:"),
        "redaction markers are in the prompt"
    );
}

#[test]
fn a_real_crash_reaches_a_fake_openai_server_with_its_source_and_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let repo = shop_repo::create(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let server = FakeServer::start(openai_reply(&fix_json().to_string()));
    let api = free_port();
    let model = format!(
        "[sinks.fix.model]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"qwen2.5-coder:7b\"\napi_key = \"sk-test-key\"\n",
        server.base_url()
    );
    let mut agent = Agent::start(dir.path(), &config(api, &logs, &repo, &model), api);
    assert!(
        !shop_repo::run(&repo, &logs.join("shop.log"), &[]),
        "the program crashes"
    );

    let incident = wait_for_state(api, "proposed");
    assert_eq!(server.request_count(), 1);
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(request.headers["authorization"], "Bearer sk-test-key");
    let body = &request.body;
    assert_eq!(body["model"], "qwen2.5-coder:7b");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["required"][3],
        "edits"
    );
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        prompt.contains("<file path=\"shop/cart.py\""),
        "the failing file is matched to the repository:\n{prompt}"
    );
    assert!(prompt.contains("def discount(total, parts):\n    return total / parts"));
    assert!(prompt.contains("ZeroDivisionError: division by zero"));
    assert!(prompt.contains("<log_data>"));
    assert_no_secrets(&request.raw);

    assert_eq!(incident["count"], 1);
    assert_eq!(incident["nodes"], serde_json::json!(["web-1"]));
    assert_eq!(incident["exception"], "ZeroDivisionError");
    assert!(
        incident["top_frame"]
            .as_str()
            .unwrap()
            .starts_with("discount (")
    );
    assert_eq!(incident["title"], "ZeroDivisionError in discount (cart.py)");
    let fingerprint = incident["fingerprint"].as_str().unwrap();
    let (status, one) = common::http_request(
        api,
        "GET",
        &format!("/api/v1/incidents/{fingerprint}"),
        &[("Authorization", "Bearer test-token")],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&one).unwrap()["state"],
        "proposed"
    );
    let (status, _) = common::http_request(api, "GET", "/api/v1/incidents", &[], b"").unwrap();
    assert_eq!(status, 401, "the incidents need the token");
    assert!(
        agent
            .metrics()
            .contains("tailfix_model_requests_total{provider=\"openai\",status=\"success\"} 1")
    );
    assert!(
        agent
            .metrics()
            .contains("tailfix_model_tokens_total{direction=\"input\"} 1200")
    );

    // The same crash again: counted on the incident, no second request.
    assert!(!shop_repo::run(&repo, &logs.join("shop.log"), &["5", "6"]));
    let started = Instant::now();
    while incidents(api)[0]["count"] != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "second occurrence not counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.request_count(), 1);

    agent.stop();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["incidents", "-c"])
        .arg(dir.path().join("tailfix.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        table.contains(&fingerprint[..12]) && table.contains("proposed"),
        "{table}"
    );
}

#[test]
fn the_same_crash_reaches_a_fake_anthropic_server_as_a_forced_tool_call() {
    let dir = tempfile::tempdir().unwrap();
    let repo = shop_repo::create(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let server = FakeServer::start(anthropic_reply(fix_json()));
    let api = free_port();
    let model = format!(
        "[sinks.fix.model]\nprovider = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-test\"\napi_key = \"sk-ant-test\"\n",
        server.base_url()
    );
    let mut agent = Agent::start(dir.path(), &config(api, &logs, &repo, &model), api);
    assert!(!shop_repo::run(&repo, &logs.join("shop.log"), &[]));
    let incident = wait_for_state(api, "proposed");
    assert_eq!(incident["exception"], "ZeroDivisionError");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "sk-ant-test");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert!(!request.headers.contains_key("authorization"));
    let body = &request.body;
    assert_eq!(
        body["tool_choice"],
        serde_json::json!({"type": "tool", "name": "propose_fix"})
    );
    assert_eq!(body["tools"][0]["input_schema"]["required"][0], "summary");
    assert!(body["max_tokens"].as_u64().unwrap() > 0);
    assert!(body["system"].as_str().unwrap().contains("untrusted data"));
    assert!(
        body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("def discount(total, parts):")
    );
    assert_no_secrets(&request.raw);
    agent.stop();
}

#[test]
fn report_only_mode_writes_a_markdown_report_with_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let repo = shop_repo::create(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let api = free_port();
    let mut agent = Agent::start(
        dir.path(),
        &config(
            api,
            &logs,
            &repo,
            "[sinks.fix.model]\nprovider = \"none\"\n",
        ),
        api,
    );
    assert!(!shop_repo::run(&repo, &logs.join("shop.log"), &[]));
    let started = Instant::now();
    let incident = loop {
        let list = incidents(api);
        if let Some(incident) = list.iter().find(|i| {
            i["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("report-only"))
        }) {
            break incident.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{list:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let report_path = dir.path().join(format!(
        "data/incidents/{}.md",
        incident["fingerprint"].as_str().unwrap()
    ));
    let report = std::fs::read_to_string(&report_path).unwrap();
    assert!(report.starts_with("# ZeroDivisionError in discount (cart.py)"));
    assert!(report.contains("## Prompt that would be sent"));
    assert!(report.contains("def discount(total, parts):"));
    assert!(report.contains("ZeroDivisionError: division by zero"));
    for secret in PLANTED_SECRETS {
        assert!(!report.contains(secret), "`{secret}` is in the report");
    }
    // The bug recurs: the report's occurrences follow (the analysis is not repeated).
    assert!(report.contains("- occurrences: 1\n"), "{report}");
    assert!(!shop_repo::run(&repo, &logs.join("shop.log"), &[]));
    let started = Instant::now();
    while !std::fs::read_to_string(&report_path)
        .unwrap()
        .contains("- occurrences: 2\n")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            std::fs::read_to_string(&report_path).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.stop();
}
