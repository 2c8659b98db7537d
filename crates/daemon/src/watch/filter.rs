//! What a watched app's changes are checked against: the daemon's own files first ([`own`]),
//! then the app's `ignore_watch` ([`Ignore`], in `pmr-config`, since the CLI checks the
//! patterns when the app starts).
//!
//! [`own`]: crate::watch::own

use crate::watch::OwnFiles;
use pmr_config::watch_ignore::Ignore;
use std::path::Path;
use std::sync::Arc;

pub struct Filter {
    ignore: Ignore,
    own: Option<Arc<OwnFiles>>,
}

impl Filter {
    pub fn new(ignore: Ignore, own: Option<Arc<OwnFiles>>) -> Filter {
        Filter { ignore, own }
    }

    /// `path` is absolute; `root` is the watched root it is under.
    pub fn is_ignored(&self, root: &Path, path: &Path) -> bool {
        self.is_own(path) || self.ignore.is_ignored(root, path)
    }

    /// Whether the daemon writes `path` itself: never a change, even of a file watched by name.
    pub fn is_own(&self, path: &Path) -> bool {
        self.own.as_ref().is_some_and(|o| o.contains(path))
    }
}
