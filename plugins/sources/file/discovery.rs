//! Finding the files a `file` source follows: `include`/`exclude` globs, a directory walk from
//! each pattern's fixed prefix, and `notify` (inotify) events on those directories.
//!
//! Events are the primary signal: at full speed a rotated file may live only milliseconds, so a
//! periodic scan alone would miss whole files. The scan remains as the fallback for filesystems
//! that drop or never send events (NFS, some overlay mounts) and for directories that appear
//! later. One watch per directory, not per file, keeps thousands of files cheap.
//!
//! A file that appears (created, or renamed into a followed name) is opened right in the event
//! handler: the open descriptor pins its content even if it is renamed and deleted before the
//! reading loop gets to it, which under a full-speed writer can be milliseconds later.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::component::BuildError;

/// Extensions of compressed files, which are skipped unless a pattern names them.
const COMPRESSED: &[&str] = &["gz", "bz2", "xz", "zst", "zip", "lz4"];

/// Where a walk starts and how deep it may go.
#[derive(Debug, Clone)]
struct Root {
    dir: PathBuf,
    max_depth: usize,
}

/// Which paths a source follows.
#[derive(Clone)]
pub struct Matcher {
    include: GlobSet,
    exclude: GlobSet,
    /// Compressed extensions some include pattern names explicitly.
    included_compressed: Vec<&'static str>,
}

impl Matcher {
    pub fn matches(&self, path: &Path) -> bool {
        if !self.include.is_match(path) || self.exclude.is_match(path) {
            return false;
        }
        match path.extension().and_then(|ext| ext.to_str()) {
            Some(ext) if COMPRESSED.contains(&ext) => self.included_compressed.contains(&ext),
            _ => true,
        }
    }
}

/// Other files created in watched directories that stay open, at most this many: one of them
/// may be the copy copytruncate makes of a followed file, needed if that file is truncated
/// before we read to its end.
pub const MAX_COPY_CANDIDATES: usize = 32;

/// What file events reported since the reading loop last looked.
#[derive(Default)]
pub struct Events {
    /// Files that appeared, opened when they did, in the order they appeared.
    pub opened: Vec<(PathBuf, File)>,
    /// Files that appeared and are not followed, opened in case one is a copy.
    pub created_elsewhere: Vec<(PathBuf, File)>,
    /// Paths that changed (written, removed, renamed away).
    pub touched: HashSet<PathBuf>,
}

pub struct Discovery {
    matcher: Matcher,
    roots: Vec<Root>,
    watcher: Option<RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    events: Arc<Mutex<Events>>,
    wake: flume::Receiver<()>,
    waker: flume::Sender<()>,
}

fn glob_set(patterns: &[String], what: &str) -> Result<GlobSet, BuildError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|error| BuildError(format!("invalid {what} pattern `{pattern}`: {error}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|error| BuildError(format!("invalid {what} patterns: {error}")))
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// The directory a pattern's walk starts from, and how many levels below it can match.
fn root_of(pattern: &Path) -> Root {
    let mut dir = PathBuf::new();
    let mut rest = Vec::new();
    for component in pattern.components() {
        let text = component.as_os_str().to_string_lossy();
        if rest.is_empty() && !has_glob(&text) {
            dir.push(component.as_os_str());
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        // A plain file path: walk its directory, one level.
        let file_dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        return Root {
            dir: file_dir,
            max_depth: 1,
        };
    }
    let max_depth = if rest.iter().any(|part| part == "**") {
        usize::MAX
    } else {
        rest.len()
    };
    Root { dir, max_depth }
}

impl Discovery {
    /// `include` and `exclude` are made absolute against `base` (the working directory).
    pub fn new(
        include: &[String],
        exclude: &[String],
        base: &Path,
    ) -> Result<Discovery, BuildError> {
        let absolute = |patterns: &[String]| -> Vec<String> {
            patterns
                .iter()
                .map(|pattern| {
                    let path = Path::new(pattern);
                    if path.is_absolute() {
                        normalize(path).to_string_lossy().into_owned()
                    } else {
                        normalize(&base.join(path)).to_string_lossy().into_owned()
                    }
                })
                .collect()
        };
        let include_patterns = absolute(include);
        let exclude_patterns = absolute(exclude);
        let included_compressed = COMPRESSED
            .iter()
            .copied()
            .filter(|ext| {
                include_patterns
                    .iter()
                    .any(|p| p.ends_with(&format!(".{ext}")))
            })
            .collect();
        let mut roots: Vec<Root> = include_patterns
            .iter()
            .map(|p| root_of(Path::new(p)))
            .collect();
        roots.sort_by(|a, b| a.dir.cmp(&b.dir));
        roots.dedup_by(|later, earlier| {
            if later.dir == earlier.dir {
                earlier.max_depth = earlier.max_depth.max(later.max_depth);
                true
            } else {
                false
            }
        });
        let (waker, wake) = flume::bounded(1);
        Ok(Discovery {
            matcher: Matcher {
                include: glob_set(&include_patterns, "include")?,
                exclude: glob_set(&exclude_patterns, "exclude")?,
                included_compressed,
            },
            roots,
            watcher: None,
            watched: HashSet::new(),
            events: Arc::new(Mutex::new(Events::default())),
            wake,
            waker,
        })
    }

    /// What stands in the way of following the patterns now, for the operator: a directory
    /// that does not exist (yet: it is watched for and followed once it appears) or that
    /// cannot be read.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for root in &self.roots {
            match std::fs::read_dir(&root.dir) {
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(format!(
                        "directory {} does not exist (yet); its files are followed once it appears",
                        root.dir.display()
                    ))
                }
                Err(error) => problems.push(format!(
                    "directory {} cannot be read: {error}",
                    root.dir.display()
                )),
            }
        }
        problems
    }

    /// Whether a path is one this source follows.
    pub fn matches(&self, path: &Path) -> bool {
        self.matcher.matches(path)
    }

    /// Walks every root for matching regular files, and watches roots that exist now.
    pub fn scan(&mut self) -> Vec<PathBuf> {
        self.watch_roots();
        let mut found = Vec::new();
        for root in self.roots.clone() {
            self.walk(&root.dir, root.max_depth, &mut found);
        }
        found.sort();
        found.dedup();
        found
    }

    fn walk(&self, dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                self.walk(&path, depth - 1, found);
            } else if (kind.is_file() || kind.is_symlink()) && self.matcher.matches(&path) {
                found.push(path);
            }
        }
    }

    fn watch_roots(&mut self) {
        if self.watcher.is_none() {
            let events = self.events.clone();
            let waker = self.waker.clone();
            let matcher = self.matcher.clone();
            let handler = move |result: notify::Result<notify::Event>| {
                let Ok(event) = result else { return };
                let appeared = match event.kind {
                    EventKind::Create(_) => event.paths.last(),
                    EventKind::Modify(ModifyKind::Name(
                        RenameMode::To | RenameMode::Both | RenameMode::Any,
                    )) => event.paths.last(),
                    _ => None,
                };
                let opened = appeared
                    .and_then(|path| File::open(path).ok().map(|file| (path.clone(), file)));
                {
                    let mut pending = events
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    match opened {
                        Some((path, file)) if matcher.matches(&path) => {
                            pending.opened.push((path, file))
                        }
                        Some(other) => {
                            if pending.created_elsewhere.len() >= MAX_COPY_CANDIDATES {
                                pending.created_elsewhere.remove(0);
                            }
                            pending.created_elsewhere.push(other);
                        }
                        None => {}
                    }
                    for path in event.paths {
                        if !pending.touched.contains(&path) {
                            pending.touched.insert(path);
                        }
                    }
                }
                let _ = waker.try_send(());
            };
            match notify::recommended_watcher(handler) {
                Ok(watcher) => self.watcher = Some(watcher),
                Err(error) => {
                    tracing::warn!(%error, "file events unavailable; discovering files by scanning only");
                    return;
                }
            }
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for root in &self.roots {
            if self.watched.contains(&root.dir) || !root.dir.is_dir() {
                continue;
            }
            let mode = if root.max_depth > 1 {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match watcher.watch(&root.dir, mode) {
                Ok(()) => {
                    self.watched.insert(root.dir.clone());
                }
                Err(error) => {
                    tracing::debug!(dir = %root.dir.display(), %error, "cannot watch directory yet");
                }
            }
        }
    }

    /// What file events reported since the last call.
    pub fn drain_events(&self) -> Events {
        let mut pending = self
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *pending)
    }

    /// Waits up to `timeout` for a file event; `true` if one came.
    pub fn wait_event(&self, timeout: Duration) -> bool {
        self.wake.recv_timeout(timeout).is_ok()
    }
}

/// Removes `.` and resolves `..` lexically, so globs match what the walk produces.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_depths_follow_the_pattern() {
        let root = root_of(Path::new("/var/log/app/*.log"));
        assert_eq!(
            (root.dir, root.max_depth),
            (PathBuf::from("/var/log/app"), 1)
        );
        let root = root_of(Path::new("/var/log/pods/*/*/*.log"));
        assert_eq!(
            (root.dir, root.max_depth),
            (PathBuf::from("/var/log/pods"), 3)
        );
        let root = root_of(Path::new("/srv/**/*.log"));
        assert_eq!(
            (root.dir, root.max_depth),
            (PathBuf::from("/srv"), usize::MAX)
        );
        let root = root_of(Path::new("/var/log/syslog"));
        assert_eq!((root.dir, root.max_depth), (PathBuf::from("/var/log"), 1));
    }

    #[test]
    fn finds_matching_files_and_skips_excluded_and_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        for name in [
            "app.log",
            "app.log.1",
            "app.log.2.gz",
            "skip.log",
            "other.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x\n").unwrap();
        }
        std::fs::write(nested.join("deep.log"), b"x\n").unwrap();
        let base = dir.path();
        let mut discovery = Discovery::new(
            &["*.log*".to_string(), "a/**/*.log".to_string()],
            &["skip.log".to_string()],
            base,
        )
        .unwrap();
        let names: Vec<String> = discovery
            .scan()
            .iter()
            .map(|p| p.strip_prefix(base).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a/b/deep.log", "app.log", "app.log.1"]);

        let explicit = Discovery::new(&["*.gz".to_string()], &[], base).unwrap();
        assert!(explicit.matches(&base.join("app.log.2.gz")));
    }
}
