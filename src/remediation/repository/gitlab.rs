//! `provider = "gitlab"`: GitLab's REST API (v4) with `reqwest`. `base_url` is the instance
//! (`https://gitlab.com`, or a self-hosted host or a test server); the project is
//! `owner/name` (its namespace path).
//!
//! A fix is one `repository/commits` call whose actions create the branch
//! `tailfix/<fingerprint12>` from the base branch with every change, then a merge request
//! titled `Draft: …` (GitLab's draft marker) labelled `tailfix`. An open merge request with the
//! same source branch or fingerprint marker is reused, never duplicated.

use std::time::Duration;

use serde_json::{Value, json};

// `owner/name`, a file path or a branch as GitLab wants it in a path: URL-encoded whole.
use super::percent_encode as encode;
use super::{RepoFuture, RepositoryClient, RepositoryError};
use crate::remediation::incident::ChangeRequestRef;
use crate::remediation::{ChangeRequest, Operation, proposal};

pub struct GitLabRepository {
    client: reqwest::Client,
    api: String,
    project: String,
    token: String,
    branch: String,
}

impl GitLabRepository {
    pub fn new(
        base_url: &str,
        token: &str,
        owner: &str,
        name: &str,
        branch: String,
    ) -> Result<Self, RepositoryError> {
        let base = base_url.trim_end_matches('/');
        let api = if base.ends_with("/api/v4") {
            base.to_string()
        } else {
            format!("{base}/api/v4")
        };
        let client = crate::http::client(Duration::from_secs(60))
            .map_err(|error| RepositoryError::Other(format!("GitLab client: {error}")))?;
        Ok(GitLabRepository {
            client,
            api,
            project: encode(&format!("{owner}/{name}")),
            token: token.to_string(),
            branch,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/projects/{}/{rest}", self.api, self.project)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), RepositoryError> {
        let mut request = self
            .client
            .request(method.clone(), url)
            .header("PRIVATE-TOKEN", &self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| RepositoryError::Http {
                operation: format!("{method} {url}"),
                status: 0,
                message: error.to_string(),
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }

    /// The paths of the base tree's entries that `keep` accepts (at most 50 pages of 100).
    async fn tree_paths(&self, keep: fn(&Value) -> bool) -> Result<Vec<String>, RepositoryError> {
        let mut files = Vec::new();
        for page in 1..=50 {
            let url = self.url(&format!(
                "repository/tree?recursive=true&ref={}&per_page=100&page={page}",
                encode(&self.branch)
            ));
            let entries = self
                .request_json(reqwest::Method::GET, &url, None, &[200])
                .await?;
            let entries = entries.as_array().cloned().unwrap_or_default();
            let count = entries.len();
            files.extend(
                entries
                    .iter()
                    .filter(|entry| keep(entry))
                    .filter_map(|entry| entry["path"].as_str().map(str::to_string)),
            );
            if count < 100 {
                break;
            }
        }
        Ok(files)
    }

    /// The JSON of a reply whose status is one of `ok` (null when the body is not JSON), or the
    /// HTTP error.
    async fn request_json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, RepositoryError> {
        let (status, text) = self.call(method.clone(), url, body).await?;
        if ok.contains(&status) {
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        } else {
            Err(RepositoryError::Http {
                operation: format!("{method} {url}"),
                status,
                message: text.chars().take(300).collect(),
            })
        }
    }

    async fn find_open(
        &self,
        branch: &str,
        fingerprint: &str,
    ) -> Result<Option<ChangeRequestRef>, RepositoryError> {
        let by_branch = self
            .request_json(
                reqwest::Method::GET,
                &self.url(&format!(
                    "merge_requests?state=opened&source_branch={}",
                    encode(branch)
                )),
                None,
                &[200],
            )
            .await?;
        if let Some(existing) = by_branch.as_array().and_then(|list| list.first()) {
            return Ok(Some(reference(existing)));
        }
        let open = self
            .request_json(
                reqwest::Method::GET,
                &self.url("merge_requests?state=opened&per_page=100"),
                None,
                &[200],
            )
            .await?;
        Ok(open.as_array().and_then(|list| {
            list.iter()
                .find(|mr| {
                    mr["description"]
                        .as_str()
                        .and_then(proposal::fingerprint_in)
                        == Some(fingerprint)
                })
                .map(reference)
        }))
    }

    async fn propose(&self, request: &ChangeRequest) -> Result<ChangeRequestRef, RepositoryError> {
        let (fingerprint, message) = super::request_parts(request);
        let branch = proposal::branch_name(&fingerprint);
        if let Some(existing) = self.find_open(&branch, &fingerprint).await? {
            return Ok(existing);
        }
        let actions: Vec<Value> = request
            .changes
            .iter()
            .map(|change| {
                json!({
                    "action": if change.operation == Operation::Create { "create" } else { "update" },
                    "file_path": change.path,
                    "content": change.content,
                })
            })
            .collect();
        let commit = json!({
            "branch": branch,
            "start_branch": self.branch,
            "commit_message": message,
            "actions": actions,
        });
        let (status, text) = self
            .call(
                reqwest::Method::POST,
                &self.url("repository/commits"),
                Some(&commit),
            )
            .await?;
        match status {
            201 => {}
            // The branch exists from an earlier attempt: it stands, never rewritten.
            400 if text.contains("already exists") => {
                tracing::info!(%branch, "branch exists already; opening the merge request from it");
            }
            status => {
                return Err(RepositoryError::Http {
                    operation: "POST repository/commits".to_string(),
                    status,
                    message: text.chars().take(300).collect(),
                });
            }
        }
        let merge_request = json!({
            "source_branch": branch,
            "target_branch": self.branch,
            "title": format!("Draft: {}", request.title),
            "description": request.description,
            "labels": proposal::LABEL,
            "remove_source_branch": false,
        });
        let created = self
            .request_json(
                reqwest::Method::POST,
                &self.url("merge_requests"),
                Some(&merge_request),
                &[201],
            )
            .await?;
        Ok(reference(&created))
    }
}

fn reference(merge_request: &Value) -> ChangeRequestRef {
    ChangeRequestRef {
        id: merge_request["iid"]
            .as_u64()
            .map(|iid| iid.to_string())
            .unwrap_or_default(),
        url: merge_request["web_url"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

impl RepositoryClient for GitLabRepository {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn list_files(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(self.tree_paths(|entry| entry["type"] == "blob"))
    }

    fn symlinks(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(self.tree_paths(|entry| entry["mode"] == "120000"))
    }

    fn get_file<'a>(&'a self, path: &'a str) -> RepoFuture<'a, Option<String>> {
        Box::pin(async move {
            let url = self.url(&format!(
                "repository/files/{}/raw?ref={}",
                // Checked first: GitLab decodes `%2F`, so `..` segments would still count.
                encode(super::url_path(path).map(|_| path)?),
                encode(&self.branch)
            ));
            let (status, text) = self.call(reqwest::Method::GET, &url, None).await?;
            match status {
                200 => Ok(Some(text)),
                404 => Ok(None),
                status => Err(RepositoryError::Http {
                    operation: format!("GET {url}"),
                    status,
                    message: text.chars().take(300).collect(),
                }),
            }
        })
    }

    fn create_change_request<'a>(
        &'a self,
        request: &'a ChangeRequest,
    ) -> RepoFuture<'a, ChangeRequestRef> {
        Box::pin(self.propose(request))
    }
}
