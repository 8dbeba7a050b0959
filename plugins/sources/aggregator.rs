//! `type = "aggregator"`: entries agents send to `POST /api/v1/events` (DESIGN §7). Entries keep
//! the `node_id` and `source` their agent gave them. Each node has a bounded stream of its own
//! (the seed's `LogProcessor`), so one noisy node fills its own buffer, not everyone's; a full
//! buffer is answered 503 and the agent retries.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Source, SourceConfig, SourceContext,
};
use crate::ingest::IngestHub;
use crate::processor::LogProcessor;

#[derive(Debug, Clone, Deserialize)]
pub struct AggregatorConfig {
    /// Batches each node may have waiting before its requests are answered 503.
    #[serde(default = "default_node_buffer_batches")]
    pub node_buffer_batches: usize,
}

fn default_node_buffer_batches() -> usize {
    32
}

impl SourceConfig for AggregatorConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(AggregatorSource {
            config: self.clone(),
        }))
    }
}

struct AggregatorSource {
    config: AggregatorConfig,
}

impl Source for AggregatorSource {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture {
        Box::pin(async move {
            let Some(ingest) = cx.shared.get::<IngestHub>() else {
                return Err(ComponentError::Other(
                    "this agent has no event ingest (`POST /api/v1/events`) to receive from"
                        .to_string(),
                ));
            };
            let processor = Arc::new(LogProcessor::new(
                cx.output.clone(),
                self.config.node_buffer_batches,
            ));
            ingest.install(processor);
            cx.health.running();
            cx.shutdown.cancelled().await;
            // New requests get 503 from now on; what was accepted drains through the pipeline.
            ingest.remove();
            Ok(())
        })
    }
}
