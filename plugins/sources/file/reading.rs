//! Reading: each file that may have data is read in turn (at most `READ_QUOTA` bytes before
//! the others get theirs), its lines joined and made entries, and the entries sent in batches
//! whose finalizers report back to the checkpoints.
//!
//! A read that finds the file shrunk below what was read, or rewritten, hands the stream to the
//! rotation code after the lines read so far are shipped. While the pipeline pushes back, the
//! sending thread keeps taking acknowledgements and writing checkpoints, so a crash under
//! backpressure replays little.

use std::sync::Arc;
use std::time::Instant;

use super::checkpoints::Ack;
use super::tailed::{ReadEnd, identity_of, is_inode_key};
use super::{FileConfig, Tailer};
use crate::event::{LogEntry, Value};
use crate::multiline::Joined;
use crate::parse::format::Format;
use crate::pipeline::{Batch, Finalizer, MAX_BATCH_ENTRIES, Output};
use crate::plugins::sources::{TRACE_FRAGMENT, entry_from_joined, name_for_batch};
use crate::time::Timestamp;

/// Most bytes read from one file before the others get their turn.
const READ_QUOTA: usize = 256 * 1024;

impl Tailer {
    /// Reads every file that may have data; returns whether anything was read.
    pub(super) fn read_round(&mut self, now: Instant) -> bool {
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

    /// Turns joined lines into entries and sends them in batches that report back when every
    /// sink has them.
    pub(super) fn ship(&mut self, serial: u64, joined: Vec<Joined>) {
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
            // The path's own copy for this batch's entries, as the names are (`name_for_batch`).
            let path = bytes::Bytes::copy_from_slice(&file.path_text);
            let mut bytes = 0;
            let mut end_offset = 0;
            let mut lines = 0u64;
            for item in joined.by_ref().take(MAX_BATCH_ENTRIES) {
                end_offset = item.end_offset;
                lines += item.lines as u64;
                if item.fragment {
                    self.metrics.error(TRACE_FRAGMENT);
                }
                bytes += item.text().len();
                let mut entry = entry_from(item, &self.config, &path, &source, &node_id, read_at);
                if let Some(enricher) = self.enricher.as_mut() {
                    enricher.enrich(&file.path, &mut entry);
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
    entry
}
