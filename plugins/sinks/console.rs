//! `type = "console"`: entries to standard output (or standard error).

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Sink, SinkConfig, SinkContext,
};
use crate::event::Encoding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleTarget {
    #[default]
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleConfig {
    /// `json` (default) or `text`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `stdout` (default) or `stderr`.
    #[serde(default)]
    pub target: ConsoleTarget,
}

impl SinkConfig for ConsoleConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(ConsoleSink {
            config: self.clone(),
        }))
    }
}

struct ConsoleSink {
    config: ConsoleConfig,
}

impl Sink for ConsoleSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            let mut writer: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match self.config.target
            {
                ConsoleTarget::Stdout => Box::new(tokio::io::stdout()),
                ConsoleTarget::Stderr => Box::new(tokio::io::stderr()),
            };
            let mut buffer = Vec::with_capacity(64 * 1024);
            while let Some(batch) = cx.input.recv().await {
                buffer.clear();
                for entry in batch.entries() {
                    self.config.encoding.encode(entry, &mut buffer);
                }
                let written = async {
                    writer.write_all(&buffer).await?;
                    writer.flush().await
                }
                .await;
                if let Err(error) = written {
                    batch.mark_failed();
                    cx.metrics.error("write_failed");
                    return Err(ComponentError::io("writing to the console", error));
                }
                cx.metrics.sent(batch.len());
            }
            Ok(())
        })
    }
}
