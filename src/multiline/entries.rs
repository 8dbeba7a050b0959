//! Joining stack traces across *messages* of one stream, for sources whose unit is a message
//! rather than a line: a syslog sender writes a Java trace as one message per line, all from one
//! host and program. Messages are joined per stream key (`host` + `app_name`), so interleaved
//! programs never mix, with the same rules as `multiline` on lines (`auto`, or a start pattern).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::auto::{Decision, Mode, PendingView, classify};
use super::{MAX_BYTES, MAX_LINES, MultilineConfig};
use crate::event::{LogEntry, Value};
use crate::parse::trace::annotate;

/// Streams kept at once; beyond it the least recently active is flushed.
const MAX_STREAMS: usize = 10_000;

struct Pending {
    entry: LogEntry,
    joined: Option<BytesMut>,
    lines: usize,
    mode: Mode,
    last: Instant,
}

impl Pending {
    fn finish(self) -> LogEntry {
        let mut entry = self.entry;
        if let Some(joined) = self.joined {
            let text = joined.freeze();
            entry.raw = text.clone();
            entry.error_trace = Some(text);
            annotate(&mut entry);
        }
        entry
    }
}

pub struct EntryJoiner {
    config: MultilineConfig,
    streams: HashMap<String, Pending>,
}

fn stream_key(entry: &LogEntry) -> String {
    let text = |key: &str| {
        entry
            .metadata
            .get(key)
            .and_then(Value::as_str_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    format!("{}\u{0}{}", text("host"), text("app_name"))
}

impl EntryJoiner {
    /// `None` for `multiline = "none"`.
    pub fn new(config: &MultilineConfig) -> Option<Self> {
        (!matches!(config, MultilineConfig::None)).then(|| EntryJoiner {
            config: config.clone(),
            streams: HashMap::new(),
        })
    }

    fn timeout(&self) -> Duration {
        match &self.config {
            MultilineConfig::Auto { timeout } | MultilineConfig::Pattern { timeout, .. } => {
                *timeout
            }
            MultilineConfig::None => Duration::ZERO,
        }
    }

    /// Adds a message; finished entries are appended to `out`.
    pub fn push(&mut self, entry: LogEntry, now: Instant, out: &mut Vec<LogEntry>) {
        let key = stream_key(&entry);
        let decision = {
            let pending = self.streams.get(&key);
            match &self.config {
                MultilineConfig::Pattern { start_pattern, .. } => {
                    if pending.is_some() && !start_pattern.is_match(&entry.message) {
                        Decision::Continue(Mode::Plain)
                    } else {
                        Decision::Start(Mode::Plain)
                    }
                }
                _ => classify(
                    &entry.message,
                    pending.map(|pending| PendingView {
                        mode: pending.mode,
                        lines: pending.lines,
                        first_line: &pending.entry.message,
                    }),
                ),
            }
        };
        if let (Decision::Continue(mode), Some(pending)) = (decision, self.streams.get_mut(&key)) {
            let size = pending
                .joined
                .as_ref()
                .map_or(pending.entry.message.len(), BytesMut::len);
            if pending.lines < MAX_LINES && size + entry.message.len() < MAX_BYTES {
                let first = pending.entry.message.clone();
                let joined = pending
                    .joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]));
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&entry.message);
                pending.lines += 1;
                pending.mode = mode;
                pending.last = now;
                return;
            }
        }
        let mode = match decision {
            Decision::Continue(mode) | Decision::Start(mode) => mode,
            Decision::Tentative | Decision::Fragment => Mode::Plain,
        };
        if let Some(previous) = self.streams.remove(&key) {
            out.push(previous.finish());
        }
        if self.streams.len() >= MAX_STREAMS {
            self.flush_oldest(out);
        }
        self.streams.insert(
            key,
            Pending {
                entry,
                joined: None,
                lines: 1,
                mode,
                last: now,
            },
        );
    }

    fn flush_oldest(&mut self, out: &mut Vec<LogEntry>) {
        let oldest = self
            .streams
            .iter()
            .min_by_key(|(_, pending)| pending.last)
            .map(|(key, _)| key.clone());
        if let Some(pending) = oldest.and_then(|key| self.streams.remove(&key)) {
            out.push(pending.finish());
        }
    }

    /// Entries held longer than the timeout.
    pub fn flush_idle(&mut self, now: Instant, out: &mut Vec<LogEntry>) {
        let timeout = self.timeout();
        let idle: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, pending)| now.saturating_duration_since(pending.last) >= timeout)
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle {
            if let Some(pending) = self.streams.remove(&key) {
                out.push(pending.finish());
            }
        }
    }

    pub fn flush(&mut self, out: &mut Vec<LogEntry>) {
        out.extend(self.streams.drain().map(|(_, pending)| pending.finish()));
    }

    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout();
        self.streams
            .values()
            .map(|pending| pending.last + timeout)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::time::Timestamp;

    fn message(host: &str, app: &str, text: &str) -> LogEntry {
        let mut entry = LogEntry::from_line(
            Bytes::from(text.to_string()),
            Arc::from("syslog"),
            Arc::from("n"),
            Timestamp(0),
        );
        entry.metadata.insert("host", host.to_string());
        entry.metadata.insert("app_name", app.to_string());
        entry
    }

    #[test]
    fn a_trace_sent_as_messages_is_joined_per_host_and_program() {
        let mut joiner = EntryJoiner::new(&MultilineConfig::auto()).unwrap();
        let now = Instant::now();
        let mut out = Vec::new();
        for (host, app, text) in [
            (
                "web-1",
                "shop",
                "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            ),
            ("web-2", "shop", "GET /health 200"),
            ("web-1", "shop", "\tat shop.Cart.add(Cart.java:42)"),
            ("web-1", "cron", "job done"),
            ("web-1", "shop", "\tat shop.Api.handle(Api.java:7)"),
            ("web-1", "shop", "next message"),
        ] {
            joiner.push(message(host, app, text), now, &mut out);
        }
        joiner.flush(&mut out);
        let trace = out.iter().find(|e| e.error_trace.is_some()).unwrap();
        assert_eq!(
            &trace.error_trace.as_ref().unwrap()[..],
            b"Exception in thread \"main\" java.lang.IllegalStateException: boom\n\tat shop.Cart.add(Cart.java:42)\n\tat shop.Api.handle(Api.java:7)"
        );
        assert_eq!(
            trace
                .metadata
                .get("exception")
                .and_then(Value::as_str_lossy)
                .as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(
            out.len(),
            4,
            "the health check, the cron job and the next message stay single"
        );
    }
}
