//! The daemon's hold on one child process: its pid and a pidfd, waited for with
//! `waitid(P_PIDFD)` once the pidfd is readable (the process has exited).
//!
//! Not tokio's `Child`: that one can only come from a tokio `Command`, and tokio reaps what it
//! spawned by itself. A child held by a pidfd can also be taken over by the daemon that
//! replaces this one (`update`: same pid, so the children are still its children): it opens a
//! pidfd on the pid it was handed and waits for it the same way.

use super::handle::{BoxFuture, Process};
use super::tree;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub struct ChildHandle {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    /// Once reaped: the pid may be someone else's from then on.
    status: Option<ExitStatus>,
    /// Its tree as the stop sequence last saw it (`treekill`).
    tree: Vec<u32>,
}

impl ChildHandle {
    /// Hold `pid`, a child of this process that nobody has waited for yet. Needs the runtime.
    pub fn new(pid: u32) -> io::Result<ChildHandle> {
        let fd = pidfd_open(pid)?;
        // SAFETY: the pidfd is ours and stays open, unreplaced, while the AsyncFd holds it.
        let pidfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(ChildHandle {
            pid,
            pidfd,
            status: None,
            tree: Vec::new(),
        })
    }

    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Wait for the exit and reap the child. Cancel-safe: the status is kept once reaped, and
    /// the reaping itself is one syscall with nothing awaited after it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        std::future::poll_fn(|cx| self.poll_exit(cx)).await
    }

    fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        loop {
            if let Some(st) = self.status {
                return Poll::Ready(Ok(st));
            }
            let mut guard = ready!(self.pidfd.poll_read_ready(cx))?;
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
            match waitid(Id::PIDFd(self.pidfd.get_ref().as_fd()), flags) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.status = Some(ExitStatus::from_raw((code & 0xff) << 8));
                }
                Ok(WaitStatus::Signaled(_, sig, core)) => {
                    self.status = Some(ExitStatus::from_raw(
                        sig as i32 | if core { 0x80 } else { 0 },
                    ));
                }
                // Not exited yet (a stray wake-up).
                Ok(_) => guard.clear_ready(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl Process for ChildHandle {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        self.poll_exit(cx)
    }

    fn signal(&self, sig: Signal) -> nix::Result<()> {
        kill(Pid::from_raw(self.pid as i32), sig)
    }

    fn signal_tree(&mut self, sig: Option<Signal>, treekill: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if treekill && self.status.is_none() {
                // What the tree is now, with what it was: a child forked since the stop signal
                // gets its SIGKILL in the same pass.
                let known = std::mem::take(&mut self.tree);
                self.tree = tree::members(self.pid, known).await;
            }
            if let Some(sig) = sig {
                tree::signal(self.pid, &self.tree, treekill, sig);
            }
        })
    }

    fn tree_alive(&self) -> BoxFuture<'static, bool> {
        let (pid, tree) = (self.pid, self.tree.clone());
        Box::pin(async move {
            // /proc reads stay off the runtime's threads.
            tokio::task::spawn_blocking(move || tree::group_alive(pid, &tree))
                .await
                .unwrap_or(false)
        })
    }
}

/// The oldest kernel pmr runs on: every managed process is held by a pidfd (`pidfd_open`,
/// Linux 5.3), which is what lets a re-executed daemon wait for the children it inherited.
pub const MIN_KERNEL: &str = "5.3";

/// Whether this kernel has what pmr needs; the one line to say if not, naming the kernel and
/// the minimum (rather than ENOSYS for every app started).
pub fn check_kernel() -> Result<(), String> {
    let release = || {
        nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into())
    };
    kernel_verdict(pidfd_open(std::process::id()).map(drop), release)
}

fn kernel_verdict(probe: io::Result<()>, release: impl Fn() -> String) -> Result<(), String> {
    match probe {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Err(format!(
            "pmr needs Linux {MIN_KERNEL} or later (pidfd_open); this kernel is {}",
            release()
        )),
        Err(e) => Err(format!("pidfd_open: {e}")),
        Ok(()) => Ok(()),
    }
}

/// A pidfd on `pid` (Linux ≥ 5.3): no wrapper in nix or std yet.
pub(super) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1; nothing of ours
    // is passed by pointer.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return is a new fd that nothing else owns (close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_kernel_gets_one_line_naming_it_and_the_minimum() {
        assert_eq!(check_kernel(), Ok(()));
        let enosys = Err(io::Error::from_raw_os_error(libc::ENOSYS));
        assert_eq!(
            kernel_verdict(enosys, || "4.19.0-27-amd64".into()),
            Err("pmr needs Linux 5.3 or later (pidfd_open); this kernel is 4.19.0-27-amd64".into())
        );
        let eperm = Err(io::Error::from_raw_os_error(libc::EPERM));
        assert!(kernel_verdict(eperm, String::new)
            .unwrap_err()
            .starts_with("pidfd_open: "));
    }

    // The handle reaps them (clippy cannot know).
    #[allow(clippy::zombie_processes)]
    #[tokio::test]
    async fn exit_codes_and_signals_are_seen() {
        let c = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let mut h = ChildHandle::new(c.id()).unwrap();
        assert_eq!(h.wait().await.unwrap().code(), Some(7));
        // Kept once reaped.
        assert_eq!(h.wait().await.unwrap().code(), Some(7));

        let c = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut h = ChildHandle::new(c.id()).unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), h.wait()).await;
        assert!(waited.is_err(), "sleep 30 cannot have exited");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert_eq!(h.wait().await.unwrap().signal(), Some(libc::SIGTERM));
    }
}
