//! Sources: where entries enter the pipeline. Shared here: turning framed lines into entries and
//! batches, and the read loop over any byte stream (a TCP connection, stdin).

pub mod file;
mod net;
pub mod socket;
pub mod stdin;
pub mod syslog;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::event::LogEntry;
use crate::framing::{Frame, StreamFramer};
use crate::metrics::ComponentMetrics;
use crate::parse::format::{Format, decode};
use crate::time::Timestamp;
use crate::topology::{Batch, MAX_BATCH_ENTRIES, Output};

/// Default `max_line_bytes` of every line-oriented source.
pub const DEFAULT_MAX_LINE_BYTES: usize = 102_400;

/// Bytes asked for per read: large reads keep syscalls per line low.
const READ_CHUNK: usize = 256 * 1024;

pub fn default_max_line_bytes() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// Collects entries made from lines until a batch is full or the input pauses.
pub struct LineBatcher {
    source: Arc<str>,
    node_id: Arc<str>,
    metrics: ComponentMetrics,
    format: Format,
    entries: Vec<LogEntry>,
    bytes: usize,
    /// Read time given to entries whose line carries none; refreshed once per read, not per line.
    now: Timestamp,
}

impl LineBatcher {
    pub fn new(
        source: Arc<str>,
        node_id: Arc<str>,
        metrics: ComponentMetrics,
        format: Format,
    ) -> Self {
        LineBatcher {
            source,
            node_id,
            metrics,
            format,
            entries: Vec::with_capacity(MAX_BATCH_ENTRIES),
            bytes: 0,
            now: Timestamp::now(),
        }
    }

    pub fn refresh_time(&mut self) {
        self.now = Timestamp::now();
    }

    pub fn push_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Line(line) => self.push_line(line),
            Frame::Truncated(head) => {
                self.metrics.error("line_truncated");
                self.push_line(head);
            }
        }
    }

    /// Adds one line as an entry; empty lines carry nothing and are skipped.
    pub fn push_line(&mut self, line: Bytes) {
        if line.is_empty() {
            return;
        }
        self.bytes += line.len();
        let entry = decode(
            self.format,
            line,
            self.source.clone(),
            self.node_id.clone(),
            self.now,
        );
        self.entries.push(entry);
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_BATCH_ENTRIES
    }

    /// Sends what has been collected as one batch.
    pub async fn flush(&mut self, output: &Output) {
        if self.entries.is_empty() {
            return;
        }
        let entries = std::mem::replace(&mut self.entries, Vec::with_capacity(MAX_BATCH_ENTRIES));
        self.metrics
            .received(entries.len(), std::mem::take(&mut self.bytes));
        output.send(Batch::new(entries)).await;
    }
}

/// Reads `reader` to its end (or until shutdown), framing lines into batches. A final line
/// without a newline is emitted at the end. With an `idle_timeout`, a peer that sends nothing
/// for that long is disconnected.
///
/// At shutdown, what the peer already sent (bytes waiting in the socket) is still read, up to
/// `SHUTDOWN_READS` reads: those lines were accepted by the kernel on our behalf, and a sender
/// that finished before the signal should find all of them delivered.
pub async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    mut framer: StreamFramer,
    batcher: &mut LineBatcher,
    output: &Output,
    shutdown: &CancellationToken,
    idle_timeout: Option<std::time::Duration>,
) -> std::io::Result<()> {
    let idle = idle_timeout.unwrap_or(std::time::Duration::MAX);
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    let mut reads_after_shutdown = 0;
    let result = loop {
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        let read = if shutdown.is_cancelled() {
            reads_after_shutdown += 1;
            if reads_after_shutdown > SHUTDOWN_READS {
                break Ok(());
            }
            // Take only what is already there: a read that would wait ends the loop.
            tokio::select! {
                biased;
                read = reader.read_buf(&mut buffer) => read,
                _ = std::future::ready(()) => break Ok(()),
            }
        } else {
            tokio::select! {
                biased;
                read = tokio::time::timeout(idle, reader.read_buf(&mut buffer)) => match read {
                    Ok(read) => read,
                    Err(_elapsed) => break Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "idle connection closed",
                    )),
                },
                _ = shutdown.cancelled() => continue,
            }
        };
        match read {
            Ok(0) => break Ok(()),
            Ok(_) => {
                batcher.refresh_time();
                while let Some(frame) = framer.decode(&mut buffer) {
                    batcher.push_frame(frame);
                    if batcher.is_full() {
                        batcher.flush(output).await;
                    }
                }
                batcher.flush(output).await;
            }
            Err(error) => break Err(error),
        }
    };
    while let Some(frame) = framer.decode_eof(&mut buffer) {
        batcher.push_frame(frame);
    }
    batcher.flush(output).await;
    result
}

/// Reads allowed after shutdown to take in what is already waiting.
const SHUTDOWN_READS: usize = 64;
