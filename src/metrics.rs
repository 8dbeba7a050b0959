//! Prometheus metrics: the seed's `MetricsCollector` and per-component counter handles.
//!
//! Names and labels are a contract (DESIGN §5): prefix `tailfix_`, labels `component_id`,
//! `component_kind`, `component_type`. Components get a `ComponentMetrics` whose counters are
//! resolved once, so the hot path is an atomic add, not a label lookup.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const COMPONENT_LABELS: [&str; 3] = ["component_id", "component_kind", "component_type"];

/// Whether an operation succeeded, as the `status` label of the operation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Success,
    Failure,
    Timeout,
    Cancelled,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Success => "success",
            OperationStatus::Failure => "failure",
            OperationStatus::Timeout => "timeout",
            OperationStatus::Cancelled => "cancelled",
        }
    }
}

impl<T, E> From<&Result<T, E>> for OperationStatus {
    fn from(result: &Result<T, E>) -> Self {
        if result.is_ok() {
            OperationStatus::Success
        } else {
            OperationStatus::Failure
        }
    }
}

/// The process-wide registry and the metric families every component shares.
#[derive(Clone)]
pub struct MetricsCollector {
    registry: Registry,
    received_events: IntCounterVec,
    received_bytes: IntCounterVec,
    sent_events: IntCounterVec,
    errors: IntCounterVec,
    discarded: IntCounterVec,
    buffer_events: IntGaugeVec,
    operation_duration: HistogramVec,
    operation_total: IntCounterVec,
    files: FileMetricFamilies,
    remediation: RemediationMetricFamilies,
    buffers: BufferMetricFamilies,
}

/// Metric families of sinks' disk buffers, labelled by the sink's id.
#[derive(Clone)]
pub struct BufferMetricFamilies {
    /// `buffer_written_events_total`: events written to disk (and synced, as `fsync` says).
    pub written: IntCounterVec,
    /// `buffer_acknowledged_events_total`: events the sink delivered from the buffer.
    pub acknowledged: IntCounterVec,
    /// `buffer_replayed_events_total`: events read back that an earlier run had written.
    pub replayed: IntCounterVec,
    /// `buffer_corrupt_records_total`: records lost to damage (torn or failing their checksum).
    pub corrupt: IntCounterVec,
    /// `buffer_disk_bytes`: bytes the buffer's segment files hold.
    pub disk_bytes: IntGaugeVec,
}

/// Metric families of remediation and the fleet (DESIGN §5).
#[derive(Clone)]
pub struct RemediationMetricFamilies {
    /// `model_requests_total{provider,status}`
    pub model_requests: IntCounterVec,
    /// `model_tokens_total{direction}`: `input` or `output`.
    pub model_tokens: IntCounterVec,
    /// `incidents_total{state}`: incidents now in each state.
    pub incidents: IntGaugeVec,
    /// `change_requests_total{provider,status}`
    pub change_requests: IntCounterVec,
    /// `nodes{status}`: nodes an aggregator knows, by status.
    pub nodes: IntGaugeVec,
}

/// Metric families of the `file` source, labelled by component and file path.
#[derive(Clone)]
pub struct FileMetricFamilies {
    pub bytes_read: IntCounterVec,
    pub lines: IntCounterVec,
    pub watched: IntGaugeVec,
    pub rotations: IntCounterVec,
    pub truncations: IntCounterVec,
}

impl Default for MetricsCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsCollector {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("tailfix".to_string()), None)
            .expect("the prefix `tailfix` is a valid metric name");
        let labels_with = |extra: &'static str| {
            let mut labels = COMPONENT_LABELS.to_vec();
            labels.push(extra);
            labels
        };
        let received_events = counter_vec(
            &registry,
            "component_received_events_total",
            "Events a component received.",
            &COMPONENT_LABELS,
        );
        let received_bytes = counter_vec(
            &registry,
            "component_received_bytes_total",
            "Bytes a component received.",
            &COMPONENT_LABELS,
        );
        let sent_events = counter_vec(
            &registry,
            "component_sent_events_total",
            "Events a component sent downstream or wrote out.",
            &COMPONENT_LABELS,
        );
        let errors = counter_vec(
            &registry,
            "component_errors_total",
            "Errors a component met, by type.",
            &labels_with("error_type"),
        );
        let discarded = counter_vec(
            &registry,
            "component_discarded_events_total",
            "Events a component dropped, by reason.",
            &labels_with("reason"),
        );
        let buffer_events = IntGaugeVec::new(
            Opts::new(
                "buffer_events",
                "Events waiting in a component's input buffer.",
            ),
            &COMPONENT_LABELS,
        )
        .expect("valid gauge definition");
        register(&registry, buffer_events.clone());
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "operation_duration_seconds",
                "Duration of operations, by name and status.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 180.0,
            ]),
            &["operation", "status"],
        )
        .expect("valid histogram definition");
        register(&registry, operation_duration.clone());
        let operation_total = counter_vec(
            &registry,
            "operation_total",
            "Operations performed, by name and status.",
            &["operation", "status"],
        );
        let file_gauge = IntGaugeVec::new(
            Opts::new("files_watched", "Files a file source currently follows."),
            &["component_id"],
        )
        .expect("valid gauge definition");
        register(&registry, file_gauge.clone());
        let files = FileMetricFamilies {
            bytes_read: counter_vec(
                &registry,
                "file_bytes_read_total",
                "Bytes read from each followed file.",
                &["component_id", "file"],
            ),
            lines: counter_vec(
                &registry,
                "file_lines_total",
                "Lines read from each followed file.",
                &["component_id", "file"],
            ),
            watched: file_gauge,
            rotations: counter_vec(
                &registry,
                "file_rotations_total",
                "Rotations seen: a followed path now names a different file.",
                &["component_id"],
            ),
            truncations: counter_vec(
                &registry,
                "file_truncations_total",
                "Files that shrank below the read position (copytruncate) and were read again from 0.",
                &["component_id"],
            ),
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let vec =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition");
            register(&registry, vec.clone());
            vec
        };
        let remediation = RemediationMetricFamilies {
            model_requests: counter_vec(
                &registry,
                "model_requests_total",
                "Requests to the language model, by provider and outcome.",
                &["provider", "status"],
            ),
            model_tokens: counter_vec(
                &registry,
                "model_tokens_total",
                "Tokens sent to and received from the language model.",
                &["direction"],
            ),
            incidents: gauge_vec("incidents_total", "Incidents, by state.", &["state"]),
            change_requests: counter_vec(
                &registry,
                "change_requests_total",
                "Change requests proposed, by provider and outcome.",
                &["provider", "status"],
            ),
            nodes: gauge_vec(
                "nodes",
                "Nodes known to the aggregator, by status.",
                &["status"],
            ),
        };
        let buffers = BufferMetricFamilies {
            written: counter_vec(
                &registry,
                "buffer_written_events_total",
                "Events a sink's disk buffer wrote (synced as its `fsync` says).",
                &["component_id"],
            ),
            acknowledged: counter_vec(
                &registry,
                "buffer_acknowledged_events_total",
                "Events from a disk buffer that its sink delivered.",
                &["component_id"],
            ),
            replayed: counter_vec(
                &registry,
                "buffer_replayed_events_total",
                "Events a disk buffer read back that an earlier run wrote.",
                &["component_id"],
            ),
            corrupt: counter_vec(
                &registry,
                "buffer_corrupt_records_total",
                "Records of a disk buffer lost to damage: torn, or failing their checksum.",
                &["component_id"],
            ),
            disk_bytes: gauge_vec(
                "buffer_disk_bytes",
                "Bytes a disk buffer's segment files hold.",
                &["component_id"],
            ),
        };
        MetricsCollector {
            registry,
            files,
            remediation,
            buffers,
            received_events,
            received_bytes,
            sent_events,
            errors,
            discarded,
            buffer_events,
            operation_duration,
            operation_total,
        }
    }

    /// Remediation's and the fleet's families.
    pub fn remediation(&self) -> &RemediationMetricFamilies {
        &self.remediation
    }

    /// The `file` source's families.
    pub fn files(&self) -> &FileMetricFamilies {
        &self.files
    }

    /// The disk buffers' families.
    pub fn buffers(&self) -> &BufferMetricFamilies {
        &self.buffers
    }

    /// The registry, for services that add their own metric families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counter handles for one component.
    pub fn component(
        &self,
        id: &str,
        kind: ComponentKind,
        component_type: &str,
    ) -> ComponentMetrics {
        let labels = [id, kind.as_str(), component_type];
        ComponentMetrics {
            labels: [
                id.to_string(),
                kind.as_str().to_string(),
                component_type.to_string(),
            ],
            received_events: self.received_events.with_label_values(&labels),
            received_bytes: self.received_bytes.with_label_values(&labels),
            sent_events: self.sent_events.with_label_values(&labels),
            buffer_events: self.buffer_events.with_label_values(&labels),
            errors: self.errors.clone(),
            discarded: self.discarded.clone(),
        }
    }

    /// The seed's operation record: one histogram observation and one count.
    pub fn record_operation(&self, name: &str, duration: Duration, status: OperationStatus) {
        let labels = [name, status.as_str()];
        self.operation_duration
            .with_label_values(&labels)
            .observe(duration.as_secs_f64());
        self.operation_total.with_label_values(&labels).inc();
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "could not encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    register(registry, vec.clone());
    vec
}

fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, collector: C) {
    if let Err(error) = registry.register(Box::new(collector)) {
        tracing::warn!(%error, "metric registered twice");
    }
}

/// Which part of the pipeline a component is, as the `component_kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    Source,
    Transform,
    Sink,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Transform => "transform",
            ComponentKind::Sink => "sink",
        }
    }

    /// The config table the component is declared in.
    pub fn table(self) -> &'static str {
        match self {
            ComponentKind::Source => "sources",
            ComponentKind::Transform => "transforms",
            ComponentKind::Sink => "sinks",
        }
    }
}

/// One component's counters, resolved once.
#[derive(Clone)]
pub struct ComponentMetrics {
    labels: [String; 3],
    pub received_events: IntCounter,
    pub received_bytes: IntCounter,
    pub sent_events: IntCounter,
    pub buffer_events: IntGauge,
    errors: IntCounterVec,
    discarded: IntCounterVec,
}

impl ComponentMetrics {
    pub fn received(&self, events: usize, bytes: usize) {
        self.received_events.inc_by(events as u64);
        self.received_bytes.inc_by(bytes as u64);
    }

    pub fn sent(&self, events: usize) {
        self.sent_events.inc_by(events as u64);
    }

    pub fn error(&self, error_type: &str) {
        self.errors_by(error_type, 1);
    }

    pub fn errors_by(&self, error_type: &str, count: u64) {
        let [id, kind, component_type] = &self.labels;
        self.errors
            .with_label_values(&[id.as_str(), kind, component_type, error_type])
            .inc_by(count);
    }

    pub fn discarded(&self, reason: &str, events: usize) {
        if events == 0 {
            return;
        }
        let [id, kind, component_type] = &self.labels;
        self.discarded
            .with_label_values(&[id.as_str(), kind, component_type, reason])
            .inc_by(events as u64);
    }

    /// A handle on the errors counter for one type, for threads that count often.
    pub fn error_counter(&self, error_type: &str) -> IntCounter {
        let [id, kind, component_type] = &self.labels;
        self.errors
            .with_label_values(&[id.as_str(), kind, component_type, error_type])
    }

    /// A handle on the discarded counter for one reason, for hot paths that drop often.
    pub fn discarded_counter(&self, reason: &str) -> IntCounter {
        let [id, kind, component_type] = &self.labels;
        self.discarded
            .with_label_values(&[id.as_str(), kind, component_type, reason])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contract_names_and_labels() {
        let collector = MetricsCollector::new();
        let metrics = collector.component("app", ComponentKind::Source, "socket");
        metrics.received(3, 30);
        metrics.discarded("buffer_full", 2);
        collector.record_operation(
            "model_request",
            Duration::from_millis(20),
            OperationStatus::Success,
        );
        let text = collector.render();
        assert!(text.contains(
            "tailfix_component_received_events_total{component_id=\"app\",component_kind=\"source\",component_type=\"socket\"} 3"
        ));
        assert!(text.contains("tailfix_component_received_bytes_total{component_id=\"app\",component_kind=\"source\",component_type=\"socket\"} 30"));
        assert!(text.contains("tailfix_component_discarded_events_total{component_id=\"app\",component_kind=\"source\",component_type=\"socket\",reason=\"buffer_full\"} 2"));
        assert!(
            text.contains(
                "tailfix_operation_total{operation=\"model_request\",status=\"success\"} 1"
            )
        );
        assert!(text.contains("tailfix_operation_duration_seconds_bucket"));
    }
}
