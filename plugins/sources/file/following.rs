//! From a path found to a followed stream, and back: which file a path names, where reading
//! starts in it, and when a stream is closed.
//!
//! Streams are indexed three ways (`by_inode`, `by_path`, `by_key`), and every path that names a
//! file comes through here, whether from an event, a scan or a rotation. Where reading starts:
//! the checkpoint of the file's content identity; else 0 for a path followed before (its content
//! was replaced while the agent was down); else `read_from` for files present at startup. A file
//! whose content is already followed under another inode is a copy: it is left to the rotation
//! code, which continues the stream in it once the original is truncated. A stream is closed
//! only when its file is gone, it is read to its end and every batch from it is acknowledged;
//! its last position is then written, or its checkpoint deleted if its content cannot return.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::tailed::{COMPRESSED_DONE, TailedFile, identity_of, is_gzip};
use super::{ReadFrom, Tailer, discovery};
use crate::parse::format::Format;
use crate::state::Checkpoint;
use crate::time::Timestamp;

/// A rotated-away file is closed once it has been at its end this long.
const ROTATE_WAIT: Duration = Duration::from_millis(500);

impl Tailer {
    pub(super) fn take_events(&mut self) {
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

    /// A path that matches: start following the file it names, or note that a followed file
    /// now has this name.
    pub(super) fn discover(&mut self, path: &Path, at_startup: bool) {
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

    pub(super) fn follow(
        &mut self,
        file: File,
        key: String,
        dev_ino: (u64, u64),
        path: &Path,
        offset: u64,
    ) {
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

    /// Closes files that are gone (deleted or rotated away from every followed path) once they
    /// are read to the end and every batch from them is acknowledged.
    pub(super) fn close_finished(&mut self, now: Instant) {
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
}
