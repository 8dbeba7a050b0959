//! `type = "forward"`: ships entries to an aggregator (DESIGN §7) as NDJSON over HTTP with gzip,
//! `POST {uri}/api/v1/events` with the bearer token.
//!
//! An entry counts as delivered only on the aggregator's 200 (which it sends once its own sinks
//! have the entries): until then the batches are held, so a file source's checkpoint waits for
//! the aggregator. Failures are retried with backoff for as long as it takes; meanwhile the
//! input channel fills and `when_full` applies (backpressure, or counted drops). A 400 means
//! some lines were malformed and the rest accepted: it is not retried.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Sink, SinkConfig, SinkContext,
};
use crate::event::encode_json;
use crate::pipeline::Batch;
use crate::settings::{ConfigDuration, Secret};
use crate::tls::ClientTls;

#[derive(Debug, Clone, Deserialize)]
pub struct ForwardConfig {
    /// The aggregator's base URL; defaults to `[agent].aggregator`.
    #[serde(default)]
    pub uri: Option<String>,
    /// Bearer token; defaults to `[agent].aggregator_token`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Most entries per request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Timeout of one request.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Gzip the body (default true).
    #[serde(default = "default_compress")]
    pub compress: bool,
    /// TLS towards the aggregator, `{ ca_file, cert_file, key_file }`; defaults to
    /// `[agent].aggregator_tls`.
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

fn default_batch_max_events() -> usize {
    2000
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_compress() -> bool {
    true
}

impl SinkConfig for ForwardConfig {
    fn files(&self) -> Vec<std::path::PathBuf> {
        self.tls.as_ref().map(ClientTls::files).unwrap_or_default()
    }

    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        let uri = self
            .uri
            .clone()
            .or_else(|| cx.global.agent.aggregator.clone())
            .ok_or_else(|| {
                BuildError("`uri` is not set and neither is [agent].aggregator".to_string())
            })?;
        let token = self
            .token
            .clone()
            .unwrap_or_else(|| cx.global.agent.aggregator_token.clone());
        let tls = self
            .tls
            .clone()
            .unwrap_or_else(|| cx.global.agent.aggregator_tls.clone());
        let client = tls
            .client(self.timeout.0)
            .map_err(|error| BuildError(format!("tls: {error}")))?;
        Ok(Box::new(ForwardSink {
            url: format!("{}/api/v1/events", uri.trim_end_matches('/')),
            token,
            client,
            config: self.clone(),
        }))
    }
}

struct ForwardSink {
    url: String,
    token: Secret,
    client: reqwest::Client,
    config: ForwardConfig,
}

/// Batches sent but not yet acknowledged; if they are dropped without a 200 (shutdown
/// deadline, task aborted), they are marked failed so no checkpoint moves past them.
struct Unacknowledged(Vec<Batch>);

impl Drop for Unacknowledged {
    fn drop(&mut self) {
        for batch in &self.0 {
            batch.mark_failed();
        }
    }
}

impl ForwardSink {
    fn body(&self, batches: &[Batch]) -> Vec<u8> {
        let mut ndjson =
            Vec::with_capacity(batches.iter().map(Batch::byte_size).sum::<usize>() * 2);
        for batch in batches {
            for entry in batch.entries() {
                encode_json(entry, &mut ndjson);
            }
        }
        if !self.config.compress {
            return ndjson;
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(ndjson.len() / 4), Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&ndjson);
        encoder.finish().unwrap_or(ndjson)
    }

    /// Sends until the aggregator takes the body; `false` if it refused some lines for good.
    async fn deliver(&self, body: Vec<u8>, cx: &SinkContext) -> bool {
        let mut backoff = Duration::from_millis(200);
        let mut failing = false;
        loop {
            let mut request = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(body.clone());
            if self.config.compress {
                request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            if let Some(token) = self.token.expose() {
                request = request.bearer_auth(token);
            }
            let (wait, problem) = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    if failing {
                        tracing::info!(component_id = %cx.id, "the aggregator takes entries again");
                        cx.health.running();
                    }
                    return true;
                }
                Ok(response) if response.status() == reqwest::StatusCode::BAD_REQUEST => {
                    let text = response.text().await.unwrap_or_default();
                    cx.metrics.error("rejected_lines");
                    tracing::warn!(component_id = %cx.id, response = %text, "the aggregator rejected malformed lines");
                    return false;
                }
                Ok(response) => {
                    cx.metrics.error("http_error");
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    tracing::debug!(component_id = %cx.id, status = %response.status(), "aggregator refused; retrying");
                    (
                        retry_after.unwrap_or(backoff),
                        format!("the aggregator answered {}", response.status()),
                    )
                }
                Err(error) => {
                    cx.metrics.error("network_error");
                    tracing::debug!(component_id = %cx.id, %error, "aggregator unreachable; retrying");
                    (backoff, format!("the aggregator is unreachable: {error}"))
                }
            };
            if !failing {
                failing = true;
                tracing::warn!(component_id = %cx.id, url = %self.url, "{problem}; retrying");
                cx.health
                    .failed(format!("{}: {problem} (retrying)", self.url));
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

impl Sink for ForwardSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            while let Some(first) = cx.input.recv().await {
                // Take what else is waiting, up to the request size.
                let mut pending = Unacknowledged(vec![first]);
                let mut events = pending.0[0].len();
                while events < self.config.batch_max_events {
                    match cx.input.try_recv() {
                        Some(batch) => {
                            events += batch.len();
                            pending.0.push(batch);
                        }
                        None => break,
                    }
                }
                let body = self.body(&pending.0);
                let accepted = self.deliver(body, &cx).await;
                if accepted {
                    cx.metrics.sent(events);
                    // Delivered: dropping the batches acknowledges them upstream.
                    pending.0.clear();
                }
            }
            Ok::<(), ComponentError>(())
        })
    }
}
