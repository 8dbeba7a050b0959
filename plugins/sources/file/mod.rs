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

mod discovery;
pub mod pod_labels;
mod tailed;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use serde::Deserialize;

use self::discovery::Discovery;
use self::tailed::{COMPRESSED_DONE, ReadEnd, TailedFile, identity_of, is_gzip, is_inode_key};
use super::{default_max_line_bytes, entry_from_joined, name_for_batch};
use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Source, SourceConfig, SourceContext,
};
use crate::event::{LogEntry, Value};
use crate::metrics::{ComponentMetrics, FileMetricFamilies};
use crate::multiline::{Joined, MultilineConfig};
use crate::parse::format::Format;
use crate::pipeline::{Batch, DeliveryStatus, Finalizer, MAX_BATCH_ENTRIES, Output};
use crate::settings::ConfigDuration;
use crate::state::{Checkpoint, StateStore};
use crate::time::Timestamp;

/// How often acknowledged positions are written to the state store.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);
/// Most bytes read from one file before the others get their turn.
const READ_QUOTA: usize = 256 * 1024;
/// Longest wait for an event when nothing is happening.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// A rotated-away file is closed once it has been at its end this long.
const ROTATE_WAIT: Duration = Duration::from_millis(500);

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
    /// Set by `kubernetes_logs`: entries get their pod's metadata from the path.
    #[serde(skip)]
    pub kubernetes: bool,
    /// Set by `kubernetes_logs` with `enrich = true`: where to look up pod labels.
    #[serde(skip)]
    pub pod_labels: Option<PodLabelsConfig>,
}

/// The Kubernetes API server and credentials for pod labels.
#[derive(Debug, Clone)]
pub struct PodLabelsConfig {
    pub api_server: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub ttl: Duration,
}

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
        }))
    }
}

struct FileSource {
    config: FileConfig,
    base: PathBuf,
    shutdown_timeout: Duration,
    families: FileMetricFamilies,
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

/// An acknowledgement from a batch's finalizer.
struct Ack {
    serial: u64,
    seq: u64,
    status: DeliveryStatus,
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
    pod_labels: Option<pod_labels::PodLabels>,
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
        let pod_labels = source.config.pod_labels.as_ref().and_then(|labels| {
            pod_labels::PodLabels::new(
                &labels.api_server,
                labels.token_file.clone(),
                labels.ca_file.clone(),
                labels.ttl,
                handle.clone(),
            )
            .map_err(|error| tracing::warn!(%error, "pod labels unavailable"))
            .ok()
        });
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
            pod_labels,
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

    fn take_events(&mut self) {
        let events = self.discovery.drain_events();
        for candidate in events.created_elsewhere {
            if self.copy_candidates.len() >= discovery::MAX_COPY_CANDIDATES {
                self.copy_candidates.pop_front();
            }
            self.copy_candidates.push_back(candidate);
        }
        for (path, file) in events.opened {
            self.discover_opened(&path, file, false);
        }
        for path in events.touched {
            if self.discovery.matches(&path) {
                self.discover(&path, false);
            } else if let Some(&serial) = self.by_path.get(&path) {
                self.check_path(serial);
            }
        }
    }

    /// Re-checks every followed path: does it still name the same file?
    fn check_paths(&mut self) {
        let serials: Vec<u64> = self.files.keys().copied().collect();
        for serial in serials {
            self.check_path(serial);
        }
    }

    fn check_path(&mut self, serial: u64) {
        let Some(file) = self.files.get_mut(&serial) else {
            return;
        };
        let same = std::fs::metadata(&file.path)
            .map(|metadata| (metadata.dev(), metadata.ino()) == file.dev_ino)
            .unwrap_or(false);
        file.active = true;
        if !same && !file.rotated_away {
            file.rotated_away = true;
            if self.by_path.get(&file.path) == Some(&serial) {
                self.by_path.remove(&file.path);
            }
            self.rotations.inc();
            // The path may already name the new file.
            let path = file.path.clone();
            if self.discovery.matches(&path) {
                self.discover(&path, false);
            }
        }
    }

    /// A path that matches: start following the file it names, or note that a followed file
    /// now has this name.
    fn discover(&mut self, path: &Path, at_startup: bool) {
        let Ok(metadata) = std::fs::metadata(path) else {
            if let Some(&serial) = self.by_path.get(path) {
                self.check_path(serial);
            }
            return;
        };
        if !metadata.is_file() {
            return;
        }
        let dev_ino = (metadata.dev(), metadata.ino());
        if self.by_inode.contains_key(&dev_ino) {
            self.known_at(path, dev_ino);
            return;
        }
        match File::open(path) {
            Ok(file) => self.discover_opened(path, file, at_startup),
            Err(error) => {
                self.metrics.error("open_failed");
                tracing::warn!(component_id = %self.source, path = %path.display(), %error, "cannot open file");
            }
        }
    }

    /// A followed file was seen at `path`.
    fn known_at(&mut self, path: &Path, dev_ino: (u64, u64)) {
        if let Some(&serial) = self.by_inode.get(&dev_ino)
            && let Some(file) = self.files.get_mut(&serial)
        {
            file.active = true;
            if file.path != path {
                if self.by_path.get(&file.path) == Some(&serial) {
                    self.by_path.remove(&file.path);
                }
                file.set_path(path);
                file.rotated_away = false;
                self.by_path.insert(path.to_path_buf(), serial);
            }
        }
    }

    /// A file opened at `path` (now, or when an event announced it).
    fn discover_opened(&mut self, path: &Path, file: File, at_startup: bool) {
        let Ok(metadata) = file.metadata() else {
            return;
        };
        if !metadata.is_file() {
            return;
        }
        let dev_ino = (metadata.dev(), metadata.ino());
        if self.by_inode.contains_key(&dev_ino) {
            self.known_at(path, dev_ino);
            return;
        }
        if let Some(&previous) = self.by_path.get(path) {
            // The path names a new file: the one we follow there was rotated away.
            if let Some(file) = self.files.get_mut(&previous)
                && !file.rotated_away
            {
                file.rotated_away = true;
                file.active = true;
                self.rotations.inc();
            }
            self.by_path.remove(path);
        }
        let key = match identity_of(&file, dev_ino) {
            Ok(key) => key,
            Err(error) => {
                self.metrics.error("read_failed");
                tracing::warn!(component_id = %self.source, path = %path.display(), %error, "cannot read file");
                return;
            }
        };
        if self.by_key.contains_key(&key) {
            // Same content as a file we follow under another inode: a copy (copytruncate) or a
            // duplicate. Its lines are that stream's lines; it is used only if the original is
            // truncated before we read to its end.
            return;
        }
        let size = metadata.len();
        if is_gzip(path) {
            // Read once, from its checkpoint (decompressed bytes), unless already read.
            let offset = self
                .saved
                .get(&key)
                .map_or(0, |checkpoint| checkpoint.offset);
            if offset != COMPRESSED_DONE {
                self.follow(file, key, dev_ino, path, offset);
            }
            return;
        }
        let offset = match self.saved.get(&key) {
            Some(checkpoint) if checkpoint.offset <= size => checkpoint.offset,
            Some(_) => {
                self.truncations.inc();
                0
            }
            // A path followed before names other content now: it was replaced or truncated
            // while the agent was down. Its lines are new, whatever `read_from` says.
            None if self.saved_paths.contains_key(path) => {
                if self
                    .saved_paths
                    .get(path)
                    .is_some_and(|offset| *offset > size)
                {
                    self.truncations.inc();
                }
                0
            }
            None if at_startup && self.config.read_from == ReadFrom::End => size,
            None => 0,
        };
        self.follow(file, key, dev_ino, path, offset);
    }

    fn follow(&mut self, file: File, key: String, dev_ino: (u64, u64), path: &Path, offset: u64) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let tailed = TailedFile::new(
            key.clone(),
            dev_ino,
            path.to_path_buf(),
            file,
            offset,
            self.config.max_line_bytes,
            self.config.multiline.clone(),
            self.config.format == Format::Cri,
            self.config.format == Format::Docker,
            Instant::now(),
        );
        let tailed = match tailed {
            Ok(tailed) => tailed,
            Err(error) => {
                self.metrics.error("read_failed");
                tracing::warn!(component_id = %self.source, path = %path.display(), %error, "cannot open at its checkpoint");
                return;
            }
        };
        tracing::debug!(component_id = %self.source, path = %path.display(), offset, %key, "following file");
        self.files.insert(serial, tailed);
        self.by_inode.insert(dev_ino, serial);
        self.by_path.insert(path.to_path_buf(), serial);
        self.by_key.insert(key, serial);
        self.files_watched.set(self.files.len() as i64);
    }

    /// Reads every file that may have data; returns whether anything was read.
    fn read_round(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let mut serials: Vec<u64> = self.files.keys().copied().collect();
        serials.sort_unstable();
        for serial in serials {
            let Some(file) = self.files.get_mut(&serial) else {
                continue;
            };
            if !file.active || file.is_retired() {
                continue;
            }
            if file.identity_changed() {
                self.truncated(serial);
                continue;
            }
            let result = file.read(READ_QUOTA, now);
            let (lines, end) = match result {
                Ok(read) => read,
                Err(error) => {
                    self.metrics.error("read_failed");
                    tracing::warn!(component_id = %self.source, path = %file.path.display(), %error, "read failed");
                    file.active = false;
                    continue;
                }
            };
            if lines.bytes > 0 {
                progressed = true;
                self.families
                    .bytes_read
                    .with_label_values(&[&*self.source, &file.path.to_string_lossy()])
                    .inc_by(lines.bytes as u64);
            }
            if lines.truncated_lines > 0 {
                self.metrics
                    .errors_by("line_truncated", lines.truncated_lines);
            }
            let mut joined = lines.joined;
            if end == ReadEnd::Rewritten {
                self.ship(serial, joined);
                self.truncated(serial);
                continue;
            }
            if end == ReadEnd::Eof && file.is_compressed() {
                // A compressed file does not grow: at its end it is finished.
                file.active = false;
                file.rotated_away = true;
                joined.extend(file.flush_all());
                self.ship(serial, joined);
                continue;
            }
            if end == ReadEnd::Eof {
                file.active = false;
                joined.extend(file.flush_idle(now, self.config.partial_line_timeout.0));
                if let Ok((size, _)) = file.stat()
                    && size < file.read_offset()
                {
                    self.ship(serial, joined);
                    self.truncated(serial);
                    continue;
                }
                self.upgrade_identity(serial);
            } else if file.deadline().is_some_and(|deadline| deadline <= now) {
                joined.extend(file.flush_idle(now, self.config.partial_line_timeout.0));
            }
            self.ship(serial, joined);
            if let Some(file) = self.files.get_mut(&serial) {
                file.settle_skipped_bytes();
            }
        }
        // Multiline timeouts of files that had nothing new.
        let due: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, file)| file.deadline().is_some_and(|deadline| deadline <= now))
            .map(|(serial, _)| *serial)
            .collect();
        for serial in due {
            let held = match self.files.get_mut(&serial) {
                Some(file) => file.flush_idle(now, self.config.partial_line_timeout.0),
                None => continue,
            };
            self.ship(serial, held);
        }
        progressed
    }

    /// A file whose first line was incomplete gets its content identity once it is complete.
    fn upgrade_identity(&mut self, serial: u64) {
        let Some(file) = self.files.get_mut(&serial) else {
            return;
        };
        if !is_inode_key(&file.key) || file.read_offset() == 0 {
            return;
        }
        let Ok(key) = identity_of(file.file(), file.dev_ino) else {
            return;
        };
        if is_inode_key(&key) || self.by_key.contains_key(&key) {
            return;
        }
        let old = std::mem::replace(&mut file.key, key.clone());
        file.checkpoint_dirty = true;
        self.by_key.remove(&old);
        self.by_key.insert(key, serial);
        self.saved.remove(&old);
        self.forget.push(old);
    }

    /// The file shrank below what was read (copytruncate) or was rewritten from the start.
    fn truncated(&mut self, serial: u64) {
        self.truncations.inc();
        // The copy was created just before the truncation: make sure its event is taken.
        self.take_events();
        let Some(file) = self.files.get(&serial) else {
            return;
        };
        let original_path = file.path.clone();
        let original_inode = file.dev_ino;
        let key = file.key.clone();
        tracing::info!(component_id = %self.source, path = %original_path.display(), "file truncated");
        match self.find_copy(&original_path, &key, original_inode) {
            Some((copy, dev_ino, copy_path)) => {
                // The stream goes on in the copy from where it was; the truncated file is new.
                let Some(file) = self.files.get_mut(&serial) else {
                    return;
                };
                if let Err(error) = file.continue_in(copy, dev_ino, &copy_path) {
                    tracing::warn!(%error, "cannot continue in the copy");
                }
                self.by_inode.remove(&original_inode);
                self.by_inode.insert(dev_ino, serial);
                if self.by_path.get(&original_path) == Some(&serial) {
                    self.by_path.remove(&original_path);
                }
                self.by_path.insert(copy_path, serial);
            }
            None => {
                // The rest of the old content is gone: finish that stream and start again.
                let held = match self.files.get_mut(&serial) {
                    Some(file) => {
                        file.rotated_away = true;
                        file.retire();
                        file.flush_pending()
                    }
                    None => Vec::new(),
                };
                self.ship(serial, held);
                self.by_inode.remove(&original_inode);
                if self.by_path.get(&original_path) == Some(&serial) {
                    self.by_path.remove(&original_path);
                }
                self.by_key.remove(&key);
            }
        }
        // Several rotations may have passed before we noticed: contents we never saw live on
        // only in their copies. Follow those first, oldest first.
        self.follow_missed_copies(&original_path);
        // Follow the truncated file as a new stream from its start.
        if let Ok(reopened) = File::open(&original_path)
            && let Ok(metadata) = reopened.metadata()
        {
            let dev_ino = (metadata.dev(), metadata.ino());
            if dev_ino == original_inode && !self.by_inode.contains_key(&dev_ino) {
                let new_key = identity_of(&reopened, dev_ino)
                    .unwrap_or_else(|_| format!("ino:{}:{}", dev_ino.0, dev_ino.1));
                if !self.by_key.contains_key(&new_key) {
                    self.follow(reopened, new_key, dev_ino, &original_path, 0);
                }
            }
        }
    }

    /// Copies made by rotations that were never seen as a truncation: a followed file emptied
    /// and refilled before its first read still reads from offset 0, so its truncation cannot
    /// show, and the content in between lives only in the copies (opened when they appeared).
    fn follow_copies_of_unseen_rotations(&mut self) {
        if self.copy_candidates.is_empty() {
            return;
        }
        let mut paths: Vec<PathBuf> = self
            .files
            .values()
            .filter(|file| !file.is_retired())
            .map(|file| file.path.clone())
            .collect();
        paths.sort();
        paths.dedup();
        for path in paths {
            self.follow_missed_copies(&path);
        }
    }

    /// Copies of `path` (named after it) created while it was followed whose content was never
    /// followed: each becomes a stream of its own, read to its end and then closed. A copy of a
    /// stream still followed stays a candidate: it is where that stream goes on once its
    /// truncation is seen.
    fn follow_missed_copies(&mut self, path: &Path) {
        let Some(name) = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
        else {
            return;
        };
        // A stream under this path that has read part of a first line has no content identity
        // yet: a copy may be of it, so none is followed as missed content meanwhile.
        let undecided = self.files.values().any(|followed| {
            followed.path == path && is_inode_key(&followed.key) && followed.read_offset() > 0
        });
        let candidates: Vec<(PathBuf, File)> = self.copy_candidates.drain(..).collect();
        for (candidate_path, file) in candidates {
            let is_copy_of_path = candidate_path.parent() == path.parent()
                && candidate_path
                    .file_name()
                    .is_some_and(|candidate| candidate.to_string_lossy().starts_with(&name));
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let dev_ino = (metadata.dev(), metadata.ino());
            if !is_copy_of_path || self.by_inode.contains_key(&dev_ino) {
                self.copy_candidates.push_back((candidate_path, file));
                continue;
            }
            let Ok(key) = identity_of(&file, dev_ino) else {
                continue;
            };
            if is_inode_key(&key) {
                continue;
            }
            // A copy of a followed stream: where it goes on once its truncation is seen.
            if self.by_key.contains_key(&key) || undecided {
                self.copy_candidates.push_back((candidate_path, file));
                continue;
            }
            let offset = self
                .saved
                .get(&key)
                .map_or(0, |checkpoint| checkpoint.offset);
            if offset >= metadata.len() {
                continue;
            }
            tracing::info!(component_id = %self.source, path = %candidate_path.display(), offset, "reading a copy of content missed between rotations");
            self.follow(file, key, dev_ino, &candidate_path, offset);
            if let Some(serial) = self.by_inode.get(&dev_ino).copied()
                && let Some(followed) = self.files.get_mut(&serial)
            {
                // Not a followed name: close it once it is read.
                followed.rotated_away = !self.discovery.matches(&candidate_path);
            }
        }
    }

    /// The copy copytruncate made: a file with the same identity under another inode, among
    /// the files created recently (opened when they appeared, so even a copy deleted since is
    /// still readable), then among the siblings of `path` whose name starts with its name.
    fn find_copy(
        &mut self,
        path: &Path,
        key: &str,
        inode: (u64, u64),
    ) -> Option<(File, (u64, u64), PathBuf)> {
        if is_inode_key(key) {
            return None;
        }
        let candidate_index = self.copy_candidates.iter().position(|(_, file)| {
            file.metadata().ok().is_some_and(|metadata| {
                let dev_ino = (metadata.dev(), metadata.ino());
                dev_ino != inode
                    && !self.by_inode.contains_key(&dev_ino)
                    && identity_of(file, dev_ino).ok().as_deref() == Some(key)
            })
        });
        if let Some((candidate_path, file)) =
            candidate_index.and_then(|index| self.copy_candidates.remove(index))
            && let Ok(metadata) = file.metadata()
        {
            return Some((file, (metadata.dev(), metadata.ino()), candidate_path));
        }
        let dir = path.parent()?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&name))
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, entry.path()))
            })
            .collect();
        candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.0));
        for (_, candidate) in candidates {
            let Ok(file) = File::open(&candidate) else {
                continue;
            };
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let dev_ino = (metadata.dev(), metadata.ino());
            if dev_ino == inode || self.by_inode.contains_key(&dev_ino) {
                continue;
            }
            if identity_of(&file, dev_ino).ok().as_deref() == Some(key) {
                return Some((file, dev_ino, candidate));
            }
        }
        None
    }

    /// Turns joined lines into entries and sends them in batches that report back when every
    /// sink has them.
    fn ship(&mut self, serial: u64, joined: Vec<Joined>) {
        if joined.is_empty() {
            return;
        }
        let Some(output) = self.output.clone() else {
            return;
        };
        let Some(file) = self.files.get_mut(&serial) else {
            return;
        };
        let read_at = Timestamp::now();
        let (source, node_id) = (name_for_batch(&self.source), name_for_batch(&self.node_id));
        let lines_counter = self
            .families
            .lines
            .with_label_values(&[&*self.source, &file.path.to_string_lossy()]);
        let mut joined = joined.into_iter().peekable();
        let mut ready = Vec::new();
        while joined.peek().is_some() {
            let mut entries = Vec::with_capacity(MAX_BATCH_ENTRIES.min(joined.len()));
            let mut bytes = 0;
            let mut end_offset = 0;
            let mut lines = 0u64;
            for item in joined.by_ref().take(MAX_BATCH_ENTRIES) {
                end_offset = item.end_offset;
                lines += item.lines as u64;
                bytes += item.text.len();
                let mut entry = entry_from(
                    item,
                    &self.config,
                    &file.path_text,
                    &source,
                    &node_id,
                    read_at,
                );
                if let Some(pod_labels) = self.pod_labels.as_mut() {
                    add_pod_labels(pod_labels, &mut entry);
                }
                entries.push(entry);
            }
            let seq = file.begin_batch(end_offset);
            let acks = self.ack_sender.clone();
            let batch = Batch::with_finalizer(
                entries,
                Finalizer::new(move |status| {
                    let _ = acks.send(Ack {
                        serial,
                        seq,
                        status,
                    });
                }),
            );
            self.metrics.received(batch.len(), bytes);
            lines_counter.inc_by(lines);
            ready.push(batch);
        }
        for batch in ready {
            self.send(&output, batch);
        }
    }

    /// Sends one batch; while the pipeline pushes back, acknowledgements keep being taken and
    /// checkpoints written, so a crash under backpressure replays little.
    fn send(&mut self, output: &Output, batch: Batch) {
        let handle = self.handle.clone();
        let acks = self.acks.clone();
        handle.block_on(async {
            let sending = output.send(batch);
            tokio::pin!(sending);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut sending => return,
                    ack = acks.recv_async() => {
                        if let Ok(ack) = ack {
                            self.acknowledge(ack);
                            self.take_acks();
                            self.persist(false);
                        }
                    }
                }
            }
        });
    }

    fn take_acks(&mut self) {
        while let Ok(ack) = self.acks.try_recv() {
            self.acknowledge(ack);
        }
    }

    fn acknowledge(&mut self, ack: Ack) {
        if let Some(file) = self.files.get_mut(&ack.serial) {
            file.acknowledge(ack.seq, ack.status);
        }
    }

    /// Writes changed checkpoints (at most every `CHECKPOINT_INTERVAL` unless `force`).
    fn persist(&mut self, force: bool) {
        if !force && self.last_persist.elapsed() < CHECKPOINT_INTERVAL {
            return;
        }
        let now = Timestamp::now();
        let mut save: Vec<Checkpoint> = std::mem::take(&mut self.closed);
        save.extend(
            self.files
                .values()
                .filter(|file| file.checkpoint_dirty)
                .map(|file| Checkpoint {
                    key: file.key.clone(),
                    path: file.path.to_string_lossy().into_owned(),
                    offset: file.delivered_offset,
                    updated_at: now,
                }),
        );
        if save.is_empty() && self.forget.is_empty() {
            return;
        }
        match self
            .store
            .update_checkpoints(&self.source, &save, &self.forget)
        {
            Ok(()) => {
                for file in self.files.values_mut() {
                    file.checkpoint_dirty = false;
                }
                for key in self.forget.drain(..) {
                    self.saved.remove(&key);
                }
                for checkpoint in save {
                    self.saved.insert(checkpoint.key.clone(), checkpoint);
                }
                self.last_persist = Instant::now();
            }
            Err(error) => {
                // Kept for the next attempt (files still open stay dirty on their own).
                self.closed = save;
                self.metrics.error("checkpoint_failed");
                tracing::warn!(component_id = %self.source, %error, "cannot write checkpoints");
            }
        }
    }

    /// Closes files that are gone (deleted or rotated away from every followed path) once they
    /// are read to the end and every batch from them is acknowledged.
    fn close_finished(&mut self, now: Instant) {
        let mut closing = Vec::new();
        for (serial, file) in &mut self.files {
            if file.active || file.deadline().is_some() {
                continue;
            }
            let deleted = file.stat().map(|(_, links)| links == 0).unwrap_or(true);
            let gone = deleted || file.rotated_away || file.is_retired();
            if !gone || now.saturating_duration_since(file.last_data_at()) < ROTATE_WAIT {
                continue;
            }
            if !file.is_retired() {
                let held = file.flush_all();
                if !held.is_empty() {
                    closing.push((*serial, held, deleted));
                    continue;
                }
            }
            if file.is_drained() {
                closing.push((*serial, Vec::new(), deleted));
            }
        }
        for (serial, held, deleted) in closing {
            if !held.is_empty() {
                self.ship(serial, held);
                continue;
            }
            let Some(file) = self.files.remove(&serial) else {
                continue;
            };
            tracing::debug!(component_id = %self.source, path = %file.path.display(), deleted, "closing file");
            if self.by_inode.get(&file.dev_ino) == Some(&serial) {
                self.by_inode.remove(&file.dev_ino);
            }
            if self.by_path.get(&file.path) == Some(&serial) {
                self.by_path.remove(&file.path);
            }
            if self.by_key.get(&file.key) == Some(&serial) {
                self.by_key.remove(&file.key);
            }
            let _ = self
                .families
                .bytes_read
                .remove_label_values(&[&*self.source, &file.path.to_string_lossy()]);
            let _ = self
                .families
                .lines
                .remove_label_values(&[&*self.source, &file.path.to_string_lossy()]);
            if deleted && !file.is_retired() {
                // Its content can never be seen again: its checkpoint only takes space. (A
                // retired stream's content may still turn up in a copy: its checkpoint stays
                // until `forget_after`.)
                self.forget.push(file.key.clone());
            } else {
                // Its last position is written with the next checkpoints.
                let offset = if file.is_compressed() {
                    COMPRESSED_DONE
                } else {
                    file.delivered_offset
                };
                self.closed.push(Checkpoint {
                    key: file.key.clone(),
                    path: file.path.to_string_lossy().into_owned(),
                    offset,
                    updated_at: Timestamp::now(),
                });
            }
            self.files_watched.set(self.files.len() as i64);
        }
    }

    /// Drops checkpoints of files not followed now and not updated within `forget_after`.
    fn forget_unseen_checkpoints(&mut self) {
        let followed: HashSet<&String> = self.files.values().map(|file| &file.key).collect();
        let horizon = Timestamp::now().0 - self.config.forget_after.0.as_nanos() as i64;
        let stale: Vec<String> = self
            .saved
            .values()
            .filter(|checkpoint| {
                checkpoint.updated_at.0 < horizon && !followed.contains(&checkpoint.key)
            })
            .map(|checkpoint| checkpoint.key.clone())
            .collect();
        self.forget.extend(stale);
        self.persist(true);
    }
}

/// One entry from joined lines, with the file it came from.
fn entry_from(
    joined: Joined,
    config: &FileConfig,
    path: &bytes::Bytes,
    source: &Arc<str>,
    node_id: &Arc<str>,
    read_at: Timestamp,
) -> LogEntry {
    // A container record's text is the application's own line: parsed as `auto`, timed by
    // the record, labelled with its stream.
    let (stream, event_time) = (joined.stream, joined.event_time);
    let format = if stream.is_some() {
        Format::Auto
    } else {
        config.format
    };
    let mut entry = entry_from_joined(joined, format, source, node_id, read_at);
    if let Some(time) = event_time {
        entry.timestamp = time;
    }
    entry.metadata.insert("file", Value::Bytes(path.clone()));
    if let Some(stream) = stream {
        entry.metadata.insert("stream", stream.as_str());
    }
    if config.kubernetes {
        pod_metadata(path, &mut entry.metadata);
    }
    entry
}

/// `metadata.labels` of the entry's pod, when it has a namespace and pod.
fn add_pod_labels(pod_labels: &mut pod_labels::PodLabels, entry: &mut LogEntry) {
    let text = |key: &str| {
        entry
            .metadata
            .get(key)
            .and_then(Value::as_str_lossy)
            .map(|t| t.into_owned())
    };
    let (Some(namespace), Some(pod)) = (text("namespace"), text("pod")) else {
        return;
    };
    if let Some(labels) = pod_labels.labels(&namespace, &pod) {
        entry.metadata.insert("labels", Value::Map(labels));
    }
}

/// `namespace`, `pod`, `pod_uid` and `container` from a kubelet log path:
/// `…/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
fn pod_metadata(path: &[u8], metadata: &mut crate::event::Metadata) {
    let text = String::from_utf8_lossy(path);
    let parts: Vec<&str> = text.rsplit('/').take(3).collect();
    let [_file, container, pod_dir] = parts[..] else {
        return;
    };
    let mut fields = pod_dir.splitn(3, '_');
    let (Some(namespace), Some(pod), Some(uid)) = (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    metadata.insert("namespace", namespace.to_string());
    metadata.insert("pod", pod.to_string());
    metadata.insert("pod_uid", uid.to_string());
    metadata.insert("container", container.to_string());
}
