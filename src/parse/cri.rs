//! CRI container logs (containerd, CRI-O; what kubelet leaves in `/var/log/pods`):
//! `<RFC 3339 nano time> <stdout|stderr> <tags> <message>`.
//!
//! The tags field is `F` for a full line or `P` for a partial one: the runtime splits long lines
//! (16 KiB by default) into `P` records ended by an `F` record, and the source joins them.
//! The CRI spec allows further tags after a `:`; only the first decides.

use nom::bytes::complete::take_while1;
use nom::character::complete::char;

use super::timestamp::rfc3339;
use super::{ParseError, Stream, trim_line_end};
use crate::time::Timestamp;

/// One CRI log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub timestamp: Timestamp,
    pub stream: Stream,
    /// `P`: more of this line follows in the next record.
    pub partial: bool,
    /// The text after the tags' separator space, without a trailing CR/LF.
    pub message: &'a [u8],
}

/// Parses one CRI record.
pub fn parse_cri(input: &[u8]) -> Result<CriLine<'_>, ParseError> {
    let error = |rest: &[u8], expected| ParseError::at(input, rest, expected);
    let (rest, timestamp) = rfc3339(input).map_err(|_| error(input, "RFC 3339 time"))?;
    let (rest, _) =
        char::<_, nom::error::Error<&[u8]>>(' ')(rest).map_err(|_| error(rest, "SP after time"))?;
    let (rest, stream_name) = take_while1::<_, _, nom::error::Error<&[u8]>>(|b| b != b' ')(rest)
        .map_err(|_| error(rest, "stream"))?;
    let stream = Stream::from_name(stream_name).ok_or_else(|| error(rest, "stdout or stderr"))?;
    let (rest, _) = char::<_, nom::error::Error<&[u8]>>(' ')(rest)
        .map_err(|_| error(rest, "SP after stream"))?;
    let (rest, tags) = take_while1::<_, _, nom::error::Error<&[u8]>>(|b| b != b' ')(rest)
        .map_err(|_| error(rest, "tags"))?;
    let partial = match tags.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(error(rest, "P or F")),
    };
    // An empty line may come without the separator space.
    let message = match rest {
        [] => rest,
        [b' ', message @ ..] => message,
        _ => return Err(error(rest, "SP after tags")),
    };
    Ok(CriLine {
        timestamp,
        stream,
        partial,
        message: trim_line_end(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    #[test]
    fn records() {
        let cases: &[(&str, Timestamp, Stream, bool, &str)] = &[
            (
                "2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1",
                utc(2016, 10, 6, 0, 17, 9, 669_794_202),
                Stream::Stdout,
                false,
                "The content of the log entry 1",
            ),
            (
                "2016-10-06T00:17:09.669794202Z stdout P First line of log entry 2",
                utc(2016, 10, 6, 0, 17, 9, 669_794_202),
                Stream::Stdout,
                true,
                "First line of log entry 2",
            ),
            (
                "2026-06-15T12:00:00.123456789+02:00 stderr F Exception in thread \"main\" java.lang.NullPointerException\r",
                utc(2026, 6, 15, 10, 0, 0, 123_456_789),
                Stream::Stderr,
                false,
                "Exception in thread \"main\" java.lang.NullPointerException",
            ),
            (
                "2026-06-15T12:00:00Z stdout F",
                utc(2026, 6, 15, 12, 0, 0, 0),
                Stream::Stdout,
                false,
                "",
            ),
            (
                "2026-06-15T12:00:00Z stdout F:x   indented",
                utc(2026, 6, 15, 12, 0, 0, 0),
                Stream::Stdout,
                false,
                "  indented",
            ),
        ];
        for (line, timestamp, stream, partial, message) in cases {
            let parsed = parse_cri(line.as_bytes()).expect(line);
            assert_eq!(
                parsed,
                CriLine {
                    timestamp: *timestamp,
                    stream: *stream,
                    partial: *partial,
                    message: message.as_bytes(),
                },
                "{line}"
            );
        }
    }

    #[test]
    fn not_cri() {
        for line in [
            "",
            "2016-10-06T00:17:09Z",
            "2016-10-06T00:17:09Z stdin F x",
            "2016-10-06T00:17:09Z stdout X x",
            "2016-10-06T00:17:09Z stdout Fx",
            "2016-10-06T00:17:09Zstdout F x",
            "hello stdout F x",
        ] {
            assert!(parse_cri(line.as_bytes()).is_err(), "{line}");
        }
    }
}
