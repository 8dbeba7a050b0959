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

/// A repository-relative path as the segments of a URL path, each percent-encoded, after
/// checking its shape: a path comes from a stack trace or a model's answer, and must never
/// change a request's route or query (`../../user`, `%2e%2e`, a `#` or `?` in it).
pub fn url_path(path: &str) -> Result<String, RepositoryError> {
    let bad = |reason: &str| RepositoryError::Other(format!("refusing path `{path}`: {reason}"));
    if path.is_empty() || path.starts_with('/') {
        return Err(bad("not a relative path"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad("control character or backslash"));
    }
    let mut encoded = String::with_capacity(path.len());
    for (index, segment) in path.split('/').enumerate() {
        if matches!(segment, "" | "." | "..") {
            return Err(bad("empty, `.` or `..` segment"));
        }
        if index > 0 {
            encoded.push('/');
        }
        encoded.push_str(&percent_encode(segment));
    }
    Ok(encoded)
}

/// Every byte but RFC 3986's unreserved characters as `%XX` (so `/` too: a whole value).
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

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

    /// The paths on the base branch that are symbolic links: a fix never edits one, nor a path
    /// through one (a committed symlink was silently replaced by a regular file before).
    fn symlinks(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// A git repository on this machine whose commit is the base branch's, if the provider has
    /// one (`local`): a fix is verified in a worktree of it. Others are copied file by file.
    fn checkout(&self) -> RepoFuture<'_, Option<(std::path::PathBuf, String)>> {
        Box::pin(async { Ok(None) })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_never_changes_the_route_or_query() {
        assert_eq!(url_path("src/app/cart.py").unwrap(), "src/app/cart.py");
        assert_eq!(
            url_path("src/a b/x#y?ref=evil&z.py").unwrap(),
            "src/a%20b/x%23y%3Fref%3Devil%26z.py"
        );
        assert_eq!(url_path("%2e%2e/user").unwrap(), "%252e%252e/user");
        for bad in [
            "",
            "/etc/passwd",
            "../../user",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a\nb",
        ] {
            assert!(url_path(bad).is_err(), "{bad:?}");
        }
    }
}
