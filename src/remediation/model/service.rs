//! The seed's `ModelService`: a provider with what every caller needs around it.
//!
//! * A persistent cache keyed by a hash of the request: the same incident and context are
//!   never sent twice, not even across restarts.
//! * Retries of what may pass (408, 409, 429, 5xx and Anthropic's 529, timeouts, network
//!   errors) with exponential backoff and full jitter, honouring `retry-after-ms` and
//!   `retry-after` up to a bound.
//! * A circuit breaker: after `threshold` failed attempts in a row no request is sent for
//!   `open_for`; then one trial request decides whether it closes again.
//! * Metrics: `model_requests_total{provider,status}`, `model_tokens_total{direction}` and the
//!   `operation_*` families for `model_request`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use super::{ModelError, ModelProvider, ModelRequest, ModelResponse};
use crate::fingerprint::fnv1a_128;
use crate::metrics::{MetricsCollector, OperationStatus};
use crate::state::StateStore;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A longer `retry-after` is not waited for: the attempt fails and the incident is retried
    /// later.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    pub threshold: u32,
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 5,
            open_for: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
struct Breaker {
    policy: BreakerPolicy,
    failures: u32,
    open_until: Option<Instant>,
    /// Half-open: one trial request is under way.
    trial: bool,
}

impl Breaker {
    /// Whether a request may go out now; `Err` says how long until it may.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.open_until {
            Some(until) if now < until => Err(until - now),
            Some(_) if self.trial => Err(self.policy.open_for),
            Some(_) => {
                self.trial = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.trial = false;
    }

    fn failure(&mut self, now: Instant) {
        self.failures += 1;
        if self.trial || self.failures >= self.policy.threshold {
            self.open_until = Some(now + self.policy.open_for);
            self.trial = false;
            tracing::warn!(failures = self.failures, open_for = ?self.policy.open_for, "model circuit breaker open");
        }
    }

    fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

pub struct ModelService {
    provider: Arc<dyn ModelProvider>,
    state: StateStore,
    retry: RetryPolicy,
    breaker: Mutex<Breaker>,
    metrics: MetricsCollector,
}

impl ModelService {
    pub fn new(
        provider: Arc<dyn ModelProvider>,
        state: StateStore,
        retry: RetryPolicy,
        breaker: BreakerPolicy,
        metrics: MetricsCollector,
    ) -> Self {
        ModelService {
            provider,
            state,
            retry,
            breaker: Mutex::new(Breaker {
                policy: breaker,
                failures: 0,
                open_until: None,
                trial: false,
            }),
            metrics,
        }
    }

    pub fn provider(&self) -> &dyn ModelProvider {
        self.provider.as_ref()
    }

    /// The cache key of a request: provider, model and every byte sent.
    pub fn cache_key(&self, request: &ModelRequest) -> String {
        let info = self.provider.model_info();
        let schema = request.schema.to_string();
        // A conversation with tools is keyed by its tools and every turn so far too.
        let tools: Vec<&str> = request.tools.iter().map(|tool| tool.name).collect();
        let turns = serde_json::to_string(&request.turns).unwrap_or_default();
        let conversation = if tools.is_empty() && request.turns.is_empty() {
            String::new()
        } else {
            format!("{}|{turns}|{}", tools.join(","), request.final_round)
        };
        let mut parts = vec![
            info.provider.as_bytes(),
            info.model.as_bytes(),
            request.system.as_bytes(),
            request.prompt.as_bytes(),
            schema.as_bytes(),
        ];
        if !conversation.is_empty() {
            parts.push(conversation.as_bytes());
        }
        let hash = fnv1a_128(&parts);
        format!("{hash:032x}")
    }

    fn cached(&self, key: &str) -> Option<ModelResponse> {
        let text: Option<String> = self
            .state
            .with_connection(|connection| {
                connection
                    .query_row(
                        "SELECT response FROM model_cache WHERE key = ?1",
                        params![key],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .ok()
            .flatten();
        text.and_then(|text| serde_json::from_str(&text).ok())
    }

    fn remember(&self, key: &str, response: &ModelResponse) {
        let Ok(text) = serde_json::to_string(response) else {
            return;
        };
        let provider = self.provider.model_info().provider;
        let stored = self.state.with_connection(|connection| {
            connection.execute(
                "INSERT OR REPLACE INTO model_cache (key, provider, response, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key, provider, text, Timestamp::now().0],
            )
        });
        if let Err(error) = stored {
            tracing::warn!(%error, "cannot cache the model's answer");
        }
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn circuit_open(&self) -> bool {
        self.lock_breaker().is_open()
    }

    fn count(&self, status: &str) {
        let provider = self.provider.model_info().provider;
        self.metrics
            .remediation()
            .model_requests
            .with_label_values(&[provider, status])
            .inc();
    }

    /// The answer to `request`: from the cache, or from the provider with retries. The second
    /// value says whether it came from the cache.
    pub async fn solve(&self, request: &ModelRequest) -> Result<(ModelResponse, bool), ModelError> {
        let key = self.cache_key(request);
        if let Some(response) = self.cached(&key) {
            self.count("cached");
            return Ok((response, true));
        }
        let timeout = self.provider.model_info().timeout;
        let mut attempt = 0;
        loop {
            if let Err(wait) = self.lock_breaker().admit(Instant::now()) {
                self.count("circuit_open");
                return Err(ModelError::CircuitOpen(wait));
            }
            let started = Instant::now();
            let result =
                match tokio::time::timeout(timeout, self.provider.generate_solution(request)).await
                {
                    Ok(result) => result,
                    Err(_) => Err(ModelError::Timeout(timeout)),
                };
            let elapsed = started.elapsed();
            match result {
                Ok(response) => {
                    self.lock_breaker().success();
                    self.count("success");
                    self.metrics.record_operation(
                        "model_request",
                        elapsed,
                        OperationStatus::Success,
                    );
                    let tokens = &self.metrics.remediation().model_tokens;
                    tokens
                        .with_label_values(&["input"])
                        .inc_by(response.input_tokens);
                    tokens
                        .with_label_values(&["output"])
                        .inc_by(response.output_tokens);
                    self.remember(&key, &response);
                    return Ok((response, false));
                }
                Err(error) => {
                    self.count(error.status_label());
                    let status = if matches!(error, ModelError::Timeout(_)) {
                        OperationStatus::Timeout
                    } else {
                        OperationStatus::Failure
                    };
                    self.metrics
                        .record_operation("model_request", elapsed, status);
                    if error.is_retryable() {
                        self.lock_breaker().failure(Instant::now());
                    }
                    let wait = self.backoff(attempt, &error);
                    match wait {
                        Some(wait) if attempt < self.retry.max_retries && error.is_retryable() => {
                            tracing::info!(%error, attempt, ?wait, "model request failed; retrying");
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
    }

    /// How long to wait before the next attempt, or `None` if the server asks for too long.
    fn backoff(&self, attempt: u32, error: &ModelError) -> Option<Duration> {
        if let ModelError::Http {
            retry_after: Some(wait),
            ..
        } = error
        {
            return (*wait <= self.retry.max_retry_after).then_some(*wait);
        }
        let exponential = self
            .retry
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        let capped = exponential.min(self.retry.max_backoff);
        // Full jitter: anywhere in [capped/2, capped], so many agents do not retry in step.
        Some(capped.mul_f64(0.5 + 0.5 * jitter()))
    }
}

/// A number in [0, 1) from the clock's low bits: enough to spread retries, no crate needed.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 10_000) as f64 / 10_000.0
}
