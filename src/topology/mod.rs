//! The pipeline runtime: builds components from a checked `Config`, wires them with bounded
//! channels, runs each as its own task, and shuts them down in order.
//!
//! Shutdown drains instead of dropping: sources are told to stop and send what they hold; once a
//! producer's last `Output` is gone its consumers' channels close, so each transform and sink
//! finishes the batches already queued, flushes and returns. A component that fails is logged
//! with its id and marked failed in `Health`; the others keep running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::component::{
    BuildContext, BuildError, ComponentError, ComponentFuture, Shared, Sink, SinkConfig,
    SinkContext, Source, SourceConfig, SourceContext, Transform, TransformConfig,
};
use crate::config::{ComponentSpec, Config};
use crate::health::{Health, HealthHandle};
use crate::metrics::{ComponentKind, ComponentMetrics, MetricsCollector};
use crate::pipeline::disk_buffer::{BufferMetrics, DiskBuffer, DiskBufferSettings};
use crate::pipeline::{Batch, CHANNEL_BATCHES, Input, Output, WhenFull};
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
        shared: &Shared,
    ) -> Result<RunningTopology, Vec<TopologyError>> {
        let mut builder = TopologyBuilder {
            config,
            metrics,
            errors: Vec::new(),
        };
        let sources = builder.build_sources();
        let transforms = builder.build_transforms();
        let sinks = builder.build_sinks();
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        let mut edges = builder.wire(&sources, &transforms, &sinks);
        let start = Start {
            node_id: Arc::from(config.global.agent.node_id.as_str()),
            data_dir: config.global.agent.data_dir.clone(),
            metrics,
            health,
            state,
            shared,
            shutdown: CancellationToken::new(),
        };
        // Consumers first, so that nothing a source sends waits on a task not yet spawned.
        let mut downstream = start.sinks(sinks, &mut edges);
        downstream.extend(start.transforms(transforms, &mut edges));
        let sources = start.sources(sources, &mut edges);
        Ok(RunningTopology {
            shutdown: start.shutdown,
            sources,
            downstream,
        })
    }

    /// Resolves when every component has finished on its own (e.g. stdin reached its end).
    ///
    /// Cancel-safe: a task is forgotten as soon as it has finished, so `stop` after a cancelled
    /// `finished` never polls a completed `JoinHandle` again (that panics).
    pub async fn finished(&mut self) {
        for tasks in [&mut self.sources, &mut self.downstream] {
            while let Some(task) = tasks.last_mut() {
                let _ = task.await;
                tasks.pop();
            }
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

/// Builds every component of `config` without starting anything (what `validate` checks: TLS
/// certificates and keys, globs, the model and repository sections, tokens where required).
pub fn check(config: &Config, metrics: &MetricsCollector) -> Vec<TopologyError> {
    let mut builder = TopologyBuilder {
        config,
        metrics,
        errors: Vec::new(),
    };
    builder.build_sources();
    builder.build_transforms();
    builder.build_sinks();
    builder.errors
}

/// What may heal but an operator should know of, per component: `sources.app: …`.
pub fn warnings(config: &Config) -> Vec<String> {
    let sources = config.sources.iter().flat_map(|spec| {
        spec.config
            .warnings()
            .into_iter()
            .map(move |w| format!("sources.{}: {w}", spec.id))
    });
    let sinks = config.sinks.iter().flat_map(|spec| {
        spec.config
            .warnings()
            .into_iter()
            .map(move |w| format!("sinks.{}: {w}", spec.id))
    });
    sources.chain(sinks).collect()
}

/// A component built from its spec, waiting to be wired and started.
type Built<'c, S, C> = Vec<(&'c ComponentSpec<S>, C)>;

/// Builds the components of a config, one step per kind, collecting every failure.
struct TopologyBuilder<'c> {
    config: &'c Config,
    metrics: &'c MetricsCollector,
    errors: Vec<TopologyError>,
}

impl<'c> TopologyBuilder<'c> {
    fn build_sources(&mut self) -> Built<'c, dyn SourceConfig, Box<dyn Source>> {
        let config = self.config;
        self.build_each(&config.sources, "source", |spec, cx| spec.build(cx))
    }

    fn build_transforms(&mut self) -> Built<'c, dyn TransformConfig, Box<dyn Transform>> {
        let config = self.config;
        self.build_each(&config.transforms, "transform", |spec, cx| spec.build(cx))
    }

    fn build_sinks(&mut self) -> Built<'c, dyn SinkConfig, Box<dyn Sink>> {
        let config = self.config;
        self.build_each(&config.sinks, "sink", |spec, cx| spec.build(cx))
    }

    fn build_each<S: ?Sized, C>(
        &mut self,
        specs: &'c [ComponentSpec<S>],
        kind: &'static str,
        build: impl Fn(&S, &BuildContext<'_>) -> Result<C, BuildError>,
    ) -> Built<'c, S, C> {
        let mut built = Vec::new();
        for spec in specs {
            let cx = BuildContext {
                id: &spec.id,
                global: &self.config.global,
                metrics: self.metrics,
            };
            match build(&spec.config, &cx) {
                Ok(component) => built.push((spec, component)),
                Err(error) => self.errors.push(TopologyError {
                    kind,
                    id: spec.id.clone(),
                    error,
                }),
            }
        }
        built
    }

    /// Every producer gets an output; every consumer an input channel wired into the outputs
    /// of what it reads from.
    fn wire(
        &self,
        sources: &Built<'c, dyn SourceConfig, Box<dyn Source>>,
        transforms: &Built<'c, dyn TransformConfig, Box<dyn Transform>>,
        sinks: &Built<'c, dyn SinkConfig, Box<dyn Sink>>,
    ) -> Edges<'c> {
        let metrics = self.metrics;
        let mut outputs = HashMap::new();
        let producers = sources
            .iter()
            .map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Source,
                    spec.type_name.as_str(),
                )
            })
            .chain(transforms.iter().map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Transform,
                    spec.type_name.as_str(),
                )
            }));
        for (id, kind, type_name) in producers {
            let m = metrics.component(id, kind, type_name);
            outputs.insert(id, (Output::builder(m.clone()), m));
        }
        let consumers = transforms
            .iter()
            .map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Transform,
                    spec.type_name.as_str(),
                    &spec.inputs,
                    spec.when_full,
                    None,
                )
            })
            .chain(sinks.iter().map(|(spec, _)| {
                (
                    spec.id.as_str(),
                    ComponentKind::Sink,
                    spec.type_name.as_str(),
                    &spec.inputs,
                    spec.when_full,
                    spec.buffer.disk(),
                )
            }));
        let mut inputs = HashMap::new();
        let mut buffers = HashMap::new();
        for (id, kind, type_name, upstream, when_full, disk) in consumers {
            let consumer_metrics = match outputs.get(id) {
                Some((_, m)) => m.clone(),
                None => metrics.component(id, kind, type_name),
            };
            let (sender, receiver) = flume::bounded(CHANNEL_BATCHES);
            // A disk buffer's writer takes everything and applies `when_full` at the disk.
            let when_full = if disk.is_some() {
                WhenFull::Block
            } else {
                when_full
            };
            for producer in upstream {
                if let Some((output, _)) = outputs.get_mut(producer.as_str()) {
                    output.add_target(Arc::from(id), sender.clone(), when_full, &consumer_metrics);
                }
            }
            match disk {
                Some(settings) => {
                    let (to_sink, sink_receiver) = flume::bounded(CHANNEL_BATCHES);
                    inputs.insert(id, Input::new(sink_receiver, consumer_metrics));
                    buffers.insert(id, (settings, receiver, to_sink));
                }
                None => {
                    inputs.insert(id, Input::new(receiver, consumer_metrics));
                }
            }
        }
        Edges {
            outputs: outputs
                .into_iter()
                .map(|(id, (builder, m))| (id, (builder.build(), m)))
                .collect(),
            inputs,
            buffers,
        }
    }
}

/// The wired channels, taken by each component as it starts.
struct Edges<'c> {
    outputs: HashMap<&'c str, (Output, ComponentMetrics)>,
    inputs: HashMap<&'c str, Input>,
    /// Sinks with a disk buffer: its settings, what the producers send, what the sink reads.
    buffers: HashMap<&'c str, PendingBuffer>,
}

type PendingBuffer = (
    DiskBufferSettings,
    flume::Receiver<Batch>,
    flume::Sender<Batch>,
);

/// What starting a component needs: the agent's shared handles and the shutdown signal.
struct Start<'a> {
    node_id: Arc<str>,
    data_dir: PathBuf,
    metrics: &'a MetricsCollector,
    health: &'a Health,
    state: &'a StateStore,
    shared: &'a Shared,
    shutdown: CancellationToken,
}

impl Start<'_> {
    fn sinks(
        &self,
        sinks: Built<'_, dyn SinkConfig, Box<dyn Sink>>,
        edges: &mut Edges<'_>,
    ) -> Vec<JoinHandle<()>> {
        let mut started = Vec::new();
        for (spec, sink) in sinks {
            let Some(input) = edges.inputs.remove(spec.id.as_str()) else {
                continue;
            };
            let metrics = self
                .metrics
                .component(&spec.id, ComponentKind::Sink, &spec.type_name);
            let health_handle = self.health.register(&spec.id, ComponentKind::Sink);
            let cx = SinkContext {
                id: Arc::from(spec.id.as_str()),
                input,
                shutdown: self.shutdown.child_token(),
                metrics,
                health: health_handle.clone(),
                data_dir: self.data_dir.clone(),
                state: self.state.clone(),
            };
            let run = match edges.buffers.remove(spec.id.as_str()) {
                Some(pending) => {
                    let sink_metrics = cx.metrics.clone();
                    self.buffered(&spec.id, pending, &sink_metrics, sink.run(cx))
                }
                None => sink.run(cx),
            };
            health_handle.running();
            started.push(supervise(&spec.id, ComponentKind::Sink, health_handle, run));
        }
        started
    }

    /// Starts a sink's disk buffer; the sink counts as finished once the buffer has saved
    /// where the sink got to.
    fn buffered(
        &self,
        id: &str,
        (settings, upstream, downstream): PendingBuffer,
        sink_metrics: &ComponentMetrics,
        run: ComponentFuture,
    ) -> ComponentFuture {
        let families = self.metrics.buffers();
        let metrics = BufferMetrics {
            written: families.written.with_label_values(&[id]),
            acknowledged: families.acknowledged.with_label_values(&[id]),
            replayed: families.replayed.with_label_values(&[id]),
            corrupt: families.corrupt.with_label_values(&[id]),
            disk_bytes: families.disk_bytes.with_label_values(&[id]),
            input_events: sink_metrics.buffer_events.clone(),
            discarded_full: sink_metrics.discarded_counter("buffer_full"),
            write_errors: sink_metrics.error_counter("buffer_write"),
        };
        let dir = self.data_dir.join("buffers").join(path_safe(id));
        let started = DiskBuffer::start(
            id,
            &dir,
            settings,
            upstream,
            downstream,
            metrics,
            self.shutdown.child_token(),
        );
        match started {
            Ok(buffer) => Box::pin(async move {
                let result = run.await;
                buffer.finished().await;
                result
            }),
            Err(error) => Box::pin(async move { Err(ComponentError::Other(error.to_string())) }),
        }
    }

    fn transforms(
        &self,
        transforms: Built<'_, dyn TransformConfig, Box<dyn Transform>>,
        edges: &mut Edges<'_>,
    ) -> Vec<JoinHandle<()>> {
        let mut started = Vec::new();
        for (spec, mut transform) in transforms {
            let Some(input) = edges.inputs.remove(spec.id.as_str()) else {
                continue;
            };
            let Some((output, metrics)) = edges.outputs.remove(spec.id.as_str()) else {
                continue;
            };
            let health_handle = self.health.register(&spec.id, ComponentKind::Transform);
            health_handle.running();
            let run: ComponentFuture = Box::pin(async move {
                while let Some(mut batch) = input.recv().await {
                    transform.transform(batch.entries_mut(), &metrics);
                    output.send(batch).await;
                }
                Ok(())
            });
            started.push(supervise(
                &spec.id,
                ComponentKind::Transform,
                health_handle,
                run,
            ));
        }
        started
    }

    fn sources(
        &self,
        sources: Built<'_, dyn SourceConfig, Box<dyn Source>>,
        edges: &mut Edges<'_>,
    ) -> Vec<JoinHandle<()>> {
        let mut started = Vec::new();
        for (spec, source) in sources {
            let Some((output, metrics)) = edges.outputs.remove(spec.id.as_str()) else {
                continue;
            };
            if !output.is_connected() {
                tracing::warn!(component_id = %spec.id, "source has no consumers; its entries go nowhere");
            }
            let health_handle = self.health.register(&spec.id, ComponentKind::Source);
            let cx = SourceContext {
                id: Arc::from(spec.id.as_str()),
                node_id: self.node_id.clone(),
                output,
                shutdown: self.shutdown.child_token(),
                metrics,
                health: health_handle.clone(),
                data_dir: self.data_dir.clone(),
                state: self.state.clone(),
                shared: self.shared.clone(),
            };
            started.push(supervise(
                &spec.id,
                ComponentKind::Source,
                health_handle,
                source.run(cx),
            ));
        }
        started
    }
}

/// A component id as a directory name: bytes other than letters, digits, `-`, `_` and `.`
/// are written `%XX`, so no id can name a path outside `data_dir/buffers`.
fn path_safe(id: &str) -> String {
    let mut name = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_')
            || (byte == b'.' && !name.is_empty())
        {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
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
