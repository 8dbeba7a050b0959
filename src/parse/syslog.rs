//! Syslog messages: RFC 5424, and RFC 3164 ("BSD") as real senders write it.
//!
//! `parse_syslog` decides per message. After the PRI, a version number and a space (`<13>1 `)
//! mean RFC 5424, parsed to the letter of the RFC's ABNF except where noted; anything else, or a
//! 5424 header that does not parse, is read as RFC 3164, whose "grammar" is a set of habits:
//!
//! * the timestamp is BSD (`Mmm dd hh:mm:ss`, maybe with a year or a fraction) or, from rsyslog
//!   and syslog-ng templates, RFC 3339 with microseconds; it may be missing (Python's
//!   `SysLogHandler` sends `<14>tag: message`);
//! * the hostname may be missing: a token right after the timestamp that ends in `:` or holds a
//!   `[` is the tag, not a host;
//! * the tag is `app[pid]:` or `app:`, or absent;
//! * Cisco IOS prefixes a sequence number (`123: `), marks the clock state with `*` or `.`, may
//!   name the origin host before the time, may add a zone, and ends the time with `:`;
//! * the PRI may be missing (lines copied from `/var/log/syslog`).
//!
//! A line with neither a PRI nor a recognisable timestamp is not syslog and is an error, so that
//! the caller can keep it as plain text. Every field is a slice of the input; only structured-data
//! values with escapes are copied (`Cow::Owned`). Lenient choices, each because a real sender
//! needs it: no length limits on header fields, an unescaped `]` inside a quoted SD value is
//! accepted, and a 5424 message whose SD field is neither `-` nor `[` keeps the rest as MSG.

use std::borrow::Cow;

use memchr::{memchr, memchr2};
use nom::bytes::complete::{tag, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1};
use nom::error::{Error, ErrorKind};
use nom::{IResult, Parser};

use super::timestamp::{bsd, rfc3339};
use super::{ParseError, trim_line_end};
use crate::event::Level;
use crate::time::Timestamp;

type Res<'a, T> = IResult<&'a [u8], T>;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which RFC a message followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rfc5424,
    Rfc3164,
}

/// One parsed syslog message; every text field borrows from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogMessage<'a> {
    pub protocol: Protocol,
    /// `PRI / 8`; `None` when the message had no PRI.
    pub facility: Option<u8>,
    /// `PRI % 8`; `None` when the message had no PRI.
    pub severity: Option<u8>,
    /// In UTC; `None` for NILVALUE or a message without a time.
    pub timestamp: Option<Timestamp>,
    pub hostname: Option<&'a [u8]>,
    /// APP-NAME, or the 3164 tag.
    pub app_name: Option<&'a [u8]>,
    pub proc_id: Option<&'a [u8]>,
    pub msg_id: Option<&'a [u8]>,
    pub structured_data: Vec<SdElement<'a>>,
    /// MSG without the separator space, the UTF-8 BOM and trailing CR/LF/NUL.
    pub message: &'a [u8],
}

impl SyslogMessage<'_> {
    /// The entry level of the message's severity (DESIGN §3).
    pub fn level(&self) -> Option<Level> {
        self.severity.and_then(severity_level)
    }
}

/// An SD-ELEMENT: `[id param="value" …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a [u8],
    pub params: Vec<SdParam<'a>>,
}

/// An SD-PARAM; the value is unescaped (`\"`, `\\`, `\]`), borrowed when it had no escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdParam<'a> {
    pub name: &'a [u8],
    pub value: Cow<'a, [u8]>,
}

/// Parses one syslog message, RFC 5424 or RFC 3164, detected from its head. `now` is when it was
/// received: BSD timestamps have no year and take theirs from it.
pub fn parse_syslog(input: &[u8], now: Timestamp) -> Result<SyslogMessage<'_>, ParseError> {
    let input = trim_line_end(input);
    let (after_pri, pri) = split_pri(input);
    if let Some(pri) = pri
        && version(after_pri).is_ok()
        && let Ok(message) = rfc5424_body(input, after_pri, pri)
    {
        return Ok(message);
    }
    rfc3164_body(input, after_pri, pri, now)
}

/// Parses a message that must be RFC 5424.
pub fn parse_rfc5424(input: &[u8]) -> Result<SyslogMessage<'_>, ParseError> {
    let input = trim_line_end(input);
    match split_pri(input) {
        (after_pri, Some(pri)) => rfc5424_body(input, after_pri, pri),
        (_, None) => Err(ParseError::at(input, input, "PRI")),
    }
}

/// Parses a message as RFC 3164 with its common deviations.
pub fn parse_rfc3164(input: &[u8], now: Timestamp) -> Result<SyslogMessage<'_>, ParseError> {
    let input = trim_line_end(input);
    let (after_pri, pri) = split_pri(input);
    rfc3164_body(input, after_pri, pri, now)
}

/// The entry level of a syslog severity: emerg/alert/crit → fatal, err → error,
/// warning → warn, notice/info → info, debug → debug. `None` above 7.
pub fn severity_level(severity: u8) -> Option<Level> {
    Some(match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        7 => Level::Debug,
        _ => return None,
    })
}

/// The keyword of a severity (`"err"`, `"warning"`…), as syslog.conf and rsyslog spell it.
pub fn severity_name(severity: u8) -> Option<&'static str> {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES.get(usize::from(severity)).copied()
}

/// The keyword of a facility (`"kern"`, `"user"`, `"local0"`…).
pub fn facility_name(facility: u8) -> Option<&'static str> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.get(usize::from(facility)).copied()
}

fn fail<T>(input: &[u8]) -> Res<'_, T> {
    Err(nom::Err::Error(Error::new(input, ErrorKind::Verify)))
}

/// Turns a nom failure into a `ParseError` located inside `input`.
fn expect<'a, T>(
    input: &[u8],
    result: Res<'a, T>,
    expected: &'static str,
) -> Result<(&'a [u8], T), ParseError> {
    result.map_err(|error| match error {
        nom::Err::Error(error) | nom::Err::Failure(error) => {
            ParseError::at(input, error.input, expected)
        }
        nom::Err::Incomplete(_) => ParseError::at(input, &[], expected),
    })
}

/// `<PRI>`: 1 to 3 digits, at most 191.
fn pri(input: &[u8]) -> Res<'_, u8> {
    let (rest, _) = char('<')(input)?;
    let (rest, digits) = take_while_m_n(1, 3, |b: u8| b.is_ascii_digit())(rest)?;
    let (rest, _) = char('>')(rest)?;
    let value = digits
        .iter()
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    match u8::try_from(value) {
        Ok(value) if value <= 191 => Ok((rest, value)),
        _ => fail(input),
    }
}

/// The input after a valid PRI and the PRI, or the whole input and `None`: RFC 3164 §4.3.3
/// treats a message with a missing or invalid PRI as all content.
fn split_pri(input: &[u8]) -> (&[u8], Option<u8>) {
    match pri(input) {
        Ok((rest, pri)) => (rest, Some(pri)),
        Err(_) => (input, None),
    }
}

/// `VERSION SP`: a non-zero digit and up to two more. Only `1` exists.
fn version(input: &[u8]) -> Res<'_, u16> {
    let (rest, digits) = take_while_m_n(1, 3, |b: u8| b.is_ascii_digit())(input)?;
    let (rest, _) = char(' ')(rest)?;
    if digits[0] == b'0' {
        return fail(input);
    }
    let value = digits
        .iter()
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    Ok((rest, value))
}

/// A header field: NILVALUE (`-`, as `None`) or 1* PRINTUSASCII.
fn header_field(input: &[u8]) -> Res<'_, Option<&[u8]>> {
    let (rest, field) = take_while1(|b: u8| (33..=126).contains(&b))(input)?;
    Ok((rest, (field != b"-").then_some(field)))
}

/// SD-NAME: PRINTUSASCII except `=`, SP, `]`, `"`.
fn sd_name(input: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b: u8| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))(input)
}

/// A quoted PARAM-VALUE, from after its opening quote through its closing one.
fn param_value(input: &[u8]) -> Res<'_, Cow<'_, [u8]>> {
    let mut index = 0;
    let mut escaped = false;
    loop {
        let Some(found) = memchr2(b'"', b'\\', &input[index..]) else {
            return fail(input);
        };
        let at = index + found;
        if input[at] == b'"' {
            let raw = &input[..at];
            let value = if escaped {
                Cow::Owned(unescape_param(raw))
            } else {
                Cow::Borrowed(raw)
            };
            return Ok((&input[at + 1..], value));
        }
        // A backslash escapes the byte after it, whatever it is: `\"` must not end the value.
        escaped = true;
        index = at + 2;
        if index > input.len() {
            return fail(input);
        }
    }
}

/// RFC 5424 §6.3.3: `\"`, `\\` and `\]` stand for the second byte; any other backslash is kept
/// as written.
fn unescape_param(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        match (raw[index], raw.get(index + 1)) {
            (b'\\', Some(&next @ (b'"' | b'\\' | b']'))) => {
                out.push(next);
                index += 2;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    out
}

/// SD-PARAM: `name="value"`.
fn sd_param(input: &[u8]) -> Res<'_, SdParam<'_>> {
    let (rest, name) = sd_name(input)?;
    let (rest, _) = tag(&b"=\""[..])(rest)?;
    let (rest, value) = param_value(rest)?;
    Ok((rest, SdParam { name, value }))
}

/// SD-ELEMENT: `[` SD-ID *(SP SD-PARAM) `]`.
fn sd_element(input: &[u8]) -> Res<'_, SdElement<'_>> {
    let (mut rest, id) = (char('['), sd_name).map(|(_, id)| id).parse(input)?;
    let mut params = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(b"]") {
            return Ok((after, SdElement { id, params }));
        }
        let (after, param) = (char(' '), sd_param).map(|(_, param)| param).parse(rest)?;
        params.push(param);
        rest = after;
    }
}

/// STRUCTURED-DATA: NILVALUE or 1*SD-ELEMENT.
fn structured_data(input: &[u8]) -> Res<'_, Vec<SdElement<'_>>> {
    if input.first() == Some(&b'-') {
        return Ok((&input[1..], Vec::new()));
    }
    let (mut rest, first) = sd_element(input)?;
    let mut elements = vec![first];
    while rest.first() == Some(&b'[') {
        let (after, element) = sd_element(rest)?;
        elements.push(element);
        rest = after;
    }
    Ok((rest, elements))
}

/// `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`.
fn rfc5424_body<'a>(
    input: &'a [u8],
    after_pri: &'a [u8],
    pri: u8,
) -> Result<SyslogMessage<'a>, ParseError> {
    let (rest, _) = expect(input, version(after_pri), "VERSION")?;
    let (rest, timestamp) = match rest.strip_prefix(b"-") {
        Some(rest) => (rest, None),
        None => {
            let (rest, timestamp) = expect(input, rfc3339(rest), "TIMESTAMP")?;
            (rest, Some(timestamp))
        }
    };
    let mut fields = [None; 4];
    let mut rest = rest;
    for (slot, name) in fields
        .iter_mut()
        .zip(["HOSTNAME", "APP-NAME", "PROCID", "MSGID"])
    {
        let (after, _) = expect(input, char(' ')(rest), name)?;
        let (after, field) = expect(input, header_field(after), name)?;
        *slot = field;
        rest = after;
    }
    let [hostname, app_name, proc_id, msg_id] = fields;
    let (rest, _) = expect(input, char(' ')(rest), "STRUCTURED-DATA")?;
    let (rest, structured_data) = match rest.first() {
        Some(b'-' | b'[') => {
            let (rest, elements) = expect(input, structured_data(rest), "STRUCTURED-DATA")?;
            match rest.first() {
                None => (rest, elements),
                Some(b' ') => (&rest[1..], elements),
                Some(_) => return Err(ParseError::at(input, rest, "SP before MSG")),
            }
        }
        // A sender that left the SD field out: what follows is the message.
        _ => (rest, Vec::new()),
    };
    let message = rest.strip_prefix(UTF8_BOM).unwrap_or(rest);
    Ok(SyslogMessage {
        protocol: Protocol::Rfc5424,
        facility: Some(pri / 8),
        severity: Some(pri % 8),
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        structured_data,
        message,
    })
}

/// A timestamp in 3164 position, after Cisco's clock-state mark (`*` not synchronised, `.`
/// synchronised but not authoritative): RFC 3339 first (rsyslog/syslog-ng high precision), then
/// BSD.
fn timestamp_3164(input: &[u8], now: Timestamp) -> Option<(&[u8], Timestamp)> {
    let unmarked = match input.first() {
        Some(b'*' | b'.') => &input[1..],
        _ => input,
    };
    rfc3339(unmarked).or_else(|_| bsd(unmarked, now)).ok()
}

/// Cisco's sequence number, `123: `.
fn cisco_sequence(input: &[u8]) -> Option<&[u8]> {
    (digit1::<_, Error<&[u8]>>, tag(&b": "[..]))
        .parse(input)
        .ok()
        .map(|(rest, _)| rest)
}

/// Cisco's ` UTC` (or other zone abbreviation) between time and colon; its offset is unknown, so
/// the time stays as read. Only taken when a Cisco mnemonic (`: %`) follows: `CRON: …` is a tag.
fn cisco_zone(input: &[u8]) -> Option<&[u8]> {
    let (rest, _) = (
        char::<_, Error<&[u8]>>(' '),
        take_while_m_n(2, 5, |b: u8| b.is_ascii_uppercase()),
    )
        .parse(input)
        .ok()?;
    rest.starts_with(b": %").then_some(rest)
}

/// `host: ` ahead of a timestamp (Cisco `logging origin-id hostname`).
fn cisco_origin(input: &[u8], now: Timestamp) -> Option<(&[u8], &[u8])> {
    let (rest, host) =
        take_while1::<_, _, Error<&[u8]>>(|b: u8| b > b' ' && b != b':' && b < 127)(input).ok()?;
    let rest = rest.strip_prefix(b": ")?;
    timestamp_3164(rest, now).map(|_| (rest, host))
}

/// A 3164 tag and the input after it.
struct Tag<'a> {
    app: &'a [u8],
    proc_id: Option<&'a [u8]>,
    rest: &'a [u8],
}

/// The tag: `app[pid]: ` or `app: `. Tags hold `/`, `.`, `-` and `_` in real life
/// (`postfix/smtpd`, `org.gnome.Shell.desktop`), so any printable byte but `[`, `]`, `:`.
fn tag_3164(input: &[u8]) -> Option<Tag<'_>> {
    let (rest, app) = take_while1::<_, _, Error<&[u8]>>(|b: u8| {
        (33..=126).contains(&b) && !matches!(b, b'[' | b']' | b':')
    })(input)
    .ok()?;
    let (rest, proc_id) = match rest.strip_prefix(b"[") {
        Some(inside) => {
            let end = memchr(b']', inside)?;
            let proc_id = &inside[..end];
            if proc_id.is_empty() || proc_id.contains(&b' ') {
                return None;
            }
            (&inside[end + 1..], Some(proc_id))
        }
        None => (rest, None),
    };
    let rest = rest.strip_prefix(b":")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    Some(Tag { app, proc_id, rest })
}

fn rfc3164_body<'a>(
    input: &'a [u8],
    after_pri: &'a [u8],
    pri: Option<u8>,
    now: Timestamp,
) -> Result<SyslogMessage<'a>, ParseError> {
    let mut message = SyslogMessage {
        protocol: Protocol::Rfc3164,
        facility: pri.map(|pri| pri / 8),
        severity: pri.map(|pri| pri % 8),
        timestamp: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: Vec::new(),
        message: after_pri,
    };
    let mut rest = after_pri;
    let sequence = cisco_sequence(rest);
    if let Some(after) = sequence {
        rest = after;
    }
    let mut found = timestamp_3164(rest, now);
    if found.is_none()
        && sequence.is_some()
        && let Some((after, host)) = cisco_origin(rest, now)
    {
        message.hostname = Some(host);
        found = timestamp_3164(after, now);
    }
    let Some((after_time, timestamp)) = found else {
        if pri.is_none() {
            return Err(ParseError::at(input, input, "PRI or TIMESTAMP"));
        }
        // No time, so no hostname either (Python's `SysLogHandler`: `<14>app: text`).
        rest = sequence.unwrap_or(after_pri);
        if let Some(tag) = tag_3164(rest) {
            message.app_name = Some(tag.app);
            message.proc_id = tag.proc_id;
            rest = tag.rest;
        }
        message.message = rest;
        return Ok(message);
    };
    message.timestamp = Some(timestamp);
    let after_time = cisco_zone(after_time).unwrap_or(after_time);
    if let Some(after) = after_time.strip_prefix(b":") {
        // Cisco ends the time with a colon; the rest (`%SYS-5-CONFIG_I: …`) is the message.
        message.message = after.strip_prefix(b" ").unwrap_or(after);
        return Ok(message);
    }
    rest = match after_time {
        [] => after_time,
        [b' ', after @ ..] => after,
        _ => return Err(ParseError::at(input, after_time, "SP after TIMESTAMP")),
    };
    let token = &rest[..memchr(b' ', rest).unwrap_or(rest.len())];
    let is_tag = token.last() == Some(&b':') || token.contains(&b'[');
    if message.hostname.is_none() && !token.is_empty() && !is_tag {
        message.hostname = Some(token);
        rest = &rest[token.len()..];
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
    }
    if let Some(tag) = tag_3164(rest) {
        message.app_name = Some(tag.app);
        message.proc_id = tag.proc_id;
        rest = tag.rest;
    }
    message.message = rest;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    /// The fields a test checks, with text as `&str` for readable tables.
    #[derive(Debug, PartialEq)]
    struct Fields<'a> {
        protocol: Protocol,
        pri: Option<(u8, u8)>,
        timestamp: Option<Timestamp>,
        host: Option<&'a str>,
        app: Option<&'a str>,
        pid: Option<&'a str>,
        msgid: Option<&'a str>,
        message: &'a str,
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("utf-8 in test")
    }

    fn fields<'a>(message: &SyslogMessage<'a>) -> Fields<'a> {
        Fields {
            protocol: message.protocol,
            pri: message.facility.zip(message.severity),
            timestamp: message.timestamp,
            host: message.hostname.map(text),
            app: message.app_name.map(text),
            pid: message.proc_id.map(text),
            msgid: message.msg_id.map(text),
            message: text(message.message),
        }
    }

    const NOW: fn() -> Timestamp = || utc(2026, 6, 15, 12, 0, 0, 0);

    #[test]
    fn rfc5424_messages() {
        use Protocol::Rfc5424;
        let cases: &[(&[u8], Fields)] = &[
            // RFC 5424 §6.5, example 1: no SD, BOM before the message.
            (
                b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
                Fields {
                    protocol: Rfc5424,
                    pri: Some((4, 2)),
                    timestamp: Some(utc(2003, 10, 11, 22, 14, 15, 3_000_000)),
                    host: Some("mymachine.example.com"),
                    app: Some("su"),
                    pid: None,
                    msgid: Some("ID47"),
                    message: "'su root' failed for lonvick on /dev/pts/8",
                },
            ),
            // Example 2: microseconds and an offset.
            (
                b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
                Fields {
                    protocol: Rfc5424,
                    pri: Some((20, 5)),
                    timestamp: Some(utc(2003, 8, 24, 12, 14, 15, 3_000)),
                    host: Some("192.0.2.1"),
                    app: Some("myproc"),
                    pid: Some("8710"),
                    msgid: None,
                    message: "%% It's time to make the do-nuts.",
                },
            ),
            // Every NILVALUE, no MSG at all.
            (
                b"<0>1 - - - - - -",
                Fields {
                    protocol: Rfc5424,
                    pri: Some((0, 0)),
                    timestamp: None,
                    host: None,
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "",
                },
            ),
            // `logger --rfc5424` with its timeQuality element and a trailing newline.
            (
                b"<13>1 2026-06-15T11:59:58.123456+02:00 web1 deploy 4242 - [timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"21000\"] release done\n",
                Fields {
                    protocol: Rfc5424,
                    pri: Some((1, 5)),
                    timestamp: Some(utc(2026, 6, 15, 9, 59, 58, 123_456_000)),
                    host: Some("web1"),
                    app: Some("deploy"),
                    pid: Some("4242"),
                    msgid: None,
                    message: "release done",
                },
            ),
            // A sender that left out the SD field.
            (
                b"<14>1 2026-06-15T12:00:00Z host app 1 MSG hello there",
                Fields {
                    protocol: Rfc5424,
                    pri: Some((1, 6)),
                    timestamp: Some(utc(2026, 6, 15, 12, 0, 0, 0)),
                    host: Some("host"),
                    app: Some("app"),
                    pid: Some("1"),
                    msgid: Some("MSG"),
                    message: "hello there",
                },
            ),
        ];
        for (line, expected) in cases {
            let parsed = parse_syslog(line, NOW()).expect("parses");
            assert_eq!(
                fields(&parsed),
                *expected,
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                parse_rfc5424(line).as_ref().map(fields),
                Ok(fields(&parsed))
            );
        }
    }

    #[test]
    fn rfc5424_structured_data_with_escapes() {
        // RFC 5424 §6.5 examples 3 and 4, plus every escape and a `]` inside a value.
        let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"][esc q="a \"quoted\" word" b="back\\slash" c="close\] bracket" d="raw ] bracket" e="\n stays" f=""] BOMless message"#;
        let parsed = parse_syslog(line, NOW()).expect("parses");
        assert_eq!(parsed.message, b"BOMless message");
        let elements: Vec<(&str, Vec<(&str, String)>)> = parsed
            .structured_data
            .iter()
            .map(|element| {
                (
                    text(element.id),
                    element
                        .params
                        .iter()
                        .map(|p| (text(p.name), String::from_utf8_lossy(&p.value).into_owned()))
                        .collect(),
                )
            })
            .collect();
        let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
        };
        assert_eq!(
            elements,
            vec![
                (
                    "exampleSDID@32473",
                    owned(&[
                        ("iut", "3"),
                        ("eventSource", "Application"),
                        ("eventID", "1011")
                    ])
                ),
                ("examplePriority@32473", owned(&[("class", "high")])),
                (
                    "esc",
                    owned(&[
                        ("q", "a \"quoted\" word"),
                        ("b", "back\\slash"),
                        ("c", "close] bracket"),
                        ("d", "raw ] bracket"),
                        ("e", "\\n stays"),
                        ("f", ""),
                    ])
                ),
            ]
        );
        // Values without escapes borrow from the line.
        assert!(matches!(
            parsed.structured_data[0].params[0].value,
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            parsed.structured_data[2].params[0].value,
            Cow::Owned(_)
        ));
    }

    #[test]
    fn rfc5424_errors_are_located() {
        let cases: &[(&[u8], &str)] = &[
            (b"<13>1 2026-13-01T00:00:00Z h a p m - x", "TIMESTAMP"),
            (b"<13>1 - h a p", "MSGID"),
            (
                b"<13>1 - h a p m [id x=\"unterminated] msg",
                "STRUCTURED-DATA",
            ),
            (b"<13>1 - h a p m [id]msg", "SP before MSG"),
            (b"<13>1 - h a p m [id x=y] msg", "STRUCTURED-DATA"),
            (b"13>1 - h a p m - msg", "PRI"),
        ];
        for (line, expected) in cases {
            let error = parse_rfc5424(line).expect_err("must fail");
            assert_eq!(
                error.expected,
                *expected,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // Auto-detection falls back to 3164 and keeps the text rather than failing.
        let fallback = parse_syslog(b"<13>1 - h a p m [id]msg", NOW()).expect("3164 fallback");
        assert_eq!(fallback.protocol, Protocol::Rfc3164);
        assert_eq!(fallback.message, b"1 - h a p m [id]msg");
    }

    #[test]
    fn rfc3164_messages_and_their_deviations() {
        use Protocol::Rfc3164;
        let cases: &[(&[u8], Fields)] = &[
            // RFC 3164 §5.4 example, as `logger --rfc3164` sends it.
            (
                b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((4, 2)),
                    timestamp: Some(utc(2025, 10, 11, 22, 14, 15, 0)),
                    host: Some("mymachine"),
                    app: Some("su"),
                    pid: None,
                    msgid: None,
                    message: "'su root' failed for lonvick on /dev/pts/8",
                },
            ),
            // tag[pid], a space-padded day.
            (
                b"<86>Jun  5 09:01:02 web1 sshd[2101]: Accepted publickey for deploy from 10.0.0.5 port 50432 ssh2",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((10, 6)),
                    timestamp: Some(utc(2026, 6, 5, 9, 1, 2, 0)),
                    host: Some("web1"),
                    app: Some("sshd"),
                    pid: Some("2101"),
                    msgid: None,
                    message: "Accepted publickey for deploy from 10.0.0.5 port 50432 ssh2",
                },
            ),
            // No hostname: the token after the time is the tag (local `logger`, macOS).
            (
                b"<13>Jun 15 11:59:00 postfix/smtpd[77]: connect from unknown[10.1.1.1]",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 5)),
                    timestamp: Some(utc(2026, 6, 15, 11, 59, 0, 0)),
                    host: None,
                    app: Some("postfix/smtpd"),
                    pid: Some("77"),
                    msgid: None,
                    message: "connect from unknown[10.1.1.1]",
                },
            ),
            (
                b"<13>Jun 15 11:59:00 CRON: session opened",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 5)),
                    timestamp: Some(utc(2026, 6, 15, 11, 59, 0, 0)),
                    host: None,
                    app: Some("CRON"),
                    pid: None,
                    msgid: None,
                    message: "session opened",
                },
            ),
            // No tag at all.
            (
                b"<13>Jun 15 11:59:00 router7 link down on ge-0/0/1",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 5)),
                    timestamp: Some(utc(2026, 6, 15, 11, 59, 0, 0)),
                    host: Some("router7"),
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "link down on ge-0/0/1",
                },
            ),
            // With a year, and a December line received in June of the next year kept as is.
            (
                b"<11>Dec 24 2025 18:00:00 fw1 kernel: [UFW BLOCK] IN=eth0",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 3)),
                    timestamp: Some(utc(2025, 12, 24, 18, 0, 0, 0)),
                    host: Some("fw1"),
                    app: Some("kernel"),
                    pid: None,
                    msgid: None,
                    message: "[UFW BLOCK] IN=eth0",
                },
            ),
            // rsyslog RSYSLOG_ForwardFormat / syslog-ng ISO dates in 3164 position.
            (
                b"<30>2026-06-15T13:59:58.123456+02:00 db1 postgres[991]: checkpoint complete",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((3, 6)),
                    timestamp: Some(utc(2026, 6, 15, 11, 59, 58, 123_456_000)),
                    host: Some("db1"),
                    app: Some("postgres"),
                    pid: Some("991"),
                    msgid: None,
                    message: "checkpoint complete",
                },
            ),
            // Cisco IOS: sequence number, unsynchronised-clock star, msec, colon after time.
            (
                b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0 (10.34.195.36)",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((23, 5)),
                    timestamp: Some(utc(2026, 3, 1, 18, 46, 11, 123_000_000)),
                    host: None,
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "%SYS-5-CONFIG_I: Configured from console by vty0 (10.34.195.36)",
                },
            ),
            // Cisco with origin hostname, synchronised mark and a zone.
            (
                b"<187>4711: core-sw1: .Jun 15 11:00:01.456 UTC: %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((23, 3)),
                    timestamp: Some(utc(2026, 6, 15, 11, 0, 1, 456_000_000)),
                    host: Some("core-sw1"),
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "%LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down",
                },
            ),
            // Cisco ASA: year in the date, colon after the time.
            (
                b"<166>Jun 15 2026 11:30:00: %ASA-6-302013: Built outbound TCP connection 1",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((20, 6)),
                    timestamp: Some(utc(2026, 6, 15, 11, 30, 0, 0)),
                    host: None,
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "%ASA-6-302013: Built outbound TCP connection 1",
                },
            ),
            // Python's SysLogHandler: no time, no host, a NUL at the end.
            (
                b"<12>billing: payment declined\x00",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 4)),
                    timestamp: None,
                    host: None,
                    app: Some("billing"),
                    pid: None,
                    msgid: None,
                    message: "payment declined",
                },
            ),
            (
                b"<14>plain words only",
                Fields {
                    protocol: Rfc3164,
                    pri: Some((1, 6)),
                    timestamp: None,
                    host: None,
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "plain words only",
                },
            ),
            // No PRI: a line from /var/log/syslog.
            (
                b"Jun 15 11:58:01 web1 systemd[1]: Started Session 42 of user deploy.\r\n",
                Fields {
                    protocol: Rfc3164,
                    pri: None,
                    timestamp: Some(utc(2026, 6, 15, 11, 58, 1, 0)),
                    host: Some("web1"),
                    app: Some("systemd"),
                    pid: Some("1"),
                    msgid: None,
                    message: "Started Session 42 of user deploy.",
                },
            ),
            // An out-of-range PRI is content, not a PRI.
            (
                b"<999>Jun 15 11:58:01 x",
                Fields {
                    protocol: Rfc3164,
                    pri: None,
                    timestamp: None,
                    host: None,
                    app: None,
                    pid: None,
                    msgid: None,
                    message: "",
                },
            ),
        ];
        for (line, expected) in cases {
            let parsed = parse_syslog(line, NOW());
            if expected.pri.is_none() && expected.timestamp.is_none() {
                assert!(parsed.is_err(), "{}", String::from_utf8_lossy(line));
                continue;
            }
            let parsed = parsed.expect("parses");
            assert_eq!(
                fields(&parsed),
                *expected,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn not_syslog() {
        for line in [
            &b""[..],
            b"hello world",
            b"May I help you",
            b"<>x",
            b"<1a>x",
        ] {
            assert!(
                parse_syslog(line, NOW()).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn names_and_levels() {
        assert_eq!(severity_name(3), Some("err"));
        assert_eq!(severity_name(4), Some("warning"));
        assert_eq!(severity_name(8), None);
        assert_eq!(facility_name(1), Some("user"));
        assert_eq!(facility_name(23), Some("local7"));
        assert_eq!(facility_name(24), None);
        let levels: Vec<Option<Level>> = (0..=8).map(severity_level).collect();
        assert_eq!(
            levels,
            vec![
                Some(Level::Fatal),
                Some(Level::Fatal),
                Some(Level::Fatal),
                Some(Level::Error),
                Some(Level::Warn),
                Some(Level::Info),
                Some(Level::Info),
                Some(Level::Debug),
                None
            ]
        );
    }
}
