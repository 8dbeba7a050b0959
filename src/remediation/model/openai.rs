//! `provider = "openai"`: the Chat Completions API of OpenAI and of every server that speaks
//! it (Ollama, vLLM, llama.cpp). `base_url` includes `/v1`, as OpenAI's SDKs expect.
//!
//! The answer is asked for as structured output (`response_format: json_schema`, strict);
//! a server that ignores it and answers in prose or a fenced block is still understood.

use std::time::Duration;

use serde_json::json;

use super::{
    ModelError, ModelFuture, ModelInfo, ModelProvider, ModelRequest, ModelResponse, parse_fix,
    retry_after, transport_error,
};

pub struct OpenAiProvider {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: String,
    max_tokens: u32,
    timeout: Duration,
}

impl OpenAiProvider {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        api_key: Option<String>,
        model: String,
        max_tokens: u32,
        timeout: Duration,
    ) -> Self {
        OpenAiProvider {
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
            "messages": [
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.prompt},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "tailfix_fix", "strict": true, "schema": request.schema},
            },
            "max_tokens": self.max_tokens,
            "temperature": 0.2,
        });
        let mut call = self
            .client
            .post(format!("{}/chat/completions", self.base_url))
            .json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
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
            return Err(ModelError::Http {
                status: status.as_u16(),
                message: error_message(&text),
                retry_after: retry,
            });
        }
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| ModelError::Malformed(format!("response is not JSON: {error}")))?;
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
            model: answer["model"].as_str().unwrap_or(&self.model).to_string(),
        })
    }
}

/// The `error.message` of an OpenAI-style error body, else the body's start.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

impl ModelProvider for OpenAiProvider {
    fn generate_solution<'a>(&'a self, request: &'a ModelRequest) -> ModelFuture<'a> {
        Box::pin(self.call(request))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            provider: "openai",
            model: self.model.clone(),
            max_output_tokens: self.max_tokens,
            timeout: self.timeout,
        }
    }
}
