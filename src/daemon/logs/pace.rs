//! Pacing a chatty pipe, so that an app logging one `write()` per line (`console.log`) costs the
//! daemon one wake-up per batch of lines rather than one per line.
//!
//! A read that comes soon after the previous one ([`CHATTY_GAP`]) means the stream is busy.
//! Then, once a read has emptied the pipe, the pump naps [`NAP`] before reading again: the app
//! keeps writing into the pipe meanwhile, and the next read takes all of it (up to 64 KiB per
//! read, read again at once while reads come back full). A stream busy for [`GROW_AFTER`]
//! reads gets a bigger pipe ([`BUSY_PIPE`], `F_SETPIPE_SZ`) so the app does not block on a
//! full pipe during the nap. A line from a quiet app is read at once (no nap: the previous read
//! is long past), so latency is only paid under load, and it is at most one nap.

use std::os::fd::RawFd;
use std::time::Duration;
use tokio::time::Instant;

/// How long a busy stream's pump waits before reading again once the pipe is empty.
pub const NAP: Duration = Duration::from_millis(2);
/// Reads closer together than this mean a busy stream (a nap and the timer's rounding fit in).
const CHATTY_GAP: Duration = Duration::from_millis(5);
/// Busy reads in a row after which the pipe is grown.
const GROW_AFTER: u32 = 8;
/// The pipe size of a busy stream: Linux's default `pipe-max-size` (what an unprivileged
/// process may ask for).
pub const BUSY_PIPE: i32 = 1 << 20;

pub struct Pace {
    /// The pipe to grow (`None` when the stream is not a pipe we own, as in unit tests).
    fd: Option<RawFd>,
    last: Option<Instant>,
    busy: u32,
    grown: bool,
}

impl Pace {
    pub fn new(fd: Option<RawFd>) -> Pace {
        Pace {
            fd,
            last: None,
            busy: 0,
            grown: false,
        }
    }

    /// After a read that brought data (`drained`: it did not fill the buffer, so the pipe is
    /// likely empty): whether to nap before the next read.
    pub fn after_read(&mut self, drained: bool) -> bool {
        let now = Instant::now();
        let busy = self
            .last
            .is_some_and(|t| now.duration_since(t) < CHATTY_GAP);
        self.last = Some(now);
        if !busy {
            self.busy = 0;
            return false;
        }
        self.busy = self.busy.saturating_add(1);
        if self.busy >= GROW_AFTER && !self.grown {
            self.grown = true;
            self.grow();
        }
        drained
    }

    fn grow(&self) {
        let Some(fd) = self.fd else { return };
        // SAFETY: fcntl on a pipe fd the pump owns; it only changes the pipe's capacity.
        let r = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, BUSY_PIPE) };
        if r < 0 {
            // Over the user's pipe-user-pages-soft limit, or a pipe-max-size set lower: the
            // default size works, with more wake-ups.
            tracing::debug!("F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
        }
    }
}
