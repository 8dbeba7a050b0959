//! The GitHub and GitLab clients against local servers that speak their REST APIs: the exact
//! call sequence for a two-file fix (one commit, a draft pull request with the marker and the
//! label), nothing new for a second run of the same bug, the fallback when drafts are not
//! supported, secondary rate limits waited out, and GitLab's single commits call.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::fake_model::{FakeServer, Recorded, Reply};
use serde_json::{Value, json};
use tailfix::metrics::MetricsCollector;
use tailfix::remediation::engine::Proposer;
use tailfix::remediation::incident::{Incident, IncidentState};
use tailfix::remediation::repository::RepositoryClient;
use tailfix::remediation::repository::github::GitHubRepository;
use tailfix::remediation::repository::gitlab::GitLabRepository;
use tailfix::remediation::repository::service::RemoteRepositoryService;
use tailfix::remediation::validate::{Guard, Validator};
use tailfix::remediation::{Change, Operation, Solution};
use tailfix::time::Timestamp;

const FINGERPRINT: &str = "4f2a9c1e7b3d5a6c8e0f1a2b3c4d5e6f";
const CART: &str = "def discount(total, parts):\n    return total / parts\n";
const ORDERS: &str = "def load(rows, key):\n    return rows[key]\n";

fn incident() -> Incident {
    Incident {
        fingerprint: FINGERPRINT.to_string(),
        title: "ZeroDivisionError in discount (cart.py)".to_string(),
        state: IncidentState::Analysing,
        count: 17,
        first_seen: Timestamp::from_civil(2026, 11, 27, 10, 0, 0, 0).unwrap(),
        last_seen: Timestamp::from_civil(2026, 11, 27, 11, 0, 0, 0).unwrap(),
        nodes: BTreeSet::from(["web-1".to_string(), "web-2".to_string()]),
        exception: Some("ZeroDivisionError".to_string()),
        top_frame: Some("discount (shop/cart.py:2)".to_string()),
        sample: Value::Null,
        solution: None,
        reason: None,
        change_request: None,
        attempts: 1,
        last_action_at: None,
        next_attempt_at: None,
        history: Vec::new(),
    }
}

fn solution() -> Solution {
    let change = |path: &str, content: &str| Change {
        path: path.to_string(),
        operation: Operation::Update,
        content: content.to_string(),
        line_start: 2,
        line_end: 2,
        metadata: Default::default(),
    };
    Solution {
        id: "solution-1".to_string(),
        description: "Guard the divisor and the missing key.\n\nRoot cause: parts can be 0."
            .to_string(),
        changes: vec![
            change(
                "shop/cart.py",
                "def discount(total, parts):\n    return total / parts if parts else 0\n",
            ),
            change(
                "shop/orders.py",
                "def load(rows, key):\n    return rows.get(key)\n",
            ),
        ],
        confidence: 0.8,
        metadata: Default::default(),
    }
}

fn service(
    client: Arc<dyn RepositoryClient>,
    metrics: &MetricsCollector,
) -> RemoteRepositoryService {
    RemoteRepositoryService::new(
        client,
        Validator::new(Guard::default()).unwrap(),
        metrics.clone(),
        true,
    )
}

/// State of the fake GitHub between calls.
#[derive(Default)]
struct GitHubState {
    pull_open: bool,
    refuse_drafts: bool,
    rate_limit_blobs: u32,
    blobs: u32,
}

fn fake_github(state: Arc<Mutex<GitHubState>>) -> FakeServer {
    let server = FakeServer::start(Reply::json(404, json!({"message": "Not Found"})));
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    server.set_responder(move |request: &Recorded| {
        let mut state = state.lock().unwrap();
        let path = request.path.as_str();
        let pull = json!({"number": 42, "html_url": "https://github.test/acme/shop/pull/42", "body": format!("…\n<!-- tailfix:fingerprint={FINGERPRINT} -->\n")});
        Some(match (request.method.as_str(), path) {
            ("GET", "/repos/acme/shop/contents/shop/cart.py?ref=main") => Reply::json(200, json!({"type": "file", "encoding": "base64", "content": encode(CART)})),
            ("GET", "/repos/acme/shop/contents/shop/orders.py?ref=main") => Reply::json(200, json!({"type": "file", "encoding": "base64", "content": encode(ORDERS)})),
            ("GET", p) if p.starts_with("/repos/acme/shop/pulls?state=open&head=acme:tailfix/") => {
                Reply::json(200, if state.pull_open { json!([pull]) } else { json!([]) })
            }
            ("GET", "/repos/acme/shop/pulls?state=open&per_page=100") => Reply::json(200, json!([])),
            ("GET", "/repos/acme/shop/git/ref/heads/main") => Reply::json(200, json!({"ref": "refs/heads/main", "object": {"sha": "base000", "type": "commit"}})),
            ("GET", "/repos/acme/shop/git/commits/base000") => Reply::json(200, json!({"sha": "base000", "tree": {"sha": "tree000"}})),
            ("POST", "/repos/acme/shop/git/blobs") => {
                if state.rate_limit_blobs > 0 {
                    state.rate_limit_blobs -= 1;
                    Reply::json(403, json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}))
                        .with_header("retry-after", "1")
                } else {
                    state.blobs += 1;
                    Reply::json(201, json!({"sha": format!("blob{}", state.blobs)}))
                }
            }
            ("POST", "/repos/acme/shop/git/trees") => Reply::json(201, json!({"sha": "tree111"})),
            ("POST", "/repos/acme/shop/git/commits") => Reply::json(201, json!({"sha": "commit111"})),
            ("POST", "/repos/acme/shop/git/refs") => Reply::json(201, json!({"ref": request.body["ref"], "object": {"sha": "commit111"}})),
            ("POST", "/repos/acme/shop/pulls") => {
                if state.refuse_drafts && request.body["draft"] == true {
                    Reply::json(422, json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": "Draft pull requests are not supported in this repository."}]}))
                } else {
                    state.pull_open = true;
                    Reply::json(201, pull)
                }
            }
            ("POST", "/repos/acme/shop/issues/42/labels") => Reply::json(200, json!([{"name": "tailfix"}])),
            _ => return None,
        })
    });
    server
}

fn github(server: &FakeServer) -> Arc<dyn RepositoryClient> {
    Arc::new(
        GitHubRepository::new(
            &server.base_url(),
            "ghp_test_token",
            "acme".into(),
            "shop".into(),
            "main".into(),
        )
        .unwrap(),
    )
}

fn posts(server: &FakeServer) -> Vec<(String, Value)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            (
                r.path.trim_start_matches("/repos/acme/shop/").to_string(),
                r.body,
            )
        })
        .collect()
}

#[tokio::test]
async fn github_one_commit_a_draft_pull_request_and_nothing_twice() {
    let state = Arc::new(Mutex::new(GitHubState::default()));
    let server = fake_github(state.clone());
    let metrics = MetricsCollector::new();
    let service = service(github(&server), &metrics);
    let reference = service
        .propose(
            &incident(),
            &solution(),
            "Traceback (most recent call last):\n…",
        )
        .await
        .unwrap();
    assert_eq!(
        (reference.id.as_str(), reference.url.as_str()),
        ("42", "https://github.test/acme/shop/pull/42")
    );

    let sequence: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.trim_start_matches("/repos/acme/shop/")
            )
        })
        .collect();
    assert_eq!(
        sequence,
        vec![
            "GET contents/shop/cart.py?ref=main",
            "GET contents/shop/orders.py?ref=main",
            "GET pulls?state=open&head=acme:tailfix/4f2a9c1e7b3d",
            "GET pulls?state=open&per_page=100",
            "GET git/ref/heads/main",
            "GET git/commits/base000",
            "POST git/blobs",
            "POST git/blobs",
            "POST git/trees",
            "POST git/commits",
            "POST git/refs",
            "POST pulls",
            "POST issues/42/labels",
        ]
    );
    let posts = posts(&server);
    assert_eq!(
        posts[0].1,
        json!({"content": solution().changes[0].content, "encoding": "utf-8"})
    );
    assert_eq!(posts[2].1["base_tree"], "tree000");
    assert_eq!(
        posts[2].1["tree"].as_array().unwrap().len(),
        2,
        "one tree with both files"
    );
    assert_eq!(
        posts[2].1["tree"][1],
        json!({"path": "shop/orders.py", "mode": "100644", "type": "blob", "sha": "blob2"})
    );
    assert_eq!(posts[3].1["parents"], json!(["base000"]));
    assert_eq!(posts[3].1["tree"], "tree111");
    assert!(
        posts[3].1["message"]
            .as_str()
            .unwrap()
            .starts_with("tailfix: fix ZeroDivisionError in discount")
    );
    assert_eq!(
        posts[4].1,
        json!({"ref": "refs/heads/tailfix/4f2a9c1e7b3d", "sha": "commit111"})
    );
    let pull = &posts[5].1;
    assert_eq!(
        (
            pull["head"].as_str(),
            pull["base"].as_str(),
            pull["draft"].as_bool()
        ),
        (Some("tailfix/4f2a9c1e7b3d"), Some("main"), Some(true))
    );
    let body = pull["body"].as_str().unwrap();
    assert!(body.contains(&format!("<!-- tailfix:fingerprint={FINGERPRINT} -->")));
    assert!(body.contains("**Occurrences:** 17") && body.contains("web-1, web-2"));
    assert!(
        body.contains("-    return total / parts\n+    return total / parts if parts else 0"),
        "{body}"
    );
    assert_eq!(posts[6].1, json!({"labels": ["tailfix"]}));
    let headers = &server.requests()[0].headers;
    assert_eq!(
        headers.get("authorization").map(String::as_str),
        Some("Bearer ghp_test_token")
    );
    assert!(headers["user-agent"].starts_with("tailfix/"));

    // The same bug again: the open pull request is found, nothing is created.
    let before = server.request_count();
    let again = service
        .propose(&incident(), &solution(), "…")
        .await
        .unwrap();
    assert_eq!(again.id, "42");
    assert!(
        server.requests()[before..]
            .iter()
            .all(|r| r.method == "GET")
    );
    assert!(
        metrics
            .render()
            .contains("tailfix_change_requests_total{provider=\"github\",status=\"success\"} 2")
    );
}

#[tokio::test]
async fn github_falls_back_when_drafts_are_not_supported_and_waits_out_rate_limits() {
    let state = Arc::new(Mutex::new(GitHubState {
        refuse_drafts: true,
        rate_limit_blobs: 1,
        ..GitHubState::default()
    }));
    let server = fake_github(state);
    let metrics = MetricsCollector::new();
    let started = Instant::now();
    let reference = service(github(&server), &metrics)
        .propose(&incident(), &solution(), "…")
        .await
        .unwrap();
    assert_eq!(reference.id, "42");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 was waited out"
    );
    let pulls: Vec<Value> = posts(&server)
        .into_iter()
        .filter(|(path, _)| path == "pulls")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(pulls.len(), 2);
    assert_eq!(
        (pulls[0]["draft"].as_bool(), pulls[1]["draft"].as_bool()),
        (Some(true), Some(false))
    );
    let blobs = posts(&server)
        .iter()
        .filter(|(path, _)| path == "git/blobs")
        .count();
    assert_eq!(blobs, 3, "the rate-limited blob was sent again");
}

#[tokio::test]
async fn a_hosted_provider_without_a_token_is_refused() {
    let state = Arc::new(Mutex::new(GitHubState::default()));
    let server = fake_github(state);
    let metrics = MetricsCollector::new();
    let refusing = RemoteRepositoryService::new(
        github(&server),
        Validator::new(Guard::default()).unwrap(),
        metrics.clone(),
        false,
    );
    let error = refusing
        .propose(&incident(), &solution(), "…")
        .await
        .unwrap_err();
    assert!(error.contains("no token"), "{error}");
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn gitlab_one_commits_call_with_every_action_then_a_draft_merge_request() {
    let server = FakeServer::start(Reply::json(404, json!({"message": "404 Not Found"})));
    let created = Arc::new(Mutex::new(false));
    let flag = created.clone();
    server.set_responder(move |request: &Recorded| {
        let prefix = "/api/v4/projects/acme%2Fshop/";
        let path = request.path.strip_prefix(prefix)?;
        let merge_request = json!({"iid": 7, "web_url": "https://gitlab.test/acme/shop/-/merge_requests/7", "description": ""});
        Some(match (request.method.as_str(), path) {
            ("GET", "repository/files/shop%2Fcart.py/raw?ref=main") => Reply { status: 200, headers: vec![], body: CART.to_string(), delay: Duration::ZERO, ..Reply::default() },
            ("GET", "repository/files/shop%2Forders.py/raw?ref=main") => Reply { status: 200, headers: vec![], body: ORDERS.to_string(), delay: Duration::ZERO, ..Reply::default() },
            ("GET", p) if p.starts_with("merge_requests?state=opened&source_branch=") => {
                Reply::json(200, if *flag.lock().unwrap() { json!([merge_request]) } else { json!([]) })
            }
            ("GET", "merge_requests?state=opened&per_page=100") => Reply::json(200, json!([])),
            ("POST", "repository/commits") => Reply::json(201, json!({"id": "abc123"})),
            ("POST", "merge_requests") => {
                *flag.lock().unwrap() = true;
                Reply::json(201, merge_request)
            }
            _ => return None,
        })
    });
    let client: Arc<dyn RepositoryClient> = Arc::new(
        GitLabRepository::new(
            &server.base_url(),
            "glpat-test",
            "acme",
            "shop",
            "main".into(),
        )
        .unwrap(),
    );
    let metrics = MetricsCollector::new();
    // A verified solution, as the engine hands it over: its checks go into the description.
    let mut verified = solution();
    verified
        .metadata
        .insert("verified".to_string(), json!(true));
    verified.metadata.insert(
        "verification".to_string(),
        json!({"steps": [
            {"name": "syntax shop/cart.py", "command": "python3 -m py_compile shop/cart.py",
             "status": "passed", "duration_ms": 41, "reason": null, "output_tail": ""},
            {"name": "tests", "command": "python3 -m pytest -q", "status": "passed",
             "duration_ms": 1830, "reason": null, "output_tail": "2 passed"}
        ]}),
    );
    let reference = service(client.clone(), &metrics)
        .propose(&incident(), &verified, "…")
        .await
        .unwrap();
    assert_eq!(
        (reference.id.as_str(), reference.url.as_str()),
        ("7", "https://gitlab.test/acme/shop/-/merge_requests/7")
    );
    let posts: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "one commits call, one merge request");
    let commit = &posts[0].body;
    assert_eq!(commit["branch"], "tailfix/4f2a9c1e7b3d");
    assert_eq!(commit["start_branch"], "main");
    assert_eq!(commit["actions"].as_array().unwrap().len(), 2);
    assert_eq!(
        commit["actions"][0],
        json!({"action": "update", "file_path": "shop/cart.py", "content": solution().changes[0].content})
    );
    let merge_request = &posts[1].body;
    assert!(
        merge_request["title"]
            .as_str()
            .unwrap()
            .starts_with("Draft: tailfix: fix ZeroDivisionError")
    );
    assert_eq!(
        (
            merge_request["source_branch"].as_str(),
            merge_request["target_branch"].as_str()
        ),
        (Some("tailfix/4f2a9c1e7b3d"), Some("main"))
    );
    let description = merge_request["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("## Verification")
            && description.contains(
                "| syntax shop/cart.py | `python3 -m py_compile shop/cart.py` | passed | 0.0 s |"
            )
            && description.contains("| tests | `python3 -m pytest -q` | passed | 1.8 s |"),
        "{description}"
    );
    assert_eq!(merge_request["labels"], "tailfix");
    assert!(
        merge_request["description"]
            .as_str()
            .unwrap()
            .contains(&format!("<!-- tailfix:fingerprint={FINGERPRINT} -->"))
    );
    assert_eq!(posts[0].headers["private-token"], "glpat-test");
    // Second run: the open merge request is found; nothing is created.
    let again = service(client, &metrics)
        .propose(&incident(), &solution(), "…")
        .await
        .unwrap();
    assert_eq!(again.id, "7");
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        2
    );
}
