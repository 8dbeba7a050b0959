//! `type = "remediate"`: turns recurring errors into incidents and proposed fixes (DESIGN §6).
//! The work is done by `remediation::engine`; this sink builds it from config, feeds it the
//! entries, and ticks it once a second.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Sink, SinkConfig, SinkContext,
};
use crate::http;
use crate::metrics::MetricsCollector;
use crate::remediation::context::{ContextBudget, PathMap};
use crate::remediation::engine::{EngineConfig, Proposer, Remediator, Services};
use crate::remediation::incident::IncidentStore;
use crate::remediation::model::anthropic::AnthropicProvider;
use crate::remediation::model::openai::OpenAiProvider;
use crate::remediation::model::service::{BreakerPolicy, ModelService, RetryPolicy};
use crate::remediation::model::{Endpoint, ModelProvider};
use crate::remediation::redact::{Redactor, UserPattern};
use crate::remediation::repository::RepositoryClient;
use crate::remediation::repository::github::GitHubRepository;
use crate::remediation::repository::gitlab::GitLabRepository;
use crate::remediation::repository::local::LocalRepository;
use crate::remediation::repository::service::RemoteRepositoryService;
use crate::remediation::validate::{Guard, Validator};
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

/// The provider a model config names.
pub fn model_provider(model: &ModelConfig) -> Result<Option<Arc<dyn ModelProvider>>, BuildError> {
    let timeout = model.timeout.0;
    let client =
        || http::client(timeout).map_err(|error| BuildError(format!("HTTP client: {error}")));
    let api_key = model.api_key.expose().map(str::to_string);
    let require_model = || {
        if model.model.is_empty() {
            Err(BuildError(format!(
                "model provider `{}` needs `model`",
                model.provider
            )))
        } else {
            Ok(())
        }
    };
    let endpoint = |default_base_url: &str| -> Result<Endpoint, BuildError> {
        require_model()?;
        Ok(Endpoint::new(
            client()?,
            model.base_url.as_deref().unwrap_or(default_base_url),
            api_key.clone(),
            model.model.clone(),
            model.max_tokens,
            timeout,
        ))
    };
    match model.provider.as_str() {
        "none" => Ok(None),
        "openai" => Ok(Some(Arc::new(OpenAiProvider::new(endpoint(
            "https://api.openai.com/v1",
        )?)))),
        "anthropic" => Ok(Some(Arc::new(AnthropicProvider::new(endpoint(
            "https://api.anthropic.com",
        )?)))),
        other => Err(BuildError(format!(
            "unknown model provider `{other}`, expected `openai`, `anthropic` or `none`"
        ))),
    }
}

/// The token and API address a hosted provider (`github`, `gitlab`) needs, checked.
fn hosted_repository<'a>(
    repository: &'a RepositoryConfig,
    default_base_url: &'a str,
) -> Result<(&'a str, &'a str), BuildError> {
    let provider = &repository.provider;
    let token = repository.token.expose().ok_or_else(|| {
        let variable = provider.to_uppercase();
        BuildError(format!(
            "repository provider `{provider}` needs a `token` (from the environment, e.g. ${{{variable}_TOKEN}})"
        ))
    })?;
    if repository.owner.is_empty() || repository.name.is_empty() {
        return Err(BuildError(format!(
            "repository provider `{provider}` needs `owner` and `name`"
        )));
    }
    let base_url = repository.base_url.as_deref().unwrap_or(default_base_url);
    Ok((token, base_url))
}

/// The repository client a repository config names.
pub fn repository_client(
    repository: &RepositoryConfig,
    data_dir: &std::path::Path,
) -> Result<Option<Arc<dyn RepositoryClient>>, BuildError> {
    match repository.provider.as_str() {
        "none" => Ok(None),
        "local" => Ok(Some(Arc::new(
            LocalRepository::new(repository.path.clone(), repository.branch.clone())
                .with_proposals_dir(data_dir.join("incidents")),
        ))),
        "github" => {
            let (token, base_url) = hosted_repository(repository, "https://api.github.com")?;
            let client = GitHubRepository::new(
                base_url,
                token,
                repository.owner.clone(),
                repository.name.clone(),
                repository.branch.clone(),
            )
            .map_err(|error| BuildError(error.to_string()))?;
            Ok(Some(Arc::new(client)))
        }
        "gitlab" => {
            let (token, base_url) = hosted_repository(repository, "https://gitlab.com")?;
            let client = GitLabRepository::new(
                base_url,
                token,
                &repository.owner,
                &repository.name,
                repository.branch.clone(),
            )
            .map_err(|error| BuildError(error.to_string()))?;
            Ok(Some(Arc::new(client)))
        }
        other => Err(BuildError(format!(
            "unknown repository provider `{other}`, expected `github`, `gitlab`, `local` or `none`"
        ))),
    }
}

impl SinkConfig for RemediateConfig {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        let model = cx.global.model.with(&self.model);
        let repository = cx.global.repository.with(&self.repository);
        // Checked now so that a bad config fails at start, not at the first incident.
        model_provider(&model)?;
        repository_client(&repository, &cx.global.agent.data_dir)?;
        Redactor::new(&self.redact).map_err(|error| BuildError(format!("redact: {error}")))?;
        Validator::new(self.guard.clone())
            .map_err(|error| BuildError(format!("guard: {error}")))?;
        Ok(Box::new(RemediateSink {
            config: self.clone(),
            model,
            repository,
            metrics: cx.metrics.clone(),
            shutdown_timeout: cx.global.agent.shutdown_timeout.0,
        }))
    }
}

struct RemediateSink {
    config: RemediateConfig,
    model: ModelConfig,
    repository: RepositoryConfig,
    metrics: MetricsCollector,
    shutdown_timeout: Duration,
}

impl RemediateSink {
    fn remediator(
        &self,
        state: StateStore,
        data_dir: std::path::PathBuf,
    ) -> Result<Remediator, BuildError> {
        let provider = model_provider(&self.model)?;
        let model = provider.map(|provider| {
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
        let repository = repository_client(&self.repository, &data_dir)?;
        let proposer = repository.clone().map(|client| {
            Arc::new(RemoteRepositoryService::new(
                client,
                Validator::new(self.config.guard.clone()).expect("checked when the sink was built"),
                self.metrics.clone(),
                self.repository.token.is_set(),
            )) as Arc<dyn Proposer>
        });
        let services = Services {
            model,
            repository,
            proposer,
            validator: Validator::new(self.config.guard.clone())
                .map_err(|error| BuildError(error.to_string()))?,
            redactor: Redactor::new(&self.config.redact)
                .map_err(|error| BuildError(error.to_string()))?,
            metrics: self.metrics.clone(),
        };
        let config = EngineConfig {
            min_occurrences: self.config.min_occurrences.max(1),
            window: self.config.window.0,
            cooldown: self.config.cooldown.0,
            max_concurrent: self.config.max_concurrent.max(1),
            max_requests_per_hour: self.config.max_requests_per_hour,
            path_map: self.config.path_map.clone(),
            base_path: self.repository.base_path.clone(),
            budget: ContextBudget {
                lines_around: self.config.context_lines,
                max_bytes: self.config.max_context_bytes,
                max_files: self.config.max_context_files,
            },
            max_attempts: self.config.max_attempts.max(1),
            retry_failed_after: self.config.retry_failed_after.0,
            data_dir,
        };
        Remediator::new(config, IncidentStore::new(state), services).map_err(BuildError)
    }
}

impl Sink for RemediateSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut remediator = self
                .remediator(cx.state.clone(), cx.data_dir.clone())
                .map_err(|error| ComponentError::Other(error.0))?;
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
            remediator.shutdown(self.shutdown_timeout).await;
            Ok(())
        })
    }
}
