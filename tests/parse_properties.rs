//! Properties of the parsers: none panics on any input (random bytes, valid lines cut short or
//! with a byte changed, pathological megabyte lines), and a generated RFC 5424 message parses
//! back to exactly the fields it was built from.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use tailfix::parse::cri::parse_cri;
use tailfix::parse::docker::parse_docker;
use tailfix::parse::json::parse_json;
use tailfix::parse::logfmt::parse_logfmt;
use tailfix::parse::syslog::{Protocol, parse_rfc3164, parse_rfc5424, parse_syslog};
use tailfix::parse::timestamp::{parse_bsd, parse_epoch, parse_rfc3339, parse_timestamp};
use tailfix::parse::{Format, decode};
use tailfix::time::Timestamp;

const FORMATS: [Format; 7] = [
    Format::Auto,
    Format::Text,
    Format::Json,
    Format::Logfmt,
    Format::Syslog,
    Format::Cri,
    Format::Docker,
];

/// Valid lines of every format, to be cut and mutated.
const SAMPLES: &[&[u8]] = &[
    br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][esc q="a \"b\" \\ \]"] \xEF\xBB\xBFAn application event log entry"#,
    b"<13>1 - - - - - -",
    b"<34>Oct 11 22:14:15 mymachine su[77]: 'su root' failed for lonvick on /dev/pts/8",
    b"<189>123: core-sw1: *Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: Configured from console",
    b"<30>2026-06-15T13:59:58.123456+02:00 db1 postgres[991]: checkpoint complete",
    b"<12>billing: payment declined\x00",
    b"2016-10-06T00:17:09.669794202Z stdout P The content of the log entry 1",
    br#"{"log":"Log line \"is\" here\u00e9\n","stream":"stderr","attrs":{"a":[1]},"time":"2019-01-01T11:11:11.111111111Z"}"#,
    br#"{"level":50,"time":1750000000123,"msg":"payment failed","err":{"type":"Error","stack":["a","b"]},"n":-1.5e3,"ok":true,"x":null}"#,
    br#"time="2026-06-15T12:00:00Z" level=error msg="query \"users\" failed" retries=3 flag"#,
];

fn now() -> Timestamp {
    Timestamp::from_civil(2026, 6, 15, 12, 0, 0, 0).expect("valid date")
}

/// Runs every parser, and `decode` in every format, on `input`. Results are ignored: the
/// property is that this returns.
fn run_everything(input: &[u8]) {
    let _ = parse_syslog(input, now());
    let _ = parse_rfc5424(input);
    let _ = parse_rfc3164(input, now());
    let _ = parse_cri(input);
    let _ = parse_docker(input);
    let _ = parse_json(input);
    let _ = parse_logfmt(input);
    let _ = parse_rfc3339(input);
    let _ = parse_bsd(input, now());
    let _ = parse_epoch(input);
    let _ = parse_timestamp(input, Timestamp(i64::MAX));
    let _ = parse_timestamp(input, Timestamp(i64::MIN));
    let line = Bytes::copy_from_slice(input);
    for format in FORMATS {
        let entry = decode(
            format,
            line.clone(),
            Arc::from("source"),
            Arc::from("node"),
            now(),
        );
        // Garbage is kept, never dropped.
        assert_eq!(entry.raw, line);
    }
}

proptest! {
    #[test]
    fn no_parser_panics_on_random_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        run_everything(&input);
    }

    /// Random bytes behind a plausible head reach deeper into each grammar than pure noise.
    #[test]
    fn no_parser_panics_on_plausible_heads(
        head in prop::sample::select(vec![
            &b"<13>1 "[..], b"<13>1 2026-01-01T00:00:00Z h a p m [", b"<13>Jan  1 00:00:00 ",
            b"<189>1: *", b"{\"log\":\"", b"{\"a\":[", b"2026-01-01T00:00:00Z stdout ",
            b"a=\"", b"<13>1 - - - - - [x y=\"",
        ]),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut input = head.to_vec();
        input.extend_from_slice(&tail);
        run_everything(&input);
    }

    #[test]
    fn no_parser_panics_on_truncated_or_mutated_lines(
        sample in prop::sample::select(SAMPLES.to_vec()),
        cut in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let cut = cut.index(sample.len() + 1);
        run_everything(&sample[..cut]);
        let mut mutated = sample.to_vec();
        let at = position.index(mutated.len());
        mutated[at] = byte;
        run_everything(&mutated);
        run_everything(&mutated[..cut]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_a_random_megabyte(input in proptest::collection::vec(any::<u8>(), 1 << 20)) {
        run_everything(&input);
    }
}

#[test]
fn no_parser_panics_on_pathological_megabyte_lines() {
    const MIB: usize = 1 << 20;
    let repeat = |head: &[u8], unit: &[u8], tail: &[u8]| {
        let mut line = head.to_vec();
        while line.len() < MIB {
            line.extend_from_slice(unit);
        }
        line.extend_from_slice(tail);
        line
    };
    let lines = [
        repeat(b"{\"a\":", b"[", b""),
        repeat(b"{\"a\":", b"{\"b\":", b""),
        repeat(b"{\"log\":\"", b"\\", b"\"}"),
        repeat(b"{\"log\":\"", b"\\u", b""),
        repeat(b"<13>1 - h a p m ", b"[x y=\"\\\"\"]", b" msg"),
        repeat(b"<13>1 - h a p m [x", b" y=\"\\]\"", b"] msg"),
        repeat(b"<13>Jan  1 00:00:00 ", b"x", b": y"),
        repeat(b"<13>", b"a", b"[1]: y"),
        repeat(b"", b"k=v ", b""),
        repeat(b"a=\"", b"\\\"", b""),
        repeat(b"2026-01-01T00:00:00.", b"9", b"Z stdout F x"),
        repeat(b"", b"9", b""),
        repeat(b"", b" ", b""),
        vec![b'<'; MIB],
    ];
    for line in &lines {
        run_everything(line);
    }
    // The deep JSON is refused, not recursed into; the escaped megabyte of 5424 SD is read.
    assert!(parse_json(&lines[0]).is_err());
    let sd = parse_rfc5424(&lines[4]).expect("a megabyte of SD elements");
    assert!(sd.structured_data.len() > 50_000);
    assert_eq!(sd.message, b"msg");
}

/// The parts of a generated RFC 5424 message.
#[derive(Debug, Clone)]
struct Generated {
    pri: u8,
    timestamp: Option<(String, Timestamp)>,
    hostname: Option<String>,
    app_name: Option<String>,
    proc_id: Option<String>,
    msg_id: Option<String>,
    structured_data: Vec<(String, Vec<(String, String)>)>,
    bom: bool,
    message: String,
}

impl Generated {
    fn render(&self) -> Vec<u8> {
        let nil = |field: &Option<String>| field.clone().unwrap_or_else(|| "-".into());
        let mut line = format!(
            "<{}>1 {} {} {} {} {} ",
            self.pri,
            self.timestamp
                .as_ref()
                .map_or("-".to_string(), |(text, _)| text.clone()),
            nil(&self.hostname),
            nil(&self.app_name),
            nil(&self.proc_id),
            nil(&self.msg_id),
        );
        if self.structured_data.is_empty() {
            line.push('-');
        }
        for (id, params) in &self.structured_data {
            line.push('[');
            line.push_str(id);
            for (name, value) in params {
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace(']', "\\]");
                line.push_str(&format!(" {name}=\"{escaped}\""));
            }
            line.push(']');
        }
        let mut bytes = line.into_bytes();
        if self.bom || !self.message.is_empty() {
            bytes.push(b' ');
            if self.bom {
                bytes.extend_from_slice(b"\xEF\xBB\xBF");
            }
            bytes.extend_from_slice(self.message.as_bytes());
        }
        bytes
    }
}

/// 1..=max PRINTUSASCII, never exactly the NILVALUE.
fn print_us_ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[!-~]{{1,{max}}}"))
        .expect("regex")
        .prop_filter("not NILVALUE", |text| text != "-")
}

/// SD-NAME: PRINTUSASCII except `=`, `]`, `"`.
fn sd_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[!#-<>-\\^-~]{1,32}"#).expect("regex")
}

/// A PARAM-VALUE: any text, or text dense in the three bytes that must be escaped.
fn param_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::string::string_regex(r#"["\\\] a-zé\[=]{0,16}"#).expect("regex"),
    ]
}

/// An RFC 3339 time with a random fraction length and offset, and the instant it names.
fn rfc3339_time() -> impl Strategy<Value = (String, Timestamp)> {
    (
        (1970i64..2200, 1u32..=12, 1u32..=28),
        (0u32..24, 0u32..60, 0u32..60),
        (0usize..=9, 0u32..1_000_000_000),
        proptest::option::of((any::<bool>(), 0i64..=23, 0i64..60)),
    )
        .prop_map(
            |((year, month, day), (hour, minute, second), (digits, nanos), offset)| {
                // Keep only the digits that are written.
                let scale = 10u32.pow(9 - digits as u32);
                let nanos = nanos / scale * scale;
                let mut text =
                    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
                if digits > 0 {
                    let fraction = format!("{nanos:09}");
                    text.push('.');
                    text.push_str(&fraction[..digits]);
                }
                let offset_seconds = match offset {
                    None => {
                        text.push('Z');
                        0
                    }
                    Some((west, hours, minutes)) => {
                        let sign = if west { '-' } else { '+' };
                        text.push_str(&format!("{sign}{hours:02}:{minutes:02}"));
                        (hours * 3600 + minutes * 60) * if west { -1 } else { 1 }
                    }
                };
                let local = Timestamp::from_civil(year, month, day, hour, minute, second, nanos)
                    .expect("generated date is valid");
                (text, Timestamp(local.0 - offset_seconds * 1_000_000_000))
            },
        )
}

prop_compose! {
    fn generated_5424()(
        pri in 0u8..=191,
        timestamp in proptest::option::of(rfc3339_time()),
        hostname in proptest::option::of(print_us_ascii(255)),
        app_name in proptest::option::of(print_us_ascii(48)),
        proc_id in proptest::option::of(print_us_ascii(128)),
        msg_id in proptest::option::of(print_us_ascii(32)),
        structured_data in proptest::collection::vec(
            (sd_name(), proptest::collection::vec((sd_name(), param_value()), 0..4)),
            0..4,
        ),
        bom in any::<bool>(),
        // Any text but a leading BOM (that one would be stripped) and trailing CR/LF/NUL
        // (trimmed as line ends).
        message in any::<String>().prop_map(|text| {
            text.trim_start_matches('\u{FEFF}')
                .trim_end_matches(['\r', '\n', '\0'])
                .to_string()
        }),
    ) -> Generated {
        Generated {
            pri, timestamp, hostname, app_name, proc_id, msg_id, structured_data, bom, message,
        }
    }
}

proptest! {
    #[test]
    fn generated_rfc5424_parses_back(generated in generated_5424()) {
        let line = generated.render();
        for parsed in [parse_syslog(&line, now()), parse_rfc5424(&line)] {
            let parsed = parsed.map_err(|error| {
                TestCaseError::fail(format!("{error}: {}", String::from_utf8_lossy(&line)))
            })?;
            let text = |field: Option<&[u8]>| field.map(|f| String::from_utf8_lossy(f).into_owned());
            prop_assert_eq!(parsed.protocol, Protocol::Rfc5424);
            prop_assert_eq!(parsed.facility, Some(generated.pri / 8));
            prop_assert_eq!(parsed.severity, Some(generated.pri % 8));
            prop_assert_eq!(parsed.timestamp, generated.timestamp.as_ref().map(|(_, t)| *t));
            prop_assert_eq!(text(parsed.hostname), generated.hostname.clone());
            prop_assert_eq!(text(parsed.app_name), generated.app_name.clone());
            prop_assert_eq!(text(parsed.proc_id), generated.proc_id.clone());
            prop_assert_eq!(text(parsed.msg_id), generated.msg_id.clone());
            let structured_data: Vec<(String, Vec<(String, String)>)> = parsed
                .structured_data
                .iter()
                .map(|element| {
                    (
                        String::from_utf8_lossy(element.id).into_owned(),
                        element
                            .params
                            .iter()
                            .map(|param| {
                                (
                                    String::from_utf8_lossy(param.name).into_owned(),
                                    String::from_utf8_lossy(&param.value).into_owned(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect();
            prop_assert_eq!(&structured_data, &generated.structured_data);
            prop_assert_eq!(parsed.message, generated.message.as_bytes());
        }
    }
}
