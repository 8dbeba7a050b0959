//! `type = "console"`: entries to standard output (or standard error).

use std::time::Duration;

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
                // A console that cannot be written (a full pipe's reader gone away, a
                // terminal closed) is retried with backoff: backpressure meanwhile, as for a
                // slow sink, and /health says why. Stopping while failing counts the batch.
                let mut backoff: Option<Duration> = None;
                loop {
                    let written = async {
                        writer.write_all(&buffer).await?;
                        writer.flush().await
                    }
                    .await;
                    let Err(error) = written else {
                        if backoff.is_some() {
                            cx.health.running();
                        }
                        break;
                    };
                    cx.metrics.error("write_failed");
                    if cx.shutdown.is_cancelled() {
                        batch.mark_failed();
                        cx.metrics.discarded("sink_failed", batch.len());
                        return Err(ComponentError::io("writing to the console", error));
                    }
                    let wait = match backoff {
                        Some(wait) => (wait * 2).min(Duration::from_secs(5)),
                        None => {
                            tracing::warn!(component_id = %cx.id, %error, "cannot write to the console; retrying");
                            cx.health
                                .failed(format!("writing to the console: {error} (retrying)"));
                            Duration::from_millis(100)
                        }
                    };
                    backoff = Some(wait);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cx.shutdown.cancelled() => {}
                    }
                }
                cx.metrics.sent(batch.len());
            }
            Ok(())
        })
    }
}
