//! `tailfix validate`: the default config is valid; a typo is reported with file, line, column
//! and component; every problem is printed, not just the first.

use std::process::Command;

fn validate(path: &std::path::Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tailfix"))
        .args(["validate", "-c"])
        .arg(path)
        .output()
        .expect("run tailfix validate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_default_config_validates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/tailfix.toml");
    let (ok, stdout, stderr) = validate(&path);
    assert!(ok, "conf/tailfix.toml must validate: {stderr}");
    assert!(stdout.contains("ok"));
}

#[test]
fn every_example_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let (ok, _, stderr) = validate(&path);
            assert!(ok, "{} must validate: {stderr}", path.display());
        }
    }
}

#[test]
fn a_misspelled_key_names_the_key_its_line_and_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[sources.app]\ntype = \"socket\"\naddress = \"127.0.0.1:6000\"\n\n[sinks.out]\ntype = \"console\"\ninputs = [\"app\"]\nencodnig = \"json\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = validate(&path);
    assert!(!ok);
    let expected = format!(
        "{}:8:1: sinks.out: unknown key `encodnig` (did you mean `encoding`?)",
        path.display()
    );
    assert!(stderr.contains(&expected), "got: {stderr}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"[agent]
shutdown_timeout = "soon"

[sources.a]
type = "socket"
address = "127.0.0.1:6001"

[sources.b]
type = "socket"
address = "127.0.0.1:6001"

[sources.c]
type = "carrier_pigeon"

[transforms.x]
type = "filter"
inputs = ["y"]

[transforms.y]
type = "filter"
inputs = ["x"]

[sinks.out]
type = "file"
path = "out.log"
inputs = ["ghost"]

[sinks.lonely]
type = "blackhole"
inputs = []
"#,
    )
    .unwrap();
    let (ok, _, stderr) = validate(&path);
    assert!(!ok);
    let expectations = [
        ":2:20: agent: invalid duration `soon`",
        ":10:1: sources.b: tcp://127.0.0.1:6001 is already used by source `a`",
        ":12:10: sources.c: unknown source type `carrier_pigeon`",
        "transforms.x: inputs form a cycle: x -> y -> x",
        ":26:1: sinks.out: input `ghost` does not name a source or transform",
        ":30:10: sinks.lonely: `inputs` is empty",
    ];
    for expected in expectations {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().count(),
        expectations.len(),
        "one line per problem:\n{stderr}"
    );
}

#[test]
fn an_unset_variable_without_default_is_an_error_and_defaults_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.toml");
    std::fs::write(
        &path,
        "[agent]\nnode_id = \"${TAILFIX_TEST_UNSET_VARIABLE}\"\ndata_dir = \"${TAILFIX_TEST_UNSET_DIR:-./state}\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = validate(&path);
    assert!(!ok);
    assert!(
        stderr.contains(":2:12: environment variable `TAILFIX_TEST_UNSET_VARIABLE` is not set"),
        "{stderr}"
    );
}

#[test]
fn the_dockerfile_names_paths_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                root.join(source).exists(),
                "Dockerfile copies `{source}`, which does not exist"
            );
        }
    }
    assert!(
        dockerfile.contains("USER "),
        "the runtime image runs as a non-root user"
    );
    assert!(dockerfile.contains("/etc/tailfix/tailfix.toml"));
    assert!(dockerfile.contains("/var/lib/tailfix"));
}
