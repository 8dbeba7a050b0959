//! `Batch`: what travels on the pipeline's channels, and its end-to-end acknowledgement.
//!
//! A batch holds its entries behind an `Arc`, so fan-out to N consumers is N reference-count
//! bumps, not N copies; a transform that changes entries copies them only when another consumer
//! still shares them (`Arc::make_mut`). A source that needs to know when its entries are safely
//! out (the file source, to advance its checkpoint) attaches a `Finalizer`: its callback runs when
//! the last clone of the batch is dropped, with the worst status any consumer reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::event::LogEntry;

/// How a batch ended, as seen by every consumer together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum DeliveryStatus {
    /// Every consumer wrote or deliberately dropped the entries.
    Delivered = 0,
    /// At least one consumer failed to deliver them.
    Failed = 1,
}

/// Runs a callback once every holder of a batch is done with it.
pub struct Finalizer {
    status: AtomicU8,
    settles_when_buffered: bool,
    on_done: Option<Box<dyn FnOnce(DeliveryStatus) + Send + Sync>>,
}

impl Finalizer {
    /// Runs `on_done` once every sink has delivered the batch (or failed to).
    pub fn new(on_done: impl FnOnce(DeliveryStatus) + Send + Sync + 'static) -> Self {
        Finalizer {
            status: AtomicU8::new(DeliveryStatus::Delivered as u8),
            settles_when_buffered: false,
            on_done: Some(Box::new(on_done)),
        }
    }

    /// As `new`, but a sink's disk buffer counts as delivery once the batch is written there:
    /// for sources whose senders wait for an answer (the aggregator's intake), where what is
    /// safe on disk may be acknowledged.
    pub fn when_buffered(on_done: impl FnOnce(DeliveryStatus) + Send + Sync + 'static) -> Self {
        let mut finalizer = Finalizer::new(on_done);
        finalizer.settles_when_buffered = true;
        finalizer
    }

    pub(crate) fn settles_when_buffered(&self) -> bool {
        self.settles_when_buffered
    }

    pub(crate) fn fail(&self) {
        self.status
            .fetch_max(DeliveryStatus::Failed as u8, Ordering::AcqRel);
    }
}

impl Drop for Finalizer {
    fn drop(&mut self) {
        let status = match self.status.load(Ordering::Acquire) {
            0 => DeliveryStatus::Delivered,
            _ => DeliveryStatus::Failed,
        };
        if let Some(on_done) = self.on_done.take() {
            on_done(status);
        }
    }
}

impl std::fmt::Debug for Finalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finalizer")
            .field("status", &self.status)
            .finish()
    }
}

/// A group of entries moved through a channel in one operation.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    entries: Arc<Vec<LogEntry>>,
    finalizer: Option<Arc<Finalizer>>,
}

impl Batch {
    pub fn new(entries: Vec<LogEntry>) -> Self {
        Batch {
            entries: Arc::new(entries),
            finalizer: None,
        }
    }

    pub fn with_finalizer(entries: Vec<LogEntry>, finalizer: Finalizer) -> Self {
        Batch {
            entries: Arc::new(entries),
            finalizer: Some(Arc::new(finalizer)),
        }
    }

    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Mutable access for transforms; copies the entries only if another consumer shares them.
    pub fn entries_mut(&mut self) -> &mut Vec<LogEntry> {
        Arc::make_mut(&mut self.entries)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(LogEntry::byte_size).sum()
    }

    /// The entries, shared (a disk buffer keeps them to hand to its sink without reading them
    /// back from disk).
    pub(crate) fn shared_entries(&self) -> Arc<Vec<LogEntry>> {
        self.entries.clone()
    }

    pub(crate) fn from_shared(entries: Arc<Vec<LogEntry>>, finalizer: Finalizer) -> Self {
        Batch {
            entries,
            finalizer: Some(Arc::new(finalizer)),
        }
    }

    /// Takes the batch's acknowledgement out of it (a disk buffer keeps it while the entries
    /// travel on disk).
    pub(crate) fn take_finalizer(&mut self) -> Option<Arc<Finalizer>> {
        self.finalizer.take()
    }

    /// Records that this consumer could not deliver the entries; the source will see `Failed`.
    pub fn mark_failed(&self) {
        if let Some(finalizer) = &self.finalizer {
            finalizer.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::time::Timestamp;

    fn entries(count: usize) -> Vec<LogEntry> {
        (0..count)
            .map(|i| {
                LogEntry::from_line(
                    Bytes::from(format!("line {i}")),
                    Arc::from("src"),
                    Arc::from("n1"),
                    Timestamp(0),
                )
            })
            .collect()
    }

    #[test]
    fn finalizer_runs_once_after_the_last_clone() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        let batch = Batch::with_finalizer(
            entries(3),
            Finalizer::new(move |status| recorder.lock().unwrap().push(status)),
        );
        let copy = batch.clone();
        drop(batch);
        assert!(seen.lock().unwrap().is_empty());
        drop(copy);
        assert_eq!(*seen.lock().unwrap(), vec![DeliveryStatus::Delivered]);
    }

    #[test]
    fn one_failed_consumer_fails_the_batch() {
        let seen = Arc::new(Mutex::new(None));
        let recorder = seen.clone();
        let batch = Batch::with_finalizer(
            entries(1),
            Finalizer::new(move |status| *recorder.lock().unwrap() = Some(status)),
        );
        let copy = batch.clone();
        copy.mark_failed();
        drop(copy);
        drop(batch);
        assert_eq!(*seen.lock().unwrap(), Some(DeliveryStatus::Failed));
    }

    #[test]
    fn fan_out_shares_entries_until_written() {
        let mut first = Batch::new(entries(2));
        let second = first.clone();
        assert!(std::ptr::eq(
            first.entries().as_ptr(),
            second.entries().as_ptr()
        ));
        first.entries_mut()[0].message = Bytes::from_static(b"changed");
        assert_eq!(&second.entries()[0].message[..], b"line 0");
    }
}
