//! Asking a language model for a fix: the seed's `ModelProvider` trait, one file per provider,
//! and the `ModelService` that adds caching, retries and a circuit breaker around one.

pub mod anthropic;
pub mod openai;
pub mod service;
pub mod setup;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::json;

use super::ProposedFix;
use super::Solution;
use super::validate::{FileSource, Rejection, Validator};

/// What is sent: the instructions, the incident with its context, and the answer's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub system: String,
    pub prompt: String,
    pub schema: serde_json::Value,
    /// Tools the model may call before it answers (empty: none).
    pub tools: Vec<ToolSpec>,
    /// The tool calls made so far and what they returned, oldest first.
    pub turns: Vec<ToolTurn>,
    /// No more tool calls: the model must answer now.
    pub final_round: bool,
}

/// A tool the model may call: its name, what it does, and the JSON schema of its input.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: serde_json::Value,
}

/// One call a model made: the provider's id for it, the tool, its input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One round of tool use: the calls of one answer and what each returned, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolTurn {
    pub calls: Vec<ToolCall>,
    pub results: Vec<String>,
}

/// A parsed answer and what it cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelResponse {
    /// The answer; empty when the model called tools instead (`tool_calls`).
    pub fix: ProposedFix,
    /// Tools the model called instead of answering.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model: String,
}

impl ModelResponse {
    /// An answer that calls tools instead of proposing a fix.
    pub fn calling_tools(
        tool_calls: Vec<ToolCall>,
        input_tokens: u64,
        output_tokens: u64,
        model: String,
    ) -> Self {
        ModelResponse {
            fix: ProposedFix::default(),
            tool_calls,
            input_tokens,
            output_tokens,
            model,
        }
    }
}

/// Who answers and within which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub provider: &'static str,
    pub model: String,
    pub max_output_tokens: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// From `retry-after-ms` or `retry-after`.
        retry_after: Option<Duration>,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("network: {0}")]
    Network(String),
    /// The answer is not a fix in the schema: retrying the same question will not help.
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("circuit open after repeated failures; next try in {0:?}")]
    CircuitOpen(Duration),
    #[error("model budget used up ({0} requests per hour)")]
    Budget(u32),
}

impl ModelError {
    /// 408, 409, 429, 5xx (Anthropic's 529 among them), timeouts and network failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelError::Http { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            ModelError::Timeout(_) | ModelError::Network(_) => true,
            ModelError::Malformed(_) | ModelError::CircuitOpen(_) | ModelError::Budget(_) => false,
        }
    }

    pub fn status_label(&self) -> &'static str {
        match self {
            ModelError::Http { status: 429, .. } => "rate_limited",
            ModelError::Http { .. } => "http_error",
            ModelError::Timeout(_) => "timeout",
            ModelError::Network(_) => "network_error",
            ModelError::Malformed(_) => "malformed",
            ModelError::CircuitOpen(_) => "circuit_open",
            ModelError::Budget(_) => "budget",
        }
    }
}

pub type ModelFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ModelResponse, ModelError>> + Send + 'a>>;

/// The seed's `ModelProvider`.
pub trait ModelProvider: Send + Sync {
    fn generate_solution<'a>(&'a self, request: &'a ModelRequest) -> ModelFuture<'a>;

    /// Checks an answer against the repository's files; local, never calls the model.
    fn validate_solution(
        &self,
        fix: &ProposedFix,
        validator: &Validator,
        files: &dyn FileSource,
    ) -> Result<Solution, Rejection> {
        validator.validate(fix, files)
    }

    fn model_info(&self) -> ModelInfo;
}

/// The JSON schema of a `ProposedFix` (strict: every property required, nothing else).
pub fn fix_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "One sentence: what the change does."},
            "root_cause": {"type": "string", "description": "Why the error happens."},
            "confidence": {"type": "number", "description": "0 to 1: how sure you are that the edits fix it safely."},
            "edits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Repository-relative path of a file shown."},
                        "old": {"type": "string", "description": "Exact text found once in the file; empty to create a file."},
                        "new": {"type": "string", "description": "The replacement text."}
                    },
                    "required": ["path", "old", "new"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["summary", "root_cause", "confidence", "edits"],
        "additionalProperties": false
    })
}

/// A fix from a model's text: plain JSON, a fenced ```json block, or the outermost `{…}` in
/// prose (servers that ignore the schema answer in all three ways).
pub fn parse_fix(text: &str) -> Result<ProposedFix, ModelError> {
    let trimmed = text.trim();
    let candidates = [
        Some(trimmed),
        fenced_block(trimmed),
        trimmed
            .find('{')
            .zip(trimmed.rfind('}'))
            .filter(|(start, end)| start < end)
            .map(|(start, end)| &trimmed[start..=end]),
    ];
    let mut last_error = String::from("no JSON object in the answer");
    for candidate in candidates.into_iter().flatten() {
        match serde_json::from_str::<ProposedFix>(candidate) {
            Ok(fix) => return Ok(fix),
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(ModelError::Malformed(last_error))
}

fn fenced_block(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n')? + 1;
    let body = &after[body_start..];
    let end = body.find("```")?;
    Some(body[..end].trim())
}

/// Where and how an HTTP provider reaches its model; the OpenAI and Anthropic wire formats
/// differ only in the request they build and the answer they read.
///
/// An answer is read up to [`MAX_ANSWER_BYTES`] and must be UTF-8 (else it is malformed: no
/// replacement character ever reaches a fix); a server that trickles is cut off by `timeout`,
/// which covers the whole request.
pub struct Endpoint {
    pub client: reqwest::Client,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub max_tokens: u32,
    pub timeout: Duration,
}

/// Largest answer read from a model API. A fix of a few files in JSON is far smaller.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

impl Endpoint {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        model: String,
        max_tokens: u32,
        timeout: Duration,
    ) -> Self {
        Endpoint {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model,
            max_tokens,
            timeout,
        }
    }

    /// Sends `call` and returns the answer's JSON body. An error status becomes
    /// [`ModelError::Http`] with the body's `error.message` and the server's retry hint.
    async fn send(&self, call: reqwest::RequestBuilder) -> Result<serde_json::Value, ModelError> {
        let response = call
            .send()
            .await
            .map_err(|error| transport_error(error, self.timeout))?;
        let status = response.status();
        let retry = retry_after(response.headers());
        // Read in chunks up to a limit: a server that answers gigabytes must not take the
        // agent's memory with it.
        let mut response = response;
        let mut body = Vec::new();
        let mut over_limit = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| transport_error(error, self.timeout))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                over_limit = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(ModelError::Http {
                status: status.as_u16(),
                message: error_message(&String::from_utf8_lossy(&body)),
                retry_after: retry,
            });
        }
        if over_limit {
            return Err(ModelError::Malformed(format!(
                "the answer is over {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        let text = String::from_utf8(body)
            .map_err(|error| ModelError::Malformed(format!("the answer is not UTF-8: {error}")))?;
        serde_json::from_str(&text)
            .map_err(|error| ModelError::Malformed(format!("response is not JSON: {error}")))
    }

    /// The model named in the answer, else the one asked for.
    fn answering_model(&self, answer: &serde_json::Value) -> String {
        answer["model"].as_str().unwrap_or(&self.model).to_string()
    }

    fn info(&self, provider: &'static str) -> ModelInfo {
        ModelInfo {
            provider,
            model: self.model.clone(),
            max_output_tokens: self.max_tokens,
            timeout: self.timeout,
        }
    }
}

/// The `error.message` of an error body (OpenAI's and Anthropic's shape), else the body's start.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds; an HTTP date is not honoured).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(millis) = value("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(millis.max(0.0) / 1000.0));
    }
    value("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|seconds| Duration::from_secs_f64(seconds.max(0.0)))
}

/// Maps a transport error.
pub fn transport_error(error: reqwest::Error, timeout: Duration) -> ModelError {
    if error.is_timeout() {
        ModelError::Timeout(timeout)
    } else {
        ModelError::Network(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = r#"{"summary":"guard","root_cause":"zero","confidence":0.8,"edits":[{"path":"a.py","old":"x","new":"y"}]}"#;

    #[test]
    fn parses_plain_fenced_and_embedded_answers() {
        assert_eq!(parse_fix(FIX).unwrap().edits.len(), 1);
        assert_eq!(
            parse_fix(&format!("Here it is:\n```json\n{FIX}\n```\nDone."))
                .unwrap()
                .summary,
            "guard"
        );
        assert_eq!(
            parse_fix(&format!("Sure! {FIX} Hope it helps"))
                .unwrap()
                .confidence,
            0.8
        );
        assert!(matches!(
            parse_fix("I cannot help with that."),
            Err(ModelError::Malformed(_))
        ));
        assert!(matches!(
            parse_fix(r#"{"summary": "x"}"#),
            Err(ModelError::Malformed(_))
        ));
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }

    #[test]
    fn which_errors_are_retried() {
        let http = |status| ModelError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(
            http(429).is_retryable()
                && http(503).is_retryable()
                && http(529).is_retryable()
                && http(408).is_retryable()
        );
        assert!(!http(400).is_retryable() && !http(401).is_retryable());
        assert!(!ModelError::Malformed(String::new()).is_retryable());
    }
}
