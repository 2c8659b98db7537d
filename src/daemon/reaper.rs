//! Orphan reaping for the foreground daemon (`pmr-runtime` as a container's PID 1, or any
//! process that made itself a child subreaper): processes whose parent died are reparented to
//! us and must be waited for, or they stay zombies and fill the pid table.
//!
//! The daemon's own children belong to tokio, which waits for each by its pid when SIGCHLD
//! comes; a `waitpid(-1)` here would steal their exit statuses (the instance would never learn
//! its app's exit code). So this thread never reaps blindly:
//! * every [`EVERY`], `waitid(P_ALL, WEXITED | WNOWAIT | WNOHANG)` says whether some child is
//!   a zombie, without reaping it;
//! * if one is, /proc says which children are zombies; those spawned by the daemon (recorded by
//!   `spawn.rs` through [`track`] right after fork, before anyone could wait) are left to tokio;
//! * any other zombie child is an adopted orphan, reaped with `waitpid(pid)` once it has been
//!   seen as a zombie in two looks [`GRACE`] apart (so a child forked an instant ago, whose pid
//!   is about to be tracked, is never taken for an orphan);
//! * tracked pids whose /proc entry is gone (tokio reaped them) are forgotten at every look, so
//!   a reused pid is not mistaken for the daemon's child (it would take a pid reuse within one
//!   look, 100 ms).

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Pids of the daemon's own children, while reaping is on (empty otherwise: no cost).
static MANAGED: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();

/// How often the thread looks (a `waitid` that reaps nothing, and the tracked pids' /proc
/// entries). Also how long a foreign zombie must have been seen before it is reaped.
const EVERY: Duration = Duration::from_millis(100);
const GRACE: Duration = EVERY;

/// Record a child the daemon spawned: tokio waits for it, never us.
pub fn track(pid: u32) {
    if let Some(m) = MANAGED.get() {
        m.lock().unwrap().insert(pid);
    }
}

/// Become a child subreaper (orphans of our apps' trees come to us even when we are not
/// PID 1) and start the reaping thread. Call before the first app is spawned.
pub fn start() -> std::io::Result<()> {
    if MANAGED.set(Mutex::new(HashSet::new())).is_err() {
        return Ok(());
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("cannot become a child subreaper (orphans go to PID 1): {e}");
    }
    std::thread::Builder::new()
        .name("pmr-reaper".into())
        .stack_size(128 * 1024)
        .spawn(run)?;
    Ok(())
}

fn run() {
    let mut suspects: HashMap<u32, Instant> = HashMap::new();
    loop {
        std::thread::sleep(EVERY);
        // Forget tracked pids tokio has reaped, before their pids can be reused by orphans.
        if let Some(m) = MANAGED.get() {
            m.lock()
                .unwrap()
                .retain(|&pid| crate::procfs::read_stat(pid).is_some());
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        match waitid(Id::All, flags) {
            // Some child is a zombie (`StillAlive`: none is).
            Ok(WaitStatus::StillAlive) => suspects.clear(),
            Ok(_) => sweep(&mut suspects),
            // No child at all right now.
            Err(Errno::ECHILD) | Err(Errno::EINTR) => suspects.clear(),
            Err(e) => {
                tracing::warn!("reaper: waitid failed: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Reap the zombie children that are not the daemon's and were already zombies last time.
fn sweep(suspects: &mut HashMap<u32, Instant>) {
    let me = std::process::id();
    let zombies = zombie_children(me);
    let managed = MANAGED.get().expect("started");
    let foreign: Vec<u32> = {
        let m = managed.lock().unwrap();
        zombies.into_iter().filter(|p| !m.contains(p)).collect()
    };
    let now = Instant::now();
    suspects.retain(|p, _| foreign.contains(p));
    for pid in foreign {
        let first = *suspects.entry(pid).or_insert(now);
        if now.duration_since(first) < GRACE {
            continue;
        }
        match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(st) => tracing::debug!("reaped orphan {pid}: {st:?}"),
            Err(e) => tracing::debug!("reaping orphan {pid}: {e}"),
        }
        suspects.remove(&pid);
    }
}

/// Our children that are zombies, from /proc (a container's /proc is small).
fn zombie_children(me: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| crate::procfs::read_stat(pid).is_some_and(|s| s.ppid == me && s.is_zombie()))
        .collect()
}
