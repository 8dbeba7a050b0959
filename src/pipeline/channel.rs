//! The pipeline's edges: a component's `Output` fans batches out to the bounded input channels of
//! its consumers, and a consumer reads them from its `Input`.
//!
//! Every channel is bounded (`CHANNEL_BATCHES` batches). What happens when one is full is the
//! consumer's choice (`when_full`): `block` slows the producer down, `drop_newest` drops the batch
//! and counts it in `component_discarded_events_total{reason="buffer_full"}` of the consumer.
//!
//! A reload rewires a running pipeline: an output's consumers can be replaced while it sends
//! (`Output::rewire`), and a consumer can be replaced without closing its channel: the old one's
//! `Input` is detached (it ends as if its producers were gone, taking nothing more) and the new
//! one reads what is queued from where it left off.

use std::sync::{Arc, RwLock, Weak};

use tokio_util::sync::CancellationToken;

use prometheus::{IntCounter, IntGauge};
use serde::Deserialize;

use super::batch::Batch;
use crate::metrics::ComponentMetrics;

/// Capacity of every component's input channel, in batches. With batches of at most
/// `MAX_BATCH_ENTRIES` this bounds what a stalled consumer can hold in memory.
pub const CHANNEL_BATCHES: usize = 16;

/// Most entries a source puts in one batch.
pub const MAX_BATCH_ENTRIES: usize = 512;

/// What a consumer's input does when its channel is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: backpressure up to the sources.
    #[default]
    Block,
    /// Drop the batch being sent, and count it.
    DropNewest,
}

/// One consumer of an output.
pub(crate) struct Target {
    consumer: Arc<str>,
    sender: flume::Sender<Batch>,
    when_full: WhenFull,
    buffer_events: IntGauge,
    discarded_buffer_full: IntCounter,
}

/// The sending side of a component: every consumer gets every batch.
#[derive(Clone)]
pub struct Output {
    targets: Arc<RwLock<Arc<[Target]>>>,
    metrics: ComponentMetrics,
}

/// An output held without keeping its consumers' channels open: the runtime rewires a running
/// producer through it, and once the producer is gone its channels close as they should.
#[derive(Clone)]
pub(crate) struct WeakOutput {
    targets: Weak<RwLock<Arc<[Target]>>>,
}

impl WeakOutput {
    pub(crate) fn upgrade(&self, metrics: &ComponentMetrics) -> Option<Output> {
        Some(Output {
            targets: self.targets.upgrade()?,
            metrics: metrics.clone(),
        })
    }
}

impl Output {
    pub(crate) fn downgrade(&self) -> WeakOutput {
        WeakOutput {
            targets: Arc::downgrade(&self.targets),
        }
    }

    pub(crate) fn builder(metrics: ComponentMetrics) -> OutputBuilder {
        OutputBuilder {
            targets: Vec::new(),
            metrics,
        }
    }

    /// An output with no consumers, for components whose entries nobody reads.
    pub fn detached(metrics: ComponentMetrics) -> Self {
        OutputBuilder {
            targets: Vec::new(),
            metrics,
        }
        .build()
    }

    fn targets(&self) -> Arc<[Target]> {
        self.targets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the consumers (a reload); a send under way finishes with the old ones.
    pub(crate) fn rewire(&self, targets: OutputBuilder) {
        *self
            .targets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::from(targets.targets);
    }

    /// Sends a batch to every consumer; the last gets the original, the others a clone.
    pub async fn send(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        self.metrics.sent(batch.len());
        let targets = self.targets();
        let Some((last, others)) = targets.split_last() else {
            return;
        };
        for target in others {
            target.deliver(batch.clone()).await;
        }
        last.deliver(batch).await;
    }

    /// Whether any consumer still reads this output.
    pub fn is_connected(&self) -> bool {
        self.targets()
            .iter()
            .any(|target| !target.sender.is_disconnected())
    }
}

impl Target {
    async fn deliver(&self, batch: Batch) {
        let events = batch.len() as i64;
        self.buffer_events.add(events);
        let outcome = match self.when_full {
            WhenFull::Block => self
                .sender
                .send_async(batch)
                .await
                .map_err(|e| e.into_inner()),
            WhenFull::DropNewest => match self.sender.try_send(batch) {
                Ok(()) => Ok(()),
                Err(flume::TrySendError::Full(_dropped)) => {
                    self.buffer_events.sub(events);
                    self.discarded_buffer_full.inc_by(events as u64);
                    return;
                }
                Err(flume::TrySendError::Disconnected(batch)) => Err(batch),
            },
        };
        if let Err(undelivered) = outcome {
            self.buffer_events.sub(events);
            undelivered.mark_failed();
            tracing::debug!(consumer = %self.consumer, "consumer is gone; batch not delivered");
        }
    }
}

pub(crate) struct OutputBuilder {
    targets: Vec<Target>,
    metrics: ComponentMetrics,
}

impl OutputBuilder {
    pub(crate) fn add_target(
        &mut self,
        consumer: Arc<str>,
        sender: flume::Sender<Batch>,
        when_full: WhenFull,
        consumer_metrics: &ComponentMetrics,
    ) {
        self.targets.push(Target {
            consumer,
            sender,
            when_full,
            buffer_events: consumer_metrics.buffer_events.clone(),
            discarded_buffer_full: consumer_metrics.discarded_counter("buffer_full"),
        });
    }

    pub(crate) fn build(self) -> Output {
        Output {
            targets: Arc::new(RwLock::new(Arc::from(self.targets))),
            metrics: self.metrics,
        }
    }
}

/// The receiving side of a transform or sink.
pub struct Input {
    receiver: Arc<flume::Receiver<Batch>>,
    metrics: ComponentMetrics,
    /// Cancelled when the component is replaced: it ends as if its producers were gone.
    detached: CancellationToken,
}

/// How often a blocking receive looks whether its input was detached.
const DETACH_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl Input {
    #[cfg(test)]
    pub(crate) fn new(receiver: flume::Receiver<Batch>, metrics: ComponentMetrics) -> Self {
        Input::shared(Arc::new(receiver), metrics, CancellationToken::new())
    }

    /// An input over a channel another input may have read before (a reload's replacement).
    pub(crate) fn shared(
        receiver: Arc<flume::Receiver<Batch>>,
        metrics: ComponentMetrics,
        detached: CancellationToken,
    ) -> Self {
        Input {
            receiver,
            metrics,
            detached,
        }
    }

    /// The channel, without keeping it open: it closes once its last input is gone.
    pub(crate) fn channel(&self) -> Weak<flume::Receiver<Batch>> {
        Arc::downgrade(&self.receiver)
    }

    /// The next batch, or `None` once every producer is gone and the channel is drained (or
    /// the input is detached).
    pub async fn recv(&self) -> Option<Batch> {
        if self.detached.is_cancelled() {
            return None;
        }
        let batch = tokio::select! {
            biased;
            received = self.receiver.recv_async() => received.ok()?,
            _ = self.detached.cancelled() => return None,
        };
        Some(self.account(batch))
    }

    /// Blocking form of `recv` for sinks that run on a thread of their own; `Timeout` lets them
    /// flush on a timer while idle.
    pub fn recv_blocking(&self, timeout: std::time::Duration) -> Result<Batch, RecvError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.detached.is_cancelled() {
                return Err(RecvError::Closed);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.receiver.recv_timeout(left.min(DETACH_POLL)) {
                Ok(batch) => return Ok(self.account(batch)),
                Err(flume::RecvTimeoutError::Timeout) if left > DETACH_POLL => continue,
                Err(flume::RecvTimeoutError::Timeout) => return Err(RecvError::Timeout),
                Err(flume::RecvTimeoutError::Disconnected) => return Err(RecvError::Closed),
            }
        }
    }

    /// A batch if one is waiting, without blocking.
    pub fn try_recv(&self) -> Option<Batch> {
        if self.detached.is_cancelled() {
            return None;
        }
        self.receiver
            .try_recv()
            .ok()
            .map(|batch| self.account(batch))
    }

    /// Whether no batch is waiting right now.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    fn account(&self, batch: Batch) -> Batch {
        self.metrics.buffer_events.sub(batch.len() as i64);
        self.metrics.received(batch.len(), batch.byte_size());
        batch
    }
}

/// Why `Input::recv_blocking` returned without a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    Closed,
}
