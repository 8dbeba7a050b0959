//! Acknowledgements and checkpoints: how far each stream is known to be delivered, and the
//! state store rows that remember it.
//!
//! The invariant: a checkpoint advances only after every sink downstream has acknowledged the
//! batch (its finalizer sends an `Ack` back to the reading thread), never when a line is read.
//! Changed positions are written in one transaction at most every `CHECKPOINT_INTERVAL`, so a
//! crash replays what was acknowledged since the last write, and loses nothing. A failed write
//! keeps its rows for the next attempt; rows of streams gone for good are deleted with a write.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Tailer;
use crate::pipeline::DeliveryStatus;
use crate::state::Checkpoint;
use crate::time::Timestamp;

/// How often acknowledged positions are written to the state store.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// An acknowledgement from a batch's finalizer.
pub(super) struct Ack {
    pub(super) serial: u64,
    pub(super) seq: u64,
    pub(super) status: DeliveryStatus,
}

impl Tailer {
    pub(super) fn take_acks(&mut self) {
        while let Ok(ack) = self.acks.try_recv() {
            self.acknowledge(ack);
        }
    }

    pub(super) fn acknowledge(&mut self, ack: Ack) {
        if let Some(file) = self.files.get_mut(&ack.serial) {
            file.acknowledge(ack.seq, ack.status);
        }
    }

    /// Writes changed checkpoints (at most every `CHECKPOINT_INTERVAL` unless `force`).
    pub(super) fn persist(&mut self, force: bool) {
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

    /// Drops checkpoints of files not followed now and not updated within `forget_after`.
    pub(super) fn forget_unseen_checkpoints(&mut self) {
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
