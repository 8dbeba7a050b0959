//! logfmt: `key=value key2="quoted \" value" flag`, as written by Go's logrus (text formatter
//! without a terminal), go-kit/log, Heroku's router and Grafana's components.
//!
//! Keys are runs of bytes other than space, `=` and `"`; a value is a run of non-space bytes or
//! a double-quoted string with JSON-style escapes; a key alone is a flag without a value
//! (go-logfmt allows it). The message, level and time are taken out of their conventional keys.

use std::borrow::Cow;

use nom::bytes::complete::{take_while, take_while1};
use nom::error::Error;

use super::ParseError;
use super::json::{raw_string, unescape};
use super::timestamp::{epoch, rfc3339};
use crate::event::Level;
use crate::time::Timestamp;

const MESSAGE_KEYS: [&[u8]; 2] = [b"msg", b"message"];
const LEVEL_KEYS: [&[u8]; 2] = [b"level", b"lvl"];
const TIME_KEYS: [&[u8]; 2] = [b"time", b"ts"];

/// One `key=value` pair; `value` is `None` for a bare key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogfmtPair<'a> {
    pub key: &'a [u8],
    pub value: Option<Cow<'a, [u8]>>,
}

/// A logfmt line with its message, level and time taken out of `fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogfmtLine<'a> {
    /// From `msg` or `message`.
    pub message: Option<Cow<'a, [u8]>>,
    /// From `level` or `lvl`, when it names a level.
    pub level: Option<Level>,
    /// From `time` or `ts`: RFC 3339 or an epoch number.
    pub timestamp: Option<Timestamp>,
    /// The other pairs in the order written; a level or time that could not be read stays here.
    pub fields: Vec<LogfmtPair<'a>>,
}

impl LogfmtLine<'_> {
    /// Whether every pair had a value: bare words are legal logfmt, but a line of them is more
    /// likely prose that happens to start with `key=`.
    pub fn all_pairs_have_values(&self) -> bool {
        self.fields.iter().all(|pair| pair.value.is_some())
    }
}

/// Parses the pairs of a line, in order. A line without any pair, or with a stray `=` or `"`
/// where a key should start, is an error.
pub fn parse_pairs(input: &[u8]) -> Result<Vec<LogfmtPair<'_>>, ParseError> {
    let mut pairs = Vec::new();
    let mut rest = skip_spaces(input);
    while !rest.is_empty() {
        let (after, key) =
            take_while1::<_, _, Error<&[u8]>>(|b: u8| b > b' ' && b != b'=' && b != b'"')(rest)
                .map_err(|_| ParseError::at(input, rest, "key"))?;
        let (after, value) = match after.strip_prefix(b"=") {
            None => (after, None),
            Some(value) if value.first() == Some(&b'"') => {
                let (after, raw) =
                    raw_string(value).map_err(|_| ParseError::at(input, value, "closing quote"))?;
                (after, Some(unescape(raw)))
            }
            Some(value) => {
                let (after, text) = take_while::<_, _, Error<&[u8]>>(|b: u8| b != b' ')(value)
                    .map_err(|_| ParseError::at(input, value, "value"))?;
                (after, Some(Cow::Borrowed(text)))
            }
        };
        pairs.push(LogfmtPair { key, value });
        rest = skip_spaces(after);
    }
    if pairs.is_empty() {
        return Err(ParseError::at(input, rest, "key=value"));
    }
    Ok(pairs)
}

/// Parses a logfmt line into a `LogfmtLine`.
pub fn parse_logfmt(input: &[u8]) -> Result<LogfmtLine<'_>, ParseError> {
    let mut fields = parse_pairs(input)?;
    let message = take_value(&mut fields, &MESSAGE_KEYS, |value| Some(value.clone()));
    let level = take_value(&mut fields, &LEVEL_KEYS, |value| Level::from_name(value));
    let timestamp = take_value(&mut fields, &TIME_KEYS, |value| {
        let parsed = rfc3339(value).or_else(|_| epoch(value));
        parsed
            .ok()
            .and_then(|(rest, timestamp)| rest.is_empty().then_some(timestamp))
    });
    Ok(LogfmtLine {
        message,
        level,
        timestamp,
        fields,
    })
}

fn skip_spaces(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(input.len());
    &input[start..]
}

/// The first of `keys` whose value `read` accepts; that pair is removed from `fields`.
fn take_value<'a, T>(
    fields: &mut Vec<LogfmtPair<'a>>,
    keys: &[&[u8]],
    read: impl Fn(&Cow<'a, [u8]>) -> Option<T>,
) -> Option<T> {
    for key in keys {
        let found = fields.iter().enumerate().find_map(|(index, pair)| {
            if pair.key != *key {
                return None;
            }
            pair.value
                .as_ref()
                .and_then(&read)
                .map(|read| (index, read))
        });
        if let Some((index, read)) = found {
            fields.remove(index);
            return Some(read);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    fn pairs(line: &LogfmtLine<'_>) -> Vec<(String, Option<String>)> {
        line.fields
            .iter()
            .map(|pair| {
                (
                    String::from_utf8_lossy(pair.key).into_owned(),
                    pair.value
                        .as_ref()
                        .map(|value| String::from_utf8_lossy(value).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn lines_of_the_wild() {
        struct Case {
            line: &'static str,
            message: Option<&'static str>,
            level: Option<Level>,
            timestamp: Option<Timestamp>,
            others: &'static [(&'static str, Option<&'static str>)],
        }
        let cases = [
            // logrus text formatter.
            Case {
                line: r#"time="2026-06-15T12:00:00Z" level=error msg="query failed: \"users\" table locked" component=db retries=3"#,
                message: Some("query failed: \"users\" table locked"),
                level: Some(Level::Error),
                timestamp: Some(utc(2026, 6, 15, 12, 0, 0, 0)),
                others: &[("component", Some("db")), ("retries", Some("3"))],
            },
            // go-kit: ts and caller, unquoted message word.
            Case {
                line: "ts=2026-06-15T12:00:00.5+02:00 caller=main.go:42 lvl=warn msg=slow",
                message: Some("slow"),
                level: Some(Level::Warn),
                timestamp: Some(utc(2026, 6, 15, 10, 0, 0, 500_000_000)),
                others: &[("caller", Some("main.go:42"))],
            },
            // Heroku router: no message, epoch-less, a bare flag and an empty value.
            Case {
                line: r#"at=info method=GET path="/" host=app.example.com fwd="1.2.3.4" dyno=web.1 connect=1ms service=9ms status=200 bytes=123 protocol=https tls debug= "#,
                message: None,
                level: None,
                timestamp: None,
                others: &[
                    ("at", Some("info")),
                    ("method", Some("GET")),
                    ("path", Some("/")),
                    ("host", Some("app.example.com")),
                    ("fwd", Some("1.2.3.4")),
                    ("dyno", Some("web.1")),
                    ("connect", Some("1ms")),
                    ("service", Some("9ms")),
                    ("status", Some("200")),
                    ("bytes", Some("123")),
                    ("protocol", Some("https")),
                    ("tls", None),
                    ("debug", Some("")),
                ],
            },
            // Epoch time, unknown level kept as a field, "message" key.
            Case {
                line: "ts=1750000000 level=chatty message=\"hi\\tthere\"",
                message: Some("hi\tthere"),
                level: None,
                timestamp: Some(Timestamp(1_750_000_000_000_000_000)),
                others: &[("level", Some("chatty"))],
            },
        ];
        for case in cases {
            let parsed = parse_logfmt(case.line.as_bytes()).expect(case.line);
            assert_eq!(
                parsed
                    .message
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .as_deref(),
                case.message,
                "{}",
                case.line
            );
            assert_eq!(parsed.level, case.level, "{}", case.line);
            assert_eq!(parsed.timestamp, case.timestamp, "{}", case.line);
            let expected: Vec<(String, Option<String>)> = case
                .others
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect();
            assert_eq!(pairs(&parsed), expected, "{}", case.line);
        }
    }

    #[test]
    fn unquoted_values_borrow() {
        let parsed = parse_logfmt(b"msg=plain a=\"no escapes\"").expect("parses");
        assert!(matches!(parsed.message, Some(Cow::Borrowed(_))));
        assert!(matches!(parsed.fields[0].value, Some(Cow::Borrowed(_))));
        assert!(parsed.all_pairs_have_values());
        let prose = parse_logfmt(b"x=1 and then some words").expect("parses");
        assert!(!prose.all_pairs_have_values());
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in [
            &b""[..],
            b"   ",
            b"=value",
            b"a=\"unterminated",
            b"a=1 \"b\"=2",
        ] {
            assert!(
                parse_logfmt(line).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
