//! Plain config value types: durations, secrets, values parsed from strings, and the global
//! sections of a config file (`[agent]`, `[api]`, `[nodes]`, and the `[model]` and `[repository]`
//! defaults: the seed's `ModelConfig` and `RepositoryConfig`).
//!
//! A leaf of the crate: these are data that any layer may read (a component's config, the
//! runtime, the API); the loader that checks a file and builds components is `config`.
//! Every field has a default, so an empty file is a valid agent that does nothing.

pub mod fields;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::time::parse_duration;
use crate::tls::{ClientTls, ServerTls};

/// A duration written as `"10s"`, `"500ms"`, `"24h"`, or an integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => Ok(ConfigDuration(Duration::from_secs(seconds))),
            Raw::Text(text) => parse_duration(&text).map(ConfigDuration).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration `{text}` (expected e.g. \"500ms\", \"10s\", \"5m\", \"24h\")"
                ))
            }),
        }
    }
}

impl From<ConfigDuration> for Duration {
    fn from(value: ConfigDuration) -> Self {
        value.0
    }
}

/// A size written as `"1GiB"`, `"512MiB"`, `"100MB"`, `"64KiB"`, or an integer number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"<number><unit>"`: units `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) and
    /// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), case-insensitively; spaces are allowed.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" | "ki" => 1 << 10,
            "mib" | "mi" => 1 << 20,
            "gib" | "gi" => 1 << 30,
            "tib" | "ti" => 1 << 40,
            _ => return None,
        };
        let bytes = number * multiplier as f64;
        (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64)
            .then_some(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(bytes) => Ok(ByteSize(bytes)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size `{text}` (expected e.g. \"1GiB\", \"512MiB\", \"100MB\")"
                ))
            }),
        }
    }
}

/// A token or key. Never printed: `Debug` shows only whether it is set.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value, or `None` when it is empty.
    pub fn expose(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }

    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(***)"
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything in one process.
    #[default]
    Standalone,
    /// Ships to an aggregator, registers and heartbeats.
    Agent,
    /// Accepts events from agents and runs remediation for the fleet.
    Aggregator,
}

/// `[agent]`: this process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// This node's id in every entry and at the aggregator.
    pub node_id: String,
    pub mode: Mode,
    /// Where the SQLite state lives (checkpoints, incidents, model cache); created if missing.
    pub data_dir: PathBuf,
    /// `trace` … `error`, or a tracing filter directive; `RUST_LOG` overrides it.
    pub log_level: String,
    /// `mode = "agent"`: the aggregator's base URL.
    pub aggregator: Option<String>,
    /// `mode = "agent"`: bearer token for the aggregator.
    pub aggregator_token: Secret,
    /// `mode = "agent"`: TLS towards the aggregator (registration and the `forward` sink):
    /// `{ ca_file, cert_file, key_file }`.
    pub aggregator_tls: ClientTls,
    pub heartbeat_interval: ConfigDuration,
    /// How long in-flight entries may take to drain at SIGTERM/SIGINT.
    pub shutdown_timeout: ConfigDuration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            node_id: std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "local".to_string()),
            mode: Mode::Standalone,
            data_dir: PathBuf::from("./data"),
            log_level: "info".to_string(),
            aggregator: None,
            aggregator_token: Secret::default(),
            aggregator_tls: ClientTls::default(),
            heartbeat_interval: ConfigDuration(Duration::from_secs(10)),
            shutdown_timeout: ConfigDuration(Duration::from_secs(30)),
        }
    }
}

/// `[api]`: the HTTP server for health, metrics and the `/api/v1` endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    pub enabled: bool,
    pub address: SocketAddr,
    /// When set, every `/api/v1` request needs `Authorization: Bearer <token>`.
    pub token: Secret,
    /// On a non-loopback address without `token`: an API that takes events refuses to start,
    /// and any other serves `/health` and `/metrics` only, unless this is set.
    pub allow_unauthenticated: bool,
    /// Largest request body accepted (compressed), in bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Serve HTTPS: `{ cert_file, key_file, ca_file, verify_client }` (with `verify_client`,
    /// only clients with a certificate from `ca_file` get in: mutual TLS for the fleet).
    pub tls: Option<ServerTls>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            address: SocketAddr::from(([127, 0, 0, 1], 9598)),
            token: Secret::default(),
            allow_unauthenticated: false,
            max_body_bytes: 10 * 1024 * 1024,
            tls: None,
        }
    }
}

/// `[nodes]`: when an aggregator considers a node stale or lost.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NodesConfig {
    pub stale_after: ConfigDuration,
    pub lost_after: ConfigDuration,
    /// Nodes the registry keeps at most; registrations beyond are refused (503).
    pub max_nodes: usize,
    /// A node not seen for this long is forgotten.
    pub forget_after: ConfigDuration,
}

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            stale_after: ConfigDuration(Duration::from_secs(30)),
            lost_after: ConfigDuration(Duration::from_secs(120)),
            max_nodes: 10_000,
            forget_after: ConfigDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

/// The seed's `ModelConfig`: which language model remediation asks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// `openai` (any OpenAI-compatible server), `anthropic`, or `none` (report only).
    pub provider: String,
    pub api_key: Secret,
    /// `openai`: includes `/v1`; `anthropic`: the host only.
    pub base_url: Option<String>,
    pub timeout: ConfigDuration,
    pub model: String,
    /// Most tokens in an answer.
    pub max_tokens: u32,
    /// Retries of a request that may pass (429, 5xx, timeouts).
    pub max_retries: u32,
    /// First backoff between retries (doubling, with jitter).
    pub retry_backoff: ConfigDuration,
    /// A longer `retry-after` is not waited for: the incident is retried later instead.
    pub max_retry_after: ConfigDuration,
    /// Failed attempts in a row that open the circuit breaker.
    pub circuit_failures: u32,
    /// How long the open breaker lets no request through.
    pub circuit_open_for: ConfigDuration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            provider: "none".to_string(),
            api_key: Secret::default(),
            base_url: None,
            timeout: ConfigDuration(Duration::from_secs(120)),
            model: String::new(),
            max_tokens: 4096,
            max_retries: 3,
            retry_backoff: ConfigDuration(Duration::from_secs(1)),
            max_retry_after: ConfigDuration(Duration::from_secs(60)),
            circuit_failures: 5,
            circuit_open_for: ConfigDuration(Duration::from_secs(60)),
        }
    }
}

/// Sets each named field of `merged` that `overrides` sets (an `Option` there, a value here).
macro_rules! take_overrides {
    ($merged:ident, $overrides:ident, $($field:ident),* $(,)?) => {$(
        if let Some(value) = &$overrides.$field {
            $merged.$field = value.clone();
        }
    )*};
}

/// `[sinks.ID.model]`: keys set here override `[model]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModelOverrides {
    pub provider: Option<String>,
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
    pub timeout: Option<ConfigDuration>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub max_retries: Option<u32>,
    pub retry_backoff: Option<ConfigDuration>,
    pub max_retry_after: Option<ConfigDuration>,
    pub circuit_failures: Option<u32>,
    pub circuit_open_for: Option<ConfigDuration>,
}

impl ModelConfig {
    /// This config with `overrides` applied.
    pub fn with(&self, overrides: &ModelOverrides) -> ModelConfig {
        let mut merged = self.clone();
        take_overrides!(
            merged,
            overrides,
            provider,
            api_key,
            timeout,
            model,
            max_tokens,
            max_retries,
            retry_backoff,
            max_retry_after,
            circuit_failures,
            circuit_open_for
        );
        if overrides.base_url.is_some() {
            merged.base_url = overrides.base_url.clone();
        }
        merged
    }
}

/// The seed's `RepositoryConfig`: where fixes are proposed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RepositoryConfig {
    /// `github`, `gitlab`, `local`, or `none`.
    pub provider: String,
    pub owner: String,
    pub name: String,
    pub token: Secret,
    pub base_path: String,
    pub branch: String,
    pub base_url: Option<String>,
    /// `local`: the git repository on disk.
    pub path: PathBuf,
}

/// `[sinks.ID.repository]`: keys set here override `[repository]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RepositoryOverrides {
    pub provider: Option<String>,
    pub owner: Option<String>,
    pub name: Option<String>,
    pub token: Option<Secret>,
    pub base_path: Option<String>,
    pub branch: Option<String>,
    pub base_url: Option<String>,
    pub path: Option<PathBuf>,
}

impl RepositoryConfig {
    /// This config with `overrides` applied.
    pub fn with(&self, overrides: &RepositoryOverrides) -> RepositoryConfig {
        let mut merged = self.clone();
        take_overrides!(
            merged, overrides, provider, owner, name, token, base_path, branch, path
        );
        if overrides.base_url.is_some() {
            merged.base_url = overrides.base_url.clone();
        }
        merged
    }
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        RepositoryConfig {
            provider: "none".to_string(),
            owner: String::new(),
            name: String::new(),
            token: Secret::default(),
            base_path: String::new(),
            branch: "main".to_string(),
            base_url: None,
            path: PathBuf::from("."),
        }
    }
}

/// Everything outside the component tables, as components see it when they are built.
#[derive(Debug, Clone, Default)]
pub struct GlobalOptions {
    pub agent: AgentConfig,
    pub api: ApiConfig,
    pub nodes: NodesConfig,
    pub model: ModelConfig,
    pub repository: RepositoryConfig,
}

/// For config structs: deserialize a value with `Deserialize` where a `FromStr` exists.
pub fn deserialize_from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_in_both_unit_systems() {
        use super::ByteSize;
        assert_eq!(ByteSize::parse("1GiB"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("512 MiB"), Some(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("100MB"), Some(ByteSize(100_000_000)));
        assert_eq!(ByteSize::parse("1.5kib"), Some(ByteSize(1536)));
        assert_eq!(ByteSize::parse("4096"), Some(ByteSize(4096)));
        assert_eq!(ByteSize::parse("1 parsec"), None);
        assert_eq!(ByteSize::parse("GiB"), None);
    }

    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("ghp_abcdef");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), Some("ghp_abcdef"));
        assert_eq!(Secret::default().expose(), None);
    }
}
