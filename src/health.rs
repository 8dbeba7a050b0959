//! Component health, as `GET /health` reports it.
//!
//! The agent is healthy once every source is listening and no component has failed. A failed
//! component is logged with its id and listed here; the others keep running.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::metrics::ComponentKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Starting,
    Running,
    /// Finished on its own (a source at end of input) or at shutdown.
    Stopped,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    pub kind: &'static str,
    pub status: ComponentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which instance of the component this row is about: one replaced by a reload may still
    /// report how it ended, and must not overwrite its successor's row.
    #[serde(skip)]
    generation: u64,
}

/// How the last reload of the config went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// `applied` or `failed`.
    pub status: &'static str,
    /// When (RFC 3339).
    pub at: String,
    /// Why it failed: the same messages as `tailfix validate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Shared table of every component's status.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, ComponentHealth>>>,
    reload: Arc<Mutex<Option<ReloadStatus>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
    /// Set while the pipeline is being started: not healthy yet, whatever is registered.
    starting: Arc<std::sync::atomic::AtomicBool>,
}

/// A component's handle on its own row.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    health: Health,
    id: String,
    generation: u64,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<String, ComponentHealth>> {
        // A panic while holding this lock cannot leave the table inconsistent (each write is
        // one insert), so a poisoned lock is still usable.
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(&self, id: &str, kind: ComponentKind) -> HealthHandle {
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.table().insert(
            id.to_string(),
            ComponentHealth {
                kind: kind.as_str(),
                status: ComponentStatus::Starting,
                error: None,
                generation,
            },
        );
        HealthHandle {
            health: self.clone(),
            id: id.to_string(),
            generation,
        }
    }

    /// Marks the pipeline as being started (or done starting): until then it is not healthy,
    /// even while only some of its components are registered.
    pub fn set_starting(&self, starting: bool) {
        self.starting
            .store(starting, std::sync::atomic::Ordering::Release);
    }

    /// Forgets a component a reload removed.
    pub fn remove(&self, id: &str) {
        self.table().remove(id);
    }

    /// Records how a reload went.
    pub fn set_reload(&self, status: ReloadStatus) {
        *self
            .reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
    }

    /// How the last reload went, if there was one.
    pub fn reload(&self) -> Option<ReloadStatus> {
        self.reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, ComponentHealth> {
        self.table().clone()
    }

    /// Healthy: every source has started listening (or finished) and nothing failed.
    pub fn is_healthy(&self) -> bool {
        if self.starting.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        self.table()
            .values()
            .all(|component| match component.status {
                ComponentStatus::Failed => false,
                ComponentStatus::Starting => component.kind != ComponentKind::Source.as_str(),
                ComponentStatus::Running | ComponentStatus::Stopped => true,
            })
    }

    /// The components that failed, with their errors.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.table()
            .iter()
            .filter(|(_, component)| component.status == ComponentStatus::Failed)
            .map(|(id, component)| (id.clone(), component.error.clone().unwrap_or_default()))
            .collect()
    }

    /// Waits until no source is still starting, or `limit` passes; returns the sources that
    /// failed meanwhile (one that could not bind its address, say). A sink's trouble is not a
    /// reason to stop: it retries, and `/health` shows it.
    pub async fn settle(&self, limit: Duration) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        let source = ComponentKind::Source.as_str();
        loop {
            let starting = self.table().values().any(|component| {
                component.status == ComponentStatus::Starting && component.kind == source
            });
            let failures: Vec<_> = self
                .failures()
                .into_iter()
                .filter(|(id, _)| self.table().get(id).is_some_and(|c| c.kind == source))
                .collect();
            if !failures.is_empty() || !starting || tokio::time::Instant::now() >= deadline {
                return failures;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl HealthHandle {
    fn set(&self, status: ComponentStatus, error: Option<String>) {
        if let Some(row) = self.health.table().get_mut(&self.id)
            && row.generation == self.generation
        {
            row.status = status;
            row.error = error;
        }
    }

    /// The component is ready (a source: listening or reading).
    pub fn running(&self) {
        self.set(ComponentStatus::Running, None);
    }

    pub fn stopped(&self) {
        self.set(ComponentStatus::Stopped, None);
    }

    pub fn failed(&self, error: impl Into<String>) {
        self.set(ComponentStatus::Failed, Some(error.into()));
    }
}
