//! Reading a chatty pipe in batches, so that an app logging one `write()` per line
//! (`console.log`) costs the daemon one wake-up per batch of lines rather than one per line.
//!
//! A read that comes soon after the previous one ([`CHATTY_GAP`]) means the stream is busy.
//! Then, once a read has emptied the pipe, the pump naps [`NAP`] before reading again: the app
//! keeps writing into the pipe meanwhile, and the next read takes all of it (64 KiB per read,
//! read again at once while reads come back full). While it naps, a child's pipe is taken out
//! of the runtime's epoll set ([`PipeIn`]): epoll would otherwise wake the runtime at every
//! `write()` of the app, which is the per-line cost this avoids. A nap that finds the pipe
//! still empty puts it back and waits for readiness again.
//!
//! A stream busy for [`GROW_AFTER`] reads gets a bigger pipe ([`BUSY_PIPE`], `F_SETPIPE_SZ`) so
//! the app does not block on a full pipe during a nap; if the pipe cannot be grown, the stream
//! is read without naps. A line from a quiet app is read at once
//! (no nap: the previous read is long past), so latency is only paid under load, and it is at
//! most about one nap.

use crate::logs::QUIET_BUF;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
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

/// What a pump reads from.
pub trait Input {
    /// Read into the spare capacity of `buf`; `Ok(0)` at EOF. Cancel-safe: nothing is read
    /// unless it returns. A `buf` without spare room gets [`QUIET_BUF`] bytes once there is
    /// something to read: an idle stream holds no buffer.
    fn read(&mut self, buf: &mut Vec<u8>) -> impl Future<Output = io::Result<usize>>;
    /// The stream is busy and the pipe was just emptied: nap before the next read.
    fn nap(&mut self);
    /// Make the pipe bigger (once the stream has been busy for a while); false if it could
    /// not be.
    fn grow(&mut self) -> bool {
        true
    }
}

/// Any async reader (tests): napping is a sleep before the next read.
pub struct Plain<R>(pub R, pub bool);

impl<R: AsyncRead + Unpin> Input for Plain<R> {
    async fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.1 {
            tokio::time::sleep(NAP).await;
            self.1 = false;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(QUIET_BUF);
        }
        self.0.read_buf(buf).await
    }

    fn nap(&mut self) {
        self.1 = true;
    }
}

/// A child's stdout or stderr: waits for readiness through the runtime while quiet, reads on a
/// timer (out of the epoll set) while busy.
pub struct PipeIn {
    mode: Mode,
}

enum Mode {
    Ready(AsyncFd<OwnedFd>),
    /// Out of the epoll set; `bool`: nap before the next read.
    Paced(OwnedFd, bool),
    /// Only while switching.
    Gone,
}

impl PipeIn {
    pub fn new(fd: OwnedFd) -> io::Result<PipeIn> {
        // tokio hands the fd over in blocking mode.
        set_nonblocking(&fd)?;
        Ok(PipeIn {
            mode: Mode::Ready(register(fd)?),
        })
    }

    fn fd(&self) -> Option<i32> {
        match &self.mode {
            Mode::Ready(a) => Some(a.get_ref().as_raw_fd()),
            Mode::Paced(f, _) => Some(f.as_raw_fd()),
            Mode::Gone => None,
        }
    }
}

impl Input for PipeIn {
    async fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            match &mut self.mode {
                Mode::Ready(afd) => {
                    let mut guard = afd.readable().await?;
                    match guard.try_io(|a| read_fd(a.get_ref(), buf)) {
                        Ok(r) => return r,
                        Err(_would_block) => continue,
                    }
                }
                Mode::Paced(fd, nap) => {
                    if *nap {
                        // Cancelled here (a partial line's deadline), the nap is taken again
                        // on the next call: nothing is lost.
                        tokio::time::sleep(NAP).await;
                        *nap = false;
                    }
                    match read_fd(fd, buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        r => return r,
                    }
                    // Nothing came during the nap: back to waiting for readiness.
                    let Mode::Paced(fd, _) = std::mem::replace(&mut self.mode, Mode::Gone) else {
                        unreachable!()
                    };
                    self.mode = Mode::Ready(register(fd)?);
                }
                Mode::Gone => return Err(io::Error::other("pipe lost")),
            }
        }
    }

    fn nap(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Gone) {
            Mode::Ready(afd) => self.mode = Mode::Paced(afd.into_inner(), true),
            Mode::Paced(fd, _) => self.mode = Mode::Paced(fd, true),
            Mode::Gone => {}
        }
    }

    fn grow(&mut self) -> bool {
        let Some(fd) = self.fd() else { return false };
        if let Err(e) = fcntl(fd, FcntlArg::F_SETPIPE_SZ(BUSY_PIPE)) {
            // Over the user's pipe-user-pages-soft limit, or a pipe-max-size set lower.
            tracing::debug!("F_SETPIPE_SZ: {}", io::Error::from(e));
            return false;
        }
        true
    }
}

fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the OwnedFd is moved in, so the fd stays open and the same until `into_inner`
    // or drop.
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// One non-blocking `read` into the spare capacity of `buf`.
fn read_fd(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        buf.reserve(QUIET_BUF);
    }
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: reads at most `spare.len()` bytes into memory `buf` owns; the bytes the
        // kernel wrote are then counted by set_len.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        if n >= 0 {
            // SAFETY: the kernel initialized `n` more bytes.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Tells when a stream is busy.
#[derive(Default)]
pub struct Pace {
    last: Option<Instant>,
    busy: u32,
    grown: bool,
    /// The pipe could not be grown: no naps, since the app would block on the small pipe
    /// while we nap (3× slower in the per-line bench); one wake-up per read instead.
    no_nap: bool,
}

impl Pace {
    /// After a read that brought data (`drained`: it did not fill the buffer, so the pipe is
    /// likely empty): nap before the next read when the stream is busy.
    pub fn after_read(&mut self, input: &mut impl Input, drained: bool) {
        let now = Instant::now();
        let busy = self
            .last
            .is_some_and(|t| now.duration_since(t) < CHATTY_GAP);
        self.last = Some(now);
        if !busy {
            self.busy = 0;
            return;
        }
        self.busy = self.busy.saturating_add(1);
        if self.busy >= GROW_AFTER && !self.grown {
            self.grown = true;
            self.no_nap = !input.grow();
        }
        if drained && !self.no_nap {
            input.nap();
        }
    }
}
