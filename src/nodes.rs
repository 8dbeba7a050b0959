//! The seed's `NodeManager`: the agents an aggregator knows (DESIGN §7). A node registers
//! (validated: id, version, labels), heartbeats, and is `active`, `stale` or `lost` by how long
//! ago it was last seen. Nodes live in the state store, so an aggregator restart keeps them.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::state::{StateError, StateStore};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Active,
    Stale,
    Lost,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Active => "active",
            NodeStatus::Stale => "stale",
            NodeStatus::Lost => "lost",
        }
    }
}

/// What an agent sends to register.
#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    pub id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The seed's `Node`, as `GET /api/v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub status: NodeStatus,
    pub last_seen: String,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub registered_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("unknown node `{0}`: register first")]
    Unknown(String),
    #[error("the registry is full ({0} nodes); a node is forgotten once lost for `forget_after`")]
    Full(usize),
    #[error(transparent)]
    State(#[from] StateError),
}

#[derive(Clone, Debug)]
pub struct NodeManager {
    state: StateStore,
    stale_after: Duration,
    lost_after: Duration,
    /// Nodes kept at most: a registration beyond is refused, so made-up ids cannot grow the
    /// registry (and `GET /api/v1/nodes`) without bound.
    max_nodes: usize,
    /// A node not seen for this long is forgotten.
    forget_after: Duration,
}

/// Most labels a node may register, and their total size in bytes (keys and values).
const MAX_LABELS: usize = 32;
const MAX_LABEL_BYTES: usize = 4096;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

impl Registration {
    fn validate(&self) -> Result<(), ValidationError> {
        if !valid_id(&self.id) {
            return Err(ValidationError::new(
                "id",
                "1 to 128 characters of letters, digits, `.`, `_`, `-`, `:`",
            ));
        }
        if self.version.len() > 64 {
            return Err(ValidationError::new("version", "at most 64 characters"));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(ValidationError::new(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        let label_bytes: usize = self.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        if label_bytes > MAX_LABEL_BYTES {
            return Err(ValidationError::new(
                "labels",
                format!("at most {MAX_LABEL_BYTES} bytes of keys and values in all"),
            ));
        }
        for (key, value) in &self.labels {
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                return Err(ValidationError::new(
                    format!("labels.{key}"),
                    "keys of 1 to 128 and values of at most 256 characters",
                ));
            }
        }
        Ok(())
    }
}

impl NodeManager {
    pub fn new(state: StateStore, stale_after: Duration, lost_after: Duration) -> Self {
        NodeManager {
            state,
            stale_after,
            lost_after,
            max_nodes: 10_000,
            forget_after: Duration::from_secs(24 * 3600),
        }
    }

    /// Keeps at most `max_nodes`, and forgets a node not seen for `forget_after`.
    pub fn with_limits(mut self, max_nodes: usize, forget_after: Duration) -> Self {
        self.max_nodes = max_nodes.max(1);
        self.forget_after = forget_after.max(self.lost_after);
        self
    }

    /// Removes the nodes not seen for `forget_after`; returns how many.
    pub fn forget_gone(&self) -> Result<usize, NodeError> {
        let cutoff = Timestamp::now()
            .0
            .saturating_sub(i64::try_from(self.forget_after.as_nanos()).unwrap_or(i64::MAX));
        Ok(self.state.with_connection(|connection| {
            connection.execute("DELETE FROM nodes WHERE last_seen < ?1", params![cutoff])
        })?)
    }

    pub fn register(&self, registration: &Registration) -> Result<Node, NodeError> {
        registration.validate()?;
        if self.get(&registration.id)?.is_none() {
            let count = |connection: &mut rusqlite::Connection| {
                connection.query_row("SELECT COUNT(*) FROM nodes", [], |row| row.get::<_, i64>(0))
            };
            if self.state.with_connection(count)? as usize >= self.max_nodes {
                self.forget_gone()?;
                if self.state.with_connection(count)? as usize >= self.max_nodes {
                    return Err(NodeError::Full(self.max_nodes));
                }
            }
        }
        let now = Timestamp::now().0;
        let labels =
            serde_json::to_string(&registration.labels).unwrap_or_else(|_| "{}".to_string());
        self.state.with_connection(|connection| {
            connection.execute(
                "INSERT INTO nodes (id, version, labels, registered_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, labels = excluded.labels,
                    last_seen = excluded.last_seen",
                params![registration.id, registration.version, labels, now],
            )
        })?;
        self.get(&registration.id)?
            .ok_or_else(|| NodeError::Unknown(registration.id.clone()))
    }

    pub fn heartbeat(&self, id: &str) -> Result<Node, NodeError> {
        let updated = self.state.with_connection(|connection| {
            connection.execute(
                "UPDATE nodes SET last_seen = ?2 WHERE id = ?1",
                params![id, Timestamp::now().0],
            )
        })?;
        if updated == 0 {
            return Err(NodeError::Unknown(id.to_string()));
        }
        self.get(id)?
            .ok_or_else(|| NodeError::Unknown(id.to_string()))
    }

    /// Events from a node count as signs of life (a registered node only).
    pub fn seen(&self, id: &str) {
        let _ = self.state.with_connection(|connection| {
            connection.execute(
                "UPDATE nodes SET last_seen = ?2 WHERE id = ?1",
                params![id, Timestamp::now().0],
            )
        });
    }

    fn status(&self, last_seen: Timestamp) -> NodeStatus {
        let age =
            Duration::from_nanos(Timestamp::now().0.saturating_sub(last_seen.0).max(0) as u64);
        if age >= self.lost_after {
            NodeStatus::Lost
        } else if age >= self.stale_after {
            NodeStatus::Stale
        } else {
            NodeStatus::Active
        }
    }

    fn node_of(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
        let labels: String = row.get(2)?;
        let last_seen = Timestamp(row.get(4)?);
        Ok(Node {
            id: row.get(0)?,
            version: row.get(1)?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            registered_at: Timestamp(row.get(3)?).to_rfc3339(),
            last_seen: last_seen.to_rfc3339(),
            status: self.status(last_seen),
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<Node>, NodeError> {
        Ok(self.state.with_connection(|connection| {
            connection
                .query_row(
                    "SELECT id, version, labels, registered_at, last_seen FROM nodes WHERE id = ?1",
                    params![id],
                    |row| self.node_of(row),
                )
                .optional()
        })?)
    }

    pub fn list(&self) -> Result<Vec<Node>, NodeError> {
        Ok(self.state.with_connection(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, version, labels, registered_at, last_seen FROM nodes ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| self.node_of(row))?;
            rows.collect()
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_register_heartbeat_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let manager = NodeManager::new(
            StateStore::open(dir.path()).unwrap(),
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
        let registration = Registration {
            id: "web-1".to_string(),
            version: "0.1.0".to_string(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        };
        assert_eq!(
            manager.register(&registration).unwrap().status,
            NodeStatus::Active
        );
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            manager.get("web-1").unwrap().unwrap().status,
            NodeStatus::Stale
        );
        manager.heartbeat("web-1").unwrap();
        assert_eq!(
            manager.get("web-1").unwrap().unwrap().status,
            NodeStatus::Active
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(manager.list().unwrap()[0].status, NodeStatus::Lost);
        assert!(matches!(
            manager.heartbeat("ghost"),
            Err(NodeError::Unknown(_))
        ));
        let bad = Registration {
            id: "bad id!".to_string(),
            ..registration
        };
        assert!(matches!(manager.register(&bad), Err(NodeError::Invalid(_))));
    }

    #[test]
    fn the_registry_is_bounded_and_forgets_nodes_gone_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let manager = NodeManager::new(
            StateStore::open(dir.path()).unwrap(),
            Duration::from_millis(50),
            Duration::from_millis(100),
        )
        .with_limits(3, Duration::from_millis(200));
        let node = |id: &str| Registration {
            id: id.to_string(),
            version: String::new(),
            labels: BTreeMap::new(),
        };
        for id in ["a", "b", "c"] {
            manager.register(&node(id)).unwrap();
        }
        assert!(matches!(
            manager.register(&node("d")),
            Err(NodeError::Full(3))
        ));
        // A known node may register again while the registry is full.
        manager.register(&node("a")).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        manager.register(&node("d")).unwrap();
        let ids: Vec<String> = manager.list().unwrap().into_iter().map(|n| n.id).collect();
        assert_eq!(ids, vec!["d"]);

        let many_labels = Registration {
            labels: (0..33)
                .map(|i| (format!("k{i}"), "v".to_string()))
                .collect(),
            ..node("e")
        };
        assert!(matches!(
            manager.register(&many_labels),
            Err(NodeError::Invalid(_))
        ));
        let big_labels = Registration {
            labels: (0..20)
                .map(|i| (format!("k{i}"), "v".repeat(250)))
                .collect(),
            ..node("e")
        };
        assert!(matches!(
            manager.register(&big_labels),
            Err(NodeError::Invalid(_))
        ));
        let huge_id = node(&"n".repeat(1 << 20));
        assert!(matches!(
            manager.register(&huge_id),
            Err(NodeError::Invalid(_))
        ));
    }
}
