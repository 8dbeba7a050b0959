//! The event model: one `LogEntry` per log line (or per stack trace).
//!
//! An entry keeps the raw line it came from as `bytes::Bytes`; its `message` and most metadata
//! values are slices of that same buffer, so parsing and fan-out never copy text. This module
//! imports nothing else of the crate's: everything else depends on it.

mod encode;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::time::Timestamp;

pub use encode::{Encoding, encode_json, encode_text, write_json_string};

/// Severity of an entry. The names are a contract: exactly these six, lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Accepts the contract names and the usual spellings of other loggers
    /// (`warning`, `err`, `critical`, `panic`, …), case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<Level> {
        if name.len() > 9 {
            return None;
        }
        let mut lower = [0u8; 9];
        for (slot, byte) in lower.iter_mut().zip(name) {
            *slot = byte.to_ascii_lowercase();
        }
        Some(match &lower[..name.len()] {
            b"trace" | b"trc" | b"verbose" => Level::Trace,
            b"debug" | b"dbg" => Level::Debug,
            b"info" | b"inf" | b"information" | b"notice" => Level::Info,
            b"warn" | b"warning" | b"wrn" => Level::Warn,
            b"error" | b"err" | b"eror" | b"severe" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"emerg" | b"alert" | b"emergency" => {
                Level::Fatal
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_name(s.as_bytes()).ok_or_else(|| {
            format!("unknown level `{s}`, expected one of trace, debug, info, warn, error, fatal")
        })
    }
}

/// A metadata value. Text is `Bytes` so that it can be a slice of the raw line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bytes(Bytes),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Value>),
    Map(Metadata),
    Null,
}

impl Value {
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Text of a `Bytes` value, lossy when it is not UTF-8.
    pub fn as_str_lossy(&self) -> Option<Cow<'_, str>> {
        self.as_bytes().map(|bytes| String::from_utf8_lossy(bytes))
    }
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Self {
        Value::Bytes(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Bytes(Bytes::from(text))
    }
}

impl From<Bytes> for Value {
    fn from(bytes: Bytes) -> Self {
        Value::Bytes(bytes)
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Int(number)
    }
}

/// Ordered key/value pairs. A small vector beats a map for the handful of keys an entry has,
/// and keeps the order in which a parser found the fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Vec<(Cow<'static, str>, Value)>);

impl Metadata {
    pub fn new() -> Self {
        Metadata(Vec::new())
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Metadata(Vec::with_capacity(capacity))
    }

    /// Sets `key`, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(existing, _)| *existing == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends `key` without looking for an earlier value: for parsers that set each key once.
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(index).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One log event: a line, or a whole stack trace assembled from several lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The node that read the entry (`[agent].node_id`).
    pub node_id: Arc<str>,
    /// The id of the source component the entry came from.
    pub source: Arc<str>,
    pub level: Level,
    /// The event's own time when the line carries one, else the time it was read.
    pub timestamp: Timestamp,
    /// The text without the log prefix and without trailing CR/LF; usually a slice of `raw`.
    pub message: Bytes,
    pub metadata: Metadata,
    /// Every line of a stack trace as written, joined with `\n`; `None` for a plain line.
    pub error_trace: Option<Bytes>,
    /// The line as read (without its terminator), or the whole trace for a trace.
    pub raw: Bytes,
}

impl LogEntry {
    /// A plain entry whose message is the whole line.
    pub fn from_line(
        line: Bytes,
        source: Arc<str>,
        node_id: Arc<str>,
        timestamp: Timestamp,
    ) -> Self {
        LogEntry {
            node_id,
            source,
            level: Level::Info,
            timestamp,
            message: line.clone(),
            metadata: Metadata::new(),
            error_trace: None,
            raw: line,
        }
    }

    /// Bytes this entry accounts for in `received_bytes` metrics.
    pub fn byte_size(&self) -> usize {
        self.raw.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_round_trip_and_aliases_map() {
        for level in Level::ALL {
            assert_eq!(Level::from_name(level.as_str().as_bytes()), Some(level));
        }
        assert_eq!(Level::from_name(b"WARNING"), Some(Level::Warn));
        assert_eq!(Level::from_name(b"Err"), Some(Level::Error));
        assert_eq!(Level::from_name(b"CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::from_name(b"nonsense"), None);
        assert_eq!(Level::from_name(b"averyveryverylongword"), None);
    }

    #[test]
    fn metadata_insert_replaces() {
        let mut metadata = Metadata::new();
        metadata.insert("host", "a");
        metadata.insert("host", "b");
        assert_eq!(metadata.len(), 1);
        assert_eq!(
            metadata
                .get("host")
                .and_then(Value::as_str_lossy)
                .as_deref(),
            Some("b")
        );
    }
}
