//! `type = "stdin"`: lines from standard input, until it ends.

use serde::Deserialize;

use super::{LineBatcher, default_max_line_bytes, read_lines};
use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Source, SourceConfig, SourceContext,
};
use crate::framing::StreamFramer;
use crate::multiline::MultilineConfig;
use crate::parse::format::Format;

#[derive(Debug, Clone, Deserialize)]
pub struct StdinConfig {
    /// Longer lines are cut to this many bytes (counted in `component_errors_total`).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How lines are parsed: `auto` (default), `text`, `json`, `logfmt`, `syslog`, `cri`, `docker`.
    #[serde(default)]
    pub format: Format,
    /// Join stack traces: `"none"` (default), `"auto"`, or `{ start_pattern = "…" }`.
    #[serde(default)]
    pub multiline: MultilineConfig,
}

impl SourceConfig for StdinConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(StdinSource {
            config: self.clone(),
        }))
    }
}

struct StdinSource {
    config: StdinConfig,
}

impl Source for StdinSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            cx.health.running();
            let mut batcher = LineBatcher::new(
                cx.id.clone(),
                cx.node_id.clone(),
                cx.metrics.clone(),
                self.config.format,
            )
            .with_multiline(&self.config.multiline);
            read_lines(
                tokio::io::stdin(),
                StreamFramer::lines(self.config.max_line_bytes),
                &mut batcher,
                &cx.output,
                &cx.shutdown,
                None,
            )
            .await
            .map_err(|error| ComponentError::io("reading stdin", error))
        })
    }
}
