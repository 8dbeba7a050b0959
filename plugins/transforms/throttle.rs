//! `type = "throttle"`: lets at most `threshold` entries per key through in each `window`; the
//! rest are dropped and counted (`component_discarded_events_total{reason="throttled"}`). The
//! key is a metadata field, by default the fingerprint, so an error storm of one bug is cut
//! down while every other bug still gets through.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::component::{BuildContext, BuildError, Transform, TransformConfig};
use crate::event::LogEntry;
use crate::metrics::ComponentMetrics;
use crate::settings::ConfigDuration;

#[derive(Debug, Clone, Deserialize)]
pub struct ThrottleConfig {
    /// Entries let through per key and window.
    pub threshold: u64,
    /// Length of the window.
    #[serde(default = "default_window")]
    pub window: ConfigDuration,
    /// Metadata field whose value is the key (entries without it share one key).
    #[serde(default = "default_key_field")]
    pub key_field: String,
}

fn default_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

fn default_key_field() -> String {
    "fingerprint".to_string()
}

impl TransformConfig for ThrottleConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Transform>, BuildError> {
        if self.window.0.is_zero() {
            return Err(BuildError("`window` must be longer than zero".to_string()));
        }
        Ok(Box::new(Throttle {
            config: self.clone(),
            window_start: Instant::now(),
            counts: HashMap::new(),
        }))
    }
}

struct Throttle {
    config: ThrottleConfig,
    window_start: Instant,
    /// Entries seen per key in the current window. Cleared each window, so its size is bounded
    /// by the keys of one window.
    counts: HashMap<Vec<u8>, u64>,
}

impl Throttle {
    fn admit(&mut self, entry: &LogEntry) -> bool {
        let key = entry
            .metadata
            .get(&self.config.key_field)
            .and_then(|value| value.as_bytes())
            .map(|bytes| bytes.to_vec())
            .unwrap_or_default();
        let count = self.counts.entry(key).or_insert(0);
        *count += 1;
        *count <= self.config.threshold
    }
}

impl Transform for Throttle {
    fn transform(&mut self, entries: &mut Vec<LogEntry>, metrics: &ComponentMetrics) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= self.config.window.0 {
            self.window_start = now;
            self.counts.clear();
        }
        let before = entries.len();
        entries.retain(|entry| self.admit(entry));
        metrics.discarded("throttled", before - entries.len());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::event::Value;
    use crate::metrics::{ComponentKind, MetricsCollector};
    use crate::time::Timestamp;

    #[test]
    fn lets_threshold_entries_per_key_through_and_counts_the_rest() {
        let mut throttle = Throttle {
            config: ThrottleConfig {
                threshold: 2,
                window: ConfigDuration(Duration::from_secs(3600)),
                key_field: "fingerprint".to_string(),
            },
            window_start: Instant::now(),
            counts: HashMap::new(),
        };
        let collector = MetricsCollector::new();
        let metrics = collector.component("t", ComponentKind::Transform, "throttle");
        let mut entries: Vec<LogEntry> = (0..10)
            .map(|i| {
                let mut entry = LogEntry::from_line(
                    Bytes::from(format!("e{i}")),
                    Arc::from("s"),
                    Arc::from("n"),
                    Timestamp(0),
                );
                entry.metadata.insert(
                    "fingerprint",
                    Value::from(if i % 2 == 0 { "aa" } else { "bb" }),
                );
                entry
            })
            .collect();
        throttle.transform(&mut entries, &metrics);
        let kept: Vec<&[u8]> = entries.iter().map(|e| &e.message[..]).collect();
        assert_eq!(kept, vec![&b"e0"[..], b"e1", b"e2", b"e3"]);
        assert!(collector.render().contains("reason=\"throttled\"} 6"));
    }
}
