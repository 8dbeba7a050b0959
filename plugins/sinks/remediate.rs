//! `type = "remediate"`: turns recurring errors into incidents and proposed fixes (DESIGN §6).
//! The work is done by `remediation::engine`; this sink builds it from config, feeds it the
//! entries, and ticks it once a second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Sink, SinkConfig, SinkContext,
};
use crate::metrics::MetricsCollector;
use crate::remediation::context::{ContextBudget, PathMap};
use crate::remediation::engine::{
    EngineConfig, Proposer, Remediator, Services, ToolSettings, VerifySettings,
};
use crate::remediation::incident::IncidentStore;
use crate::remediation::model::ModelProvider;
use crate::remediation::model::service::{BreakerPolicy, ModelService, RetryPolicy};
use crate::remediation::model::setup::provider_from_config;
use crate::remediation::redact::{Redactor, UserPattern};
use crate::remediation::repository::RepositoryClient;
use crate::remediation::repository::service::RemoteRepositoryService;
use crate::remediation::repository::setup::client_from_config;
use crate::remediation::validate::{Guard, Validator};
use crate::remediation::verify;
use crate::settings::{
    ConfigDuration, ModelConfig, ModelOverrides, RepositoryConfig, RepositoryOverrides,
};
use crate::state::StateStore;

#[derive(Debug, Clone, Deserialize)]
pub struct RemediateConfig {
    /// Occurrences of one fingerprint within `window` before acting.
    #[serde(default = "default_min_occurrences")]
    pub min_occurrences: u64,
    #[serde(default = "default_window")]
    pub window: ConfigDuration,
    /// Never act twice on one fingerprint within this.
    #[serde(default = "default_cooldown")]
    pub cooldown: ConfigDuration,
    /// Analyses under way at once, at most.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Model requests per hour, at most.
    #[serde(default = "default_max_requests_per_hour")]
    pub max_requests_per_hour: u32,
    /// Attempts of a failing incident before it stays failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First wait before a failed incident is tried again (doubling each time).
    #[serde(default = "default_retry_failed_after")]
    pub retry_failed_after: ConfigDuration,
    /// Stack-trace path prefix → repository path prefix, e.g. `{ "/app/" = "" }`. Unset: the
    /// working directories container images commonly use (`/app/`, `/usr/src/app/`,
    /// `/opt/app/`, `/srv/app/`, `/workspace/`, `/home/app/`) map to the repository root.
    #[serde(default = "container_path_map")]
    pub path_map: PathMap,
    /// Patterns redacted besides the built-in secrets: `[{ name = "…", pattern = "regex" }]`.
    #[serde(default)]
    pub redact: Vec<UserPattern>,
    /// Source lines sent around each frame.
    #[serde(default = "default_context_lines")]
    pub context_lines: usize,
    /// Bytes of source sent, at most.
    #[serde(default = "default_max_context_bytes")]
    pub max_context_bytes: usize,
    #[serde(default = "default_max_context_files")]
    pub max_context_files: usize,
    /// Overrides of `[model]`.
    #[serde(default)]
    pub model: ModelOverrides,
    /// Overrides of `[repository]`.
    #[serde(default)]
    pub repository: RepositoryOverrides,
    /// Limits on what a fix may touch.
    #[serde(default)]
    pub guard: Guard,
    /// How a fix is checked before it is proposed.
    #[serde(default)]
    pub verify: VerifyConfig,
    /// What the model may read beyond the context sent.
    #[serde(default)]
    pub context: ContextConfig,
}

/// `[sinks.X.context]`: the model may read the repository itself, with tools (opt-in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// `read_file`, `grep` and `list_files`, through the provider's tool calling.
    pub tools: bool,
    /// Rounds of tool calls before the model must answer (each is a model request).
    pub max_tool_rounds: u32,
    /// Bytes of tool results per analysis.
    pub max_tool_bytes: usize,
}

impl Default for ContextConfig {
    fn default() -> Self {
        let defaults = ToolSettings::default();
        ContextConfig {
            tools: defaults.enabled,
            max_tool_rounds: defaults.max_tool_rounds,
            max_tool_bytes: defaults.max_tool_bytes,
        }
    }
}

/// `[sinks.X.verify]`: the checks a fix passes, in a throwaway worktree, before it is proposed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Each changed file checked by its language's own tool (skipped where it is not installed).
    pub syntax_check: bool,
    /// The repository's tests (`python3 -m pytest -q -x`), run by `sh -c` in the worktree.
    pub command: Option<String>,
    /// A command that must fail without the fix and pass with it.
    pub reproduce: Option<String>,
    /// The fix must add or change a test that fails on the unfixed code.
    pub require_test: bool,
    /// Each command's limit.
    pub timeout: ConfigDuration,
    /// Memory of each command, MiB.
    pub max_memory_mib: u64,
    pub max_processes: u64,
    /// Requests after the first, each told why the last answer failed.
    pub repair_rounds: u32,
    /// Propose a fix that failed its checks anyway, labelled unverified.
    pub propose_unverified: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        let limits = verify::Limits::default();
        VerifyConfig {
            syntax_check: true,
            command: None,
            reproduce: None,
            require_test: false,
            timeout: ConfigDuration(limits.timeout),
            max_memory_mib: limits.max_memory >> 20,
            max_processes: limits.max_processes,
            repair_rounds: 2,
            propose_unverified: false,
        }
    }
}

impl VerifyConfig {
    fn settings(&self) -> VerifySettings {
        VerifySettings {
            plan: verify::Plan {
                syntax_check: self.syntax_check,
                command: self.command.clone(),
                reproduce: self.reproduce.clone(),
                require_test: self.require_test,
                limits: verify::Limits {
                    timeout: self.timeout.0,
                    max_memory: self.max_memory_mib.saturating_mul(1 << 20),
                    max_processes: self.max_processes,
                    ..verify::Limits::default()
                },
            },
            repair_rounds: self.repair_rounds,
            propose_unverified: self.propose_unverified,
        }
    }
}

/// Container images put the code in one of a few places; each maps to the repository root.
fn container_path_map() -> PathMap {
    PathMap::new(
        [
            "/app/",
            "/usr/src/app/",
            "/opt/app/",
            "/srv/app/",
            "/workspace/",
            "/home/app/",
        ]
        .into_iter()
        .map(|prefix| (prefix.to_string(), String::new())),
    )
}

fn default_min_occurrences() -> u64 {
    1
}
fn default_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_cooldown() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(24 * 3600))
}
fn default_max_concurrent() -> usize {
    2
}
fn default_max_requests_per_hour() -> u32 {
    20
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_failed_after() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(600))
}
fn default_context_lines() -> usize {
    20
}
fn default_max_context_bytes() -> usize {
    24_000
}
fn default_max_context_files() -> usize {
    5
}

impl SinkConfig for RemediateConfig {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        let model = cx.global.model.with(&self.model);
        let repository = cx.global.repository.with(&self.repository);
        // Built now, once, so that a bad config fails at start, not at the first incident.
        let provider = provider_from_config(&model).map_err(|error| BuildError(error.0))?;
        let repository_client = client_from_config(&repository, &cx.global.agent.data_dir)
            .map_err(|error| BuildError(error.0))?;
        let redactor =
            Redactor::new(&self.redact).map_err(|error| BuildError(format!("redact: {error}")))?;
        let validator = Validator::new(self.guard.clone())
            .map_err(|error| BuildError(format!("guard: {error}")))?;
        Ok(Box::new(RemediateSink {
            config: self.clone(),
            model,
            repository,
            provider,
            repository_client,
            redactor,
            validator: Arc::new(validator),
            metrics: cx.metrics.clone(),
            shutdown_timeout: cx.global.agent.shutdown_timeout.0,
        }))
    }
}

struct RemediateSink {
    config: RemediateConfig,
    model: ModelConfig,
    repository: RepositoryConfig,
    provider: Option<Arc<dyn ModelProvider>>,
    repository_client: Option<Arc<dyn RepositoryClient>>,
    redactor: Redactor,
    validator: Arc<Validator>,
    metrics: MetricsCollector,
    shutdown_timeout: Duration,
}

impl RemediateSink {
    /// The engine, once the sink runs and has the state store (model cache, incidents).
    fn remediator(self, state: StateStore, data_dir: PathBuf) -> Result<Remediator, String> {
        let model = self.provider.map(|provider| {
            ModelService::new(
                provider,
                state.clone(),
                RetryPolicy {
                    max_retries: self.model.max_retries,
                    initial_backoff: self.model.retry_backoff.0,
                    max_backoff: Duration::from_secs(30).max(self.model.retry_backoff.0),
                    max_retry_after: self.model.max_retry_after.0,
                },
                BreakerPolicy {
                    threshold: self.model.circuit_failures.max(1),
                    open_for: self.model.circuit_open_for.0,
                },
                self.metrics.clone(),
            )
        });
        let proposer = self.repository_client.clone().map(|client| {
            Arc::new(RemoteRepositoryService::new(
                client,
                self.validator.clone(),
                self.metrics.clone(),
                self.repository.token.is_set(),
            )) as Arc<dyn Proposer>
        });
        let services = Services {
            model,
            repository: self.repository_client,
            proposer,
            validator: self.validator,
            redactor: self.redactor,
            metrics: self.metrics,
        };
        let config = EngineConfig {
            min_occurrences: self.config.min_occurrences.max(1),
            window: self.config.window.0,
            cooldown: self.config.cooldown.0,
            max_concurrent: self.config.max_concurrent.max(1),
            max_requests_per_hour: self.config.max_requests_per_hour,
            path_map: self.config.path_map,
            base_path: self.repository.base_path,
            budget: ContextBudget {
                lines_around: self.config.context_lines,
                max_bytes: self.config.max_context_bytes,
                max_files: self.config.max_context_files,
            },
            max_attempts: self.config.max_attempts.max(1),
            retry_failed_after: self.config.retry_failed_after.0,
            data_dir,
            verify: self.config.verify.settings(),
            tools: ToolSettings {
                enabled: self.config.context.tools,
                max_tool_rounds: self.config.context.max_tool_rounds,
                max_tool_bytes: self.config.context.max_tool_bytes,
            },
        };
        Remediator::new(config, IncidentStore::new(state), services)
    }
}

impl Sink for RemediateSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let shutdown_timeout = self.shutdown_timeout;
            let mut remediator = self
                .remediator(cx.state.clone(), cx.data_dir.clone())
                .map_err(ComponentError::Other)?;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    batch = cx.input.recv() => match batch {
                        Some(batch) => {
                            for entry in batch.entries() {
                                remediator.observe(entry);
                            }
                            cx.metrics.sent(batch.len());
                        }
                        None => break,
                    },
                    _ = tick.tick() => remediator.tick(),
                }
            }
            remediator.shutdown(shutdown_timeout).await;
            Ok(())
        })
    }
}
