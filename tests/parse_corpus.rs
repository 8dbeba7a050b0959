//! Every message of the syslog corpus (`tests/corpus/syslog`, produced by `capture.py` with
//! util-linux `logger` and Python's `SysLogHandler`) parses to the fields its sender was asked to
//! write, and decodes to the entry DESIGN §5 describes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;
use tailfix::event::{Level, Value};
use tailfix::parse::syslog::{
    Protocol, facility_name, parse_syslog, severity_level, severity_name,
};
use tailfix::parse::{Format, decode};
use tailfix::time::Timestamp;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/syslog")
}

/// The corpus files, each with its messages and their expectations, line by line.
fn corpus() -> Vec<(String, Vec<Vec<u8>>, Vec<Json>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("utf-8 file name")
                .to_string();
            let bytes = std::fs::read(&path).expect("corpus file");
            let messages: Vec<Vec<u8>> = bytes
                .split(|byte| *byte == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            let expectations = std::fs::read_to_string(path.with_extension("expect.jsonl"))
                .expect("expectations beside the corpus file")
                .lines()
                .map(|line| serde_json::from_str(line).expect("expectation JSON"))
                .collect();
            (name, messages, expectations)
        })
        .collect()
}

/// An optional text field of the expectation: absent or `null` mean the field must be absent.
fn expected_text<'a>(expectation: &'a Json, key: &str) -> Option<&'a str> {
    expectation.get(key).and_then(Json::as_str)
}

fn text(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.map(|bytes| std::str::from_utf8(bytes).expect("utf-8 field"))
}

#[test]
fn corpus_has_every_client_and_transport() {
    let names: Vec<String> = corpus().into_iter().map(|(name, ..)| name).collect();
    for wanted in [
        "logger-rfc3164-udp",
        "logger-rfc3164-tcp",
        "logger-rfc5424-udp",
        "logger-rfc5424-sd-tcp",
        "logger-rfc5424-octet-count-tcp",
        "python-syslog-handler-tag-pid-udp",
        "python-syslog-handler-ident-tcp",
        "python-syslog-handler-plain-udp",
    ] {
        assert!(names.iter().any(|name| name == wanted), "{wanted} missing");
    }
}

#[test]
fn every_corpus_message_parses_to_what_was_sent() {
    let now = Timestamp::now();
    let mut checked = 0;
    for (name, messages, expectations) in corpus() {
        assert_eq!(messages.len(), expectations.len(), "{name}");
        for (line, expected) in messages.iter().zip(&expectations) {
            let context = format!("{name}: {}", String::from_utf8_lossy(line));
            let parsed = parse_syslog(line, now).expect(&context);
            let protocol = match expected["protocol"].as_str() {
                Some("5424") => Protocol::Rfc5424,
                _ => Protocol::Rfc3164,
            };
            assert_eq!(parsed.protocol, protocol, "{context}");
            assert_eq!(
                parsed.message,
                expected["message"].as_str().expect("message").as_bytes(),
                "{context}"
            );
            assert_eq!(
                parsed.facility.and_then(facility_name),
                expected["facility"].as_str(),
                "{context}"
            );
            assert_eq!(
                parsed.severity.and_then(severity_name),
                expected["severity"].as_str(),
                "{context}"
            );
            assert_eq!(
                parsed.timestamp.is_some(),
                expected["timestamp"].as_bool().expect("timestamp flag"),
                "{context}"
            );
            assert_eq!(
                text(parsed.hostname),
                expected_text(expected, "host"),
                "{context}"
            );
            assert_eq!(
                text(parsed.app_name),
                expected_text(expected, "app"),
                "{context}"
            );
            assert_eq!(
                text(parsed.proc_id),
                expected_text(expected, "pid"),
                "{context}"
            );
            assert_eq!(
                text(parsed.msg_id),
                expected_text(expected, "msgid"),
                "{context}"
            );
            let ids: Vec<&str> = parsed
                .structured_data
                .iter()
                .map(|element| text(Some(element.id)).expect("sd id"))
                .collect();
            if let Some(wanted) = expected.get("sd_ids") {
                let wanted: Vec<&str> = wanted
                    .as_array()
                    .expect("sd_ids list")
                    .iter()
                    .filter_map(Json::as_str)
                    .collect();
                assert_eq!(ids, wanted, "{context}");
            } else {
                // Exact elements and params when given; none at all for 3164.
                let wanted = expected
                    .get("sd")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                let got: Vec<Json> = parsed
                    .structured_data
                    .iter()
                    .map(|element| {
                        let params: serde_json::Map<String, Json> = element
                            .params
                            .iter()
                            .map(|param| {
                                (
                                    String::from_utf8_lossy(param.name).into_owned(),
                                    Json::String(
                                        String::from_utf8_lossy(&param.value).into_owned(),
                                    ),
                                )
                            })
                            .collect();
                        Json::Array(vec![
                            Json::String(String::from_utf8_lossy(element.id).into_owned()),
                            Json::Object(params),
                        ])
                    })
                    .collect();
                assert_eq!(got, wanted, "{context}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} corpus messages");
}

#[test]
fn every_corpus_message_decodes_to_an_entry() {
    let read_time = Timestamp::now();
    for (name, messages, expectations) in corpus() {
        for (line, expected) in messages.iter().zip(&expectations) {
            let context = format!("{name}: {}", String::from_utf8_lossy(line));
            let entry = decode(
                Format::Auto,
                Bytes::copy_from_slice(line),
                Arc::from("syslog"),
                Arc::from("node-1"),
                read_time,
            );
            let severity = expected["severity"].as_str().expect("severity");
            let number = (0..8)
                .find(|n| severity_name(*n) == Some(severity))
                .expect("known severity");
            let level: Level = severity_level(number).expect("level");
            assert_eq!(entry.level, level, "{context}");
            assert_eq!(
                entry.message.as_ref(),
                expected["message"].as_str().expect("message").as_bytes(),
                "{context}"
            );
            let metadata_text = |key: &str| {
                entry
                    .metadata
                    .get(key)
                    .and_then(Value::as_str_lossy)
                    .map(|text| text.into_owned())
            };
            assert_eq!(
                metadata_text("severity").as_deref(),
                Some(severity),
                "{context}"
            );
            assert_eq!(
                metadata_text("facility").as_deref(),
                expected["facility"].as_str(),
                "{context}"
            );
            assert_eq!(
                metadata_text("host").as_deref(),
                expected_text(expected, "host"),
                "{context}"
            );
            assert_eq!(
                metadata_text("app_name").as_deref(),
                expected_text(expected, "app"),
                "{context}"
            );
            if expected["timestamp"].as_bool() == Some(false) {
                assert_eq!(entry.timestamp, read_time, "{context}");
            }
            if let Some(wanted) = expected.get("sd").and_then(Json::as_array)
                && !wanted.is_empty()
            {
                let Some(Value::Map(elements)) = entry.metadata.get("structured_data") else {
                    panic!("structured_data missing: {context}");
                };
                assert_eq!(elements.len(), wanted.len(), "{context}");
            }
        }
    }
}
