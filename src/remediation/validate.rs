//! Checking a model's answer before anything is written anywhere (DESIGN §6.7).
//!
//! All or nothing: one failed check rejects the whole solution, and the rejection says why in
//! words a person can act on (it is stored on the incident). Each edit is anchored on text: its
//! `old` must occur exactly once in the file as it is after the edits before it; an exact match
//! is tried first, then one that ignores indentation and runs of spaces. Anything ambiguous is
//! rejected rather than guessed.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::{Change, Operation, ProposedFix, Solution};
use crate::fingerprint::fnv1a_128;

/// Paths a fix may never touch, whatever the config says.
const DENIED: &[&str] = &[
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".circleci/**",
    "**/Jenkinsfile",
    "Jenkinsfile",
    ".travis.yml",
    "azure-pipelines.yml",
    ".buildkite/**",
    "**/*.lock",
    "**/Cargo.lock",
    "**/package-lock.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/go.sum",
    "**/poetry.lock",
    "**/Gemfile.lock",
    "**/composer.lock",
];

/// `[sinks.ID.guard]`: limits on what a fix may touch.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Guard {
    /// Globs of paths a fix may change; empty: any not denied.
    pub allow_paths: Vec<String>,
    /// Globs of paths a fix may not change, besides the built-in list.
    pub deny_paths: Vec<String>,
    pub max_files: usize,
    /// Lines removed plus lines added, over all edits.
    pub max_changed_lines: usize,
    pub min_confidence: f64,
    pub max_file_bytes: usize,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            allow_paths: Vec::new(),
            deny_paths: Vec::new(),
            max_files: 5,
            max_changed_lines: 200,
            min_confidence: 0.5,
            max_file_bytes: 1024 * 1024,
        }
    }
}

/// Reads repository files for validation; `Ok(None)` means the file does not exist.
pub trait FileSource {
    fn read(&self, path: &str) -> Result<Option<String>, String>;
}

#[derive(Debug, thiserror::Error)]
#[error("invalid guard pattern `{pattern}`: {message}")]
pub struct ValidateError {
    pub pattern: String,
    pub message: String,
}

/// Why a solution was rejected; `Display` is the reason kept on the incident.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

pub struct Validator {
    guard: Guard,
    allow: Option<GlobSet>,
    deny: GlobSet,
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, ValidateError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|error| ValidateError {
            pattern: pattern.clone(),
            message: error.to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|error| ValidateError {
        pattern: patterns.join(", "),
        message: error.to_string(),
    })
}

/// A file under edit: its original content (`None`: it does not exist), its content after the
/// edits so far, how it changes, and the original lines the first edit replaced.
type Touched = (Option<String>, String, Operation, Option<(usize, usize)>);

/// Where an `old` text was found: byte range in the content.
fn locate(content: &str, old: &str) -> Result<std::ops::Range<usize>, String> {
    let exact: Vec<usize> = content.match_indices(old).map(|(at, _)| at).collect();
    match exact.len() {
        1 => return Ok(exact[0]..exact[0] + old.len()),
        n if n > 1 => return Err(format!("found {n} times")),
        _ => {}
    }
    // Whitespace-tolerant: the same lines, ignoring indentation and runs of spaces.
    let squash = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let wanted: Vec<String> = old.lines().map(squash).collect();
    if wanted.iter().all(String::is_empty) {
        return Err("not found".to_string());
    }
    let lines: Vec<(usize, &str)> = content
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line))
        })
        .collect();
    let mut found = Vec::new();
    for start in 0..lines.len() {
        if start + wanted.len() > lines.len() {
            break;
        }
        let matches = wanted
            .iter()
            .enumerate()
            .all(|(i, want)| squash(lines[start + i].1) == *want);
        if matches {
            let (begin, _) = lines[start];
            let (last_start, last) = lines[start + wanted.len() - 1];
            let end = last_start + last.trim_end_matches(['\n', '\r']).len();
            found.push(begin..end);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("not found".to_string()),
        n => Err(format!("found {n} times (ignoring whitespace)")),
    }
}

fn line_of(content: &str, offset: usize) -> usize {
    content[..offset.min(content.len())].matches('\n').count() + 1
}

/// The path, checked for shape: relative, normalized, inside the repository.
fn clean_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("has an empty path".to_string());
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(format!("path `{path}` is not a relative repository path"));
    }
    let components: Vec<&str> = path.split('/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(format!(
            "path `{path}` would escape the repository or is not normalized"
        ));
    }
    if components[0] == ".git" {
        return Err(format!("path `{path}` is inside .git"));
    }
    Ok(path.to_string())
}

impl Validator {
    pub fn new(guard: Guard) -> Result<Validator, ValidateError> {
        let allow = if guard.allow_paths.is_empty() {
            None
        } else {
            Some(glob_set(&guard.allow_paths)?)
        };
        let mut denied: Vec<String> = DENIED.iter().map(|s| s.to_string()).collect();
        denied.extend(guard.deny_paths.iter().cloned());
        Ok(Validator {
            deny: glob_set(&denied)?,
            allow,
            guard,
        })
    }

    /// Whether a path may be changed: shape, deny list, allow list.
    pub fn check_path(&self, path: &str) -> Result<(), String> {
        clean_path(path)?;
        let lower = path.to_ascii_lowercase();
        if self.deny.is_match(path)
            || lower.contains("secret")
            || path
                .split('/')
                .any(|component| component.starts_with(".env"))
        {
            return Err(format!(
                "path `{path}` is denied (CI, lock file, secrets or .github)"
            ));
        }
        if self
            .allow
            .as_ref()
            .is_some_and(|allow| !allow.is_match(path))
        {
            return Err(format!("path `{path}` is outside allow_paths"));
        }
        Ok(())
    }

    /// The solution `fix` makes of the repository's files, or why it cannot be accepted.
    pub fn validate(
        &self,
        fix: &ProposedFix,
        files: &dyn FileSource,
    ) -> Result<Solution, Rejection> {
        let reject = |message: String| Rejection(message);
        if !fix.confidence.is_finite() || !(0.0..=1.0).contains(&fix.confidence) {
            return Err(reject(format!(
                "confidence {} is not a number between 0 and 1",
                fix.confidence
            )));
        }
        if fix.confidence < self.guard.min_confidence {
            return Err(reject(format!(
                "confidence {:.2} is below min_confidence {:.2}",
                fix.confidence, self.guard.min_confidence
            )));
        }
        if fix.edits.is_empty() {
            return Err(reject("the answer has no edits".to_string()));
        }
        // Per file: (original, current content, operation, first replaced lines).
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        let mut changed_lines = 0usize;
        for (index, edit) in fix.edits.iter().enumerate() {
            let number = index + 1;
            let path = clean_path(&edit.path)
                .map_err(|message| reject(format!("edit {number}: {message}")))?;
            self.check_path(&path)
                .map_err(|message| reject(format!("edit {number}: {message}")))?;
            if !touched.contains_key(&path) {
                if touched.len() >= self.guard.max_files {
                    return Err(reject(format!(
                        "the fix touches more than max_files = {} files",
                        self.guard.max_files
                    )));
                }
                let original = files.read(&path).map_err(|message| {
                    reject(format!("edit {number}: cannot read {path}: {message}"))
                })?;
                let current = original.clone().unwrap_or_default();
                let operation = if original.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                };
                touched.insert(path.clone(), (original, current, operation, None));
            }
            let Some((original, current, _operation, first_lines)) = touched.get_mut(&path) else {
                continue;
            };
            if edit.old.is_empty() {
                if original.is_some() || !current.is_empty() {
                    return Err(reject(format!(
                        "edit {number}: `old` is empty but {path} exists (an empty `old` creates a file)"
                    )));
                }
                if edit.new.is_empty() {
                    return Err(reject(format!(
                        "edit {number}: creates {path} with no content"
                    )));
                }
                *current = edit.new.clone();
                changed_lines += edit.new.lines().count();
                first_lines.get_or_insert((1, edit.new.lines().count().max(1)));
                continue;
            }
            if original.is_none() && current.is_empty() {
                return Err(reject(format!("edit {number}: {path} does not exist")));
            }
            let range = locate(current, &edit.old)
                .map_err(|why| reject(format!("edit {number}: `old` text {why} in {path}")))?;
            let replaced = &current[range.clone()];
            if replaced == edit.new {
                return Err(reject(format!("edit {number}: changes nothing in {path}")));
            }
            changed_lines += replaced.lines().count().max(1) + edit.new.lines().count();
            if first_lines.is_none() {
                let start = line_of(current, range.start);
                let end = line_of(current, range.end.saturating_sub(1).max(range.start));
                *first_lines = Some((start, end));
            }
            current.replace_range(range, &edit.new);
            if current.len() > self.guard.max_file_bytes {
                return Err(reject(format!(
                    "edit {number}: {path} would be larger than max_file_bytes = {}",
                    self.guard.max_file_bytes
                )));
            }
        }
        if changed_lines > self.guard.max_changed_lines {
            return Err(reject(format!(
                "the fix changes {changed_lines} lines, more than max_changed_lines = {}",
                self.guard.max_changed_lines
            )));
        }
        let changes: Vec<Change> = touched
            .into_iter()
            .map(|(path, (_original, content, operation, lines))| {
                let (line_start, line_end) = lines.unwrap_or((1, 1));
                let mut metadata = serde_json::Map::new();
                let edits = fix.edits.iter().filter(|edit| edit.path == path).count();
                metadata.insert("edits".to_string(), serde_json::Value::from(edits));
                Change {
                    path,
                    operation,
                    content,
                    line_start,
                    line_end,
                    metadata,
                }
            })
            .collect();
        let mut parts: Vec<&[u8]> = Vec::new();
        for change in &changes {
            parts.push(change.path.as_bytes());
            parts.push(change.content.as_bytes());
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            "changed_lines".to_string(),
            serde_json::Value::from(changed_lines),
        );
        metadata.insert(
            "root_cause".to_string(),
            serde_json::Value::from(fix.root_cause.clone()),
        );
        Ok(Solution {
            id: format!("{:032x}", fnv1a_128(&parts)),
            description: format!(
                "{}\n\nRoot cause: {}",
                fix.summary.trim(),
                fix.root_cause.trim()
            ),
            changes,
            confidence: fix.confidence,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::remediation::ProposedEdit;

    const CART: &str = "\"\"\"Cart arithmetic.\"\"\"\n\n\ndef discount(total, parts):\n    return total / parts\n\n\ndef checkout(cart):\n    return discount(sum(cart), len(cart) - len(cart))\n";
    const ORDERS: &str = "package shop;\n\npublic class Orders {\n    String load(String id) {\n        return rows.get(id).trim();\n    }\n}\n";

    struct Files(HashMap<&'static str, &'static str>);

    impl FileSource for Files {
        fn read(&self, path: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(path).map(|content| content.to_string()))
        }
    }

    fn files() -> Files {
        Files(HashMap::from([
            ("shop/cart.py", CART),
            ("src/shop/Orders.java", ORDERS),
            ("Cargo.lock", "x"),
        ]))
    }

    fn fix(edits: &[(&str, &str, &str)]) -> ProposedFix {
        ProposedFix {
            summary: "guard".to_string(),
            root_cause: "zero".to_string(),
            confidence: 0.8,
            edits: edits
                .iter()
                .map(|(path, old, new)| ProposedEdit {
                    path: path.to_string(),
                    old: old.to_string(),
                    new: new.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_good_two_file_fix_becomes_a_solution() {
        let validator = Validator::new(Guard::default()).unwrap();
        let solution = validator
            .validate(
                &fix(&[
                    (
                        "shop/cart.py",
                        "    return total / parts",
                        "    return total / parts if parts else 0",
                    ),
                    (
                        "src/shop/Orders.java",
                        "rows.get(id).trim()",
                        "java.util.Objects.requireNonNullElse(rows.get(id), \"\").trim()",
                    ),
                ]),
                &files(),
            )
            .unwrap();
        assert_eq!(solution.changes.len(), 2);
        let cart = &solution.changes[0];
        assert_eq!(
            (
                cart.path.as_str(),
                cart.operation,
                cart.line_start,
                cart.line_end
            ),
            ("shop/cart.py", Operation::Update, 5, 5)
        );
        assert!(
            cart.content
                .contains("return total / parts if parts else 0\n\n\ndef checkout")
        );
        assert_eq!(solution.changes[1].line_start, 5);
    }

    #[test]
    fn whitespace_tolerant_matching_finds_a_reindented_anchor_once() {
        let validator = Validator::new(Guard::default()).unwrap();
        let solution = validator
            .validate(
                &fix(&[(
                    "shop/cart.py",
                    "return   total / parts",
                    "    return total / parts if parts else 0",
                )]),
                &files(),
            )
            .unwrap();
        assert!(
            solution.changes[0]
                .content
                .contains("    return total / parts if parts else 0\n")
        );
        let ambiguous = validator.validate(&fix(&[("shop/cart.py", "", "")]), &files());
        assert!(ambiguous.is_err());
    }

    #[test]
    fn every_check_rejects_with_a_reason() {
        let validator = Validator::new(Guard {
            allow_paths: vec![
                "shop/**".to_string(),
                "src/**".to_string(),
                "new/**".to_string(),
            ],
            max_files: 2,
            max_changed_lines: 10,
            ..Guard::default()
        })
        .unwrap();
        let cases: Vec<(ProposedFix, &str)> = vec![
            (
                fix(&[("shop/cart.py", "return total // parts", "x")]),
                "not found",
            ),
            (
                fix(&[("shop/cart.py", "\n\n\ndef ", "\n\n\nasync def ")]),
                "found 2 times",
            ),
            (fix(&[("../escape.py", "", "x")]), "escape"),
            (fix(&[("/etc/passwd", "", "x")]), "not a relative"),
            (fix(&[(".github/workflows/ci.yml", "", "x")]), "denied"),
            (fix(&[("shop/.env.production", "", "x")]), "denied"),
            (fix(&[("Cargo.lock", "x", "y")]), "denied"),
            (fix(&[("config/app.py", "", "x")]), "outside allow_paths"),
            (
                fix(&[(
                    "shop/cart.py",
                    "    return total / parts",
                    "    return total / parts",
                )]),
                "changes nothing",
            ),
            (fix(&[("shop/cart.py", "", "x = 1")]), "exists"),
            (
                fix(&[("new/a.py", "", &"x\n".repeat(20))]),
                "max_changed_lines",
            ),
            (
                fix(&[
                    ("shop/cart.py", "def discount", "def d"),
                    ("src/shop/Orders.java", "class Orders", "class O"),
                    ("new/b.py", "", "x"),
                ]),
                "max_files",
            ),
            (fix(&[]), "no edits"),
        ];
        for (answer, reason) in cases {
            let rejection = validator.validate(&answer, &files()).unwrap_err();
            assert!(
                rejection.to_string().contains(reason),
                "`{rejection}` should mention `{reason}`"
            );
        }
        let mut unsure = fix(&[("shop/cart.py", "    return total / parts", "    return 0")]);
        unsure.confidence = 0.2;
        assert!(
            validator
                .validate(&unsure, &files())
                .unwrap_err()
                .to_string()
                .contains("min_confidence")
        );
        unsure.confidence = f64::NAN;
        assert!(
            validator
                .validate(&unsure, &files())
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
    }
}
