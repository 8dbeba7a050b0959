//! A sink's disk buffer (`buffer = { type = "disk", … }`): batches for the sink are written to
//! segment files under `data_dir/buffers/<sink>/` and read back from there by the sink, so what
//! a crash, a restart or a long backend outage would have lost from memory is on disk instead.
//!
//! Two threads per buffer. The *writer* takes batches from the sink's input channel, appends
//! each as one record and syncs as `fsync` says; a batch whose source only waits for acceptance
//! (`Finalizer::when_buffered`, the aggregator's intake) is acknowledged once its record is
//! durable, any other (a file source's checkpoint) keeps waiting for the sink itself. The
//! *reader* reads the records in order, hands them to the sink as batches, and tracks the
//! sink's acknowledgements: the position before which everything is acknowledged is saved in
//! `acknowledged` (so a restart replays only what was not delivered), and every segment wholly
//! before it is deleted, which is what frees room under `max_size`.
//!
//! Opening never fails on what a crash or a bad disk left: a torn or corrupt record is
//! skipped, logged with its segment and offset, and counted in
//! `tailfix_buffer_corrupt_records_total`; an unreadable `acknowledged` file means replaying
//! from the oldest segment (duplicates rather than loss). On shutdown the reader stops handing
//! out records at once: what the sink has not taken stays on disk for the next start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::{IntCounter, IntGauge};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, DeliveryStatus, Finalizer};
use super::channel::WhenFull;
use super::segments::{self, Damage, Position, SegmentReader, SegmentWriter, Step};
use crate::event::LogEntry;
use crate::event::record::{decode_batch, encode_batch};
use crate::settings::ByteSize;

/// When the writer makes records durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Group commit: sync when no batch is waiting, and at least every `SYNC_INTERVAL`.
    #[default]
    Batch,
    /// Sync after every batch.
    Always,
    /// Leave it to the operating system (survives a crash of the agent, not of the machine).
    Never,
}

/// The longest a written batch waits for its sync under `fsync = "batch"`.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// A sink's `buffer` table: `{ type = "memory" }` (the default) or
/// `{ type = "disk", max_size = "1GiB", when_full = "block", fsync = "batch" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BufferConfig {
    Memory {
        /// Overrides the sink's `when_full`.
        #[serde(default)]
        when_full: Option<WhenFull>,
    },
    Disk {
        #[serde(default = "default_max_size")]
        max_size: ByteSize,
        #[serde(default)]
        when_full: WhenFull,
        #[serde(default)]
        fsync: Fsync,
    },
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig::Memory { when_full: None }
    }
}

fn default_max_size() -> ByteSize {
    ByteSize(1 << 30)
}

impl BufferConfig {
    /// The disk buffer's settings, if it is one.
    pub fn disk(&self) -> Option<DiskBufferSettings> {
        match *self {
            BufferConfig::Memory { .. } => None,
            BufferConfig::Disk {
                max_size,
                when_full,
                fsync,
            } => Some(DiskBufferSettings {
                max_bytes: max_size.0,
                when_full,
                fsync,
            }),
        }
    }
}

/// A disk buffer's settings, from the sink's `buffer` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskBufferSettings {
    pub max_bytes: u64,
    pub when_full: WhenFull,
    pub fsync: Fsync,
}

impl DiskBufferSettings {
    /// Segments small enough that the one being written (never deleted) is a small part of the
    /// bound, large enough that files stay few.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(64 << 10, 32 << 20)
    }
}

/// The counters and gauges a disk buffer keeps up to date.
#[derive(Clone)]
pub struct BufferMetrics {
    pub written: IntCounter,
    pub acknowledged: IntCounter,
    pub replayed: IntCounter,
    pub corrupt: IntCounter,
    pub disk_bytes: IntGauge,
    /// The sink's `buffer_events` gauge: events between its producers and itself.
    pub input_events: IntGauge,
    /// The sink's `component_discarded_events_total{reason="buffer_full"}`.
    pub discarded_full: IntCounter,
    /// The sink's `component_errors_total{error_type="buffer_write"}`.
    pub write_errors: IntCounter,
}

/// Why a buffer could not be opened (its directory cannot be created or listed).
#[derive(Debug, thiserror::Error)]
#[error("disk buffer {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A running disk buffer; `finished` resolves once both threads are done and the sink's
/// acknowledgements are saved.
pub struct DiskBuffer {
    done: tokio::sync::oneshot::Receiver<()>,
    stop: CancellationToken,
}

impl DiskBuffer {
    /// Opens the buffer in `dir` and starts its threads between `upstream` (what the sink's
    /// producers send) and `downstream` (what the sink reads).
    pub fn start(
        id: &str,
        dir: &Path,
        settings: DiskBufferSettings,
        upstream: flume::Receiver<Batch>,
        downstream: flume::Sender<Batch>,
        metrics: BufferMetrics,
        shutdown: CancellationToken,
    ) -> Result<DiskBuffer, OpenError> {
        let opened = open(id, dir, &metrics).map_err(|source| OpenError {
            path: dir.to_path_buf(),
            source,
        })?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            layout: Mutex::new(opened.layout),
            room: Condvar::new(),
            waiting: Mutex::new(Waiting::default()),
        });
        let (events, inbox) = flume::unbounded();
        let (done, finished) = tokio::sync::oneshot::channel();
        let writer = Writer {
            id: Arc::from(id),
            shared: shared.clone(),
            settings: settings.clone(),
            upstream,
            events: events.clone(),
            metrics: metrics.clone(),
            segment: None,
            next_seq: opened.next_seq,
            record: Vec::new(),
            unsynced: Vec::new(),
            unsynced_events: 0,
            first_unsynced: None,
            last_error_log: None,
        };
        let reader = Reader {
            id: Arc::from(id),
            shared,
            inbox,
            events,
            downstream: Some(downstream),
            metrics,
            shutdown: shutdown.clone(),
            position: opened.start,
            expected: opened.start_seq,
            cursor: None,
            outstanding: VecDeque::new(),
            first_ticket: 0,
            saved: opened.start,
            saved_at: Instant::now(),
            writer_done: false,
            damage_pending: false,
            replay_until: opened.replay_until,
        };
        let spawn = |name: String, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(work)
                .map_err(|source| OpenError {
                    path: dir.to_path_buf(),
                    source,
                })
        };
        let writer_events = writer.events.clone();
        spawn(
            format!("buffer-w-{id}"),
            Box::new(move || {
                // Even if the writer panics the reader must learn that nothing more comes.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run()));
                let _ = writer_events.send(Event::WriterDone);
            }),
        )?;
        spawn(
            format!("buffer-r-{id}"),
            Box::new(move || {
                reader.run();
                let _ = done.send(());
            }),
        )?;
        Ok(DiskBuffer {
            done: finished,
            stop: shutdown,
        })
    }

    /// Stops handing records to the sink (its sink is being removed): what it has not taken
    /// stays on disk for the next start.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Resolves once the buffer has stopped and saved where its sink got to.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

/// What both threads see: the segments on disk and the acknowledgements waiting for records.
struct Shared {
    dir: PathBuf,
    layout: Mutex<Layout>,
    /// Signalled when segments are deleted: a writer waiting for room tries again.
    room: Condvar,
    /// What the writer keeps of a record for the reader, by its sequence number.
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    records: HashMap<u64, Kept>,
    /// Entries held in `records`.
    events: usize,
}

impl Waiting {
    fn take(&mut self, seq: u64) -> Kept {
        let kept = self.records.remove(&seq).unwrap_or_default();
        if let Some(entries) = &kept.entries {
            self.events -= entries.len();
        }
        kept
    }
}

/// What the writer hands the reader beside a record.
#[derive(Default)]
struct Kept {
    /// The acknowledgement of a batch that waits for its sink: the reader attaches it to the
    /// batch it makes of the record.
    finalizer: Option<Arc<Finalizer>>,
    /// The entries themselves while the reader keeps up (at most `KEPT_EVENTS` entries), so
    /// that a record just written is not decoded again; the record on disk is what counts.
    entries: Option<Arc<Vec<LogEntry>>>,
}

/// Most entries the writer keeps in memory for the reader: decoding is most of a disk
/// buffer's cost while its sink keeps up, and this bounds what that saving costs in memory.
const KEPT_EVENTS: usize = 32 << 10;

#[derive(Debug, Default)]
struct Layout {
    /// Every segment on disk and the bytes written to it.
    segments: BTreeMap<u64, u64>,
    /// The segment the writer appends to; the reader reads it no further than its size here.
    writing: Option<u64>,
    held: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the reader learns from the writer and from the sink.
enum Event {
    Written,
    WriterDone,
    Acknowledged { ticket: u64, status: DeliveryStatus },
}

struct Opened {
    layout: Layout,
    start: Position,
    start_seq: Option<u64>,
    next_seq: u64,
    /// Segments up to this number were written by an earlier run.
    replay_until: u64,
}

const ACKNOWLEDGED_FILE: &str = "acknowledged";

/// Reads what is on disk: the segments, where the sink got to, the next sequence number.
fn open(id: &str, dir: &Path, metrics: &BufferMetrics) -> std::io::Result<Opened> {
    std::fs::create_dir_all(dir)?;
    let saved = read_acknowledged(dir).unwrap_or_else(|problem| {
        tracing::warn!(component_id = %id, dir = %dir.display(), %problem, "disk buffer: where the sink got to is unreadable; replaying every segment (some entries may arrive twice)");
        None
    });
    let mut layout = Layout::default();
    for (number, bytes) in segments::list(dir)? {
        if saved.is_some_and(|(position, _)| number < position.segment) {
            // Every record in it was acknowledged before the restart.
            remove_segment(dir, number);
            continue;
        }
        layout.segments.insert(number, bytes);
        layout.held += bytes;
    }
    metrics.disk_bytes.set(layout.held as i64);
    let first = layout.segments.keys().next().copied();
    let (start, start_seq) = match (saved, first) {
        (Some((position, seq)), Some(first)) if position.segment >= first => (position, Some(seq)),
        (_, Some(first)) => (
            Position {
                segment: first,
                offset: 0,
            },
            None,
        ),
        (_, None) => (Position::default(), None),
    };
    let mut next_seq = saved.map_or(0, |(_, seq)| seq);
    for &number in layout.segments.keys().rev() {
        if let Some(last) = last_seq(dir, number)? {
            next_seq = next_seq.max(last + 1);
            break;
        }
    }
    let replay_until = layout.segments.keys().next_back().copied().unwrap_or(0);
    if layout.held > 0 {
        tracing::info!(component_id = %id, bytes = layout.held, segments = layout.segments.len(), "disk buffer: replaying what an earlier run left");
    }
    Ok(Opened {
        layout,
        start,
        start_seq,
        next_seq,
        replay_until,
    })
}

/// The sequence number of the last whole record in a segment.
fn last_seq(dir: &Path, number: u64) -> std::io::Result<Option<u64>> {
    let mut reader = match SegmentReader::open(dir, number, 0) {
        Ok(reader) => reader,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut last = None;
    loop {
        match reader.next(None, None)? {
            Step::Record { seq, .. } => last = Some(last.map_or(seq, |l: u64| l.max(seq))),
            Step::Damaged(_) => {}
            Step::End => return Ok(last),
        }
    }
}

/// `acknowledged`: `<segment> <offset> <sequence number>` of the first record not acknowledged.
fn read_acknowledged(dir: &Path) -> Result<Option<(Position, u64)>, String> {
    let text = match std::fs::read_to_string(dir.join(ACKNOWLEDGED_FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{}` is not three numbers", text.trim()))?;
    match numbers[..] {
        [segment, offset, seq] => Ok(Some((Position { segment, offset }, seq))),
        _ => Err(format!("`{}` is not three numbers", text.trim())),
    }
}

fn write_acknowledged(dir: &Path, position: Position, seq: u64) -> std::io::Result<()> {
    let temporary = dir.join(format!("{ACKNOWLEDGED_FILE}.tmp"));
    std::fs::write(
        &temporary,
        format!("{} {} {seq}\n", position.segment, position.offset),
    )?;
    std::fs::rename(&temporary, dir.join(ACKNOWLEDGED_FILE))
}

fn remove_segment(dir: &Path, number: u64) {
    let path = segments::segment_path(dir, number);
    if let Err(error) = std::fs::remove_file(&path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "disk buffer: cannot delete an acknowledged segment");
    }
}

/// Why a record could not be appended.
enum AppendError {
    Full,
    TooLarge,
    Io(std::io::Error),
}

struct Writer {
    id: Arc<str>,
    shared: Arc<Shared>,
    settings: DiskBufferSettings,
    upstream: flume::Receiver<Batch>,
    events: flume::Sender<Event>,
    metrics: BufferMetrics,
    segment: Option<SegmentWriter>,
    next_seq: u64,
    record: Vec<u8>,
    /// Acknowledgements released once the records before them are synced.
    unsynced: Vec<Arc<Finalizer>>,
    unsynced_events: u64,
    first_unsynced: Option<Instant>,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let due = self
                .first_unsynced
                .is_some_and(|first| first.elapsed() >= SYNC_INTERVAL);
            if due {
                self.sync();
            }
            let next = if self.first_unsynced.is_none() {
                self.upstream.recv().ok()
            } else {
                match self.upstream.try_recv() {
                    Ok(batch) => Some(batch),
                    Err(flume::TryRecvError::Empty) => {
                        // Nothing waiting: make what was written durable now.
                        self.sync();
                        continue;
                    }
                    Err(flume::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                Some(batch) => self.write(batch),
                None => break,
            }
        }
        self.sync();
    }

    fn write(&mut self, mut batch: Batch) {
        let events = batch.len() as u64;
        self.metrics.input_events.sub(events as i64);
        let finalizer = batch.take_finalizer();
        self.record.clear();
        encode_batch(batch.entries(), &mut self.record);
        let entries = batch.shared_entries();
        drop(batch);
        let seq = loop {
            match self.append() {
                Ok(seq) => break seq,
                Err(AppendError::TooLarge) => {
                    self.metrics.write_errors.inc();
                    tracing::error!(component_id = %self.id, bytes = self.record.len(), "disk buffer: a batch is larger than a record may be; dropped");
                    if let Some(finalizer) = finalizer {
                        finalizer.fail();
                    }
                    return;
                }
                Err(AppendError::Full) if self.settings.when_full == WhenFull::DropNewest => {
                    self.metrics.discarded_full.inc_by(events);
                    return;
                }
                Err(AppendError::Full) => self.wait_for_room(),
                Err(AppendError::Io(error)) => {
                    self.metrics.write_errors.inc();
                    let quiet = self
                        .last_error_log
                        .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
                    if !quiet {
                        self.last_error_log = Some(Instant::now());
                        tracing::error!(component_id = %self.id, dir = %self.shared.dir.display(), %error, "disk buffer: cannot write; retrying every second (entries wait, none is dropped)");
                    }
                    if self.settings.when_full == WhenFull::DropNewest {
                        self.metrics.discarded_full.inc_by(events);
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let mut kept = Kept::default();
        if let Some(finalizer) = finalizer {
            if finalizer.settles_when_buffered() {
                self.unsynced.push(finalizer);
            } else {
                kept.finalizer = Some(finalizer);
            }
        }
        let mut waiting = lock(&self.shared.waiting);
        if waiting.events + entries.len() <= KEPT_EVENTS {
            waiting.events += entries.len();
            kept.entries = Some(entries);
        }
        if kept.finalizer.is_some() || kept.entries.is_some() {
            waiting.records.insert(seq, kept);
        }
        drop(waiting);
        self.unsynced_events += events;
        self.first_unsynced.get_or_insert_with(Instant::now);
        let _ = self.events.send(Event::Written);
        match self.settings.fsync {
            Fsync::Always => self.sync(),
            Fsync::Never => self.release(),
            Fsync::Batch => {}
        }
    }

    /// Appends `self.record`, starting a new segment when the current one is full.
    fn append(&mut self) -> Result<u64, AppendError> {
        let size = (segments::HEADER + self.record.len()) as u64;
        if self.record.len() > segments::MAX_RECORD || size > self.settings.max_bytes {
            return Err(AppendError::TooLarge);
        }
        let mut layout = lock(&self.shared.layout);
        if layout.held + size > self.settings.max_bytes {
            return Err(AppendError::Full);
        }
        let roll = match &self.segment {
            Some(segment) => {
                segment.written() > 0 && segment.written() + size > self.settings.segment_bytes()
            }
            None => true,
        };
        if roll {
            // The records written so far must be durable before the reader may take the
            // segment as finished: sync it before starting the next.
            if let Some(segment) = &self.segment {
                segment.sync().map_err(AppendError::Io)?;
            }
            let number = layout
                .segments
                .keys()
                .next_back()
                .map_or(1, |last| last + 1);
            let segment =
                SegmentWriter::create(&self.shared.dir, number).map_err(AppendError::Io)?;
            layout.segments.insert(number, 0);
            layout.writing = Some(number);
            self.segment = Some(segment);
        }
        let Some(segment) = self.segment.as_mut() else {
            unreachable!("a segment was opened above");
        };
        let seq = self.next_seq;
        // On a failure the segment is written on at the next attempt (see `SegmentWriter`).
        segment.append(seq, &self.record).map_err(AppendError::Io)?;
        self.next_seq += 1;
        let number = segment.number();
        layout.segments.insert(number, segment.written());
        layout.held += size;
        self.metrics.disk_bytes.set(layout.held as i64);
        Ok(seq)
    }

    fn wait_for_room(&self) {
        let layout = lock(&self.shared.layout);
        let _ = self
            .shared
            .room
            .wait_timeout(layout, Duration::from_millis(100));
    }

    fn sync(&mut self) {
        if self.first_unsynced.is_none() {
            return;
        }
        if let Some(segment) = &self.segment
            && let Err(error) = segment.sync()
        {
            self.metrics.write_errors.inc();
            tracing::error!(component_id = %self.id, path = %segment.path().display(), %error, "disk buffer: fsync failed");
        }
        self.release();
    }

    /// The synced records are accepted: count them and acknowledge their batches' sources.
    fn release(&mut self) {
        self.metrics.written.inc_by(self.unsynced_events);
        self.unsynced_events = 0;
        self.first_unsynced = None;
        self.unsynced.clear();
    }
}

/// A record handed to the sink and not yet acknowledged.
struct Outstanding {
    /// Where the record starts, and its sequence number: where to resume if it is not
    /// acknowledged.
    position: Position,
    seq: u64,
    events: u64,
    state: Settled,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settled {
    Pending,
    Done,
    /// The sink gave up on it at shutdown: it stays on disk for the next start.
    Kept,
}

struct Reader {
    id: Arc<str>,
    shared: Arc<Shared>,
    inbox: flume::Receiver<Event>,
    /// For the acknowledgements of the batches handed out (a clone per batch).
    events: flume::Sender<Event>,
    downstream: Option<flume::Sender<Batch>>,
    metrics: BufferMetrics,
    shutdown: CancellationToken,
    /// Where the next record is read.
    position: Position,
    /// The sequence number the next record should have, when known.
    expected: Option<u64>,
    cursor: Option<SegmentReader>,
    outstanding: VecDeque<Outstanding>,
    /// The ticket of `outstanding[0]`; tickets number the records handed out.
    first_ticket: u64,
    saved: Position,
    saved_at: Instant,
    writer_done: bool,
    damage_pending: bool,
    replay_until: u64,
}

/// What reading one step gave.
enum Read {
    Batch(Batch),
    Nothing,
    CaughtUp,
}

impl Reader {
    fn run(mut self) {
        let mut held: Option<Batch> = None;
        loop {
            while let Ok(event) = self.inbox.try_recv() {
                self.handle(event);
            }
            self.settle();
            if self.shutdown.is_cancelled() && self.downstream.is_some() {
                // What the sink has not taken stays on disk for the next start.
                if let Some(batch) = held.take() {
                    batch.mark_failed();
                }
                self.downstream = None;
            }
            if self.downstream.is_none() {
                let unsettled = self.outstanding.iter().any(|r| r.state == Settled::Pending);
                if self.writer_done && !unsettled {
                    break;
                }
                self.wait(Duration::from_millis(100));
                continue;
            }
            let batch = match held.take() {
                Some(batch) => batch,
                None => match self.read() {
                    Read::Batch(batch) => batch,
                    Read::Nothing => continue,
                    Read::CaughtUp if self.writer_done => {
                        // Everything written has been handed out: the sink may finish.
                        self.downstream = None;
                        continue;
                    }
                    Read::CaughtUp => {
                        self.wait(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            let Some(downstream) = &self.downstream else {
                continue;
            };
            let events = batch.len() as i64;
            self.metrics.input_events.add(events);
            match downstream.send_timeout(batch, Duration::from_millis(100)) {
                Ok(()) => {}
                Err(flume::SendTimeoutError::Timeout(batch)) => {
                    self.metrics.input_events.sub(events);
                    held = Some(batch);
                }
                Err(flume::SendTimeoutError::Disconnected(batch)) => {
                    self.metrics.input_events.sub(events);
                    batch.mark_failed();
                    self.downstream = None;
                }
            }
        }
        self.save(true);
    }

    fn wait(&mut self, timeout: Duration) {
        if let Ok(event) = self.inbox.recv_timeout(timeout) {
            self.handle(event);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Written => {}
            Event::WriterDone => self.writer_done = true,
            Event::Acknowledged { ticket, status } => {
                let Some(index) = ticket.checked_sub(self.first_ticket) else {
                    return;
                };
                let shutting_down = self.shutdown.is_cancelled();
                if let Some(record) = self.outstanding.get_mut(index as usize) {
                    record.state = match status {
                        DeliveryStatus::Delivered => Settled::Done,
                        // Given up at shutdown: keep it. Otherwise the sink counted its loss.
                        DeliveryStatus::Failed if shutting_down => Settled::Kept,
                        DeliveryStatus::Failed => Settled::Done,
                    };
                }
            }
        }
    }

    /// Moves past the records acknowledged in order, deletes the segments wholly before them
    /// and saves the position now and then.
    fn settle(&mut self) {
        while let Some(front) = self.outstanding.front() {
            if front.state != Settled::Done {
                break;
            }
            self.metrics.acknowledged.inc_by(front.events);
            self.outstanding.pop_front();
            self.first_ticket += 1;
        }
        self.save(false);
    }

    /// Where everything before is acknowledged, and the sequence number of the record there.
    fn acknowledged(&self) -> (Position, Option<u64>) {
        match self.outstanding.front() {
            Some(record) => (record.position, Some(record.seq)),
            None => (self.position, self.expected),
        }
    }

    fn save(&mut self, now: bool) {
        let (position, seq) = self.acknowledged();
        if position == self.saved || (!now && self.saved_at.elapsed() < SYNC_INTERVAL) {
            return;
        }
        let deletable: Vec<u64> = {
            let layout = lock(&self.shared.layout);
            layout
                .segments
                .keys()
                .copied()
                .filter(|number| *number < position.segment && Some(*number) != layout.writing)
                .collect()
        };
        // The position first: a crash between the two must not point before deleted segments.
        if let Some(seq) = seq
            && let Err(error) = write_acknowledged(&self.shared.dir, position, seq)
        {
            tracing::warn!(component_id = %self.id, %error, "disk buffer: cannot save where the sink got to");
        }
        self.saved = position;
        self.saved_at = Instant::now();
        if deletable.is_empty() {
            return;
        }
        for &number in &deletable {
            remove_segment(&self.shared.dir, number);
        }
        let mut layout = lock(&self.shared.layout);
        for number in deletable {
            if let Some(bytes) = layout.segments.remove(&number) {
                layout.held -= bytes;
            }
        }
        self.metrics.disk_bytes.set(layout.held as i64);
        drop(layout);
        self.shared.room.notify_all();
    }

    /// Reads the next record and makes it a batch.
    fn read(&mut self) -> Read {
        let limit = {
            let layout = lock(&self.shared.layout);
            if !layout.segments.contains_key(&self.position.segment) {
                // Not created yet, or the reader was at the end of one deleted since.
                match layout.segments.range(self.position.segment..).next() {
                    Some((&next, _)) => {
                        self.position = Position {
                            segment: next,
                            offset: 0,
                        };
                        self.cursor = None;
                        return Read::Nothing;
                    }
                    None => return Read::CaughtUp,
                }
            }
            if layout.writing == Some(self.position.segment) {
                Some(layout.segments[&self.position.segment])
            } else {
                None
            }
        };
        if self.cursor.is_none() {
            match SegmentReader::open(
                &self.shared.dir,
                self.position.segment,
                self.position.offset,
            ) {
                Ok(cursor) => self.cursor = Some(cursor),
                Err(error) => {
                    tracing::error!(component_id = %self.id, segment = self.position.segment, %error, "disk buffer: cannot open a segment; skipping it");
                    self.metrics.corrupt.inc();
                    return self.next_segment();
                }
            }
        }
        let Some(cursor) = self.cursor.as_mut() else {
            return Read::Nothing;
        };
        let waiting = &self.shared.waiting;
        let step = cursor.next_unless(limit, self.expected, |seq| {
            lock(waiting)
                .records
                .get(&seq)
                .is_some_and(|kept| kept.entries.is_some())
        });
        let offset = cursor.offset();
        match step {
            Ok(Step::Record {
                offset: start,
                seq,
                payload,
            }) => {
                let position = Position {
                    segment: self.position.segment,
                    offset: start,
                };
                self.position.offset = offset;
                self.count_gap(seq);
                self.expected = Some(seq + 1);
                self.make_batch(position, seq, payload)
            }
            Ok(Step::Damaged(damage)) => {
                self.position.offset = offset;
                self.damaged(&damage);
                Read::Nothing
            }
            Ok(Step::End) if limit.is_some() => Read::CaughtUp,
            Ok(Step::End) => self.next_segment(),
            Err(error) => {
                tracing::error!(component_id = %self.id, segment = self.position.segment, %error, "disk buffer: cannot read a segment; skipping the rest of it");
                self.metrics.corrupt.inc();
                self.next_segment()
            }
        }
    }

    fn next_segment(&mut self) -> Read {
        let layout = lock(&self.shared.layout);
        self.cursor = None;
        match layout.segments.range(self.position.segment + 1..).next() {
            Some((&next, _)) => {
                self.position = Position {
                    segment: next,
                    offset: 0,
                };
                Read::Nothing
            }
            None => Read::CaughtUp,
        }
    }

    fn damaged(&mut self, damage: &Damage) {
        self.metrics.corrupt.inc();
        self.damage_pending = true;
        tracing::warn!(
            component_id = %self.id,
            segment = %damage.segment.display(),
            offset = damage.offset,
            "disk buffer: damaged record skipped: {}", damage.what
        );
    }

    /// Records missing between the last one read and `seq`: those the damage took.
    fn count_gap(&mut self, seq: u64) {
        let Some(expected) = self.expected else {
            self.damage_pending = false;
            return;
        };
        let gap = seq.saturating_sub(expected);
        // The damage itself was counted once already.
        let missing = if self.damage_pending {
            gap.saturating_sub(1)
        } else {
            gap
        };
        if missing > 0 {
            self.metrics.corrupt.inc_by(missing);
            tracing::warn!(component_id = %self.id, missing, segment = self.position.segment, "disk buffer: records missing before this one");
        }
        self.damage_pending = false;
    }

    fn make_batch(&mut self, position: Position, seq: u64, payload: Vec<u8>) -> Read {
        let kept = lock(&self.shared.waiting).take(seq);
        let entries = match kept.entries {
            Some(entries) => Ok(entries),
            None => decode_batch(Bytes::from(payload)).map(Arc::new),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                self.metrics.corrupt.inc();
                tracing::warn!(component_id = %self.id, segment = position.segment, offset = position.offset, %error, "disk buffer: a record does not decode; skipped");
                return Read::Nothing;
            }
        };
        if entries.is_empty() {
            return Read::Nothing;
        }
        let events = entries.len() as u64;
        if position.segment <= self.replay_until {
            self.metrics.replayed.inc_by(events);
        }
        let upstream = kept.finalizer;
        let ticket = self.first_ticket + self.outstanding.len() as u64;
        self.outstanding.push_back(Outstanding {
            position,
            seq,
            events,
            state: Settled::Pending,
        });
        let events = self.events.clone();
        let finalizer = Finalizer::new(move |status| {
            if let Some(upstream) = upstream
                && status == DeliveryStatus::Failed
            {
                upstream.fail();
            }
            let _ = events.send(Event::Acknowledged { ticket, status });
        });
        Read::Batch(Batch::from_shared(entries, finalizer))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::event::LogEntry;
    use crate::metrics::{ComponentKind, MetricsCollector};
    use crate::time::Timestamp;

    fn batch(first: usize, count: usize) -> Batch {
        Batch::new(entries(first, count))
    }

    fn entries(first: usize, count: usize) -> Vec<LogEntry> {
        (first..first + count)
            .map(|i| {
                LogEntry::from_line(
                    Bytes::from(format!("line {i}")),
                    Arc::from("src"),
                    Arc::from("node"),
                    Timestamp(i as i64),
                )
            })
            .collect()
    }

    fn metrics() -> BufferMetrics {
        let collector = MetricsCollector::new();
        let families = collector.buffers();
        let sink = collector.component("out", ComponentKind::Sink, "file");
        BufferMetrics {
            written: families.written.with_label_values(&["out"]),
            acknowledged: families.acknowledged.with_label_values(&["out"]),
            replayed: families.replayed.with_label_values(&["out"]),
            corrupt: families.corrupt.with_label_values(&["out"]),
            disk_bytes: families.disk_bytes.with_label_values(&["out"]),
            input_events: sink.buffer_events.clone(),
            discarded_full: sink.discarded_counter("buffer_full"),
            write_errors: sink.error_counter("buffer_write"),
        }
    }

    fn settings(max_bytes: u64, when_full: WhenFull) -> DiskBufferSettings {
        DiskBufferSettings {
            max_bytes,
            when_full,
            fsync: Fsync::Batch,
        }
    }

    struct Running {
        upstream: Option<flume::Sender<Batch>>,
        downstream: flume::Receiver<Batch>,
        shutdown: CancellationToken,
        buffer: DiskBuffer,
        metrics: BufferMetrics,
    }

    fn start(dir: &Path, settings: DiskBufferSettings) -> Running {
        let (upstream, writer_input) = flume::bounded(16);
        let (to_sink, downstream) = flume::bounded(16);
        let shutdown = CancellationToken::new();
        let metrics = metrics();
        let buffer = DiskBuffer::start(
            "out",
            dir,
            settings,
            writer_input,
            to_sink,
            metrics.clone(),
            shutdown.clone(),
        )
        .unwrap();
        Running {
            upstream: Some(upstream),
            downstream,
            shutdown,
            buffer,
            metrics,
        }
    }

    fn lines(batch: &Batch) -> Vec<String> {
        batch
            .entries()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.message).into_owned())
            .collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn batches_pass_through_and_delivered_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = start(dir.path(), settings(1 << 20, WhenFull::Block));
        let upstream = buffer.upstream.take().unwrap();
        let sender = std::thread::spawn(move || {
            for i in 0..200 {
                upstream.send(batch(i * 10, 10)).unwrap();
            }
        });
        let mut seen = Vec::new();
        while let Ok(batch) = buffer.downstream.recv() {
            seen.extend(lines(&batch));
            if seen.len() == 2000 {
                break;
            }
        }
        sender.join().unwrap();
        assert_eq!(
            seen,
            (0..2000).map(|i| format!("line {i}")).collect::<Vec<_>>()
        );
        // The producers are gone: the buffer finishes once the sink has everything.
        assert!(buffer.downstream.recv().is_err());
        runtime().block_on(buffer.buffer.finished());
        assert_eq!(buffer.metrics.written.get(), 2000);
        assert_eq!(buffer.metrics.acknowledged.get(), 2000);
        let segments = segments::list(dir.path()).unwrap();
        assert!(
            segments.len() <= 1,
            "delivered segments are deleted: {segments:?}"
        );
        assert!(dir.path().join(ACKNOWLEDGED_FILE).exists());
        // A restart finds nothing to deliver again.
        let mut again = start(dir.path(), settings(1 << 20, WhenFull::Block));
        drop(again.upstream.take());
        assert!(again.downstream.recv().is_err());
        assert_eq!(again.metrics.replayed.get(), 0);
    }

    #[test]
    fn what_the_sink_did_not_take_comes_back_after_a_restart_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = start(dir.path(), settings(1 << 20, WhenFull::Block));
        let upstream = buffer.upstream.take().unwrap();
        for i in 0..50 {
            upstream.send(batch(i * 4, 4)).unwrap();
        }
        // The sink takes and delivers the first three batches, then the agent stops.
        let mut delivered = Vec::new();
        for _ in 0..3 {
            delivered.extend(lines(&buffer.downstream.recv().unwrap()));
        }
        while buffer.metrics.written.get() < 200 {
            std::thread::sleep(Duration::from_millis(5));
        }
        buffer.shutdown.cancel();
        drop(upstream);
        let in_hand: Vec<Batch> = buffer.downstream.drain().collect();
        for batch in &in_hand {
            batch.mark_failed();
        }
        drop(in_hand);
        drop(buffer.downstream);
        runtime().block_on(buffer.buffer.finished());

        let mut again = start(dir.path(), settings(1 << 20, WhenFull::Block));
        drop(again.upstream.take());
        while let Ok(batch) = again.downstream.recv() {
            delivered.extend(lines(&batch));
        }
        runtime().block_on(again.buffer.finished());
        assert_eq!(
            delivered,
            (0..200).map(|i| format!("line {i}")).collect::<Vec<_>>()
        );
        assert_eq!(again.metrics.replayed.get(), 188);
        assert_eq!(again.metrics.corrupt.get(), 0);
    }

    #[test]
    fn acceptance_comes_at_the_disk_or_at_the_sink_as_the_source_asks() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = start(dir.path(), settings(1 << 20, WhenFull::Block));
        let upstream = buffer.upstream.take().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(AtomicUsize::new(0));
        let (a, d) = (accepted.clone(), delivered.clone());
        upstream
            .send(Batch::with_finalizer(
                entries(0, 1),
                Finalizer::when_buffered(move |_| {
                    a.fetch_add(1, Ordering::SeqCst);
                }),
            ))
            .unwrap();
        upstream
            .send(Batch::with_finalizer(
                entries(1, 1),
                Finalizer::new(move |status| {
                    assert_eq!(status, DeliveryStatus::Delivered);
                    d.fetch_add(1, Ordering::SeqCst);
                }),
            ))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "accepted once on disk");
        let first = buffer.downstream.recv().unwrap();
        let second = buffer.downstream.recv().unwrap();
        assert_eq!(delivered.load(Ordering::SeqCst), 0, "waits for the sink");
        drop(first);
        drop(second);
        let deadline = Instant::now() + Duration::from_secs(5);
        while delivered.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(delivered.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_size_bound_holds_and_drop_newest_counts_what_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let max = 256 << 10;
        let mut buffer = start(dir.path(), settings(max, WhenFull::DropNewest));
        let upstream = buffer.upstream.take().unwrap();
        // Nobody reads: about 2 MB sent into a 256 KiB buffer.
        for i in 0..400 {
            upstream.send(batch(i * 100, 100)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while buffer.metrics.written.get() + buffer.metrics.discarded_full.get() < 40_000
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let held: u64 = segments::list(dir.path())
            .unwrap()
            .iter()
            .map(|(_, b)| b)
            .sum();
        assert!(held <= max, "{held} > {max}");
        assert!(buffer.metrics.discarded_full.get() > 0);
        assert_eq!(
            buffer.metrics.written.get() + buffer.metrics.discarded_full.get(),
            40_000
        );
    }

    #[test]
    fn damage_left_on_disk_is_skipped_counted_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut buffer = start(dir.path(), settings(1 << 20, WhenFull::Block));
            let upstream = buffer.upstream.take().unwrap();
            for i in 0..20 {
                upstream.send(batch(i, 1)).unwrap();
            }
            while buffer.metrics.written.get() < 20 {
                std::thread::sleep(Duration::from_millis(5));
            }
            buffer.shutdown.cancel();
            drop(upstream);
            drop(buffer.downstream);
            runtime().block_on(buffer.buffer.finished());
        }
        let (number, _) = segments::list(dir.path()).unwrap()[0];
        let path = segments::segment_path(dir.path(), number);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle..middle + 8].fill(0xFF);
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(dir.path().join(ACKNOWLEDGED_FILE), b"garbage").unwrap();

        let mut again = start(dir.path(), settings(1 << 20, WhenFull::Block));
        drop(again.upstream.take());
        let mut seen = Vec::new();
        while let Ok(batch) = again.downstream.recv() {
            seen.extend(lines(&batch));
        }
        runtime().block_on(again.buffer.finished());
        let corrupt = again.metrics.corrupt.get() as usize;
        assert!(
            corrupt >= 2,
            "the overwritten record and the torn last one: {corrupt}"
        );
        assert_eq!(seen.len() + corrupt, 20, "{seen:?}");
        assert_eq!(seen[0], "line 0");
    }
}
