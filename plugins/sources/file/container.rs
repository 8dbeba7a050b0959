//! Container runtime logs (CRI, as containerd and CRI-O write them; Docker's json-file): each
//! record names its stream, and a long line is split over partial records.
//!
//! stdout and stderr are assembled apart, each with its own partial buffer and its own
//! multiline aggregation, so a stack trace on stderr is never interleaved with stdout lines
//! written between its records. A line that is not a record passes as stdout text.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::multiline::{Joined, LineAggregator, MultilineConfig};
use crate::parse::Stream;
use crate::parse::cri::parse_cri;
use crate::parse::docker::parse_docker;
use crate::time::Timestamp;

/// One container stream (stdout or stderr) of a CRI log file.
pub(super) struct CriStream {
    /// Text of `P` records waiting for their `F`.
    pub(super) partial: BytesMut,
    /// The time of the first record of what is being assembled.
    first_time: Option<Timestamp>,
    pub(super) aggregator: LineAggregator,
    stream: Stream,
}

impl CriStream {
    pub(super) fn new(multiline: &MultilineConfig) -> Self {
        CriStream {
            partial: BytesMut::new(),
            first_time: None,
            aggregator: LineAggregator::new(multiline.clone()),
            stream: Stream::Stdout,
        }
    }

    fn label(&self, out: &mut [Joined]) {
        for joined in out {
            joined.stream = Some(self.stream);
        }
    }

    pub(super) fn flush_idle(&mut self, now: Instant, out: &mut Vec<Joined>) {
        let before = out.len();
        self.aggregator.flush_idle(now, out);
        self.label(&mut out[before..]);
    }

    pub(super) fn flush(&mut self, out: &mut Vec<Joined>) {
        let before = out.len();
        self.aggregator.flush(out);
        self.label(&mut out[before..]);
    }
}

/// A partial record longer than this is passed on as it is instead of growing further.
const MAX_PARTIAL_BYTES: usize = 1024 * 1024;

/// A container runtime's record: its stream, time, whether more of its line follows, and text.
struct Record {
    stream: Stream,
    time: Option<Timestamp>,
    partial: bool,
    message: Bytes,
}

fn parse_record(line: &Bytes, docker: bool) -> Option<Record> {
    if docker {
        let record = parse_docker(line).ok()?;
        let message = match record.message {
            std::borrow::Cow::Borrowed(text) => line.slice_ref(text),
            std::borrow::Cow::Owned(text) => Bytes::from(text),
        };
        return Some(Record {
            stream: record.stream.unwrap_or(Stream::Stdout),
            time: record.timestamp,
            partial: record.partial,
            message,
        });
    }
    let record = parse_cri(line).ok()?;
    Some(Record {
        stream: record.stream,
        time: Some(record.timestamp),
        partial: record.partial,
        message: line.slice_ref(record.message),
    })
}

/// One record into its stream: partial records are joined, then lines go through the stream's
/// multiline aggregation. A line that is not a record passes as stdout text.
pub(super) fn push_record(
    streams: &mut [CriStream; 2],
    docker: bool,
    line: Bytes,
    end_offset: u64,
    now: Instant,
    out: &mut Vec<Joined>,
) {
    let Some(record) = parse_record(&line, docker) else {
        let stream = &mut streams[0];
        stream.stream = Stream::Stdout;
        let before = out.len();
        stream.aggregator.push(line, end_offset, now, out);
        stream.label(&mut out[before..]);
        return;
    };
    let stream = &mut streams[usize::from(record.stream == Stream::Stderr)];
    stream.stream = record.stream;
    let time = match stream.first_time {
        Some(time) => Some(time),
        None => {
            stream.first_time = record.time;
            record.time
        }
    };
    if record.partial && stream.partial.len() + record.message.len() < MAX_PARTIAL_BYTES {
        stream.partial.extend_from_slice(&record.message);
        return;
    }
    let message = if stream.partial.is_empty() {
        record.message
    } else {
        stream.partial.extend_from_slice(&record.message);
        stream.partial.split().freeze()
    };
    stream.first_time = None;
    let before = out.len();
    stream
        .aggregator
        .push_timed(message, end_offset, now, time, out);
    stream.label(&mut out[before..]);
}
