//! `type = "internal_logs"`: the agent's own log records (what its log shows, at the level
//! it shows) as entries: level, `target` and the record's fields in `metadata`, so the agent's
//! warnings can be shipped and alerted on like any other log.
//!
//! It never feeds on itself: it logs nothing per record, and records of its own module are
//! skipped. Records it could not keep up with are counted as discarded (`reason="lagged"`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Source, SourceConfig, SourceContext,
};
use crate::event::{Level, LogEntry, Value};
use crate::internal_log::{self, InternalRecord};
use crate::pipeline::{Batch, MAX_BATCH_ENTRIES};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalLogsConfig {
    /// Records below this level are not made entries (the log's own filter applies first).
    #[serde(
        default = "default_min_level",
        deserialize_with = "crate::settings::deserialize_from_str"
    )]
    pub min_level: Level,
}

fn default_min_level() -> Level {
    Level::Trace
}

impl SourceConfig for InternalLogsConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(InternalLogsSource {
            min_level: self.min_level,
        }))
    }
}

struct InternalLogsSource {
    min_level: Level,
}

/// Longest a record waits for others to share its batch.
const BATCH_WAIT: Duration = Duration::from_millis(200);

impl Source for InternalLogsSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let mut records = internal_log::subscribe();
            cx.health.running();
            let own_module = module_path!();
            let mut pending = Vec::new();
            let mut flush_at = None;
            loop {
                // A batch goes out when full, or `BATCH_WAIT` after its first record.
                let deadline = flush_at.unwrap_or_else(|| tokio::time::Instant::now() + BATCH_WAIT);
                let next = tokio::select! {
                    _ = cx.shutdown.cancelled() => break,
                    next = tokio::time::timeout_at(deadline, records.recv()) => next,
                };
                match next {
                    Ok(Ok(record)) => {
                        if record.level >= self.min_level && record.target != own_module {
                            cx.metrics.received(1, record.message.len());
                            pending.push(entry(&record, &cx.id, &cx.node_id));
                            flush_at.get_or_insert(deadline);
                        }
                        if pending.len() < MAX_BATCH_ENTRIES {
                            continue;
                        }
                    }
                    Ok(Err(RecvError::Lagged(missed))) => {
                        cx.metrics.discarded("lagged", missed as usize);
                        continue;
                    }
                    Ok(Err(RecvError::Closed)) => break,
                    Err(_) => {}
                }
                flush_at = None;
                if !pending.is_empty() {
                    cx.output
                        .send(Batch::new(std::mem::take(&mut pending)))
                        .await;
                }
            }
            if !pending.is_empty() {
                cx.output.send(Batch::new(pending)).await;
            }
            Ok::<(), ComponentError>(())
        })
    }
}

fn entry(record: &InternalRecord, source: &Arc<str>, node_id: &Arc<str>) -> LogEntry {
    let mut entry = LogEntry::from_line(
        Bytes::from(record.message.clone()),
        source.clone(),
        node_id.clone(),
        record.timestamp,
    );
    entry.level = record.level;
    entry
        .metadata
        .push("target", Value::from(record.target.clone()));
    for (key, value) in &record.fields {
        entry.metadata.push(key.clone(), Value::from(value.clone()));
    }
    entry
}
