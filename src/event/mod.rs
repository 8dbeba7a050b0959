//! The event model: one `LogEntry` per log line (or per stack trace).
//!
//! An entry keeps the raw line it came from as `bytes::Bytes`; its `message` and most metadata
//! values are slices of that same buffer, so parsing and fan-out never copy text. A stack
//! trace's parsed form ([`StackTrace`]) rides along behind one pointer. This module imports
//! nothing else of the crate's but `crate::time`: everything else depends on it.

mod decode;
mod encode;
pub mod record;
mod trace;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::time::Timestamp;

pub use encode::{Encoding, encode_json, encode_text, write_json_string};
pub use trace::{Frame, Language, StackTrace};

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

/// A metadata value. Text is `Bytes` so that it can be a slice of the raw line, or, when
/// short, a copy held in the value itself (see [`ShortText`]); the two compare equal by content.
#[derive(Debug, Clone)]
pub enum Value {
    Bytes(Bytes),
    Short(ShortText),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Value>),
    Map(Metadata),
    Null,
}

impl Value {
    /// Text found in `line`: copied when short, otherwise a slice sharing `line`'s buffer.
    /// `part` need not lie inside `line` (unescaped text does not); it is copied then.
    pub fn text_in(line: &Bytes, part: &[u8]) -> Value {
        if part.len() > ShortText::CAPACITY {
            return Value::Bytes(slice_of(line, part));
        }
        // A whole window of the line is copied when there is one: a copy of fixed size is a
        // few register moves, where a copy of `part.len()` bytes stalls the reads of the value
        // that follow it (store forwarding fails on the partial writes).
        let window = offset_in(line, part)
            .and_then(|start| line[start..].first_chunk::<{ ShortText::CAPACITY }>());
        Value::Short(match window {
            Some(window) => ShortText {
                len: part.len() as u8,
                bytes: *window,
            },
            None => ShortText::new(part).unwrap_or(ShortText::EMPTY),
        })
    }

    /// The text of a `Bytes` or `Short` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            Value::Short(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// Text of a `Bytes` value, lossy when it is not UTF-8.
    pub fn as_str_lossy(&self) -> Option<Cow<'_, str>> {
        self.as_bytes().map(String::from_utf8_lossy)
    }
}

/// Where `part` starts in `line`, if it lies inside it.
fn offset_in(line: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    (start < line.len() && part.len() <= line.len() - start).then_some(start)
}

/// A `Bytes` for `part`: a slice of `line` when `part` lies inside it, which is always the case
/// for what the parsers borrow; a copy otherwise, so that a mistake costs memory, not a panic.
pub fn slice_of(line: &Bytes, part: &[u8]) -> Bytes {
    match offset_in(line, part) {
        _ if part.is_empty() => Bytes::new(),
        Some(start) => line.slice(start..start + part.len()),
        None => Bytes::copy_from_slice(part),
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Null, Value::Null) => true,
            _ => match (self.as_bytes(), other.as_bytes()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

/// Text of at most [`ShortText::CAPACITY`] bytes, held in the value itself. Header fields (host,
/// program, ids) are mostly this short: copying them is cheaper than another reference to the
/// line's buffer, a count that the source's thread increments and the sink's thread decrements
/// on the same cache line, twice per field.
#[derive(Clone, Copy)]
pub struct ShortText {
    len: u8,
    /// The text, then whatever followed it in the line (never read).
    bytes: [u8; ShortText::CAPACITY],
}

impl ShortText {
    /// As many bytes as fit beside the length without making `Value` larger than a `Bytes`
    /// variant already makes it (40 bytes).
    pub const CAPACITY: usize = 38;

    const EMPTY: ShortText = ShortText {
        len: 0,
        bytes: [0; ShortText::CAPACITY],
    };

    pub fn new(text: &[u8]) -> Option<ShortText> {
        let mut bytes = [0; ShortText::CAPACITY];
        bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(ShortText {
            len: text.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_bytes()), f)
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
        // Keys are mostly `'static` or interned: the same pointer is the same key.
        let same = |existing: &str| {
            (existing.as_ptr() == key.as_ptr() && existing.len() == key.len()) || existing == key
        };
        match self.0.iter_mut().find(|(existing, _)| same(existing)) {
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
    /// What the trace parser understood of `error_trace` (its keys are in `metadata` too, for
    /// the JSON line). Behind a pointer: most entries have none, and fan-out shares it.
    pub trace: Option<Arc<StackTrace>>,
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
            trace: None,
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
    fn short_text_is_copied_long_text_shares_the_line() {
        let line = Bytes::from(format!("host web-1 path {}", "p".repeat(60)));
        let short = Value::text_in(&line, &line[5..10]);
        // Near the end of the line there is no whole window to copy.
        let tail = Value::text_in(&line, &line[line.len() - 3..]);
        assert_eq!(tail.as_bytes(), Some(&b"ppp"[..]));
        let long = Value::text_in(&line, &line[16..]);
        assert!(matches!(short, Value::Short(_)));
        assert_eq!(short.as_bytes(), Some(&b"web-1"[..]));
        match &long {
            Value::Bytes(bytes) => assert_eq!(bytes.as_ptr(), line[16..].as_ptr()),
            other => panic!("a long value should share the line: {other:?}"),
        }
        // Text that is not inside the line (unescaped) is copied.
        let elsewhere = "q".repeat(50);
        assert_eq!(
            Value::text_in(&line, elsewhere.as_bytes()).as_bytes(),
            Some(elsewhere.as_bytes())
        );
        // Both forms of the same text are equal, and neither equals a number.
        assert_eq!(short, Value::from("web-1"));
        assert_ne!(short, Value::Int(1));
        assert_eq!(std::mem::size_of::<Value>(), 40);
        assert!(ShortText::new(&[b'x'; ShortText::CAPACITY + 1]).is_none());
        assert_eq!(ShortText::new(b"").map(|t| t.as_bytes().len()), Some(0));
    }

    /// Entries are moved and copied by the million: the parsed stack trace costs every entry
    /// one pointer (over the 168 bytes an entry had before it), no more.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_entry_carries_its_stack_trace_behind_one_pointer() {
        assert_eq!(std::mem::size_of::<LogEntry>(), 168 + 8);
    }

    /// Everything depends on the event model, so it depends on nothing of ours but the clock.
    #[test]
    fn the_event_model_imports_nothing_of_the_crate_but_time() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/event");
        // Spelled in two halves, so that this test does not find itself.
        let needle = ["crate", "::"].concat();
        let mut read = 0;
        for file in std::fs::read_dir(dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(at) = rest.find(&needle) {
                    rest = &rest[at + needle.len()..];
                    assert!(
                        rest.starts_with("time") || rest.starts_with("event"),
                        "{}:{}: {line}",
                        path.display(),
                        number + 1
                    );
                }
            }
            read += 1;
        }
        assert!(read >= 4, "read {read} files of {dir}");
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
