//! `update`: replace the running daemon by the installed binary, keeping its pid, its home's
//! lock, its apps' ids, names, specs and counters, and the apps themselves.
//!
//! Once changes under way have settled, every instance hands its running process over
//! (`handoff.rs`, `instance/adopt.rs`): the log pumps and IPC readers stop between two reads,
//! the process table and `handoff.json` are written, and the daemon re-executes the new binary
//! (`execve`, same pid, so the apps stay its children) with exactly the lock, the cluster
//! listening sockets and the apps' pipes and channels left open. The new daemon takes every
//! process over: no app is restarted, no connection refused. A binary that cannot read the
//! handoff restarts the apps from the table (the CLI names them).

use crate::daemon::Daemon;
use crate::instances::instance::Ctl;
use crate::node::cluster::{Held, Owner};
use pmr_core::protocol::{Request, Response, Status};
use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

/// The fd of the home's lock, set by `daemon::run_with` (the daemon the CLI starts, and the
/// boot unit's `pmr daemon --resurrect`: systemd keeps tracking the same pid, and the new
/// binary inherits `NOTIFY_SOCKET` and sends `READY=1` again): it is handed to the new
/// binary, so the home is never without a daemon owning it. Process-wide: the lock is the
/// process's, taken before the daemon's state exists, and crosses `execve`.
pub static LOCK_FD: OnceLock<RawFd> = OnceLock::new();

/// Whether `req` must wait for the new daemon: once an update has begun, requests that change
/// the table are refused (an app started now would not be in the table handed over).
pub fn refused_meanwhile(d: &Daemon, req: &Request) -> bool {
    d.updating.load(Ordering::SeqCst)
        && !matches!(
            req,
            Request::Ping | Request::List | Request::Resolve { .. } | Request::Subscribe { .. }
        )
}

/// How the new daemon learns which fd is the lock it inherits.
const LOCK_FD_VAR: &str = "PMR_UPDATE_LOCK_FD";
/// And the cluster listening sockets (JSON: [`Handed`] per socket).
const SOCKETS_VAR: &str = "PMR_UPDATE_SOCKETS";

/// The sockets held across the stops, until the exec (old side), or inherited until the
/// server adopts them (new side). Process-wide: they cross `execve`, and the new side reads
/// them before the daemon's state exists.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// One listening socket as it crosses the exec.
#[derive(Serialize, Deserialize)]
struct Handed {
    owner: Owner,
    key: String,
    fd: RawFd,
    data: serde_json::Value,
    unix_path: Option<PathBuf>,
    #[serde(default)]
    members: Vec<u64>,
    /// Round-robin: the new daemon accepts on it again (an older daemon's absent field: shared).
    #[serde(default)]
    round_robin: bool,
}

/// Why `binary` cannot replace the daemon, if it cannot (shared with the CLI's check).
pub fn check_binary(binary: &Path) -> Result<(), String> {
    let shown = binary.display();
    let meta = std::fs::metadata(binary).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a file"));
    }
    nix::unistd::access(binary, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| format!("{shown}: not executable ({e})"))
}

pub async fn update(d: &Arc<Daemon>, binary: &str) -> Response {
    if LOCK_FD.get().is_none() {
        return Response::Error {
            message: "update: this daemon runs in the foreground (pmr-runtime or start --no-daemon): restart it with the new binary instead".into(),
        };
    }
    let path = Path::new(binary).to_path_buf();
    let checked = {
        let p = path.clone();
        tokio::task::spawn_blocking(move || check_binary(&p)).await
    };
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Response::Error {
                message: format!("update: {e}; the daemon keeps running"),
            }
        }
        Err(e) => {
            return Response::Error {
                message: format!("update: {e}"),
            }
        }
    }
    if d.updating.swap(true, Ordering::SeqCst) {
        return Response::Error {
            message: "update: an update is already in progress".into(),
        };
    }
    // From here new changes are refused; those under way finish first (bounded), or the
    // update is refused and nothing has changed.
    if let Err(busy) = settle(d).await {
        d.updating.store(false, Ordering::SeqCst);
        return Response::Error {
            message: format!(
                "update: {busy} after {} s; nothing changed (the daemon keeps running): try again once it is done",
                SETTLE.as_secs()
            ),
        };
    }
    let started = std::time::Instant::now();
    // No more round-robin handing from here: a connection handed to a channel about to be
    // frozen could be lost at the exec. New ones wait in the backlog for the next daemon.
    d.ctx.listeners.stop_balancing();
    // Every instance describes its running process and parks: nothing starts, stops or
    // restarts any more in this daemon.
    let waits: Vec<_> = {
        let reg = d.registry.lock().unwrap();
        reg.entries
            .values()
            .map(|e| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = e.ctl.send(Ctl::Handoff(tx));
                rx
            })
            .collect()
    };
    let mut children = Vec::new();
    let deadline = tokio::time::Instant::now() + SETTLE;
    for w in waits {
        // One that does not answer is not handed over: the next daemon stops and starts it.
        if let Ok(Ok(Some(h))) = tokio::time::timeout_at(deadline, w).await {
            children.push(h);
        }
    }
    // The log pumps hand on what they read (a partial line too) and stop; then every log
    // file writes out what is queued: nothing read from a pipe is lost at the exec.
    d.ctx.sinks.freeze_pumps();
    let quiet = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while d.ctx.sinks.live_pumps() > 0 && tokio::time::Instant::now() < quiet {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    d.ctx.sinks.sync_all().await;
    // The table as it is now (specs, ids, counters; what is online), then no more writes.
    let mut table = crate::recovery::recover::snapshot_now(d).await;
    let writer = d.ctx.table.clone();
    let _ = tokio::task::spawn_blocking(move || writer.close()).await;
    *HELD.lock().unwrap() = d.ctx.listeners.hold_all();
    d.ctx.shutting_down.store(true, Ordering::SeqCst);
    // Every process still ours, the handed ones included: a new daemon that cannot take
    // them over (another handoff format) stops them as leftovers and starts them again.
    table.processes = d.ctx.table.processes();
    let instances = table.apps.len() as u32;
    tracing::info!(
        "update: {} process(es) handed over in {} ms, then executing {}",
        children.len(),
        started.elapsed().as_millis(),
        path.display()
    );
    let handoff = crate::instances::handoff::HandoffFile {
        format: crate::instances::handoff::FORMAT,
        next_worker: d.ctx.next_worker.load(Ordering::SeqCst),
        children,
    };
    let file = crate::instances::table_file::path(&d.ctx.home);
    let handoff_path = crate::instances::handoff::path(&d.ctx.home);
    let written = tokio::task::spawn_blocking(move || {
        crate::instances::handoff::write(&handoff_path, &handoff)?;
        crate::instances::table_file::write_atomic(&file, &table)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        // Without the table the new daemon would forget every app: stay, and say so.
        Ok(Err(e)) => return write_failed(d, e.to_string()),
        Err(e) => return write_failed(d, e.to_string()),
    }
    Response::Updating { instances }
}

/// How long changes under way may take to finish before an update is refused.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Wait until nothing is starting, stopping, restarting or being reloaded (no process is
/// running beside its instance's: a reload's second one, a retiring worker).
async fn settle(d: &Arc<Daemon>) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut said = false;
    loop {
        let Some(busy) = busy(d) else { return Ok(()) };
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("update refused: {busy}");
            return Err(busy);
        }
        if !std::mem::replace(&mut said, true) {
            tracing::info!("update: waiting for changes under way ({busy})");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn busy(d: &Daemon) -> Option<String> {
    let states = d.registry.lock().unwrap().snapshot();
    let mut running = 0;
    for (id, s) in &states {
        if matches!(s.status, Status::Launching | Status::Stopping) || s.restarting {
            return Some(format!(
                "App [{}:{id}] is still {}",
                s.spec.name,
                if s.restarting {
                    "restarting".to_string()
                } else {
                    format!("{:?}", s.status).to_lowercase()
                }
            ));
        }
        running += usize::from(s.pid != 0);
    }
    let processes = d.ctx.table.processes().len();
    (processes > running).then(|| {
        format!(
            "{} process(es) beside the apps' own (a reload or scale-down under way)",
            processes - running
        )
    })
}

fn write_failed(d: &Arc<Daemon>, e: String) -> Response {
    tracing::error!("update: cannot write the process table or the handoff: {e}; exiting");
    d.exit.notify_one();
    Response::Error {
        message: format!(
            "update: cannot write the process table or the handoff ({e}): the daemon exits; the next command starts a daemon that restores the last table written"
        ),
    }
}

/// Replace this process by `binary` (called once `Updating` is sent). Returns only if the
/// exec failed; the table is on disk, so the caller exits and the next CLI call starts a
/// daemon that restores it.
pub fn exec(binary: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let Some(&lock_fd) = LOCK_FD.get() else {
        return std::io::Error::other("no lock to hand over");
    };
    // Exactly this fd crosses the exec; every other one of ours is close-on-exec.
    if let Err(e) = nix::fcntl::fcntl(
        lock_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    ) {
        return std::io::Error::from(e);
    }
    let mut handed = Vec::new();
    for h in HELD.lock().unwrap().iter() {
        let fd = h.socket.as_raw_fd();
        if let Err(e) = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            // That port is bound again by its first restored worker (a short refusal).
            tracing::warn!("update: socket {} not handed over: {e}", h.key);
            continue;
        }
        handed.push(Handed {
            owner: h.owner.clone(),
            key: h.key.clone(),
            fd,
            data: h.data.clone(),
            unix_path: h.unix_path.clone(),
            members: h.members.clone(),
            round_robin: h.round_robin,
        });
    }
    let sockets = serde_json::to_string(&handed).unwrap_or_else(|_| "[]".into());
    // The apps' pipes and IPC channels (see `handoff.rs`).
    crate::instances::handoff::open_for_exec();
    let mut args = std::env::args_os();
    // argv[0] is kept: it selects the personality (pmr or pm2) and so the home's names.
    let arg0 = args.next().unwrap_or_else(|| "pmr".into());
    // `--resurrect` was for the boot: the restored table is what runs now.
    let rest: Vec<_> = args.filter(|a| a != "--resurrect").collect();
    tracing::info!("update: executing {binary}");
    let mut cmd = std::process::Command::new(binary);
    cmd.arg0(arg0)
        .args(rest)
        .env(LOCK_FD_VAR, lock_fd.to_string())
        .env(SOCKETS_VAR, sockets);
    if let Some(n) = crate::processes::spawn::original_nofile() {
        cmd.env(crate::processes::spawn::NOFILE_VAR, n);
    }
    cmd.exec()
}

/// The lock a replaced daemon handed over, if this process is its replacement. Called once,
/// before any thread is started (it removes the variable, which apps must not inherit).
pub fn inherited_lock() -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    let sockets = std::env::var(SOCKETS_VAR).ok();
    std::env::remove_var(SOCKETS_VAR);
    let v = std::env::var(LOCK_FD_VAR).ok()?;
    std::env::remove_var(LOCK_FD_VAR);
    crate::instances::handoff::mark_replacing();
    if let Some(s) = sockets {
        *HELD.lock().unwrap() = inherited_sockets(&s);
    }
    let fd: RawFd = v.parse().ok()?;
    // Only an fd that is open (and a regular file) is taken: a stray variable is ignored.
    let st = nix::sys::stat::fstat(fd).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // SAFETY: the fd is open, ours, and owned by nothing else in this fresh process.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// The sockets a replaced daemon handed over. One this binary cannot read (another format)
/// is closed, so that its port is free for the restored workers to bind again.
fn inherited_sockets(s: &str) -> Vec<Held> {
    let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(s) else {
        eprintln!("update: the handed-over sockets are unreadable; their ports are bound again");
        return Vec::new();
    };
    let mut held = Vec::new();
    for v in list {
        let fd = v["fd"].as_i64().and_then(|f| RawFd::try_from(f).ok());
        match serde_json::from_value::<Handed>(v) {
            Ok(h) => held.extend(inherited_socket(h)),
            Err(_) => {
                if let Some(fd) = fd.filter(|&fd| is_socket(fd)) {
                    let _ = nix::unistd::close(fd);
                }
            }
        }
    }
    held
}

fn is_socket(fd: RawFd) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// An inherited fd is taken only if it is an open socket; close-on-exec again, so apps
/// started from now on do not inherit it.
fn inherited_socket(h: Handed) -> Option<Held> {
    use std::os::fd::FromRawFd;
    if !is_socket(h.fd) {
        return None;
    }
    let _ = nix::fcntl::fcntl(
        h.fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // SAFETY: an open socket handed to this fresh process, owned by nothing else here.
    let socket = unsafe { OwnedFd::from_raw_fd(h.fd) };
    Some(Held {
        owner: h.owner,
        key: h.key,
        socket: Arc::new(socket),
        data: h.data,
        unix_path: h.unix_path,
        members: h.members,
        round_robin: h.round_robin,
    })
}

/// The new daemon, before its restore: the inherited sockets wait for their workers.
/// Whether there were any.
pub fn adopt_sockets(d: &Daemon) -> bool {
    let held = std::mem::take(&mut *HELD.lock().unwrap());
    let any = !held.is_empty();
    if any {
        tracing::info!("update: {} listening socket(s) handed over", held.len());
    }
    for h in held {
        d.ctx.listeners.adopt(h);
    }
    any
}
