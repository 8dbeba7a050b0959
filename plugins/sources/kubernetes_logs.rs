//! `type = "kubernetes_logs"`: every container's log on a node, as the kubelet writes them:
//! `<pods_root>/<namespace>_<pod>_<uid>/<container>/<restart>.log` in the CRI format.
//!
//! It is the `file` source with the CRI format: partial (`P`) records are joined per stream,
//! stdout and stderr are assembled apart (they never mix, unlike Fluent Bit's CRI parser),
//! stack traces are joined per container stream (`multiline = "auto"`), and each entry gets
//! `metadata.namespace`, `pod`, `pod_uid`, `container` and `stream`.

use std::time::Duration;

use serde::Deserialize;

use super::default_max_line_bytes;
use super::file::{FileConfig, ReadFrom};
use crate::component::{BuildContext, BuildError, Source, SourceConfig};
use crate::config::ConfigDuration;
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;

#[derive(Debug, Clone, Deserialize)]
pub struct KubernetesLogsConfig {
    /// Where the kubelet keeps pod logs.
    #[serde(default = "default_pods_root")]
    pub pods_root: String,
    /// Globs of log paths to leave alone (e.g. `"**/kube-system_*/**"`).
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// `"auto"` (default), `"none"`, or `{ start_pattern = "…", timeout = "1s" }`, per container stream.
    #[serde(default = "MultilineConfig::auto")]
    pub multiline: MultilineConfig,
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_pods_root() -> String {
    "/var/log/pods".to_string()
}

impl SourceConfig for KubernetesLogsConfig {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        let root = self.pods_root.trim_end_matches('/');
        let file = FileConfig {
            include: vec![format!("{root}/*/*/*.log")],
            exclude: self.exclude.clone(),
            read_from: self.read_from,
            max_line_bytes: self.max_line_bytes,
            format: Format::Cri,
            multiline: self.multiline.clone(),
            scan_interval: ConfigDuration(Duration::from_secs(1)),
            partial_line_timeout: ConfigDuration(Duration::from_secs(1)),
            forget_after: ConfigDuration(Duration::from_secs(24 * 3600)),
            kubernetes: true,
        };
        file.build(cx)
    }
}
