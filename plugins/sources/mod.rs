//! Sources: where entries enter the pipeline. Shared here: turning framed lines into entries and
//! batches, and the read loop over any byte stream (a TCP connection, stdin).

pub mod aggregator;
pub mod file;
pub mod internal_logs;
pub mod kubernetes_logs;
mod net;
pub mod socket;
pub mod stdin;
pub mod syslog;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use std::time::Instant;

use crate::event::LogEntry;
use crate::framing::{Frame, StreamFramer};
use crate::metrics::ComponentMetrics;
use crate::multiline::entries::EntryJoiner;
use crate::multiline::{Joined, LineAggregator, MultilineConfig};
use crate::parse::format::{Format, decode};
use crate::parse::trace;
use crate::pipeline::{Batch, MAX_BATCH_ENTRIES, Output};
use crate::time::Timestamp;

/// Default `max_line_bytes` of every line-oriented source.
pub const DEFAULT_MAX_LINE_BYTES: usize = 102_400;

/// Bytes asked for per read: large reads keep syscalls per line low.
const READ_CHUNK: usize = 256 * 1024;

pub fn default_max_line_bytes() -> usize {
    DEFAULT_MAX_LINE_BYTES
}

/// One entry from joined lines: a single line, or several joined into a stack trace (its
/// frames parsed into metadata).
#[inline]
pub fn entry_from_joined(
    joined: Joined,
    format: Format,
    source: &Arc<str>,
    node_id: &Arc<str>,
    read_at: Timestamp,
) -> LogEntry {
    // The trace as its parser reads it (without its lines' prefixes), if lines were joined.
    let read = (joined.lines > 1).then(|| joined.trace_text());
    let text = read.is_some().then(|| joined.text().clone());
    let mut entry = decode(
        format,
        joined.first_line,
        source.clone(),
        node_id.clone(),
        read_at,
    );
    if let (Some(read), Some(text)) = (read, text) {
        attach_trace(&mut entry, text, read);
    }
    entry
}

/// The joined lines of a trace on the entry its first line made. Out of line: a busy stream's
/// entries are single lines, and their path stays small enough to be built in place.
#[cold]
#[inline(never)]
fn attach_trace(entry: &mut LogEntry, text: Bytes, read: Bytes) {
    // `error_trace` is the trace as written (DESIGN §5).
    entry.raw = text.clone();
    entry.error_trace = Some(text);
    trace::annotate_read(entry, &read);
}

/// Error type counted for frames that came with no trace to join (passed on as ordinary lines).
pub const TRACE_FRAGMENT: &str = "trace_fragment";

/// A copy of a name (source id, node id) for one batch's entries to share. Every entry holds
/// the names as `Arc`s: cloned by the thread that decodes, dropped by the sink's. One counter
/// for all entries would be a cache line that those threads take from each other several times
/// per entry; a counter per batch is touched by one thread at a time.
pub fn name_for_batch(name: &Arc<str>) -> Arc<str> {
    Arc::from(&**name)
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
    /// Joins stack traces when the source has `multiline` set.
    aggregator: Option<LineAggregator>,
    /// Joins stack traces across decoded messages, per host and program (syslog).
    joiner: Option<EntryJoiner>,
    joined: Vec<Joined>,
    now_instant: Instant,
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
            aggregator: None,
            joiner: None,
            joined: Vec::new(),
            now_instant: Instant::now(),
        }
    }

    /// Joins lines per `multiline` (per connection: one batcher per stream).
    pub fn with_multiline(mut self, multiline: &MultilineConfig) -> Self {
        if !matches!(multiline, MultilineConfig::None) {
            self.aggregator = Some(LineAggregator::new(multiline.clone()));
        }
        self
    }

    /// Joins stack traces across messages of one host and program (for message sources).
    pub fn with_message_multiline(mut self, multiline: &MultilineConfig) -> Self {
        self.joiner = EntryJoiner::new(multiline);
        self
    }

    pub fn refresh_time(&mut self) {
        self.now = Timestamp::now();
        self.now_instant = Instant::now();
    }

    /// When an entry held for multiline joining times out.
    pub fn deadline(&self) -> Option<Instant> {
        let lines = self.aggregator.as_ref().and_then(LineAggregator::deadline);
        let messages = self.joiner.as_ref().and_then(EntryJoiner::deadline);
        lines.into_iter().chain(messages).min()
    }

    /// Emits held entries older than the multiline timeout (`finish`: all of them).
    pub fn flush_held(&mut self, finish: bool) {
        if self.aggregator.is_none() && self.joiner.is_none() {
            return;
        }
        self.refresh_time();
        if let Some(joiner) = self.joiner.as_mut() {
            if finish {
                joiner.flush(&mut self.entries);
            } else {
                joiner.flush_idle(self.now_instant, &mut self.entries);
            }
        }
        let Some(aggregator) = self.aggregator.as_mut() else {
            return;
        };
        if finish {
            aggregator.flush(&mut self.joined);
        } else {
            aggregator.flush_idle(self.now_instant, &mut self.joined);
        }
        self.take_joined();
    }

    fn take_joined(&mut self) {
        for joined in self.joined.drain(..) {
            if joined.fragment {
                self.metrics.error(TRACE_FRAGMENT);
            }
            let entry =
                entry_from_joined(joined, self.format, &self.source, &self.node_id, self.now);
            self.entries.push(entry);
        }
    }

    pub fn push_frame(&mut self, frame: Frame) {
        let line = self.line_of(frame);
        self.push_line(line);
    }

    /// A frame's line; a cut one is counted.
    fn line_of(&self, frame: Frame) -> Bytes {
        match frame {
            Frame::Line(line) => line,
            Frame::Truncated(head) => {
                self.metrics.error("line_truncated");
                head
            }
        }
    }

    /// Adds one line as an entry; empty lines carry nothing and are skipped.
    pub fn push_line(&mut self, line: Bytes) {
        if line.is_empty() && self.aggregator.is_none() {
            return;
        }
        self.bytes += line.len();
        if let Some(aggregator) = self.aggregator.as_mut() {
            aggregator.push(line, 0, self.now_instant, &mut self.joined);
            self.take_joined();
            return;
        }
        let entry = decode(
            self.format,
            line,
            self.source.clone(),
            self.node_id.clone(),
            self.now,
        );
        match self.joiner.as_mut() {
            Some(joiner) => joiner.push(entry, self.now_instant, &mut self.entries),
            None => self.entries.push(entry),
        }
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_BATCH_ENTRIES
    }

    /// Whether each line decodes on its own: no multiline joining, which carries state from
    /// one line to the next and so needs the lines in order.
    fn decodes_lines_independently(&self) -> bool {
        self.aggregator.is_none() && self.joiner.is_none()
    }

    /// Sends what has been collected as one batch.
    pub async fn flush(&mut self, output: &Output) {
        if self.entries.is_empty() {
            return;
        }
        let entries = std::mem::replace(&mut self.entries, Vec::with_capacity(MAX_BATCH_ENTRIES));
        self.metrics
            .received(entries.len(), std::mem::take(&mut self.bytes));
        self.source = name_for_batch(&self.source);
        self.node_id = name_for_batch(&self.node_id);
        output.send(Batch::new(entries)).await;
    }
}

/// Decodes lines on the runtime's other worker threads while the reader goes on reading and
/// framing; batches leave in the order their lines arrived. One fast sender on one connection
/// otherwise holds decoding to the one thread that reads it, while the other cores idle.
struct ParallelDecode {
    /// Framed lines not yet handed to a job.
    lines: Vec<Bytes>,
    bytes: usize,
    /// Jobs in the order of their lines, each with its byte count.
    jobs: std::collections::VecDeque<(tokio::task::JoinHandle<Vec<LogEntry>>, usize)>,
}

impl ParallelDecode {
    /// Jobs in flight at most (each of at most `MAX_BATCH_ENTRIES` lines): enough to keep the
    /// other workers busy, few enough that a slow sink stops the reading soon.
    const MAX_JOBS: usize = 8;

    fn new() -> Self {
        ParallelDecode {
            lines: Vec::with_capacity(MAX_BATCH_ENTRIES),
            bytes: 0,
            jobs: std::collections::VecDeque::with_capacity(Self::MAX_JOBS),
        }
    }

    fn push(&mut self, frame: Frame, batcher: &LineBatcher) {
        let line = batcher.line_of(frame);
        if line.is_empty() {
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
        if self.lines.len() >= MAX_BATCH_ENTRIES {
            self.spawn(batcher);
        }
    }

    /// Hands the framed lines to a decoding job.
    fn spawn(&mut self, batcher: &LineBatcher) {
        if self.lines.is_empty() {
            return;
        }
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(MAX_BATCH_ENTRIES));
        let (format, source, node_id, now) = (
            batcher.format,
            name_for_batch(&batcher.source),
            name_for_batch(&batcher.node_id),
            batcher.now,
        );
        let job = tokio::spawn(async move {
            lines
                .into_iter()
                .map(|line| decode(format, line, source.clone(), node_id.clone(), now))
                .collect()
        });
        self.jobs.push_back((job, std::mem::take(&mut self.bytes)));
    }

    fn is_full(&self) -> bool {
        self.jobs.len() >= Self::MAX_JOBS
    }

    /// The oldest job's entries once it is done (pending while there is none).
    async fn next_done(&mut self) -> (Result<Vec<LogEntry>, tokio::task::JoinError>, usize) {
        match self.jobs.front_mut() {
            Some((job, bytes)) => {
                let bytes = *bytes;
                let result = job.await;
                self.jobs.pop_front();
                (result, bytes)
            }
            None => std::future::pending().await,
        }
    }

    async fn send(
        result: Result<Vec<LogEntry>, tokio::task::JoinError>,
        bytes: usize,
        batcher: &LineBatcher,
        output: &Output,
    ) {
        match result {
            Ok(entries) => {
                batcher.metrics.received(entries.len(), bytes);
                output.send(Batch::new(entries)).await;
            }
            // Decoding does not panic on any input; if it ever did, the loss is counted.
            Err(error) => {
                batcher.metrics.error("decode_failed");
                tracing::error!(component_id = %batcher.source, %error, "a decoding job failed");
            }
        }
    }

    /// Waits for the oldest job and sends its entries.
    async fn send_oldest(&mut self, batcher: &LineBatcher, output: &Output) {
        let (result, bytes) = self.next_done().await;
        Self::send(result, bytes, batcher, output).await;
    }

    /// Sends every job's entries, in order.
    async fn finish(&mut self, batcher: &LineBatcher, output: &Output) {
        self.spawn(batcher);
        while !self.jobs.is_empty() {
            self.send_oldest(batcher, output).await;
        }
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
    let mut parallel = batcher
        .decodes_lines_independently()
        .then(ParallelDecode::new);
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
            let held_until = batcher.deadline();
            let decoding = parallel.as_ref().is_some_and(|p| !p.jobs.is_empty());
            tokio::select! {
                biased;
                (result, bytes) = next_decoded(&mut parallel), if decoding => {
                    ParallelDecode::send(result, bytes, batcher, output).await;
                    continue;
                }
                _ = sleep_until_deadline(held_until), if held_until.is_some() => {
                    batcher.flush_held(false);
                    batcher.flush(output).await;
                    continue;
                }
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
                match parallel.as_mut() {
                    Some(parallel) => {
                        while let Some(frame) = framer.decode(&mut buffer) {
                            parallel.push(frame, batcher);
                        }
                        parallel.spawn(batcher);
                        // Backpressure: a full pipeline waits for its oldest job to leave.
                        while parallel.is_full() {
                            parallel.send_oldest(batcher, output).await;
                        }
                    }
                    None => {
                        while let Some(frame) = framer.decode(&mut buffer) {
                            batcher.push_frame(frame);
                            if batcher.is_full() {
                                batcher.flush(output).await;
                            }
                        }
                        batcher.flush(output).await;
                    }
                }
            }
            Err(error) => break Err(error),
        }
    };
    if let Some(parallel) = parallel.as_mut() {
        parallel.finish(batcher, output).await;
    }
    while let Some(frame) = framer.decode_eof(&mut buffer) {
        batcher.push_frame(frame);
    }
    batcher.flush_held(true);
    batcher.flush(output).await;
    result
}

async fn next_decoded(
    parallel: &mut Option<ParallelDecode>,
) -> (Result<Vec<LogEntry>, tokio::task::JoinError>, usize) {
    match parallel {
        Some(parallel) => parallel.next_done().await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until_deadline(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    }
}

/// Reads allowed after shutdown to take in what is already waiting.
const SHUTDOWN_READS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ComponentKind, MetricsCollector};
    use crate::pipeline::{Input, WhenFull};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_decoded_in_parallel_leave_in_the_order_they_were_read() {
        let collector = MetricsCollector::new();
        let source_metrics = collector.component("in", ComponentKind::Source, "socket");
        let sink_metrics = collector.component("out", ComponentKind::Sink, "blackhole");
        // A small channel, so that the reader also waits on a slow consumer.
        let (sender, receiver) = flume::bounded(2);
        let mut builder = Output::builder(source_metrics.clone());
        builder.add_target(Arc::from("out"), sender, WhenFull::Block, &sink_metrics);
        let output = builder.build();
        let input = Input::new(receiver, sink_metrics);
        let consumer = tokio::spawn(async move {
            let mut messages = Vec::new();
            while let Some(batch) = input.recv().await {
                messages.extend(batch.entries().iter().map(|entry| entry.message.clone()));
                tokio::task::yield_now().await;
            }
            messages
        });

        // About 80 jobs' worth of lines, in reads of up to 256 KiB: many jobs in flight at once.
        let count = 40_000;
        let text: String = (0..count).map(|i| format!("line {i:06}\n")).collect();
        let mut batcher = LineBatcher::new(
            Arc::from("in"),
            Arc::from("node"),
            source_metrics,
            Format::Text,
        );
        assert!(batcher.decodes_lines_independently());
        read_lines(
            text.as_bytes(),
            StreamFramer::lines(DEFAULT_MAX_LINE_BYTES),
            &mut batcher,
            &output,
            &CancellationToken::new(),
            None,
        )
        .await
        .expect("reading from memory does not fail");
        drop(output);

        let messages = consumer.await.expect("consumer");
        let expected: Vec<String> = (0..count).map(|i| format!("line {i:06}")).collect();
        assert_eq!(messages.len(), count);
        assert!(
            messages
                .iter()
                .zip(&expected)
                .all(|(got, want)| got == want.as_bytes()),
            "entries left out of order"
        );
    }
}
