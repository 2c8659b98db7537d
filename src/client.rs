//! The CLI's side of the socket: connect to the daemon (starting it when absent), send a
//! request, read the reply. Blocking std I/O: the CLI is short-lived and single-threaded.

use anyhow::{anyhow, bail, Context, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{self, RenderRequest, Request, Response};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting daemon may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(10);

pub struct Client {
    stream: UnixStream,
    home: Home,
    /// The daemon is this very version (from the greeting; `None`: not greeted yet).
    same_version: Option<bool>,
}

impl Client {
    /// Connect, starting the daemon if nobody answers on the socket.
    pub fn connect(home: &Home) -> Result<Client> {
        refuse_foreign(home)?;
        // A daemon being torn down (SIGKILL, OOM) still holds its socket for a few ms: the
        // connection is accepted by the kernel, then closed unanswered. Wait for it to go.
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(stream) = UnixStream::connect(home.socket()) {
            let mut c = Client {
                stream,
                home: home.clone(),
                same_version: None,
            };
            if c.greet() {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                bail!(
                    "the pmr daemon of {} accepts connections but closes them unanswered",
                    home.root.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Absent, stale or unreachable: starting a daemon either fixes that or says why not.
        start_daemon(home)?;
        Ok(Client {
            stream: wait_for_socket(home)?,
            home: home.clone(),
            same_version: None,
        })
    }

    /// Connect only if a daemon is running.
    /// As `pm2`, a live PM2 daemon in the home is never connected to (it speaks another
    /// protocol): callers that need a daemon then report it, through `connect`.
    pub fn connect_existing(home: &Home) -> Option<Client> {
        if pmr_core::foreign::daemon_of(home).is_some() {
            return None;
        }
        UnixStream::connect(home.socket())
            .ok()
            .map(|stream| Client {
                stream,
                home: home.clone(),
                same_version: None,
            })
    }

    /// The daemon's pid as this process sees it (`SO_PEERCRED`): right even when the daemon
    /// runs in another PID namespace, where its `pmr.pid` (e.g. `pmr-runtime` as a container's
    /// PID 1) names another process here. `None` when the kernel cannot map it.
    pub fn peer_pid(&self) -> Option<u32> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let pid = getsockopt(&self.stream, PeerCredentials).ok()?.pid();
        u32::try_from(pid).ok().filter(|&p| p != 0)
    }

    /// Give up on a daemon that does not answer within `t` (`pmr report` on a stuck daemon).
    pub fn set_timeout(&self, t: Option<Duration>) {
        let _ = self.stream.set_read_timeout(t);
        let _ = self.stream.set_write_timeout(t);
    }

    /// Send a request whose answer is a stream of frames (`Subscribe`); read them with `recv`.
    pub fn send(&mut self, req: &Request) -> Result<()> {
        protocol::write_frame(&mut self.stream, req).context("cannot send to the pmr daemon")
    }

    /// The next frame of a stream; `FrameError::Closed` when the daemon hangs up.
    pub fn recv(&mut self) -> Result<Response, protocol::FrameError> {
        protocol::read_frame(&mut self.stream)
    }

    /// Warn when the running daemon is another pmr version (the greeting, docs/ARCHITECTURE.md
    /// "CLI ↔ daemon"): its requests may not match ours until it is restarted. The one place
    /// this warning is printed. `false` when the daemon closed the connection unanswered (it is
    /// going away).
    fn greet(&mut self) -> bool {
        let answer = protocol::write_frame(&mut self.stream, &Request::Ping)
            .and_then(|()| protocol::read_frame(&mut self.stream));
        let answer = match answer {
            Err(protocol::FrameError::Closed | protocol::FrameError::Io(_)) => return false,
            other => other,
        };
        self.same_version = Some(false);
        if let Ok(Response::Pong {
            version, protocol, ..
        }) = answer
        {
            let same = version == protocol::VERSION && protocol == protocol::PROTOCOL_VERSION;
            self.same_version = Some(same);
            if !same {
                let me = pmr_core::personality::current().arg0();
                eprintln!(
                    "{} the running daemon is pmr {version}, this CLI is {}: run `{me} update` to replace it",
                    pmr_core::personality::warn(),
                    protocol::VERSION
                );
            }
        }
        true
    }

    /// A second handle on the connection, so another thread can `shutdown` it and end a
    /// blocked `recv` (`pmr monit` drops the log stream of an app no longer selected).
    pub fn stream_handle(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }

    /// `jlist`/`ls` text rendered by the daemon, copied to `out` as it comes; `false` when
    /// this daemon cannot (another version, or it refused: during an `update`), and the caller
    /// renders the list itself. A failed write to `out` (a closed pipe) is not an error.
    pub fn render(
        &mut self,
        view: protocol::View,
        out: &mut (impl std::io::Write + std::os::fd::AsFd),
    ) -> Result<bool> {
        // A daemon of another version would not know the request (and close the connection).
        if self.same_version.is_none() && !self.greet() {
            return Err(Gone("the pmr daemon closed the connection".into()).into());
        }
        if self.same_version != Some(true) {
            return Ok(false);
        }
        match self.call(&Request::Render(RenderRequest { view }))? {
            Response::Rendered { len } => {
                let copied = if widen_pipe(out.as_fd(), len) && out.flush().is_ok() {
                    splice_rendered(&self.stream, len, out.as_fd())
                } else {
                    None
                };
                match copied.unwrap_or_else(|| protocol::copy_rendered(&mut self.stream, len, out))
                {
                    Ok(()) | Err(protocol::CopyError::Write(_)) => Ok(true),
                    Err(protocol::CopyError::Read(e)) => {
                        Err(anyhow!("no answer from the pmr daemon: {e}"))
                    }
                }
            }
            _ => Ok(false),
        }
    }

    /// One request, one answer. A connection the daemon closed before answering (it exec'd
    /// itself in `pmr update`, or died) is a [`Gone`] error, which a read-only caller may retry
    /// on a new connection.
    pub fn call(&mut self, req: &Request) -> Result<Response> {
        if let Err(e) = protocol::write_frame(&mut self.stream, req) {
            let msg = format!("cannot send to the pmr daemon: {e}");
            return Err(match &e {
                protocol::FrameError::Io(io) if closed_by_peer(io) => Gone(msg).into(),
                _ => anyhow!(msg),
            });
        }
        protocol::read_frame(&mut self.stream).map_err(|e| {
            let msg = format!("no answer from the pmr daemon: {e}");
            match &e {
                protocol::FrameError::Closed => Gone(msg).into(),
                protocol::FrameError::Io(io) if closed_by_peer(io) => Gone(msg).into(),
                _ => anyhow!(msg),
            }
        })
    }

    /// A new connection to the same home: after a [`Gone`], the daemon that answers is the one
    /// that replaced the old (same pid after `pmr update`) or a fresh one.
    pub fn reconnect(&mut self) -> Result<()> {
        *self = Client::connect(&self.home.clone())?;
        Ok(())
    }
}

/// The daemon closed the connection before answering: nothing was printed yet.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Gone(String);

fn closed_by_peer(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted)
}

/// Lets a pipe on stdout hold up to 1 MiB of a long text (default 64 KiB): the reader is woken
/// and we are blocked a sixteenth as often. Nothing for a file, a terminal or a short text;
/// refused (and ignored) over the user's pipe-buffer limit. Whether `fd` is a pipe and the text
/// long.
fn widen_pipe(fd: std::os::fd::BorrowedFd, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    const WIDE: usize = 1 << 20;
    if len <= 64 * 1024 {
        return false;
    }
    let is_pipe = nix::sys::stat::fstat(fd.as_raw_fd())
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFIFO);
    if is_pipe {
        let _ = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(len.min(WIDE) as nix::libc::c_int),
        );
    }
    is_pipe
}

/// Moves the `len` bytes of a rendered text from the socket into the pipe `out` in the kernel
/// (`splice`): the pages go from one to the other, where a read and a write would copy 4 MB
/// twice. `None` when the kernel refuses it before anything moved (the caller copies).
fn splice_rendered(
    sock: &std::os::unix::net::UnixStream,
    len: usize,
    out: std::os::fd::BorrowedFd,
) -> Option<Result<(), protocol::CopyError>> {
    use nix::errno::Errno;
    use nix::fcntl::{splice, SpliceFFlags};
    let mut left = len;
    while left > 0 {
        match splice(sock, None, out, None, left, SpliceFFlags::SPLICE_F_MOVE) {
            Ok(0) => {
                let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Some(Err(protocol::CopyError::Read(protocol::FrameError::Io(
                    eof,
                ))));
            }
            Ok(n) => left -= n,
            Err(Errno::EINTR) => {}
            Err(Errno::EINVAL | Errno::ENOSYS) if left == len => return None,
            // The reader of the pipe is gone.
            Err(e @ Errno::EPIPE) => return Some(Err(protocol::CopyError::Write(e.into()))),
            Err(e) => {
                return Some(Err(protocol::CopyError::Read(protocol::FrameError::Io(
                    e.into(),
                ))))
            }
        }
    }
    Some(Ok(()))
}

/// As `pm2`: a live PM2 daemon in the home is an error naming its pid (see `foreign`).
fn refuse_foreign(home: &Home) -> Result<()> {
    match pmr_core::foreign::daemon_of(home) {
        Some(f) => bail!("{}", pmr_core::foreign::refusal(home, &f)),
        None => Ok(()),
    }
}

/// Re-run our own binary as the daemon, detached (new session), stdio on `pmr.log`. It gets
/// the CLI's personality (argv[0]), home and path knobs made absolute; the knobs are checked
/// first, so a bad one is an error here and nothing starts.
fn start_daemon(home: &Home) -> Result<()> {
    pmr_core::knobs::check_env().map_err(|e| anyhow!("{e}"))?;
    let home_var = pmr_core::personality::current().home_var();
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {home_var} {}", home.root.display()))?;
    if let Some(dir) = home.daemon_log().parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())
        .with_context(|| format!("cannot write {}", home.daemon_log().display()))?;
    let exe = std::env::current_exe().context("cannot find the pmr executable")?;
    let mut cmd = Command::new(exe);
    let (remove, set) = pmr_core::knobs::daemon_env(&home.root);
    for var in remove {
        cmd.env_remove(var);
    }
    cmd.envs(set);
    // A daemon started on demand is nobody's service: only one a service manager runs itself
    // (`pmr startup`'s unit) may tell it READY/WATCHDOG/STOPPING, not the unit of whatever
    // script happened to run this CLI.
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        cmd.env_remove(var);
    }
    cmd.arg0(pmr_core::personality::current().arg0())
        .arg("daemon")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: `pre_exec` is unsafe because the closure runs in the forked child, where only
    // async-signal-safe calls are sound. It calls setsid(2) only (async-signal-safe, no
    // allocation, no lock); an error becomes an `io::Error` holding the errno, which allocates
    // nothing either.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the pmr daemon")?;
    // Reap it in the background if it exits early (it lost the lock race): no zombie, and
    // `wait_for_socket` keeps polling for the daemon that won.
    std::thread::spawn(move || {
        let status = child.wait();
        if let Ok(st) = status {
            if !st.success() {
                DAEMON_FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    Ok(())
}

static DAEMON_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn wait_for_socket(home: &Home) -> Result<UnixStream> {
    let deadline = Instant::now() + START_DEADLINE;
    let mut pause = Duration::from_micros(500);
    loop {
        match UnixStream::connect(home.socket()) {
            Ok(s) => return Ok(s),
            Err(_) if DAEMON_FAILED.load(std::sync::atomic::Ordering::SeqCst) => {
                let tail = pmr_core::tail::tail_lines(&home.daemon_log(), 5).unwrap_or_default();
                bail!(
                    "the pmr daemon failed to start; last lines of {}:\n{}",
                    home.daemon_log().display(),
                    tail.join("\n")
                );
            }
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "the pmr daemon did not answer within {:?}: {e}",
                    START_DEADLINE
                )
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}
