//! `provider = "anthropic"`: the Messages API (`POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version`). The structured answer is a forced call of one tool whose input schema
//! is the fix's schema; the `tool_use` block's `input` is the fix.

use serde_json::json;

use super::{
    Endpoint, ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse,
};
use crate::remediation::ProposedFix;

/// The API version this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Name of the tool the model is made to call.
pub const TOOL_NAME: &str = "propose_fix";

pub struct AnthropicProvider {
    endpoint: Endpoint,
}

impl AnthropicProvider {
    pub fn new(endpoint: Endpoint) -> Self {
        AnthropicProvider { endpoint }
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let endpoint = &self.endpoint;
        let body = json!({
            "model": endpoint.model,
            "max_tokens": endpoint.max_tokens,
            "system": request.system,
            "messages": [{"role": "user", "content": request.prompt}],
            "tools": [{
                "name": TOOL_NAME,
                "description": "Propose a fix for the incident as content-anchored edits.",
                "input_schema": request.schema,
            }],
            "tool_choice": {"type": "tool", "name": TOOL_NAME},
        });
        let mut call = endpoint
            .client
            .post(format!("{}/v1/messages", endpoint.base_url))
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &endpoint.api_key {
            call = call.header("x-api-key", key);
        }
        let answer = endpoint.send(call).await?;
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
            model: endpoint.answering_model(&answer),
        })
    }
}

impl ModelProvider for AnthropicProvider {
    fn generate_solution<'a>(&'a self, request: &'a ModelRequest) -> ModelFuture<'a> {
        Box::pin(self.call(request))
    }

    fn model_info(&self) -> ModelInfo {
        self.endpoint.info("anthropic")
    }
}
