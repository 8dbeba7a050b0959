//! Change requests: the mission in one test (a real program with a real bug crashes, the real
//! binary tails its log, a fake model answers with a fix, the fix lands on a branch, and the
//! program on that branch no longer crashes), with the local repository proposed to through git
//! plumbing only: the user's work tree, index and current branch are never touched.

mod common;

use std::time::{Duration, Instant};

use common::fake_model::{FakeServer, openai_reply};
use common::shop_repo::{self, fix_json, git};
use common::{Agent, free_port};
use serde_json::Value;

fn incidents(api: u16) -> Vec<Value> {
    let (status, body) = common::http_get(api, "/api/v1/incidents").unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_crash_becomes_a_branch_whose_code_no_longer_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = shop_repo::create(dir.path());
    // Work in progress in the user's tree must survive untouched.
    std::fs::write(repo.join("notes.txt"), "uncommitted work\n").unwrap();
    std::fs::write(
        repo.join("shop/cart.py"),
        format!("{}# local edit\n", shop_repo::CART_PY),
    )
    .unwrap();
    let status_before = git(&repo, &["status", "--porcelain"]);
    let head_before = git(&repo, &["rev-parse", "HEAD"]);
    let index_before = std::fs::read(repo.join(".git/index")).unwrap();

    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let server = FakeServer::start(openai_reply(&fix_json().to_string()));
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
node_id = "web-1"
[api]
address = "127.0.0.1:{api}"
[model]
provider = "openai"
base_url = "{base}/v1"
model = "test-model"
[repository]
provider = "local"
path = "{repo}"
branch = "main"
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
"#,
        base = server.base_url(),
        repo = repo.display(),
        logs = logs.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    // The bug is in the committed code: run the committed version.
    let clean = dir.path().join("clean");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            clean.to_str().unwrap(),
            "main",
        ],
    );
    assert!(
        !shop_repo::run(&clean, &logs.join("shop.log"), &[]),
        "the program crashes"
    );

    let started = Instant::now();
    let incident = loop {
        if let Some(incident) = incidents(api)
            .into_iter()
            .find(|i| i["state"] == "proposed")
        {
            break incident;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:#?}",
            incidents(api)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let fingerprint = incident["fingerprint"].as_str().unwrap();
    let branch = format!("tailfix/{}", &fingerprint[..12]);
    assert_eq!(incident["change_request"]["id"], branch.as_str());
    assert!(
        incident["change_request"]["url"]
            .as_str()
            .unwrap()
            .ends_with(&branch)
    );

    // The incident whole: every attempt, its checks and the code sent (API and CLI).
    let (status, body) =
        common::http_get(api, &format!("/api/v1/incidents/{fingerprint}")).unwrap();
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["history"][0]["outcome"], "verified", "{detail:#}");
    assert_eq!(
        detail["history"][0]["verification"]["steps"][0]["name"],
        "syntax shop/cart.py"
    );
    assert!(
        detail["trace"]
            .as_str()
            .unwrap_or_default()
            .contains("ZeroDivisionError")
    );
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .current_dir(dir.path())
        .args([
            "incidents",
            "-c",
            "tailfix.toml",
            "show",
            &fingerprint[..12],
        ])
        .output()
        .unwrap();
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown:?}");
    for expected in [
        "state           proposed",
        "code sent:\n  shop/cart.py:",
        "attempt 1 (request 1 of its analysis, ",
        "): verified",
        "  edit shop/cart.py:\n    -     return total / parts\n    +     return total / parts if parts else 0",
        "  check syntax shop/cart.py [python3 -m py_compile shop/cart.py] passed",
    ] {
        assert!(
            shown_text.contains(expected),
            "`{expected}` in:\n{shown_text}"
        );
    }

    // One commit on top of main, whose diff is exactly the fix.
    assert_eq!(
        git(&repo, &["rev-list", "--count", &format!("main..{branch}")]).trim(),
        "1"
    );
    let diff = git(&repo, &["diff", "main", &branch]);
    assert!(
        diff.contains("-    return total / parts\n+    return total / parts if parts else 0\n"),
        "{diff}"
    );
    assert_eq!(
        diff.matches("\n+").count() - 1,
        1,
        "one line added (besides the +++ header):\n{diff}"
    );
    let message = git(&repo, &["log", "-1", "--format=%an <%ae>%n%s%n%b", &branch]);
    assert!(
        message
            .starts_with("tailfix <tailfix@localhost>\ntailfix: fix ZeroDivisionError in discount"),
        "{message}"
    );
    assert!(message.contains(fingerprint));

    // The user's work tree, index and branch are as they were.
    assert_eq!(git(&repo, &["status", "--porcelain"]), status_before);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        std::fs::read(repo.join(".git/index")).unwrap(),
        index_before
    );
    assert_eq!(git(&repo, &["branch", "--show-current"]).trim(), "main");

    // The Markdown proposal describes it.
    let proposal = std::fs::read_to_string(
        dir.path()
            .join(format!("data/incidents/{fingerprint}-change-request.md")),
    )
    .unwrap();
    assert!(proposal.contains(&format!("<!-- tailfix:fingerprint={fingerprint} -->")));
    assert!(proposal.contains("```diff"));
    assert!(
        proposal.contains("## Verification")
            && proposal.contains(
                "| syntax shop/cart.py | `python3 -m py_compile shop/cart.py` | passed |"
            ),
        "{proposal}"
    );
    // The verification's worktree is gone.
    let worktrees = git(&repo, &["worktree", "list"]);
    assert!(!worktrees.contains("tailfix-verify"), "{worktrees}");

    // On the fix's branch the program runs to the end.
    let fixed = dir.path().join("fixed");
    git(
        &repo,
        &["worktree", "add", "-q", fixed.to_str().unwrap(), &branch],
    );
    assert!(
        shop_repo::run(&fixed, &dir.path().join("after.log"), &[]),
        "the fixed program no longer crashes"
    );

    // The same crash again: nothing new is proposed.
    assert!(!shop_repo::run(&clean, &logs.join("shop.log"), &[]));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        git(&repo, &["branch", "--list", "tailfix/*"])
            .lines()
            .count(),
        1
    );
    agent.stop();
}

#[test]
fn the_same_crash_becomes_a_draft_pull_request_on_a_fake_github() {
    use base64::Engine as _;
    use common::fake_model::{Recorded, Reply};
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let repo = shop_repo::create(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let model = FakeServer::start(openai_reply(&fix_json().to_string()));
    let github = FakeServer::start(Reply::json(404, json!({"message": "Not Found"})));
    let files = [
        ("shop/cart.py", shop_repo::CART_PY),
        ("main.py", shop_repo::MAIN_PY),
        ("shop/__init__.py", ""),
    ];
    github.set_responder(move |request: &Recorded| {
        let path = request.path.strip_prefix("/repos/acme/shop/")?;
        Some(match (request.method.as_str(), path) {
            ("GET", "git/ref/heads/main") => Reply::json(200, json!({"object": {"sha": "base000"}})),
            ("GET", "git/trees/base000?recursive=1") => Reply::json(
                200,
                json!({"tree": files.iter().map(|(p, _)| json!({"path": p, "type": "blob"})).collect::<Vec<_>>()}),
            ),
            ("GET", p) if p.starts_with("contents/") => {
                let file = p.trim_start_matches("contents/").trim_end_matches("?ref=main");
                let (_, content) = files.iter().find(|(name, _)| *name == file)?;
                Reply::json(200, json!({"encoding": "base64", "content": base64::engine::general_purpose::STANDARD.encode(content)}))
            }
            ("GET", p) if p.starts_with("pulls?") => Reply::json(200, json!([])),
            ("GET", "git/commits/base000") => Reply::json(200, json!({"tree": {"sha": "tree000"}})),
            ("POST", "git/blobs") => Reply::json(201, json!({"sha": "blob1"})),
            ("POST", "git/trees") => Reply::json(201, json!({"sha": "tree111"})),
            ("POST", "git/commits") => Reply::json(201, json!({"sha": "commit111"})),
            ("POST", "git/refs") => Reply::json(201, json!({})),
            ("POST", "pulls") => Reply::json(201, json!({"number": 5, "html_url": "https://github.test/acme/shop/pull/5"})),
            ("POST", "issues/5/labels") => Reply::json(200, json!([])),
            _ => return None,
        })
    });
    let api = free_port();
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
[model]
provider = "openai"
base_url = "{model}/v1"
model = "test-model"
[repository]
provider = "github"
owner = "acme"
name = "shop"
token = "${{TAILFIX_TEST_GITHUB_TOKEN:-ghp_from_env}}"
base_url = "{github}"
[sources.app]
type = "file"
include = ["{logs}/*.log"]
[transforms.incidents]
type = "fingerprint"
inputs = ["app"]
[sinks.fix]
type = "remediate"
inputs = ["incidents"]
"#,
        model = model.base_url(),
        github = github.base_url(),
        logs = logs.display()
    );
    let mut agent = Agent::start(dir.path(), &config, api);
    assert!(!shop_repo::run(&repo, &logs.join("shop.log"), &[]));
    let started = Instant::now();
    let incident = loop {
        if let Some(incident) = incidents(api)
            .into_iter()
            .find(|i| i["state"] == "proposed")
        {
            break incident;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:#?}",
            incidents(api)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        incident["change_request"],
        json!({"id": "5", "url": "https://github.test/acme/shop/pull/5"})
    );
    let requests = github.requests();
    let blob = requests
        .iter()
        .find(|r| r.path.ends_with("git/blobs"))
        .unwrap();
    assert!(
        blob.body["content"]
            .as_str()
            .unwrap()
            .contains("return total / parts if parts else 0")
    );
    let pull = requests
        .iter()
        .find(|r| r.path.ends_with("/pulls"))
        .unwrap();
    assert_eq!(pull.body["draft"], true);
    assert!(
        pull.body["body"]
            .as_str()
            .unwrap()
            .contains("+    return total / parts if parts else 0")
    );
    // What was run, in the description (the repository copied through the API and checked).
    let description = pull.body["body"].as_str().unwrap_or_default();
    assert!(description.contains("## Verification"), "{description}");
    assert!(
        description
            .contains("| syntax shop/cart.py | `python3 -m py_compile shop/cart.py` | passed |"),
        "{description}"
    );
    assert_eq!(requests[0].headers["authorization"], "Bearer ghp_from_env");
    for secret in shop_repo::PLANTED_SECRETS {
        assert!(
            !pull.raw.contains(secret),
            "`{secret}` is in the pull request"
        );
    }
    agent.stop();
}
