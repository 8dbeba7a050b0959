//! `tailfix run`: starts the API and the pipeline, waits for SIGTERM/SIGINT (or for every
//! component to finish on its own), then drains within `[agent].shutdown_timeout`.

use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, ReloadOutcome, ReloadRequest};
use crate::component::Shared;
use crate::config::Config;
use crate::fleet;
use crate::health::{Health, ReloadStatus};
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
    #[error("[api].tls: {0}")]
    ApiTls(#[source] crate::tls::TlsError),
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

/// How `tailfix run` was asked to behave beyond its config.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Reload when the config file or a file it names changes.
    pub watch_config: bool,
}

/// Runs the agent described by `config` until it is told to stop. Returns `Ok` on a clean stop.
pub async fn run(config: Config) -> Result<(), RunError> {
    run_with(config, RunOptions::default()).await
}

/// As `run`, with options.
pub async fn run_with(config: Config, options: RunOptions) -> Result<(), RunError> {
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

    let api_tls = api::ApiTls::default();
    if let Some(tls) = &config.global.api.tls {
        let acceptor = tls.acceptor().map_err(RunError::ApiTls)?;
        *api_tls.write().unwrap_or_else(|p| p.into_inner()) = Some(acceptor);
    }
    let api_shutdown = CancellationToken::new();
    let (reload_requests, mut reload_inbox) = tokio::sync::mpsc::channel::<ReloadRequest>(4);
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
            reload: Some(reload_requests.clone()),
        });
        Some(tokio::spawn(api::serve(
            listener,
            router,
            api_tls.clone(),
            api_shutdown.clone(),
        )))
    } else {
        None
    };

    let mut shared = Shared::default();
    shared.insert(ingest.clone());
    health.set_starting(true);
    let started = RunningTopology::start(&config, &metrics, &health, &state, &shared).await;
    health.set_starting(false);
    let mut topology = started.map_err(RunError::Build)?;
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
    let reloads = Reloads::new(&metrics, &health);
    let mut signals = Signals::new()?;
    let mut watcher = options.watch_config.then(|| ConfigWatcher::start(&config));
    let mut current = config.global.clone();
    let path = config.path.clone();
    let signalled = loop {
        let trigger = tokio::select! {
            _ = signals.terminate.recv() => break true,
            _ = signals.interrupt.recv() => break true,
            _ = signals.hangup.recv() => Trigger::Signal,
            Some(request) = reload_inbox.recv() => Trigger::Api(request),
            Some(()) = async { match watcher.as_mut() { Some(w) => w.changed().await, None => std::future::pending().await } } => Trigger::Watch,
            _ = topology.finished() => break false,
        };
        tracing::info!(trigger = trigger.name(), path = %path.display(), "reloading the config");
        let outcome = reload(&path, &mut topology, &mut current, &api_tls).await;
        reloads.record(&outcome);
        if let (Some(watcher), ReloadOutcome::Applied { files, .. }) = (watcher.as_mut(), &outcome)
        {
            watcher.watch(files);
        }
        if let Trigger::Api(request) = trigger {
            let _ = request.reply.send(outcome);
        }
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

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, RunError> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).map_err(RunError::Signal);
        Ok(Signals {
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }
}

/// What asked for a reload.
enum Trigger {
    Signal,
    Api(ReloadRequest),
    Watch,
}

impl Trigger {
    fn name(&self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Api(_) => "api",
            Trigger::Watch => "watch",
        }
    }
}

/// Reads the config again and applies it; a config that does not load or build is rejected
/// with the messages `tailfix validate` prints, and the running pipeline stays as it was.
async fn reload(
    path: &std::path::Path,
    topology: &mut RunningTopology,
    current: &mut crate::settings::GlobalOptions,
    api_tls: &api::ApiTls,
) -> ReloadOutcome {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            return ReloadOutcome::Rejected {
                errors: errors.0.iter().map(ToString::to_string).collect(),
            };
        }
    };
    let restart_needed = restart_needed(current, &config.global);
    // The API's certificates are read again (a renewed certificate, same paths).
    let acceptor = match (&config.global.api.tls, current.api.tls.is_some()) {
        // Same paths or new ones, CA or not: the listener's TLS is rebuilt from the files.
        (Some(tls), true) => match tls.acceptor() {
            Ok(acceptor) => Some(acceptor),
            Err(error) => {
                return ReloadOutcome::Rejected {
                    errors: vec![format!("{}: api: tls: {error}", path.display())],
                };
            }
        },
        _ => None,
    };
    match topology.reload(&config).await {
        Ok(mut changes) => {
            if let Some(acceptor) = acceptor {
                *api_tls.write().unwrap_or_else(|p| p.into_inner()) = Some(acceptor);
            }
            changes.warnings.extend(restart_needed);
            *current = config.global.clone();
            ReloadOutcome::Applied {
                changes,
                files: config.files(),
            }
        }
        Err(errors) => ReloadOutcome::Rejected {
            errors: errors.iter().map(ToString::to_string).collect(),
        },
    }
}

/// Changes to what is set up once at start: said, not applied.
fn restart_needed(
    old: &crate::settings::GlobalOptions,
    new: &crate::settings::GlobalOptions,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut check = |changed: bool, what: &str| {
        if changed {
            warnings.push(format!(
                "{what} changed: it takes effect at the next restart"
            ));
        }
    };
    // Whether the API serves TLS needs a restart; its certificates are read again on reload.
    let without_tls = |api: &crate::settings::ApiConfig| {
        let mut api = api.clone();
        let serves_tls = api.tls.take().is_some();
        format!("{api:?} tls={serves_tls}")
    };
    check(without_tls(&old.api) != without_tls(&new.api), "[api]");
    check(
        format!("{:?}", old.nodes) != format!("{:?}", new.nodes),
        "[nodes]",
    );
    check(old.agent.data_dir != new.agent.data_dir, "[agent].data_dir");
    check(old.agent.node_id != new.agent.node_id, "[agent].node_id");
    check(old.agent.mode != new.agent.mode, "[agent].mode");
    warnings
}

/// The reload counters, and `/health`'s note of the last reload.
struct Reloads {
    total: prometheus::IntCounterVec,
    last_successful: prometheus::IntGauge,
    health: Health,
}

impl Reloads {
    fn new(metrics: &MetricsCollector, health: &Health) -> Reloads {
        let total = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "config_reloads_total",
                "Config reloads, by outcome: applied or rejected.",
            ),
            &["outcome"],
        )
        .expect("valid counter definition");
        let last_successful = prometheus::IntGauge::new(
            "config_last_reload_successful",
            "1 if the last config reload was applied (or none was tried), 0 if it was rejected.",
        )
        .expect("valid gauge definition");
        // Registered once per process; a second agent in one process (tests) shares them.
        let _ = metrics.registry().register(Box::new(total.clone()));
        let _ = metrics
            .registry()
            .register(Box::new(last_successful.clone()));
        last_successful.set(1);
        Reloads {
            total,
            last_successful,
            health: health.clone(),
        }
    }

    fn record(&self, outcome: &ReloadOutcome) {
        let at = crate::time::Timestamp::now().to_rfc3339();
        match outcome {
            ReloadOutcome::Applied { changes, .. } => {
                tracing::info!(added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed, "config reloaded");
                for warning in &changes.warnings {
                    tracing::warn!("reload: {warning}");
                }
                self.total.with_label_values(&["applied"]).inc();
                self.last_successful.set(1);
                self.health.set_reload(ReloadStatus {
                    status: "applied",
                    at,
                    errors: Vec::new(),
                });
            }
            ReloadOutcome::Rejected { errors } => {
                tracing::error!(errors = %errors.join("; "), "config reload rejected; the pipeline runs on unchanged");
                self.total.with_label_values(&["rejected"]).inc();
                self.last_successful.set(0);
                self.health.set_reload(ReloadStatus {
                    status: "failed",
                    at,
                    errors: errors.clone(),
                });
            }
        }
    }
}

/// Watches the config file and the files it names (through their directories, so that an
/// editor's or a ConfigMap's replace-by-rename is seen).
struct ConfigWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: std::collections::HashSet<std::path::PathBuf>,
    files: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>>,
    changes: tokio::sync::mpsc::Receiver<()>,
}

/// Changes closer together than this are one reload.
const WATCH_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

impl ConfigWatcher {
    fn start(config: &Config) -> ConfigWatcher {
        let (sender, changes) = tokio::sync::mpsc::channel(1);
        let files: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>> =
            Default::default();
        let seen = files.clone();
        let handler = move |result: notify::Result<notify::Event>| {
            let Ok(event) = result else {
                return;
            };
            if event.kind.is_access() {
                return;
            }
            let files = seen.lock().unwrap_or_else(|p| p.into_inner());
            // Kubernetes swaps a ConfigMap's `..data` link: any change in a watched directory
            // whose name starts with `..` counts too.
            let relevant = event.paths.iter().any(|path| {
                files.contains(path)
                    || path
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with(".."))
            });
            if relevant {
                let _ = sender.try_send(());
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(%error, "cannot watch the config for changes; --watch-config is off");
                None
            }
        };
        let mut watching = ConfigWatcher {
            watcher,
            watched: Default::default(),
            files,
            changes,
        };
        watching.watch(&config.files());
        watching
    }

    /// Watches `files` (the config's files after a reload) from now on.
    fn watch(&mut self, files: &[std::path::PathBuf]) {
        use notify::Watcher;
        let absolute: Vec<std::path::PathBuf> = files
            .iter()
            .map(|file| std::path::absolute(file).unwrap_or_else(|_| file.clone()))
            .collect();
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = absolute.iter().cloned().collect();
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for file in &absolute {
            let Some(dir) = file.parent() else {
                continue;
            };
            if self.watched.insert(dir.to_path_buf())
                && let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive)
            {
                tracing::warn!(dir = %dir.display(), %error, "cannot watch a config directory");
            }
        }
    }

    /// Resolves after a change, once changes have settled.
    async fn changed(&mut self) -> Option<()> {
        self.changes.recv().await?;
        loop {
            match tokio::time::timeout(WATCH_SETTLE, self.changes.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return None,
                Err(_) => return Some(()),
            }
        }
    }
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
