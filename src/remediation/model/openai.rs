//! `provider = "openai"`: the Chat Completions API of OpenAI and of every server that speaks
//! it (Ollama, vLLM, llama.cpp). `base_url` includes `/v1`, as OpenAI's SDKs expect.
//!
//! The answer is asked for as structured output (`response_format: json_schema`, strict);
//! a server that ignores it and answers in prose or a fenced block is still understood. With
//! tools, the model may answer with `tool_calls` first; their results go back as `role: "tool"`
//! messages after the assistant's message that made them.

use serde_json::json;

use super::{
    Endpoint, ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse,
    ToolCall, parse_fix,
};

pub struct OpenAiProvider {
    endpoint: Endpoint,
}

impl OpenAiProvider {
    pub fn new(endpoint: Endpoint) -> Self {
        OpenAiProvider { endpoint }
    }

    async fn call(&self, request: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let endpoint = &self.endpoint;
        let mut messages = vec![
            json!({"role": "system", "content": request.system}),
            json!({"role": "user", "content": request.prompt}),
        ];
        // Earlier rounds of tool use: the assistant's calls, then one `tool` message per call.
        for turn in &request.turns {
            let calls: Vec<serde_json::Value> = turn
                .calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments.to_string()},
                    })
                })
                .collect();
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
            for (call, result) in turn.calls.iter().zip(&turn.results) {
                messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": result}));
            }
        }
        let mut body = json!({
            "model": endpoint.model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "tailfix_fix", "strict": true, "schema": request.schema},
            },
            "max_tokens": endpoint.max_tokens,
            "temperature": 0.2,
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    })
                })
                .collect();
            body["tool_choice"] = json!(if request.final_round { "none" } else { "auto" });
        }
        let mut call = endpoint
            .client
            .post(format!("{}/chat/completions", endpoint.base_url))
            .json(&body);
        if let Some(key) = &endpoint.api_key {
            call = call.bearer_auth(key);
        }
        let answer = endpoint.send(call).await?;
        let message = &answer["choices"][0]["message"];
        if let Some(refusal) = message["refusal"].as_str() {
            return Err(ModelError::Malformed(format!(
                "the model refused: {refusal}"
            )));
        }
        let input_tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        let output_tokens = answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        let tool_calls: Vec<ToolCall> = message["tool_calls"]
            .as_array()
            .map(|calls| {
                calls
                    .iter()
                    .map(|call| {
                        let raw = call["function"]["arguments"].as_str().unwrap_or("{}");
                        ToolCall {
                            id: call["id"].as_str().unwrap_or_default().to_string(),
                            name: call["function"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            // Arguments that are not JSON reach the tool as text, which
                            // refuses them with a reason the model sees.
                            arguments: serde_json::from_str(raw)
                                .unwrap_or_else(|_| serde_json::Value::String(raw.to_string())),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !tool_calls.is_empty() && !request.tools.is_empty() {
            return Ok(ModelResponse::calling_tools(
                tool_calls,
                input_tokens,
                output_tokens,
                endpoint.answering_model(&answer),
            ));
        }
        let content = message["content"]
            .as_str()
            .ok_or_else(|| ModelError::Malformed("no choices[0].message.content".to_string()))?;
        Ok(ModelResponse {
            fix: parse_fix(content)?,
            tool_calls: Vec::new(),
            input_tokens,
            output_tokens,
            model: endpoint.answering_model(&answer),
        })
    }
}

impl ModelProvider for OpenAiProvider {
    fn generate_solution<'a>(&'a self, request: &'a ModelRequest) -> ModelFuture<'a> {
        Box::pin(self.call(request))
    }

    fn model_info(&self) -> ModelInfo {
        self.endpoint.info("openai")
    }
}
