//! Parsers: pure functions on bytes that return slices of their input. No I/O, no component
//! types; the sources call them.
//!
//! Each format has its own module with a nom grammar and table-driven tests; `format` ties them
//! together into `decode`, which turns one line into a `LogEntry`. Parsers copy only where text
//! must be unescaped (`Cow::Owned`); everything else borrows from the line, so that `decode` can
//! hand out `Bytes::slice_ref`s of it.

pub mod cri;
pub mod docker;
pub mod format;
pub mod json;
pub mod level;
pub mod logfmt;
pub mod prefix;
pub mod syslog;
pub mod timestamp;
pub mod trace;

pub use format::{Format, decode};

/// Why a line is not in the format a parser expected, and where it stopped making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{expected} expected at byte {offset}")]
pub struct ParseError {
    /// Bytes of the input consumed before the failure.
    pub offset: usize,
    /// What the grammar wanted there, e.g. `"PRI"` or `"SD-ELEMENT"`.
    pub expected: &'static str,
}

impl ParseError {
    /// The error at the point where `rest` begins inside `input`.
    pub(crate) fn at(input: &[u8], rest: &[u8], expected: &'static str) -> Self {
        ParseError {
            offset: input.len().saturating_sub(rest.len()),
            expected,
        }
    }
}

/// The output stream a container line was written to (CRI and Docker json-file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Stream> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// `text` without the CR, LF and NUL bytes that senders leave at its end (Python's
/// `SysLogHandler` appends a NUL; Docker's `log` ends in `\n`; Windows writers add `\r`).
pub(crate) fn trim_line_end(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .rposition(|byte| !matches!(byte, b'\n' | b'\r' | b'\0'))
        .map_or(0, |last| last + 1);
    &text[..end]
}
