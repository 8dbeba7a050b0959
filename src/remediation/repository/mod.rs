//! The seed's `RepositoryClient`: reading the repository a fix is proposed to. One file per
//! provider; `local` is a git repository on disk.

pub mod local;

use std::future::Future;
use std::pin::Pin;

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
}
