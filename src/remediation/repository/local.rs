//! `provider = "local"`: a git repository on disk, read through the real `git` at the base
//! branch's commit (not the work tree, which may hold uncommitted edits).
//!
//! A fix is proposed as a branch `tailfix/<fingerprint12>` holding one commit, made with git
//! plumbing on a temporary index (`read-tree`, `hash-object`, `update-index`, `write-tree`,
//! `commit-tree`, `update-ref`): the user's work tree, index and current branch are never
//! touched. The "change request" is that branch and a Markdown file describing it in
//! `data_dir/incidents/`.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{RepoFuture, RepositoryClient, RepositoryError};
use crate::remediation::incident::ChangeRequestRef;
use crate::remediation::{Change, ChangeRequest, proposal};

/// The author and committer of proposed commits.
const AUTHOR: (&str, &str) = ("tailfix", "tailfix@localhost");

pub struct LocalRepository {
    path: PathBuf,
    /// The base branch; `HEAD` when it does not exist.
    branch: String,
    /// Where the Markdown description of each proposal goes (`data_dir/incidents`).
    proposals: Option<PathBuf>,
}

impl LocalRepository {
    /// `git ls-tree -r -z` of the base commit, with `options`.
    async fn ls_tree(&self, options: &[&str]) -> Result<Vec<u8>, RepositoryError> {
        let commit = self.base_commit().await?;
        let mut args = vec!["ls-tree", "-r", "-z"];
        args.extend_from_slice(options);
        args.push(&commit);
        self.git(&args)
            .await?
            .ok_or_else(|| RepositoryError::Command {
                command: "git ls-tree".to_string(),
                message: format!("cannot list {commit}"),
            })
    }

    pub fn new(path: PathBuf, branch: String) -> Self {
        LocalRepository {
            path,
            branch,
            proposals: None,
        }
    }

    /// Writes each proposal's description as `<fingerprint>-change-request.md` into `dir`.
    pub fn with_proposals_dir(mut self, dir: PathBuf) -> Self {
        self.proposals = Some(dir);
        self
    }

    fn reference(&self, branch: &str) -> ChangeRequestRef {
        ChangeRequestRef {
            id: branch.to_string(),
            url: format!("file://{}#{branch}", self.path.display()),
        }
    }

    async fn propose(&self, request: &ChangeRequest) -> Result<ChangeRequestRef, RepositoryError> {
        let (fingerprint, message) = super::request_parts(request);
        let branch = proposal::branch_name(&fingerprint);
        if self.branch_commit(&branch).await?.is_some() {
            // Proposed before (another run, another replica): never twice.
            return Ok(self.reference(&branch));
        }
        match self
            .commit_to_new_branch(&branch, &request.changes, &message)
            .await
        {
            Ok(_) => {}
            // Another writer made it between our check and our update: theirs stands.
            Err(error) if self.branch_commit(&branch).await.ok().flatten().is_some() => {
                tracing::info!(%error, %branch, "branch already exists");
            }
            Err(error) => return Err(error),
        }
        if let Some(dir) = &self.proposals {
            let text = format!(
                "# {}\n\nBranch `{branch}` in `{}`.\n\n{}",
                request.title,
                self.path.display(),
                request.description
            );
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::write(dir.join(format!("{fingerprint}-change-request.md")), text)
                })
                .map_err(|error| {
                    RepositoryError::Other(format!("writing the proposal: {error}"))
                })?;
        }
        Ok(self.reference(&branch))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `git -C <repo> args…`; returns stdout, or `None` when git exits non-zero.
    async fn git(&self, args: &[&str]) -> Result<Option<Vec<u8>>, RepositoryError> {
        let output = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(args)
            .output()
            .await
            .map_err(|error| RepositoryError::Command {
                command: format!("git {}", args.join(" ")),
                message: error.to_string(),
            })?;
        Ok(output.status.success().then_some(output.stdout))
    }

    /// Runs git with extra environment and optional stdin; fails on a non-zero exit.
    async fn git_checked(
        &self,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, RepositoryError> {
        let command_text = || format!("git {}", args.join(" "));
        let mut command = Command::new("git");
        command
            .arg("-C")
            .arg(&self.path)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|error| RepositoryError::Command {
            command: command_text(),
            message: error.to_string(),
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input)
                .await
                .map_err(|error| RepositoryError::Command {
                    command: command_text(),
                    message: error.to_string(),
                })?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|error| RepositoryError::Command {
                command: command_text(),
                message: error.to_string(),
            })?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(RepositoryError::Command {
                command: command_text(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// The commit a branch points to, if the branch exists.
    pub async fn branch_commit(&self, branch: &str) -> Result<Option<String>, RepositoryError> {
        let reference = format!("refs/heads/{branch}");
        Ok(self
            .git(&["rev-parse", "--verify", "--quiet", &reference])
            .await?
            .map(|out| String::from_utf8_lossy(&out).trim().to_string()))
    }

    /// Creates `branch` at a new commit on top of the base branch holding `changes`. The work
    /// tree and the repository's index are left alone. Fails if the branch exists.
    pub async fn commit_to_new_branch(
        &self,
        branch: &str,
        changes: &[Change],
        message: &str,
    ) -> Result<String, RepositoryError> {
        let base = self.base_commit().await?;
        let index = std::env::temp_dir().join(format!(
            "tailfix-index-{}-{}",
            std::process::id(),
            crate::time::Timestamp::now().0
        ));
        let result = self
            .commit_with_index(&index, &base, branch, changes, message)
            .await;
        let _ = std::fs::remove_file(&index);
        result
    }

    async fn commit_with_index(
        &self,
        index: &std::path::Path,
        base: &str,
        branch: &str,
        changes: &[Change],
        message: &str,
    ) -> Result<String, RepositoryError> {
        let index_env = [("GIT_INDEX_FILE", index.as_os_str())];
        self.git_checked(&["read-tree", base], &index_env, None)
            .await?;
        for change in changes {
            let blob = self
                .git_checked(
                    &["hash-object", "-w", "--stdin"],
                    &[],
                    Some(change.content.as_bytes()),
                )
                .await?;
            let blob = String::from_utf8_lossy(&blob).trim().to_string();
            // Keep an existing file's mode (an executable script stays executable).
            let listing = self
                .git_checked(&["ls-tree", base, "--", &change.path], &[], None)
                .await?;
            let mode = String::from_utf8_lossy(&listing)
                .split_whitespace()
                .next()
                .filter(|mode| mode.starts_with("100"))
                .unwrap_or("100644")
                .to_string();
            let entry = format!("{mode},{blob},{}", change.path);
            self.git_checked(
                &["update-index", "--add", "--cacheinfo", &entry],
                &index_env,
                None,
            )
            .await?;
        }
        let tree = self.git_checked(&["write-tree"], &index_env, None).await?;
        let tree = String::from_utf8_lossy(&tree).trim().to_string();
        let identity = [
            ("GIT_AUTHOR_NAME", std::ffi::OsStr::new(AUTHOR.0)),
            ("GIT_AUTHOR_EMAIL", std::ffi::OsStr::new(AUTHOR.1)),
            ("GIT_COMMITTER_NAME", std::ffi::OsStr::new(AUTHOR.0)),
            ("GIT_COMMITTER_EMAIL", std::ffi::OsStr::new(AUTHOR.1)),
        ];
        let commit = self
            .git_checked(
                &["commit-tree", &tree, "-p", base, "-F", "-"],
                &identity,
                Some(message.as_bytes()),
            )
            .await?;
        let commit = String::from_utf8_lossy(&commit).trim().to_string();
        // The all-zero old value: create only, never move an existing branch.
        let zero = "0".repeat(40);
        self.git_checked(
            &[
                "update-ref",
                &format!("refs/heads/{branch}"),
                &commit,
                &zero,
            ],
            &[],
            None,
        )
        .await?;
        Ok(commit)
    }

    /// The commit the base branch points to.
    pub async fn base_commit(&self) -> Result<String, RepositoryError> {
        for reference in [self.branch.as_str(), "HEAD"] {
            if let Some(out) = self
                .git(&[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{reference}^{{commit}}"),
                ])
                .await?
            {
                return Ok(String::from_utf8_lossy(&out).trim().to_string());
            }
        }
        Err(RepositoryError::Command {
            command: "git rev-parse".to_string(),
            message: format!(
                "{} has no branch `{}` and no HEAD commit",
                self.path.display(),
                self.branch
            ),
        })
    }
}

impl RepositoryClient for LocalRepository {
    fn provider(&self) -> &'static str {
        "local"
    }

    fn checkout(&self) -> RepoFuture<'_, Option<(PathBuf, String)>> {
        Box::pin(async move { Ok(Some((self.path.clone(), self.base_commit().await?))) })
    }

    fn list_files(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(async move {
            let out = self.ls_tree(&["--name-only"]).await?;
            Ok(out
                .split(|b| *b == 0)
                .filter(|name| !name.is_empty())
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect())
        })
    }

    fn create_change_request<'a>(
        &'a self,
        request: &'a ChangeRequest,
    ) -> RepoFuture<'a, ChangeRequestRef> {
        Box::pin(self.propose(request))
    }

    fn symlinks(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(async move {
            let out = self.ls_tree(&[]).await?;
            // `<mode> SP <type> SP <object> TAB <path>`; links have mode 120000.
            Ok(out
                .split(|b| *b == 0)
                .filter(|entry| entry.starts_with(b"120000 "))
                .filter_map(|entry| {
                    let tab = entry.iter().position(|b| *b == b'\t')?;
                    Some(String::from_utf8_lossy(&entry[tab + 1..]).into_owned())
                })
                .collect())
        })
    }

    fn get_file<'a>(&'a self, path: &'a str) -> RepoFuture<'a, Option<String>> {
        Box::pin(async move {
            super::url_path(path)?;
            let commit = self.base_commit().await?;
            let object = format!("{commit}:{path}");
            // `cat-file -e` tells a missing file from a failing git.
            if self.git(&["cat-file", "-e", &object]).await?.is_none() {
                return Ok(None);
            }
            let content = self
                .git(&["cat-file", "blob", &object])
                .await?
                .ok_or_else(|| RepositoryError::Command {
                    command: "git cat-file".to_string(),
                    message: format!("cannot read {object}"),
                })?;
            Ok(Some(String::from_utf8_lossy(&content).into_owned()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &std::path::Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.test")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.test")
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[tokio::test]
    async fn reads_the_committed_files_of_the_base_branch() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/cart.py"),
            "def total():\n    return 1\n",
        )
        .unwrap();
        git(dir.path(), &["add", "."]);
        git(dir.path(), &["commit", "-q", "-m", "init"]);
        // An uncommitted edit in the work tree is not what the base branch holds.
        std::fs::write(dir.path().join("src/cart.py"), "edited\n").unwrap();
        let repository = LocalRepository::new(dir.path().to_path_buf(), "main".to_string());
        assert_eq!(repository.list_files().await.unwrap(), vec!["src/cart.py"]);
        assert_eq!(
            repository.get_file("src/cart.py").await.unwrap().as_deref(),
            Some("def total():\n    return 1\n")
        );
        assert_eq!(repository.get_file("src/missing.py").await.unwrap(), None);
    }
}
