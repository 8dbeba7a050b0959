//! `tailfix validate`: the default config is valid; a typo is reported with file, line, column
//! and component; every problem is printed, not just the first.

use std::process::Command;

fn validate(path: &std::path::Path) -> (bool, String, String) {
    validate_with(path, &[])
}

/// `validate` with these environment variables set (and the tokens of the examples unset).
fn validate_with(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tailfix"));
    command.args(["validate", "-c"]).arg(path);
    for variable in [
        "TAILFIX_TOKEN",
        "GITHUB_TOKEN",
        "GITLAB_TOKEN",
        "OPENAI_API_KEY",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run tailfix validate");
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

/// With the tokens a deployment of them sets, every example validates.
#[test]
fn every_example_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples");
    let tokens = [
        ("TAILFIX_TOKEN", "a-long-enough-shared-token"),
        ("GITHUB_TOKEN", "ghp_example"),
        ("GITLAB_TOKEN", "glpat-example"),
    ];
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let (ok, _, stderr) = validate_with(&path, &tokens);
            assert!(ok, "{} must validate: {stderr}", path.display());
        }
    }
}

/// A missing token is an error of `validate`, naming the component or section (it said "ok").
#[test]
fn a_missing_token_is_reported_by_validate() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples");
    let (ok, _, stderr) = validate(&examples.join("remediation-github.toml"));
    assert!(!ok);
    assert!(
        stderr.contains("sinks.") && stderr.contains("needs a `token`"),
        "{stderr}"
    );
    let (ok, _, stderr) = validate(&examples.join("aggregator.toml"));
    assert!(!ok);
    assert!(
        stderr.contains("api: ") && stderr.contains("[api].token"),
        "{stderr}"
    );
}

/// TLS material is checked by `validate`: a missing certificate, and a key that is not the
/// certificate's, are errors (it said "ok").
#[test]
fn tls_certificates_are_checked_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(dir.path().join(format!("{name}.key")))
            .arg("-out")
            .arg(dir.path().join(format!("{name}.crt")))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success());
    };
    make("a");
    make("b");
    let config = |cert: &str, key: &str| {
        let path = dir.path().join("tls.toml");
        std::fs::write(
            &path,
            format!(
                "[sources.secure]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:6514\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"secure\"]\n",
                dir.path().join(cert).display(),
                dir.path().join(key).display()
            ),
        )
        .unwrap();
        validate(&path)
    };
    let (ok, _, stderr) = config("a.crt", "a.key");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = config("missing.crt", "a.key");
    assert!(
        !ok && stderr.contains("sources.secure") && stderr.contains("missing.crt"),
        "{stderr}"
    );
    let (ok, _, stderr) = config("a.crt", "b.key");
    assert!(!ok && stderr.contains("do not fit"), "{stderr}");
}

/// What may heal is a warning: an include directory that does not exist yet, an output that
/// cannot be written now.
#[test]
fn conditions_that_may_heal_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let path = dir.path().join("warn.toml");
    std::fs::write(
        &path,
        format!(
            "[sources.app]\ntype = \"file\"\ninclude = [\"{}/later/*.log\"]\n[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"{}/out.log\"\n",
            dir.path().display(),
            blocked.display()
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = validate(&path);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 warnings"), "{stdout}");
    assert!(
        stderr.contains("sources.app: directory") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sinks.out:") && stderr.contains("not a directory"),
        "{stderr}"
    );
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
