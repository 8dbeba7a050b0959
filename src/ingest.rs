//! The aggregator's ingest (DESIGN §7): `POST /api/v1/events` hands NDJSON entries from agents
//! to the pipeline's `aggregator` source through this hub.
//!
//! A request is answered 200 only once its entries have reached every sink (the batch's
//! finalizer reports back), so an agent's checkpoint never runs ahead of the aggregator's
//! output. A line that is not an entry is rejected alone: the good lines of a batch are
//! accepted, and the answer (400) lists the bad ones; an agent does not retry a 400, since
//! sending a malformed line again cannot make it good.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use crate::event::{Level, LogEntry, Metadata, StackTrace};
use crate::parse::timestamp::parse_rfc3339;
use crate::pipeline::{Batch, DeliveryStatus, Finalizer};
use crate::processor::{LogProcessor, ProcessError};
use crate::time::Timestamp;

/// Where the API finds the running `aggregator` source.
#[derive(Clone, Default)]
pub struct IngestHub {
    inner: Arc<Mutex<Option<Arc<LogProcessor>>>>,
}

/// Why entries were not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum IngestError {
    /// No `aggregator` source runs in this pipeline.
    NoSource,
    /// A node's buffer is full: try again later.
    Busy(String),
    /// Not delivered to the sinks within the wait.
    Timeout,
    /// A sink failed to deliver.
    Failed,
}

impl IngestHub {
    pub fn install(&self, processor: Arc<LogProcessor>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(processor);
    }

    pub fn remove(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn processor(&self) -> Option<Arc<LogProcessor>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Submits entries (grouped per node) and waits until every sink has them (or its disk
    /// buffer: what is written there is safe to acknowledge).
    pub async fn submit(&self, entries: Vec<LogEntry>, wait: Duration) -> Result<(), IngestError> {
        let processor = self.processor().ok_or(IngestError::NoSource)?;
        let mut by_node: Vec<(Arc<str>, Vec<LogEntry>)> = Vec::new();
        for entry in entries {
            match by_node.iter_mut().find(|(node, _)| *node == entry.node_id) {
                Some((_, list)) => list.push(entry),
                None => by_node.push((entry.node_id.clone(), vec![entry])),
            }
        }
        let mut done = Vec::new();
        for (node, entries) in by_node {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let batch = Batch::with_finalizer(
                entries,
                Finalizer::when_buffered(move |status| {
                    let _ = sender.send(status);
                }),
            );
            processor
                .submit_batch(&node, batch)
                .map_err(|error| match error {
                    ProcessError::BufferFull { node_id } => IngestError::Busy(node_id),
                    ProcessError::Closed => IngestError::NoSource,
                })?;
            done.push(receiver);
        }
        for receiver in done {
            match tokio::time::timeout(wait, receiver).await {
                Ok(Ok(DeliveryStatus::Delivered)) => {}
                Ok(Ok(DeliveryStatus::Failed)) | Ok(Err(_)) => return Err(IngestError::Failed),
                Err(_) => return Err(IngestError::Timeout),
            }
        }
        Ok(())
    }
}

/// One NDJSON line (DESIGN §5's JSON shape) as an entry.
pub fn entry_from_json(line: &[u8], ingest_source: &Arc<str>) -> Result<LogEntry, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|error| format!("not JSON: {error}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let text = |key: &str| object.get(key).and_then(serde_json::Value::as_str);
    let message = text("message").ok_or("no `message`")?;
    let node_id = text("node_id")
        .filter(|n| !n.is_empty())
        .ok_or("no `node_id`")?;
    let timestamp = text("timestamp")
        .and_then(|t| parse_rfc3339(t.as_bytes()))
        .map(|(timestamp, _)| timestamp)
        .unwrap_or_else(Timestamp::now);
    let level = text("level")
        .and_then(|l| Level::from_name(l.as_bytes()))
        .unwrap_or_default();
    let message = Bytes::from(message.to_string());
    let error_trace = text("error_trace").map(|t| Bytes::from(t.to_string()));
    let source: Arc<str> = text("source")
        .map(Arc::from)
        .unwrap_or_else(|| ingest_source.clone());
    let mut entry = LogEntry::from_line(message, source, Arc::from(node_id), timestamp);
    entry.level = level;
    if let Some(trace) = error_trace {
        entry.raw = trace.clone();
        entry.error_trace = Some(trace);
    }
    if let Some(metadata @ serde_json::Value::Object(_)) = object.get("metadata") {
        entry.metadata = Metadata::deserialize(metadata).map_err(|error| error.to_string())?;
        // The trace's keys as the agent wrote them: fingerprinting and remediation here read
        // the same trace as they would have there.
        entry.trace = StackTrace::from_metadata(&entry.metadata).map(Arc::new);
    }
    if entry.trace.is_none() {
        // A sender that is not a tailfix agent may put a whole trace in `message`.
        crate::parse::trace::annotate_multiline_message(&mut entry);
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Value, encode_json};

    #[test]
    fn an_encoded_entry_comes_back_whole() {
        let mut entry = LogEntry::from_line(
            Bytes::from_static(b"boom"),
            Arc::from("app"),
            Arc::from("web-1"),
            Timestamp::from_civil(2026, 1, 1, 0, 0, 0, 123_000_000).unwrap(),
        );
        entry.level = Level::Error;
        entry.error_trace = Some(Bytes::from_static(b"boom\n  at x"));
        entry.raw = entry.error_trace.clone().unwrap();
        entry.metadata.insert("fingerprint", "abc");
        entry.metadata.insert("count", Value::Int(3));
        let mut line = Vec::new();
        encode_json(&entry, &mut line);
        let back = entry_from_json(&line[..line.len() - 1], &Arc::from("agg")).unwrap();
        // Same fields; metadata keys may come back in another order.
        let mut again = Vec::new();
        encode_json(&back, &mut again);
        let as_json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
        assert_eq!(as_json(&again), as_json(&line));
        assert_eq!(
            (back.level, back.timestamp, &back.error_trace),
            (entry.level, entry.timestamp, &entry.error_trace)
        );
        assert!(entry_from_json(b"{\"message\": 1}", &Arc::from("agg")).is_err());
        assert!(entry_from_json(b"not json", &Arc::from("agg")).is_err());
    }
}
