//! `provider = "openai"`: the Chat Completions API of OpenAI and of every server that speaks
//! it (Ollama, vLLM, llama.cpp). `base_url` includes `/v1`, as OpenAI's SDKs expect.
//!
//! The answer is asked for as structured output (`response_format: json_schema`, strict);
//! a server that ignores it and answers in prose or a fenced block is still understood.

use serde_json::json;

use super::{
    Endpoint, ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse,
    parse_fix,
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
        let body = json!({
            "model": endpoint.model,
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "tailfix_fix", "strict": true, "schema": request.schema},
            },
            "max_tokens": endpoint.max_tokens,
            "temperature": 0.2,
        });
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
        let content = message["content"]
            .as_str()
            .ok_or_else(|| ModelError::Malformed("no choices[0].message.content".to_string()))?;
        Ok(ModelResponse {
            fix: parse_fix(content)?,
            input_tokens: answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: answer["usage"]["completion_tokens"].as_u64().unwrap_or(0),
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
