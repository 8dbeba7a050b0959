//! Remediation (DESIGN §6): from a recurring error to a checked, proposed fix.
//!
//! A library that the `remediate` sink drives; it never imports the sink or the runtime. The
//! steps, one module each: incidents and their state (`incident`), when to act and the analysis
//! itself (`engine`: occurrences in a window, cooldown, concurrency, the hourly model budget),
//! the source code around the failing frames (`context`), read by the shape of its blocks
//! (`scope`), the tools a model may call to read more (`tools`), removing secrets before anything
//! leaves the machine (`redact`), the prompt (`prompt`), asking a model (`model`), checking its
//! answer (`validate`) and running it (`verify`), the repository it reads from and proposes to (`repository`), the change
//! request's text (`proposal`), and what a report-only incident writes (`report`).

pub mod context;
pub mod engine;
pub mod incident;
pub mod model;
pub mod prompt;
pub mod proposal;
pub mod redact;
pub mod report;
pub mod repository;
pub mod scope;
pub mod tools;
pub mod validate;
pub mod verify;

use serde::{Deserialize, Serialize};

/// A `[model]` or `[repository]` section that cannot make its client, and why (the message
/// names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// What a model proposes: content-anchored edits, no line numbers (DESIGN §6.6).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProposedFix {
    pub summary: String,
    pub root_cause: String,
    /// 0..1, the model's own.
    pub confidence: f64,
    pub edits: Vec<ProposedEdit>,
}

/// Replace `old` (exact text found once in the file; empty creates the file) with `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedEdit {
    pub path: String,
    pub old: String,
    pub new: String,
}

/// How a change touches a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
}

/// The seed's `Change`: one file's new content, with the lines the edit replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Repository-relative path.
    pub path: String,
    pub operation: Operation,
    /// The whole new content of the file.
    pub content: String,
    /// 1-based first line of the replaced text in the original file.
    pub line_start: usize,
    /// 1-based last line of the replaced text in the original file.
    pub line_end: usize,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// The seed's `Solution`: a validated fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    pub id: String,
    pub description: String,
    pub changes: Vec<Change>,
    pub confidence: f64,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// The seed's `ChangeRequest`: what is proposed to the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub id: String,
    pub title: String,
    pub description: String,
    pub changes: Vec<Change>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}
