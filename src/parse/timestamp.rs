//! The timestamp forms log lines carry: RFC 3339, BSD syslog's `Mmm dd hh:mm:ss`, and epoch
//! numbers.
//!
//! Each form has a nom parser (`rfc3339`, `bsd`, `epoch`) for use inside other grammars, and a
//! `parse_*` wrapper that returns the `Timestamp` and the number of bytes consumed. All of them
//! are lenient where real writers differ from the standards and strict where a wrong guess would
//! silently shift a time:
//!
//! * RFC 3339 accepts `T`, `t` or a space between date and time, a fraction of any length (`.` or
//!   the `,` of Python's `logging`; digits past nanoseconds are read and dropped), and `Z`,
//!   `+hh:mm` or `+hhmm`. A time without an offset is taken as UTC: the line says nothing better.
//! * BSD timestamps have no year and no zone. The zone is taken as UTC; the year is inferred from
//!   the time the line was received (`infer_year`).
//! * Epoch numbers are seconds, milliseconds, microseconds or nanoseconds, told apart by
//!   magnitude, with an optional fraction.

use nom::bytes::complete::take_while_m_n;
use nom::character::complete::{char, one_of};
use nom::combinator::opt;
use nom::error::{Error, ErrorKind};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::time::{Timestamp, civil_from_days};

type Res<'a, T> = IResult<&'a [u8], T>;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// How far into the future (relative to the receive time) an inferred BSD date may lie. Senders
/// write local time without a zone (up to 14 hours off UTC) and their clocks drift; a date
/// further ahead than this belongs to an earlier year.
const FUTURE_TOLERANCE_NANOS: i64 = 7 * 86_400 * NANOS_PER_SECOND;

/// An RFC 3339 timestamp at the start of `input`, and the bytes it spans.
pub fn parse_rfc3339(input: &[u8]) -> Option<(Timestamp, usize)> {
    consumed(input, rfc3339(input))
}

/// A BSD syslog timestamp (`Mmm dd hh:mm:ss`, optional year and fraction) at the start of
/// `input`, with its year inferred from `now`, the time the line was received.
pub fn parse_bsd(input: &[u8], now: Timestamp) -> Option<(Timestamp, usize)> {
    consumed(input, bsd(input, now))
}

/// An epoch number (seconds, millis, micros or nanos by magnitude) at the start of `input`.
pub fn parse_epoch(input: &[u8]) -> Option<(Timestamp, usize)> {
    consumed(input, epoch(input))
}

/// Any of the three forms, tried in the order least likely to misread: RFC 3339, BSD, epoch.
pub fn parse_timestamp(input: &[u8], now: Timestamp) -> Option<(Timestamp, usize)> {
    parse_rfc3339(input)
        .or_else(|| parse_bsd(input, now))
        .or_else(|| parse_epoch(input))
}

fn consumed(input: &[u8], result: Res<'_, Timestamp>) -> Option<(Timestamp, usize)> {
    result
        .ok()
        .map(|(rest, timestamp)| (timestamp, input.len() - rest.len()))
}

fn fail<T>(input: &[u8]) -> Res<'_, T> {
    Err(nom::Err::Error(Error::new(input, ErrorKind::Verify)))
}

/// Between `min` and `max` (at most 9) ASCII digits as a number.
fn number(input: &[u8], min: usize, max: usize) -> Res<'_, u32> {
    // By hand rather than `take_while_m_n`: every timestamp of every line comes through here.
    let len = input
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len < min {
        return fail(input);
    }
    let value = input[..len]
        .iter()
        .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
    Ok((&input[len..], value))
}

/// Two ASCII digits at `input[at..]`, as a number.
fn two_digits(input: &[u8], at: usize) -> Option<u32> {
    match input.get(at..at + 2)? {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            Some(u32::from(tens - b'0') * 10 + u32::from(ones - b'0'))
        }
        _ => None,
    }
}

/// The digits of a fraction of a second, as nanoseconds. Digits beyond the ninth are consumed
/// and dropped, so that a 12-digit fraction still parses.
fn fraction(input: &[u8]) -> Res<'_, u32> {
    let len = input.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return fail(input);
    }
    let kept = &input[..len.min(9)];
    let nanos = kept
        .iter()
        .fold(0u32, |nanos, digit| nanos * 10 + u32::from(digit - b'0'))
        * 10u32.pow(9 - kept.len() as u32);
    Ok((&input[len..], nanos))
}

/// `hh:mm:ss`.
fn clock(input: &[u8]) -> Res<'_, (u32, u32, u32)> {
    let (rest, hour) = number(input, 2, 2)?;
    let (rest, _) = char(':')(rest)?;
    let (rest, minute) = number(rest, 2, 2)?;
    let (rest, _) = char(':')(rest)?;
    let (rest, second) = number(rest, 2, 2)?;
    Ok((rest, (hour, minute, second)))
}

/// `Z`, `+hh:mm` or `+hhmm`, as seconds east of UTC.
fn utc_offset(input: &[u8]) -> Res<'_, i64> {
    if let Ok((rest, _)) = one_of::<_, _, Error<&[u8]>>("Zz")(input) {
        return Ok((rest, 0));
    }
    let (rest, sign) = one_of("+-")(input)?;
    let (rest, hours) = number(rest, 2, 2)?;
    let (rest, _) = opt(char(':')).parse(rest)?;
    let (rest, minutes) = number(rest, 2, 2)?;
    if hours > 23 || minutes > 59 {
        return fail(input);
    }
    let seconds = i64::from(hours * 3600 + minutes * 60);
    Ok((rest, if sign == '-' { -seconds } else { seconds }))
}

/// RFC 3339 (`2026-01-01T12:00:00.123456+01:00`), converted to UTC.
pub fn rfc3339(input: &[u8]) -> Res<'_, Timestamp> {
    // `YYYY-MM-DDThh:mm:ss` has fixed places: read by position, the hot path of most lines.
    let fixed = (|| {
        let year = two_digits(input, 0)? * 100 + two_digits(input, 2)?;
        let separators = [input.get(4)?, input.get(7)?, input.get(13)?, input.get(16)?];
        if separators != [&b'-', &b'-', &b':', &b':']
            || !matches!(input.get(10)?, b'T' | b't' | b' ')
        {
            return None;
        }
        Some((
            year,
            two_digits(input, 5)?,
            two_digits(input, 8)?,
            two_digits(input, 11)?,
            two_digits(input, 14)?,
            two_digits(input, 17)?,
        ))
    })();
    let Some((year, month, day, hour, minute, second)) = fixed else {
        return fail(input);
    };
    let rest = &input[19..];
    let (rest, nanos) = match rest {
        [b'.' | b',', tail @ ..] => match fraction(tail) {
            Ok((rest, nanos)) => (rest, nanos),
            Err(_) => (rest, 0),
        },
        _ => (rest, 0),
    };
    let (rest, offset) = match rest {
        [b'Z' | b'z', tail @ ..] => (tail, 0),
        [b'+' | b'-', ..] => utc_offset(rest).unwrap_or((rest, 0)),
        _ => (rest, 0),
    };
    let utc = Timestamp::from_civil(i64::from(year), month, day, hour, minute, second, nanos)
        .and_then(|local| {
            local
                .0
                .checked_sub(offset * NANOS_PER_SECOND)
                .map(Timestamp)
        });
    match utc {
        Some(timestamp) => Ok((rest, timestamp)),
        None => fail(input),
    }
}

/// A three-letter English month name, any case, as 1..=12.
fn month_name(input: &[u8]) -> Res<'_, u32> {
    let Some(name) = input.get(..3) else {
        return fail(input);
    };
    let mut lower = [0u8; 3];
    for (slot, byte) in lower.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    let month = match &lower {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return fail(input),
    };
    Ok((&input[3..], month))
}

/// BSD syslog time: `Mmm dd hh:mm:ss`, the day padded with a space or a zero (or, from sloppy
/// senders, not padded), optionally `Mmm dd yyyy hh:mm:ss` (Cisco, ASA), optionally with a
/// fraction (`.123`, Cisco `msec`). Without a year, the year is inferred from `now`.
pub fn bsd(input: &[u8], now: Timestamp) -> Res<'_, Timestamp> {
    let (rest, month) = month_name(input)?;
    let (rest, _) = take_while_m_n(1, 2, |b| b == b' ')(rest)?;
    let (rest, day) = number(rest, 1, 2)?;
    let (rest, _) = char(' ')(rest)?;
    let (rest, year) = opt((|i| number(i, 4, 4), char(' '))).parse(rest)?;
    let (rest, (hour, minute, second)) = clock(rest)?;
    let (rest, nanos) = opt(preceded(char('.'), fraction)).parse(rest)?;
    let at = |year: i64| {
        Timestamp::from_civil(year, month, day, hour, minute, second, nanos.unwrap_or(0))
    };
    let timestamp = match year {
        Some((year, _)) => at(i64::from(year)),
        None => infer_year(now, at),
    };
    match timestamp {
        Some(timestamp) => Ok((rest, timestamp)),
        None => fail(input),
    }
}

/// The most recent of last year, this year and next year (relative to `now`) that does not put
/// the date more than a week into the future. So a December line received on 2 January belongs
/// to last year, a January line received on 31 December to next year, and an old line read from
/// a file months later to the year it was written in. `at` builds the date in a given year
/// (`None` when it does not exist, like 29 February in most years).
pub fn infer_year(now: Timestamp, at: impl Fn(i64) -> Option<Timestamp>) -> Option<Timestamp> {
    let (year, _, _) = civil_from_days(now.unix_seconds().div_euclid(86_400));
    let latest = now.0.saturating_add(FUTURE_TOLERANCE_NANOS);
    [year + 1, year, year - 1]
        .into_iter()
        .filter_map(at)
        .find(|candidate| candidate.0 <= latest)
}

/// Epoch time: an integer of up to 19 digits, optionally with a fraction of its unit. The unit
/// is told by magnitude: below 10^11 seconds (until the year 5138), below 10^14 milliseconds,
/// below 10^17 microseconds, else nanoseconds.
pub fn epoch(input: &[u8]) -> Res<'_, Timestamp> {
    let (rest, integer) = take_while_m_n(1, 19, |b: u8| b.is_ascii_digit())(input)?;
    if rest.first().is_some_and(u8::is_ascii_digit) {
        return fail(input);
    }
    let (rest, fraction_nanos) = opt(preceded(char('.'), fraction)).parse(rest)?;
    let value = integer
        .iter()
        .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
    let fraction_nanos = i64::from(fraction_nanos.unwrap_or(0));
    let Ok(value) = i64::try_from(value) else {
        return fail(input);
    };
    // Checked: ten-digit seconds past the year 2262 do not fit in i64 nanoseconds.
    let nanos = if value < 100_000_000_000 {
        value
            .checked_mul(NANOS_PER_SECOND)
            .and_then(|nanos| nanos.checked_add(fraction_nanos))
    } else if value < 100_000_000_000_000 {
        value
            .checked_mul(1_000_000)
            .and_then(|nanos| nanos.checked_add(fraction_nanos / 1_000))
    } else if value < 100_000_000_000_000_000 {
        value
            .checked_mul(1_000)
            .and_then(|nanos| nanos.checked_add(fraction_nanos / 1_000_000))
    } else {
        Some(value)
    };
    match nanos {
        Some(nanos) => Ok((rest, Timestamp(nanos))),
        None => fail(input),
    }
}

/// An epoch number that arrived as a float (JSON `1.7e9`, zap's `"ts":1700000000.123`), with the
/// same magnitude rule as `epoch`.
pub fn epoch_from_f64(value: f64) -> Option<Timestamp> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let unit: i64 = if value < 1e11 {
        NANOS_PER_SECOND
    } else if value < 1e14 {
        1_000_000
    } else if value < 1e17 {
        1_000
    } else {
        1
    };
    // Integer and fraction apart: `1700000000123.0 * 1e6` is past f64's exact integers. `as`
    // saturates, so refuse values at the edge instead of returning the year 2262.
    let whole = value.trunc();
    if whole >= i64::MAX as f64 {
        return None;
    }
    let fraction_nanos = (value.fract() * unit as f64).round() as i64;
    (whole as i64)
        .checked_mul(unit)
        .and_then(|nanos| nanos.checked_add(fraction_nanos))
        .map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 3339 as the grammar reads it, combinator by combinator: what the by-position parser
    /// must agree with.
    fn rfc3339_by_grammar(input: &[u8]) -> Option<(Timestamp, usize)> {
        let parsed = (|| -> Res<'_, Timestamp> {
            let (rest, year) = number(input, 4, 4)?;
            let (rest, _) = char('-')(rest)?;
            let (rest, month) = number(rest, 2, 2)?;
            let (rest, _) = char('-')(rest)?;
            let (rest, day) = number(rest, 2, 2)?;
            let (rest, _) = one_of("Tt ")(rest)?;
            let (rest, (hour, minute, second)) = clock(rest)?;
            let (rest, nanos) = opt(preceded(one_of(".,"), fraction)).parse(rest)?;
            let (rest, offset) = opt(utc_offset).parse(rest)?;
            let local = Timestamp::from_civil(
                i64::from(year),
                month,
                day,
                hour,
                minute,
                second,
                nanos.unwrap_or(0),
            );
            match local.and_then(|l| l.0.checked_sub(offset.unwrap_or(0) * NANOS_PER_SECOND)) {
                Some(nanos) => Ok((rest, Timestamp(nanos))),
                None => fail(input),
            }
        })();
        consumed(input, parsed)
    }

    /// Timestamps mostly well formed, with each part sometimes not.
    fn timestamp_text() -> impl Strategy<Value = String> {
        let two = |range: std::ops::RangeInclusive<u32>| {
            prop_oneof![
                4 => range.prop_map(|n| format!("{n:02}")),
                1 => "[0-9]{1,3}",
            ]
        };
        (
            prop_oneof![4 => (1900u32..2200).prop_map(|y| y.to_string()), 1 => "[0-9]{3,5}"],
            two(0..=13),
            two(0..=32),
            "[Tt x]",
            (two(0..=24), two(0..=60), two(0..=61)),
            "([.,][0-9]{0,12})?",
            "([Zz]|[+-][0-9]{2}:?[0-9]{0,2})?",
            "[ a-z]{0,3}",
        )
            .prop_map(
                |(year, month, day, t, (h, m, sec), fraction, offset, tail)| {
                    format!("{year}-{month}-{day}{t}{h}:{m}:{sec}{fraction}{offset}{tail}")
                },
            )
    }

    proptest! {
        #[test]
        fn by_position_agrees_with_the_grammar(text in timestamp_text(), cut in 0usize..40) {
            let bytes = text.as_bytes();
            let input = &bytes[..bytes.len().min(cut.max(1) + 18)];
            prop_assert_eq!(parse_rfc3339(input), rfc3339_by_grammar(input), "{:?}", text);
            prop_assert_eq!(parse_rfc3339(bytes), rfc3339_by_grammar(bytes), "{:?}", text);
        }
    }

    fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, n: u32) -> Timestamp {
        Timestamp::from_civil(y, mo, d, h, mi, s, n).expect("valid date in test")
    }

    #[test]
    fn rfc3339_forms() {
        let cases: &[(&str, Option<(Timestamp, usize)>)] = &[
            (
                "2026-01-01T00:00:00Z",
                Some((utc(2026, 1, 1, 0, 0, 0, 0), 20)),
            ),
            (
                "2026-01-01t00:00:00z",
                Some((utc(2026, 1, 1, 0, 0, 0, 0), 20)),
            ),
            (
                "2026-03-04 05:06:07.5Z rest",
                Some((utc(2026, 3, 4, 5, 6, 7, 500_000_000), 22)),
            ),
            (
                "2016-10-06T00:17:09.669794202Z stdout",
                Some((utc(2016, 10, 6, 0, 17, 9, 669_794_202), 30)),
            ),
            // Fractions longer than nanoseconds are consumed, the excess dropped.
            (
                "2026-01-01T00:00:00.123456789123Z",
                Some((utc(2026, 1, 1, 0, 0, 0, 123_456_789), 33)),
            ),
            // Offsets convert to UTC, across midnight and the year boundary.
            (
                "2026-01-01T00:30:00+01:00",
                Some((utc(2025, 12, 31, 23, 30, 0, 0), 25)),
            ),
            (
                "2025-12-31T20:00:00.000-05:00",
                Some((utc(2026, 1, 1, 1, 0, 0, 0), 29)),
            ),
            (
                "2026-01-01T05:30:00+0530",
                Some((utc(2026, 1, 1, 0, 0, 0, 0), 24)),
            ),
            // Python logging's comma, no zone (taken as UTC).
            (
                "2026-01-01 12:00:00,123 ERROR",
                Some((utc(2026, 1, 1, 12, 0, 0, 123_000_000), 23)),
            ),
            // A leap second is kept as the next second rather than rejected.
            (
                "2016-12-31T23:59:60Z",
                Some((utc(2017, 1, 1, 0, 0, 0, 0), 20)),
            ),
            ("2026-02-30T00:00:00Z", None),
            ("2026-01-01T24:00:00Z", None),
            ("2026-1-01T00:00:00Z", None),
            ("2026-01-01", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339(text.as_bytes()), *expected, "{text}");
        }
    }

    #[test]
    fn bsd_forms_with_explicit_or_inferred_year() {
        let now = utc(2026, 6, 15, 12, 0, 0, 0);
        let cases: &[(&str, Option<(Timestamp, usize)>)] = &[
            (
                "Mar  1 18:46:11 host",
                Some((utc(2026, 3, 1, 18, 46, 11, 0), 15)),
            ),
            ("Mar 1 18:46:11", Some((utc(2026, 3, 1, 18, 46, 11, 0), 14))),
            (
                "Mar 01 18:46:11",
                Some((utc(2026, 3, 1, 18, 46, 11, 0), 15)),
            ),
            ("jun 15 11:00:00", Some((utc(2026, 6, 15, 11, 0, 0, 0), 15))),
            (
                "Mar  1 18:46:11.123: %SYS",
                Some((utc(2026, 3, 1, 18, 46, 11, 123_000_000), 19)),
            ),
            (
                "Jan 01 2024 12:00:00: %ASA",
                Some((utc(2024, 1, 1, 12, 0, 0, 0), 20)),
            ),
            (
                "Mar  1 2020 18:46:11.5 UTC",
                Some((utc(2020, 3, 1, 18, 46, 11, 500_000_000), 22)),
            ),
            // A date in a later month than now belongs to last year.
            ("Nov 20 08:00:00", Some((utc(2025, 11, 20, 8, 0, 0, 0), 15))),
            ("Mar 32 18:46:11", None),
            ("Foo  1 18:46:11", None),
            ("Mar  1 18:46", None),
            ("Mar", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bsd(text.as_bytes(), now), *expected, "{text}");
        }
    }

    #[test]
    fn year_inference_around_new_year() {
        // A December message received in January belongs to last year.
        let january = utc(2026, 1, 2, 0, 5, 0, 0);
        assert_eq!(
            parse_bsd(b"Dec 31 23:59:59", january).map(|(t, _)| t),
            Some(utc(2025, 12, 31, 23, 59, 59, 0))
        );
        // A January message received in December (sender clock ahead, or a zone east of UTC)
        // belongs to next year.
        let december = utc(2025, 12, 31, 23, 50, 0, 0);
        assert_eq!(
            parse_bsd(b"Jan  1 00:00:10", december).map(|(t, _)| t),
            Some(utc(2026, 1, 1, 0, 0, 10, 0))
        );
        // An old January line read from a file in December stays in its own year.
        let mid_december = utc(2025, 12, 1, 0, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Jan  5 00:00:00", mid_december).map(|(t, _)| t),
            Some(utc(2025, 1, 5, 0, 0, 0, 0))
        );
        // 29 February exists only in leap years: it goes to last year when that was one, and
        // is rejected when none of the three candidate years has it.
        let march_2025 = utc(2025, 3, 1, 0, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Feb 29 12:00:00", march_2025).map(|(t, _)| t),
            Some(utc(2024, 2, 29, 12, 0, 0, 0))
        );
        let march_2027 = utc(2027, 3, 1, 0, 0, 0, 0);
        assert_eq!(parse_bsd(b"Feb 29 12:00:00", march_2027), None);
        let march_2024 = utc(2024, 3, 1, 0, 0, 0, 0);
        assert_eq!(
            parse_bsd(b"Feb 29 12:00:00", march_2024).map(|(t, _)| t),
            Some(utc(2024, 2, 29, 12, 0, 0, 0))
        );
    }

    #[test]
    fn epoch_by_magnitude() {
        let second = utc(2023, 11, 14, 22, 13, 20, 0);
        let cases: &[(&str, Option<(Timestamp, usize)>)] = &[
            ("1700000000", Some((second, 10))),
            (
                "1700000000.25 x",
                Some((Timestamp(second.0 + 250_000_000), 13)),
            ),
            (
                "1700000000123",
                Some((Timestamp(second.0 + 123_000_000), 13)),
            ),
            (
                "1700000000123456",
                Some((Timestamp(second.0 + 123_456_000), 16)),
            ),
            (
                "1700000000123456789",
                Some((Timestamp(second.0 + 123_456_789), 19)),
            ),
            ("0", Some((Timestamp(0), 1))),
            ("17000000001234567890", None),
            ("99999999999", None),
            (
                "100000000000",
                Some((Timestamp(100_000_000_000_000_000), 12)),
            ),
            ("9999999999", None),
            ("99999999999999999999999", None),
            ("abc", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_epoch(text.as_bytes()), *expected, "{text}");
        }
        assert_eq!(
            epoch_from_f64(1.7e9),
            Some(Timestamp(1_700_000_000 * NANOS_PER_SECOND))
        );
        assert_eq!(
            epoch_from_f64(1_700_000_000_123.0),
            Some(Timestamp(second.0 + 123_000_000))
        );
        assert_eq!(epoch_from_f64(f64::NAN), None);
        assert_eq!(epoch_from_f64(1e30), None);
    }

    #[test]
    fn any_form() {
        let now = utc(2026, 6, 15, 12, 0, 0, 0);
        assert!(parse_timestamp(b"2026-01-01T00:00:00Z", now).is_some());
        assert!(parse_timestamp(b"Jun 15 11:00:00", now).is_some());
        assert!(parse_timestamp(b"1700000000", now).is_some());
        assert!(parse_timestamp(b"yesterday", now).is_none());
    }
}
