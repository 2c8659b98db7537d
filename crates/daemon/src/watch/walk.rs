//! Walking a watched tree (blocking: run it off the runtime's threads): directories not
//! ignored, each once (symlink loops), unreadable ones reported and skipped.

use crate::watch::filter::Filter;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct Walk<'a> {
    pub ignore: &'a Filter,
    pub follow_symlinks: bool,
    seen: HashSet<(u64, u64)>,
    /// Directories that could not be read (permissions), to be said once.
    pub unreadable: Vec<PathBuf>,
}

impl<'a> Walk<'a> {
    pub fn new(ignore: &'a Filter, follow_symlinks: bool) -> Walk<'a> {
        Walk {
            ignore,
            follow_symlinks,
            seen: HashSet::new(),
            unreadable: Vec::new(),
        }
    }

    /// Calls `dir` for `start` (a directory under `root`) and each directory below it, and
    /// `file` for each other entry; stops at the first error of `dir`, with the directories
    /// not visited yet: the one that failed and disjoint subtrees, none of them entered.
    pub fn dirs<E>(
        &mut self,
        root: &Path,
        start: &Path,
        dir: &mut dyn FnMut(&Path) -> Result<(), E>,
        file: &mut dyn FnMut(&Path, &std::fs::Metadata),
    ) -> Result<(), (E, Vec<PathBuf>)> {
        let mut stack = vec![start.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&d) else {
                continue;
            };
            if !self.seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            if let Err(e) = dir(&d) {
                stack.push(d);
                return Err((e, stack));
            }
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(_) => {
                    self.unreadable.push(d);
                    continue;
                }
            };
            for e in entries.flatten() {
                let p = e.path();
                if self.ignore.is_ignored(root, &p) {
                    continue;
                }
                let Ok(ft) = e.file_type() else { continue };
                let is_dir = if ft.is_symlink() {
                    self.follow_symlinks && std::fs::metadata(&p).is_ok_and(|m| m.is_dir())
                } else {
                    ft.is_dir()
                };
                if is_dir {
                    stack.push(p);
                } else if let Ok(m) = std::fs::symlink_metadata(&p) {
                    file(&p, &m);
                }
            }
        }
        Ok(())
    }
}
