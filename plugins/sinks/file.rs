//! `type = "file"`: appends entries to a file, creating its parent directories.
//!
//! Writing runs on a thread of its own (file I/O blocks). Batches are encoded into one buffer and
//! written with one `write` when the input has nothing more waiting, when the buffer is large, or
//! at least every second; a batch is acknowledged (dropped) only after its bytes were written, so
//! a source's checkpoint never runs ahead of the file. A file that cannot be written (a full
//! disk, a directory that cannot be created) is retried until it can: nothing is lost meanwhile,
//! and no torn line is left behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Sink, SinkConfig, SinkContext,
};
use crate::event::Encoding;
use crate::pipeline::{Batch, RecvError};

/// Write once this much is buffered even if more input is waiting.
const WRITE_THRESHOLD: usize = 1024 * 1024;
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Deserialize)]
pub struct FileConfig {
    /// File to append to.
    pub path: PathBuf,
    /// `json` (default) or `text`.
    #[serde(default)]
    pub encoding: Encoding,
}

impl SinkConfig for FileConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError("`path` must not be empty".to_string()));
        }
        Ok(Box::new(FileSink {
            config: self.clone(),
        }))
    }

    fn warnings(&self) -> Vec<String> {
        // The file, or the nearest directory above it that exists, must be writable (the
        // directories below it are created).
        let mut existing = self.path.clone();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent.to_path_buf(),
                _ => {
                    existing = PathBuf::from(".");
                    break;
                }
            }
        }
        let writable = match std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()) {
            // SAFETY: access() only reads the NUL-terminated path it is given.
            Ok(path) => unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 },
            Err(_) => false,
        };
        let directory_ok = existing == self.path || existing.is_dir();
        if writable && directory_ok {
            return Vec::new();
        }
        vec![format!(
            "{} cannot be written ({} is {}); the sink retries until it can",
            self.path.display(),
            existing.display(),
            if directory_ok {
                "not writable"
            } else {
                "not a directory"
            }
        )]
    }
}

struct FileSink {
    config: FileConfig,
}

impl Sink for FileSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write_loop(&self.config, &cx))
                .await
                .map_err(|error| ComponentError::Other(format!("file writer thread: {error}")))?
        })
    }
}

/// The output file, opened on demand: after a failed write it is closed, and the next attempt
/// opens it afresh (its directory may have been removed, the disk may have been replaced).
struct Output {
    path: PathBuf,
    file: Option<File>,
}

impl Output {
    fn file(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        match self.file.as_mut() {
            Some(file) => Ok(file),
            None => Err(std::io::Error::other("file not open")),
        }
    }

    /// Appends `bytes` whole or not at all: a write cut short (a full disk) is cut back to the
    /// length the file had, so no torn line is left for a reader, and the next attempt writes
    /// the whole buffer again.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = self.file()?;
        let length = file.metadata()?.len();
        let written = file.write_all(bytes);
        if let Err(error) = written {
            let cut = file.set_len(length);
            self.file = None;
            if let Err(cut_error) = cut {
                tracing::warn!(path = %self.path.display(), %cut_error, "cannot cut a partial write back");
            }
            return Err(error);
        }
        Ok(())
    }
}

/// Waits between attempts while the file cannot be written: 100 ms, doubling to 5 s.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// After the input has closed (shutdown), how long a failing file is still retried before
/// what it holds is given up (and not acknowledged, so a file source reads it again).
const RETRY_AFTER_CLOSE: Duration = Duration::from_secs(30);

/// Receives batches and appends them. While the file cannot be opened or written, nothing more
/// is received (upstream sees a full channel: backpressure, or `drop_newest` counted there),
/// `/health` shows the sink failed with the reason, and the write is retried with backoff;
/// when it succeeds the sink is running again.
fn write_loop(config: &FileConfig, cx: &SinkContext) -> Result<(), ComponentError> {
    let context = || format!("writing {}", config.path.display());
    let mut output = Output {
        path: config.path.clone(),
        file: None,
    };
    let mut buffer = Vec::with_capacity(WRITE_THRESHOLD + 64 * 1024);
    let mut pending: Vec<Batch> = Vec::new();
    let mut last_write = Instant::now();
    let mut closed = false;
    let mut closed_at: Option<Instant> = None;
    // Set while failing: the wait before the next attempt.
    let mut retry: Option<Duration> = None;
    if let Err(error) = output.file() {
        retry = Some(failing(cx, &context(), &error, RETRY_FIRST));
    }
    loop {
        if let Some(wait) = retry {
            std::thread::sleep(wait);
        } else if !closed {
            let wait = FLUSH_INTERVAL
                .saturating_sub(last_write.elapsed())
                .max(Duration::from_millis(1));
            match cx.input.recv_blocking(wait) {
                Ok(batch) => {
                    for entry in batch.entries() {
                        config.encoding.encode(entry, &mut buffer);
                    }
                    pending.push(batch);
                }
                Err(RecvError::Timeout) => {}
                Err(RecvError::Closed) => {
                    closed = true;
                    closed_at = Some(Instant::now());
                }
            }
        }
        let due = closed
            || retry.is_some()
            || buffer.len() >= WRITE_THRESHOLD
            || last_write.elapsed() >= FLUSH_INTERVAL
            || cx.input.is_empty();
        if due {
            let attempt = if pending.is_empty() {
                output.file().map(|_| ())
            } else {
                output.append(&buffer)
            };
            match attempt {
                Ok(()) => {
                    if retry.take().is_some() {
                        tracing::info!(component_id = %cx.id, path = %config.path.display(), "writing again");
                        cx.health.running();
                    }
                    let events: usize = pending.iter().map(Batch::len).sum();
                    if events > 0 {
                        cx.metrics.sent(events);
                    }
                    buffer.clear();
                    pending.clear();
                    last_write = Instant::now();
                }
                Err(error) => {
                    let given_up = cx.shutdown.is_cancelled()
                        || closed_at.is_some_and(|at| at.elapsed() >= RETRY_AFTER_CLOSE);
                    if given_up {
                        give_up(cx, pending, closed);
                        return Err(ComponentError::io(context(), error));
                    }
                    let wait = match retry {
                        Some(wait) => (wait * 2).min(RETRY_MAX),
                        None => failing(cx, &context(), &error, RETRY_FIRST),
                    };
                    retry = Some(wait);
                    continue;
                }
            }
        }
        if closed && pending.is_empty() {
            return Ok(());
        }
    }
}

/// Stopping while the file cannot be written: what is held and what is still queued is not
/// delivered. Each batch is marked failed (a file source reads it again after a restart) and
/// every entry is counted as discarded.
fn give_up(cx: &SinkContext, pending: Vec<Batch>, closed: bool) {
    let mut lost: usize = 0;
    for batch in pending {
        batch.mark_failed();
        lost += batch.len();
    }
    // The sources have stopped: the queue closes once what they sent is taken.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !closed && Instant::now() < deadline {
        match cx.input.recv_blocking(Duration::from_millis(100)) {
            Ok(batch) => {
                batch.mark_failed();
                lost += batch.len();
            }
            Err(RecvError::Timeout) => {}
            Err(RecvError::Closed) => break,
        }
    }
    if lost > 0 {
        cx.metrics.discarded("sink_failed", lost);
        tracing::error!(component_id = %cx.id, entries = lost, "stopping while the file cannot be written: entries not delivered");
    }
}

/// Marks the sink failing (health, log, metric); returns the first wait.
fn failing(cx: &SinkContext, context: &str, error: &std::io::Error, wait: Duration) -> Duration {
    cx.metrics.error("write_failed");
    tracing::warn!(component_id = %cx.id, %error, "{context} failed; retrying until it succeeds");
    cx.health.failed(format!("{context}: {error} (retrying)"));
    wait
}
