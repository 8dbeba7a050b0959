//! Verified fixes on a corpus of small buggy repositories in four languages
//! (`tests/corpus/repos/`: Python, Node.js, Ruby and Go, three each, each with its own tests and
//! the crash its program printed, captured by `capture.sh`).
//!
//! For each repository, a local server speaking OpenAI's API answers in scripted ways:
//! (a) right at once; (b) first with a syntax error, then right; (c) first with a fix that
//! fails the repository's tests, then right; (d) with tool calls (`read_file`, `grep`) before
//! answering right; (e) wrong every time. Expected: (a) verified with one request, (b) and (c)
//! one repair round then verified, (d) the tool results in the conversation and the fix
//! verified, (e) rejected with the test output after `repair_rounds`; no worktree left, the work
//! tree untouched. The figures (verified share, requests per incident, median verification
//! time) are printed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::fake_model::{FakeServer, openai_reply, openai_tool_calls};
use common::shop_repo::git;
use serde_json::{Value, json};
use tailfix::event::LogEntry;
use tailfix::metrics::MetricsCollector;
use tailfix::parse::trace::annotate;
use tailfix::remediation::context::{ContextBudget, PathMap};
use tailfix::remediation::engine::{
    EngineConfig, Remediator, Services, ToolSettings, VerifySettings,
};
use tailfix::remediation::incident::{Incident, IncidentState, IncidentStore};
use tailfix::remediation::model::openai::OpenAiProvider;
use tailfix::remediation::model::service::{BreakerPolicy, ModelService, RetryPolicy};
use tailfix::remediation::model::{Endpoint, ModelProvider};
use tailfix::remediation::redact::Redactor;
use tailfix::remediation::repository::local::LocalRepository;
use tailfix::remediation::validate::{Guard, Validator};
use tailfix::remediation::verify::{Limits, Plan};
use tailfix::state::StateStore;
use tailfix::time::Timestamp;

/// `text` as a regular expression that matches it literally.
fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/repos")
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The case's repository as a git repository of its own, in `dir`.
fn repository(case: &Path, dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    copy_tree(&case.join("repo"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    repo
}

fn answer(case: &Value, new: &str) -> common::fake_model::Reply {
    openai_reply(
        &json!({
            "summary": "guard the failing value",
            "root_cause": "the value is missing",
            "confidence": 0.8,
            "edits": [{"path": case["path"], "old": case["old"], "new": new}]
        })
        .to_string(),
    )
}

fn remediator(
    repo: &Path,
    data_dir: &Path,
    server: &FakeServer,
    command: &str,
    tools: bool,
) -> Remediator {
    let state = StateStore::open(data_dir).unwrap();
    let client = tailfix::http::client(Duration::from_secs(10)).unwrap();
    let provider: Arc<dyn ModelProvider> = Arc::new(OpenAiProvider::new(Endpoint::new(
        client,
        &format!("{}/v1", server.base_url()),
        Some("sk-test".into()),
        "m".into(),
        1024,
        Duration::from_secs(10),
    )));
    let metrics = MetricsCollector::new();
    let model = ModelService::new(
        provider,
        state.clone(),
        RetryPolicy {
            max_retries: 0,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(1),
        },
        BreakerPolicy {
            threshold: 100,
            open_for: Duration::from_secs(60),
        },
        metrics.clone(),
    );
    let services = Services {
        model: Some(model),
        repository: Some(Arc::new(LocalRepository::new(
            repo.to_path_buf(),
            "main".to_string(),
        ))),
        proposer: None,
        validator: Arc::new(Validator::new(Guard::default()).unwrap()),
        redactor: Redactor::new(&[]).unwrap(),
        metrics,
    };
    let config = EngineConfig {
        min_occurrences: 1,
        window: Duration::from_secs(600),
        cooldown: Duration::from_secs(24 * 3600),
        max_concurrent: 1,
        max_requests_per_hour: 1000,
        path_map: PathMap::default(),
        base_path: String::new(),
        budget: ContextBudget::default(),
        max_attempts: 1,
        retry_failed_after: Duration::from_secs(3600),
        data_dir: data_dir.to_path_buf(),
        verify: VerifySettings {
            plan: Plan {
                syntax_check: true,
                command: Some(command.to_string()),
                limits: Limits {
                    timeout: Duration::from_secs(180),
                    ..Limits::default()
                },
                ..Plan::default()
            },
            repair_rounds: 2,
            propose_unverified: false,
        },
        tools: ToolSettings {
            enabled: tools,
            ..ToolSettings::default()
        },
    };
    Remediator::new(config, IncidentStore::new(state), services).unwrap()
}

async fn settled(remediator: &mut Remediator, store: &IncidentStore) -> Incident {
    let started = Instant::now();
    loop {
        remediator.tick();
        if let Some(incident) = store.list().unwrap().into_iter().find(|i| {
            matches!(
                i.state,
                IncidentState::Proposed | IncidentState::Rejected | IncidentState::Failed
            )
        }) {
            return incident;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never settled: {:#?}",
            store.list()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_answers_on_a_corpus_of_buggy_repositories() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 12,
        "the corpus has {} repositories",
        cases.len()
    );
    let mut analyses = 0;
    let mut verified = 0;
    let mut requests_total = 0;
    let mut verification_ms: Vec<u64> = Vec::new();
    let mut table = String::new();
    for case_dir in &cases {
        let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("case.json")).unwrap())
                .unwrap();
        let trace = std::fs::read_to_string(case_dir.join("crash.log")).unwrap();
        let text = |key: &str| case[key].as_str().unwrap_or_default().to_string();
        let scenarios: [(&str, Vec<String>, IncidentState, usize); 5] = [
            ("a", vec![text("right")], IncidentState::Proposed, 1),
            // (d): a round of tool calls (read the failing file, grep for the failing line),
            // then right.
            ("d", vec![text("right")], IncidentState::Proposed, 2),
            (
                "b",
                vec![text("syntax_error"), text("right")],
                IncidentState::Proposed,
                2,
            ),
            (
                "c",
                vec![text("still_wrong"), text("right")],
                IncidentState::Proposed,
                2,
            ),
            (
                "e",
                vec![text("still_wrong"); 3],
                IncidentState::Rejected,
                3,
            ),
        ];
        for (scenario, answers, expected, requests) in scenarios {
            let dir = tempfile::tempdir().unwrap();
            let repo = repository(case_dir, dir.path());
            let data_dir = dir.path().join("data");
            std::fs::create_dir_all(&data_dir).unwrap();
            let server = FakeServer::start(answer(&case, &text("still_wrong")));
            if scenario == "d" {
                let first_line = text("old")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                server.script([openai_tool_calls(&[
                    ("call_1", "read_file", json!({"path": case["path"]})),
                    (
                        "call_2",
                        "grep",
                        json!({"pattern": regex_escape(&first_line)}),
                    ),
                ])]);
            }
            server.script(answers.iter().map(|new| answer(&case, new)));
            let mut remediator =
                remediator(&repo, &data_dir, &server, &text("command"), scenario == "d");
            let text_bytes = Bytes::from(trace.clone());
            let mut entry = LogEntry::from_line(
                text_bytes.clone(),
                Arc::from("app"),
                Arc::from("node-a"),
                Timestamp::now(),
            );
            entry.error_trace = Some(text_bytes);
            annotate(&mut entry);
            remediator.observe(&entry);
            let store = IncidentStore::new(StateStore::open(&data_dir).unwrap());
            let incident = settled(&mut remediator, &store).await;
            remediator.shutdown(Duration::from_secs(1)).await;
            let outcomes: Vec<&str> = incident
                .history
                .iter()
                .map(|a| a.outcome.as_str())
                .collect();
            assert_eq!(
                (incident.state, server.request_count()),
                (expected, requests),
                "{name} ({scenario}): {:?} {outcomes:?}",
                incident.reason
            );
            match scenario {
                "d" => {
                    // The tool results are in the conversation that got the answer.
                    let last = &server.requests()[1].raw;
                    let first_line = text("old")
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    assert!(last.contains("\"role\":\"tool\""), "{name} (d)");
                    assert!(
                        last.contains(&format!("{}:", text("path"))),
                        "{name} (d): grep's result names the file"
                    );
                    assert!(
                        serde_json::to_string(&first_line)
                            .map(|quoted| last.contains(quoted.trim_matches('"')))
                            .unwrap_or(false),
                        "{name} (d): the file's text was read"
                    );
                }
                "b" => assert_eq!(
                    incident.history[0]
                        .verification
                        .as_ref()
                        .and_then(|v| v.failure())
                        .map(|s| s.name.clone()),
                    Some(format!("syntax {}", text("path"))),
                    "{name} (b): the syntax check failed first"
                ),
                "c" | "e" => assert_eq!(
                    incident.history[0]
                        .verification
                        .as_ref()
                        .and_then(|v| v.failure())
                        .map(|s| s.name.clone()),
                    Some("tests".to_string()),
                    "{name} ({scenario}): the repository's tests failed first"
                ),
                _ => {}
            }
            if expected == IncidentState::Rejected {
                let reason = incident.reason.clone().unwrap_or_default();
                assert!(
                    reason.contains("verification failed: tests"),
                    "{name}: {reason}"
                );
            }
            analyses += 1;
            requests_total += server.request_count();
            if incident.state == IncidentState::Proposed {
                verified += 1;
            }
            if let Some(last) = incident
                .history
                .last()
                .and_then(|a| a.verification.as_ref())
            {
                verification_ms.push(last.steps.iter().map(|s| s.duration_ms).sum());
            }
            assert_eq!(
                git(&repo, &["status", "--porcelain"]),
                "",
                "{name}: work tree untouched"
            );
            assert_eq!(
                git(&repo, &["worktree", "list"]).lines().count(),
                1,
                "{name}: no worktree left"
            );
            assert_eq!(git(&repo, &["branch", "--list"]).trim(), "* main");
            table.push_str(&format!(
                "{name:<12} {scenario}  {:<9} {} requests  {outcomes:?}\n",
                incident.state.as_str(),
                server.request_count()
            ));
        }
    }
    verification_ms.sort_unstable();
    let median = verification_ms
        .get(verification_ms.len() / 2)
        .copied()
        .unwrap_or(0);
    eprintln!("{table}");
    eprintln!(
        "{} repositories, {analyses} analyses: verified {verified} ({:.0}%), {:.2} model requests per incident, median verification {:.2} s",
        cases.len(),
        100.0 * verified as f64 / analyses as f64,
        requests_total as f64 / analyses as f64,
        median as f64 / 1000.0
    );
    // (a), (b), (c) and (d) verified, (e) rejected: four in five.
    assert_eq!(verified * 5, analyses * 4);
}
