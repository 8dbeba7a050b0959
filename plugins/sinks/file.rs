//! `type = "file"`: appends entries to a file, creating its parent directories.
//!
//! Writing runs on a thread of its own (file I/O blocks). Batches are encoded into one buffer and
//! written with one `write` when the input has nothing more waiting, when the buffer is large, or
//! at least every second; a batch is acknowledged (dropped) only after its bytes were written, so
//! a source's checkpoint never runs ahead of the file.

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

fn open(path: &PathBuf) -> std::io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(config: &FileConfig, cx: &SinkContext) -> Result<(), ComponentError> {
    let context = || format!("writing {}", config.path.display());
    let mut file = open(&config.path).map_err(|error| ComponentError::io(context(), error))?;
    let mut buffer = Vec::with_capacity(WRITE_THRESHOLD + 64 * 1024);
    let mut pending: Vec<Batch> = Vec::new();
    let mut last_write = Instant::now();
    loop {
        let wait = FLUSH_INTERVAL
            .saturating_sub(last_write.elapsed())
            .max(Duration::from_millis(1));
        let closed = match cx.input.recv_blocking(wait) {
            Ok(batch) => {
                for entry in batch.entries() {
                    config.encoding.encode(entry, &mut buffer);
                }
                pending.push(batch);
                false
            }
            Err(RecvError::Timeout) => false,
            Err(RecvError::Closed) => true,
        };
        let due = closed
            || buffer.len() >= WRITE_THRESHOLD
            || last_write.elapsed() >= FLUSH_INTERVAL
            || cx.input.is_empty();
        if due && !pending.is_empty() {
            let events: usize = pending.iter().map(Batch::len).sum();
            if let Err(error) = file.write_all(&buffer) {
                pending.iter().for_each(Batch::mark_failed);
                cx.metrics.error("write_failed");
                return Err(ComponentError::io(context(), error));
            }
            buffer.clear();
            pending.clear();
            cx.metrics.sent(events);
        }
        if due {
            last_write = Instant::now();
        }
        if closed {
            return Ok(());
        }
    }
}
