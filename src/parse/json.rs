//! JSON lines: one object per line, as structured loggers write them (pino, bunyan, zap,
//! logrus, slog, Serilog, Logstash's `@timestamp`/`@message`).
//!
//! A small scanner instead of `serde_json`: it borrows every string without an escape straight
//! from the line (so `decode` can hand out `Bytes::slice_ref`s), keeps numbers as their text
//! until someone asks for a value, and does not build a map for a handful of keys. It checks
//! the structure (brackets, quotes, commas, colons) but is lenient inside strings: control bytes
//! and invalid escapes are kept as written, lone surrogates become U+FFFD. Nesting is limited to
//! `MAX_DEPTH` so that a line of a million `[` cannot overflow the stack. `benches/parsers.rs`
//! compares it with `serde_json::from_slice` into a `serde_json::Value`.
//!
//! `parse_json` then takes the entry's message, level and time out of their conventional keys
//! and leaves the other fields as they were, in order.

use std::borrow::Cow;

use memchr::{memchr, memchr2};
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::error::{Error, ErrorKind};
use nom::{IResult, Parser};

use super::ParseError;
use super::level::pino_level;
use super::timestamp::{epoch, epoch_from_f64, rfc3339};
use crate::event::Level;
use crate::time::Timestamp;

type Res<'a, T> = IResult<&'a [u8], T>;

/// Deepest nesting of arrays and objects accepted; serde_json's default limit too.
pub const MAX_DEPTH: usize = 128;

/// Keys holding the message, the level and the time, most conventional first.
const MESSAGE_KEYS: [&[u8]; 4] = [b"message", b"msg", b"log", b"@message"];
const LEVEL_KEYS: [&[u8]; 3] = [b"level", b"severity", b"lvl"];
const TIME_KEYS: [&[u8]; 4] = [b"time", b"ts", b"timestamp", b"@timestamp"];

/// An object's members in the order written; keys borrow like strings.
pub type JsonMembers<'a> = Vec<(Cow<'a, [u8]>, JsonValue<'a>)>;

/// A JSON value whose strings borrow from the line unless they had escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue<'a> {
    String(Cow<'a, [u8]>),
    /// The number as written (`-1.5e3`); see `as_i64` and `as_f64`.
    Number(&'a [u8]),
    Bool(bool),
    Null,
    Array(Vec<JsonValue<'a>>),
    Object(JsonMembers<'a>),
}

impl JsonValue<'_> {
    /// The number as an integer, when it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            JsonValue::Number(text) => std::str::from_utf8(text).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            JsonValue::Number(text) => std::str::from_utf8(text).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// A JSON log line with its message, level and time taken out of `fields`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonLine<'a> {
    /// From `message`, `msg`, `log` or `@message`, when it is a string.
    pub message: Option<Cow<'a, [u8]>>,
    /// From `level`, `severity` or `lvl`: a level name, or pino's numbers (30 = info…).
    pub level: Option<Level>,
    /// From `time`, `ts`, `timestamp` or `@timestamp`: RFC 3339, or an epoch number or string.
    pub timestamp: Option<Timestamp>,
    /// Every other member, in the order written. A message, level or time key whose value
    /// could not be read as one stays here.
    pub fields: JsonMembers<'a>,
}

/// Parses one JSON object (surrounding whitespace allowed) into a `JsonLine`.
pub fn parse_json(input: &[u8]) -> Result<JsonLine<'_>, ParseError> {
    let mut fields = parse_object(input)?;
    let message = take_field(&mut fields, &MESSAGE_KEYS, |value| match value {
        JsonValue::String(text) => Some(text.clone()),
        _ => None,
    });
    let level = take_field(&mut fields, &LEVEL_KEYS, |value| match value {
        JsonValue::String(name) => Level::from_name(name),
        JsonValue::Number(number) => pino_level(number),
        _ => None,
    });
    let timestamp = take_field(&mut fields, &TIME_KEYS, json_timestamp);
    Ok(JsonLine {
        message,
        level,
        timestamp,
        fields,
    })
}

/// Parses one JSON object and returns its members in order. Anything but whitespace after the
/// closing brace is an error.
pub fn parse_object(input: &[u8]) -> Result<JsonMembers<'_>, ParseError> {
    let result = (whitespace, |i| object(i, 0), whitespace).parse(input);
    match result {
        Ok(([], (_, members, _))) => Ok(members),
        Ok((rest, _)) => Err(ParseError::at(input, rest, "end of line after the object")),
        Err(nom::Err::Error(error) | nom::Err::Failure(error)) => {
            Err(ParseError::at(input, error.input, "JSON"))
        }
        Err(nom::Err::Incomplete(_)) => Err(ParseError::at(input, &[], "JSON")),
    }
}

/// The first of `keys` (in their order of preference) whose value `read` accepts; that member
/// is removed from `fields`.
fn take_field<'a, T>(
    fields: &mut JsonMembers<'a>,
    keys: &[&[u8]],
    read: impl Fn(&JsonValue<'a>) -> Option<T>,
) -> Option<T> {
    for key in keys {
        let found = fields
            .iter()
            .enumerate()
            .find(|(_, (name, _))| name.as_ref() == *key)
            .and_then(|(index, (_, value))| read(value).map(|read| (index, read)));
        if let Some((index, read)) = found {
            fields.remove(index);
            return Some(read);
        }
    }
    None
}

/// A time field: an RFC 3339 or epoch string, or an epoch number (pino writes milliseconds,
/// zap float seconds).
fn json_timestamp(value: &JsonValue<'_>) -> Option<Timestamp> {
    let whole = |text: &[u8]| {
        let parsed = rfc3339(text).or_else(|_| epoch(text));
        parsed
            .ok()
            .and_then(|(rest, timestamp)| rest.is_empty().then_some(timestamp))
    };
    match value {
        JsonValue::String(text) => whole(text),
        JsonValue::Number(text) => whole(text).or_else(|| value.as_f64().and_then(epoch_from_f64)),
        _ => None,
    }
}

fn fail<T>(input: &[u8]) -> Res<'_, T> {
    Err(nom::Err::Error(Error::new(input, ErrorKind::Verify)))
}

pub(crate) fn whitespace(input: &[u8]) -> Res<'_, &[u8]> {
    take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))(input)
}

/// `{` members `}`, from the opening brace.
fn object(input: &[u8], depth: usize) -> Res<'_, JsonMembers<'_>> {
    if depth >= MAX_DEPTH {
        return fail(input);
    }
    let (mut rest, _) = (tag(&b"{"[..]), whitespace).parse(input)?;
    let mut members = Vec::new();
    if let Some(after) = rest.strip_prefix(b"}") {
        return Ok((after, members));
    }
    loop {
        let (after, (key, _, _, _, value, _)) = (
            string,
            whitespace,
            tag(&b":"[..]),
            whitespace,
            |i| value(i, depth + 1),
            whitespace,
        )
            .parse(rest)?;
        members.push((key, value));
        match after.first() {
            Some(b',') => rest = whitespace(&after[1..])?.0,
            Some(b'}') => return Ok((&after[1..], members)),
            _ => return fail(after),
        }
    }
}

/// `[` values `]`, from the opening bracket.
fn array(input: &[u8], depth: usize) -> Res<'_, Vec<JsonValue<'_>>> {
    if depth >= MAX_DEPTH {
        return fail(input);
    }
    let (mut rest, _) = (tag(&b"["[..]), whitespace).parse(input)?;
    let mut items = Vec::new();
    if let Some(after) = rest.strip_prefix(b"]") {
        return Ok((after, items));
    }
    loop {
        let (after, (item, _)) = (|i| value(i, depth + 1), whitespace).parse(rest)?;
        items.push(item);
        match after.first() {
            Some(b',') => rest = whitespace(&after[1..])?.0,
            Some(b']') => return Ok((&after[1..], items)),
            _ => return fail(after),
        }
    }
}

/// Any JSON value, discarded (a member a caller does not want).
pub(crate) fn skip_value(input: &[u8]) -> Res<'_, ()> {
    value(input, 0).map(|(rest, _)| (rest, ()))
}

fn value(input: &[u8], depth: usize) -> Res<'_, JsonValue<'_>> {
    match input.first() {
        Some(b'"') => string(input).map(|(rest, text)| (rest, JsonValue::String(text))),
        Some(b'{') => {
            object(input, depth).map(|(rest, members)| (rest, JsonValue::Object(members)))
        }
        Some(b'[') => array(input, depth).map(|(rest, items)| (rest, JsonValue::Array(items))),
        Some(b't') => tag(&b"true"[..])(input).map(|(rest, _)| (rest, JsonValue::Bool(true))),
        Some(b'f') => tag(&b"false"[..])(input).map(|(rest, _)| (rest, JsonValue::Bool(false))),
        Some(b'n') => tag(&b"null"[..])(input).map(|(rest, _)| (rest, JsonValue::Null)),
        Some(b'-' | b'0'..=b'9') => number(input),
        _ => fail(input),
    }
}

/// A number's text: `-`, digits, fraction and exponent characters. Its value is read on demand.
fn number(input: &[u8]) -> Res<'_, JsonValue<'_>> {
    let (rest, text) =
        take_while1(|b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))(
            input,
        )?;
    Ok((rest, JsonValue::Number(text)))
}

/// A string from its opening quote through its closing one, unescaped.
pub fn string(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
    let (rest, raw) = raw_string(input)?;
    Ok((rest, unescape(raw)))
}

/// A string's bytes between its quotes, escapes as written.
pub fn raw_string(input: &[u8]) -> Res<'_, &[u8]> {
    let Some(body) = input.strip_prefix(b"\"") else {
        return fail(input);
    };
    let mut index = 0;
    loop {
        let Some(found) = memchr2(b'"', b'\\', &body[index..]) else {
            return fail(input);
        };
        let at = index + found;
        if body[at] == b'"' {
            return Ok((&body[at + 1..], &body[..at]));
        }
        // Skip the escaped byte, so that `\"` does not end the string.
        index = at + 2;
        if index > body.len() {
            return fail(input);
        }
    }
}

/// A JSON string's content with its escapes resolved; borrowed when it has none.
pub fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr(b'\\', raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut index = first;
    while index < raw.len() {
        let byte = raw[index];
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        let replacement = match raw.get(index + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let (character, used) = unicode_escape(&raw[index..]);
                let mut buffer = [0u8; 4];
                out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                index += used;
                continue;
            }
            // An unknown escape, or a backslash at the very end: kept as written.
            _ => {
                out.push(b'\\');
                index += 1;
                continue;
            }
        };
        out.push(replacement);
        index += 2;
    }
    Cow::Owned(out)
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, at the start of `escape`: the character and the
/// bytes used. Malformed or lone surrogates give U+FFFD (and use what was well-formed).
fn unicode_escape(escape: &[u8]) -> (char, usize) {
    let hex = |at: usize| -> Option<u32> {
        let digits = escape.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(text, 16).ok()
    };
    let Some(high) = hex(2) else {
        return (char::REPLACEMENT_CHARACTER, 2);
    };
    if (0xD800..0xDC00).contains(&high) {
        let low = escape
            .get(6..8)
            .filter(|marker| *marker == b"\\u")
            .and_then(|_| hex(8))
            .filter(|low| (0xDC00..0xE000).contains(low));
        return match low {
            Some(low) => {
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                (
                    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
                    12,
                )
            }
            None => (char::REPLACEMENT_CHARACTER, 6),
        };
    }
    (
        char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER),
        6,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    fn lossy(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn keys(line: &JsonLine<'_>) -> Vec<String> {
        line.fields.iter().map(|(key, _)| lossy(key)).collect()
    }

    #[test]
    fn loggers_of_the_wild() {
        struct Case {
            line: &'static str,
            message: Option<&'static str>,
            level: Option<Level>,
            timestamp: Option<Timestamp>,
            others: &'static [&'static str],
        }
        let cases = [
            // pino: numeric level, epoch milliseconds.
            Case {
                line: r#"{"level":50,"time":1750000000123,"pid":657,"hostname":"box","msg":"payment failed","err":{"type":"Error","message":"boom"}}"#,
                message: Some("payment failed"),
                level: Some(Level::Error),
                timestamp: Some(Timestamp(1_750_000_000_123_000_000)),
                others: &["pid", "hostname", "err"],
            },
            // bunyan: "name", "v", ISO time, numeric level.
            Case {
                line: r#"{"name":"api","hostname":"h","pid":1,"level":40,"msg":"slow query","time":"2026-06-15T12:00:00.250Z","v":0}"#,
                message: Some("slow query"),
                level: Some(Level::Warn),
                timestamp: Some(utc(2026, 6, 15, 12, 0, 0, 250_000_000)),
                others: &["name", "hostname", "pid", "v"],
            },
            // zap production: float seconds in "ts".
            Case {
                line: r#"{"level":"error","ts":1750000000.5,"caller":"main.go:42","msg":"dial tcp: i/o timeout","stacktrace":"main.main\n\t/app/main.go:42"}"#,
                message: Some("dial tcp: i/o timeout"),
                level: Some(Level::Error),
                timestamp: Some(Timestamp(1_750_000_000_500_000_000)),
                others: &["caller", "stacktrace"],
            },
            // Logstash / ECS.
            Case {
                line: r#"{"@timestamp":"2026-06-15T14:00:00+02:00","@message":"started","log.level":"info"}"#,
                message: Some("started"),
                level: None,
                timestamp: Some(utc(2026, 6, 15, 12, 0, 0, 0)),
                others: &["log.level"],
            },
            // GCP: "severity"; escapes in the message; "msg" preferred to nothing else.
            Case {
                line: r#"  {"severity":"WARNING","message":"disk \"/data\" at 91%\u00e9\ud83d\ude00","timestamp":"1750000000"}  "#,
                message: Some("disk \"/data\" at 91%\u{e9}\u{1F600}"),
                level: Some(Level::Warn),
                timestamp: Some(Timestamp(1_750_000_000_000_000_000)),
                others: &[],
            },
            // Both "message" and "msg": "message" wins, "msg" stays a field. A non-string log,
            // an unknown level and an unreadable time stay fields.
            Case {
                line: r#"{"msg":"second","message":"first","log":3,"level":"chatty","time":"soon"}"#,
                message: Some("first"),
                level: None,
                timestamp: None,
                others: &["msg", "log", "level", "time"],
            },
            Case {
                line: r#"{}"#,
                message: None,
                level: None,
                timestamp: None,
                others: &[],
            },
        ];
        for case in cases {
            let parsed = parse_json(case.line.as_bytes()).expect(case.line);
            assert_eq!(
                parsed.message.as_deref().map(lossy).as_deref(),
                case.message,
                "{}",
                case.line
            );
            assert_eq!(parsed.level, case.level, "{}", case.line);
            assert_eq!(parsed.timestamp, case.timestamp, "{}", case.line);
            assert_eq!(keys(&parsed), case.others, "{}", case.line);
        }
    }

    #[test]
    fn values_keep_their_shape() {
        let members =
            parse_object(br#"{"a":[1,-2.5e3,true,false,null,{"b":"c"}],"d":"x\/y\\z","e":{}}"#)
                .expect("parses");
        assert_eq!(
            members,
            vec![
                (
                    Cow::Borrowed(&b"a"[..]),
                    JsonValue::Array(vec![
                        JsonValue::Number(b"1"),
                        JsonValue::Number(b"-2.5e3"),
                        JsonValue::Bool(true),
                        JsonValue::Bool(false),
                        JsonValue::Null,
                        JsonValue::Object(vec![(
                            Cow::Borrowed(&b"b"[..]),
                            JsonValue::String(Cow::Borrowed(b"c"))
                        )]),
                    ])
                ),
                (
                    Cow::Borrowed(&b"d"[..]),
                    JsonValue::String(Cow::Owned(b"x/y\\z".to_vec()))
                ),
                (Cow::Borrowed(&b"e"[..]), JsonValue::Object(Vec::new())),
            ]
        );
        assert_eq!(JsonValue::Number(b"-2.5e3").as_f64(), Some(-2500.0));
        assert_eq!(JsonValue::Number(b"-2.5e3").as_i64(), None);
        assert_eq!(JsonValue::Number(b"42").as_i64(), Some(42));
    }

    #[test]
    fn malformed_lines_are_errors() {
        let deep_array = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let nested_ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse_object(nested_ok.as_bytes()).is_ok());
        for line in [
            &b""[..],
            b"[1,2]",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} trailing",
            b"{\"a\":\"unterminated}",
            b"{\"a\":\"ends in backslash\\",
            b"{a:1}",
            b"{\"a\":tru}",
            deep_array.as_bytes(),
        ] {
            assert!(parse_json(line).is_err(), "{}", lossy(line));
        }
    }

    #[test]
    fn unescape_edge_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a\\nb\\tc", b"a\nb\tc"),
            (b"\\u0041\\u00e9", "A\u{e9}".as_bytes()),
            (b"\\ud83d", "\u{FFFD}".as_bytes()),
            (b"\\ud83dx", "\u{FFFD}x".as_bytes()),
            (b"\\uzzzz", "\u{FFFD}zzzz".as_bytes()),
            (b"\\q", b"\\q"),
            (b"end\\", b"end\\"),
        ];
        for (raw, expected) in cases {
            assert_eq!(unescape(raw).as_ref(), *expected, "{}", lossy(raw));
        }
    }
}
