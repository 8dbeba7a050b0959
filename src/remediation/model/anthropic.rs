//! `provider = "anthropic"`: the Messages API (`POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version`). The structured answer is a forced call of one tool whose input schema
//! is the fix's schema; the `tool_use` block's `input` is the fix. With exploration tools, the
//! model may call those first (`tool_choice: any`); their results go back as `tool_result`
//! blocks in the next user message.

use serde_json::json;

use super::{
    Endpoint, ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse,
    ToolCall,
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
        let mut messages = vec![json!({"role": "user", "content": request.prompt})];
        // Earlier rounds: the assistant's `tool_use` blocks, then the user's `tool_result`s.
        for turn in &request.turns {
            let uses: Vec<serde_json::Value> = turn
                .calls
                .iter()
                .map(|call| {
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
                })
                .collect();
            let results: Vec<serde_json::Value> = turn
                .calls
                .iter()
                .zip(&turn.results)
                .map(|(call, result)| {
                    json!({"type": "tool_result", "tool_use_id": call.id, "content": result})
                })
                .collect();
            messages.push(json!({"role": "assistant", "content": uses}));
            messages.push(json!({"role": "user", "content": results}));
        }
        let mut tools = vec![json!({
            "name": TOOL_NAME,
            "description": "Propose a fix for the incident as content-anchored edits.",
            "input_schema": request.schema,
        })];
        tools.extend(request.tools.iter().map(|tool| {
            json!({"name": tool.name, "description": tool.description, "input_schema": tool.parameters})
        }));
        // Exploring: any tool (one of them is the answer); the last round: the answer.
        let tool_choice = if request.tools.is_empty() || request.final_round {
            json!({"type": "tool", "name": TOOL_NAME})
        } else {
            json!({"type": "any"})
        };
        let body = json!({
            "model": endpoint.model,
            "max_tokens": endpoint.max_tokens,
            "system": request.system,
            "messages": messages,
            "tools": tools,
            "tool_choice": tool_choice,
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
        let blocks = answer["content"].as_array().cloned().unwrap_or_default();
        let input_tokens = answer["usage"]["input_tokens"].as_u64().unwrap_or(0);
        let output_tokens = answer["usage"]["output_tokens"].as_u64().unwrap_or(0);
        let answered = blocks
            .iter()
            .find(|block| block["type"] == "tool_use" && block["name"] == TOOL_NAME);
        let Some(block) = answered else {
            let tool_calls: Vec<ToolCall> = blocks
                .iter()
                .filter(|block| block["type"] == "tool_use")
                .filter(|block| request.tools.iter().any(|tool| block["name"] == tool.name))
                .map(|block| ToolCall {
                    id: block["id"].as_str().unwrap_or_default().to_string(),
                    name: block["name"].as_str().unwrap_or_default().to_string(),
                    arguments: block["input"].clone(),
                })
                .collect();
            if tool_calls.is_empty() {
                return Err(ModelError::Malformed(format!(
                    "no `{TOOL_NAME}` tool_use block in the answer"
                )));
            }
            return Ok(ModelResponse::calling_tools(
                tool_calls,
                input_tokens,
                output_tokens,
                endpoint.answering_model(&answer),
            ));
        };
        let fix: ProposedFix = serde_json::from_value(block["input"].clone()).map_err(|error| {
            ModelError::Malformed(format!("tool input does not match the schema: {error}"))
        })?;
        Ok(ModelResponse {
            fix,
            tool_calls: Vec::new(),
            input_tokens,
            output_tokens,
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
