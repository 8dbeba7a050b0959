//! TLS on the listeners and between agent and aggregator, with certificates made by `openssl`
//! at test time and real clients (`openssl s_client`, `curl`): the socket source and the API
//! with `verify_client` refuse a client without a certificate; an agent forwards to an
//! aggregator over mutual TLS; a reload serves a renewed certificate.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, free_port, read_lines, wait_for_lines};

const TOKEN: &str = "tls-test-token-0123456789";

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=tailfix test CA",
            ],
        );
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        pki.issue(
            "server",
            "tailfix test server",
            Some("subjectAltName=IP:127.0.0.1,DNS:localhost"),
        );
        pki.issue("client", "tailfix test agent", None);
        pki
    }

    /// `<name>.pem` and `<name>.key`, signed by the CA.
    fn issue(&self, name: &str, common_name: &str, extension: Option<&str>) {
        let dir = &self.dir;
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={common_name}"),
            ],
        );
        let extensions = dir.join(format!("{name}.ext"));
        std::fs::write(
            &extensions,
            extension.unwrap_or("basicConstraints=CA:FALSE"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

/// Sends `lines` with `openssl s_client` (whose exit status says nothing useful here: it
/// reports the server's close after our input as an error).
fn send_tls(port: u16, pki: &Pki, client_certificate: bool, lines: &str) {
    let mut command = Command::new("openssl");
    command.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
        &pki.path("ca.pem"),
        "-verify_return_error",
        "-quiet",
        // `-quiet` waits for the server to close after our input; this ends at its end.
        "-no_ign_eof",
    ]);
    if client_certificate {
        command.args([
            "-cert",
            &pki.path("client.pem"),
            "-key",
            &pki.path("client.key"),
        ]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(lines.as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let _ = child.wait();
}

fn curl(port: u16, pki: &Pki, client_certificate: bool, path: &str) -> Option<String> {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "--fail",
        "--max-time",
        "10",
        "--cacert",
        &pki.path("ca.pem"),
    ]);
    if client_certificate {
        command.args([
            "--cert",
            &pki.path("client.pem"),
            "--key",
            &pki.path("client.key"),
        ]);
    }
    let output = command
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The subject of the certificate the server at `port` presents.
fn served_subject(port: u16, pki: &Pki) -> String {
    let child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            &pki.path("ca.pem"),
            "-cert",
            &pki.path("client.pem"),
            "-key",
            &pki.path("client.key"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_client");
    let output = child.wait_with_output().expect("s_client output");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.trim_start().starts_with("subject="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_socket_source_and_the_api_refuse_clients_without_a_certificate() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (api, port) = (free_port(), free_port());
    let out = root.path().join("out.log");
    let tls = format!(
        r#"{{ cert_file = "{}", key_file = "{}", ca_file = "{}", verify_client = true }}"#,
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem")
    );
    let config = format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
token = "{TOKEN}"
tls = {tls}
[sources.in]
type = "socket"
address = "127.0.0.1:{port}"
tls = {tls}
[sinks.out]
type = "file"
inputs = ["in"]
path = "{out}"
encoding = "text"
"#,
        out = out.display()
    );
    let path = root.path().join("tailfix.toml");
    std::fs::write(&path, &config).unwrap();
    let mut agent = Agent::spawn(root.path(), &config, api);
    let started = Instant::now();
    while curl(api, &pki, true, "/health").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the API never answered over TLS"
        );
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "the agent exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    send_tls(port, &pki, true, "with a certificate\n");
    let lines = wait_for_lines(&out, 1, Duration::from_secs(10));
    assert_eq!(lines, ["with a certificate"]);
    send_tls(port, &pki, false, "without one\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read_lines(&out),
        ["with a certificate"],
        "refused without a certificate"
    );

    let health =
        curl(api, &pki, true, "/health").expect("the API answers a client with a certificate");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    assert!(
        curl(api, &pki, false, "/health").is_none(),
        "no certificate, no answer"
    );
    // Plain HTTP on the TLS port is not served either.
    assert!(
        common::http_get(api, "/health")
            .map(|(status, _)| status != 200)
            .unwrap_or(true)
    );

    // A renewed certificate is served after a reload, without a restart.
    assert!(served_subject(port, &pki).contains("tailfix test server"));
    pki.issue(
        "server",
        "tailfix renewed server",
        Some("subjectAltName=IP:127.0.0.1"),
    );
    agent.signal("HUP");
    let started = Instant::now();
    loop {
        let (subject, api_subject) = (served_subject(port, &pki), served_subject(api, &pki));
        if subject.contains("renewed") && api_subject.contains("renewed") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still serving the old certificate: {subject} / {api_subject}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    send_tls(port, &pki, true, "after the renewal\n");
    wait_for_lines(&out, 2, Duration::from_secs(10));
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
}

#[test]
fn an_agent_forwards_to_its_aggregator_over_mutual_tls() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new(&root.path().join("pki"));
    let (aggregator_dir, agent_dir) = (root.path().join("aggregator"), root.path().join("agent"));
    std::fs::create_dir(&aggregator_dir).unwrap();
    std::fs::create_dir(&agent_dir).unwrap();
    let (aggregator_api, agent_api, port) = (free_port(), free_port(), free_port());
    let out = aggregator_dir.join("all.log");
    let aggregator = format!(
        r#"
[agent]
mode = "aggregator"
node_id = "aggregator"
data_dir = "data"
[api]
address = "127.0.0.1:{aggregator_api}"
token = "{TOKEN}"
tls = {{ cert_file = "{cert}", key_file = "{key}", ca_file = "{ca}", verify_client = true }}
[sources.agents]
type = "aggregator"
[sinks.all]
type = "file"
inputs = ["agents"]
path = "{out}"
encoding = "text"
"#,
        cert = pki.path("server.pem"),
        key = pki.path("server.key"),
        ca = pki.path("ca.pem"),
        out = out.display()
    );
    let mut aggregator = Agent::spawn(&aggregator_dir, &aggregator, aggregator_api);
    let started = Instant::now();
    while curl(aggregator_api, &pki, true, "/health").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the aggregator never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent_config = |with_certificate: bool| {
        let certificate = if with_certificate {
            format!(
                r#", cert_file = "{}", key_file = "{}""#,
                pki.path("client.pem"),
                pki.path("client.key")
            )
        } else {
            String::new()
        };
        format!(
            r#"
[agent]
mode = "agent"
node_id = "edge-tls"
data_dir = "data"
aggregator = "https://127.0.0.1:{aggregator_api}"
aggregator_token = "{TOKEN}"
aggregator_tls = {{ ca_file = "{ca}"{certificate} }}
heartbeat_interval = "200ms"
[api]
address = "127.0.0.1:{agent_api}"
[sources.in]
type = "socket"
address = "127.0.0.1:{port}"
[sinks.ship]
type = "forward"
inputs = ["in"]
"#,
            ca = pki.path("ca.pem")
        )
    };
    let mut agent = Agent::start(&agent_dir, &agent_config(true), agent_api);
    let mut stream = common::connect_when_listening(port, Duration::from_secs(10));
    writeln!(stream, "over mutual TLS").unwrap();
    drop(stream);
    assert_eq!(
        wait_for_lines(&out, 1, Duration::from_secs(20)),
        ["over mutual TLS"]
    );
    let nodes = curl(aggregator_api, &pki, true, "/api/v1/nodes");
    assert!(
        nodes.is_none(),
        "the token is still needed beside the certificate"
    );
    agent.stop();

    // Without its certificate the agent is refused: the line waits, the sink says why.
    let agent = Agent::start(&agent_dir, &agent_config(false), agent_api);
    let mut stream = common::connect_when_listening(port, Duration::from_secs(10));
    writeln!(stream, "without a certificate").unwrap();
    drop(stream);
    agent.wait_health_saying("unreachable", Duration::from_secs(20));
    assert_eq!(read_lines(&out), ["over mutual TLS"]);
    agent.signal("KILL");
    aggregator.stop();
}
