//! The seed's `RepositoryClient`: reading the repository a fix is proposed to. One file per
//! provider; `local` is a git repository on disk.

pub mod github;
pub mod gitlab;
pub mod local;
pub mod service;
pub mod setup;

use std::future::Future;
use std::pin::Pin;

use super::ChangeRequest;
use super::incident::ChangeRequestRef;

/// What a repository operation returns, boxed so the trait can be used as `dyn`.
pub type RepoFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RepositoryError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{command} failed: {message}")]
    Command { command: String, message: String },
    #[error("{operation}: HTTP {status}: {message}")]
    Http {
        operation: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

pub trait RepositoryClient: Send + Sync {
    /// `local`, `github`, `gitlab`.
    fn provider(&self) -> &'static str;

    /// Every file path on the base branch, relative to the repository root.
    fn list_files(&self) -> RepoFuture<'_, Vec<String>>;

    /// A file's content on the base branch; `None` if it does not exist.
    fn get_file<'a>(&'a self, path: &'a str) -> RepoFuture<'a, Option<String>>;

    /// Proposes `request` (its `metadata` carries `fingerprint` and `commit_message`): a branch
    /// with one commit and, where the host has them, a draft pull or merge request. Returns the
    /// existing proposal if there is one for the same fingerprint: never two.
    fn create_change_request<'a>(
        &'a self,
        request: &'a ChangeRequest,
    ) -> RepoFuture<'a, ChangeRequestRef>;
}

/// The fingerprint and commit message a change request's metadata carries.
pub fn request_parts(request: &ChangeRequest) -> (String, String) {
    let text = |key: &str| {
        request
            .metadata
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (text("fingerprint"), text("commit_message"))
}
