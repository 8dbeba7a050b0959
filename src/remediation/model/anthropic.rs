//! `provider = "anthropic"`: the Messages API (`POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version`). The structured answer is a forced call of one tool whose input schema
//! is the fix's schema; the `tool_use` block's `input` is the fix.

use std::time::Duration;

use serde_json::json;

use super::{
    ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse, retry_after,
    transport_error,
};
use crate::remediation::ProposedFix;

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Name of the tool the model is made to call.
pub const TOOL_NAME: &str = "propose_fix";

pub struct AnthropicProvider {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: String,
    max_tokens: u32,
    timeout: Duration,
}

impl AnthropicProvider {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        model: String,
        max_tokens: u32,
        timeout: Duration,
    ) -> Self {
        AnthropicProvider {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model,
            max_tokens,
            timeout,
        }
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": request.system,
            "messages": [{"role": "user", "content": request.prompt}],
            "tools": [{
                "name": TOOL_NAME,
                "description": "Propose a fix for the incident as content-anchored edits.",
                "input_schema": request.schema,
            }],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        });
        let mut call = self
            .client
            .post(format!("{}/v1/messages", self.base_url))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &self.api_key {
            call = call.header("x-api-key", key);
        }
        let response = call
            .send()
            .await
            .map_err(|error| transport_error(error, self.timeout))?;
        let status = response.status();
        let retry = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|error| transport_error(error, self.timeout))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(ModelError::Http {
                status: status.as_u16(),
                message,
                retry_after: retry,
            });
        }
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| ModelError::Malformed(format!("response is not JSON: {error}")))?;
        let tool_input = answer["content"]
            .as_array()
            .and_then(|blocks| {
                blocks
                    .iter()
                    .find(|block| block["type"] == "tool_use" && block["name"] == TOOL_NAME)
            })
            .map(|block| block["input"].clone())
            .ok_or_else(|| {
                ModelError::Malformed(format!("no `{TOOL_NAME}` tool_use block in the answer"))
            })?;
        let fix: ProposedFix = serde_json::from_value(tool_input).map_err(|error| {
            ModelError::Malformed(format!("tool input does not match the schema: {error}"))
        })?;
        Ok(ModelResponse {
            fix,
            input_tokens: answer["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: answer["usage"]["output_tokens"].as_u64().unwrap_or(0),
            model: answer["model"].as_str().unwrap_or(&self.model).to_string(),
        })
    }
}

impl ModelProvider for AnthropicProvider {
    fn generate_solution<'a>(&'a self, request: &'a ModelRequest) -> ModelFuture<'a> {
        Box::pin(self.call(request))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            provider: "anthropic",
            model: self.model.clone(),
            max_output_tokens: self.max_tokens,
            timeout: self.timeout,
        }
    }
}
