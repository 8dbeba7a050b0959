//! `type = "blackhole"`: reads and discards entries, optionally at a fixed `rate` (events per
//! second) so that a slow consumer and its backpressure can be tested and measured.

use std::time::Duration;

use serde::Deserialize;

use crate::component::{BuildContext, BuildError, ComponentFuture, Sink, SinkConfig, SinkContext};

#[derive(Debug, Clone, Deserialize)]
pub struct BlackholeConfig {
    /// Consume at most this many events per second; unlimited when unset.
    #[serde(default)]
    pub rate: Option<f64>,
}

impl SinkConfig for BlackholeConfig {
    fn build(&self, _cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError> {
        if self
            .rate
            .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
        {
            return Err(BuildError(
                "`rate` must be a positive number of events per second".to_string(),
            ));
        }
        Ok(Box::new(BlackholeSink { rate: self.rate }))
    }
}

struct BlackholeSink {
    rate: Option<f64>,
}

impl Sink for BlackholeSink {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture {
        Box::pin(async move {
            // Pacing against a start instant (not a sleep per batch) keeps the long-run rate
            // exact whatever the batch sizes.
            let started = tokio::time::Instant::now();
            let mut consumed = 0f64;
            while let Some(batch) = cx.input.recv().await {
                consumed += batch.len() as f64;
                cx.metrics.sent(batch.len());
                drop(batch);
                if let Some(rate) = self.rate {
                    let due = started + Duration::from_secs_f64(consumed / rate);
                    tokio::time::sleep_until(due).await;
                }
            }
            Ok(())
        })
    }
}
