//! The agent's own log records as data: a tracing layer copies every record the log shows into
//! a bounded broadcast, which the `internal_logs` source turns into entries, so the agent's
//! warnings can be shipped like any other log.
//!
//! Bounded and lossy on purpose: a reader that falls behind misses records (and counts them)
//! rather than holding the agent back. Nothing is captured while nobody reads.

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};

use crate::event::Level;
use crate::time::Timestamp;

/// Records kept for a reader that is behind.
const CAPACITY: usize = 4096;

/// One log record of the agent.
#[derive(Debug, Clone)]
pub struct InternalRecord {
    pub timestamp: Timestamp,
    pub level: Level,
    /// The module that logged it (`tailfix::plugins::sinks::forward`).
    pub target: String,
    pub message: String,
    /// The record's other fields (`component_id`, `error`, …) as text.
    pub fields: Vec<(String, String)>,
}

fn hub() -> &'static broadcast::Sender<Arc<InternalRecord>> {
    static HUB: OnceLock<broadcast::Sender<Arc<InternalRecord>>> = OnceLock::new();
    HUB.get_or_init(|| broadcast::channel(CAPACITY).0)
}

/// A reader of the records logged from now on.
pub fn subscribe() -> broadcast::Receiver<Arc<InternalRecord>> {
    hub().subscribe()
}

/// The layer that captures records; `tailfix run` installs it beside the log's formatter.
pub struct CaptureLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        let hub = hub();
        if hub.receiver_count() == 0 {
            return;
        }
        let metadata = event.metadata();
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let level = match *metadata.level() {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        };
        let _ = hub.send(Arc::new(InternalRecord {
            timestamp: Timestamp::now(),
            level,
            target: metadata.target().to_string(),
            message: visitor.message,
            fields: visitor.fields,
        }));
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl FieldVisitor {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.fields.push((field.name().to_string(), value));
        }
    }
}
