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
    #[error(transparent)]
    State(#[from] StateError),
}

#[derive(Clone, Debug)]
pub struct NodeManager {
    state: StateStore,
    stale_after: Duration,
    lost_after: Duration,
}

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
        if self.labels.len() > 64 {
            return Err(ValidationError::new("labels", "at most 64 labels"));
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
        }
    }

    pub fn register(&self, registration: &Registration) -> Result<Node, NodeError> {
        registration.validate()?;
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
}
