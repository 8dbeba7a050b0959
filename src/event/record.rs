//! The binary form of a batch of entries, as a disk buffer stores it: compact, cheap to write,
//! and read back without copying text (every byte string of an entry becomes a slice of the
//! one record buffer).
//!
//! Lengths and integers are LEB128 varints. `message` and `error_trace` are stored as a range
//! of `raw` when they are one (they usually are), so a line is on disk once. The parsed stack
//! trace is stored whole (message, causes and their frames included), so what a sink behind a
//! disk buffer sees is what the parser made.
//!
//! A record that does not decode (the disk buffer checks a checksum first, so this means a
//! bug or a foreign file) is an error naming what was wrong, never a panic.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::{Frame, Language, Level, LogEntry, Metadata, ShortText, StackTrace, Value};
use crate::time::Timestamp;

/// The format's version, the first byte of every record.
const VERSION: u8 = 1;
/// Deepest nesting of arrays and maps accepted when reading.
const MAX_DEPTH: usize = 64;

/// Why a record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable batch record at byte {at}: {what}")]
pub struct RecordError {
    pub at: usize,
    pub what: &'static str,
}

/// Appends `entries` as one record to `out`.
pub fn encode_batch(entries: &[LogEntry], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_varint(out, entries.len() as u64);
    let mut previous: Option<(&Arc<str>, &Arc<str>)> = None;
    let mut keys = KeyTable::default();
    for entry in entries {
        // Node and source repeat along a batch: 0 says "as the entry before".
        match previous {
            Some((node, source)) if *node == entry.node_id && *source == entry.source => {
                out.push(0)
            }
            _ => {
                out.push(1);
                put_bytes(out, entry.node_id.as_bytes());
                put_bytes(out, entry.source.as_bytes());
            }
        }
        previous = Some((&entry.node_id, &entry.source));
        out.push(entry.level as u8);
        out.extend_from_slice(&entry.timestamp.0.to_le_bytes());
        put_bytes(out, &entry.raw);
        put_part(out, &entry.raw, &entry.message);
        match &entry.error_trace {
            None => out.push(0),
            Some(trace) => {
                out.push(1);
                put_part(out, &entry.raw, trace);
            }
        }
        put_metadata(out, &entry.metadata, &mut keys);
        match &entry.trace {
            None => out.push(0),
            Some(trace) => {
                out.push(1);
                put_trace(out, trace);
            }
        }
    }
}

fn put_text(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_bytes(out, text.as_bytes());
        }
    }
}

fn put_number(out: &mut Vec<u8>, number: Option<u32>) {
    put_varint(out, number.map_or(0, |n| u64::from(n) + 1));
}

fn put_trace(out: &mut Vec<u8>, trace: &StackTrace) {
    put_text(out, trace.language.map(Language::as_str));
    put_text(out, trace.exception.as_deref());
    put_text(out, trace.message.as_deref());
    put_varint(out, trace.frames.len() as u64);
    for frame in &trace.frames {
        put_text(out, frame.file.as_deref());
        put_number(out, frame.line);
        put_number(out, frame.column);
        put_text(out, frame.function.as_deref());
        put_text(out, frame.module.as_deref());
        out.push(u8::from(frame.in_app));
    }
    put_varint(out, trace.causes.len() as u64);
    for cause in &trace.causes {
        put_trace(out, cause);
    }
}

/// Reads a record written by [`encode_batch`].
pub fn decode_batch(record: Bytes) -> Result<Vec<LogEntry>, RecordError> {
    let mut reader = Reader {
        record: &record,
        at: 0,
        keys: Vec::new(),
    };
    if reader.byte()? != VERSION {
        return Err(reader.error("unknown version"));
    }
    let count = reader.length()?;
    // Every entry takes at least a dozen bytes: a count beyond that is damage, not a batch.
    if count > record.len() / 12 + 1 {
        return Err(reader.error("entry count larger than the record"));
    }
    let mut entries = Vec::with_capacity(count);
    let mut names: Option<(Arc<str>, Arc<str>)> = None;
    for _ in 0..count {
        let (node_id, source) = match (reader.byte()?, &names) {
            (0, Some((node, source))) => (node.clone(), source.clone()),
            (1, _) => {
                let node: Arc<str> = Arc::from(reader.text()?);
                let source: Arc<str> = Arc::from(reader.text()?);
                names = Some((node.clone(), source.clone()));
                (node, source)
            }
            _ => return Err(reader.error("bad node/source tag")),
        };
        let level = *Level::ALL
            .get(usize::from(reader.byte()?))
            .ok_or_else(|| reader.error("unknown level"))?;
        let timestamp = Timestamp(i64::from_le_bytes(reader.array()?));
        let raw = reader.bytes()?;
        let message = reader.part(&raw)?;
        let error_trace = match reader.byte()? {
            0 => None,
            1 => Some(reader.part(&raw)?),
            _ => return Err(reader.error("bad error_trace tag")),
        };
        let metadata = reader.metadata(0)?;
        let trace = match reader.byte()? {
            0 => None,
            1 => Some(Arc::new(reader.trace(0)?)),
            _ => return Err(reader.error("bad trace tag")),
        };
        entries.push(LogEntry {
            node_id,
            source,
            level,
            timestamp,
            message,
            metadata,
            error_trace,
            trace,
            raw,
        });
    }
    if reader.at != record.len() {
        return Err(reader.error("bytes left after the last entry"));
    }
    Ok(entries)
}

/// Most distinct keys kept for the life of the process; keys past it are allocated per entry.
const MAX_INTERNED_KEYS: usize = 4096;

/// The key as a `'static` string: the same text always gives the same one, so entries read
/// back share their keys as parsed entries share the parsers' constants. Bounded: a stream of
/// ever new keys cannot grow it past `MAX_INTERNED_KEYS`.
fn intern(key: String) -> Cow<'static, str> {
    static INTERNED: std::sync::OnceLock<std::sync::Mutex<HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = interned.get(key.as_str()) {
        return Cow::Borrowed(known);
    }
    if interned.len() >= MAX_INTERNED_KEYS {
        return Cow::Owned(key);
    }
    let leaked: &'static str = Box::leak(key.into_boxed_str());
    interned.insert(leaked);
    Cow::Borrowed(leaked)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `part` as a range of `whole` when it lies inside it, else its own bytes.
fn put_part(out: &mut Vec<u8>, whole: &[u8], part: &[u8]) {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    if start <= whole.len() && part.len() <= whole.len() - start {
        out.push(0);
        put_varint(out, start as u64);
        put_varint(out, part.len() as u64);
    } else {
        out.push(1);
        put_bytes(out, part);
    }
}

/// The keys written so far in one record: a key repeats along a batch, so after its first
/// time it is written as its number (and read back without an allocation per entry).
#[derive(Default)]
struct KeyTable<'e> {
    keys: Vec<&'e str>,
}

impl<'e> KeyTable<'e> {
    fn put(&mut self, out: &mut Vec<u8>, key: &'e str) {
        let same = |known: &&str| {
            (known.as_ptr() == key.as_ptr() && known.len() == key.len()) || *known == key
        };
        match self.keys.iter().position(same) {
            Some(index) => put_varint(out, index as u64 + 1),
            None => {
                out.push(0);
                put_bytes(out, key.as_bytes());
                self.keys.push(key);
            }
        }
    }
}

fn put_metadata<'e>(out: &mut Vec<u8>, metadata: &'e Metadata, keys: &mut KeyTable<'e>) {
    put_varint(out, metadata.len() as u64);
    for (key, value) in metadata.iter() {
        keys.put(out, key);
        put_value(out, value, keys);
    }
}

fn put_value<'e>(out: &mut Vec<u8>, value: &'e Value, keys: &mut KeyTable<'e>) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Int(number) => {
            out.push(3);
            put_varint(out, ((number << 1) ^ (number >> 63)) as u64);
        }
        Value::Float(number) => {
            out.push(4);
            out.extend_from_slice(&number.to_le_bytes());
        }
        Value::Bytes(_) | Value::Short(_) => {
            out.push(5);
            put_bytes(out, value.as_bytes().unwrap_or_default());
        }
        Value::Array(items) => {
            out.push(6);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, keys);
            }
        }
        Value::Map(map) => {
            out.push(7);
            put_metadata(out, map, keys);
        }
    }
}

struct Reader<'r> {
    record: &'r Bytes,
    at: usize,
    /// The record's keys in the order they first appeared.
    keys: Vec<Cow<'static, str>>,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> RecordError {
        RecordError { at: self.at, what }
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let byte = *self
            .record
            .get(self.at)
            .ok_or_else(|| self.error("record ends early"))?;
        self.at += 1;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let bytes = self
            .record
            .get(self.at..self.at + N)
            .ok_or_else(|| self.error("record ends early"))?;
        self.at += N;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 64 bits"))
    }

    /// A length that fits in what is left of the record.
    fn length(&mut self) -> Result<usize, RecordError> {
        let length = self.varint()?;
        if length > (self.record.len() - self.at) as u64 {
            return Err(self.error("length past the end of the record"));
        }
        Ok(length as usize)
    }

    fn slice(&mut self) -> Result<&[u8], RecordError> {
        let length = self.length()?;
        let bytes = &self.record[self.at..self.at + length];
        self.at += length;
        Ok(bytes)
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let length = self.length()?;
        let bytes = self.record.slice(self.at..self.at + length);
        self.at += length;
        Ok(bytes)
    }

    fn text(&mut self) -> Result<String, RecordError> {
        let at = self.at;
        let bytes = self.slice()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError {
            at,
            what: "name is not UTF-8",
        })
    }

    fn key(&mut self) -> Result<Cow<'static, str>, RecordError> {
        match self.varint()? {
            0 => {
                let key = intern(self.text()?);
                self.keys.push(key.clone());
                Ok(key)
            }
            index => self
                .keys
                .get(index as usize - 1)
                .cloned()
                .ok_or_else(|| self.error("unknown key number")),
        }
    }

    fn optional_text(&mut self) -> Result<Option<String>, RecordError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(String::from_utf8_lossy(self.slice()?).into_owned())),
            _ => Err(self.error("bad text tag")),
        }
    }

    fn optional_number(&mut self) -> Result<Option<u32>, RecordError> {
        match self.varint()? {
            0 => Ok(None),
            n => u32::try_from(n - 1)
                .map(Some)
                .map_err(|_| self.error("number out of range")),
        }
    }

    fn trace(&mut self, depth: usize) -> Result<StackTrace, RecordError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        let language = self
            .optional_text()?
            .and_then(|name| Language::from_name(&name));
        let exception = self.optional_text()?;
        let message = self.optional_text()?;
        let count = self.length()?;
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            frames.push(Frame {
                file: self.optional_text()?,
                line: self.optional_number()?,
                column: self.optional_number()?,
                function: self.optional_text()?,
                module: self.optional_text()?,
                in_app: self.byte()? != 0,
            });
        }
        let count = self.length()?;
        let mut causes = Vec::with_capacity(count);
        for _ in 0..count {
            causes.push(self.trace(depth + 1)?);
        }
        Ok(StackTrace {
            language,
            exception,
            message,
            frames,
            causes,
        })
    }

    fn part(&mut self, whole: &Bytes) -> Result<Bytes, RecordError> {
        match self.byte()? {
            0 => {
                let start = self.varint()?;
                let length = self.varint()?;
                let end = start
                    .checked_add(length)
                    .filter(|end| *end <= whole.len() as u64);
                match end {
                    Some(end) => Ok(whole.slice(start as usize..end as usize)),
                    None => Err(self.error("range outside the raw line")),
                }
            }
            1 => self.bytes(),
            _ => Err(self.error("bad part tag")),
        }
    }

    fn metadata(&mut self, depth: usize) -> Result<Metadata, RecordError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        let count = self.length()?;
        let mut metadata = Metadata::with_capacity(count);
        for _ in 0..count {
            let key = self.key()?;
            let value = self.value(depth)?;
            metadata.push(key, value);
        }
        Ok(metadata)
    }

    fn value(&mut self, depth: usize) -> Result<Value, RecordError> {
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => {
                let zigzag = self.varint()?;
                Value::Int((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
            }
            4 => Value::Float(f64::from_le_bytes(self.array()?)),
            5 => {
                // Short text is copied into the value: no reference to the record to count.
                let length = self.length()?;
                let range = self.at..self.at + length;
                self.at += length;
                match ShortText::new(&self.record[range.clone()]) {
                    Some(short) => Value::Short(short),
                    None => Value::Bytes(self.record.slice(range)),
                }
            }
            6 => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nested too deep"));
                }
                let count = self.length()?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            7 => Value::Map(self.metadata(depth + 1)?),
            _ => return Err(self.error("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(line: &str) -> LogEntry {
        LogEntry::from_line(
            Bytes::copy_from_slice(line.as_bytes()),
            Arc::from("app"),
            Arc::from("node-1"),
            Timestamp(1_700_000_000_123_456_789),
        )
    }

    fn round_trip(entries: &[LogEntry]) -> Vec<LogEntry> {
        let mut record = Vec::new();
        encode_batch(entries, &mut record);
        decode_batch(Bytes::from(record)).expect("decodes")
    }

    #[test]
    fn entries_come_back_equal_with_slices_of_the_record() {
        let mut first = entry("<13>1 2024-01-01T00:00:00Z host app - - - hello world");
        first.message = first.raw.slice(46..);
        first.level = Level::Error;
        first
            .metadata
            .push("host", Value::text_in(&first.raw, b"host"));
        first.metadata.push("pid", Value::Int(-42));
        first.metadata.push("ratio", Value::Float(0.5));
        let mut nested = Metadata::new();
        nested.push("ok", Value::Bool(true));
        nested.push("none", Value::Null);
        first.metadata.push(
            "request",
            Value::Array(vec![Value::Map(nested), Value::from("x".repeat(100))]),
        );
        let mut second = entry("from another node");
        second.node_id = Arc::from("node-2");
        second.message = Bytes::from_static(b"not inside raw");
        let third = entry("same node again");
        let back = round_trip(&[first.clone(), second.clone(), third.clone()]);
        assert_eq!(back, vec![first, second, third]);
        assert!(back[1].message.as_ptr() != back[1].raw.as_ptr());
    }

    #[test]
    fn a_trace_comes_back_whole() {
        let text = "Traceback (most recent call last):\n  File \"app.py\", line 3, in main\n    run()\nValueError: bad";
        let mut with_trace = entry(text);
        with_trace.error_trace = Some(with_trace.raw.clone());
        let trace = StackTrace {
            language: Some(crate::event::Language::Python),
            exception: Some("ValueError".to_string()),
            message: Some("bad".to_string()),
            frames: vec![Frame {
                file: Some("app.py".to_string()),
                line: Some(3),
                column: None,
                function: Some("main".to_string()),
                module: None,
                in_app: true,
            }],
            causes: vec![StackTrace {
                exception: Some("KeyError".to_string()),
                message: Some("'id'".to_string()),
                ..StackTrace::default()
            }],
        };
        trace.write_metadata(&mut with_trace.metadata);
        with_trace.trace = Some(Arc::new(trace));
        let back = round_trip(&[with_trace.clone()]);
        assert_eq!(back[0].trace, with_trace.trace);
        assert_eq!(back[0].error_trace, with_trace.error_trace);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut record = Vec::new();
        encode_batch(&[entry("one"), entry("two")], &mut record);
        for cut in 0..record.len() {
            assert!(decode_batch(Bytes::copy_from_slice(&record[..cut])).is_err());
        }
        let mut unknown = record.clone();
        unknown[0] = 9;
        assert!(decode_batch(Bytes::from(unknown)).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch(Bytes::from(bytes));
        }

        #[test]
        fn lines_and_values_round_trip(
            lines in proptest::collection::vec(any::<Vec<u8>>(), 1..20),
            number in any::<i64>(),
        ) {
            let entries: Vec<LogEntry> = lines
                .iter()
                .map(|line| {
                    let mut entry = LogEntry::from_line(
                        Bytes::from(line.clone()), Arc::from("s"), Arc::from("n"), Timestamp(number));
                    entry.metadata.push("n", Value::Int(number));
                    entry
                })
                .collect();
            prop_assert_eq!(round_trip(&entries), entries);
        }
    }
}
