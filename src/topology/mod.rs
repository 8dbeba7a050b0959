//! The pipeline runtime: builds components from a checked `Config`, wires them with bounded
//! channels, runs each as its own task, and shuts them down in order.
//!
//! Shutdown drains instead of dropping: sources are told to stop and send what they hold; once a
//! producer's last `Output` is gone its consumers' channels close, so each transform and sink
//! finishes the batches already queued, flushes and returns. A component that fails is logged
//! with its id and marked failed in `Health`; the others keep running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
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
use crate::pipeline::{Batch, CHANNEL_BATCHES, Input, Output, WeakOutput, WhenFull};
use crate::state::StateStore;

/// A component that could not be built, with its id.
#[derive(Debug, thiserror::Error)]
#[error("{kind}s.{id}: {error}")]
pub struct TopologyError {
    pub kind: &'static str,
    pub id: String,
    pub error: BuildError,
}

/// A running pipeline, which a reload changes in place.
pub struct RunningTopology {
    shutdown: CancellationToken,
    node_id: Arc<str>,
    data_dir: PathBuf,
    metrics: MetricsCollector,
    health: Health,
    state: StateStore,
    shared: Shared,
    components: BTreeMap<String, Running>,
    /// Tasks of components a reload removed, still finishing what they hold.
    retired: Vec<JoinHandle<()>>,
    /// Disk buffers, which outlive a replaced sink, by sink id.
    buffers: BTreeMap<String, RunningBuffer>,
    /// The global sections components are built from; when they change, every component is.
    global_identity: String,
    /// How long a replaced component gets to hand over what it holds.
    handover: Duration,
}

/// One running component and what a reload needs to replace or rewire it.
struct Running {
    kind: ComponentKind,
    identity: String,
    metrics: ComponentMetrics,
    /// A producer's output, held weakly: a reload changes its consumers.
    output: Option<WeakOutput>,
    /// A consumer's channel.
    channel: Option<Channel>,
    /// A source stops reading when cancelled; a consumer's input is detached.
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// A consumer's channel, held weakly: it closes as it would without a runtime watching it
/// (once its producers are gone, or its consumer is).
struct Channel {
    sender: flume::WeakSender<Batch>,
    receiver: Weak<flume::Receiver<Batch>>,
}

/// A consumer's channel as a reload opens it: what the consumer reads, what producers send on.
type Opened = (Arc<flume::Receiver<Batch>>, flume::WeakSender<Batch>);

struct RunningBuffer {
    settings: DiskBufferSettings,
    buffer: DiskBuffer,
}

/// What a reload changed, by component id.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// What was not applied and why (a sink's `buffer` changes at the next restart).
    pub warnings: Vec<String>,
}

/// What the config wants of one component.
struct Wanted<'c> {
    kind: ComponentKind,
    type_name: &'c str,
    identity: &'c str,
    inputs: &'c [String],
    when_full: WhenFull,
}

fn wanted(config: &Config) -> BTreeMap<&str, Wanted<'_>> {
    let mut wanted = BTreeMap::new();
    for spec in &config.sources {
        wanted.insert(spec.id.as_str(), Wanted::of(spec, ComponentKind::Source));
    }
    for spec in &config.transforms {
        wanted.insert(spec.id.as_str(), Wanted::of(spec, ComponentKind::Transform));
    }
    for spec in &config.sinks {
        wanted.insert(spec.id.as_str(), Wanted::of(spec, ComponentKind::Sink));
    }
    wanted
}

impl<'c> Wanted<'c> {
    fn of<C: ?Sized>(spec: &'c ComponentSpec<C>, kind: ComponentKind) -> Self {
        Wanted {
            kind,
            type_name: &spec.type_name,
            identity: &spec.identity,
            inputs: &spec.inputs,
            when_full: spec.when_full,
        }
    }
}

fn global_identity(config: &Config) -> String {
    let global = &config.global;
    format!(
        "{:?}\n{:?}\n{:?}",
        global.agent, global.model, global.repository
    )
}

impl RunningTopology {
    /// Builds every component and starts them; nothing starts if any fails to build.
    pub async fn start(
        config: &Config,
        metrics: &MetricsCollector,
        health: &Health,
        state: &StateStore,
        shared: &Shared,
    ) -> Result<RunningTopology, Vec<TopologyError>> {
        let mut topology = RunningTopology {
            shutdown: CancellationToken::new(),
            node_id: Arc::from(config.global.agent.node_id.as_str()),
            data_dir: config.global.agent.data_dir.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            state: state.clone(),
            shared: shared.clone(),
            components: BTreeMap::new(),
            retired: Vec::new(),
            buffers: BTreeMap::new(),
            global_identity: global_identity(config),
            handover: config.global.agent.shutdown_timeout.0,
        };
        topology.reload(config).await?;
        Ok(topology)
    }

    /// Changes the running pipeline into the one `config` describes. Only components whose
    /// config changed (their table, the files they name, the global sections) are rebuilt;
    /// the others keep running, and nothing queued between them is lost. If any new component
    /// fails to build, nothing changes.
    pub async fn reload(&mut self, config: &Config) -> Result<Changes, Vec<TopologyError>> {
        let wanted = wanted(config);
        let everything = global_identity(config) != self.global_identity;
        let mut changes = Changes::default();
        for (id, running) in &self.components {
            match wanted.get(id.as_str()) {
                Some(want) if want.kind == running.kind => {
                    if everything || want.identity != running.identity {
                        changes.changed.push(id.clone());
                    }
                }
                _ => changes.removed.push(id.clone()),
            }
        }
        for id in wanted.keys() {
            let kept = self
                .components
                .get(*id)
                .is_some_and(|running| running.kind == wanted[id].kind);
            if !kept {
                changes.added.push(id.to_string());
            }
        }
        let rebuild: HashSet<&str> = changes
            .added
            .iter()
            .chain(&changes.changed)
            .map(String::as_str)
            .collect();

        let collector = self.metrics.clone();
        let mut builder = TopologyBuilder {
            config,
            metrics: &collector,
            errors: Vec::new(),
        };
        let only = |id: &str| rebuild.contains(id);
        let sources =
            builder.build_some(&config.sources, "source", &only, |spec, cx| spec.build(cx));
        let transforms = builder.build_some(&config.transforms, "transform", &only, |spec, cx| {
            spec.build(cx)
        });
        let sinks = builder.build_some(&config.sinks, "sink", &only, |spec, cx| spec.build(cx));
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        self.global_identity = global_identity(config);

        // Every channel that stays is held open through the reload: replacing its producers
        // must not close it under its consumer.
        let removed: HashSet<&str> = changes.removed.iter().map(String::as_str).collect();
        let mut senders: HashMap<String, flume::Sender<Batch>> = self
            .components
            .iter()
            .filter(|(id, _)| !removed.contains(id.as_str()))
            .filter_map(|(id, running)| {
                Some((id.clone(), running.channel.as_ref()?.sender.upgrade()?))
            })
            .collect();

        // Sources first: they stop reading and send what they hold, so nothing is in a source's
        // hands while its consumers change.
        for id in changes.changed.iter().chain(&changes.removed) {
            if let Some(running) = self.components.get_mut(id)
                && running.kind == ComponentKind::Source
            {
                running.stop.cancel();
                finish(&mut running.task, self.handover).await;
            }
        }
        for id in &changes.removed {
            let Some(mut running) = self.components.remove(id) else {
                continue;
            };
            self.health.remove(id);
            if let Some(buffer) = self.buffers.remove(id) {
                // What its sink has not taken stays on disk for when it comes back.
                buffer.buffer.stop();
                self.retired.push(tokio::spawn(buffer.buffer.finished()));
            }
            // A removed consumer drains what is queued for it once the rewiring below drops its
            // producers' senders; a removed producer's output goes with it.
            if let Some(task) = running.task.take() {
                self.retired.push(task);
            }
        }

        // Replaced consumers hand their channel over: the old one is detached and finishes
        // what it holds, the new one reads on from there.
        let mut handed_over: HashMap<String, Arc<flume::Receiver<Batch>>> = HashMap::new();
        for id in &changes.changed {
            let Some(running) = self.components.get_mut(id) else {
                continue;
            };
            if running.kind == ComponentKind::Source {
                continue;
            }
            let receiver = running.channel.as_ref().and_then(|c| c.receiver.upgrade());
            running.stop.cancel();
            finish(&mut running.task, self.handover).await;
            if let Some(receiver) = receiver {
                handed_over.insert(id.clone(), receiver);
            }
        }

        // Channels for the consumers that need one; strong senders until the rewiring.
        let mut receivers: HashMap<String, Opened> = HashMap::new();
        for (spec, _) in &transforms {
            self.open_channel(&spec.id, &mut handed_over, &mut senders, &mut receivers);
        }
        for (spec, _) in &sinks {
            let buffered = self.buffers.contains_key(&spec.id);
            match (spec.buffer.disk(), buffered) {
                (Some(settings), false) => {
                    let (sender, upstream) = flume::bounded(CHANNEL_BATCHES);
                    let (to_sink, receiver) = flume::bounded(CHANNEL_BATCHES);
                    let metrics =
                        self.metrics
                            .component(&spec.id, ComponentKind::Sink, &spec.type_name);
                    match self.start_buffer(&spec.id, settings.clone(), upstream, to_sink, &metrics)
                    {
                        Ok(buffer) => {
                            self.buffers
                                .insert(spec.id.clone(), RunningBuffer { settings, buffer });
                        }
                        Err(error) => {
                            self.health
                                .register(&spec.id, ComponentKind::Sink)
                                .failed(error.to_string());
                            tracing::error!(component_id = %spec.id, %error, "cannot open the disk buffer");
                            continue;
                        }
                    }
                    receivers.insert(spec.id.clone(), (Arc::new(receiver), sender.downgrade()));
                    senders.insert(spec.id.clone(), sender);
                    handed_over.remove(&spec.id);
                }
                (wanted_buffer, true) => {
                    if self.buffers.get(&spec.id).map(|b| &b.settings) != wanted_buffer.as_ref() {
                        changes.warnings.push(format!(
                            "sinks.{}: a change of `buffer` takes effect at the next restart",
                            spec.id
                        ));
                    }
                    self.open_channel(&spec.id, &mut handed_over, &mut senders, &mut receivers);
                }
                (None, false) => {
                    self.open_channel(&spec.id, &mut handed_over, &mut senders, &mut receivers);
                }
            }
        }

        // New producers get their outputs, everything is wired, and only then does anything
        // new start: a batch sent before its consumer runs waits in the channel, where one sent
        // on an output not yet wired would be lost.
        let transform_outputs: Vec<(Output, ComponentMetrics)> = transforms
            .iter()
            .map(|(spec, _)| {
                let metrics =
                    self.metrics
                        .component(&spec.id, ComponentKind::Transform, &spec.type_name);
                (Output::detached(metrics.clone()), metrics)
            })
            .collect();
        let source_outputs: Vec<(Output, ComponentMetrics)> = sources
            .iter()
            .map(|(spec, _)| {
                let metrics =
                    self.metrics
                        .component(&spec.id, ComponentKind::Source, &spec.type_name);
                (Output::detached(metrics.clone()), metrics)
            })
            .collect();
        let producers = transforms
            .iter()
            .map(|(spec, _)| spec.id.as_str())
            .zip(&transform_outputs)
            .chain(
                sources
                    .iter()
                    .map(|(spec, _)| spec.id.as_str())
                    .zip(&source_outputs),
            )
            .map(|(id, (output, metrics))| (id, output, metrics));
        self.rewire(&wanted, &senders, producers);
        drop(senders);
        for (spec, sink) in sinks {
            let Some(opened) = receivers.remove(&spec.id) else {
                continue;
            };
            self.start_sink(spec, sink, opened, &wanted);
        }
        for ((spec, transform), (output, metrics)) in transforms.into_iter().zip(transform_outputs)
        {
            let Some(opened) = receivers.remove(&spec.id) else {
                continue;
            };
            self.start_transform(spec, transform, opened, output, metrics, &wanted);
        }
        for ((spec, source), (output, metrics)) in sources.into_iter().zip(source_outputs) {
            self.start_source(spec, source, output, metrics);
        }
        for id in changes.added.iter().chain(&changes.changed) {
            if let Some(running) = self.components.get(id)
                && running.kind == ComponentKind::Source
                && running
                    .output
                    .as_ref()
                    .and_then(|o| o.upgrade(&running.metrics))
                    .is_some_and(|o| !o.is_connected())
            {
                tracing::warn!(component_id = %id, "source has no consumers; its entries go nowhere");
            }
        }
        Ok(changes)
    }

    /// The channel a consumer will read: the one its predecessor read, or a new one.
    fn open_channel(
        &self,
        id: &str,
        handed_over: &mut HashMap<String, Arc<flume::Receiver<Batch>>>,
        senders: &mut HashMap<String, flume::Sender<Batch>>,
        receivers: &mut HashMap<String, Opened>,
    ) {
        // The channel its predecessor read goes on, if producers can still send on it.
        let kept = handed_over.remove(id).and_then(|receiver| {
            let sender = self
                .components
                .get(id)?
                .channel
                .as_ref()?
                .sender
                .upgrade()?;
            Some((receiver, sender))
        });
        let (receiver, sender) = match kept {
            Some(kept) => kept,
            None => {
                let (sender, receiver) = flume::bounded(CHANNEL_BATCHES);
                (Arc::new(receiver), sender)
            }
        };
        receivers.insert(id.to_string(), (receiver, sender.downgrade()));
        senders.insert(id.to_string(), sender);
    }

    /// Sets every producer's consumers to what `wanted` says.
    fn rewire<'p>(
        &'p self,
        wanted: &BTreeMap<&str, Wanted<'_>>,
        fresh: &HashMap<String, flume::Sender<Batch>>,
        starting: impl Iterator<Item = (&'p str, &'p Output, &'p ComponentMetrics)>,
    ) {
        let starting: Vec<_> = starting.collect();
        let ids: HashSet<&str> = starting.iter().map(|(id, _, _)| *id).collect();
        let running: Vec<(&str, Output, &ComponentMetrics)> = self
            .components
            .iter()
            .filter(|(id, _)| !ids.contains(id.as_str()))
            .filter_map(|(id, running)| {
                let output = running.output.as_ref()?.upgrade(&running.metrics)?;
                Some((id.as_str(), output, &running.metrics))
            })
            .collect();
        let producers = running
            .iter()
            .map(|(id, output, metrics)| (*id, output, *metrics))
            .chain(starting);
        for (producer, output, producer_metrics) in producers {
            let mut targets = Output::builder(producer_metrics.clone());
            for (consumer, want) in wanted {
                if !want.inputs.iter().any(|input| input == producer) {
                    continue;
                }
                let sender = fresh.get(*consumer).cloned().or_else(|| {
                    self.components
                        .get(*consumer)?
                        .channel
                        .as_ref()?
                        .sender
                        .upgrade()
                });
                let Some(sender) = sender else {
                    continue;
                };
                // A disk buffer's writer takes everything and applies `when_full` at the disk.
                let when_full = if self.buffers.contains_key(*consumer) {
                    WhenFull::Block
                } else {
                    want.when_full
                };
                let consumer_metrics = self.metrics.component(consumer, want.kind, want.type_name);
                targets.add_target(Arc::from(*consumer), sender, when_full, &consumer_metrics);
            }
            output.rewire(targets);
        }
    }

    fn start_buffer(
        &self,
        id: &str,
        settings: DiskBufferSettings,
        upstream: flume::Receiver<Batch>,
        downstream: flume::Sender<Batch>,
        sink_metrics: &ComponentMetrics,
    ) -> Result<DiskBuffer, crate::pipeline::disk_buffer::OpenError> {
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
        DiskBuffer::start(
            id,
            &dir,
            settings,
            upstream,
            downstream,
            metrics,
            self.shutdown.child_token(),
        )
    }

    fn start_sink(
        &mut self,
        spec: &ComponentSpec<dyn SinkConfig>,
        sink: Box<dyn Sink>,
        (receiver, sender): Opened,
        wanted: &BTreeMap<&str, Wanted<'_>>,
    ) {
        let metrics = self
            .metrics
            .component(&spec.id, ComponentKind::Sink, &spec.type_name);
        let stop = CancellationToken::new();
        let input = Input::shared(receiver, metrics.clone(), stop.clone());
        let channel = Channel {
            sender,
            receiver: input.channel(),
        };
        let health = self.health.register(&spec.id, ComponentKind::Sink);
        let cx = SinkContext {
            id: Arc::from(spec.id.as_str()),
            input,
            shutdown: self.shutdown.child_token(),
            metrics: metrics.clone(),
            health: health.clone(),
            data_dir: self.data_dir.clone(),
            state: self.state.clone(),
        };
        health.running();
        let task = supervise(&spec.id, ComponentKind::Sink, health, sink.run(cx));
        self.insert(
            spec.id.as_str(),
            wanted,
            metrics,
            None,
            Some(channel),
            stop,
            task,
        );
    }

    fn start_transform(
        &mut self,
        spec: &ComponentSpec<dyn TransformConfig>,
        mut transform: Box<dyn Transform>,
        (receiver, sender): Opened,
        output: Output,
        metrics: ComponentMetrics,
        wanted: &BTreeMap<&str, Wanted<'_>>,
    ) {
        let stop = CancellationToken::new();
        let input = Input::shared(receiver, metrics.clone(), stop.clone());
        let channel = Channel {
            sender,
            receiver: input.channel(),
        };
        let health = self.health.register(&spec.id, ComponentKind::Transform);
        health.running();
        let sending = output.clone();
        let transform_metrics = metrics.clone();
        let run: ComponentFuture = Box::pin(async move {
            while let Some(mut batch) = input.recv().await {
                transform.transform(batch.entries_mut(), &transform_metrics);
                sending.send(batch).await;
            }
            Ok(())
        });
        let task = supervise(&spec.id, ComponentKind::Transform, health, run);
        self.insert(
            spec.id.as_str(),
            wanted,
            metrics,
            Some(output.downgrade()),
            Some(channel),
            stop,
            task,
        );
    }

    fn start_source(
        &mut self,
        spec: &ComponentSpec<dyn SourceConfig>,
        source: Box<dyn Source>,
        output: Output,
        metrics: ComponentMetrics,
    ) {
        let stop = self.shutdown.child_token();
        let health = self.health.register(&spec.id, ComponentKind::Source);
        let cx = SourceContext {
            id: Arc::from(spec.id.as_str()),
            node_id: self.node_id.clone(),
            output: output.clone(),
            shutdown: stop.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            data_dir: self.data_dir.clone(),
            state: self.state.clone(),
            shared: self.shared.clone(),
        };
        let task = supervise(&spec.id, ComponentKind::Source, health, source.run(cx));
        let running = Running {
            kind: ComponentKind::Source,
            identity: spec.identity.clone(),
            metrics,
            output: Some(output.downgrade()),
            channel: None,
            stop,
            task: Some(task),
        };
        self.components.insert(spec.id.clone(), running);
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        id: &str,
        wanted: &BTreeMap<&str, Wanted<'_>>,
        metrics: ComponentMetrics,
        output: Option<WeakOutput>,
        channel: Option<Channel>,
        stop: CancellationToken,
        task: JoinHandle<()>,
    ) {
        let Some(want) = wanted.get(id) else {
            return;
        };
        self.components.insert(
            id.to_string(),
            Running {
                kind: want.kind,
                identity: want.identity.to_string(),
                metrics,
                output,
                channel,
                stop,
                task: Some(task),
            },
        );
    }

    /// Resolves when every component has finished on its own (e.g. stdin reached its end).
    ///
    /// Cancel-safe: a task is forgotten as soon as it has finished, so `stop` after a cancelled
    /// `finished` never polls a completed `JoinHandle` again (that panics).
    pub async fn finished(&mut self) {
        for running in self.components.values_mut() {
            if let Some(task) = &mut running.task {
                let _ = task.await;
                running.task = None;
            }
        }
        while let Some(task) = self.retired.last_mut() {
            let _ = task.await;
            self.retired.pop();
        }
    }

    /// Stops the sources and waits up to `timeout` for everything in flight to reach the sinks.
    /// Returns `false` if the deadline passed first (what was still queued is lost).
    pub async fn stop(mut self, timeout: Duration) -> bool {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut drained = true;
        let (sources, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.components)
            .into_values()
            .partition(|running| running.kind == ComponentKind::Source);
        let tasks = sources
            .into_iter()
            .chain(others)
            .filter_map(|running| running.task)
            .chain(self.retired);
        for handle in tasks {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                abort.abort();
                drained = false;
            }
        }
        for (_, buffer) in self.buffers {
            if tokio::time::timeout_at(deadline, buffer.buffer.finished())
                .await
                .is_err()
            {
                drained = false;
            }
        }
        drained
    }
}

/// Waits for a replaced component's task to finish what it holds; aborts it after `limit`.
async fn finish(task: &mut Option<JoinHandle<()>>, limit: Duration) {
    let Some(handle) = task.take() else {
        return;
    };
    let abort = handle.abort_handle();
    if tokio::time::timeout(limit, handle).await.is_err() {
        tracing::warn!(
            ?limit,
            "a replaced component did not finish in time; aborted"
        );
        abort.abort();
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
        self.build_some(specs, kind, &|_| true, build)
    }

    /// As `build_each`, for the components whose id `only` accepts.
    fn build_some<S: ?Sized, C>(
        &mut self,
        specs: &'c [ComponentSpec<S>],
        kind: &'static str,
        only: &dyn Fn(&str) -> bool,
        build: impl Fn(&S, &BuildContext<'_>) -> Result<C, BuildError>,
    ) -> Built<'c, S, C> {
        let mut built = Vec::new();
        for spec in specs.iter().filter(|spec| only(&spec.id)) {
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
