//! Incidents: one per fingerprint, with how often and where it was seen, a sample entry, and
//! where its remediation stands (DESIGN §6.2). Kept in the state store, so a restart never asks
//! the model or opens a change request twice for one bug.
//!
//! State machine: `open → analysing → proposed | rejected | failed`; a `failed` incident is
//! tried again after `next_attempt_at`; an `analysing` one found at start was interrupted and
//! resumes.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::state::{StateError, StateStore};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Open,
    Analysing,
    Proposed,
    Rejected,
    Failed,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Analysing => "analysing",
            IncidentState::Proposed => "proposed",
            IncidentState::Rejected => "rejected",
            IncidentState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> IncidentState {
        match text {
            "analysing" => IncidentState::Analysing,
            "proposed" => IncidentState::Proposed,
            "rejected" => IncidentState::Rejected,
            "failed" => IncidentState::Failed,
            _ => IncidentState::Open,
        }
    }

    pub const ALL: [IncidentState; 5] = [
        IncidentState::Open,
        IncidentState::Analysing,
        IncidentState::Proposed,
        IncidentState::Rejected,
        IncidentState::Failed,
    ];
}

/// Where a fix was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequestRef {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub fingerprint: String,
    pub title: String,
    pub state: IncidentState,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub nodes: BTreeSet<String>,
    pub exception: Option<String>,
    /// `function (file:line)` of the top in-app frame.
    pub top_frame: Option<String>,
    /// The first entry seen, as its JSON encoding.
    pub sample: serde_json::Value,
    pub solution: Option<serde_json::Value>,
    /// Why the last attempt was rejected or failed, or what was done instead.
    pub reason: Option<String>,
    pub change_request: Option<ChangeRequestRef>,
    pub attempts: u32,
    pub last_action_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    /// Every answer a model gave for this incident and what became of it, oldest first (the
    /// last [`MAX_HISTORY`]).
    pub history: Vec<Attempt>,
}

/// Answers kept per incident.
pub const MAX_HISTORY: usize = 20;

/// One model answer and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it was checked (RFC 3339).
    pub at: String,
    /// Its place among the requests of one analysis: 1, then each repair round.
    pub request: u32,
    /// `verified`, `unverified` (proposed though a check failed), `invalid` (its edits did
    /// not apply), `verification_failed`, `malformed` (not an answer).
    pub outcome: String,
    pub reason: Option<String>,
    pub summary: Option<String>,
    pub edits: Vec<super::ProposedEdit>,
    /// The checks run, with the end of their output (redacted).
    pub verification: Option<super::verify::Verification>,
    /// The code sent with the request: file and lines.
    pub context: Vec<ContextRange>,
}

/// Lines of one file sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextRange {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Incident {
    /// Every field, for `GET /api/v1/incidents/{fingerprint}` and `tailfix incidents show`:
    /// the list's fields, the trace, the solution and every attempt.
    pub fn to_detail_json(&self) -> serde_json::Value {
        let mut detail = self.to_api_json();
        detail["trace"] = self
            .sample
            .get("error_trace")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        detail["solution"] = self.solution.clone().unwrap_or(serde_json::Value::Null);
        detail["attempts"] = json!(self.attempts);
        detail["history"] = serde_json::to_value(&self.history).unwrap_or_default();
        detail
    }

    /// The JSON shape of `GET /api/v1/incidents` (DESIGN §5).
    pub fn to_api_json(&self) -> serde_json::Value {
        json!({
            "fingerprint": self.fingerprint,
            "title": self.title,
            "state": self.state.as_str(),
            "count": self.count,
            "first_seen": self.first_seen.to_rfc3339(),
            "last_seen": self.last_seen.to_rfc3339(),
            "nodes": self.nodes,
            "exception": self.exception,
            "top_frame": self.top_frame,
            "change_request": self.change_request,
            "reason": self.reason,
        })
    }
}

/// Incidents in the state store.
#[derive(Clone, Debug)]
pub struct IncidentStore {
    state: StateStore,
}

const COLUMNS: &str = "fingerprint, title, state, count, first_seen, last_seen, nodes, exception, \
     top_frame, sample, solution, reason, change_request_id, change_request_url, attempts, \
     last_action_at, next_attempt_at, history";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    let nodes: String = row.get(6)?;
    let sample: String = row.get(9)?;
    let solution: Option<String> = row.get(10)?;
    let change_request_id: Option<String> = row.get(12)?;
    let change_request_url: Option<String> = row.get(13)?;
    Ok(Incident {
        fingerprint: row.get(0)?,
        title: row.get(1)?,
        state: IncidentState::parse(&row.get::<_, String>(2)?),
        count: row.get::<_, i64>(3)?.max(0) as u64,
        first_seen: Timestamp(row.get(4)?),
        last_seen: Timestamp(row.get(5)?),
        nodes: serde_json::from_str(&nodes).unwrap_or_default(),
        exception: row.get(7)?,
        top_frame: row.get(8)?,
        sample: serde_json::from_str(&sample).unwrap_or(serde_json::Value::Null),
        solution: solution.and_then(|text| serde_json::from_str(&text).ok()),
        reason: row.get(11)?,
        change_request: change_request_id.map(|id| ChangeRequestRef {
            id,
            url: change_request_url.unwrap_or_default(),
        }),
        attempts: row.get::<_, i64>(14)?.max(0) as u32,
        last_action_at: row.get::<_, Option<i64>>(15)?.map(Timestamp),
        next_attempt_at: row.get::<_, Option<i64>>(16)?.map(Timestamp),
        history: serde_json::from_str(&row.get::<_, String>(17)?).unwrap_or_default(),
    })
}

impl IncidentStore {
    pub fn new(state: StateStore) -> Self {
        IncidentStore { state }
    }

    /// Every incident, most recently seen first.
    pub fn list(&self) -> Result<Vec<Incident>, StateError> {
        self.state.with_connection(|connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM incidents ORDER BY last_seen DESC"
            ))?;
            let rows = statement.query_map([], from_row)?;
            rows.collect()
        })
    }

    pub fn get(&self, fingerprint: &str) -> Result<Option<Incident>, StateError> {
        self.state.with_connection(|connection| {
            connection
                .query_row(
                    &format!("SELECT {COLUMNS} FROM incidents WHERE fingerprint = ?1"),
                    params![fingerprint],
                    from_row,
                )
                .optional()
        })
    }

    /// Writes incidents in one transaction.
    pub fn save(&self, incidents: &[&Incident]) -> Result<(), StateError> {
        if incidents.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().0;
        self.state.with_connection(|connection| {
            let transaction = connection.transaction()?;
            {
                let mut upsert = transaction.prepare_cached(&format!(
                    "INSERT INTO incidents ({COLUMNS}, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                     ON CONFLICT (fingerprint) DO UPDATE SET
                        title = excluded.title, state = excluded.state, count = excluded.count,
                        first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                        nodes = excluded.nodes, exception = excluded.exception,
                        top_frame = excluded.top_frame, sample = excluded.sample,
                        solution = excluded.solution, reason = excluded.reason,
                        change_request_id = excluded.change_request_id,
                        change_request_url = excluded.change_request_url,
                        attempts = excluded.attempts, last_action_at = excluded.last_action_at,
                        next_attempt_at = excluded.next_attempt_at, history = excluded.history,
                        updated_at = excluded.updated_at"
                ))?;
                for incident in incidents {
                    upsert.execute(params![
                        incident.fingerprint,
                        incident.title,
                        incident.state.as_str(),
                        incident.count as i64,
                        incident.first_seen.0,
                        incident.last_seen.0,
                        serde_json::to_string(&incident.nodes).unwrap_or_else(|_| "[]".to_string()),
                        incident.exception,
                        incident.top_frame,
                        incident.sample.to_string(),
                        incident.solution.as_ref().map(|solution| solution.to_string()),
                        incident.reason,
                        incident.change_request.as_ref().map(|cr| cr.id.clone()),
                        incident.change_request.as_ref().map(|cr| cr.url.clone()),
                        i64::from(incident.attempts),
                        incident.last_action_at.map(|t| t.0),
                        incident.next_attempt_at.map(|t| t.0),
                        serde_json::to_string(&incident.history).unwrap_or_else(|_| "[]".to_string()),
                        now,
                    ])?;
                }
            }
            transaction.commit()
        })
    }

    /// How many incidents are in each state.
    pub fn count_by_state(&self) -> Result<Vec<(IncidentState, u64)>, StateError> {
        self.state.with_connection(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT state, count(*) FROM incidents GROUP BY state")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    IncidentState::parse(&row.get::<_, String>(0)?),
                    row.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(fingerprint: &str) -> Incident {
        Incident {
            fingerprint: fingerprint.to_string(),
            title: "ZeroDivisionError in discount (cart.py)".to_string(),
            state: IncidentState::Open,
            count: 3,
            first_seen: Timestamp(1_000_000_000),
            last_seen: Timestamp(2_000_000_000),
            nodes: ["node-a".to_string(), "node-b".to_string()].into(),
            exception: Some("ZeroDivisionError".to_string()),
            top_frame: Some("discount (cart.py:6)".to_string()),
            sample: json!({"message": "boom"}),
            solution: None,
            reason: None,
            change_request: None,
            attempts: 0,
            history: Vec::new(),
            last_action_at: None,
            next_attempt_at: None,
        }
    }

    #[test]
    fn incidents_round_trip_and_have_the_api_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = IncidentStore::new(StateStore::open(dir.path()).unwrap());
        let mut first = incident("aa");
        store.save(&[&first, &incident("bb")]).unwrap();
        first.state = IncidentState::Proposed;
        first.change_request = Some(ChangeRequestRef {
            id: "7".to_string(),
            url: "https://example.test/pr/7".to_string(),
        });
        store.save(&[&first]).unwrap();
        let reopened = IncidentStore::new(StateStore::open(dir.path()).unwrap());
        assert_eq!(reopened.get("aa").unwrap(), Some(first.clone()));
        assert_eq!(reopened.list().unwrap().len(), 2);
        let json = first.to_api_json();
        let keys: BTreeSet<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "fingerprint",
                "title",
                "state",
                "count",
                "first_seen",
                "last_seen",
                "nodes",
                "exception",
                "top_frame",
                "change_request",
                "reason"
            ])
        );
        assert_eq!(
            json["change_request"],
            json!({"id": "7", "url": "https://example.test/pr/7"})
        );
        assert_eq!(json["nodes"], json!(["node-a", "node-b"]));
        assert_eq!(json["first_seen"], "1970-01-01T00:00:01.000Z");
        let mut counts = reopened.count_by_state().unwrap();
        counts.sort_by_key(|(state, _)| state.as_str());
        assert_eq!(
            counts,
            vec![(IncidentState::Open, 1), (IncidentState::Proposed, 1)]
        );
    }
}
