//! The kernel's file events (inotify): one watch per directory not ignored, read through
//! tokio's reactor, so a watcher at rest costs no CPU at all. A directory created later is
//! watched from a blocking task; ignored directories never get a watch.
//!
//! A file counts as changed when it is closed after writing (`IN_CLOSE_WRITE`), created,
//! deleted, moved or has its attributes changed (`touch`): a file still being written does
//! not restart the app half-way.

use crate::watch::filter::Filter;
use crate::watch::walk::Walk;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;

fn mask() -> F {
    F::IN_CLOSE_WRITE
        | F::IN_CREATE
        | F::IN_DELETE
        | F::IN_MOVED_FROM
        | F::IN_MOVED_TO
        | F::IN_ATTRIB
        | F::IN_DELETE_SELF
        | F::IN_MOVE_SELF
}

/// A watched root: a directory (recursive) or a file (its directory, filtered to its name,
/// so an editor that replaces the file by a rename is still seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    pub path: PathBuf,
    pub is_dir: bool,
}

struct Dir {
    path: PathBuf,
    root: PathBuf,
    /// Only these names count (a directory watched for file roots only).
    only: Option<Vec<OsString>>,
}

struct Inner {
    ino: Inotify,
    dirs: Mutex<HashMap<WatchDescriptor, Dir>>,
    ignore: Filter,
    follow: bool,
    /// A lower limit than the kernel's (tests of the fallback).
    max_watches: Option<usize>,
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.ino.as_fd().as_raw_fd()
    }
}
struct Fd(Arc<Inner>);

pub enum SetupError {
    /// Out of inotify watches or instances: the caller falls back to polling.
    Limit(String),
    Other(String),
}

pub struct InotifyWatch {
    fd: AsyncFd<Fd>,
    pub dirs: usize,
    pub unreadable: Vec<PathBuf>,
    /// Out of watches: what got none (to be polled), and the message naming the sysctl.
    pub overflow: Vec<Root>,
    pub limit: Option<String>,
}

fn limit_message(e: Errno) -> Option<String> {
    let read = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{k}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    match e {
        Errno::ENOSPC => Some(format!(
            "the inotify watch limit is reached (fs.inotify.max_user_watches = {}); raise it with `sysctl fs.inotify.max_user_watches=524288`",
            read("max_user_watches")
        )),
        Errno::EMFILE => Some(format!(
            "the inotify instance limit is reached (fs.inotify.max_user_instances = {}); raise it with `sysctl fs.inotify.max_user_instances=1024`",
            read("max_user_instances")
        )),
        _ => None,
    }
}

fn classify(e: Errno, what: &str) -> SetupError {
    match limit_message(e) {
        Some(m) => SetupError::Limit(m),
        None => SetupError::Other(format!("{what}: {e}")),
    }
}

/// Adds watches for `start` and the directories below it (blocking). On an error, the
/// directories left without a watch (disjoint subtrees).
fn add_tree(
    inner: &Inner,
    walk: &mut Walk,
    root: &Path,
    start: &Path,
) -> Result<usize, (Errno, Vec<PathBuf>)> {
    let mut n = 0;
    walk.dirs(
        root,
        start,
        &mut |d| {
            let full = inner
                .max_watches
                .is_some_and(|m| inner.dirs.lock().unwrap().len() >= m);
            let wd = if full {
                Err(Errno::ENOSPC)
            } else {
                inner.ino.add_watch(d, mask())
            }?;
            n += 1;
            inner.dirs.lock().unwrap().insert(
                wd,
                Dir {
                    path: d.to_path_buf(),
                    root: root.to_path_buf(),
                    only: None,
                },
            );
            Ok(())
        },
        &mut |_, _| {},
    )?;
    Ok(n)
}

impl InotifyWatch {
    /// Sets every watch up (blocking: call it from a blocking task). Needs a runtime for the
    /// reactor registration.
    pub fn open(
        roots: &[Root],
        ignore: Filter,
        follow: bool,
        max_watches: Option<usize>,
        rt: &tokio::runtime::Handle,
    ) -> Result<InotifyWatch, SetupError> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| classify(e, "inotify_init"))?;
        let inner = Arc::new(Inner {
            ino,
            dirs: Mutex::new(HashMap::new()),
            ignore,
            follow,
            max_watches,
        });
        let mut walk = Walk::new(&inner.ignore, follow);
        let mut dirs = 0;
        let mut overflow = Vec::new();
        let mut limit = None;
        for r in roots {
            if limit.is_some() {
                overflow.push(r.clone());
            } else if r.is_dir {
                match add_tree(&inner, &mut walk, &r.path, &r.path) {
                    Ok(n) => dirs += n,
                    Err((e, left)) => match limit_message(e) {
                        Some(m) => {
                            limit = Some(m);
                            dirs = inner.dirs.lock().unwrap().len();
                            overflow
                                .extend(left.into_iter().map(|path| Root { path, is_dir: true }));
                        }
                        None => {
                            return Err(SetupError::Other(format!("{}: {e}", r.path.display())))
                        }
                    },
                }
            } else {
                let parent = r.path.parent().unwrap_or(Path::new("/"));
                let name = r.path.file_name().unwrap_or_default().to_os_string();
                let wd = match inner.ino.add_watch(parent, mask()) {
                    Ok(wd) => wd,
                    Err(e) => match limit_message(e) {
                        Some(m) => {
                            limit = Some(m);
                            overflow.push(r.clone());
                            continue;
                        }
                        None => {
                            return Err(SetupError::Other(format!("{}: {e}", parent.display())))
                        }
                    },
                };
                let mut map = inner.dirs.lock().unwrap();
                let d = map.entry(wd).or_insert(Dir {
                    path: parent.to_path_buf(),
                    root: parent.to_path_buf(),
                    only: Some(Vec::new()),
                });
                if let Some(only) = &mut d.only {
                    only.push(name);
                }
                dirs += 1;
            }
        }
        let unreadable = std::mem::take(&mut walk.unreadable);
        drop(walk);
        let _enter = rt.enter();
        // SAFETY: the fd is owned by the `Inotify` inside `Fd`, which lives (never
        // replaced) as long as the `AsyncFd`, and `as_raw_fd` always returns that fd.
        let fd = unsafe { AsyncFd::register(Fd(inner)) }
            .map_err(|e| SetupError::Other(e.to_string()))?;
        Ok(InotifyWatch {
            fd,
            dirs,
            unreadable,
            overflow,
            limit,
        })
    }

    /// The next change that counts (cancel-safe: nothing is lost between reads).
    pub async fn next(&mut self) -> String {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            match guard.try_io(|fd| fd.get_ref().0.ino.read_events().map_err(Into::into)) {
                Ok(Ok(events)) => {
                    if let Some(p) = self.handle(events) {
                        return p;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!("inotify read failed: {e}");
                    return std::future::pending().await;
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads and forgets what is queued (changes made before a restart that already
    /// happened), still watching new directories. Non-blocking.
    pub fn drain(&mut self) {
        while let Ok(events) = self.fd.get_ref().0.ino.read_events() {
            self.handle(events);
        }
    }

    /// The first change that counts among `events`; new directories get watched.
    fn handle(&mut self, events: Vec<nix::sys::inotify::InotifyEvent>) -> Option<String> {
        let inner = self.fd.get_ref().0.clone();
        let mut first = None;
        let mut new_dirs = Vec::new();
        {
            let mut dirs = inner.dirs.lock().unwrap();
            for ev in events {
                if ev.mask.contains(F::IN_Q_OVERFLOW) {
                    first.get_or_insert_with(|| "(many files: the event queue overflowed)".into());
                    continue;
                }
                if ev.mask.contains(F::IN_IGNORED) {
                    dirs.remove(&ev.wd);
                    continue;
                }
                let Some(d) = dirs.get(&ev.wd) else { continue };
                let path = match &ev.name {
                    Some(n) => {
                        if d.only.as_ref().is_some_and(|o| !o.contains(n)) {
                            continue;
                        }
                        d.path.join(n)
                    }
                    None => d.path.clone(),
                };
                let ignored = match d.only {
                    None => inner.ignore.is_ignored(&d.root, &path),
                    Some(_) => inner.ignore.is_own(&path),
                };
                if ignored {
                    continue;
                }
                if d.only.is_none()
                    && ev.mask.contains(F::IN_ISDIR)
                    && ev.mask.intersects(F::IN_CREATE | F::IN_MOVED_TO)
                {
                    new_dirs.push((d.root.clone(), path.clone()));
                }
                first.get_or_insert_with(|| path.display().to_string());
            }
        }
        for (root, dir) in new_dirs {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || {
                let mut walk = Walk::new(&inner.ignore, inner.follow);
                if let Err((e, _)) = add_tree(&inner, &mut walk, &root, &dir) {
                    let m = limit_message(e).unwrap_or_else(|| e.to_string());
                    tracing::warn!("cannot watch {}: {m}", dir.display());
                }
            });
        }
        first
    }
}
