//! The seed's error types, shared by services that validate input and perform operations.

use std::time::Duration;

/// Input that does not satisfy a rule: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

type BoxedSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An operation that failed, with what was attempted. Cancellation and timeouts are their own
/// variants so that callers can retry or give up without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("{operation} failed: {message}")]
    Failed {
        operation: String,
        message: String,
        #[source]
        source: Option<BoxedSource>,
    },
    #[error("{operation} timed out after {after:?}")]
    Timeout { operation: String, after: Duration },
    #[error("{operation} was cancelled")]
    Cancelled { operation: String },
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

impl OperationError {
    pub fn failed(operation: impl Into<String>, message: impl Into<String>) -> Self {
        OperationError::Failed {
            operation: operation.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        operation: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        OperationError::Failed {
            operation: operation.into(),
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
}
