//! The files the daemon writes itself: its home (the table, its log, the dump, sockets, the
//! default log and pid directories, wherever PM2's path knobs put them) and every app's log and
//! pid files, with the names the daemon derives from them (rotated logs, `.bak`, temporary
//! files of atomic writes). A watched app is never restarted for one of them: an app started
//! with `--watch -o ./out.log`, or a `$PMR_HOME` inside the watched folder, would otherwise
//! restart itself with each write, for ever.
//!
//! A file stays known for the life of the instance that names it, not only while it is open:
//! a log file is closed when its process exits, and that close is the event to ignore.

use crate::logs::rotate;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct OwnFiles {
    /// Directories whose every file is the daemon's.
    dirs: Vec<PathBuf>,
    /// Files by directory and name, counted by the instances naming them.
    files: Mutex<HashMap<PathBuf, HashMap<OsString, usize>>>,
}

/// Keeps files known as the daemon's until dropped.
pub struct Held {
    own: Arc<OwnFiles>,
    paths: Vec<PathBuf>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut files = self.own.files.lock().unwrap();
        for p in &self.paths {
            let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
                continue;
            };
            if let Some(names) = files.get_mut(dir) {
                if let Some(n) = names.get_mut(name) {
                    *n -= 1;
                    if *n == 0 {
                        names.remove(name);
                    }
                }
                if names.is_empty() {
                    files.remove(dir);
                }
            }
        }
    }
}

impl OwnFiles {
    /// The home's layout: its root and the directories and files knobs may have moved out
    /// of it.
    pub fn new(home: &pmr_core::paths::Home) -> Arc<OwnFiles> {
        let own = Arc::new(OwnFiles {
            dirs: vec![home.root.clone(), home.logs_dir(), home.pids_dir()],
            files: Mutex::default(),
        });
        let home_files = [
            home.daemon_log(),
            home.pid_file(),
            home.dump_file(),
            home.socket(),
            home.pub_socket(),
        ];
        // For the daemon's whole life.
        std::mem::forget(own.hold(home_files.iter().map(PathBuf::as_path)));
        own
    }

    /// Knows `paths` (absolute; `/dev/null` and the like are skipped) as the daemon's until
    /// the returned value is dropped.
    pub fn hold<'a>(self: &Arc<Self>, paths: impl IntoIterator<Item = &'a Path>) -> Held {
        let mut held = Vec::new();
        let mut files = self.files.lock().unwrap();
        for p in paths {
            if pmr_core::paths::is_null_device(&p.to_string_lossy()) {
                continue;
            }
            let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
                continue;
            };
            *files
                .entry(dir.to_path_buf())
                .or_default()
                .entry(name.to_os_string())
                .or_default() += 1;
            held.push(p.to_path_buf());
        }
        Held {
            own: self.clone(),
            paths: held,
        }
    }

    /// Whether the daemon writes `path` (absolute) itself.
    pub fn contains(&self, path: &Path) -> bool {
        if self.dirs.iter().any(|d| path.starts_with(d)) {
            return true;
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let files = self.files.lock().unwrap();
        let Some(names) = files.get(dir) else {
            return false;
        };
        names.contains_key(name) || names.keys().any(|own| derived(dir, own, name))
    }
}

/// `name` is made from the file `own` of `dir`: a rotated log (`out__<date>.log[.gz]`), or
/// `own` followed by a suffix (`.bak`, `.gz`, an atomic write's temporary file).
fn derived(dir: &Path, own: &OsStr, name: &OsStr) -> bool {
    let (own_b, name_b) = (own.as_encoded_bytes(), name.as_encoded_bytes());
    if name_b.len() > own_b.len() && name_b.starts_with(own_b) && name_b[own_b.len()] == b'.' {
        return true;
    }
    rotate::is_rotated(&dir.join(own), &name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_files_and_held_files_with_their_derived_names() {
        let home = pmr_core::paths::Home::named(
            PathBuf::from("/srv/app/.pmr-home"),
            pmr_core::personality::Personality::Pmr,
        );
        let own = OwnFiles::new(&home);
        assert!(own.contains(Path::new("/srv/app/.pmr-home/state.json")));
        assert!(own.contains(Path::new("/srv/app/.pmr-home/logs/x-out.log")));
        assert!(!own.contains(Path::new("/srv/app/server.js")));

        let held = own.hold([
            Path::new("/srv/app/out.log"),
            Path::new("/srv/app/app.pid"),
            Path::new("/dev/null"),
        ]);
        for p in [
            "/srv/app/out.log",
            "/srv/app/out__2026-12-07_10-00-00.log",
            "/srv/app/out__2026-12-07_10-00-00_2.log.gz",
            "/srv/app/app.pid",
            "/srv/app/app.pid.tmp-1",
        ] {
            assert!(own.contains(Path::new(p)), "{p}");
        }
        for p in ["/srv/app/output.js", "/srv/app/out.js", "/srv/app/app.js"] {
            assert!(!own.contains(Path::new(p)), "{p}");
        }
        // Two instances naming one file: known until both are gone.
        let again = own.hold([Path::new("/srv/app/out.log")]);
        drop(held);
        assert!(own.contains(Path::new("/srv/app/out.log")));
        assert!(!own.contains(Path::new("/srv/app/app.pid")));
        drop(again);
        assert!(!own.contains(Path::new("/srv/app/out.log")));
    }
}
