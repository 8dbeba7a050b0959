//! Docker's `json-file` log driver: `{"log":"text\n","stream":"stderr","time":"…"}` per line.
//!
//! The driver writes each container line as the `log` string with its newline kept (escaped as
//! `\n`). A line without that newline is a partial: Docker splits lines longer than 16 KiB into
//! several records, and only the last ends in `\n`. `log` is unescaped, and borrowed from the
//! input when its only escape is that trailing newline, which is the common case.

use std::borrow::Cow;

use memchr::memchr;

use super::json::{raw_string, skip_value, unescape, whitespace};
use super::timestamp::rfc3339;
use super::{ParseError, Stream};
use crate::time::Timestamp;

/// One json-file record.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerLine<'a> {
    /// `log`, unescaped, without its trailing newline (or CR LF).
    pub message: Cow<'a, [u8]>,
    /// `stream`, when it is `stdout` or `stderr`.
    pub stream: Option<Stream>,
    /// `time`, when present and RFC 3339.
    pub timestamp: Option<Timestamp>,
    /// The record did not end in a newline: more of the same line follows in the next record.
    pub partial: bool,
}

/// Parses one json-file record. The `log` member is required; unknown members (`attrs`) are
/// skipped.
pub fn parse_docker(input: &[u8]) -> Result<DockerLine<'_>, ParseError> {
    let error = |rest: &[u8], expected| ParseError::at(input, rest, expected);
    let (mut rest, _) = whitespace(input).map_err(|_| error(input, "JSON"))?;
    rest = rest.strip_prefix(b"{").ok_or_else(|| error(rest, "{"))?;
    let mut log = None;
    let mut stream = None;
    let mut timestamp = None;
    loop {
        rest = skip_whitespace(rest);
        let (after, key) = raw_string(rest).map_err(|_| error(rest, "member name"))?;
        rest = skip_whitespace(after);
        rest = rest.strip_prefix(b":").ok_or_else(|| error(rest, ":"))?;
        rest = skip_whitespace(rest);
        match key {
            b"log" => {
                let (after, raw) = raw_string(rest).map_err(|_| error(rest, "log string"))?;
                log = Some(raw);
                rest = after;
            }
            b"stream" => {
                let (after, raw) = raw_string(rest).map_err(|_| error(rest, "stream string"))?;
                stream = Stream::from_name(raw);
                rest = after;
            }
            b"time" => {
                let (after, raw) = raw_string(rest).map_err(|_| error(rest, "time string"))?;
                timestamp = rfc3339(raw)
                    .ok()
                    .and_then(|(tail, time)| tail.is_empty().then_some(time));
                rest = after;
            }
            _ => {
                let (after, _) = skip_value(rest).map_err(|_| error(rest, "value"))?;
                rest = after;
            }
        }
        rest = skip_whitespace(rest);
        match rest.first() {
            Some(b',') => rest = &rest[1..],
            Some(b'}') => {
                rest = &rest[1..];
                break;
            }
            _ => return Err(error(rest, ", or }")),
        }
    }
    if !skip_whitespace(rest).is_empty() {
        return Err(error(rest, "end of line after the object"));
    }
    let raw = log.ok_or_else(|| error(input, "log member"))?;
    let (message, partial) = log_text(raw);
    Ok(DockerLine {
        message,
        stream,
        timestamp,
        partial,
    })
}

fn skip_whitespace(input: &[u8]) -> &[u8] {
    whitespace(input).map_or(input, |(rest, _)| rest)
}

/// The `log` text without its newline, and whether it lacked one (a partial record).
fn log_text(raw: &[u8]) -> (Cow<'_, [u8]>, bool) {
    // Fast path: the only escape is the final `\n` (or `\r\n`), so the text is a slice of the
    // input.
    for newline in [&b"\\r\\n"[..], b"\\n"] {
        if let Some(head) = raw.strip_suffix(newline)
            && memchr(b'\\', head).is_none()
        {
            return (Cow::Borrowed(head), false);
        }
    }
    match unescape(raw) {
        Cow::Borrowed(text) => (Cow::Borrowed(text), true),
        Cow::Owned(mut text) => {
            let ended = text.last() == Some(&b'\n');
            if ended {
                text.pop();
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
            }
            (Cow::Owned(text), !ended)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    #[test]
    fn json_file_records() {
        let time = Some(utc(2019, 1, 1, 11, 11, 11, 111_111_111));
        let cases: &[(&str, &str, Option<Stream>, bool, bool)] = &[
            // (line, message, stream, partial, borrowed)
            (
                r#"{"log":"Log line is here\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}"#,
                "Log line is here",
                Some(Stream::Stdout),
                false,
                true,
            ),
            (
                r#"{"log":"  at com.example.Foo.bar(Foo.java:42)\r\n","stream":"stderr","time":"2019-01-01T11:11:11.111111111Z"}"#,
                "  at com.example.Foo.bar(Foo.java:42)",
                Some(Stream::Stderr),
                false,
                true,
            ),
            (
                r#"{"log":"{\"level\":\"error\",\"msg\":\"tab\there\"}\n","stream":"stderr","attrs":{"tag":"web","n":[1,2]},"time":"2019-01-01T11:11:11.111111111Z"}"#,
                "{\"level\":\"error\",\"msg\":\"tab\there\"}",
                Some(Stream::Stderr),
                false,
                false,
            ),
            // The head of a line longer than 16 KiB: no newline, so partial.
            (
                r#"{"log":"aaaa","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}"#,
                "aaaa",
                Some(Stream::Stdout),
                true,
                true,
            ),
            // A literal backslash before an `n` is not a newline.
            (
                r#"{"log":"C:\\new","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}"#,
                "C:\\new",
                Some(Stream::Stdout),
                true,
                false,
            ),
        ];
        for (line, message, stream, partial, borrowed) in cases {
            let parsed = parse_docker(line.as_bytes()).expect(line);
            assert_eq!(String::from_utf8_lossy(&parsed.message), *message, "{line}");
            assert_eq!(parsed.stream, *stream, "{line}");
            assert_eq!(parsed.partial, *partial, "{line}");
            assert_eq!(parsed.timestamp, time, "{line}");
            assert_eq!(
                matches!(parsed.message, Cow::Borrowed(_)),
                *borrowed,
                "{line}"
            );
        }
    }

    #[test]
    fn other_member_orders_and_missing_members() {
        let parsed = parse_docker(br#" { "time" : "2019-01-01T00:00:00Z" , "log" : "x\n" } "#)
            .expect("parses");
        assert_eq!(parsed.message.as_ref(), b"x");
        assert_eq!(parsed.stream, None);
        assert_eq!(parsed.timestamp, Some(utc(2019, 1, 1, 0, 0, 0, 0)));
        for line in [
            &br#"{"stream":"stdout"}"#[..],
            br#"{}"#,
            br#"{"log":1}"#,
            br#"{"log":"x\n""#,
            br#"{"log":"x\n"} extra"#,
            b"not json",
        ] {
            assert!(
                parse_docker(line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
