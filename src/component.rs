//! The traits every component implements, and what the runtime hands each one.
//!
//! A component knows only these: its config type (`SourceConfig`, `TransformConfig`,
//! `SinkConfig`) builds it, and its context gives it channels, metrics, health and shutdown.
//! Components never see each other; the runtime wires them through the registry.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::event::LogEntry;
use crate::health::HealthHandle;
use crate::metrics::{ComponentMetrics, MetricsCollector};
use crate::pipeline::{Input, Output};
use crate::settings::GlobalOptions;
use crate::state::StateStore;

/// Why a running component stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl ComponentError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ComponentError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a component could not be built from a valid config (e.g. a file that cannot be opened).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

pub type ComponentFuture = Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send>>;

/// A network resource a component binds; two components may not claim the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Tcp(address) => write!(f, "tcp://{address}"),
            Resource::Udp(address) => write!(f, "udp://{address}"),
        }
    }
}

/// A set of shared handles, one per type, that the agent hands its components.
///
/// The runtime carries it without knowing what is inside, so a handle only one component uses
/// (the aggregator source's ingest hub) does not make the runtime, or every other component,
/// depend on that component's concerns.
#[derive(Clone, Default)]
pub struct Shared {
    handles: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Shared {
    pub fn insert<T: Any + Send + Sync>(&mut self, handle: T) {
        self.handles.insert(TypeId::of::<T>(), Arc::new(handle));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.handles.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("handles", &self.handles.len())
            .finish()
    }
}

/// What a config needs to build its component.
pub struct BuildContext<'a> {
    pub id: &'a str,
    pub global: &'a GlobalOptions,
    pub metrics: &'a MetricsCollector,
}

pub trait SourceConfig: Debug + Send + Sync {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, BuildError>;

    /// Files the component reads its configuration from (TLS certificates, programs): a
    /// reload rebuilds it when one changes, and `--watch-config` watches them.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Addresses this source listens on.
    fn resources(&self) -> Vec<Resource> {
        Vec::new()
    }

    /// Conditions that may heal but that an operator should know of (a directory that does
    /// not exist yet), checked without binding or reading: `validate` prints them, `run` logs
    /// them.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

pub trait TransformConfig: Debug + Send + Sync {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Transform>, BuildError>;

    /// As `SourceConfig::files`.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

pub trait SinkConfig: Debug + Send + Sync {
    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn Sink>, BuildError>;

    /// As `SourceConfig::files`.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// As `SourceConfig::warnings` (an output directory that cannot be written).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Everything a running source gets.
pub struct SourceContext {
    pub id: Arc<str>,
    pub node_id: Arc<str>,
    pub output: Output,
    /// Cancelled when the agent shuts down: stop reading, send what is in hand, return.
    pub shutdown: CancellationToken,
    pub metrics: ComponentMetrics,
    pub health: HealthHandle,
    pub data_dir: PathBuf,
    /// The agent's state store (checkpoints, incidents).
    pub state: StateStore,
    /// Handles the agent shares with the one component that needs each (the API's event
    /// ingest hub for the `aggregator` source); the runtime passes them on without knowing them.
    pub shared: Shared,
}

/// Everything a running sink gets. The input closes once every upstream is done: a sink
/// drains it, flushes, and returns.
pub struct SinkContext {
    pub id: Arc<str>,
    pub input: Input,
    /// Cancelled when the agent starts to stop. A sink still drains its input after it; a sink
    /// that is failing and retrying gives up then, counting what it could not deliver.
    pub shutdown: CancellationToken,
    pub metrics: ComponentMetrics,
    pub health: HealthHandle,
    pub data_dir: PathBuf,
    pub state: StateStore,
}

pub trait Source: Send {
    fn run(self: Box<Self>, cx: SourceContext) -> ComponentFuture;
}

/// A synchronous step applied to each batch in place: filter, enrich, drop.
pub trait Transform: Send {
    /// Rewrites `entries`; entries removed must be counted in `metrics.discarded`.
    fn transform(&mut self, entries: &mut Vec<LogEntry>, metrics: &ComponentMetrics);
}

pub trait Sink: Send {
    fn run(self: Box<Self>, cx: SinkContext) -> ComponentFuture;
}
