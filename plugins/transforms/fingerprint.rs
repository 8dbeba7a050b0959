//! `type = "fingerprint"`: sets `metadata.fingerprint` (32 lowercase hex digits) and
//! `metadata.template` on every entry (DESIGN §6.1), so that one bug is one key whatever node,
//! request id or timestamp it shows up with.

use serde::Deserialize;

use crate::component::{BuildContext, BuildError, Transform, TransformConfig};
use crate::event::{LogEntry, Value};
use crate::fingerprint::template::MinerConfig;
use crate::fingerprint::{DEFAULT_FRAMES, Fingerprinter};
use crate::metrics::ComponentMetrics;

#[derive(Debug, Clone, Deserialize)]
pub struct FingerprintConfig {
    /// How many top in-app frames of a stack trace make up its fingerprint.
    #[serde(default = "default_frames")]
    pub frames: usize,
    /// Most message templates kept in memory (least recently used go first).
    #[serde(default = "default_max_templates")]
    pub max_templates: usize,
}

fn default_frames() -> usize {
    DEFAULT_FRAMES
}

fn default_max_templates() -> usize {
    MinerConfig::default().max_clusters
}

impl TransformConfig for FingerprintConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Transform>, BuildError> {
        if self.frames == 0 || self.max_templates == 0 {
            return Err(BuildError(
                "`frames` and `max_templates` must be at least 1".to_string(),
            ));
        }
        let miner = MinerConfig {
            max_clusters: self.max_templates,
            ..MinerConfig::default()
        };
        Ok(Box::new(FingerprintTransform {
            fingerprinter: Fingerprinter::new(self.frames, miner),
        }))
    }
}

struct FingerprintTransform {
    fingerprinter: Fingerprinter,
}

impl Transform for FingerprintTransform {
    fn transform(&mut self, entries: &mut Vec<LogEntry>, _metrics: &ComponentMetrics) {
        for entry in entries.iter_mut() {
            let fingerprint = self.fingerprinter.fingerprint(entry);
            entry
                .metadata
                .insert("fingerprint", Value::from(fingerprint.hex));
            entry
                .metadata
                .insert("template", Value::from(fingerprint.template));
        }
    }
}
