//! Pod labels from the Kubernetes API for `kubernetes_logs` (`enrich = true`): one
//! `GET /api/v1/namespaces/{ns}/pods/{pod}` per pod with the service account's token and CA,
//! cached for `labels_ttl` (a failed lookup too, so an unreachable API server is not asked for
//! every line). Needs RBAC `get` on pods (conf/kubernetes/rbac.yaml).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::event::{Metadata, Value};

pub struct PodLabels {
    client: reqwest::Client,
    api_server: String,
    token_file: PathBuf,
    ttl: Duration,
    cache: HashMap<(String, String), (Instant, Option<Metadata>)>,
    handle: tokio::runtime::Handle,
}

impl PodLabels {
    pub fn new(
        api_server: &str,
        token_file: PathBuf,
        ca_file: Option<PathBuf>,
        ttl: Duration,
        handle: tokio::runtime::Handle,
    ) -> Result<Self, String> {
        let mut builder = crate::http::builder(Duration::from_secs(3));
        if let Some(ca) = ca_file.filter(|path| path.exists()) {
            let pem = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        Ok(PodLabels {
            client: builder.build().map_err(|e| e.to_string())?,
            api_server: api_server.trim_end_matches('/').to_string(),
            token_file,
            ttl,
            cache: HashMap::new(),
            handle,
        })
    }

    /// The pod's labels, from the cache or the API server (called on the reader's thread).
    pub fn labels(&mut self, namespace: &str, pod: &str) -> Option<Metadata> {
        let key = (namespace.to_string(), pod.to_string());
        if let Some((at, labels)) = self.cache.get(&key)
            && at.elapsed() < self.ttl
        {
            return labels.clone();
        }
        let labels = self.handle.block_on(self.fetch(namespace, pod));
        if self.cache.len() > 10_000 {
            self.cache.clear();
        }
        self.cache.insert(key, (Instant::now(), labels.clone()));
        labels
    }

    async fn fetch(&self, namespace: &str, pod: &str) -> Option<Metadata> {
        // Tokens are rotated by the kubelet: read it for each lookup.
        let token = std::fs::read_to_string(&self.token_file).ok()?;
        let url = format!(
            "{}/api/v1/namespaces/{namespace}/pods/{pod}",
            self.api_server
        );
        let response = match self.client.get(&url).bearer_auth(token.trim()).send().await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, %url, "pod lookup failed");
                return None;
            }
        };
        if !response.status().is_success() {
            tracing::debug!(status = %response.status(), %url, "pod lookup refused");
            return None;
        }
        let pod: serde_json::Value = response.json().await.ok()?;
        let labels = pod["metadata"]["labels"].as_object()?;
        let mut metadata = Metadata::with_capacity(labels.len());
        for (key, value) in labels {
            if let Some(text) = value.as_str() {
                metadata.push(key.clone(), Value::from(text.to_string()));
            }
        }
        Some(metadata)
    }
}
