//! Rotation: a followed path that names another file (rename and create), and a followed file
//! that shrank or was rewritten (copytruncate), with the copies that carry its content on.
//!
//! Rename: the open handle keeps the content; it is read to its end at whatever name it has, and
//! closed once gone and drained. Copytruncate: the stream continues in the copy (found by content
//! identity among recently created files, then among the path's siblings) from the offset it had
//! reached, and the truncated file is followed again from 0 as a new stream. Several rotations
//! may pass between two reads; their copies hold content never seen, and are followed at every
//! scan as streams of their own. The invariant that keeps this lossless: a copy of a stream still
//! followed (or of one whose first line is not complete, so whose identity is undecided) stays a
//! candidate, never followed on its own: it is where that stream goes on once its truncation is
//! seen. Debugged under load (`copytruncate_under_load_loses_nothing`): change with care.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Tailer;
use super::tailed::{identity_of, is_inode_key};

impl Tailer {
    /// Re-checks every followed path: does it still name the same file?
    pub(super) fn check_paths(&mut self) {
        let serials: Vec<u64> = self.files.keys().copied().collect();
        for serial in serials {
            self.check_path(serial);
        }
    }

    pub(super) fn check_path(&mut self, serial: u64) {
        let Some(file) = self.files.get_mut(&serial) else {
            return;
        };
        let same = std::fs::metadata(&file.path)
            .map(|metadata| (metadata.dev(), metadata.ino()) == file.dev_ino)
            .unwrap_or(false);
        file.active = true;
        if !same && !file.rotated_away {
            file.rotated_away = true;
            if self.by_path.get(&file.path) == Some(&serial) {
                self.by_path.remove(&file.path);
            }
            self.rotations.inc();
            // The path may already name the new file.
            let path = file.path.clone();
            if self.discovery.matches(&path) {
                self.discover(&path, false);
            }
        }
    }

    /// The file shrank below what was read (copytruncate) or was rewritten from the start.
    pub(super) fn truncated(&mut self, serial: u64) {
        self.truncations.inc();
        // The copy was created just before the truncation: make sure its event is taken.
        self.take_events();
        let Some(file) = self.files.get(&serial) else {
            return;
        };
        let original_path = file.path.clone();
        let original_inode = file.dev_ino;
        let key = file.key.clone();
        tracing::info!(component_id = %self.source, path = %original_path.display(), "file truncated");
        match self.find_copy(&original_path, &key, original_inode) {
            Some((copy, dev_ino, copy_path)) => {
                // The stream goes on in the copy from where it was; the truncated file is new.
                let Some(file) = self.files.get_mut(&serial) else {
                    return;
                };
                if let Err(error) = file.continue_in(copy, dev_ino, &copy_path) {
                    tracing::warn!(%error, "cannot continue in the copy");
                }
                self.by_inode.remove(&original_inode);
                self.by_inode.insert(dev_ino, serial);
                if self.by_path.get(&original_path) == Some(&serial) {
                    self.by_path.remove(&original_path);
                }
                self.by_path.insert(copy_path, serial);
            }
            None => {
                // The rest of the old content is gone: finish that stream and start again.
                let held = match self.files.get_mut(&serial) {
                    Some(file) => {
                        file.rotated_away = true;
                        file.retire();
                        file.flush_pending()
                    }
                    None => Vec::new(),
                };
                self.ship(serial, held);
                self.by_inode.remove(&original_inode);
                if self.by_path.get(&original_path) == Some(&serial) {
                    self.by_path.remove(&original_path);
                }
                self.by_key.remove(&key);
            }
        }
        // Several rotations may have passed before we noticed: contents we never saw live on
        // only in their copies. Follow those first, oldest first.
        self.follow_missed_copies(&original_path);
        // Follow the truncated file as a new stream from its start.
        if let Ok(reopened) = File::open(&original_path)
            && let Ok(metadata) = reopened.metadata()
        {
            let dev_ino = (metadata.dev(), metadata.ino());
            if dev_ino == original_inode && !self.by_inode.contains_key(&dev_ino) {
                let new_key = identity_of(&reopened, dev_ino)
                    .unwrap_or_else(|_| format!("ino:{}:{}", dev_ino.0, dev_ino.1));
                if !self.by_key.contains_key(&new_key) {
                    self.follow(reopened, new_key, dev_ino, &original_path, 0);
                }
            }
        }
    }

    /// Copies made by rotations that were never seen as a truncation: a followed file emptied
    /// and refilled before its first read still reads from offset 0, so its truncation cannot
    /// show, and the content in between lives only in the copies (opened when they appeared).
    pub(super) fn follow_copies_of_unseen_rotations(&mut self) {
        if self.copy_candidates.is_empty() {
            return;
        }
        let mut paths: Vec<PathBuf> = self
            .files
            .values()
            .filter(|file| !file.is_retired())
            .map(|file| file.path.clone())
            .collect();
        paths.sort();
        paths.dedup();
        for path in paths {
            self.follow_missed_copies(&path);
        }
    }

    /// Copies of `path` (named after it) created while it was followed whose content was never
    /// followed: each becomes a stream of its own, read to its end and then closed. A copy of a
    /// stream still followed stays a candidate: it is where that stream goes on once its
    /// truncation is seen.
    fn follow_missed_copies(&mut self, path: &Path) {
        let Some(name) = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
        else {
            return;
        };
        // A stream under this path that has read part of a first line has no content identity
        // yet: a copy may be of it, so none is followed as missed content meanwhile.
        let undecided = self.files.values().any(|followed| {
            followed.path == path && is_inode_key(&followed.key) && followed.read_offset() > 0
        });
        let candidates: Vec<(PathBuf, File)> = self.copy_candidates.drain(..).collect();
        for (candidate_path, file) in candidates {
            let is_copy_of_path = candidate_path.parent() == path.parent()
                && candidate_path
                    .file_name()
                    .is_some_and(|candidate| candidate.to_string_lossy().starts_with(&name));
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let dev_ino = (metadata.dev(), metadata.ino());
            if !is_copy_of_path || self.by_inode.contains_key(&dev_ino) {
                self.copy_candidates.push_back((candidate_path, file));
                continue;
            }
            let Ok(key) = identity_of(&file, dev_ino) else {
                continue;
            };
            if is_inode_key(&key) {
                continue;
            }
            // A copy of a followed stream: where it goes on once its truncation is seen.
            if self.by_key.contains_key(&key) || undecided {
                self.copy_candidates.push_back((candidate_path, file));
                continue;
            }
            let offset = self
                .saved
                .get(&key)
                .map_or(0, |checkpoint| checkpoint.offset);
            if offset >= metadata.len() {
                continue;
            }
            tracing::info!(component_id = %self.source, path = %candidate_path.display(), offset, "reading a copy of content missed between rotations");
            self.follow(file, key, dev_ino, &candidate_path, offset);
            if let Some(serial) = self.by_inode.get(&dev_ino).copied()
                && let Some(followed) = self.files.get_mut(&serial)
            {
                // Not a followed name: close it once it is read.
                followed.rotated_away = !self.discovery.matches(&candidate_path);
            }
        }
    }

    /// The copy copytruncate made: a file with the same identity under another inode, among
    /// the files created recently (opened when they appeared, so even a copy deleted since is
    /// still readable), then among the siblings of `path` whose name starts with its name.
    fn find_copy(
        &mut self,
        path: &Path,
        key: &str,
        inode: (u64, u64),
    ) -> Option<(File, (u64, u64), PathBuf)> {
        if is_inode_key(key) {
            return None;
        }
        let candidate_index = self.copy_candidates.iter().position(|(_, file)| {
            file.metadata().ok().is_some_and(|metadata| {
                let dev_ino = (metadata.dev(), metadata.ino());
                dev_ino != inode
                    && !self.by_inode.contains_key(&dev_ino)
                    && identity_of(file, dev_ino).ok().as_deref() == Some(key)
            })
        });
        if let Some((candidate_path, file)) =
            candidate_index.and_then(|index| self.copy_candidates.remove(index))
            && let Ok(metadata) = file.metadata()
        {
            return Some((file, (metadata.dev(), metadata.ino()), candidate_path));
        }
        let dir = path.parent()?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&name))
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, entry.path()))
            })
            .collect();
        candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.0));
        for (_, candidate) in candidates {
            let Ok(file) = File::open(&candidate) else {
                continue;
            };
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let dev_ino = (metadata.dev(), metadata.ino());
            if dev_ino == inode || self.by_inode.contains_key(&dev_ino) {
                continue;
            }
            if identity_of(&file, dev_ino).ok().as_deref() == Some(key) {
                return Some((file, dev_ino, candidate));
            }
        }
        None
    }
}
