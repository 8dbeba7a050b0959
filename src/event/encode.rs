//! Encodings of a `LogEntry` for sinks: the JSON line of DESIGN §5 and the raw text.
//!
//! JSON is written by hand into a reusable buffer: it is the per-line cost of every JSON sink, and
//! a generic serializer would first build the entry as a tree. Text that is not valid UTF-8 is
//! converted lossily here, at the edge, and nowhere earlier.

use serde::Deserialize;

use super::{LogEntry, Metadata, Value};

/// How a sink writes entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One JSON object per line (DESIGN §5).
    #[default]
    Json,
    /// The entry's raw text (a whole trace for a trace) and a newline.
    Text,
}

impl Encoding {
    pub fn encode(self, entry: &LogEntry, out: &mut Vec<u8>) {
        match self {
            Encoding::Json => encode_json(entry, out),
            Encoding::Text => encode_text(entry, out),
        }
    }
}

/// Appends the entry as one JSON object and a newline.
pub fn encode_json(entry: &LogEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    entry.timestamp.write_rfc3339(out);
    out.extend_from_slice(b"\",\"node_id\":");
    write_json_string(out, entry.node_id.as_bytes());
    out.extend_from_slice(b",\"source\":");
    write_json_string(out, entry.source.as_bytes());
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(entry.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_string(out, &entry.message);
    out.extend_from_slice(b",\"error_trace\":");
    match &entry.error_trace {
        Some(trace) => write_json_string(out, trace),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"metadata\":");
    write_metadata(out, &entry.metadata);
    out.extend_from_slice(b"}\n");
}

/// Appends the entry's raw text and a newline.
pub fn encode_text(entry: &LogEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&entry.raw);
    out.push(b'\n');
}

fn write_metadata(out: &mut Vec<u8>, metadata: &Metadata) {
    out.push(b'{');
    for (index, (key, value)) in metadata.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_json_string(out, key.as_bytes());
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bytes(bytes) => write_json_string(out, bytes),
        Value::Short(text) => write_json_string(out, text.as_bytes()),
        Value::Int(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::Float(number) if number.is_finite() => {
            out.extend_from_slice(number.to_string().as_bytes())
        }
        Value::Float(_) | Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Map(map) => write_metadata(out, map),
    }
}

/// Bytes that cannot appear unescaped inside a JSON string.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `text` as a quoted JSON string; invalid UTF-8 becomes U+FFFD.
///
/// Log text is almost always printable ASCII, so the common case is checked eight bytes at a
/// time: a word with no control byte, quote, backslash or non-ASCII byte is copied as it is,
/// and UTF-8 validation runs only on text that has non-ASCII bytes.
pub fn write_json_string(out: &mut Vec<u8>, text: &[u8]) {
    if is_plain(text) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    if text.is_ascii() {
        write_escaped(out, text);
        return;
    }
    match std::str::from_utf8(text) {
        Ok(valid) => write_escaped(out, valid.as_bytes()),
        Err(_) => write_escaped(out, String::from_utf8_lossy(text).as_bytes()),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when a byte of `word` is a control byte (< 0x20), `"` or `\\` (bytes ≥ 0x80 pass:
/// they are valid UTF-8 here and need no escaping).
fn special_bytes(word: u64) -> u64 {
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash
}

fn has_special(word: u64) -> bool {
    special_bytes(word) != 0
}

/// Whether `text` is ASCII without control bytes, `"` or `\\`, to be copied as it is: checked a
/// word at a time, the last (partial) word as the text's last eight bytes, which overlap ones
/// already checked. (Copying the tail into a padded word would stall the load that follows.)
fn is_plain(text: &[u8]) -> bool {
    let Some(last) = text.last_chunk::<8>() else {
        // Four to seven bytes (most keys and short values): two overlapping halves, one word.
        if let (Some(head), Some(tail)) = (text.first_chunk::<4>(), text.last_chunk::<4>()) {
            let word =
                u64::from(u32::from_le_bytes(*head)) | u64::from(u32::from_le_bytes(*tail)) << 32;
            return special_or_non_ascii(word) == 0;
        }
        return text
            .iter()
            .all(|&byte| byte.is_ascii() && !NEEDS_ESCAPE[usize::from(byte)]);
    };
    let (words, _) = text.as_chunks::<8>();
    let special = words.iter().fold(
        special_or_non_ascii(u64::from_le_bytes(*last)),
        |special, word| special | special_or_non_ascii(u64::from_le_bytes(*word)),
    );
    special == 0
}

/// Non-zero when a byte of `word` is a control byte, `"`, `\\` or not ASCII.
fn special_or_non_ascii(word: u64) -> u64 {
    special_bytes(word) | (word & HIGHS)
}

fn write_escaped(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    let mut index = 0;
    while index < text.len() {
        if index + 8 <= text.len() {
            let word = u64::from_le_bytes(text[index..index + 8].try_into().unwrap_or([0; 8]));
            if !has_special(word) {
                index += 8;
                continue;
            }
        }
        let byte = text[index];
        if !NEEDS_ESCAPE[byte as usize] {
            index += 1;
            continue;
        }
        out.extend_from_slice(&text[run_start..index]);
        run_start = index + 1;
        index += 1;
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            control => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(control >> 4) as usize]);
                out.push(HEX[(control & 0xf) as usize]);
            }
        }
    }
    out.extend_from_slice(&text[run_start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::event::Level;
    use crate::time::Timestamp;

    fn entry(line: &'static [u8]) -> LogEntry {
        LogEntry::from_line(
            Bytes::from_static(line),
            Arc::from("app"),
            Arc::from("n1"),
            Timestamp::from_civil(2026, 1, 1, 0, 0, 0, 0).unwrap(),
        )
    }

    #[test]
    fn json_has_the_contract_shape() {
        let mut e = entry(b"boom \"quoted\"\tand \x01 control");
        e.level = Level::Error;
        e.metadata.insert("host", "web-1");
        let mut structured = Metadata::new();
        structured.insert("id", "42");
        let mut sd = Metadata::new();
        sd.insert("origin", Value::Map(structured));
        e.metadata.insert("structured_data", Value::Map(sd));
        e.metadata.insert("severity", Value::Int(3));
        let mut out = Vec::new();
        encode_json(&e, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "timestamp": "2026-01-01T00:00:00.000Z",
                "node_id": "n1",
                "source": "app",
                "level": "error",
                "message": "boom \"quoted\"\tand \u{1} control",
                "error_trace": null,
                "metadata": {"host": "web-1", "structured_data": {"origin": {"id": "42"}}, "severity": 3}
            })
        );
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_would_read_it_back() {
        // Each special byte at every position of a word, among plain text and UTF-8.
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for position in 0..17 {
                let mut text = b"plain text, and \xc3\xa9t\xc3\xa9 too".to_vec();
                text.insert(position, special);
                let mut out = Vec::new();
                write_json_string(&mut out, &text);
                let back: String = serde_json::from_slice(&out).unwrap();
                assert_eq!(back.as_bytes(), &text[..]);
            }
        }
    }

    #[test]
    fn plain_ascii_of_every_length_takes_the_copy_path_only_when_it_may() {
        // Lengths around the word size, each special byte (and a non-ASCII one) at each place.
        for length in 0..20 {
            let plain: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
            let mut out = Vec::new();
            write_json_string(&mut out, &plain);
            assert_eq!(out, [&b"\""[..], &plain, b"\""].concat());
            for position in 0..length {
                for special in (0u8..0x20).chain([b'"', b'\\', 0x7f, 0xff]) {
                    let mut text = plain.clone();
                    text[position] = special;
                    let mut out = Vec::new();
                    write_json_string(&mut out, &text);
                    let back: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(back, String::from_utf8_lossy(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_only_when_encoded() {
        let e = entry(b"bad \xff\xfe byte");
        assert_eq!(&e.raw[..], b"bad \xff\xfe byte");
        let mut out = Vec::new();
        encode_json(&e, &mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["message"], "bad \u{fffd}\u{fffd} byte");
        let mut text = Vec::new();
        encode_text(&e, &mut text);
        assert_eq!(text, b"bad \xff\xfe byte\n");
    }
}
