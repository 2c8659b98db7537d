//! `update` in place: what crosses the `execve` so that the apps keep running. Each running
//! process is described in `$PMR_HOME/handoff.json` (written atomically, 0600) by its pid,
//! start time, uptime, cluster worker id and the fd numbers of our ends of its pipes and IPC
//! channel, which are left open (not close-on-exec) for the new daemon to take over. The
//! process table (`state.json`) still carries the specs, ids and counters.
//!
//! The fds are the instance's own copies (`Keep`, duplicated at spawn): the pumps and the IPC
//! task own the originals, which close at the exec like any other fd of ours.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Bumped when the file changes in a way another version must not guess at: a new daemon
/// that finds another format does not take the processes over (they are stopped and started
/// again from the table, and the CLI says so).
pub const FORMAT: u32 = 1;

/// One running process as it crosses the exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedChild {
    pub id: u32,
    pub pid: u32,
    pub start_ticks: u64,
    pub pm_uptime: i64,
    /// Online already (not waiting for `listening` or `ready`).
    pub ready: bool,
    /// NODE_UNIQUE_ID of a cluster worker (or of an app with `listen` sockets).
    pub worker: Option<u64>,
    pub out_fd: Option<RawFd>,
    pub err_fd: Option<RawFd>,
    pub stdin_fd: Option<RawFd>,
    pub ipc_fd: Option<RawFd>,
    /// What the IPC reader had of a message not yet complete, and its sequence number.
    pub ipc: crate::node::ipc::Frozen,
    /// Registered for `READY=1` on the notify socket (apps without a Node channel).
    pub notify: bool,
    /// What its @pm2/io agent reported: actions are registered once at the app's start, so
    /// they must outlive the daemon that received them.
    #[serde(default)]
    pub axm: pmr_core::protocol::AxmInfo,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HandoffFile {
    pub format: u32,
    /// The next NODE_UNIQUE_ID: the ids of the handed workers stay unique.
    pub next_worker: u64,
    pub children: Vec<HandedChild>,
}

pub fn path(home: &pmr_core::paths::Home) -> PathBuf {
    home.root.join("handoff.json")
}

/// Our copies of the fds that cross the exec (old side), until the exec. Process-wide: what
/// crosses `execve` is the process's.
static CROSSING: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Keep `fd` open until the exec; its number goes in the file.
pub fn cross(fd: OwnedFd) -> RawFd {
    let raw = fd.as_raw_fd();
    CROSSING.lock().unwrap().push(fd);
    raw
}

/// Just before the exec: exactly the kept fds lose close-on-exec.
pub fn open_for_exec() {
    for fd in CROSSING.lock().unwrap().iter() {
        if let Err(e) = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            tracing::warn!("update: fd {} not handed over: {e}", fd.as_raw_fd());
        }
    }
}

pub fn write(path: &Path, file: &HandoffFile) -> std::io::Result<()> {
    pmr_core::atomic_file::replace_private(path, |w| Ok(serde_json::to_writer(w, file)?))
}

/// Set by the new daemon when it inherited the lock (it replaces one: a handoff may exist).
/// Process-wide: set before the daemon's state exists, from what the exec handed over.
static REPLACING: AtomicBool = AtomicBool::new(false);

pub fn mark_replacing() {
    REPLACING.store(true, Ordering::SeqCst);
}

/// The new daemon: the processes handed over, if this process replaces a daemon and can read
/// what it wrote. The file is removed either way. Blocking (a file read).
pub fn take(home: &pmr_core::paths::Home) -> Option<HandoffFile> {
    let p = path(home);
    let bytes = std::fs::read(&p).ok();
    let _ = std::fs::remove_file(&p);
    if !REPLACING.load(Ordering::SeqCst) {
        // A stale file (a daemon that died between writing it and its exec): nothing was
        // inherited, so there is nothing to take over.
        return None;
    }
    let bytes = bytes?;
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("update: the handoff file is unreadable ({e}): the apps are restarted");
            return None;
        }
    };
    if v["format"] != FORMAT {
        tracing::warn!(
            "update: the handoff file has format {} (this pmr reads {FORMAT}): the apps are restarted",
            v["format"]
        );
        close_listed(&v);
        return None;
    }
    match serde_json::from_value::<HandoffFile>(v.clone()) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("update: the handoff file is unreadable ({e}): the apps are restarted");
            close_listed(&v);
            None
        }
    }
}

/// Close the fds named by a file we cannot use, so that no app inherits them.
fn close_listed(v: &serde_json::Value) {
    let Some(children) = v["children"].as_array() else {
        return;
    };
    for c in children {
        for k in ["out_fd", "err_fd", "stdin_fd", "ipc_fd"] {
            if let Some(fd) = c[k].as_i64().and_then(|f| RawFd::try_from(f).ok()) {
                let _ = take_fd(fd, Kind::Any);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    Socket,
    Any,
}

/// Fds already taken: never two owners of one number. Process-wide, as fd numbers are.
static TAKEN: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Take an inherited fd, if it is open and of the expected kind (a stray number is left
/// alone); close-on-exec again, so the apps started from now on do not inherit it.
pub fn take_fd(fd: RawFd, kind: Kind) -> Option<OwnedFd> {
    if fd <= 2 {
        return None;
    }
    let st = nix::sys::stat::fstat(fd).ok()?;
    let ok = match kind {
        Kind::Pipe => st.st_mode & libc::S_IFMT == libc::S_IFIFO,
        Kind::Socket => st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
        Kind::Any => true,
    };
    if !ok
        || !TAKEN
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(fd)
    {
        return None;
    }
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // SAFETY: an open fd handed to this process by the daemon it replaces, taken once.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec copy of `fd` (the instance's own, for a later handoff), numbered 3 or above
/// (std's `F_DUPFD_CLOEXEC`).
pub fn dup(fd: &impl AsFd) -> Option<OwnedFd> {
    fd.as_fd().try_clone_to_owned().ok()
}

/// The instance's copies of its process's fds, kept for a handoff.
#[derive(Default)]
pub struct Keep {
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub ipc: Option<OwnedFd>,
}
