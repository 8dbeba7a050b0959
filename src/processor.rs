//! The seed's `LogProcessor`: accepts entries per node into bounded per-node streams that feed one
//! pipeline output, so that one noisy node fills its own buffer, not everyone's.
//!
//! A full stream is an error the caller sees (`BufferFull`), never a silent drop: the aggregator's
//! ingest answers it with a retryable status, and the agent retries.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::event::LogEntry;
use crate::pipeline::{Batch, Output};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("buffer full for node `{node_id}`")]
    BufferFull { node_id: String },
    #[error("the pipeline is shutting down")]
    Closed,
}

pub struct LogProcessor {
    output: Output,
    /// Batches each node may have waiting.
    capacity: usize,
    streams: Mutex<HashMap<String, flume::Sender<Batch>>>,
}

impl LogProcessor {
    pub fn new(output: Output, capacity: usize) -> Self {
        LogProcessor {
            output,
            capacity: capacity.max(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `entries` on `node_id`'s stream. Must be called within a tokio runtime (the first
    /// batch of a node starts its stream's task).
    pub fn submit(&self, node_id: &str, entries: Vec<LogEntry>) -> Result<(), ProcessError> {
        self.submit_batch(node_id, Batch::new(entries))
    }

    /// As `submit`, for a batch that carries its own finalizer.
    pub fn submit_batch(&self, node_id: &str, batch: Batch) -> Result<(), ProcessError> {
        let mut streams = self
            .streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = streams.entry(node_id.to_string()).or_insert_with(|| {
            let (sender, receiver) = flume::bounded::<Batch>(self.capacity);
            let output = self.output.clone();
            tokio::spawn(async move {
                while let Ok(batch) = receiver.recv_async().await {
                    output.send(batch).await;
                }
            });
            sender
        });
        sender.try_send(batch).map_err(|error| match error {
            flume::TrySendError::Full(_) => ProcessError::BufferFull {
                node_id: node_id.to_string(),
            },
            flume::TrySendError::Disconnected(_) => ProcessError::Closed,
        })
    }

    /// Node ids with a stream.
    pub fn nodes(&self) -> Vec<String> {
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut nodes: Vec<String> = streams.keys().cloned().collect();
        nodes.sort();
        nodes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::metrics::{ComponentKind, MetricsCollector};
    use crate::pipeline::WhenFull;
    use crate::time::Timestamp;

    fn entries(node: &str, count: usize) -> Vec<LogEntry> {
        (0..count)
            .map(|i| {
                LogEntry::from_line(
                    Bytes::from(format!("{node} {i}")),
                    Arc::from("agg"),
                    Arc::from(node),
                    Timestamp(0),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_full_node_stream_is_an_error_and_others_still_flow() {
        let collector = MetricsCollector::new();
        let source_metrics = collector.component("agg", ComponentKind::Source, "aggregator");
        let sink_metrics = collector.component("out", ComponentKind::Sink, "blackhole");
        let (sender, receiver) = flume::bounded(1);
        let mut builder = Output::builder(source_metrics);
        builder.add_target(Arc::from("out"), sender, WhenFull::Block, &sink_metrics);
        let processor = LogProcessor::new(builder.build(), 2);

        // Nobody reads the pipeline: the first batch is taken by the stream task and blocks in
        // the output, the channel holds one, the node stream holds two; then it is full.
        let mut results = Vec::new();
        for _ in 0..8 {
            results.push(processor.submit("noisy", entries("noisy", 1)));
            tokio::task::yield_now().await;
        }
        assert!(results.contains(&Err(ProcessError::BufferFull {
            node_id: "noisy".into()
        })));
        assert_eq!(processor.submit("quiet", entries("quiet", 1)), Ok(()));

        let mut seen = 0;
        while let Ok(batch) =
            tokio::time::timeout(std::time::Duration::from_millis(200), receiver.recv_async()).await
        {
            seen += batch.expect("batch").len();
        }
        let accepted = results.iter().filter(|r| r.is_ok()).count() + 1;
        assert_eq!(seen, accepted, "every accepted entry reaches the pipeline");
        assert_eq!(
            processor.nodes(),
            vec!["noisy".to_string(), "quiet".to_string()]
        );
    }
}
