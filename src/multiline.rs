//! Joining lines that belong together (a stack trace, a wrapped message) into one entry.
//!
//! An explicit state machine per stream, as Vector's `line_agg`: a line that matches the
//! `start_pattern` begins an entry; lines that do not are continuations of the current one; the
//! entry ends at the next start line, after `timeout` without a new line, or at a size bound (so
//! one endless trace cannot hold memory without limit). Each pushed line carries the stream
//! offset of its end, and a finished entry reports the end offset of its last line: the file
//! source checkpoints only what has left the aggregator.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use regex::bytes::Regex;
use serde::{Deserialize, Deserializer};

use crate::config::ConfigDuration;

/// Most lines one entry may join.
pub const MAX_LINES: usize = 1000;
/// Most bytes one entry may hold.
pub const MAX_BYTES: usize = 1024 * 1024;

/// The `multiline` key of a source.
#[derive(Debug, Clone, Default)]
pub enum MultilineConfig {
    /// Every line is its own entry.
    #[default]
    None,
    /// Lines join onto the last line that matched `start_pattern`.
    Pattern {
        start_pattern: Regex,
        timeout: Duration,
    },
}

impl<'de> Deserialize<'de> for MultilineConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Pattern {
            start_pattern: String,
            #[serde(default = "default_timeout")]
            timeout: ConfigDuration,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Pattern(Pattern),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) if name == "none" => Ok(MultilineConfig::None),
            Raw::Name(other) => Err(serde::de::Error::custom(format!(
                "unknown multiline mode `{other}`, expected \"none\" or {{ start_pattern = \"…\", timeout = \"1s\" }}"
            ))),
            Raw::Pattern(pattern) => {
                let start_pattern = Regex::new(&pattern.start_pattern).map_err(|error| {
                    serde::de::Error::custom(format!("invalid start_pattern: {error}"))
                })?;
                Ok(MultilineConfig::Pattern {
                    start_pattern,
                    timeout: pattern.timeout.0,
                })
            }
        }
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

/// A finished entry: its first line, its whole text, and where it ends in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub first_line: Bytes,
    /// Every line joined with `\n`; equal to `first_line` for a single line.
    pub text: Bytes,
    pub lines: usize,
    pub end_offset: u64,
}

impl Joined {
    fn single(line: Bytes, end_offset: u64) -> Self {
        Joined {
            first_line: line.clone(),
            text: line,
            lines: 1,
            end_offset,
        }
    }
}

struct Pending {
    first_line: Bytes,
    /// The joined text once a second line arrives; the single line stays zero-copy until then.
    joined: Option<BytesMut>,
    lines: usize,
    end_offset: u64,
    last_line_at: Instant,
}

impl Pending {
    fn finish(self) -> Joined {
        Joined {
            text: self
                .joined
                .map_or_else(|| self.first_line.clone(), BytesMut::freeze),
            first_line: self.first_line,
            lines: self.lines,
            end_offset: self.end_offset,
        }
    }

    fn size(&self) -> usize {
        self.joined
            .as_ref()
            .map_or(self.first_line.len(), BytesMut::len)
    }
}

/// The aggregator of one stream (one file, one connection).
pub struct LineAggregator {
    config: MultilineConfig,
    pending: Option<Pending>,
}

impl LineAggregator {
    pub fn new(config: MultilineConfig) -> Self {
        LineAggregator {
            config,
            pending: None,
        }
    }

    /// Adds a line; returns the entry it completed, if any.
    pub fn push(&mut self, line: Bytes, end_offset: u64, now: Instant) -> Option<Joined> {
        let start_pattern = match &self.config {
            MultilineConfig::None => return Some(Joined::single(line, end_offset)),
            MultilineConfig::Pattern { start_pattern, .. } => start_pattern,
        };
        let starts_entry = start_pattern.is_match(&line);
        match self.pending.as_mut() {
            Some(pending)
                if !starts_entry
                    && pending.lines < MAX_LINES
                    && pending.size() + line.len() < MAX_BYTES =>
            {
                let joined = pending
                    .joined
                    .get_or_insert_with(|| BytesMut::from(&pending.first_line[..]));
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&line);
                pending.lines += 1;
                pending.end_offset = end_offset;
                pending.last_line_at = now;
                None
            }
            _ => {
                let finished = self.pending.take().map(Pending::finish);
                self.pending = Some(Pending {
                    first_line: line,
                    joined: None,
                    lines: 1,
                    end_offset,
                    last_line_at: now,
                });
                finished
            }
        }
    }

    /// The pending entry, if no line arrived for longer than the timeout.
    pub fn flush_idle(&mut self, now: Instant) -> Option<Joined> {
        let MultilineConfig::Pattern { timeout, .. } = &self.config else {
            return None;
        };
        let idle = self
            .pending
            .as_ref()
            .is_some_and(|pending| now.saturating_duration_since(pending.last_line_at) >= *timeout);
        if idle {
            self.pending.take().map(Pending::finish)
        } else {
            None
        }
    }

    /// The pending entry, whatever its age (end of stream, shutdown).
    pub fn flush(&mut self) -> Option<Joined> {
        self.pending.take().map(Pending::finish)
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the pending entry will time out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.config, &self.pending) {
            (MultilineConfig::Pattern { timeout, .. }, Some(pending)) => {
                Some(pending.last_line_at + *timeout)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(start: &str) -> MultilineConfig {
        MultilineConfig::Pattern {
            start_pattern: Regex::new(start).unwrap(),
            timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn joins_continuations_until_the_next_start_line() {
        let mut aggregator = LineAggregator::new(pattern(r"^\d{4}-"));
        let now = Instant::now();
        let lines = [
            "2026-01-01 ERROR boom",
            "java.lang.IllegalStateException: bad",
            "\tat shop.Cart.add(Cart.java:42)",
            "2026-01-01 INFO next",
        ];
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            out.extend(aggregator.push(
                Bytes::from_static(line.as_bytes()),
                (i as u64 + 1) * 100,
                now,
            ));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].first_line,
            Bytes::from_static(b"2026-01-01 ERROR boom")
        );
        assert_eq!(
            out[0].text,
            Bytes::from_static(b"2026-01-01 ERROR boom\njava.lang.IllegalStateException: bad\n\tat shop.Cart.add(Cart.java:42)")
        );
        assert_eq!((out[0].lines, out[0].end_offset), (3, 300));
        assert!(aggregator.flush_idle(now).is_none());
        let last = aggregator.flush_idle(now + Duration::from_secs(1)).unwrap();
        assert_eq!((last.lines, last.end_offset), (1, 400));
    }

    #[test]
    fn none_passes_every_line_through() {
        let mut aggregator = LineAggregator::new(MultilineConfig::None);
        let joined = aggregator
            .push(Bytes::from_static(b"x"), 2, Instant::now())
            .unwrap();
        assert_eq!((joined.lines, joined.end_offset), (1, 2));
        assert!(!aggregator.has_pending());
    }

    #[test]
    fn an_endless_trace_is_cut_at_the_line_bound() {
        let mut aggregator = LineAggregator::new(pattern("^START"));
        let now = Instant::now();
        let mut finished = Vec::new();
        finished.extend(aggregator.push(Bytes::from_static(b"START"), 1, now));
        for i in 0..(MAX_LINES * 2) {
            finished.extend(aggregator.push(Bytes::from_static(b"  more"), i as u64 + 2, now));
        }
        assert!(!finished.is_empty());
        assert!(finished.iter().all(|entry| entry.lines <= MAX_LINES));
    }

    #[test]
    fn config_accepts_none_and_a_pattern_and_rejects_the_rest() {
        #[derive(Deserialize)]
        struct Holder {
            multiline: MultilineConfig,
        }
        let parsed: Holder = toml::from_str("multiline = \"none\"").unwrap();
        assert!(matches!(parsed.multiline, MultilineConfig::None));
        let parsed: Holder =
            toml::from_str("multiline = { start_pattern = \"^\\\\S\", timeout = \"2s\" }").unwrap();
        assert!(
            matches!(parsed.multiline, MultilineConfig::Pattern { timeout, .. } if timeout == Duration::from_secs(2))
        );
        assert!(toml::from_str::<Holder>("multiline = \"sometimes\"").is_err());
        assert!(toml::from_str::<Holder>("multiline = { start_pattern = \"(\" }").is_err());
    }
}
