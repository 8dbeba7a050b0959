//! The log prefix of a line (time, level, thread, logger) and the message after it.
//!
//! A stack trace's entry takes its first line as the message *without* the prefix, so that the
//! same error logged at two times reads the same. A prefix is recognised only when it holds a
//! level word; otherwise the whole line is the message.

use crate::event::Level;

/// The message part of `line`: what follows a recognised `time level [thread] logger:` prefix.
pub fn strip_log_prefix(line: &[u8]) -> &[u8] {
    // env_logger and similar: `[2026-01-01T00:00:00Z WARN  app::module] message`.
    if line.first() == Some(&b'[')
        && let Some(close) = line.iter().take(160).position(|b| *b == b']')
        && line[1..close]
            .split(|b| *b == b' ')
            .any(|word| Level::from_name(word).is_some())
    {
        return trim_start(&line[close + 1..]);
    }
    let mut rest = line;
    let mut skipped = 0;
    // Time (one or two tokens of digits and date punctuation, maybe bracketed) and other
    // bracketed or one-letter tokens before the level.
    loop {
        let (token, after) = next_token(rest);
        if token.is_empty() || skipped > 5 {
            return line;
        }
        let bare = trim_brackets(token);
        if let Some(level_end) = level_prefix(bare) {
            // A lower-case level word opening the line is prose (`panic: …`), not a prefix.
            if skipped == 0 && !bare[..level_end].iter().all(u8::is_ascii_uppercase) {
                return line;
            }
            rest = if level_end < bare.len() {
                // `ERROR:root:message` (Python's default format).
                let tail = &bare[level_end..];
                let inside = tail.strip_prefix(b":").unwrap_or(tail);
                let offset = inside.as_ptr() as usize - rest.as_ptr() as usize;
                &rest[offset..]
            } else {
                after
            };
            break;
        }
        let is_time = token.iter().any(u8::is_ascii_digit)
            && token
                .iter()
                .all(|b| b.is_ascii_digit() || b"-/:.,TZ+[]#".contains(b));
        let is_decoration = token.starts_with(b"[") || (token.len() <= 2 && token.ends_with(b","));
        if !(is_time || is_decoration) {
            return line;
        }
        rest = after;
        skipped += 1;
    }
    // After the level: a `[thread]`, a `logger:` or `logger -`, Ruby's `-- :`.
    for _ in 0..3 {
        let (token, after) = next_token(rest);
        if token.starts_with(b"[") && token.ends_with(b"]") || token == b"--" || token == b":" {
            rest = after;
            continue;
        }
        if token.len() > 1 && token.ends_with(b":") && !token.contains(&b'"') {
            rest = after;
            break;
        }
        let (dash, after_dash) = next_token(after);
        if !token.is_empty() && dash == b"-" && !token.contains(&b'"') {
            rest = after_dash;
        }
        break;
    }
    let message = trim_start(rest);
    if message.is_empty() { line } else { message }
}

/// The length of a level word at the start of `token` (`ERROR`, `error:`, `WARN`), if any.
fn level_prefix(token: &[u8]) -> Option<usize> {
    let word_end = token
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(token.len());
    (word_end >= 3 && Level::from_name(&token[..word_end]).is_some()).then_some(word_end)
}

fn next_token(text: &[u8]) -> (&[u8], &[u8]) {
    let text = trim_start(text);
    let end = text
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(text.len());
    (&text[..end], &text[end..])
}

fn trim_brackets(token: &[u8]) -> &[u8] {
    let token = token.strip_prefix(b"[").unwrap_or(token);
    token.strip_suffix(b"]").unwrap_or(token)
}

fn trim_start(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_prefixes_of_common_loggers() {
        let cases: &[(&str, &str)] = &[
            (
                "2026-11-27 15:39:21,612 ERROR payments: charge failed for order 4711",
                "charge failed for order 4711",
            ),
            (
                "2026-01-01 12:00:00.000 ERROR [main] shop.Cart - checkout failed",
                "checkout failed",
            ),
            (
                "2026-01-01 12:00:00 ERROR request 1 failed",
                "request 1 failed",
            ),
            ("ERROR:root:division by zero", "root:division by zero"),
            (
                "[2026-01-01T00:00:00Z WARN  tailfix::file] slow disk",
                "slow disk",
            ),
            (
                "I, [2026-01-01T12:00:06.000000 #1]  INFO -- : greeter starting",
                "greeter starting",
            ),
            (
                "2026-01-01T12:00:03.100Z error reserve failed: Error: unknown item pear",
                "reserve failed: Error: unknown item pear",
            ),
            (
                "Exception in thread \"main\" java.lang.IllegalStateException: boom",
                "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            ),
            (
                "panic: assignment to entry in nil map",
                "panic: assignment to entry in nil map",
            ),
            (
                "2026/01/01 12:00:05 cache starting",
                "2026/01/01 12:00:05 cache starting",
            ),
            ("ERROR", "ERROR"),
            ("", ""),
        ];
        for (line, message) in cases {
            assert_eq!(
                String::from_utf8_lossy(strip_log_prefix(line.as_bytes())),
                *message,
                "{line}"
            );
        }
    }
}
