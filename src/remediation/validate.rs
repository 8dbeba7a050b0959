//! Validation (DESIGN §6.7): a model's answer is untrusted input. A [`ProposedFix`] becomes a
//! [`Solution`] only if every check passes; the first that fails rejects the whole fix with a
//! [`Rejection`] whose message is kept on the incident ("edit 2: `old` text found 2 times in
//! src/cart.py").
//!
//! The checks, in order (cheap and file-free ones first, so that a denied path is never read):
//!
//! 1. The confidence is a number in 0..=1 and at least `min_confidence`; there is an edit.
//! 2. Every path is relative and normalized (no `..`, `.`, empty components, backslashes,
//!    control characters or `.git/` in any case), inside `allow_paths`, and not denied: the
//!    built-in [`BUILTIN_DENY`] list (CI definitions, lock files, any depth, any case), any path
//!    containing `secret`, any component starting with `.env` (any case), and the user's
//!    `deny_paths`. The same deny list decides which files may be read for context.
//! 3. At most `max_files` distinct files.
//! 4. The edits, in order, each on its file as the earlier edits left it:
//!    * `old` is empty: the file is created; it must not exist and `new` must not be empty.
//!    * otherwise `old` must occur exactly once. Exact match first; if there is none, a
//!      whitespace-tolerant one: `old`'s lines (blank lines around it dropped) against whole
//!      lines of the file, each compared without leading and trailing whitespace and with runs
//!      of whitespace as one space. A tolerant match must be unique too. Models often get the
//!      indentation of a snippet wrong, so a tolerant match re-indents `new` by the difference
//!      between the file's and `old`'s indentation, and keeps the file's line endings.
//!    * an edit that changes nothing is rejected; so is a set of edits that leaves a file as
//!      it was.
//! 5. Lines changed (removed + added, with the unchanged lines that a model repeats around its
//!    change not counted) over all edits ≤ `max_changed_lines`; every resulting file ≤
//!    `max_file_bytes`.
//!
//! Each file becomes one [`Change`] with its whole new content and the lines (1-based,
//! inclusive) of the original file that its first edit replaced; a created file spans
//! `1..=its line count`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Change, Operation, ProposedFix, Solution};
use crate::fingerprint::fnv1a_128;

/// Always denied, whatever `allow_paths` says: what runs in CI with the repository's secrets,
/// and lock files (a fix never needs one; a changed one hides a supply-chain change). A pattern
/// without `/` matches at any depth; all of them match at any depth and in any case (a
/// case-insensitive file system makes `.GitHub/` the real `.github/`).
pub const BUILTIN_DENY: &[&str] = &[
    ".github/**",
    ".gitlab-ci.yml",
    ".gitlab/**",
    ".circleci/**",
    "Jenkinsfile",
    ".travis.yml",
    "azure-pipelines.yml",
    ".buildkite/**",
    "Cargo.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "go.sum",
    "poetry.lock",
    "Gemfile.lock",
    "composer.lock",
    "*.lock",
    // CI and build scripts in their other common places, and what runs on a developer's
    // machine at commit time.
    ".ci/**",
    ".drone.yml",
    ".woodpecker/**",
    ".woodpecker.yml",
    "bitbucket-pipelines.yml",
    "cloudbuild.yaml",
    "cloudbuild.yml",
    ".cirrus.yml",
    "appveyor.yml",
    ".appveyor.yml",
    ".semaphore/**",
    ".teamcity/**",
    "buildspec.yml",
    ".pre-commit-config.yaml",
    ".husky/**",
    ".githooks/**",
    // Git's own metadata: attributes run filters, modules fetch other repositories.
    ".gitattributes",
    ".gitmodules",
    ".gitconfig",
    // Keys, certificates and credential stores: never read for context, never edited.
    "*.pem",
    "*.key",
    "*.crt",
    "*.cer",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    ".docker/config.json",
    ".aws/**",
    ".ssh/**",
    "credentials",
    "credentials.*",
    "*.tfstate",
    "*.tfvars",
];

/// `[remediation.guard]`: what a proposed fix may touch and how much.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Guard {
    /// Globs a path must match, e.g. `["src/**", "*.py"]`; empty allows every path. A glob
    /// without `/` matches a file name at any depth; `*` never crosses `/`, `**` does.
    pub allow_paths: Vec<String>,
    /// Globs denied on top of [`BUILTIN_DENY`] (same syntax, matched in any case).
    pub deny_paths: Vec<String>,
    /// Distinct files one fix may change.
    pub max_files: usize,
    /// Lines removed plus lines added over all edits.
    pub max_changed_lines: usize,
    /// The lowest confidence (0..=1) of the model's that is acted on.
    pub min_confidence: f64,
    /// The largest file a fix may produce, in bytes.
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

/// The repository's files as they are now; the repository clients implement it.
pub trait FileSource {
    /// The file's content, `Ok(None)` if it does not exist, `Err` if it cannot be read.
    fn read(&self, path: &str) -> Result<Option<String>, String>;
}

/// Path → content, for tests and for callers that already hold the files.
impl FileSource for BTreeMap<String, String> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        Ok(self.get(path).cloned())
    }
}

/// A guard that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("guard path glob `{pattern}`: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("guard min_confidence {0} is not a number in 0..=1")]
    MinConfidence(f64),
}

/// Why a proposed fix was rejected; `Display` is the reason kept on the incident. Edits are
/// numbered from 1, as a person reading the model's answer counts them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("confidence {0} is not a number in 0..=1")]
    InvalidConfidence(f64),
    #[error("confidence {confidence} is below min_confidence {min}")]
    LowConfidence { confidence: f64, min: f64 },
    #[error("the fix has no edits")]
    NoEdits,
    #[error("edit {edit}: path `{}` {reason}", .path.escape_debug())]
    BadPath {
        edit: usize,
        path: String,
        reason: &'static str,
    },
    #[error("edit {edit}: {} is outside allow_paths", .path.escape_debug())]
    NotAllowed { edit: usize, path: String },
    #[error("edit {edit}: {} is denied ({rule})", .path.escape_debug())]
    Denied {
        edit: usize,
        path: String,
        rule: String,
    },
    #[error("the fix changes {count} files, more than max_files {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("edit {edit}: cannot read {path}: {error}")]
    Read {
        edit: usize,
        path: String,
        error: String,
    },
    #[error("edit {edit}: {path} does not exist")]
    FileMissing { edit: usize, path: String },
    #[error("edit {edit}: `old` is empty (create a file) but {path} exists")]
    FileExists { edit: usize, path: String },
    #[error("edit {edit}: creating {path} with empty content")]
    EmptyCreate { edit: usize, path: String },
    #[error("edit {edit}: `old` text not found in {path}")]
    NotFound { edit: usize, path: String },
    #[error("edit {edit}: `old` text found {count} times in {path}{}", ignoring_whitespace(.tolerant))]
    Ambiguous {
        edit: usize,
        path: String,
        count: usize,
        /// Found so only by the whitespace-tolerant match.
        tolerant: bool,
    },
    #[error("edit {edit}: changes nothing in {path}")]
    NoChange { edit: usize, path: String },
    #[error("the edits to {path} leave it as it was")]
    Cancelled { path: String },
    #[error("the fix changes {count} lines, more than max_changed_lines {max}")]
    TooManyLines { count: usize, max: usize },
    #[error("{path} would be {bytes} bytes, more than max_file_bytes {max}")]
    FileTooLarge {
        path: String,
        bytes: usize,
        max: usize,
    },
}

fn ignoring_whitespace(tolerant: &bool) -> &'static str {
    if *tolerant {
        " (ignoring whitespace)"
    } else {
        ""
    }
}

impl Rejection {
    /// The repository could not be read: the fix was not judged, so asking again later may
    /// succeed.
    pub fn is_read_error(&self) -> bool {
        matches!(self, Rejection::Read { .. })
    }
}

/// Checks proposed fixes against a [`Guard`].
#[derive(Debug, Clone)]
pub struct Validator {
    guard: Guard,
    /// `None`: every path is allowed.
    allow: Option<GlobSet>,
    deny: GlobSet,
    /// The deny globs as written, by index in `deny`, to say which one matched.
    deny_patterns: Vec<String>,
}

impl Validator {
    /// Compiles the guard's globs; a bad glob or confidence is an error that names it.
    pub fn new(guard: Guard) -> Result<Validator, ValidateError> {
        if !(0.0..=1.0).contains(&guard.min_confidence) {
            return Err(ValidateError::MinConfidence(guard.min_confidence));
        }
        let allow = if guard.allow_paths.is_empty() {
            None
        } else {
            Some(compile(
                guard.allow_paths.iter().map(String::as_str),
                false,
            )?)
        };
        let deny_patterns: Vec<String> = BUILTIN_DENY
            .iter()
            .map(|p| (*p).to_string())
            .chain(guard.deny_paths.iter().cloned())
            .collect();
        let deny = compile(deny_patterns.iter().map(String::as_str), true)?;
        Ok(Validator {
            guard,
            allow,
            deny,
            deny_patterns,
        })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Whether `path` may be changed at all (shape, deny list, allow list): the check a
    /// proposer repeats before anything is written, and the engine before it reads a file a
    /// model named.
    pub fn check_change_path(&self, path: &str) -> Result<(), String> {
        self.check_path(1, path)
            .map_err(|rejection| rejection.to_string())
    }

    /// Whether `path` may be read to show a model (shape and deny list; `allow_paths` limits
    /// edits, not reads): a file a fix may never touch (`.env`, keys, credential stores, CI
    /// definitions) is never sent either, whatever a stack trace names.
    pub fn check_read_path(&self, path: &str) -> Result<(), String> {
        self.check_denied(1, path)
            .map_err(|rejection| rejection.to_string())
    }

    /// The fix as a [`Solution`], or the first reason it may not become one.
    pub fn validate(
        &self,
        fix: &ProposedFix,
        files: &dyn FileSource,
    ) -> Result<Solution, Rejection> {
        let confidence = fix.confidence;
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Rejection::InvalidConfidence(confidence));
        }
        if confidence < self.guard.min_confidence {
            return Err(Rejection::LowConfidence {
                confidence,
                min: self.guard.min_confidence,
            });
        }
        if fix.edits.is_empty() {
            return Err(Rejection::NoEdits);
        }

        // Paths first: nothing denied is ever read.
        let mut paths: Vec<&str> = Vec::new();
        for (index, edit) in fix.edits.iter().enumerate() {
            self.check_path(index + 1, &edit.path)?;
            if !paths.contains(&edit.path.as_str()) {
                paths.push(&edit.path);
            }
        }
        if paths.len() > self.guard.max_files {
            return Err(Rejection::TooManyFiles {
                count: paths.len(),
                max: self.guard.max_files,
            });
        }

        let mut edited: Vec<EditedFile> = Vec::with_capacity(paths.len());
        for (index, edit) in fix.edits.iter().enumerate() {
            let number = index + 1;
            let slot = match edited.iter().position(|file| file.path == edit.path) {
                Some(slot) => slot,
                None => {
                    let original = files.read(&edit.path).map_err(|error| Rejection::Read {
                        edit: number,
                        path: edit.path.clone(),
                        error,
                    })?;
                    edited.push(EditedFile::new(&edit.path, original));
                    edited.len() - 1
                }
            };
            edited[slot].apply(number, &edit.old, &edit.new)?;
        }

        let lines_changed: usize = edited.iter().map(|file| file.lines_changed).sum();
        if lines_changed > self.guard.max_changed_lines {
            return Err(Rejection::TooManyLines {
                count: lines_changed,
                max: self.guard.max_changed_lines,
            });
        }
        for file in &edited {
            let content = file.content.as_deref().unwrap_or_default();
            if content.len() > self.guard.max_file_bytes {
                return Err(Rejection::FileTooLarge {
                    path: file.path.clone(),
                    bytes: content.len(),
                    max: self.guard.max_file_bytes,
                });
            }
            if file.original.as_deref() == Some(content) {
                return Err(Rejection::Cancelled {
                    path: file.path.clone(),
                });
            }
        }

        let changes: Vec<Change> = edited.into_iter().map(EditedFile::into_change).collect();
        let mut metadata = Map::new();
        metadata.insert("edits".to_string(), Value::from(fix.edits.len()));
        metadata.insert("lines_changed".to_string(), Value::from(lines_changed));
        metadata.insert("files".to_string(), Value::from(changes.len()));
        Ok(Solution {
            id: solution_id(&changes),
            description: describe(fix),
            changes,
            confidence,
            metadata,
        })
    }

    fn check_path(&self, edit: usize, path: &str) -> Result<(), Rejection> {
        if let Some(reason) = malformed(path) {
            return Err(Rejection::BadPath {
                edit,
                path: path.to_string(),
                reason,
            });
        }
        if let Some(allow) = &self.allow
            && !allow.is_match(path)
        {
            return Err(Rejection::NotAllowed {
                edit,
                path: path.to_string(),
            });
        }
        self.check_denied(edit, path)
    }

    /// Shape and deny list.
    fn check_denied(&self, edit: usize, path: &str) -> Result<(), Rejection> {
        let denied = |rule: String| Rejection::Denied {
            edit,
            path: path.to_string(),
            rule,
        };
        if let Some(reason) = malformed(path) {
            return Err(Rejection::BadPath {
                edit,
                path: path.to_string(),
                reason,
            });
        }
        if let Some(&index) = self.deny.matches(path).first() {
            let pattern = self.deny_patterns.get(index).map_or("", String::as_str);
            return Err(denied(format!("`{pattern}`")));
        }
        if path.to_ascii_lowercase().contains("secret") {
            return Err(denied("the path contains `secret`".to_string()));
        }
        if path.split('/').any(|component| {
            component
                .get(..4)
                .is_some_and(|start| start.eq_ignore_ascii_case(".env"))
        }) {
            return Err(denied("a `.env*` file".to_string()));
        }
        Ok(())
    }
}

/// Why a path is not a normalized repository-relative path, if it is not.
fn malformed(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if path.contains('\\') {
        return Some("contains a backslash");
    }
    let first = path.split('/').next().unwrap_or_default();
    let drive =
        first.len() == 2 && first.ends_with(':') && first.as_bytes()[0].is_ascii_alphabetic();
    if path.starts_with('/') || drive {
        return Some("is absolute");
    }
    for component in path.split('/') {
        match component {
            "" => return Some("has an empty component"),
            "." => return Some("has a `.` component"),
            ".." => return Some("leaves the repository with `..`"),
            _ if component.eq_ignore_ascii_case(".git") => return Some("is inside `.git/`"),
            _ => {}
        }
    }
    None
}

/// A glob set where a glob without `/` matches at any depth (`*.lock` is `**/*.lock`), and
/// deny globs match at any depth whatever they say (`.github/**` is `**/.github/**`).
fn compile<'a>(
    patterns: impl Iterator<Item = &'a str>,
    deny: bool,
) -> Result<GlobSet, ValidateError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let anywhere = (deny || !pattern.contains('/')) && !pattern.starts_with("**/");
        let effective = match pattern.strip_prefix('/') {
            Some(rooted) if !deny => Cow::Borrowed(rooted),
            Some(rooted) => Cow::Owned(format!("**/{rooted}")),
            None if anywhere => Cow::Owned(format!("**/{pattern}")),
            None => Cow::Borrowed(pattern),
        };
        let glob = GlobBuilder::new(&effective)
            .literal_separator(true)
            .case_insensitive(deny)
            .build()
            .map_err(|source| ValidateError::Glob {
                pattern: pattern.to_string(),
                source,
            })?;
        set.add(glob);
    }
    set.build().map_err(|source| ValidateError::Glob {
        pattern: "(set)".to_string(),
        source,
    })
}

/// One file as the edits so far left it.
struct EditedFile {
    path: String,
    /// As it is in the repository; `None`: it does not exist.
    original: Option<String>,
    /// After the edits so far; `None` while it does not exist.
    content: Option<String>,
    edits: usize,
    lines_changed: usize,
    /// Lines of the original that the first edit replaced.
    first_lines: (usize, usize),
    tolerant: bool,
}

impl EditedFile {
    fn new(path: &str, original: Option<String>) -> EditedFile {
        EditedFile {
            path: path.to_string(),
            content: original.clone(),
            original,
            edits: 0,
            lines_changed: 0,
            first_lines: (0, 0),
            tolerant: false,
        }
    }

    fn apply(&mut self, edit: usize, old: &str, new: &str) -> Result<(), Rejection> {
        let path = || self.path.clone();
        if old.is_empty() {
            if self.content.is_some() {
                return Err(Rejection::FileExists { edit, path: path() });
            }
            if new.is_empty() {
                return Err(Rejection::EmptyCreate { edit, path: path() });
            }
            self.lines_changed += line_count(new);
            self.content = Some(new.to_string());
            self.edits += 1;
            return Ok(());
        }
        let Some(content) = &self.content else {
            return Err(Rejection::FileMissing { edit, path: path() });
        };
        let found = locate(content, old, new).map_err(|miss| match miss {
            Miss::NotFound => Rejection::NotFound { edit, path: path() },
            Miss::Ambiguous { count, tolerant } => Rejection::Ambiguous {
                edit,
                path: path(),
                count,
                tolerant,
            },
        })?;
        let replaced = &content[found.start..found.end];
        if replaced == found.replacement {
            return Err(Rejection::NoChange { edit, path: path() });
        }
        let lines_changed = changed_lines(replaced, &found.replacement);
        let mut updated = String::with_capacity(content.len() + found.replacement.len());
        updated.push_str(&content[..found.start]);
        updated.push_str(&found.replacement);
        updated.push_str(&content[found.end..]);
        if self.edits == 0 {
            self.first_lines = found.lines;
        }
        self.lines_changed += lines_changed;
        self.tolerant |= found.tolerant;
        self.content = Some(updated);
        self.edits += 1;
        Ok(())
    }

    fn into_change(self) -> Change {
        let content = self.content.unwrap_or_default();
        let (operation, (line_start, line_end)) = match self.original {
            None => (Operation::Create, (1, line_count(&content).max(1))),
            Some(_) => (Operation::Update, self.first_lines),
        };
        let mut metadata = Map::new();
        metadata.insert("edits".to_string(), Value::from(self.edits));
        metadata.insert("lines_changed".to_string(), Value::from(self.lines_changed));
        metadata.insert(
            "whitespace_tolerant".to_string(),
            Value::from(self.tolerant),
        );
        Change {
            path: self.path,
            operation,
            content,
            line_start,
            line_end,
            metadata,
        }
    }
}

/// Where an edit applies: `content[start..end]` becomes `replacement`.
struct Found<'a> {
    start: usize,
    end: usize,
    replacement: Cow<'a, str>,
    /// 1-based first and last line of `content` that the edit touches.
    lines: (usize, usize),
    tolerant: bool,
}

enum Miss {
    NotFound,
    Ambiguous { count: usize, tolerant: bool },
}

/// `old` in `content`: exactly once, or else once ignoring whitespace.
fn locate<'a>(content: &str, old: &str, new: &'a str) -> Result<Found<'a>, Miss> {
    let (first, count) = occurrences(content, old);
    match (first, count) {
        (Some(start), 1) => {
            let line_start = 1 + content[..start].matches('\n').count();
            let spanned = old.strip_suffix('\n').unwrap_or(old);
            Ok(Found {
                start,
                end: start + old.len(),
                replacement: Cow::Borrowed(new),
                lines: (line_start, line_start + spanned.matches('\n').count()),
                tolerant: false,
            })
        }
        (_, 0) => locate_tolerant(content, old, new),
        (_, count) => Err(Miss::Ambiguous {
            count,
            tolerant: false,
        }),
    }
}

/// Where `needle` first occurs in `haystack`, and how often, overlapping occurrences included
/// (`aa` in `aaa` is ambiguous).
fn occurrences(haystack: &str, needle: &str) -> (Option<usize>, usize) {
    let step = needle.chars().next().map_or(1, char::len_utf8);
    let (mut first, mut count, mut from) = (None, 0, 0);
    while let Some(found) = haystack.get(from..).and_then(|rest| rest.find(needle)) {
        let at = from + found;
        first.get_or_insert(at);
        count += 1;
        from = at + step;
    }
    (first, count)
}

/// A line of the file: its byte range without the line terminator.
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// End including the terminator (`\n` or `\r\n`).
    next: usize,
}

fn split_lines(content: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    for piece in content.split_inclusive('\n') {
        let next = start + piece.len();
        let text = piece.strip_suffix('\n').unwrap_or(piece);
        let text = text.strip_suffix('\r').unwrap_or(text);
        lines.push(Line {
            start,
            end: start + text.len(),
            next,
        });
        start = next;
    }
    lines
}

/// A line without leading and trailing whitespace, runs of whitespace as one space.
fn normalize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// `old`'s lines against whole lines of `content`, whitespace aside; `new` re-indented by the
/// difference and written with the file's line endings.
fn locate_tolerant<'a>(content: &str, old: &str, new: &'a str) -> Result<Found<'a>, Miss> {
    let old_lines: Vec<&str> = old
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let leading = old_lines.iter().take_while(|line| is_blank(line)).count();
    if leading == old_lines.len() {
        return Err(Miss::NotFound);
    }
    let trailing = old_lines
        .iter()
        .rev()
        .take_while(|line| is_blank(line))
        .count();
    let old_lines = &old_lines[leading..old_lines.len() - trailing];
    let wanted: Vec<String> = old_lines.iter().map(|line| normalize(line)).collect();

    let lines = split_lines(content);
    let normalized: Vec<String> = lines
        .iter()
        .map(|line| normalize(&content[line.start..line.end]))
        .collect();
    let starts: Vec<usize> = (0..normalized.len().saturating_sub(wanted.len() - 1))
        .filter(|&at| normalized[at..at + wanted.len()] == wanted[..])
        .collect();
    let at = match starts.as_slice() {
        [] => return Err(Miss::NotFound),
        [at] => *at,
        many => {
            return Err(Miss::Ambiguous {
                count: many.len(),
                tolerant: true,
            });
        }
    };
    let matched = &lines[at..at + wanted.len()];
    let (first, last) = (matched[0], matched[matched.len() - 1]);

    // `new` with as many blank lines around it dropped as `old` had.
    let new_lines: Vec<&str> = new
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let drop_leading = new_lines
        .iter()
        .take(leading)
        .take_while(|line| is_blank(line))
        .count();
    let rest = &new_lines[drop_leading..];
    let drop_trailing = rest
        .iter()
        .rev()
        .take(trailing)
        .take_while(|line| is_blank(line))
        .count();
    let new_lines = &rest[..rest.len() - drop_trailing];

    let file_lines: Vec<&str> = matched
        .iter()
        .map(|line| &content[line.start..line.end])
        .collect();
    let reindent = Reindent::between(&file_lines, old_lines);
    let ending = if content[first.start..last.next].contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let replacement = new_lines
        .iter()
        .map(|line| reindent.apply(line))
        .collect::<Vec<_>>()
        .join(ending);
    // Removing the lines altogether takes their line break with them.
    let end = if new_lines.is_empty() {
        last.next
    } else {
        last.end
    };
    Ok(Found {
        start: first.start,
        end,
        replacement: Cow::Owned(replacement),
        lines: (at + 1, at + wanted.len()),
        tolerant: true,
    })
}

/// How `old`'s indentation differs from the file's, the same on every non-blank line.
enum Reindent<'a> {
    Keep,
    /// The file has this more than `old`.
    Add(&'a str),
    /// `old` has this more than the file.
    Remove(&'a str),
}

impl<'a> Reindent<'a> {
    fn between(file: &[&'a str], old: &[&'a str]) -> Reindent<'a> {
        let pairs: Vec<(&str, &str)> = file
            .iter()
            .zip(old)
            .filter(|(_, old)| !is_blank(old))
            .map(|(file, old)| (indentation(file), indentation(old)))
            .collect();
        let common = |differences: Vec<Option<&'a str>>| -> Option<&'a str> {
            let first = differences.first().copied().flatten()?;
            differences
                .iter()
                .all(|difference| *difference == Some(first))
                .then_some(first)
                .filter(|difference| !difference.is_empty())
        };
        if let Some(more) = common(pairs.iter().map(|(f, o)| f.strip_suffix(o)).collect()) {
            Reindent::Add(more)
        } else if let Some(less) = common(pairs.iter().map(|(f, o)| o.strip_suffix(f)).collect()) {
            Reindent::Remove(less)
        } else {
            Reindent::Keep
        }
    }

    fn apply(&self, line: &'a str) -> Cow<'a, str> {
        match self {
            _ if is_blank(line) => Cow::Borrowed(line),
            Reindent::Keep => Cow::Borrowed(line),
            Reindent::Add(more) => Cow::Owned(format!("{more}{line}")),
            Reindent::Remove(less) => Cow::Borrowed(line.strip_prefix(less).unwrap_or(line)),
        }
    }
}

fn line_count(text: &str) -> usize {
    text.lines().count()
}

/// Lines removed plus lines added from `before` to `after`, not counting the lines at either
/// end that stay the same (the context a model repeats around its change).
fn changed_lines(before: &str, after: &str) -> usize {
    let before: Vec<&str> = before.lines().collect();
    let after: Vec<&str> = after.lines().collect();
    let prefix = before
        .iter()
        .zip(&after)
        .take_while(|(b, a)| b == a)
        .count();
    let suffix = before[prefix..]
        .iter()
        .rev()
        .zip(after[prefix..].iter().rev())
        .take_while(|(b, a)| b == a)
        .count();
    (before.len() - prefix - suffix) + (after.len() - prefix - suffix)
}

/// 32 hex digits of FNV-1a over every change: the same fix has the same id.
fn solution_id(changes: &[Change]) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(changes.len() * 3);
    for change in changes {
        parts.push(change.path.as_bytes());
        parts.push(match change.operation {
            Operation::Create => b"create",
            Operation::Update => b"update",
        });
        parts.push(change.content.as_bytes());
    }
    format!("{:032x}", fnv1a_128(&parts))
}

fn describe(fix: &ProposedFix) -> String {
    let summary = fix.summary.trim();
    let root_cause = fix.root_cause.trim();
    match (summary.is_empty(), root_cause.is_empty()) {
        (_, true) => summary.to_string(),
        (true, false) => format!("Root cause: {root_cause}"),
        (false, false) => format!("{summary}\n\nRoot cause: {root_cause}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::ProposedEdit;
    use proptest::prelude::*;

    const CART_PY: &str = r#""""Shopping cart totals."""

from decimal import Decimal


class Cart:
    def __init__(self, items):
        self.items = items

    def total(self):
        total = Decimal("0")
        for item in self.items:
            total += item["price"] * item["qty"]
        return total

    def discount(self, code):
        rate = DISCOUNTS[code]
        return self.total() * rate


DISCOUNTS = {"SPRING": Decimal("0.1")}
"#;

    const CART_SERVICE_JAVA: &str = r#"package com.acme.shop;

import java.util.Map;

public class CartService {
    private final Map<String, Integer> stock;

    public CartService(Map<String, Integer> stock) {
        this.stock = stock;
    }

    public int reserve(String sku, int qty) {
        int available = stock.get(sku);
        if (available < qty) {
            throw new IllegalStateException("out of stock: " + sku);
        }
        stock.put(sku, available - qty);
        return available - qty;
    }

    public int release(String sku, int qty) {
        int available = stock.get(sku);
        stock.put(sku, available + qty);
        return available + qty;
    }
}
"#;

    const PY: &str = "shop/cart.py";
    const JAVA: &str = "src/main/java/com/acme/shop/CartService.java";

    fn repository() -> BTreeMap<String, String> {
        BTreeMap::from([
            (PY.to_string(), CART_PY.to_string()),
            (JAVA.to_string(), CART_SERVICE_JAVA.to_string()),
            (
                "Cargo.lock".to_string(),
                "# generated\nversion = 4\n".to_string(),
            ),
        ])
    }

    fn validator(guard: Guard) -> Validator {
        match Validator::new(guard) {
            Ok(validator) => validator,
            Err(error) => panic!("{error}"),
        }
    }

    fn edit(path: &str, old: &str, new: &str) -> ProposedEdit {
        ProposedEdit {
            path: path.to_string(),
            old: old.to_string(),
            new: new.to_string(),
        }
    }

    fn fix(confidence: f64, edits: Vec<ProposedEdit>) -> ProposedFix {
        ProposedFix {
            summary: "Treat unknown discount codes and SKUs as zero".to_string(),
            root_cause: "Lookups raise on keys that are not in the table".to_string(),
            confidence,
            edits,
        }
    }

    fn discount_edit() -> ProposedEdit {
        edit(
            PY,
            "        rate = DISCOUNTS[code]\n",
            "        rate = DISCOUNTS.get(code, Decimal(\"0\"))\n",
        )
    }

    fn reserve_edit() -> ProposedEdit {
        edit(
            JAVA,
            "    public int reserve(String sku, int qty) {\n        int available = stock.get(sku);",
            "    public int reserve(String sku, int qty) {\n        int available = stock.getOrDefault(sku, 0);",
        )
    }

    fn accepted(validator: &Validator, fix: &ProposedFix) -> Solution {
        match validator.validate(fix, &repository()) {
            Ok(solution) => solution,
            Err(rejection) => panic!("rejected: {rejection}"),
        }
    }

    #[test]
    fn a_good_two_file_fix_becomes_a_solution() {
        let fix = fix(0.8, vec![discount_edit(), reserve_edit()]);
        let solution = accepted(&validator(Guard::default()), &fix);

        assert_eq!(solution.changes.len(), 2);
        let py = &solution.changes[0];
        assert_eq!(py.path, PY);
        assert_eq!(py.operation, Operation::Update);
        assert_eq!(
            py.content,
            CART_PY.replace("DISCOUNTS[code]", "DISCOUNTS.get(code, Decimal(\"0\"))")
        );
        assert_eq!((py.line_start, py.line_end), (17, 17));
        assert_eq!(py.metadata.get("edits"), Some(&Value::from(1)));
        assert_eq!(py.metadata.get("lines_changed"), Some(&Value::from(2)));
        assert_eq!(
            py.metadata.get("whitespace_tolerant"),
            Some(&Value::from(false))
        );

        let java = &solution.changes[1];
        assert_eq!(java.path, JAVA);
        assert_eq!(
            java.content,
            CART_SERVICE_JAVA.replacen("stock.get(sku)", "stock.getOrDefault(sku, 0)", 1)
        );
        // The model's `old` spans the signature and the lookup; only the lookup changed.
        assert_eq!((java.line_start, java.line_end), (12, 13));
        assert_eq!(java.metadata.get("lines_changed"), Some(&Value::from(2)));

        assert_eq!(solution.confidence, 0.8);
        assert_eq!(
            solution.description,
            "Treat unknown discount codes and SKUs as zero\n\n\
             Root cause: Lookups raise on keys that are not in the table"
        );
        assert_eq!(
            solution.metadata.get("lines_changed"),
            Some(&Value::from(4))
        );
        assert_eq!(solution.metadata.get("edits"), Some(&Value::from(2)));
        assert_eq!(solution.id.len(), 32);
        assert!(solution.id.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same fix, the same id; another fix, another.
        assert_eq!(accepted(&validator(Guard::default()), &fix).id, solution.id);
        let other = accepted(
            &validator(Guard::default()),
            &self::fix(0.8, vec![discount_edit()]),
        );
        assert_ne!(other.id, solution.id);
    }

    #[test]
    fn edits_to_one_file_apply_in_order() {
        // The lookup is in the file twice; once the first edit has fixed `reserve`, the second
        // edit's `old` is there once.
        let fix = fix(
            0.9,
            vec![
                reserve_edit(),
                edit(
                    JAVA,
                    "        int available = stock.get(sku);\n",
                    "        int available = stock.getOrDefault(sku, 0);\n",
                ),
            ],
        );
        let solution = accepted(&validator(Guard::default()), &fix);
        let java = &solution.changes[0];
        assert_eq!(
            java.content,
            CART_SERVICE_JAVA.replace("stock.get(sku)", "stock.getOrDefault(sku, 0)")
        );
        assert_eq!((java.line_start, java.line_end), (12, 13));
        assert_eq!(java.metadata.get("edits"), Some(&Value::from(2)));
        assert_eq!(java.metadata.get("lines_changed"), Some(&Value::from(4)));
    }

    #[test]
    fn whitespace_tolerant_match_reindents_the_new_text() {
        // The model quoted the method without the class's indentation and with a doubled
        // space.
        let fix = fix(
            0.7,
            vec![edit(
                PY,
                "def discount(self, code):\n    rate  = DISCOUNTS[code]\n    return self.total() * rate\n",
                "def discount(self, code):\n    rate = DISCOUNTS.get(code, Decimal(\"0\"))\n    return self.total() * rate\n",
            )],
        );
        let solution = accepted(&validator(Guard::default()), &fix);
        let py = &solution.changes[0];
        assert_eq!(
            py.content,
            CART_PY.replace("DISCOUNTS[code]", "DISCOUNTS.get(code, Decimal(\"0\"))")
        );
        assert_eq!((py.line_start, py.line_end), (16, 18));
        assert_eq!(py.metadata.get("lines_changed"), Some(&Value::from(2)));
        assert_eq!(
            py.metadata.get("whitespace_tolerant"),
            Some(&Value::from(true))
        );
    }

    #[test]
    fn whitespace_tolerant_match_keeps_crlf_and_removes_whole_lines() {
        let crlf = CART_SERVICE_JAVA.replace('\n', "\r\n");
        let files = BTreeMap::from([(JAVA.to_string(), crlf.clone())]);
        let validator = validator(Guard::default());

        let reindented = fix(
            0.9,
            vec![edit(
                JAVA,
                "public int release(String sku, int qty) {\n    int available = stock.get(sku);\n",
                "public int release(String sku, int qty) {\n    int available = stock.getOrDefault(sku, 0);\n",
            )],
        );
        let solution = match validator.validate(&reindented, &files) {
            Ok(solution) => solution,
            Err(rejection) => panic!("{rejection}"),
        };
        assert_eq!(
            solution.changes[0].content,
            crlf.replace(
                "        int available = stock.get(sku);\r\n        stock.put(sku, available + qty);",
                "        int available = stock.getOrDefault(sku, 0);\r\n        stock.put(sku, available + qty);"
            )
        );

        let removal = fix(
            0.9,
            vec![edit(JAVA, "\n  stock.put(sku, available + qty);\n", "\n")],
        );
        let solution = match validator.validate(&removal, &files) {
            Ok(solution) => solution,
            Err(rejection) => panic!("{rejection}"),
        };
        assert_eq!(
            solution.changes[0].content,
            crlf.replace("        stock.put(sku, available + qty);\r\n", "")
        );
        assert_eq!(
            (solution.changes[0].line_start, solution.changes[0].line_end),
            (23, 23)
        );
    }

    #[test]
    fn a_new_file_is_created() {
        let test = "from decimal import Decimal\n\nfrom shop.cart import Cart\n\n\ndef test_unknown_code():\n    assert Cart([]).discount(\"NOPE\") == Decimal(\"0\")\n";
        let fix = fix(
            0.6,
            vec![discount_edit(), edit("tests/test_cart.py", "", test)],
        );
        let solution = accepted(&validator(Guard::default()), &fix);
        let created = &solution.changes[1];
        assert_eq!(created.operation, Operation::Create);
        assert_eq!(created.content, test);
        assert_eq!((created.line_start, created.line_end), (1, 7));
        assert_eq!(created.metadata.get("lines_changed"), Some(&Value::from(7)));
    }

    #[test]
    fn allow_paths_without_a_slash_match_at_any_depth() {
        let python_only = validator(Guard {
            allow_paths: vec!["*.py".to_string()],
            ..Guard::default()
        });
        accepted(&python_only, &fix(0.9, vec![discount_edit()]));
        let rejection = python_only.validate(&fix(0.9, vec![reserve_edit()]), &repository());
        assert_eq!(
            rejection.map_err(|r| r.to_string()),
            Err(format!("edit 1: {JAVA} is outside allow_paths"))
        );
    }

    struct Unreachable;

    impl FileSource for Unreachable {
        fn read(&self, _path: &str) -> Result<Option<String>, String> {
            Err("connection reset by peer".to_string())
        }
    }

    #[test]
    fn a_repository_that_cannot_be_read_is_a_read_error() {
        let rejection =
            validator(Guard::default()).validate(&fix(0.9, vec![discount_edit()]), &Unreachable);
        let Err(rejection) = rejection else {
            panic!("accepted without files");
        };
        assert!(rejection.is_read_error());
        assert_eq!(
            rejection.to_string(),
            "edit 1: cannot read shop/cart.py: connection reset by peer"
        );
    }

    /// (what, guard, fix, the reason kept on the incident)
    fn rejections() -> Vec<(&'static str, Guard, ProposedFix, &'static str)> {
        let default = Guard::default;
        let one = |path: &str| fix(0.9, vec![edit(path, "x", "y")]);
        vec![
            (
                "old missing",
                default(),
                fix(0.9, vec![edit(PY, "rate = DISCOUNT[code]", "rate = 0")]),
                "edit 1: `old` text not found in shop/cart.py",
            ),
            (
                "ambiguous",
                default(),
                fix(
                    0.9,
                    vec![
                        discount_edit(),
                        edit(
                            JAVA,
                            "int available = stock.get(sku);",
                            "int available = stock.getOrDefault(sku, 0);",
                        ),
                    ],
                ),
                "edit 2: `old` text found 2 times in src/main/java/com/acme/shop/CartService.java",
            ),
            (
                "ambiguous ignoring whitespace",
                default(),
                fix(
                    0.9,
                    vec![edit(
                        JAVA,
                        "int available  =  stock.get(sku);\n",
                        "int available = stock.getOrDefault(sku, 0);\n",
                    )],
                ),
                "edit 1: `old` text found 2 times in src/main/java/com/acme/shop/CartService.java (ignoring whitespace)",
            ),
            (
                "overlapping occurrences",
                default(),
                fix(0.9, vec![edit(PY, "\n\n", "\n")]),
                "edit 1: `old` text found 7 times in shop/cart.py",
            ),
            (
                "..",
                default(),
                one("shop/../../etc/passwd"),
                "edit 1: path `shop/../../etc/passwd` leaves the repository with `..`",
            ),
            (
                "absolute",
                default(),
                one("/etc/passwd"),
                "edit 1: path `/etc/passwd` is absolute",
            ),
            (
                "drive",
                default(),
                one("C:/Windows/win.ini"),
                "edit 1: path `C:/Windows/win.ini` is absolute",
            ),
            (
                "backslash",
                default(),
                one("shop\\cart.py"),
                "edit 1: path `shop\\\\cart.py` contains a backslash",
            ),
            (
                "empty component",
                default(),
                one("shop//cart.py"),
                "edit 1: path `shop//cart.py` has an empty component",
            ),
            (
                "dot component",
                default(),
                one("./shop/cart.py"),
                "edit 1: path `./shop/cart.py` has a `.` component",
            ),
            (
                ".git",
                default(),
                one(".GIT/hooks/pre-commit"),
                "edit 1: path `.GIT/hooks/pre-commit` is inside `.git/`",
            ),
            (
                "control character",
                default(),
                one("shop/cart.py\n"),
                "edit 1: path `shop/cart.py\\n` contains a control character",
            ),
            (
                "github workflow",
                default(),
                one(".github/workflows/ci.yml"),
                "edit 1: .github/workflows/ci.yml is denied (`.github/**`)",
            ),
            (
                "github workflow in another case",
                default(),
                one(".GitHub/workflows/ci.yml"),
                "edit 1: .GitHub/workflows/ci.yml is denied (`.github/**`)",
            ),
            (
                "gitlab ci",
                default(),
                one(".gitlab-ci.yml"),
                "edit 1: .gitlab-ci.yml is denied (`.gitlab-ci.yml`)",
            ),
            (
                "env file",
                default(),
                one("deploy/.env.production"),
                "edit 1: deploy/.env.production is denied (a `.env*` file)",
            ),
            (
                "secret",
                default(),
                one("config/Secrets.yml"),
                "edit 1: config/Secrets.yml is denied (the path contains `secret`)",
            ),
            (
                "Cargo.lock",
                default(),
                fix(0.9, vec![edit("Cargo.lock", "version = 4", "version = 3")]),
                "edit 1: Cargo.lock is denied (`Cargo.lock`)",
            ),
            (
                "nested lock file",
                default(),
                one("web/yarn.lock"),
                "edit 1: web/yarn.lock is denied (`yarn.lock`)",
            ),
            (
                "user deny",
                Guard {
                    deny_paths: vec!["migrations/**".to_string()],
                    ..default()
                },
                one("shop/migrations/0042_cart.py"),
                "edit 1: shop/migrations/0042_cart.py is denied (`migrations/**`)",
            ),
            (
                "outside allow_paths",
                Guard {
                    allow_paths: vec!["shop/**".to_string()],
                    ..default()
                },
                fix(0.9, vec![discount_edit(), reserve_edit()]),
                "edit 2: src/main/java/com/acme/shop/CartService.java is outside allow_paths",
            ),
            (
                "too many files",
                Guard {
                    max_files: 1,
                    ..default()
                },
                fix(0.9, vec![discount_edit(), reserve_edit()]),
                "the fix changes 2 files, more than max_files 1",
            ),
            (
                "too many lines",
                Guard {
                    max_changed_lines: 3,
                    ..default()
                },
                fix(0.9, vec![discount_edit(), reserve_edit()]),
                "the fix changes 4 lines, more than max_changed_lines 3",
            ),
            (
                "file too large",
                Guard {
                    max_file_bytes: 200,
                    ..default()
                },
                fix(0.9, vec![discount_edit()]),
                "shop/cart.py would be 438 bytes, more than max_file_bytes 200",
            ),
            (
                "low confidence",
                default(),
                fix(0.3, vec![discount_edit()]),
                "confidence 0.3 is below min_confidence 0.5",
            ),
            (
                "NaN confidence",
                default(),
                fix(f64::NAN, vec![discount_edit()]),
                "confidence NaN is not a number in 0..=1",
            ),
            (
                "confidence above 1",
                default(),
                fix(1.5, vec![discount_edit()]),
                "confidence 1.5 is not a number in 0..=1",
            ),
            (
                "infinite confidence",
                default(),
                fix(f64::INFINITY, vec![discount_edit()]),
                "confidence inf is not a number in 0..=1",
            ),
            (
                "no edits",
                default(),
                fix(0.9, vec![]),
                "the fix has no edits",
            ),
            (
                "creating a file that exists",
                default(),
                fix(0.9, vec![edit(PY, "", "print('hello')\n")]),
                "edit 1: `old` is empty (create a file) but shop/cart.py exists",
            ),
            (
                "creating a file twice",
                default(),
                fix(
                    0.9,
                    vec![
                        edit("shop/a.py", "", "A = 1\n"),
                        edit("shop/a.py", "", "A = 2\n"),
                    ],
                ),
                "edit 2: `old` is empty (create a file) but shop/a.py exists",
            ),
            (
                "creating an empty file",
                default(),
                fix(0.9, vec![edit("shop/empty.py", "", "")]),
                "edit 1: creating shop/empty.py with empty content",
            ),
            (
                "editing a file that does not exist",
                default(),
                fix(0.9, vec![edit("shop/missing.py", "x = 1", "x = 2")]),
                "edit 1: shop/missing.py does not exist",
            ),
            (
                "no-op",
                default(),
                fix(
                    0.9,
                    vec![edit(PY, "rate = DISCOUNTS[code]", "rate = DISCOUNTS[code]")],
                ),
                "edit 1: changes nothing in shop/cart.py",
            ),
            (
                "no-op after re-indentation",
                default(),
                fix(
                    0.9,
                    vec![edit(
                        PY,
                        "rate = DISCOUNTS[code]\n",
                        "rate = DISCOUNTS[code]\n",
                    )],
                ),
                "edit 1: changes nothing in shop/cart.py",
            ),
            (
                "edits that cancel out",
                default(),
                fix(
                    0.9,
                    vec![
                        discount_edit(),
                        edit(PY, "DISCOUNTS.get(code, Decimal(\"0\"))", "DISCOUNTS[code]"),
                    ],
                ),
                "the edits to shop/cart.py leave it as it was",
            ),
        ]
    }

    #[test]
    fn every_failed_check_rejects_the_whole_fix_with_its_reason() {
        for (what, guard, fix, reason) in rejections() {
            let result = validator(guard).validate(&fix, &repository());
            match result {
                Ok(solution) => panic!("{what}: accepted {:?}", solution.changes),
                Err(rejection) => assert_eq!(rejection.to_string(), reason, "{what}"),
            }
        }
    }

    #[test]
    fn a_bad_guard_is_an_error() {
        let bad_glob = Validator::new(Guard {
            allow_paths: vec!["src/[".to_string()],
            ..Guard::default()
        });
        assert!(matches!(bad_glob, Err(ValidateError::Glob { pattern, .. }) if pattern == "src/["));
        let bad_confidence = Validator::new(Guard {
            min_confidence: f64::NAN,
            ..Guard::default()
        });
        assert!(matches!(
            bad_confidence,
            Err(ValidateError::MinConfidence(_))
        ));
    }

    #[test]
    fn the_guard_reads_from_config_with_defaults() {
        let guard: Guard = match toml::from_str("allow_paths = [\"src/**\"]\nmax_files = 2\n") {
            Ok(guard) => guard,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(guard.allow_paths, vec!["src/**".to_string()]);
        assert_eq!(guard.max_files, 2);
        assert_eq!(guard.max_changed_lines, 200);
        assert_eq!(guard.min_confidence, 0.5);
        assert_eq!(guard.max_file_bytes, 1024 * 1024);
    }

    /// Text that is sometimes a piece of a file (so that edits sometimes apply) and sometimes
    /// anything.
    fn old_text() -> impl Strategy<Value = String> {
        const SOURCES: [&str; 3] = [CART_PY, CART_SERVICE_JAVA, UNICODE_PY];
        prop_oneof![
            6 => (0..SOURCES.len(), any::<prop::sample::Index>(), 0usize..120).prop_map(
                |(source, start, len)| {
                    let text = SOURCES[source];
                    let mut start = start.index(text.len());
                    while !text.is_char_boundary(start) {
                        start -= 1;
                    }
                    let mut end = (start + len).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text[start..end].to_string()
                }
            ),
            1 => ".{0,40}",
            1 => Just(String::new()),
        ]
    }

    const UNICODE_PY: &str =
        "# Größen → Preise\ndef preis(x):\n    return x * 1.19  # MwSt.\n\tindent\r\n  \n";

    fn paths() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::sample::select(vec![
                PY.to_string(),
                JAVA.to_string(),
                "shop/preis.py".to_string(),
                "shop/new.py".to_string(),
            ]),
            1 => prop::sample::select(vec!["Cargo.lock".to_string(), "../x".to_string()]),
            1 => "[a-zA-Z./\\\\ _-]{0,16}",
        ]
    }

    proptest! {
        #[test]
        fn validate_never_panics(
            edits in prop::collection::vec(
                (paths(), old_text(), old_text()).prop_map(|(path, old, new)| ProposedEdit { path, old, new }),
                1..4,
            ),
            confidence in prop_oneof![
                1 => Just(f64::NAN),
                1 => Just(f64::INFINITY),
                2 => -1.0f64..2.0,
                12 => 0.5f64..=1.0,
            ],
            max_changed_lines in 0usize..50,
        ) {
            let mut files = repository();
            files.insert("shop/preis.py".to_string(), UNICODE_PY.to_string());
            let guard = Guard { max_changed_lines, max_files: 3, ..Guard::default() };
            let fix = ProposedFix {
                summary: "s".to_string(),
                root_cause: "r".to_string(),
                confidence,
                edits,
            };
            if let Ok(solution) = validator(guard).validate(&fix, &files) {
                prop_assert!(!solution.changes.is_empty() && solution.changes.len() <= 3);
                for change in &solution.changes {
                    prop_assert!(change.line_start >= 1 && change.line_start <= change.line_end);
                    prop_assert!(files.get(&change.path) != Some(&change.content));
                }
            }
        }
    }
}
