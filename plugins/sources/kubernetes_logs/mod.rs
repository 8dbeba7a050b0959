//! `type = "kubernetes_logs"`: every container's log on a node, as the kubelet writes them:
//! `<pods_root>/<namespace>_<pod>_<uid>/<container>/<restart>.log` in the CRI format.
//!
//! It is the `file` source with the CRI format: partial (`P`) records are joined per stream,
//! stdout and stderr are assembled apart (they never mix, unlike Fluent Bit's CRI parser),
//! stack traces are joined per container stream (`multiline = "auto"`), and each entry gets
//! `metadata.namespace`, `pod`, `pod_uid`, `container` and `stream`.
//!
//! What is Kubernetes' stays here: the pod's metadata from the log path (`pod_metadata`), its
//! labels from the API server (`pod_labels`, with `enrich = true`). The file source knows none
//! of it: it calls the `Pods` enricher this source gives it for every entry, with the path.

mod pod_labels;
mod pod_metadata;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::pod_labels::PodLabels;
use super::default_max_line_bytes;
use super::file::{Enricher, Enrichment, FileConfig, ReadFrom};
use crate::component::{BuildContext, BuildError, Source, SourceConfig};
use crate::event::{LogEntry, Value};
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;
use crate::settings::ConfigDuration;

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
    /// Add `metadata.labels` of each pod, from the Kubernetes API (in-cluster credentials).
    #[serde(default)]
    pub enrich: bool,
    /// The API server (in a pod: `https://kubernetes.default.svc`).
    #[serde(default = "default_api_server")]
    pub api_server: String,
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
    /// How long a pod's labels are kept before they are looked up again.
    #[serde(default = "default_labels_ttl")]
    pub labels_ttl: ConfigDuration,
}

fn default_api_server() -> String {
    "https://kubernetes.default.svc".to_string()
}
fn default_token_file() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}
fn default_ca_file() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
}
fn default_labels_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
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
        };
        let config = self.clone();
        let enrichment: Enrichment = Arc::new(move || Box::new(Pods::new(&config)));
        file.build_enriched(cx, Some(enrichment))
    }
}

/// Adds each entry's pod metadata (from the path) and, with `enrich = true`, its pod's labels.
struct Pods {
    labels: Option<PodLabels>,
}

impl Pods {
    /// Called as the source starts, on the runtime: lookups block on its handle.
    fn new(config: &KubernetesLogsConfig) -> Self {
        let labels = if config.enrich {
            PodLabels::new(
                &config.api_server,
                config.token_file.clone(),
                Some(config.ca_file.clone()),
                config.labels_ttl.0,
                tokio::runtime::Handle::current(),
            )
            .map_err(|error| tracing::warn!(%error, "pod labels unavailable"))
            .ok()
        } else {
            None
        };
        Pods { labels }
    }
}

impl Enricher for Pods {
    fn enrich(&mut self, path: &Path, entry: &mut LogEntry) {
        pod_metadata::pod_metadata(path, &mut entry.metadata);
        if let Some(pod_labels) = self.labels.as_mut() {
            add_pod_labels(pod_labels, entry);
        }
    }
}

/// `metadata.labels` of the entry's pod, when it has a namespace and pod.
fn add_pod_labels(pod_labels: &mut PodLabels, entry: &mut LogEntry) {
    let text = |key: &str| {
        entry
            .metadata
            .get(key)
            .and_then(Value::as_str_lossy)
            .map(|t| t.into_owned())
    };
    let (Some(namespace), Some(pod)) = (text("namespace"), text("pod")) else {
        return;
    };
    if let Some(labels) = pod_labels.labels(&namespace, &pod) {
        entry.metadata.insert("labels", Value::Map(labels));
    }
}
