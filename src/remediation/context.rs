//! The source code a model needs: for each in-repository frame of a trace (the root cause's
//! block first, innermost frames first), the function around it and the definitions of the
//! names its line uses, read from the repository, within a size budget (DESIGN §6.4).
//!
//! A frame's path is where the code ran (`/app/shop/cart.py`); the repository knows it as
//! `shop/cart.py`. `path_map` rewrites prefixes (longest wins); a path that still names no
//! file is matched, as Sentry does, to the shortest repository path ending with as much of the
//! frame's path as possible.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::repository::{RepositoryClient, RepositoryError};
use super::scope::{self, LineRange};
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

/// Lines of one file sent to the model: a failing frame's function, or a definition of a name
/// a failing line uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    pub text: String,
    /// The frames' lines in this snippet.
    pub frame_lines: Vec<u32>,
    /// What the snippet is, where it is not a frame's code: `definition of RATES_TO_EUR`.
    pub note: Option<String>,
}

/// Repository files read for definitions, per incident, beyond the frames' own: the nearest
/// first (same directory, then the longest shared path). Each is one request to a remote
/// repository.
pub const MAX_DEFINITION_FILES: usize = 30;
/// Names of one failing line looked up.
const MAX_NAMES_PER_LINE: usize = 8;

/// A piece of a file chosen for the prompt, before the budget is applied.
struct Piece {
    path: String,
    range: LineRange,
    note: Option<String>,
}

/// Reads the code a model needs for `frames` (see [`frames_to_read`]), most relevant first,
/// within `budget`: each frame's enclosing function whole (or its first lines and the lines
/// around the frame, if it is long; the lines around the frame where no function is found), and
/// where the names a failing line uses are defined, in its file or in the nearest files of the
/// same language. The first frame's function and definitions come before the other frames'.
///
/// A frame naming a file the validator denies (`.env`, keys, credential stores, CI) is
/// skipped, and no definition is read from such a file: the trace is untrusted log text, and a
/// fix could never touch that file anyway.
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
    // The frames that name a readable repository file, in order: (path, line).
    let mut located: Vec<(String, Option<u32>)> = Vec::new();
    let mut frame_files: Vec<String> = Vec::new();
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
        if !frame_files.contains(&path) {
            if frame_files.len() >= budget.max_files {
                continue;
            }
            frame_files.push(path.clone());
        }
        located.push((path, frame.line));
    }
    let mut cache: BTreeMap<String, Option<String>> = BTreeMap::new();
    for path in &frame_files {
        let content = client.get_file(path).await?;
        cache.insert(path.clone(), content);
    }
    // Each frame's code, then (first frame first) the definitions its line needs.
    let mut functions: Vec<Piece> = Vec::new();
    let mut wanted: Vec<(usize, String)> = Vec::new();
    for (index, (path, line)) in located.iter().enumerate() {
        let Some(Some(content)) = cache.get(path) else {
            continue;
        };
        let lines: Vec<&str> = content.lines().collect();
        if lines.is_empty() {
            continue;
        }
        functions.extend(frame_pieces(path, &lines, *line, budget.lines_around));
        if let Some(text) = line.and_then(|l| lines.get((l as usize).checked_sub(1)?)) {
            for name in scope::names_used(text).into_iter().take(MAX_NAMES_PER_LINE) {
                if !wanted.iter().any(|(_, known)| *known == name) {
                    wanted.push((index, name));
                }
            }
        }
    }
    let definitions = find_definitions(
        &wanted, &located, &functions, &files, &mut cache, client, validator,
    )
    .await?;
    // Most relevant first: the first frame's function and its definitions, then the rest.
    let first_path = located.first().map(|(path, _)| path.clone());
    let mut ordered: Vec<Piece> = Vec::new();
    let mut rest_functions = Vec::new();
    for piece in functions {
        if ordered.is_empty() && Some(&piece.path) == first_path.as_ref() {
            ordered.push(piece);
        } else {
            rest_functions.push(piece);
        }
    }
    let (first_definitions, rest_definitions): (Vec<_>, Vec<_>) =
        definitions.into_iter().partition(|(frame, _)| *frame == 0);
    ordered.extend(first_definitions.into_iter().map(|(_, piece)| piece));
    ordered.extend(rest_functions);
    ordered.extend(rest_definitions.into_iter().map(|(_, piece)| piece));
    Ok(within_budget(ordered, &located, &cache, budget.max_bytes))
}

/// The code of one frame: its function whole, or the function's first lines and the lines
/// around the frame when the function is long, or only those lines where there is no function.
fn frame_pieces(path: &str, lines: &[&str], line: Option<u32>, around: usize) -> Vec<Piece> {
    let piece = |start: usize, end: usize| Piece {
        path: path.to_string(),
        range: LineRange {
            start: start.max(1),
            end: end.min(lines.len()),
        },
        note: None,
    };
    let Some(line) = line
        .map(|l| l as usize)
        .filter(|l| (1..=lines.len()).contains(l))
    else {
        return vec![piece(1, 2 * around + 1)];
    };
    let window = piece(line.saturating_sub(around), line + around);
    let function =
        scope::shape_of(path).and_then(|shape| scope::enclosing_function(lines, line, shape));
    match function {
        Some(function) if function.len() <= scope::MAX_FUNCTION_LINES => {
            vec![piece(function.start, function.end)]
        }
        Some(function) => vec![piece(function.start, function.start + 4), window],
        None => vec![window],
    }
}

/// Where the `wanted` names (each with the index of the frame whose line uses it) are
/// defined: in a frame's file outside the code already chosen, else in the nearest files of
/// the same language, reading at most [`MAX_DEFINITION_FILES`] more files.
async fn find_definitions(
    wanted: &[(usize, String)],
    located: &[(String, Option<u32>)],
    chosen: &[Piece],
    files: &[String],
    cache: &mut BTreeMap<String, Option<String>>,
    client: &dyn RepositoryClient,
    validator: &Validator,
) -> Result<Vec<(usize, Piece)>, RepositoryError> {
    let mut found: Vec<(usize, Piece)> = Vec::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let already = |path: &str, range: LineRange, found: &[(usize, Piece)]| {
        chosen
            .iter()
            .chain(found.iter().map(|(_, piece)| piece))
            .any(|p| p.path == path && p.range.start <= range.start && range.end <= p.range.end)
    };
    let mut remaining: Vec<&(usize, String)> = wanted.iter().collect();
    // The frames' files first, then the nearest others of the same family.
    let frame_paths: Vec<&String> = located.iter().map(|(path, _)| path).collect();
    let mut candidates: Vec<String> = Vec::new();
    for path in &frame_paths {
        if !candidates.contains(path) {
            candidates.push((*path).clone());
        }
    }
    let near = |file: &str| {
        frame_paths
            .iter()
            .map(|path| shared_directories(path, file))
            .max()
            .unwrap_or(0)
    };
    let families: Vec<scope::CodeShape> = frame_paths
        .iter()
        .filter_map(|path| scope::shape_of(path))
        .collect();
    let mut others: Vec<&String> = files
        .iter()
        .filter(|file| !candidates.contains(file))
        .filter(|file| {
            scope::shape_of(file)
                .is_some_and(|shape| families.iter().any(|f| scope::same_family(*f, shape)))
        })
        .filter(|file| validator.check_read_path(file).is_ok())
        .collect();
    others.sort_by_key(|file| (std::cmp::Reverse(near(file)), file.len()));
    candidates.extend(others.into_iter().take(MAX_DEFINITION_FILES).cloned());
    for path in candidates {
        if remaining.is_empty() {
            break;
        }
        if !cache.contains_key(&path) {
            let content = client.get_file(&path).await?;
            cache.insert(path.clone(), content);
        }
        let (Some(Some(content)), Some(shape)) = (cache.get(&path), scope::shape_of(&path)) else {
            continue;
        };
        let lines: Vec<&str> = content.lines().collect();
        let mut still = Vec::new();
        for entry in remaining {
            let (frame, name) = entry;
            match scope::find_definition(&lines, name, shape) {
                Some(range) if already(&path, range, &found) => {}
                Some(range) => found.push((
                    *frame,
                    Piece {
                        path: path.clone(),
                        range,
                        note: Some(format!("definition of {name}")),
                    },
                )),
                None => still.push(entry),
            }
        }
        remaining = still;
    }
    Ok(found)
}

/// How many leading directories two repository paths share.
fn shared_directories(a: &str, b: &str) -> usize {
    let dirs = |p: &str| -> Vec<String> {
        let mut parts: Vec<String> = p.split('/').map(str::to_string).collect();
        parts.pop();
        parts
    };
    dirs(a)
        .iter()
        .zip(dirs(b).iter())
        .take_while(|(x, y)| x == y)
        .count()
}

/// The pieces as snippets, in order, overlapping pieces of one file merged into the first, up
/// to `max_bytes` of text: a piece that does not fit is left out (the first is cut at a line).
fn within_budget(
    pieces: Vec<Piece>,
    located: &[(String, Option<u32>)],
    cache: &BTreeMap<String, Option<String>>,
    max_bytes: usize,
) -> Vec<Snippet> {
    let mut merged: Vec<Piece> = Vec::new();
    for piece in pieces {
        if piece.range.is_empty() {
            continue;
        }
        let overlapping = merged.iter_mut().find(|known| {
            known.path == piece.path
                && piece.range.start <= known.range.end + 1
                && known.range.start <= piece.range.end + 1
        });
        match overlapping {
            Some(known) => {
                known.range.start = known.range.start.min(piece.range.start);
                known.range.end = known.range.end.max(piece.range.end);
                if known.note.is_some() && piece.note.is_none() {
                    known.note = None;
                }
            }
            None => merged.push(piece),
        }
    }
    let mut snippets = Vec::new();
    let mut used = 0;
    for piece in merged {
        let Some(Some(content)) = cache.get(&piece.path) else {
            continue;
        };
        let lines: Vec<&str> = content.lines().collect();
        let (start, mut end) = (piece.range.start, piece.range.end.min(lines.len()));
        if start > end {
            continue;
        }
        let mut text = lines[start - 1..end].join("\n");
        let remaining = max_bytes.saturating_sub(used);
        if text.len() > remaining {
            if !snippets.is_empty() {
                continue;
            }
            // The most relevant piece, cut at a line boundary inside the budget.
            let cut = text[..remaining].rfind('\n').unwrap_or(0);
            if cut == 0 {
                break;
            }
            text.truncate(cut);
            end = start + text.lines().count() - 1;
        }
        used += text.len();
        let frame_lines = located
            .iter()
            .filter(|(path, _)| *path == piece.path)
            .filter_map(|(_, line)| *line)
            .filter(|line| (start..=end).contains(&(*line as usize)))
            .collect::<std::collections::BTreeSet<u32>>()
            .into_iter()
            .collect();
        snippets.push(Snippet {
            path: piece.path,
            start_line: start,
            end_line: end,
            text,
            frame_lines,
            note: piece.note,
        });
    }
    snippets
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

    /// A failing line far below its function's start gets the whole function; a name it uses
    /// that is defined in another file gets that definition, after the function.
    #[tokio::test]
    async fn the_function_and_the_definitions_its_line_uses_are_sent() {
        let mut convert =
            String::from("import math\n\ndef convert(amount, currency):\n    rate = None\n");
        for i in 0..40 {
            convert.push_str(&format!("    step_{i} = amount + {i}\n"));
        }
        convert.push_str(
            "    return amount * RATES_TO_EUR[currency]\n\n\ndef unrelated():\n    return 1\n",
        );
        let convert: &'static str = Box::leak(convert.into_boxed_str());
        let repository = Recording {
            files: vec![
                ("shop/convert.py", convert),
                (
                    "shop/rates.py",
                    "# rates\nRATES_TO_EUR = {\n    \"EUR\": 1.0,\n    \"USD\": 0.92,\n}\n",
                ),
                (
                    "web/app.js",
                    "function lookupTier(plan) {\n  return TIERS[plan];\n}\n",
                ),
            ],
            read: std::sync::Mutex::new(Vec::new()),
        };
        let frame = Frame {
            file: Some("/app/shop/convert.py".to_string()),
            line: Some(45),
            in_app: true,
            ..Frame::default()
        };
        let snippets = gather_under_app(&[&frame], &repository).await;
        let got: Vec<(&str, usize, usize, Option<&str>)> = snippets
            .iter()
            .map(|s| (s.path.as_str(), s.start_line, s.end_line, s.note.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("shop/convert.py", 3, 45, None),
                ("shop/rates.py", 2, 5, Some("definition of RATES_TO_EUR")),
            ]
        );
        assert_eq!(snippets[0].frame_lines, [45]);
        assert!(
            snippets[0]
                .text
                .starts_with("def convert(amount, currency):")
        );
        // Another language's files are not searched.
        assert!(
            !repository
                .read
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == "web/app.js")
        );
    }

    #[tokio::test]
    async fn a_callback_frame_gets_its_named_function_and_a_helper_from_a_sibling_file() {
        let repository = Recording {
            files: vec![
                (
                    "src/pricing.js",
                    "const x = 1;\n\nexport function price(items, user) {\n  return items.map((item) => {\n    return item.cost * lookupTier(user.plan);\n  });\n}\n",
                ),
                (
                    "src/tiers.js",
                    "const TIERS = { gold: 2 };\n\nexport function lookupTier(plan) {\n  return TIERS[plan].factor;\n}\n",
                ),
                ("lib/other.js", "function lookupTier() { return 0; }\n"),
            ],
            read: std::sync::Mutex::new(Vec::new()),
        };
        let frame = Frame {
            file: Some("/app/src/pricing.js".to_string()),
            line: Some(5),
            in_app: true,
            ..Frame::default()
        };
        let snippets = gather_under_app(&[&frame], &repository).await;
        let got: Vec<(&str, usize, usize)> = snippets
            .iter()
            .map(|s| (s.path.as_str(), s.start_line, s.end_line))
            .collect();
        // The sibling in the same directory is nearer than `lib/other.js`.
        assert_eq!(got, [("src/pricing.js", 3, 7), ("src/tiers.js", 3, 5)]);
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
        let snippets = gather_under_app(&frames_to_read(&trace), &repository).await;
        // Read first as the failing frame's file; `decoder.py` only looked through for where
        // the line's names are defined (none of them is there).
        assert_eq!(repository.read.lock().unwrap()[0], "app/main.py");
        let paths: Vec<&str> = snippets.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["app/main.py"]);
    }
}
