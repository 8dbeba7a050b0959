//! `provider = "github"`: GitHub's REST API through `octocrab` (`base_url` is the REST root:
//! `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise, or a test server).
//!
//! A fix becomes one commit made with the git data API (blobs → tree → commit → ref) on the
//! branch `tailfix/<fingerprint12>`, then a **draft** pull request (a normal one where the
//! repository does not allow drafts) labelled `tailfix`. An open pull request with the same
//! branch or fingerprint marker is reused, never duplicated. Secondary rate limits (403/429
//! with `retry-after` or an exhausted `x-ratelimit-remaining`) are waited out, within a bound.
//! Nothing here merges, pushes to the base branch, or moves an existing branch.

use std::time::Duration;

use base64::Engine as _;
use octocrab::Octocrab;
use serde_json::{Value, json};

use super::{RepoFuture, RepositoryClient, RepositoryError};
use crate::remediation::ChangeRequest;
use crate::remediation::incident::ChangeRequestRef;
use crate::remediation::proposal;

/// Longest wait for a rate limit to reset before giving up (the incident is retried later).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

pub struct GitHubRepository {
    client: Octocrab,
    owner: String,
    name: String,
    branch: String,
}

/// A response: status, the headers that matter, and the body.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }
}

impl GitHubRepository {
    pub fn new(
        base_url: &str,
        token: &str,
        owner: String,
        name: String,
        branch: String,
    ) -> Result<Self, RepositoryError> {
        // octocrab brings its own client; its rustls needs the process-wide provider too.
        crate::http::install_crypto_provider();
        let client = Octocrab::builder()
            .base_uri(base_url.trim_end_matches('/'))
            .map_err(|error| {
                RepositoryError::Other(format!("invalid GitHub base_url `{base_url}`: {error}"))
            })?
            .personal_token(token.to_string())
            .add_header(
                http::header::USER_AGENT,
                crate::http::USER_AGENT.to_string(),
            )
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|error| RepositoryError::Other(format!("GitHub client: {error}")))?;
        Ok(GitHubRepository {
            client,
            owner,
            name,
            branch,
        })
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.name)
    }

    /// One request; rate limits are waited out and retried.
    async fn call(
        &self,
        method: &str,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Reply, RepositoryError> {
        let operation = format!("{method} {route}");
        for _ in 0..4 {
            let response = match method {
                "GET" => self.client._get(route).await,
                "POST" => self.client._post(route, body).await,
                "PATCH" => self.client._patch(route, body).await,
                other => {
                    return Err(RepositoryError::Other(format!(
                        "unsupported method {other}"
                    )));
                }
            }
            .map_err(|error| RepositoryError::Http {
                operation: operation.clone(),
                status: 0,
                message: error.to_string(),
            })?;
            let status = response.status().as_u16();
            let wait = rate_limit_wait(status, response.headers());
            let text = self
                .client
                .body_to_string(response)
                .await
                .map_err(|error| RepositoryError::Http {
                    operation: operation.clone(),
                    status,
                    message: error.to_string(),
                })?;
            match wait {
                Some(wait) if wait <= MAX_RATE_LIMIT_WAIT => {
                    tracing::info!(%operation, ?wait, "GitHub rate limit: waiting");
                    tokio::time::sleep(wait).await;
                }
                Some(wait) => {
                    return Err(RepositoryError::Http {
                        operation,
                        status,
                        message: format!("rate limited for {wait:?}, longer than we wait"),
                    });
                }
                None => return Ok(Reply { status, body: text }),
            }
        }
        Err(RepositoryError::Http {
            operation,
            status: 429,
            message: "still rate limited after retries".to_string(),
        })
    }

    /// The paths of the base tree's entries that `keep` accepts.
    async fn tree_paths(&self, keep: fn(&Value) -> bool) -> Result<Vec<String>, RepositoryError> {
        let base = self.base_sha().await?;
        let tree = self
            .request_json(
                "GET",
                &self.route(&format!("git/trees/{base}?recursive=1")),
                None,
                &[200],
            )
            .await?;
        Ok(tree["tree"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| keep(entry))
                    .filter_map(|entry| entry["path"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The JSON of a reply whose status is one of `ok`, or the HTTP error.
    async fn request_json(
        &self,
        method: &str,
        route: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, RepositoryError> {
        let reply = self.call(method, route, body).await?;
        if ok.contains(&reply.status) {
            Ok(reply.json())
        } else {
            Err(RepositoryError::Http {
                operation: format!("{method} {route}"),
                status: reply.status,
                message: reply.message(),
            })
        }
    }

    async fn base_sha(&self) -> Result<String, RepositoryError> {
        let reference = self
            .request_json(
                "GET",
                &self.route(&format!("git/ref/heads/{}", self.branch)),
                None,
                &[200],
            )
            .await?;
        reference["object"]["sha"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RepositoryError::Other("the base branch's ref has no sha".to_string()))
    }

    /// An open pull request for this branch or carrying this fingerprint's marker.
    async fn find_open(
        &self,
        branch: &str,
        fingerprint: &str,
    ) -> Result<Option<ChangeRequestRef>, RepositoryError> {
        let by_branch = self
            .request_json(
                "GET",
                &self.route(&format!("pulls?state=open&head={}:{branch}", self.owner)),
                None,
                &[200],
            )
            .await?;
        let mut candidates: Vec<Value> = by_branch.as_array().cloned().unwrap_or_default();
        if candidates.is_empty() {
            let open = self
                .request_json(
                    "GET",
                    &self.route("pulls?state=open&per_page=100"),
                    None,
                    &[200],
                )
                .await?;
            candidates = open
                .as_array()
                .map(|pulls| {
                    pulls
                        .iter()
                        .filter(|pull| {
                            pull["body"].as_str().and_then(proposal::fingerprint_in)
                                == Some(fingerprint)
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
        }
        Ok(candidates.first().map(pull_reference))
    }

    /// The whole proposal; idempotent.
    async fn propose(&self, request: &ChangeRequest) -> Result<ChangeRequestRef, RepositoryError> {
        let (fingerprint, message) = super::request_parts(request);
        let fingerprint = fingerprint.as_str();
        let (title, body) = (&request.title, &request.description);
        let branch = proposal::branch_name(fingerprint);
        if let Some(existing) = self.find_open(&branch, fingerprint).await? {
            return Ok(existing);
        }
        let base = self.base_sha().await?;
        let base_commit = self
            .request_json(
                "GET",
                &self.route(&format!("git/commits/{base}")),
                None,
                &[200],
            )
            .await?;
        let base_tree = base_commit["tree"]["sha"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut entries = Vec::new();
        for change in &request.changes {
            let blob = self
                .request_json(
                    "POST",
                    &self.route("git/blobs"),
                    Some(&json!({"content": change.content, "encoding": "utf-8"})),
                    &[201],
                )
                .await?;
            entries.push(
                json!({"path": change.path, "mode": "100644", "type": "blob", "sha": blob["sha"]}),
            );
        }
        let tree = self
            .request_json(
                "POST",
                &self.route("git/trees"),
                Some(&json!({"base_tree": base_tree, "tree": entries})),
                &[201],
            )
            .await?;
        let commit = self
            .request_json(
                "POST",
                &self.route("git/commits"),
                Some(&json!({"message": message, "tree": tree["sha"], "parents": [base]})),
                &[201],
            )
            .await?;
        let created = self
            .call(
                "POST",
                &self.route("git/refs"),
                Some(&json!({"ref": format!("refs/heads/{branch}"), "sha": commit["sha"]})),
            )
            .await?;
        match created.status {
            201 => {}
            // "Reference already exists": an earlier attempt got this far; its branch stands
            // (it is never force-moved) and the pull request is opened from it.
            422 if created.message().contains("already exists") => {
                tracing::info!(%branch, "branch exists already; opening the pull request from it");
            }
            status => {
                return Err(RepositoryError::Http {
                    operation: "POST git/refs".to_string(),
                    status,
                    message: created.message(),
                });
            }
        }
        let pull = json!({"title": title, "head": branch, "base": self.branch, "body": body, "draft": true});
        let mut opened = self.call("POST", &self.route("pulls"), Some(&pull)).await?;
        if opened.status == 422
            && opened
                .body
                .to_lowercase()
                .contains("draft pull requests are not supported")
        {
            tracing::info!("draft pull requests are not supported here; opening a normal one");
            let mut normal = pull.clone();
            normal["draft"] = Value::Bool(false);
            opened = self
                .call("POST", &self.route("pulls"), Some(&normal))
                .await?;
        }
        if opened.status != 201 {
            return Err(RepositoryError::Http {
                operation: "POST pulls".to_string(),
                status: opened.status,
                message: opened.message(),
            });
        }
        let pull = opened.json();
        let number = pull["number"].as_u64().unwrap_or(0);
        let labelled = self
            .call(
                "POST",
                &self.route(&format!("issues/{number}/labels")),
                Some(&json!({"labels": [proposal::LABEL]})),
            )
            .await;
        if let Err(error) = labelled {
            tracing::warn!(%error, "cannot label the pull request");
        }
        Ok(pull_reference(&pull))
    }
}

fn pull_reference(pull: &Value) -> ChangeRequestRef {
    ChangeRequestRef {
        id: pull["number"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        url: pull["html_url"].as_str().unwrap_or_default().to_string(),
    }
}

/// How long a rate-limited reply asks us to wait: `retry-after`, or until
/// `x-ratelimit-reset` when `x-ratelimit-remaining` is 0.
fn rate_limit_wait(status: u16, headers: &http::HeaderMap) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok())?;
        let now = crate::time::Timestamp::now().unix_seconds();
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1) as u64));
    }
    None
}

impl RepositoryClient for GitHubRepository {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn list_files(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(self.tree_paths(|entry| entry["type"] == "blob"))
    }

    fn symlinks(&self) -> RepoFuture<'_, Vec<String>> {
        Box::pin(self.tree_paths(|entry| entry["mode"] == "120000"))
    }

    fn create_change_request<'a>(
        &'a self,
        request: &'a ChangeRequest,
    ) -> RepoFuture<'a, ChangeRequestRef> {
        Box::pin(self.propose(request))
    }

    fn get_file<'a>(&'a self, path: &'a str) -> RepoFuture<'a, Option<String>> {
        Box::pin(async move {
            let route = self.route(&format!(
                "contents/{}?ref={}",
                super::url_path(path)?,
                super::percent_encode(&self.branch)
            ));
            let reply = self.call("GET", &route, None).await?;
            match reply.status {
                404 => Ok(None),
                200 => {
                    let content = reply.json()["content"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('\n', "");
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(content)
                        .map_err(|error| {
                            RepositoryError::Other(format!(
                                "{path}: bad base64 from GitHub: {error}"
                            ))
                        })?;
                    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
                }
                status => Err(RepositoryError::Http {
                    operation: format!("GET {route}"),
                    status,
                    message: reply.message(),
                }),
            }
        })
    }
}
