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
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
}
