//! `tailfix run`: starts the API and the pipeline, waits for SIGTERM/SIGINT (or for every
//! component to finish on its own), then drains within `[agent].shutdown_timeout`.

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::component::Shared;
use crate::config::Config;
use crate::fleet;
use crate::health::Health;
use crate::ingest::IngestHub;
use crate::metrics::MetricsCollector;
use crate::nodes::NodeManager;
use crate::settings::Mode;
use crate::state::{StateError, StateStore};
use crate::topology::{RunningTopology, TopologyError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for the API on {address}: {source}")]
    Api {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Build(Vec<TopologyError>),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "refusing to accept events on {0} without [api].token; set a token or `allow_unauthenticated = true`"
    )]
    Unauthenticated(std::net::SocketAddr),
    #[error(
        "[api].token is {0} bytes long; on a non-loopback address ({1}) it must be at least {MIN_TOKEN_BYTES}"
    )]
    WeakToken(usize, std::net::SocketAddr),
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// Components failed (at start: e.g. a source's address is taken); the agent stopped.
    #[error("{}", failed_list(.0))]
    Failed(Vec<(String, String)>),
}

fn failed_list(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(id, error)| format!("component `{id}` failed: {error}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shortest `[api].token` accepted on a non-loopback address.
pub const MIN_TOKEN_BYTES: usize = 16;

/// What the API may serve, given where it listens and its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAccess {
    /// Everything (`/api/v1` behind the token when one is set).
    Full,
    /// Reachable from other machines with no token: `/health` and `/metrics` only.
    OpenEndpointsOnly,
}

/// Anything that accepts writes on a non-loopback address needs a token of at least
/// `MIN_TOKEN_BYTES` (or `allow_unauthenticated`): an aggregator that would take events and
/// registrations from anyone does not start, and the other agents close `/api/v1` instead.
pub fn api_access(config: &Config) -> Result<ApiAccess, RunError> {
    let api = &config.global.api;
    if !api.enabled || api.address.ip().is_loopback() || api.allow_unauthenticated {
        return Ok(ApiAccess::Full);
    }
    if let Some(token) = api.token.expose() {
        if token.len() < MIN_TOKEN_BYTES {
            return Err(RunError::WeakToken(token.len(), api.address));
        }
        return Ok(ApiAccess::Full);
    }
    let takes_events = config.global.agent.mode == Mode::Aggregator
        || config
            .sources
            .iter()
            .any(|source| source.type_name == "aggregator");
    if takes_events {
        return Err(RunError::Unauthenticated(api.address));
    }
    Ok(ApiAccess::OpenEndpointsOnly)
}

/// How long the sources get to bind and open what they read before a failure among them stops
/// the agent (after that, a failing component is reported by `/health` and the rest runs on).
const STARTUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the agent described by `config` until it is told to stop. Returns `Ok` on a clean stop.
pub async fn run(config: Config) -> Result<(), RunError> {
    raise_open_files_limit();
    let data_dir = &config.global.agent.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| RunError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let state = StateStore::open(data_dir).map_err(RunError::State)?;
    let metrics = MetricsCollector::new();
    let agent = &config.global.agent;
    let api_config = &config.global.api;
    let api_access = api_access(&config)?;
    for warning in crate::topology::warnings(&config) {
        tracing::warn!("{warning}");
    }
    if api_access == ApiAccess::OpenEndpointsOnly {
        tracing::warn!(
            address = %api_config.address,
            "the API listens on a non-loopback address without [api].token: it serves /health and /metrics only; set a token to use /api/v1"
        );
    }
    let ingest = IngestHub::default();
    let nodes = NodeManager::new(
        state.clone(),
        config.global.nodes.stale_after.0,
        config.global.nodes.lost_after.0,
    )
    .with_limits(
        config.global.nodes.max_nodes,
        config.global.nodes.forget_after.0,
    );
    let health = Health::new();

    let api_shutdown = CancellationToken::new();
    let api_task = if config.global.api.enabled {
        let address = config.global.api.address;
        let listener = crate::listen::tcp_listener(address)
            .map_err(|source| RunError::Api { address, source })?;
        tracing::info!(%address, "API listening");
        let router = api::router(ApiState {
            metrics: metrics.clone(),
            health: health.clone(),
            state: state.clone(),
            token: config.global.api.token.clone(),
            v1_closed: api_access == ApiAccess::OpenEndpointsOnly,
            ingest: ingest.clone(),
            nodes: nodes.clone(),
            max_body_bytes: config.global.api.max_body_bytes,
        });
        Some(tokio::spawn(api::serve(
            listener,
            router,
            api_shutdown.clone(),
        )))
    } else {
        None
    };

    let mut shared = Shared::default();
    shared.insert(ingest.clone());
    let mut topology = RunningTopology::start(&config, &metrics, &health, &state, &shared)
        .map_err(RunError::Build)?;
    let failed_at_start = health.settle(STARTUP_LIMIT).await;
    if !failed_at_start.is_empty() {
        topology.stop(config.global.agent.shutdown_timeout.0).await;
        api_shutdown.cancel();
        if let Some(task) = api_task {
            let _ = task.await;
        }
        return Err(RunError::Failed(failed_at_start));
    }
    tracing::info!(
        sources = config.sources.len(),
        transforms = config.transforms.len(),
        sinks = config.sinks.len(),
        "pipeline started"
    );

    let background = CancellationToken::new();
    if agent.mode == Mode::Agent {
        tokio::spawn(fleet::register_and_heartbeat(
            agent.clone(),
            background.clone(),
        ));
    }
    tokio::spawn(fleet::node_gauges(
        nodes.clone(),
        metrics.clone(),
        background.clone(),
    ));
    let signalled = tokio::select! {
        signal = shutdown_signal() => { signal?; true }
        _ = topology.finished() => false,
    };
    if signalled {
        let timeout = config.global.agent.shutdown_timeout.0;
        tracing::info!(?timeout, "shutting down: draining in-flight entries");
        if !topology.stop(timeout).await {
            tracing::warn!(
                ?timeout,
                "shutdown timeout passed before every entry was written"
            );
        }
    }
    background.cancel();
    api_shutdown.cancel();
    if let Some(task) = api_task {
        let _ = task.await;
    }
    // Finished on its own with a failed component: the agent could not do its job.
    let failures = health.failures();
    if !signalled && !failures.is_empty() {
        return Err(RunError::Failed(failures));
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

/// A file source may follow thousands of files, one descriptor each: raise the soft limit on
/// open files to the hard limit the system allows.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let previous = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!(
                    from = previous,
                    to = limit.rlim_max,
                    "raised the open files limit"
                );
            }
        }
    }
}
