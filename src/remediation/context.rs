//! The source code a model needs: for each in-repository frame of a trace (top frames first),
//! the lines around it, read from the repository, within a size budget (DESIGN §6.4).
//!
//! A frame's path is where the code ran (`/app/shop/cart.py`); the repository knows it as
//! `shop/cart.py`. `path_map` rewrites prefixes (longest wins); a path that still names no
//! file is matched, as Sentry does, to the shortest repository path ending with as much of the
//! frame's path as possible.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::repository::{RepositoryClient, RepositoryError};
use super::validate::Validator;
use crate::event::{Frame, StackTrace};

/// Stack-trace path prefixes → repository path prefixes (`{ "/app/" = "" }`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct PathMap(BTreeMap<String, String>);

impl PathMap {
    pub fn new(rules: impl IntoIterator<Item = (String, String)>) -> Self {
        PathMap(rules.into_iter().collect())
    }

    /// The path with its longest matching prefix replaced, if any matches.
    pub fn map(&self, path: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, replacement)| format!("{replacement}{}", &path[prefix.len()..]))
    }
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_start_matches("./").trim_start_matches('/');
    trimmed.replace("/./", "/")
}

/// The repository path of a frame's file, if the repository has one.
pub fn resolve(
    frame_file: &str,
    path_map: &PathMap,
    base_path: &str,
    files: &[String],
) -> Option<String> {
    let with_base = |path: String| {
        let base = base_path.trim_matches('/');
        if base.is_empty() {
            path
        } else {
            format!("{base}/{path}")
        }
    };
    let exists = |candidate: &String| files.iter().any(|file| file == candidate);
    if let Some(mapped) = path_map.map(frame_file) {
        let candidate = with_base(normalize(&mapped));
        if exists(&candidate) {
            return Some(candidate);
        }
    }
    let normalized = normalize(frame_file);
    let candidate = with_base(normalized.clone());
    if exists(&candidate) {
        return Some(candidate);
    }
    // Longest suffix of the frame's path that ends some repository path; shortest such path.
    let components: Vec<&str> = normalized.split('/').filter(|c| !c.is_empty()).collect();
    for start in 0..components.len() {
        let suffix = components[start..].join("/");
        let best = files
            .iter()
            .filter(|file| *file == &suffix || file.ends_with(&format!("/{suffix}")))
            .min_by_key(|file| file.len());
        if let Some(best) = best {
            return Some(best.clone());
        }
    }
    None
}

/// The frames of a trace whose code may be read: the application's frames with a file, top
/// first.
pub fn frames_to_read(trace: &StackTrace) -> Vec<&Frame> {
    // Only the application's frames: a standard library or package frame resolved by its name
    // would send an unrelated repository file as "the failing code".
    trace
        .frames
        .iter()
        .filter(|frame| frame.file.is_some() && frame.in_app)
        .collect()
}

/// Limits on what is sent.
#[derive(Debug, Clone, Copy)]
pub struct ContextBudget {
    /// Lines before and after a frame's line.
    pub lines_around: usize,
    /// Bytes of source in all snippets together.
    pub max_bytes: usize,
    pub max_files: usize,
}

impl Default for ContextBudget {
    fn default() -> Self {
        ContextBudget {
            lines_around: 20,
            max_bytes: 24_000,
            max_files: 5,
        }
    }
}

/// Lines of one file around the frames in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
    /// The frames' lines in this file.
    pub frame_lines: Vec<u32>,
}

/// Reads the snippets for `frames` (see [`frames_to_read`]) from the repository, in their
/// order, within `budget`. Frames without a file are skipped.
///
/// A frame naming a file the validator denies (`.env`, keys, credential stores, CI) is
/// skipped: the trace is untrusted log text, and a fix could never touch that file anyway.
pub async fn gather(
    frames: &[&Frame],
    client: &dyn RepositoryClient,
    validator: &Validator,
    path_map: &PathMap,
    base_path: &str,
    budget: ContextBudget,
) -> Result<Vec<Snippet>, RepositoryError> {
    if frames.is_empty() {
        return Ok(Vec::new());
    }
    let files = client.list_files().await?;
    // Repository path → frame lines, in the order the files first appear among the frames.
    let mut order: Vec<String> = Vec::new();
    let mut lines: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for frame in frames {
        let Some(file) = frame.file.as_deref() else {
            continue;
        };
        let Some(path) = resolve(file, path_map, base_path, &files) else {
            continue;
        };
        if let Err(reason) = validator.check_read_path(&path) {
            tracing::debug!(%reason, "a frame's file is not read for context");
            continue;
        }
        if !lines.contains_key(&path) {
            if order.len() >= budget.max_files {
                continue;
            }
            order.push(path.clone());
        }
        lines.entry(path).or_default().extend(frame.line);
    }
    let mut snippets = Vec::new();
    let mut used = 0;
    for path in order {
        let Some(content) = client.get_file(&path).await? else {
            continue;
        };
        let all: Vec<&str> = content.lines().collect();
        if all.is_empty() {
            continue;
        }
        let frame_lines = lines.remove(&path).unwrap_or_default();
        let (start, end) = if frame_lines.is_empty() {
            (1, all.len().min(2 * budget.lines_around + 1))
        } else {
            let low = *frame_lines.iter().min().unwrap_or(&1) as usize;
            let high = *frame_lines.iter().max().unwrap_or(&1) as usize;
            (
                low.saturating_sub(budget.lines_around).max(1),
                (high + budget.lines_around).min(all.len()),
            )
        };
        if start > all.len() {
            continue;
        }
        let mut text = all[start - 1..end].join("\n");
        let remaining = budget.max_bytes.saturating_sub(used);
        if remaining == 0 {
            break;
        }
        let mut end_line = end;
        if text.len() > remaining {
            // Cut at a line boundary inside the budget.
            let cut = text[..remaining].rfind('\n').unwrap_or(0);
            if cut == 0 {
                break;
            }
            text.truncate(cut);
            end_line = start + text.lines().count() - 1;
        }
        used += text.len();
        snippets.push(Snippet {
            path,
            start_line: start,
            end_line,
            text,
            frame_lines,
        });
    }
    Ok(snippets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<String> {
        [
            "shop/cart.py",
            "src/main/java/com/acme/shop/Cart.java",
            "tests/shop/cart.py",
            "app/main.go",
            "vendor/lib/cart.py",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn the_longest_prefix_wins_then_the_shortest_suffix_match() {
        let map = PathMap::new([
            ("/app/".to_string(), String::new()),
            ("/app/vendor/".to_string(), "vendor/".to_string()),
        ]);
        assert_eq!(
            resolve("/app/shop/cart.py", &map, "", &files()).as_deref(),
            Some("shop/cart.py")
        );
        assert_eq!(
            resolve("/app/vendor/lib/cart.py", &map, "", &files()).as_deref(),
            Some("vendor/lib/cart.py")
        );
        // No mapping: the shortest repository path ending with the longest suffix.
        let empty = PathMap::default();
        assert_eq!(
            resolve("/srv/deploy/v2/shop/cart.py", &empty, "", &files()).as_deref(),
            Some("shop/cart.py")
        );
        assert_eq!(
            resolve("com/acme/shop/Cart.java", &empty, "", &files()).as_deref(),
            Some("src/main/java/com/acme/shop/Cart.java")
        );
        assert_eq!(
            resolve("/tmp/build/main.go", &empty, "", &files()).as_deref(),
            Some("app/main.go")
        );
        assert_eq!(
            resolve("/usr/lib/python3.11/json/decoder.py", &empty, "", &files()),
            None
        );
    }

    #[test]
    fn a_base_path_prefixes_mapped_paths() {
        let map = PathMap::new([("/app/".to_string(), String::new())]);
        let files = vec!["services/shop/cart.py".to_string()];
        assert_eq!(
            resolve("/app/cart.py", &map, "services/shop", &files).as_deref(),
            Some("services/shop/cart.py")
        );
    }

    /// A repository of a few files that writes down which ones are read.
    struct Recording {
        files: Vec<(&'static str, &'static str)>,
        read: std::sync::Mutex<Vec<String>>,
    }

    impl RepositoryClient for Recording {
        fn provider(&self) -> &'static str {
            "local"
        }

        fn list_files(&self) -> super::super::repository::RepoFuture<'_, Vec<String>> {
            let paths = self
                .files
                .iter()
                .map(|(path, _)| path.to_string())
                .collect();
            Box::pin(async move { Ok(paths) })
        }

        fn get_file<'a>(
            &'a self,
            path: &'a str,
        ) -> super::super::repository::RepoFuture<'a, Option<String>> {
            self.read.lock().unwrap().push(path.to_string());
            let content = self
                .files
                .iter()
                .find(|(known, _)| *known == path)
                .map(|(_, content)| content.to_string());
            Box::pin(async move { Ok(content) })
        }

        fn create_change_request<'a>(
            &'a self,
            _request: &'a crate::remediation::ChangeRequest,
        ) -> super::super::repository::RepoFuture<'a, crate::remediation::incident::ChangeRequestRef>
        {
            Box::pin(async { Err(RepositoryError::Other("read only".to_string())) })
        }
    }

    /// `gather` with the default guard and budget, `/app/` mapped to the repository root.
    async fn gather_under_app(frames: &[&Frame], repository: &Recording) -> Vec<Snippet> {
        let validator = Validator::new(crate::remediation::validate::Guard::default()).unwrap();
        let map = PathMap::new([("/app/".to_string(), String::new())]);
        gather(
            frames,
            repository,
            &validator,
            &map,
            "",
            ContextBudget::default(),
        )
        .await
        .unwrap()
    }

    /// A trace is untrusted text: a frame naming `.env`, a key or a credential store makes
    /// tailfix read nothing of it (its secrets went into the prompt before).
    #[tokio::test]
    async fn files_a_fix_may_never_touch_are_never_read_for_context() {
        let repository = Recording {
            files: vec![
                ("app/.env", "DB_PASS=hunter2"),
                ("config/.ENV.production", "INTERNAL_KEY=abc"),
                ("deploy/server.key", "-----BEGIN PRIVATE KEY-----"),
                ("shop/cart.py", "def total():\n    return 1 / 0\n"),
            ],
            read: std::sync::Mutex::new(Vec::new()),
        };
        let frame = |file: &str| Frame {
            file: Some(file.to_string()),
            line: Some(1),
            in_app: true,
            ..Frame::default()
        };
        let frames = [
            frame("/app/app/.env"),
            frame("/app/config/.ENV.production"),
            frame("/app/deploy/server.key"),
            frame("/app/shop/cart.py"),
        ];
        let frames: Vec<&Frame> = frames.iter().collect();
        let snippets = gather_under_app(&frames, &repository).await;
        assert_eq!(*repository.read.lock().unwrap(), vec!["shop/cart.py"]);
        assert_eq!(snippets.len(), 1);
    }

    /// A standard library frame is never matched to an application file of the same name.
    #[tokio::test]
    async fn a_library_frame_is_not_read_as_an_application_file() {
        let repository = Recording {
            files: vec![
                ("app/decoder.py", "def decode(text):\n    return text\n"),
                ("app/main.py", "import json\njson.loads(body)\n"),
            ],
            read: std::sync::Mutex::new(Vec::new()),
        };
        let trace = crate::parse::trace::analyse(
            "Traceback (most recent call last):\n  File \"/app/app/main.py\", line 2, in handle\n    json.loads(body)\n  File \"/usr/lib/python3.11/json/decoder.py\", line 355, in raw_decode\n    raise JSONDecodeError(\"Expecting value\", s, err.value) from None\njson.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        )
        .unwrap();
        gather_under_app(&frames_to_read(&trace), &repository).await;
        assert_eq!(*repository.read.lock().unwrap(), vec!["app/main.py"]);
    }
}
