//! The tools a model may call before it answers (`[sinks.X.context] tools = true`):
//! `read_file {path, start_line, end_line}`, `grep {pattern, path}` and `list_files {path}`.
//!
//! They read the repository through the same client the context comes from, so what they can
//! reach is the base branch and nothing else: a path outside the repository, a file the guard
//! denies (`.env`, keys, credential stores, CI) or a symbolic link is refused, with the reason
//! as the tool's result. Every result is redacted like log text before it is sent and counts
//! toward `max_tool_bytes`; past it, a tool answers that the budget is spent.

use regex::RegexBuilder;
use serde_json::json;

use super::model::{ToolCall, ToolSpec};
use super::repository::RepositoryClient;
use super::validate::Validator;

/// Most lines one `read_file` returns.
const MAX_READ_LINES: usize = 400;
/// Most files one `grep` reads, and most matching lines it returns.
const MAX_GREP_FILES: usize = 200;
const MAX_GREP_MATCHES: usize = 100;
/// Most paths one `list_files` returns.
const MAX_LISTED: usize = 500;
/// Size of a compiled `grep` pattern, bytes (a hostile pattern cannot take the agent's memory).
const MAX_PATTERN_SIZE: usize = 1 << 20;

/// The tools, as the providers' tool-calling formats describe them.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "read_file",
            description: "Read lines of a file of the repository (1-based, inclusive; at most 400).",
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Repository-relative path."},
                    "start_line": {"type": "integer", "minimum": 1},
                    "end_line": {"type": "integer", "minimum": 1}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "grep",
            description: "Lines matching a regular expression in the repository's files under a path (`path:line: text`).",
            parameters: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "A regular expression (Rust regex syntax)."},
                    "path": {"type": "string", "description": "A directory or file; empty for the whole repository."}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "list_files",
            description: "The repository's files under a directory.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "A directory; empty for the whole repository."}
                },
                "additionalProperties": false
            }),
        },
    ]
}

/// Runs tool calls against one repository within a byte budget.
pub struct ToolRunner<'a> {
    client: &'a dyn RepositoryClient,
    validator: &'a Validator,
    redact: &'a (dyn Fn(&str) -> String + Send + Sync),
    bytes_left: usize,
    files: Option<Vec<String>>,
}

impl<'a> ToolRunner<'a> {
    pub fn new(
        client: &'a dyn RepositoryClient,
        validator: &'a Validator,
        redact: &'a (dyn Fn(&str) -> String + Send + Sync),
        max_bytes: usize,
    ) -> Self {
        ToolRunner {
            client,
            validator,
            redact,
            bytes_left: max_bytes,
            files: None,
        }
    }

    /// What `call` returns to the model: its result, or why it was refused.
    pub async fn run(&mut self, call: &ToolCall) -> String {
        if self.bytes_left == 0 {
            return "refused: the tool budget (max_tool_bytes) is spent; answer with what you have"
                .to_string();
        }
        let result = match call.name.as_str() {
            "read_file" => self.read_file(&call.arguments).await,
            "grep" => self.grep(&call.arguments).await,
            "list_files" => self.list_files(&call.arguments).await,
            other => Err(format!("no tool named {other}")),
        };
        let text = match result {
            Ok(text) => (self.redact)(&text),
            Err(reason) => format!("refused: {reason}"),
        };
        let mut cut = text.len().min(self.bytes_left);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.bytes_left -= cut;
        if cut < text.len() {
            format!("{}\n[cut: the tool budget is spent]", &text[..cut])
        } else {
            text
        }
    }

    async fn files(&mut self) -> Result<&[String], String> {
        if self.files.is_none() {
            let files = self.client.list_files().await.map_err(|e| e.to_string())?;
            let links = self.client.symlinks().await.map_err(|e| e.to_string())?;
            self.files = Some(
                files
                    .into_iter()
                    .filter(|file| !links.contains(file))
                    .filter(|file| self.validator.check_read_path(file).is_ok())
                    .collect(),
            );
        }
        Ok(self.files.as_deref().unwrap_or_default())
    }

    /// A path argument, checked: repository-relative, no `..`, readable by the guard.
    fn path_argument(arguments: &serde_json::Value, required: bool) -> Result<String, String> {
        let path = match arguments.get("path") {
            Some(serde_json::Value::String(path)) => path.trim().trim_start_matches("./"),
            None | Some(serde_json::Value::Null) if !required => "",
            _ => return Err("`path` must be a string".to_string()),
        };
        if path.starts_with('/')
            || path.split('/').any(|part| part == "..")
            || path.contains('\0')
            || path.contains('\\')
        {
            return Err(format!("{path} is not a path inside the repository"));
        }
        Ok(path.trim_end_matches('/').to_string())
    }

    async fn read_file(&mut self, arguments: &serde_json::Value) -> Result<String, String> {
        let path = Self::path_argument(arguments, true)?;
        self.validator
            .check_read_path(&path)
            .map_err(|reason| reason.to_string())?;
        if !self.files().await?.contains(&path) {
            return Err(format!("{path} is not a file of the repository"));
        }
        let content = self
            .client
            .get_file(&path)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{path} is not a file of the repository"))?;
        let lines: Vec<&str> = content.lines().collect();
        let number = |key: &str| arguments.get(key).and_then(serde_json::Value::as_u64);
        let start = number("start_line").unwrap_or(1).max(1) as usize;
        let end = number("end_line")
            .map_or(lines.len(), |end| end as usize)
            .min(lines.len())
            .min(start + MAX_READ_LINES - 1);
        if start > lines.len() {
            return Ok(format!("{path} has {} lines", lines.len()));
        }
        let mut out = format!("{path} lines {start}-{end} of {}:\n", lines.len());
        for (index, line) in lines[start - 1..end].iter().enumerate() {
            out.push_str(&format!("{:>5}  {line}\n", start + index));
        }
        Ok(out)
    }

    async fn grep(&mut self, arguments: &serde_json::Value) -> Result<String, String> {
        let pattern = arguments
            .get("pattern")
            .and_then(serde_json::Value::as_str)
            .ok_or("`pattern` must be a string")?;
        let regex = RegexBuilder::new(pattern)
            .size_limit(MAX_PATTERN_SIZE)
            .build()
            .map_err(|e| format!("invalid pattern: {e}"))?;
        let under = Self::path_argument(arguments, false)?;
        let candidates: Vec<String> = self
            .files()
            .await?
            .iter()
            .filter(|file| {
                under.is_empty() || *file == &under || file.starts_with(&format!("{under}/"))
            })
            .take(MAX_GREP_FILES)
            .cloned()
            .collect();
        let mut out = String::new();
        let mut matches = 0;
        'files: for path in &candidates {
            let Ok(Some(content)) = self.client.get_file(path).await else {
                continue;
            };
            for (index, line) in content.lines().enumerate() {
                if regex.is_match(line) {
                    out.push_str(&format!("{path}:{}: {}\n", index + 1, line.trim_end()));
                    matches += 1;
                    if matches >= MAX_GREP_MATCHES {
                        out.push_str("[more matches not shown]\n");
                        break 'files;
                    }
                }
            }
        }
        if out.is_empty() {
            out = format!("no line matches in {} files", candidates.len());
        }
        Ok(out)
    }

    async fn list_files(&mut self, arguments: &serde_json::Value) -> Result<String, String> {
        let under = Self::path_argument(arguments, false)?;
        let listed: Vec<&String> = self
            .files()
            .await?
            .iter()
            .filter(|file| under.is_empty() || file.starts_with(&format!("{under}/")))
            .collect();
        let mut out: String = listed
            .iter()
            .take(MAX_LISTED)
            .map(|file| format!("{file}\n"))
            .collect();
        if listed.len() > MAX_LISTED {
            out.push_str(&format!("[{} more]\n", listed.len() - MAX_LISTED));
        }
        if out.is_empty() {
            out = format!("no files under {under}");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::repository::{RepoFuture, RepositoryError};

    struct Files(Vec<(&'static str, &'static str)>);

    impl RepositoryClient for Files {
        fn provider(&self) -> &'static str {
            "local"
        }

        fn list_files(&self) -> RepoFuture<'_, Vec<String>> {
            let paths = self.0.iter().map(|(path, _)| path.to_string()).collect();
            Box::pin(async move { Ok(paths) })
        }

        fn get_file<'a>(&'a self, path: &'a str) -> RepoFuture<'a, Option<String>> {
            let content = self
                .0
                .iter()
                .find(|(known, _)| *known == path)
                .map(|(_, content)| content.to_string());
            Box::pin(async move { Ok(content) })
        }

        fn create_change_request<'a>(
            &'a self,
            _request: &'a crate::remediation::ChangeRequest,
        ) -> RepoFuture<'a, crate::remediation::incident::ChangeRequestRef> {
            Box::pin(async { Err(RepositoryError::Other("read only".to_string())) })
        }
    }

    fn call(name: &str, arguments: serde_json::Value) -> ToolCall {
        ToolCall {
            id: "1".to_string(),
            name: name.to_string(),
            arguments,
        }
    }

    #[tokio::test]
    async fn tools_stay_inside_the_repository_its_guard_and_the_budget() {
        let files = Files(vec![
            (
                "app/cart.py",
                "def total(x):\n    return x / 0  # key=AKIAIOSFODNN7EXAMPLE\n",
            ),
            ("app/.env", "DB_PASSWORD=hunter2\n"),
            (".github/workflows/ci.yml", "run: deploy\n"),
        ]);
        let validator = Validator::new(crate::remediation::validate::Guard::default()).unwrap();
        let redactor = crate::remediation::redact::Redactor::new(&[]).unwrap();
        let redact = |text: &str| redactor.redact(text).text;
        let mut runner = ToolRunner::new(&files, &validator, &redact, 10_000);
        let read = runner
            .run(&call("read_file", json!({"path": "app/cart.py"})))
            .await;
        assert!(read.contains("    2      return x / 0"), "{read}");
        assert!(!read.contains("AKIAIOSFODNN7EXAMPLE"), "redacted: {read}");
        for refused in [
            call("read_file", json!({"path": "app/.env"})),
            call("read_file", json!({"path": "../app/cart.py"})),
            call("read_file", json!({"path": "/etc/passwd"})),
            call("read_file", json!({"path": 7})),
            call("read_file", json!("not an object")),
            call("grep", json!({"pattern": "(unclosed"})),
            call("delete_file", json!({"path": "app/cart.py"})),
        ] {
            let result = runner.run(&refused).await;
            assert!(result.starts_with("refused:"), "{refused:?}: {result}");
        }
        let grep = runner
            .run(&call("grep", json!({"pattern": "PASSWORD|deploy"})))
            .await;
        assert!(
            grep.starts_with("no line matches"),
            "denied files are not searched: {grep}"
        );
        let listing = runner.run(&call("list_files", json!({}))).await;
        assert_eq!(listing, "app/cart.py\n");
        // The budget: a small one cuts the result, then refuses.
        let mut small = ToolRunner::new(&files, &validator, &redact, 20);
        let cut = small
            .run(&call("read_file", json!({"path": "app/cart.py"})))
            .await;
        assert!(cut.ends_with("[cut: the tool budget is spent]"), "{cut}");
        let spent = small.run(&call("list_files", json!({}))).await;
        assert!(spent.starts_with("refused: the tool budget"), "{spent}");
    }
}
