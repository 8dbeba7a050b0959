//! The agent's side of the fleet (DESIGN §7): registering with the aggregator and heartbeating;
//! and the aggregator's `nodes{status}` gauge.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::MetricsCollector;
use crate::nodes::{NodeManager, NodeStatus};
use crate::settings::AgentConfig;

/// Registers with `[agent].aggregator` (retrying until it answers), then heartbeats every
/// `heartbeat_interval`; registers again if the aggregator forgot the node.
pub async fn register_and_heartbeat(agent: AgentConfig, stop: CancellationToken) {
    let Some(base) = agent
        .aggregator
        .clone()
        .map(|url| url.trim_end_matches('/').to_string())
    else {
        tracing::warn!("mode = \"agent\" without [agent].aggregator: not registering");
        return;
    };
    let client = match agent.aggregator_tls.client(Duration::from_secs(10)) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot set up the client for the aggregator: not registering");
            return;
        }
    };
    let token = agent.aggregator_token.expose().map(str::to_string);
    let authorized = |request: reqwest::RequestBuilder| match &token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let registration = json!({
        "id": agent.node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "labels": {"mode": "agent"},
    });
    let mut registered = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        if !registered {
            let result = authorized(
                client
                    .post(format!("{base}/api/v1/nodes/register"))
                    .json(&registration),
            )
            .send()
            .await;
            match result {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(aggregator = %base, node_id = %agent.node_id, "registered with the aggregator");
                    registered = true;
                    backoff = Duration::from_millis(500);
                }
                Ok(response) => tracing::warn!(status = %response.status(), "registration refused"),
                Err(error) => tracing::debug!(%error, "aggregator not reachable; will retry"),
            }
        } else {
            let url = format!("{base}/api/v1/nodes/{}/heartbeat", agent.node_id);
            match authorized(client.post(url)).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => {
                    registered = false
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "heartbeat failed"),
            }
        }
        let wait = if registered {
            agent.heartbeat_interval.0
        } else {
            backoff
        };
        backoff = (backoff * 2).min(Duration::from_secs(10));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Keeps `nodes{status}` current (statuses change with time, not only with requests).
pub async fn node_gauges(nodes: NodeManager, metrics: MetricsCollector, stop: CancellationToken) {
    let gauges = metrics.remediation().nodes.clone();
    loop {
        if let Err(error) = nodes.forget_gone() {
            tracing::warn!(%error, "cannot forget gone nodes");
        }
        if let Ok(list) = nodes.list() {
            for status in [NodeStatus::Active, NodeStatus::Stale, NodeStatus::Lost] {
                let count = list.iter().filter(|node| node.status == status).count();
                gauges
                    .with_label_values(&[status.as_str()])
                    .set(count as i64);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
