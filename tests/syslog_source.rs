//! The `syslog` source through the real binary, fed by the real `logger` from util-linux: octet
//! counting and LF framing over TCP, UDP datagrams, TLS, over-long frames and idle connections.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{Agent, free_port, free_udp_port, wait_for_lines};
use serde_json::Value;

fn syslog_to_file(api: u16, sources: &str, out: &std::path::Path) -> String {
    format!(
        r#"
[agent]
data_dir = "data"
[api]
address = "127.0.0.1:{api}"
{sources}
[sinks.out]
type = "file"
inputs = ["syslog_in"]
path = "{out}"
"#,
        out = out.display()
    )
}

fn hostname() -> String {
    let output = Command::new("hostname").output().expect("run hostname");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs `logger` with `args`, logging every line of `lines_file` as one message.
fn logger(args: &[&str], lines_file: &std::path::Path) {
    let status = Command::new("logger")
        .args(args)
        .arg("-f")
        .arg(lines_file)
        .status()
        .expect("run logger");
    assert!(status.success(), "logger {args:?} failed");
}

#[test]
fn a_hundred_thousand_logger_messages_over_octet_counted_and_lf_tcp_arrive_once_with_their_fields()
{
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);

    let per_framing = 50_000;
    let port = tcp.to_string();
    for (framing, extra) in [("octet", Some("--octet-count")), ("lf", None)] {
        let lines_file = dir.path().join(format!("{framing}.txt"));
        let text: String = (0..per_framing)
            .map(|i| format!("{framing} message {i:06} payment failed\n"))
            .collect();
        std::fs::write(&lines_file, text).unwrap();
        let mut args = vec![
            "--rfc5424",
            "-T",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "checkout",
            "--id=4242",
            "--msgid",
            "ORDER",
            "--sd-id",
            "shop@32473",
            "--sd-param",
            "tier=\"gold\"",
            "-p",
            "local0.err",
        ];
        args.extend(extra);
        logger(&args, &lines_file);
    }

    let total = 2 * per_framing;
    let lines = wait_for_lines(&out, total, Duration::from_secs(120));
    assert_eq!(lines.len(), total);
    let host = hostname();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut in_order: HashMap<&str, Vec<String>> = HashMap::new();
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap();
        let metadata = &entry["metadata"];
        assert_eq!(entry["level"], "error", "{line}");
        assert_eq!(metadata["severity"], "err");
        assert_eq!(metadata["facility"], "local0");
        assert_eq!(metadata["host"], host.as_str());
        assert_eq!(metadata["app_name"], "checkout");
        assert_eq!(metadata["proc_id"], "4242");
        assert_eq!(metadata["msg_id"], "ORDER");
        assert_eq!(
            metadata["structured_data"]["shop@32473"]["tier"], "gold",
            "{line}"
        );
        let message = entry["message"].as_str().unwrap().to_string();
        let framing = if message.starts_with("octet") {
            "octet"
        } else {
            "lf"
        };
        in_order.entry(framing).or_default().push(message.clone());
        *seen.entry(message).or_default() += 1;
    }
    // Each framing came over one connection, whose lines are decoded by several workers at
    // once: they must still leave in the order they were sent (the numbers are zero-padded).
    for (framing, messages) in &in_order {
        assert!(
            messages.windows(2).all(|pair| pair[0] < pair[1]),
            "{framing}: messages out of order"
        );
    }
    for framing in ["octet", "lf"] {
        for i in 0..per_framing {
            let message = format!("{framing} message {i:06} payment failed");
            assert_eq!(
                seen.get(&message),
                Some(&1),
                "`{message}` must arrive exactly once"
            );
        }
    }
    agent.stop();
}

#[test]
fn udp_datagrams_from_logger_are_one_message_each_in_both_rfcs() {
    let dir = tempfile::tempdir().unwrap();
    let (api, udp) = (free_port(), free_udp_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n"
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);
    let port = udp.to_string();
    let lines_file = dir.path().join("lines.txt");
    std::fs::write(
        &lines_file,
        (0..200).map(|i| format!("udp {i}\n")).collect::<String>(),
    )
    .unwrap();
    logger(
        &[
            "--rfc5424",
            "-d",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "web",
            "-p",
            "user.warning",
        ],
        &lines_file,
    );
    logger(
        &[
            "--rfc3164",
            "-d",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "cron",
            "-p",
            "cron.info",
        ],
        &lines_file,
    );
    let lines = wait_for_lines(&out, 400, Duration::from_secs(30));
    assert_eq!(lines.len(), 400);
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let web: Vec<&Value> = entries
        .iter()
        .filter(|e| e["metadata"]["app_name"] == "web")
        .collect();
    let cron: Vec<&Value> = entries
        .iter()
        .filter(|e| e["metadata"]["app_name"] == "cron")
        .collect();
    assert_eq!((web.len(), cron.len()), (200, 200));
    assert!(
        web.iter()
            .all(|e| e["level"] == "warn" && e["metadata"]["severity"] == "warning")
    );
    assert!(
        cron.iter()
            .all(|e| e["level"] == "info" && e["metadata"]["facility"] == "cron")
    );
    assert!(entries.iter().any(|e| e["message"] == "udp 199"));
    agent.stop();
}

#[test]
fn an_oversize_frame_is_cut_and_counted_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\nmax_message_bytes = 1024\n"
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let huge = format!(
        "<11>1 2026-01-01T00:00:00Z host app 1 - - {}",
        "z".repeat(200_000)
    );
    let small = "<14>1 2026-01-01T00:00:01Z host app 1 - - after the big one";
    write!(stream, "{} {huge}{} {small}", huge.len(), small.len()).unwrap();
    drop(stream);
    let lines = wait_for_lines(&out, 2, Duration::from_secs(20));
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert!(entries[0]["message"].as_str().unwrap().len() < 1024);
    assert_eq!(entries[1]["message"], "after the big one");
    assert_eq!(
        agent.metric(
            "tailfix_component_errors_total",
            &[
                ("component_id", "syslog_in"),
                ("error_type", "line_truncated")
            ]
        ),
        1.0
    );
    agent.stop();
}

#[test]
fn idle_connections_are_closed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\nidle_timeout = \"500ms\"\n"
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);
    let mut stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    stream
        .write_all(b"<14>Jan  2 03:04:05 host app[7]: hello\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 16];
    // The server closes the connection: the read ends with 0 bytes (or a reset), not a timeout.
    match stream.read(&mut buffer) {
        Ok(read) => assert_eq!(read, 0),
        Err(error) => assert_ne!(
            error.kind(),
            std::io::ErrorKind::WouldBlock,
            "not closed: {error}"
        ),
    }
    let lines = wait_for_lines(&out, 1, Duration::from_secs(10));
    let entry: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (
            entry["message"].as_str(),
            entry["metadata"]["proc_id"].as_str()
        ),
        (Some("hello"), Some("7"))
    );
    agent.stop();
}

#[test]
fn tls_connections_are_served_with_the_configured_certificate() {
    use std::sync::Arc;

    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success());
    let (api, tcp) = (free_port(), free_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}\n",
        cert.display(),
        key.display()
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tokio::io::AsyncWriteExt;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp))
            .await
            .unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await
            .unwrap();
        let message = "<11>1 2026-01-01T00:00:00.123Z web-1 shop 99 TLS - over tls";
        tls.write_all(format!("{} {message}", message.len()).as_bytes())
            .await
            .unwrap();
        tls.shutdown().await.unwrap();
    });
    let lines = wait_for_lines(&out, 1, Duration::from_secs(10));
    let entry: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(entry["message"], "over tls");
    assert_eq!(entry["timestamp"], "2026-01-01T00:00:00.123Z");
    assert_eq!(entry["metadata"]["host"], "web-1");
    assert_eq!(entry["level"], "error");

    // A plaintext client is refused (handshake fails) and counted.
    let mut plain = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    plain.write_all(b"<11>1 - - - - - - not tls\n").unwrap();
    let _ = plain.read(&mut [0u8; 64]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(common::read_lines(&out).len(), 1);
    agent.stop();
}

#[test]
fn a_trace_sent_one_line_per_message_is_joined_per_host_and_program() {
    let dir = tempfile::tempdir().unwrap();
    let (api, udp) = (free_port(), free_udp_port());
    let out = dir.path().join("out.json");
    let sources = format!(
        "[sources.syslog_in]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\nmultiline = \"auto\"\n"
    );
    let mut agent = Agent::start(dir.path(), &syslog_to_file(api, &sources, &out), api);
    let java = std::fs::read_to_string(format!(
        "{}/tests/corpus/traces/java_caused_by.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let python = std::fs::read_to_string(format!(
        "{}/tests/corpus/traces/python_divide.log",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut java_lines, mut python_lines) = (java.lines(), python.lines());
    loop {
        let (a, b) = (java_lines.next(), python_lines.next());
        if a.is_none() && b.is_none() {
            break;
        }
        for (host, app, line) in [("web-1", "orders", a), ("web-2", "shop", b)]
            .into_iter()
            .filter_map(|(h, p, l)| Some((h, p, l?)))
        {
            let message = format!("<11>1 2026-01-01T00:00:00Z {host} {app} 42 - - {line}");
            socket
                .send_to(message.as_bytes(), ("127.0.0.1", udp))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let lines = wait_for_lines(&out, 8, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    let lines = if lines.len() < 8 {
        common::read_lines(&out)
    } else {
        lines
    };
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let traces: Vec<&Value> = entries
        .iter()
        .filter(|e| !e["error_trace"].is_null())
        .collect();
    assert_eq!(
        traces.len(),
        2,
        "{:#?}",
        entries.iter().map(|e| &e["message"]).collect::<Vec<_>>()
    );
    let java_trace = traces
        .iter()
        .find(|t| t["metadata"]["app_name"] == "orders")
        .unwrap();
    assert_eq!(
        java_trace["metadata"]["exception"],
        "java.lang.IllegalStateException"
    );
    assert_eq!(java_trace["metadata"]["host"], "web-1");
    assert!(
        java_trace["error_trace"]
            .as_str()
            .unwrap()
            .ends_with("\t... 1 more")
    );
    let python_trace = traces
        .iter()
        .find(|t| t["metadata"]["app_name"] == "shop")
        .unwrap();
    assert_eq!(python_trace["metadata"]["exception"], "ZeroDivisionError");
    assert_eq!(entries.len(), 8, "3 + 3 ordinary lines and the two traces");
    agent.stop();
}
