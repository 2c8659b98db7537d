//! Orphan reaping for the foreground daemon (`pmr-runtime` as a container's PID 1, or any
//! process that made itself a child subreaper): processes whose parent died are reparented to
//! us and must be waited for, or they stay zombies and fill the pid table.
//!
//! The daemon's own children belong to their instances, which wait for each through its
//! pidfd (`child.rs`); a `waitpid(-1)` here would steal their exit statuses (the instance
//! would never learn its app's exit code). So this thread never reaps blindly:
//! * `waitid(P_ALL, WEXITED | WNOWAIT)` blocks until some child is a zombie, without reaping it;
//! * then /proc says which children are zombies; those spawned by the daemon (recorded by
//!   `spawn.rs` through [`track`] right after fork, before anyone could wait) are left to
//!   their instances;
//! * any other zombie child is an adopted orphan, reaped with `waitpid(pid)` once it has been
//!   seen as a zombie in two looks [`GRACE`] apart (so a child forked an instant ago, whose pid
//!   is about to be tracked, is never taken for an orphan).
//!
//! A tracked child is held by a pidfd, which names that process and no other: once its
//! instance has reaped it, signalling the pidfd fails with ESRCH and the entry goes, even if
//! its pid number has meanwhile been reused by an orphan (which is then reaped as it should
//! be).

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The daemon's own children while reaping is on (nothing is recorded otherwise), each with a
/// pidfd when the kernel gives one (Linux ≥ 5.3). Process-wide: being a child subreaper, and
/// the thread that reaps, are the process's.
static MANAGED: OnceLock<Mutex<HashMap<u32, Option<OwnedFd>>>> = OnceLock::new();

/// How long a foreign zombie must have been seen before it is reaped; also the pause between
/// two looks while some zombie is waiting for its instance (`waitid` would answer at once).
const GRACE: Duration = Duration::from_millis(50);

/// How often to look again while we have no child at all (`waitid` cannot wait then).
const NO_CHILD: Duration = Duration::from_millis(500);

/// Record a child the daemon spawned: its instance waits for it, never us. Cheap syscalls only (it
/// runs on the runtime): no /proc read.
pub fn track(pid: u32) {
    if let Some(m) = MANAGED.get() {
        m.lock().unwrap().insert(pid, pidfd_open(pid));
    }
}

/// Become a child subreaper (orphans of our apps' trees come to us even when we are not
/// PID 1) and start the reaping thread. Call before the first app is spawned.
pub fn start() -> std::io::Result<()> {
    if MANAGED.set(Mutex::new(HashMap::new())).is_err() {
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
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => {
                sweep(&mut suspects);
                std::thread::sleep(GRACE);
            }
            Err(Errno::ECHILD) => {
                suspects.clear();
                std::thread::sleep(NO_CHILD);
            }
            Err(Errno::EINTR) => {}
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
        let mut m = managed.lock().unwrap();
        // Reaped by its instance: forget it (its pid may already be an orphan's).
        m.retain(|&pid, fd| match fd {
            Some(fd) => !reaped(fd),
            None => pmr_core::procfs::read_stat(pid).is_some(),
        });
        zombies.into_iter().filter(|p| !m.contains_key(p)).collect()
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
        .filter(|&pid| {
            pmr_core::procfs::read_stat(pid).is_some_and(|s| s.ppid == me && s.is_zombie())
        })
        .collect()
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    super::child::pidfd_open(pid).ok()
}

/// Whether the process a pidfd names has been reaped (a zombie can still be signalled).
fn reaped(fd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal(2) with signal 0 (existence check), no siginfo, no flags, on a
    // pidfd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r != 0 && Errno::last() == Errno::ESRCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_says_reaped_only_after_the_wait() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let fd = pidfd_open(child.id()).expect("pidfd_open (Linux >= 5.3)");
        // Exited but not waited for: a zombie, still there.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pmr_core::procfs::read_stat(child.id()).is_some_and(|s| s.is_zombie()) {
            assert!(Instant::now() < deadline, "child never became a zombie");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!reaped(&fd));
        child.wait().unwrap();
        assert!(reaped(&fd));
    }
}
