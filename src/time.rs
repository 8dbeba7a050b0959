//! Timestamps as nanoseconds since the Unix epoch, and their RFC 3339 form.
//!
//! Every entry carries a timestamp and every JSON line prints one, so formatting sits on the hot
//! path: it is done by hand with the civil-from-days algorithm (Howard Hinnant's) instead of a
//! calendar crate, and writes into the caller's buffer without allocating.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, UTC, in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => Timestamp(elapsed.as_nanos() as i64),
            Err(before) => Timestamp(-(before.duration().as_nanos() as i64)),
        }
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1_000_000_000))
    }

    pub fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// Builds a timestamp from calendar fields (UTC). Returns `None` for fields out of range.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanos: u32,
    ) -> Option<Self> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
            || nanos >= 1_000_000_000
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60;
        let seconds = seconds + i64::from(second);
        Some(Timestamp(
            seconds.checked_mul(1_000_000_000)? + i64::from(nanos),
        ))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(1_000_000_000) as u32
    }

    /// The calendar year of this timestamp (UTC).
    pub fn year(self) -> i64 {
        civil_from_days(self.unix_seconds().div_euclid(86_400)).0
    }

    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration.as_nanos() as i64))
    }

    /// Appends the RFC 3339 form, e.g. `2026-01-01T00:00:00.000Z`. Milliseconds are always
    /// written; micro- or nanoseconds only when the timestamp carries them.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let seconds = self.unix_seconds();
        let nanos = self.subsec_nanos();
        out.extend_from_slice(&date_and_time(seconds));
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(out, nanos / 1_000, 6);
        } else {
            push_digits(out, nanos, 9);
        }
        out.push(b'Z');
    }

    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(30);
        self.write_rfc3339(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second (a `Timestamp` spans the years 1677 to 2262: always
/// four digits). Entries written one after another mostly fall in the same second, so the last
/// one is kept (per thread).
fn date_and_time(seconds: i64) -> [u8; 19] {
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
    }
    let (last_seconds, last_text) = LAST.get();
    if last_seconds == seconds {
        return last_text;
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let year = year.clamp(0, 9999) as u32;
    let second_of_day = seconds.rem_euclid(86_400) as u32;
    let mut text = *b"0000-00-00T00:00:00";
    for (range, value) in [
        (0..4, year),
        (5..7, month),
        (8..10, day),
        (11..13, second_of_day / 3600),
        (14..16, second_of_day / 60 % 60),
        (17..19, second_of_day % 60),
    ] {
        write_digits(&mut text[range], value);
    }
    LAST.set((seconds, text));
    text
}

fn push_digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    write_digits(&mut out[start..], value);
}

/// `value`'s last `slots.len()` decimal digits, zero-padded.
fn write_digits(slots: &mut [u8], mut value: u32) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a duration such as `500ms`, `10s`, `10m`, `24h`, `7d`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "us" | "µs" => 0.000_001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let seconds = number * seconds_per_unit;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_known_dates() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        let t = Timestamp::from_civil(2026, 1, 1, 0, 0, 0, 0).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-01T00:00:00.000Z");
        let t = Timestamp::from_civil(2024, 2, 29, 23, 59, 59, 123_456_000).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-02-29T23:59:59.123456Z");
        assert_eq!(t.year(), 2024);
        assert!(Timestamp::from_civil(2023, 2, 29, 0, 0, 0, 0).is_none());
        // The same second again (from the kept text), the next one, and years past 9999.
        let same = Timestamp::from_civil(2024, 2, 29, 23, 59, 59, 7).unwrap();
        assert_eq!(same.to_rfc3339(), "2024-02-29T23:59:59.000000007Z");
        let next = Timestamp::from_civil(2024, 3, 1, 0, 0, 0, 0).unwrap();
        assert_eq!(next.to_rfc3339(), "2024-03-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(i64::MAX).to_rfc3339(),
            "2262-04-11T23:47:16.854775807Z"
        );
        assert_eq!(
            Timestamp(-1_000_000_000).to_rfc3339(),
            "1969-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn civil_round_trips_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("ten seconds"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
