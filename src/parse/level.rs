//! Severity of a plain-text line, guessed the way a person reading it would.
//!
//! Recognised, in the order they appear in the line's first bytes: an upper-case level word
//! (`ERROR`, `WARN`, `FATAL`, …) standing alone, a bracketed one of any case (`[error]`), a
//! `level=…` / `lvl=…` / `"level":"…"` field (including pino's numeric levels), and Android's
//! `E/Tag` and `threadtime` single-letter forms. Only the head of the line is searched: the level
//! sits in the prefix, and words deep in a message ("returned ERROR 5") are not the line's level.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::event::Level;

/// How far into a line the level words are looked for.
const PREFIX_BYTES: usize = 160;
/// How far `level=` fields are looked for (JSON and logfmt put them anywhere).
const FIELD_BYTES: usize = 1024;

/// The line's level, if it states one.
pub fn detect_level(line: &[u8]) -> Option<Level> {
    android_level(line)
        .or_else(|| level_word(&line[..line.len().min(PREFIX_BYTES)]))
        .or_else(|| level_field(&line[..line.len().min(FIELD_BYTES)]))
}

fn level_word(head: &[u8]) -> Option<Level> {
    let mut index = 0;
    while index < head.len() {
        if !head[index].is_ascii_alphabetic() {
            index += 1;
            continue;
        }
        let start = index;
        while index < head.len() && head[index].is_ascii_alphabetic() {
            index += 1;
        }
        let word = &head[start..index];
        let before = start.checked_sub(1).map(|i| head[i]);
        let after = head.get(index).copied();
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'=')
            || after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let upper = word.iter().all(u8::is_ascii_uppercase);
        let bracketed = matches!(before, Some(b'[' | b'<')) && matches!(after, Some(b']' | b'>'));
        if (upper && word.len() >= 3) || bracketed {
            let level = Level::from_name(word);
            if level.is_some() {
                return level;
            }
        }
    }
    None
}

/// Built once: building a searcher costs more than searching one line with it.
static LEVEL_KEYS: LazyLock<[Finder<'static>; 3]> =
    LazyLock::new(|| [b"level", &b"lvl"[..], b"severity"].map(Finder::new));

fn level_field(head: &[u8]) -> Option<Level> {
    for finder in LEVEL_KEYS.iter() {
        let key = finder.needle();
        for position in finder.find_iter(head) {
            if position > 0 && head[position - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut rest = &head[position + key.len()..];
            rest = match rest {
                [b'"', b':', tail @ ..] => tail,
                [b'=', tail @ ..] | [b':', tail @ ..] => tail,
                _ => continue,
            };
            while let [b' ', tail @ ..] = rest {
                rest = tail;
            }
            let quoted = rest.first() == Some(&b'"');
            if quoted {
                rest = &rest[1..];
            }
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let value = &rest[..end];
            if let Some(level) = Level::from_name(value).or_else(|| pino_level(value)) {
                return Some(level);
            }
        }
    }
    None
}

/// pino / bunyan numeric levels.
pub(crate) fn pino_level(value: &[u8]) -> Option<Level> {
    Some(match value {
        b"10" => Level::Trace,
        b"20" => Level::Debug,
        b"30" => Level::Info,
        b"40" => Level::Warn,
        b"50" => Level::Error,
        b"60" => Level::Fatal,
        _ => return None,
    })
}

fn android_letter(letter: u8) -> Option<Level> {
    Some(match letter {
        b'V' => Level::Trace,
        b'D' => Level::Debug,
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' | b'A' => Level::Fatal,
        _ => return None,
    })
}

/// `E/Tag( 123): …` (brief) and `01-02 03:04:05.678  123  456 E Tag: …` (threadtime).
fn android_level(line: &[u8]) -> Option<Level> {
    if let [letter, b'/', tag @ ..] = line {
        // The tag runs up to `(` or `:`; "I/O error" has a space first and is not Android's.
        let tag_end = tag
            .iter()
            .take(64)
            .position(|b| matches!(b, b'(' | b':' | b' '));
        if tag_end.is_some_and(|end| end > 0 && tag[end] != b' ') {
            return android_letter(*letter);
        }
    }
    let is_threadtime = line.len() > 20
        && line[..5].iter().enumerate().all(|(i, b)| {
            if i == 2 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && line[5] == b' ';
    if !is_threadtime {
        return None;
    }
    line[..line.len().min(48)]
        .split(|b| *b == b' ')
        .filter(|token| !token.is_empty())
        .nth(4)
        .and_then(|token| match token {
            [letter] => android_letter(*letter),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_common_forms() {
        let cases: &[(&[u8], Option<Level>)] = &[
            (
                b"2026-01-01 12:00:00,123 ERROR [main] app.Service - boom",
                Some(Level::Error),
            ),
            (b"ERROR:root:division by zero", Some(Level::Error)),
            (
                b"[2026-01-01T00:00:00Z WARN  tailfix] slow",
                Some(Level::Warn),
            ),
            (
                b"Jan 1 00:00:00 host app[1]: FATAL: out of memory",
                Some(Level::Fatal),
            ),
            (
                b"time=2026-01-01T00:00:00Z level=error msg=\"db down\"",
                Some(Level::Error),
            ),
            (b"{\"level\":\"warn\",\"msg\":\"slow\"}", Some(Level::Warn)),
            (
                b"{\"level\":50,\"time\":1,\"msg\":\"pino error\"}",
                Some(Level::Error),
            ),
            (
                b"[Sun Dec 04 04:47:44 2005] [error] mod_jk child",
                Some(Level::Error),
            ),
            (
                b"E/ActivityManager( 1234): ANR in com.example",
                Some(Level::Error),
            ),
            (
                b"01-02 03:04:05.678  1234  5678 W Tag: careful",
                Some(Level::Warn),
            ),
            (
                b"2026-01-01 INFO request failed with ERROR 5",
                Some(Level::Info),
            ),
            (b"GET /index.html 200", None),
            (b"an error occurred somewhere", None),
            (b"TERRORS and ERRORCODE are not levels", None),
            (b"I/O error on /dev/sda", None),
            (b"", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                detect_level(line),
                *expected,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
