//! The pipeline runtime: builds components from a checked `Config`, wires them with bounded
//! channels, runs each as its own task, and shuts them down in order.
//!
//! Shutdown drains instead of dropping: sources are told to stop and send what they hold; once a
//! producer's last `Output` is gone its consumers' channels close, so each transform and sink
//! finishes the batches already queued, flushes and returns. A component that fails is logged
//! with its id and marked failed in `Health`; the others keep running.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Services, SinkContext, SourceContext,
};
use crate::config::Config;
use crate::health::{Health, HealthHandle};
use crate::metrics::{ComponentKind, ComponentMetrics, MetricsCollector};
use crate::pipeline::{CHANNEL_BATCHES, Input, Output};
use crate::state::StateStore;

/// A component that could not be built, with its id.
#[derive(Debug, thiserror::Error)]
#[error("{kind}s.{id}: {error}")]
pub struct TopologyError {
    pub kind: &'static str,
    pub id: String,
    pub error: BuildError,
}

/// A running pipeline.
pub struct RunningTopology {
    shutdown: CancellationToken,
    sources: Vec<JoinHandle<()>>,
    downstream: Vec<JoinHandle<()>>,
}

impl RunningTopology {
    /// Builds every component and starts them; nothing starts if any fails to build.
    pub fn start(
        config: &Config,
        metrics: &MetricsCollector,
        health: &Health,
        state: &StateStore,
        services: &Services,
    ) -> Result<RunningTopology, Vec<TopologyError>> {
        let global = &config.global;
        let node_id: Arc<str> = Arc::from(global.agent.node_id.as_str());
        let data_dir = global.agent.data_dir.clone();
        let mut errors = Vec::new();

        let mut built_sources = Vec::new();
        for spec in &config.sources {
            let cx = BuildContext {
                id: &spec.id,
                global,
                metrics,
            };
            match spec.config.build(&cx) {
                Ok(source) => built_sources.push((spec, source)),
                Err(error) => errors.push(TopologyError {
                    kind: "source",
                    id: spec.id.clone(),
                    error,
                }),
            }
        }
        let mut built_transforms = Vec::new();
        for spec in &config.transforms {
            let cx = BuildContext {
                id: &spec.id,
                global,
                metrics,
            };
            match spec.config.build(&cx) {
                Ok(transform) => built_transforms.push((spec, transform)),
                Err(error) => errors.push(TopologyError {
                    kind: "transform",
                    id: spec.id.clone(),
                    error,
                }),
            }
        }
        let mut built_sinks = Vec::new();
        for spec in &config.sinks {
            let cx = BuildContext {
                id: &spec.id,
                global,
                metrics,
            };
            match spec.config.build(&cx) {
                Ok(sink) => built_sinks.push((spec, sink)),
                Err(error) => errors.push(TopologyError {
                    kind: "sink",
                    id: spec.id.clone(),
                    error,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Every producer gets an output; every consumer an input channel wired into the outputs
        // of what it reads from.
        let component_metrics =
            |id: &str, kind: ComponentKind, type_name: &str| metrics.component(id, kind, type_name);
        let mut outputs = HashMap::new();
        for (spec, _) in &built_sources {
            let m = component_metrics(&spec.id, ComponentKind::Source, &spec.type_name);
            outputs.insert(spec.id.as_str(), (Output::builder(m.clone()), m));
        }
        for (spec, _) in &built_transforms {
            let m = component_metrics(&spec.id, ComponentKind::Transform, &spec.type_name);
            outputs.insert(spec.id.as_str(), (Output::builder(m.clone()), m));
        }
        let mut inputs = HashMap::new();
        let consumers = built_transforms
            .iter()
            .map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Transform,
                    spec.type_name.as_str(),
                    &spec.inputs,
                    spec.when_full,
                )
            })
            .chain(built_sinks.iter().map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Sink,
                    spec.type_name.as_str(),
                    &spec.inputs,
                    spec.when_full,
                )
            }));
        for (id, kind, type_name, upstream, when_full) in consumers {
            let consumer_metrics = match outputs.get(id) {
                Some((_, m)) => m.clone(),
                None => component_metrics(id, kind, type_name),
            };
            let (sender, receiver) = flume::bounded(CHANNEL_BATCHES);
            for producer in upstream {
                if let Some((output, _)) = outputs.get_mut(producer.as_str()) {
                    output.add_target(Arc::from(id), sender.clone(), when_full, &consumer_metrics);
                }
            }
            inputs.insert(id, Input::new(receiver, consumer_metrics));
        }
        let mut outputs: HashMap<&str, (Output, ComponentMetrics)> = outputs
            .into_iter()
            .map(|(id, (builder, m))| (id, (builder.build(), m)))
            .collect();

        let shutdown = CancellationToken::new();
        let mut downstream = Vec::new();
        for (spec, sink) in built_sinks {
            let Some(input) = inputs.remove(spec.id.as_str()) else {
                continue;
            };
            let metrics = component_metrics(&spec.id, ComponentKind::Sink, &spec.type_name);
            let health_handle = health.register(&spec.id, ComponentKind::Sink);
            let cx = SinkContext {
                id: Arc::from(spec.id.as_str()),
                input,
                metrics,
                health: health_handle.clone(),
                data_dir: data_dir.clone(),
                state: state.clone(),
            };
            health_handle.running();
            downstream.push(supervise(
                &spec.id,
                ComponentKind::Sink,
                health_handle,
                sink.run(cx),
            ));
        }
        for (spec, mut transform) in built_transforms {
            let Some(input) = inputs.remove(spec.id.as_str()) else {
                continue;
            };
            let Some((output, metrics)) = outputs.remove(spec.id.as_str()) else {
                continue;
            };
            let health_handle = health.register(&spec.id, ComponentKind::Transform);
            health_handle.running();
            let run: ComponentFuture = Box::pin(async move {
                while let Some(mut batch) = input.recv().await {
                    transform.transform(batch.entries_mut(), &metrics);
                    output.send(batch).await;
                }
                Ok(())
            });
            downstream.push(supervise(
                &spec.id,
                ComponentKind::Transform,
                health_handle,
                run,
            ));
        }
        let mut sources = Vec::new();
        for (spec, source) in built_sources {
            let Some((output, metrics)) = outputs.remove(spec.id.as_str()) else {
                continue;
            };
            if !output.is_connected() {
                tracing::warn!(component_id = %spec.id, "source has no consumers; its entries go nowhere");
            }
            let health_handle = health.register(&spec.id, ComponentKind::Source);
            let cx = SourceContext {
                id: Arc::from(spec.id.as_str()),
                node_id: node_id.clone(),
                output,
                shutdown: shutdown.child_token(),
                metrics,
                health: health_handle.clone(),
                data_dir: data_dir.clone(),
                state: state.clone(),
                services: services.clone(),
            };
            sources.push(supervise(
                &spec.id,
                ComponentKind::Source,
                health_handle,
                source.run(cx),
            ));
        }
        Ok(RunningTopology {
            shutdown,
            sources,
            downstream,
        })
    }

    /// Resolves when every component has finished on its own (e.g. stdin reached its end).
    pub async fn finished(&mut self) {
        for handle in self.sources.iter_mut().chain(self.downstream.iter_mut()) {
            let _ = handle.await;
        }
    }

    /// Stops the sources and waits up to `timeout` for everything in flight to reach the sinks.
    /// Returns `false` if the deadline passed first (what was still queued is lost).
    pub async fn stop(self, timeout: Duration) -> bool {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut drained = true;
        for handle in self.sources.into_iter().chain(self.downstream) {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                abort.abort();
                drained = false;
            }
        }
        drained
    }
}

/// Runs a component's future as a task; reports how it ended to `Health` and the log.
fn supervise(
    id: &str,
    kind: ComponentKind,
    health: HealthHandle,
    run: ComponentFuture,
) -> JoinHandle<()> {
    let id = id.to_string();
    let task = tokio::spawn(run);
    tokio::spawn(async move {
        let guard = CancelOnDrop(Some(task.abort_handle()));
        let result = match task.await {
            Ok(result) => result,
            Err(join_error) if join_error.is_panic() => Err(ComponentError::Other(format!(
                "panicked: {}",
                panic_message(join_error.into_panic())
            ))),
            Err(_) => Ok(()),
        };
        guard.disarm();
        match result {
            Ok(()) => {
                tracing::debug!(component_id = %id, component_kind = kind.as_str(), "component finished");
                health.stopped();
            }
            Err(error) => {
                tracing::error!(component_id = %id, component_kind = kind.as_str(), %error, "component failed");
                health.failed(error.to_string());
            }
        }
    })
}

/// Aborts the component's task if its supervisor is aborted first (shutdown deadline).
struct CancelOnDrop(Option<tokio::task::AbortHandle>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
