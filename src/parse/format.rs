//! From a line to a `LogEntry`: the `format` option of the line-reading sources.
//!
//! `decode` runs the format's parser and builds the entry of DESIGN §5: the message and every
//! text field are `Bytes::slice_ref`s of the line (only unescaped text is new memory), the time
//! is the line's own when it has one, the level comes from the format's own field or else from
//! the message's wording. A line that does not parse in its format is kept whole as text: a
//! source never drops or panics on a bad line.
//!
//! `Format::Auto` chooses per line from its first bytes, so a file or socket that mixes formats
//! (a container's JSON logs with a plain-text stack trace in between) decodes each line right.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;

use super::cri::parse_cri;
use super::docker::parse_docker;
use super::json::{JsonValue, parse_json};
use super::level::detect_level;
use super::logfmt::{LogfmtLine, parse_logfmt};
use super::syslog::{SyslogMessage, facility_name, parse_syslog, severity_name};
use super::timestamp::{bsd, rfc3339};
use super::trim_line_end;
use crate::event::{LogEntry, Metadata, ShortText, Value, slice_of};
use crate::time::Timestamp;

/// How a source reads its lines (config key `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Per line, from its first bytes (see `Format::detect`).
    #[default]
    Auto,
    /// The line is the message; a leading timestamp and a level word are recognised.
    Text,
    /// One JSON object per line.
    Json,
    /// `key=value` pairs.
    Logfmt,
    /// RFC 5424 or RFC 3164, per message.
    Syslog,
    /// CRI container logs (containerd, CRI-O).
    Cri,
    /// Docker's json-file driver.
    Docker,
}

impl Format {
    /// The format `Auto` tries for this line, from a look at its first bytes: `<` and a digit is
    /// syslog, `{"log":` Docker, another `{` JSON, an RFC 3339 time followed by ` stdout ` or
    /// ` stderr ` CRI, a leading `key=` logfmt, anything else text.
    pub fn detect(line: &[u8]) -> Format {
        match line {
            [b'<', digit, ..] if digit.is_ascii_digit() => Format::Syslog,
            [b'{', ..] if line.starts_with(b"{\"log\":") => Format::Docker,
            [b'{', ..] => Format::Json,
            [first, ..] if first.is_ascii_digit() => match rfc3339(line) {
                Ok((rest, _)) if rest.starts_with(b" stdout ") || rest.starts_with(b" stderr ") => {
                    Format::Cri
                }
                _ => Format::Text,
            },
            _ if starts_with_key(line) => Format::Logfmt,
            _ => Format::Text,
        }
    }
}

/// `identifier=` at the start of the line (the key of a logfmt pair).
fn starts_with_key(line: &[u8]) -> bool {
    let key_length = line
        .iter()
        .take(64)
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@')))
        .unwrap_or(0);
    key_length > 0 && line[0].is_ascii_alphabetic() && line.get(key_length) == Some(&b'=')
}

/// Decodes one line (without its terminator) into an entry. `read_time` is the entry's time when
/// the line carries none, and the reference for years that BSD syslog times leave out.
pub fn decode(
    format: Format,
    line: Bytes,
    source: Arc<str>,
    node_id: Arc<str>,
    read_time: Timestamp,
) -> LogEntry {
    // The decoders borrow the line and set `message`; it becomes `raw` at the end. (Cloning it
    // into the entry first would cost an increment and a decrement of its shared count.)
    let mut entry = LogEntry::from_line(Bytes::new(), source, node_id, read_time);
    let guessed = format == Format::Auto;
    let format = match format {
        Format::Auto => Format::detect(&line),
        format => format,
    };
    let decoded = match format {
        Format::Syslog => decode_syslog(&mut entry, &line),
        Format::Cri => decode_cri(&mut entry, &line),
        // `{"log":` picked by `Auto` may be an application's own JSON that starts with a `log`
        // key: without Docker's `stream` it is read as JSON, keeping its other fields.
        Format::Docker => {
            decode_docker(&mut entry, &line, guessed) || (guessed && decode_json(&mut entry, &line))
        }
        Format::Json => decode_json(&mut entry, &line),
        Format::Logfmt => decode_logfmt(&mut entry, &line, guessed),
        Format::Text | Format::Auto => false,
    };
    if !decoded {
        decode_text(&mut entry, &line);
    }
    entry.raw = line;
    // A message that holds a whole trace (a syslog message from Python's SysLogHandler, a
    // JSON message), or a structured entry with one in a field: a trace entry like joined lines.
    let structured = decoded && matches!(format, Format::Json | Format::Logfmt);
    if !(structured && super::trace::annotate_trace_field(&mut entry)) {
        super::trace::annotate_multiline_message(&mut entry);
    }
    entry
}

/// Borrowed text as a slice of the line, unescaped text as new memory.
fn cow_bytes(line: &Bytes, text: Cow<'_, [u8]>) -> Bytes {
    match text {
        Cow::Borrowed(part) => slice_of(line, part),
        Cow::Owned(owned) => Bytes::from(owned),
    }
}

/// A text field as a metadata value: see `Value::text_in` (long unescaped text is moved, not
/// copied).
fn text_value(line: &Bytes, text: Cow<'_, [u8]>) -> Value {
    match text {
        Cow::Owned(owned) if owned.len() > ShortText::CAPACITY => Value::Bytes(Bytes::from(owned)),
        text => Value::text_in(line, &text),
    }
}

/// A metadata key from the input. Field names repeat from line to line (`sequenceId`,
/// `user_id`), so the first `MAX_INTERNED` distinct short keys of each thread are kept once for
/// the life of the process and shared; rarer keys get their own string.
///
/// The keys of the last lines are looked up first in a small table indexed by a cheap hash, so
/// a repeated key costs a comparison, not a SipHash. The interning map keeps SipHash: the keys
/// come from the input, and its randomised hash is what stops a sender from choosing keys that
/// all collide.
fn lossy_key(key: &[u8]) -> Cow<'static, str> {
    const MAX_INTERNED: usize = 4096;
    const MAX_KEY_BYTES: usize = 64;
    const RECENT_SLOTS: usize = 64;
    thread_local! {
        static RECENT: [std::cell::Cell<&'static str>; RECENT_SLOTS] =
            const { [const { std::cell::Cell::new("") }; RECENT_SLOTS] };
        static INTERNED: std::cell::RefCell<std::collections::HashMap<Box<[u8]>, &'static str>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if key.len() > MAX_KEY_BYTES {
        return Cow::Owned(String::from_utf8_lossy(key).into_owned());
    }
    let slot = key.iter().take(16).fold(key.len() as u32, |hash, &byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    }) as usize
        % RECENT_SLOTS;
    let recent = RECENT.with(|recent| recent[slot].get());
    if recent.as_bytes() == key && !key.is_empty() {
        return Cow::Borrowed(recent);
    }
    let interned = INTERNED.with(|interned| {
        let mut interned = interned.borrow_mut();
        if let Some(known) = interned.get(key) {
            return Some(*known);
        }
        if interned.len() >= MAX_INTERNED {
            return None;
        }
        // Bounded by MAX_INTERNED × MAX_KEY_BYTES per thread: leaked on purpose.
        let shared: &'static str =
            Box::leak(String::from_utf8_lossy(key).into_owned().into_boxed_str());
        interned.insert(key.into(), shared);
        Some(shared)
    });
    match interned {
        Some(shared) => {
            // Only a key whose bytes are its text can be found again by comparing bytes.
            if shared.as_bytes() == key {
                RECENT.with(|recent| recent[slot].set(shared));
            }
            Cow::Borrowed(shared)
        }
        None => Cow::Owned(String::from_utf8_lossy(key).into_owned()),
    }
}

/// The whole line as the message; a leading RFC 3339 or BSD time becomes the entry's time.
fn decode_text(entry: &mut LogEntry, line: &Bytes) {
    let message = trim_line_end(line);
    entry.message = slice_of(line, message);
    entry.level = detect_level(message).unwrap_or_default();
    let leading_time = match message.first() {
        Some(b'0'..=b'9') => rfc3339(message).ok(),
        Some(b'A'..=b'Z') => bsd(message, entry.timestamp).ok(),
        _ => None,
    };
    // Only a time that stands alone at the head of the line, not `2026-01-01T00:00:00Zfoo`.
    if let Some((rest, timestamp)) = leading_time
        && matches!(rest.first(), None | Some(b' ' | b'\t' | b']' | b','))
    {
        entry.timestamp = timestamp;
    }
}

fn decode_syslog(entry: &mut LogEntry, line: &Bytes) -> bool {
    let Ok(message) = parse_syslog(line, entry.timestamp) else {
        return false;
    };
    let SyslogMessage {
        facility,
        severity,
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        message,
        ..
    } = message;
    entry.message = slice_of(line, message);
    entry.level = severity
        .and_then(super::syslog::severity_level)
        .or_else(|| detect_level(message))
        .unwrap_or_default();
    if let Some(timestamp) = timestamp {
        entry.timestamp = timestamp;
    }
    // facility, severity, four header fields, structured data: one allocation for all.
    entry.metadata = Metadata::with_capacity(7);
    let metadata = &mut entry.metadata;
    // Each key is set once here: `push` skips the search for an earlier value.
    if let Some(name) = facility.and_then(facility_name) {
        metadata.push("facility", name);
    }
    if let Some(name) = severity.and_then(severity_name) {
        metadata.push("severity", name);
    }
    for (key, field) in [
        ("host", hostname),
        ("app_name", app_name),
        ("proc_id", proc_id),
        ("msg_id", msg_id),
    ] {
        if let Some(field) = field {
            metadata.push(key, Value::text_in(line, field));
        }
    }
    if !structured_data.is_empty() {
        let mut elements = Metadata::with_capacity(structured_data.len());
        for element in structured_data {
            let mut params = Metadata::with_capacity(element.params.len());
            for param in element.params {
                params.insert(lossy_key(param.name), text_value(line, param.value));
            }
            elements.insert(lossy_key(element.id), Value::Map(params));
        }
        metadata.push("structured_data", Value::Map(elements));
    }
    true
}

fn decode_cri(entry: &mut LogEntry, line: &Bytes) -> bool {
    let Ok(record) = parse_cri(line) else {
        return false;
    };
    entry.message = slice_of(line, record.message);
    entry.timestamp = record.timestamp;
    entry.level = detect_level(record.message).unwrap_or_default();
    entry.metadata.insert("stream", record.stream.as_str());
    if record.partial {
        entry.metadata.insert("partial", Value::Bool(true));
    }
    true
}

/// `guessed`: the line was picked by `Auto`, so a record without `stream` is not Docker's.
fn decode_docker(entry: &mut LogEntry, line: &Bytes, guessed: bool) -> bool {
    let Ok(record) = parse_docker(line) else {
        return false;
    };
    if guessed && record.stream.is_none() {
        return false;
    }
    entry.level = detect_level(&record.message).unwrap_or_default();
    entry.message = cow_bytes(line, record.message);
    if let Some(timestamp) = record.timestamp {
        entry.timestamp = timestamp;
    }
    if let Some(stream) = record.stream {
        entry.metadata.insert("stream", stream.as_str());
    }
    if record.partial {
        entry.metadata.insert("partial", Value::Bool(true));
    }
    true
}

fn decode_json(entry: &mut LogEntry, line: &Bytes) -> bool {
    let Ok(parsed) = parse_json(line) else {
        return false;
    };
    // Without a message key the whole object is the message: nothing is lost, and the fields
    // are in the metadata as well.
    let message = match parsed.message {
        Some(message) => cow_bytes(line, message),
        None => slice_of(line, trim_line_end(line)),
    };
    entry.level = parsed
        .level
        .or_else(|| detect_level(&message))
        .unwrap_or_default();
    entry.message = message;
    if let Some(timestamp) = parsed.timestamp {
        entry.timestamp = timestamp;
    }
    entry.metadata = Metadata::with_capacity(parsed.fields.len());
    for (key, value) in parsed.fields {
        entry
            .metadata
            .insert(lossy_key(&key), json_value(line, value));
    }
    true
}

fn json_value(line: &Bytes, value: JsonValue<'_>) -> Value {
    match value {
        JsonValue::String(text) => text_value(line, text),
        number @ JsonValue::Number(_) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => Value::Int(integer),
            (None, Some(float)) => Value::Float(float),
            (None, None) => match number {
                JsonValue::Number(text) => Value::text_in(line, text),
                _ => Value::Null,
            },
        },
        JsonValue::Bool(flag) => Value::Bool(flag),
        JsonValue::Null => Value::Null,
        JsonValue::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| json_value(line, item))
                .collect(),
        ),
        JsonValue::Object(members) => {
            let mut map = Metadata::with_capacity(members.len());
            for (key, value) in members {
                map.insert(lossy_key(&key), json_value(line, value));
            }
            Value::Map(map)
        }
    }
}

/// `guessed`: the line was picked by `Auto`, so a line with bare words is prose, not logfmt.
fn decode_logfmt(entry: &mut LogEntry, line: &Bytes, guessed: bool) -> bool {
    let Ok(parsed) = parse_logfmt(line) else {
        return false;
    };
    if guessed && !parsed.all_pairs_have_values() {
        return false;
    }
    let LogfmtLine {
        message,
        level,
        timestamp,
        fields,
    } = parsed;
    let message = match message {
        Some(message) => cow_bytes(line, message),
        None => slice_of(line, trim_line_end(line)),
    };
    entry.level = level.or_else(|| detect_level(&message)).unwrap_or_default();
    entry.message = message;
    if let Some(timestamp) = timestamp {
        entry.timestamp = timestamp;
    }
    entry.metadata = Metadata::with_capacity(fields.len());
    for pair in fields {
        let value = match pair.value {
            Some(value) => text_value(line, value),
            None => Value::Bool(true),
        };
        entry.metadata.insert(lossy_key(pair.key), value);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    const READ_TIME: fn() -> Timestamp = || utc(2026, 6, 15, 12, 0, 0, 0);

    fn run(format: Format, line: &[u8]) -> LogEntry {
        decode(
            format,
            Bytes::copy_from_slice(line),
            Arc::from("src"),
            Arc::from("node"),
            READ_TIME(),
        )
    }

    /// Metadata as `key=value` strings, nested maps in braces, for readable expectations.
    fn render(metadata: &Metadata) -> Vec<String> {
        metadata
            .iter()
            .map(|(key, value)| format!("{key}={}", render_value(value)))
            .collect()
    }

    fn render_value(value: &Value) -> String {
        match value {
            Value::Bytes(_) | Value::Short(_) => {
                value.as_str_lossy().unwrap_or_default().into_owned()
            }
            Value::Int(number) => number.to_string(),
            Value::Float(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => "null".into(),
            Value::Array(items) => format!(
                "[{}]",
                items.iter().map(render_value).collect::<Vec<_>>().join(",")
            ),
            Value::Map(map) => format!("{{{}}}", render(map).join(",")),
        }
    }

    #[test]
    fn auto_detection_by_first_bytes() {
        let cases: &[(&[u8], Format)] = &[
            (b"<13>1 - - - - - -", Format::Syslog),
            (b"<34>Oct 11 22:14:15 host su: x", Format::Syslog),
            (b"<html>", Format::Text),
            (b"{\"log\":\"x\\n\",\"stream\":\"stdout\"}", Format::Docker),
            (b"{\"msg\":\"x\"}", Format::Json),
            (b"2016-10-06T00:17:09.669794202Z stdout F x", Format::Cri),
            (b"2016-10-06T00:17:09.669794202Z stderr P x", Format::Cri),
            (b"2016-10-06 00:17:09,669 ERROR boom", Format::Text),
            (b"level=info msg=x", Format::Logfmt),
            (b"@timestamp=1 msg=x", Format::Text),
            (b"http.status=200", Format::Logfmt),
            (b"Exception in thread \"main\"", Format::Text),
            (b"=x", Format::Text),
            (b"", Format::Text),
        ];
        for (line, expected) in cases {
            assert_eq!(
                Format::detect(line),
                *expected,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn entries_per_design_section_5() {
        struct Case {
            format: Format,
            line: &'static [u8],
            message: &'static str,
            level: Level,
            timestamp: Timestamp,
            metadata: &'static [&'static str],
        }
        let cases = [
            Case {
                format: Format::Auto,
                line: br#"<11>1 2026-06-15T11:00:00.5Z web1 shop 4242 ORDER [origin ip="10.0.0.1"][meta q="a \"b\""] order 17 failed"#,
                message: "order 17 failed",
                level: Level::Error,
                timestamp: utc(2026, 6, 15, 11, 0, 0, 500_000_000),
                metadata: &[
                    "facility=user",
                    "severity=err",
                    "host=web1",
                    "app_name=shop",
                    "proc_id=4242",
                    "msg_id=ORDER",
                    "structured_data={origin={ip=10.0.0.1},meta={q=a \"b\"}}",
                ],
            },
            Case {
                format: Format::Syslog,
                line: b"<4>Jun 15 11:58:01 web1 kernel: Out of memory: Killed process 123",
                message: "Out of memory: Killed process 123",
                level: Level::Warn,
                timestamp: utc(2026, 6, 15, 11, 58, 1, 0),
                metadata: &[
                    "facility=kern",
                    "severity=warning",
                    "host=web1",
                    "app_name=kernel",
                ],
            },
            // A syslog line without PRI: the level comes from the words.
            Case {
                format: Format::Syslog,
                line: b"Jun 15 11:58:01 web1 app[9]: ERROR db down",
                message: "ERROR db down",
                level: Level::Error,
                timestamp: utc(2026, 6, 15, 11, 58, 1, 0),
                metadata: &["host=web1", "app_name=app", "proc_id=9"],
            },
            Case {
                format: Format::Auto,
                line: b"2026-06-15T10:00:00.123456789Z stderr P 2026/06/15 10:00:00 [error] 7#7: *1 upstream timed out",
                message: "2026/06/15 10:00:00 [error] 7#7: *1 upstream timed out",
                level: Level::Error,
                timestamp: utc(2026, 6, 15, 10, 0, 0, 123_456_789),
                metadata: &["stream=stderr", "partial=true"],
            },
            Case {
                format: Format::Cri,
                line: b"2026-06-15T10:00:00Z stdout F GET /health 200",
                message: "GET /health 200",
                level: Level::Info,
                timestamp: utc(2026, 6, 15, 10, 0, 0, 0),
                metadata: &["stream=stdout"],
            },
            Case {
                format: Format::Auto,
                line: br#"{"log":"2026-06-15 10:00:00 WARN pool exhausted\n","stream":"stdout","time":"2026-06-15T10:00:00.000000001Z"}"#,
                message: "2026-06-15 10:00:00 WARN pool exhausted",
                level: Level::Warn,
                timestamp: utc(2026, 6, 15, 10, 0, 0, 1),
                metadata: &["stream=stdout"],
            },
            Case {
                format: Format::Auto,
                line: br#"{"level":50,"time":1750000000123,"pid":7,"msg":"charge failed","err":{"type":"CardError","codes":[1,2.5]},"ok":false,"x":null}"#,
                message: "charge failed",
                level: Level::Error,
                timestamp: Timestamp(1_750_000_000_123_000_000),
                metadata: &[
                    "pid=7",
                    "err={type=CardError,codes=[1,2.5]}",
                    "ok=false",
                    "x=null",
                ],
            },
            // `{"log":` without Docker's stream is an application's JSON.
            Case {
                format: Format::Auto,
                line: br#"{"log":"checkout","level":"error","user":"ann"}"#,
                message: "checkout",
                level: Level::Error,
                timestamp: READ_TIME(),
                metadata: &["user=ann"],
            },
            // JSON without a level field: the message's words decide.
            Case {
                format: Format::Json,
                line: br#"{"message":"FATAL: cannot bind"}"#,
                message: "FATAL: cannot bind",
                level: Level::Fatal,
                timestamp: READ_TIME(),
                metadata: &[],
            },
            // JSON without a message key: the whole line.
            Case {
                format: Format::Json,
                line: br#"{"event":"login","user":"ann"}"#,
                message: r#"{"event":"login","user":"ann"}"#,
                level: Level::Info,
                timestamp: READ_TIME(),
                metadata: &["event=login", "user=ann"],
            },
            Case {
                format: Format::Auto,
                line: br#"time="2026-06-15T12:00:00Z" level=warning msg="cache \"sessions\" cold" hits=0"#,
                message: "cache \"sessions\" cold",
                level: Level::Warn,
                timestamp: utc(2026, 6, 15, 12, 0, 0, 0),
                metadata: &["hits=0"],
            },
            // Explicit logfmt keeps bare keys as flags.
            Case {
                format: Format::Logfmt,
                line: b"msg=started tls",
                message: "started",
                level: Level::Info,
                timestamp: READ_TIME(),
                metadata: &["tls=true"],
            },
            // Auto: `key=` followed by prose is text.
            Case {
                format: Format::Auto,
                line: b"user=ann could not log in: ERROR 42",
                message: "user=ann could not log in: ERROR 42",
                level: Level::Error,
                timestamp: READ_TIME(),
                metadata: &[],
            },
            // Text with a leading time.
            Case {
                format: Format::Auto,
                line: b"2026-06-15 11:00:00,250 ERROR [main] app.Service - boom\r",
                message: "2026-06-15 11:00:00,250 ERROR [main] app.Service - boom",
                level: Level::Error,
                timestamp: utc(2026, 6, 15, 11, 0, 0, 250_000_000),
                metadata: &[],
            },
            Case {
                format: Format::Text,
                line: b"<13>1 - - - - - - looks like syslog",
                message: "<13>1 - - - - - - looks like syslog",
                level: Level::Info,
                timestamp: READ_TIME(),
                metadata: &[],
            },
        ];
        for case in cases {
            let entry = run(case.format, case.line);
            let name = String::from_utf8_lossy(case.line);
            assert_eq!(
                String::from_utf8_lossy(&entry.message),
                case.message,
                "{name}"
            );
            assert_eq!(entry.level, case.level, "{name}");
            assert_eq!(entry.timestamp, case.timestamp, "{name}");
            assert_eq!(render(&entry.metadata), case.metadata, "{name}");
            assert_eq!(entry.raw.as_ref(), case.line, "{name}");
            assert_eq!(&*entry.source, "src");
            assert_eq!(&*entry.node_id, "node");
        }
    }

    #[test]
    fn keys_are_interned_and_looked_up_right_whatever_their_slot() {
        let first = lossy_key(b"request_id");
        let again = lossy_key(b"request_id");
        assert!(
            matches!((&first, &again), (Cow::Borrowed(a), Cow::Borrowed(b)) if a.as_ptr() == b.as_ptr())
        );
        // Many keys share the small table's slots: each must still come back as itself.
        let keys: Vec<String> = (0..500).map(|n| format!("k{n}")).collect();
        for _ in 0..2 {
            for key in &keys {
                assert_eq!(lossy_key(key.as_bytes()), key.as_str());
            }
        }
        assert_eq!(lossy_key(b"caf\xff"), "caf\u{fffd}");
        assert_eq!(lossy_key(b"caf\xff"), "caf\u{fffd}");
        assert_eq!(lossy_key(b""), "");
        let long = "x".repeat(100);
        assert!(matches!(lossy_key(long.as_bytes()), Cow::Owned(owned) if owned == long));
    }

    #[test]
    fn messages_and_fields_are_slices_of_the_line() {
        let line =
            Bytes::from_static(b"<14>1 2026-06-15T11:00:00Z web1 shop 1 - [a b=\"c\"] hello");
        let entry = decode(
            Format::Auto,
            line.clone(),
            Arc::from("src"),
            Arc::from("node"),
            READ_TIME(),
        );
        let inside = |bytes: &Bytes| {
            let start = bytes.as_ptr() as usize;
            start >= line.as_ptr() as usize
                && start + bytes.len() <= line.as_ptr() as usize + line.len()
        };
        assert!(inside(&entry.message));
        // Short fields are copied (cheaper than sharing); long ones share the line.
        for key in ["host", "app_name", "proc_id"] {
            let value = entry.metadata.get(key);
            assert!(matches!(value, Some(Value::Short(_))), "{key}: {value:?}");
        }
        let host = "h".repeat(ShortText::CAPACITY + 1);
        let line = Bytes::from(format!(
            "<14>1 2026-06-15T11:00:00Z {host} shop 1 - - hello"
        ));
        let entry = decode(
            Format::Auto,
            line.clone(),
            Arc::from("src"),
            Arc::from("node"),
            READ_TIME(),
        );
        match entry.metadata.get("host") {
            Some(Value::Bytes(value)) => {
                let start = value.as_ptr() as usize - line.as_ptr() as usize;
                assert_eq!(&line[start..start + value.len()], host.as_bytes());
            }
            other => panic!("a long host should be a slice of the line: {other:?}"),
        }
    }

    #[test]
    fn garbage_falls_back_to_text() {
        let lines: &[&[u8]] = &[
            b"<13>",
            b"<13>1 2026-13-45T99:99:99Z",
            b"{\"log\":",
            b"{\"log\":\"x\\",
            b"{not json",
            b"2016-10-06T00:17:09Z stdout Q nope",
            b"a=\"unterminated",
            b"\xff\xfe\x00garbage\x01",
            b"{\"level\":\"\\ud800\"",
        ];
        for line in lines {
            for format in [
                Format::Auto,
                Format::Text,
                Format::Json,
                Format::Logfmt,
                Format::Syslog,
                Format::Cri,
                Format::Docker,
            ] {
                let entry = run(format, line);
                assert_eq!(entry.raw.as_ref(), *line);
                assert!(!entry.message.is_empty() || line.starts_with(b"<13>"));
            }
        }
        let entry = run(Format::Json, b"{not json");
        assert_eq!(entry.message.as_ref(), b"{not json");
        assert_eq!(entry.timestamp, READ_TIME());
    }

    #[test]
    fn format_names_match_the_config() {
        #[derive(Deserialize)]
        struct Source {
            format: Format,
        }
        for (name, format) in [
            ("auto", Format::Auto),
            ("text", Format::Text),
            ("json", Format::Json),
            ("logfmt", Format::Logfmt),
            ("syslog", Format::Syslog),
            ("cri", Format::Cri),
            ("docker", Format::Docker),
        ] {
            let source: Source =
                toml::from_str(&format!("format = \"{name}\"")).expect("format name");
            assert_eq!(source.format, format);
        }
        assert!(toml::from_str::<Source>("format = \"xml\"").is_err());
    }
}
