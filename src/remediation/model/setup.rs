//! From a `[model]` section (DESIGN §4) to the provider it names: the one place that knows which
//! `provider` values exist and what each needs, so that adding a provider touches this module
//! and the provider's own file, never the `remediate` sink.

use std::sync::Arc;

use super::anthropic::AnthropicProvider;
use super::openai::OpenAiProvider;
use super::{Endpoint, ModelProvider};
use crate::http;
use crate::remediation::SetupError;
use crate::settings::ModelConfig;

/// The provider `model` names, or `None` for `provider = "none"` (report only).
pub fn provider_from_config(
    model: &ModelConfig,
) -> Result<Option<Arc<dyn ModelProvider>>, SetupError> {
    let endpoint = |default_base_url: &str| -> Result<Endpoint, SetupError> {
        if model.model.is_empty() {
            return Err(SetupError(format!(
                "model provider `{}` needs `model`",
                model.provider
            )));
        }
        let client = http::client(model.timeout.0)
            .map_err(|error| SetupError(format!("HTTP client: {error}")))?;
        Ok(Endpoint::new(
            client,
            model.base_url.as_deref().unwrap_or(default_base_url),
            model.api_key.expose().map(str::to_string),
            model.model.clone(),
            model.max_tokens,
            model.timeout.0,
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
        other => Err(SetupError(format!(
            "unknown model provider `{other}`, expected `openai`, `anthropic` or `none`"
        ))),
    }
}
