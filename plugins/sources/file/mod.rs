//! `type = "file"`: follows files matched by globs, through rotation, truncation and restarts,
//! without losing a line.
//!
//! One thread per source runs the loop: take file events, scan now and then, read each file
//! that may have data in large chunks, send batches, take acknowledgements, write checkpoints.
//! A checkpoint moves only when every sink downstream has acknowledged the batch (the batch's
//! finalizer reports back here), and is written to the state store in one transaction every
//! `CHECKPOINT_INTERVAL`: a crash replays at most what was acknowledged since, never loses.
//!
//! Rotation, as the cases come:
//! * rename and create: the open handle is read to its end (the file keeps its identity at its
//!   new name, or is closed once it is gone and drained); the new file is read from 0;
//! * copytruncate: the file shrinks below what was read; the stream continues in the copy
//!   (found among the file's siblings by identity) from where it was, then the truncated file
//!   is read from 0 as a new stream;
//! * deletion: the open handle is read to its end, then closed and its checkpoint removed.
//!
//! Here: the config, and the top of the loop. The rest, by concern: `discovery` (globs and file
//! events), `following` (a path found becomes a stream; a finished stream is closed), `reading`
//! (read, join, make entries, send), `rotation` (rename, copytruncate, copies followed),
//! `checkpoints` (acknowledgements and state store writes), `tailed` (one followed file),
//! `container` (CRI and Docker records, per stream).

mod checkpoints;
mod container;
mod discovery;
mod following;
mod reading;
mod rotation;
mod tailed;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use serde::Deserialize;

use self::checkpoints::Ack;
use self::discovery::Discovery;
use self::tailed::TailedFile;
use super::default_max_line_bytes;
use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Source, SourceConfig, SourceContext,
};
use crate::event::LogEntry;
use crate::metrics::{ComponentMetrics, FileMetricFamilies};
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;
use crate::pipeline::Output;
use crate::settings::ConfigDuration;
use crate::state::{Checkpoint, StateStore};

/// Longest wait for an event when nothing is happening.
const IDLE_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Files present at start are read from their beginning (default).
    #[default]
    Beginning,
    /// Files present at start are read from their end; files appearing later from the start.
    End,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileConfig {
    /// Glob patterns of files to follow (`*`, `?`, `[…]`, `{a,b}`, `**`).
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files found at startup that have no checkpoint.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are cut to this many bytes; the rest is skipped to the next newline.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How lines are parsed: `auto` (default), `text`, `json`, `logfmt`, `syslog`, `cri`, `docker`.
    #[serde(default)]
    pub format: Format,
    /// `"auto"` (default: stack traces become one entry), `"none"`, or
    /// `{ start_pattern = "regex", timeout = "1s" }`.
    #[serde(default = "MultilineConfig::auto")]
    pub multiline: MultilineConfig,
    /// Scan for files this often, besides file events (the fallback where events are missed).
    #[serde(default = "default_scan_interval")]
    pub scan_interval: ConfigDuration,
    /// A last line without a newline is emitted once the file has been idle this long.
    #[serde(default = "default_partial_line_timeout")]
    pub partial_line_timeout: ConfigDuration,
    /// Checkpoints of files not seen for this long are forgotten.
    #[serde(default = "default_forget_after")]
    pub forget_after: ConfigDuration,
}

/// What a source built on this one adds to each entry, knowing only the file it came from
/// (`kubernetes_logs` supplies one).
///
/// Called on the reading thread for every entry, after `metadata.file` and `metadata.stream`
/// are set and before the entry is batched: it may block (a lookup), but every file waits.
pub trait Enricher: Send {
    fn enrich(&mut self, path: &Path, entry: &mut LogEntry);
}

/// Makes a source's `Enricher` when it starts running (on the runtime, so it may keep
/// `Handle::current()` for blocking lookups from the reading thread).
pub type Enrichment = Arc<dyn Fn() -> Box<dyn Enricher> + Send + Sync>;

fn default_scan_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

fn default_partial_line_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(1))
}

fn default_forget_after() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(24 * 3600))
}

impl SourceConfig for FileConfig {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        self.build_enriched(cx, None)
    }

    fn warnings(&self) -> Vec<String> {
        let Ok(base) = std::env::current_dir() else {
            return Vec::new();
        };
        Discovery::new(&self.include, &self.exclude, &base)
            .map(|discovery| discovery.problems())
            .unwrap_or_default()
    }
}

impl FileConfig {
    /// The source, with what a source built on this one adds to each entry.
    pub fn build_enriched(
        &self,
        cx: &BuildContext<'_>,
        enrichment: Option<Enrichment>,
    ) -> Result<Box<dyn Source>, BuildError> {
        if self.include.is_empty() {
            return Err(BuildError(
                "`include` must name at least one pattern".to_string(),
            ));
        }
        let base = std::env::current_dir()
            .map_err(|error| BuildError(format!("cannot read the working directory: {error}")))?;
        // Checked here so a bad glob is reported by `validate`-time building, not at run time.
        Discovery::new(&self.include, &self.exclude, &base)?;
        Ok(Box::new(FileSource {
            config: self.clone(),
            base,
            shutdown_timeout: cx.global.agent.shutdown_timeout.0,
            families: cx.metrics.files().clone(),
            enrichment,
        }))
    }
}

struct FileSource {
    config: FileConfig,
    base: PathBuf,
    shutdown_timeout: Duration,
    families: FileMetricFamilies,
    enrichment: Option<Enrichment>,
}

impl Source for FileSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let handle = tokio::runtime::Handle::current();
            let discovery = Discovery::new(&self.config.include, &self.config.exclude, &self.base)
                .map_err(|error| ComponentError::Other(error.0))?;

            let tailer = Tailer::new(*self, discovery, cx, handle);
            tokio::task::spawn_blocking(move || tailer.run())
                .await
                .map_err(|error| ComponentError::Other(format!("file source thread: {error}")))?
        })
    }
}

struct Tailer {
    config: FileConfig,
    shutdown_timeout: Duration,
    source: Arc<str>,
    node_id: Arc<str>,
    output: Option<Output>,
    shutdown: tokio_util::sync::CancellationToken,
    metrics: ComponentMetrics,
    families: FileMetricFamilies,
    files_watched: IntGauge,
    rotations: IntCounter,
    truncations: IntCounter,
    health: crate::health::HealthHandle,
    store: StateStore,
    handle: tokio::runtime::Handle,
    discovery: Discovery,
    files: HashMap<u64, TailedFile>,
    by_inode: HashMap<(u64, u64), u64>,
    by_path: HashMap<PathBuf, u64>,
    by_key: HashMap<String, u64>,
    /// Checkpoints loaded at start (and kept current), by key.
    saved: HashMap<String, Checkpoint>,
    /// Recently created files that are not followed, kept open: see `find_copy`.
    copy_candidates: std::collections::VecDeque<(PathBuf, File)>,
    /// Paths of the checkpoints loaded at start, with their offsets.
    saved_paths: HashMap<PathBuf, u64>,
    /// Final checkpoints of files closed since the last write.
    closed: Vec<Checkpoint>,
    /// Checkpoint rows to delete with the next write.
    forget: Vec<String>,
    next_serial: u64,
    enricher: Option<Box<dyn Enricher>>,
    acks: flume::Receiver<Ack>,
    ack_sender: flume::Sender<Ack>,
    last_persist: Instant,
}

impl Tailer {
    fn new(
        source: FileSource,
        discovery: Discovery,
        cx: SourceContext,
        handle: tokio::runtime::Handle,
    ) -> Self {
        let (ack_sender, acks) = flume::unbounded();
        let enricher = source.enrichment.as_ref().map(|make| make());
        let id: &str = &cx.id;
        Tailer {
            files_watched: source.families.watched.with_label_values(&[id]),
            rotations: source.families.rotations.with_label_values(&[id]),
            truncations: source.families.truncations.with_label_values(&[id]),
            families: source.families,
            config: source.config,
            shutdown_timeout: source.shutdown_timeout,
            source: cx.id.clone(),
            node_id: cx.node_id,
            output: Some(cx.output),
            shutdown: cx.shutdown,
            metrics: cx.metrics,
            health: cx.health,
            store: cx.state,
            handle,
            discovery,
            files: HashMap::new(),
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            by_key: HashMap::new(),
            saved: HashMap::new(),
            saved_paths: HashMap::new(),
            copy_candidates: std::collections::VecDeque::new(),
            closed: Vec::new(),
            forget: Vec::new(),
            next_serial: 0,
            enricher,
            acks,
            ack_sender,
            last_persist: Instant::now(),
        }
    }

    fn run(mut self) -> Result<(), ComponentError> {
        let checkpoints = self
            .store
            .load_checkpoints(&self.source)
            .map_err(|error| ComponentError::Other(error.to_string()))?;
        self.saved_paths = checkpoints
            .iter()
            .map(|c| (PathBuf::from(&c.path), c.offset))
            .collect();
        self.saved = checkpoints
            .into_iter()
            .map(|c| (c.key.clone(), c))
            .collect();
        let scan_interval = self.config.scan_interval.0;

        for path in self.discovery.scan() {
            self.discover(&path, true);
        }
        self.forget_unseen_checkpoints();
        self.health.running();
        let mut last_scan = Instant::now();
        let mut last_expiry = Instant::now();

        while !self.shutdown.is_cancelled() {
            let now = Instant::now();
            self.take_events();
            if now.duration_since(last_scan) >= scan_interval {
                for path in self.discovery.scan() {
                    self.discover(&path, false);
                }
                self.check_paths();
                for file in self.files.values_mut() {
                    file.active = true;
                }
                self.follow_copies_of_unseen_rotations();
                last_scan = now;
            }
            let progressed = self.read_round(now);
            self.take_acks();
            self.persist(false);
            self.close_finished(now);
            if now.duration_since(last_expiry) >= Duration::from_secs(3600) {
                self.forget_unseen_checkpoints();
                last_expiry = now;
            }
            if !progressed {
                let wait = self
                    .files
                    .values()
                    .filter_map(TailedFile::deadline)
                    .min()
                    .map_or(IDLE_WAIT, |deadline| {
                        deadline.saturating_duration_since(now).min(IDLE_WAIT)
                    });
                self.discovery
                    .wait_event(wait.max(Duration::from_millis(1)));
            }
        }
        self.finish();
        Ok(())
    }

    /// At shutdown: send entries held by multiline aggregation, stop sending, wait for the
    /// acknowledgements of what is in flight, write the final checkpoints.
    fn finish(&mut self) {
        let serials: Vec<u64> = self.files.keys().copied().collect();
        for serial in serials {
            let held = match self.files.get_mut(&serial) {
                Some(file) => file.flush_pending(),
                None => continue,
            };
            self.ship(serial, held);
        }
        self.output = None;
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.files.values().any(TailedFile::has_in_flight) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match self
                .acks
                .recv_timeout(remaining.min(Duration::from_millis(100)))
            {
                Ok(ack) => self.acknowledge(ack),
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
            self.take_acks();
        }
        self.persist(true);
    }
}
