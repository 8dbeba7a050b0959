//! `type = "filter"`: keeps entries at or above `min_level` whose message matches `include` and
//! does not match `exclude`. Dropped entries are counted as discarded with reason `filtered`.

use regex::bytes::Regex;
use serde::{Deserialize, Deserializer};

use crate::component::{BuildContext, BuildError, Transform, TransformConfig};
use crate::event::{Level, LogEntry};
use crate::metrics::ComponentMetrics;
use crate::settings::deserialize_from_str;

#[derive(Debug, Clone, Deserialize)]
pub struct FilterConfig {
    /// Keep entries of this level and above.
    #[serde(default, deserialize_with = "optional_level")]
    pub min_level: Option<Level>,
    /// Keep only entries whose message (or trace) matches this regex.
    #[serde(default, deserialize_with = "optional_regex")]
    pub include: Option<Regex>,
    /// Drop entries whose message (or trace) matches this regex.
    #[serde(default, deserialize_with = "optional_regex")]
    pub exclude: Option<Regex>,
}

fn optional_level<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Level>, D::Error> {
    deserialize_from_str(deserializer).map(Some)
}

fn optional_regex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Regex>, D::Error> {
    let pattern = String::deserialize(deserializer)?;
    Regex::new(&pattern)
        .map(Some)
        .map_err(|error| serde::de::Error::custom(format!("invalid regex: {error}")))
}

impl TransformConfig for FilterConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Transform>, BuildError> {
        Ok(Box::new(Filter {
            config: self.clone(),
        }))
    }
}

struct Filter {
    config: FilterConfig,
}

impl Filter {
    fn keeps(&self, entry: &LogEntry) -> bool {
        if self.config.min_level.is_some_and(|min| entry.level < min) {
            return false;
        }
        let text = entry.error_trace.as_ref().unwrap_or(&entry.message);
        let included = self
            .config
            .include
            .as_ref()
            .is_none_or(|include| include.is_match(text));
        let excluded = self
            .config
            .exclude
            .as_ref()
            .is_some_and(|exclude| exclude.is_match(text));
        included && !excluded
    }
}

impl Transform for Filter {
    fn transform(&mut self, entries: &mut Vec<LogEntry>, metrics: &ComponentMetrics) {
        let before = entries.len();
        entries.retain(|entry| self.keeps(entry));
        metrics.discarded("filtered", before - entries.len());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::metrics::{ComponentKind, MetricsCollector};
    use crate::time::Timestamp;

    fn entry(level: Level, message: &'static str) -> LogEntry {
        let mut entry = LogEntry::from_line(
            Bytes::from_static(message.as_bytes()),
            Arc::from("s"),
            Arc::from("n"),
            Timestamp(0),
        );
        entry.level = level;
        entry
    }

    #[test]
    fn keeps_by_level_and_patterns() {
        let config: FilterConfig =
            toml::from_str("min_level = \"warn\"\ninclude = \"db\"\nexclude = \"retry\"").unwrap();
        let mut filter = config.build(&test_context()).unwrap();
        let collector = MetricsCollector::new();
        let metrics = collector.component("f", ComponentKind::Transform, "filter");
        let mut entries = vec![
            entry(Level::Error, "db down"),
            entry(Level::Info, "db slow"),
            entry(Level::Warn, "db retry 1"),
            entry(Level::Fatal, "cache gone"),
        ];
        filter.transform(&mut entries, &metrics);
        let kept: Vec<_> = entries.iter().map(|e| e.message.clone()).collect();
        assert_eq!(kept, vec![Bytes::from_static(b"db down")]);
        assert!(collector.render().contains("reason=\"filtered\"} 3"));
    }

    fn test_context() -> BuildContext<'static> {
        static GLOBAL: std::sync::OnceLock<crate::settings::GlobalOptions> =
            std::sync::OnceLock::new();
        static METRICS: std::sync::OnceLock<MetricsCollector> = std::sync::OnceLock::new();
        BuildContext {
            id: "f",
            global: GLOBAL.get_or_init(Default::default),
            metrics: METRICS.get_or_init(MetricsCollector::new),
        }
    }
}
