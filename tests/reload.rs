//! Reloading a running agent: a filter changed and a sink added while lines stream from a
//! file lose nothing and duplicate nothing, and the new rule holds from one line on; a broken
//! config leaves the old pipeline running and `/health` says why; the API reloads only with
//! its token.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, free_port, http_get, http_request, read_lines};
use serde_json::Value;

const TOKEN: &str = "reload-secret-0123456789";

fn config(api: u16, dir: &Path, excluded: &str, second_sink: bool) -> String {
    let mut text = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
token = "{TOKEN}"
[sources.app]
type = "file"
include = ["{dir}/app.log"]
[transforms.keep]
type = "filter"
inputs = ["app"]
exclude = "kind={excluded}"
[sinks.out]
type = "file"
inputs = ["keep"]
path = "{dir}/out.log"
encoding = "text"
"#,
        dir = dir.display()
    );
    if second_sink {
        text.push_str(&format!(
            r#"
[sinks.second]
type = "file"
inputs = ["keep"]
path = "{dir}/second.log"
encoding = "text"
"#,
            dir = dir.display()
        ));
    }
    text
}

/// `n=<i> kind=a|b` lines in `out`, as (i, kind), each with how often it appears.
fn seen(path: &Path) -> HashMap<(u64, char), usize> {
    let mut seen = HashMap::new();
    for line in read_lines(path) {
        let mut fields = line.split(' ');
        let number = fields
            .next()
            .and_then(|f| f.strip_prefix("n=")?.parse().ok());
        let kind = fields
            .next()
            .and_then(|f| f.strip_prefix("kind=")?.chars().next());
        if let (Some(number), Some(kind)) = (number, kind) {
            *seen.entry((number, kind)).or_insert(0) += 1;
        }
    }
    seen
}

fn health(api: u16) -> Value {
    let (_, body) = http_get(api, "/health").expect("GET /health");
    serde_json::from_str(&body).expect("health is JSON")
}

/// Waits until `/health` reports a reload with `status` other than the one it reported before.
fn wait_for_reload(api: u16, status: &str, before: &Value) -> Value {
    let started = Instant::now();
    loop {
        let health = health(api);
        let last = &health["last_reload"];
        if last["status"] == status && last["at"] != before["last_reload"]["at"] {
            return health;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no {status} reload: {health}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_filter_changed_and_a_sink_added_mid_stream_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("app.log");
    std::fs::write(&log, "").unwrap();
    let api = free_port();
    let mut agent = Agent::start(root, &config(api, root, "b", false), api);

    let total = 60_000u64;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            for i in 0..total {
                let kind = if i % 2 == 0 { 'a' } else { 'b' };
                writeln!(file, "n={i} kind={kind}").unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    // Mid-stream: exclude `a` instead of `b`, and add a second sink.
    let out = root.join("out.log");
    while read_lines(&out).len() < 5_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = health(api);
    std::fs::write(root.join("tailfix.toml"), config(api, root, "a", true)).unwrap();
    agent.signal("HUP");
    let reloaded = wait_for_reload(api, "applied", &before);
    assert_eq!(reloaded["status"], "ok", "{reloaded}");
    writer.join().unwrap();

    // Every line is accounted for: half of them pass whichever rule held when it was read.
    // The last line is a `b`, which the new rule keeps: wait for it, then a little longer.
    let started = Instant::now();
    while !seen(&out).contains_key(&(total - 1, 'b')) && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let seen = self::seen(&out);
    let repeated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        repeated.is_empty(),
        "duplicates: {:?}",
        &repeated[..repeated.len().min(5)]
    );
    // The old rule (keep a) up to one line, the new rule (keep b) from the next on: the last
    // `a` kept and the first `b` kept bound where the rule changed.
    let last_a = seen
        .keys()
        .filter(|(_, kind)| *kind == 'a')
        .map(|(n, _)| *n)
        .max()
        .expect("lines before the reload");
    let first_b = seen
        .keys()
        .filter(|(_, kind)| *kind == 'b')
        .map(|(n, _)| *n)
        .min()
        .expect("lines after the reload");
    assert!(
        last_a < first_b,
        "the rules did not interleave: a up to {last_a}, b from {first_b}"
    );
    // Between the two, what both rules dropped: b lines (old rule) before a lines (new rule).
    let cut = (last_a + 1..first_b)
        .filter(|i| i % 2 == 1)
        .max()
        .unwrap_or(last_a);
    assert!(
        (last_a + 1..first_b)
            .filter(|i| i % 2 == 0)
            .all(|i| i > cut),
        "a line the new rule dropped came before one the old rule dropped"
    );
    assert!(cut < total - 2, "the new rule applied to the later lines");
    for i in 0..total {
        let kind = if i % 2 == 0 { 'a' } else { 'b' };
        let expected = if i <= cut { kind == 'a' } else { kind == 'b' };
        assert_eq!(
            seen.contains_key(&(i, kind)),
            expected,
            "n={i} kind={kind} (the rule changed after n={cut})"
        );
    }
    // The new sink has the new rule's lines from some point on, without a gap.
    let second = self::seen(&root.join("second.log"));
    assert!(second.keys().all(|(n, kind)| *kind == 'b' && *n > cut));
    let first = second
        .keys()
        .map(|(n, _)| *n)
        .min()
        .expect("the new sink got lines");
    assert!(
        (first..total)
            .filter(|i| i % 2 == 1)
            .all(|i| second.contains_key(&(i, 'b')))
    );

    // A broken config is refused: the pipeline runs on with the rule it had.
    let before = health(api);
    std::fs::write(
        root.join("tailfix.toml"),
        config(api, root, "a", true).replace("type = \"filter\"", "type = \"filtre\""),
    )
    .unwrap();
    agent.signal("HUP");
    let refused = wait_for_reload(api, "failed", &before);
    let errors = refused["last_reload"]["errors"].to_string();
    assert!(
        errors.contains("tailfix.toml:") && errors.contains("transforms.keep"),
        "{errors}"
    );
    assert!(errors.contains("did you mean `filter`"), "{errors}");
    assert_eq!(
        agent.metric("tailfix_config_last_reload_successful", &[]),
        0.0
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "n={total} kind=a").unwrap();
    writeln!(file, "n={} kind=b", total + 1).unwrap();
    drop(file);
    let lines = common::wait_for_lines(&out, seen.len() + 1, Duration::from_secs(20));
    assert_eq!(
        lines.last().map(String::as_str),
        Some(&*format!("n={} kind=b", total + 1))
    );
    agent.stop();
}

#[test]
fn watch_config_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("app.log");
    std::fs::write(&log, "").unwrap();
    let api = free_port();
    let mut agent = Agent::spawn_with(
        root,
        &config(api, root, "b", false),
        api,
        &["--watch-config"],
    );
    agent.wait_healthy(Duration::from_secs(30));
    let before = health(api);
    // As an editor saves: a new file renamed over the old one.
    let staged = root.join("tailfix.toml.new");
    std::fs::write(&staged, config(api, root, "a", true)).unwrap();
    std::fs::rename(&staged, root.join("tailfix.toml")).unwrap();
    wait_for_reload(api, "applied", &before);
    std::fs::write(&log, "n=1 kind=a\nn=2 kind=b\n").unwrap();
    let lines = common::wait_for_lines(&root.join("second.log"), 1, Duration::from_secs(20));
    assert_eq!(
        lines,
        ["n=2 kind=b"],
        "the new rule and the new sink are in place"
    );
    agent.stop();
}

#[test]
fn the_api_reloads_with_its_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("app.log"), "").unwrap();
    let api = free_port();
    let mut agent = Agent::start(root, &config(api, root, "b", false), api);
    let reload = |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        http_request(api, "POST", "/api/v1/reload", &headers, b"").expect("POST")
    };
    assert_eq!(reload(None).0, 401);
    assert_eq!(reload(Some("wrong-token-wrong-token")).0, 401);
    std::fs::write(root.join("tailfix.toml"), config(api, root, "a", true)).unwrap();
    let (status, body) = reload(Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "applied");
    assert_eq!(body["added"], serde_json::json!(["second"]));
    assert_eq!(body["changed"], serde_json::json!(["keep"]));
    // Unchanged: nothing is rebuilt.
    let (_, body) = reload(Some(TOKEN));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["changed"], serde_json::json!([]));
    std::fs::write(root.join("tailfix.toml"), "[sinks.x]\ntype = 3\n").unwrap();
    let (status, body) = reload(Some(TOKEN));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("rejected"), "{body}");
    agent.stop();

    // Without a token set, the API does not reload at all.
    let api = free_port();
    let open = config(api, root, "b", false).replace(&format!("token = \"{TOKEN}\"\n"), "");
    let mut agent = Agent::start(root, &open, api);
    let (status, body) = http_request(api, "POST", "/api/v1/reload", &[], b"").expect("POST");
    assert_eq!(status, 403, "{body}");
    agent.stop();
}
