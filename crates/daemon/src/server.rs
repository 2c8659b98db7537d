//! The socket side of the daemon: bind `rpc.sock`, accept clients of our own uid, handle
//! signals, read each client's requests and dispatch them to `requests/`.

use crate::daemon::Daemon;
use crate::requests::{action, kill, list, logs, ping, reload, resolve, scale, signal, start};
use anyhow::{Context, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{
    self, Action, Request, Response, SubscribeRequest, UpdateRequest, VERSION,
};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `pmr kill`, or `Daemon::exit` notified (the foreground runner's auto-exit).
    Requested,
    /// SIGTERM or SIGINT; `sigkilled`: some app did not stop within its `kill_timeout`.
    Signal { sigkilled: bool },
}

/// Called once the daemon's state exists, before the first client is accepted (the
/// foreground runner subscribes to the output and starts its apps from here).
pub type Hook = Box<dyn FnOnce(Arc<Daemon>) + Send>;

/// `resurrect`: start what the dump holds once serving (`pmr daemon --resurrect`).
pub async fn serve(home: Home, resurrect: bool, hook: Option<Hook>) -> Result<Stop> {
    let listener = bind(&home.socket())?;
    let bus_listener = bind(&home.pub_socket())?;
    std::fs::write(home.pid_file(), std::process::id().to_string())?;
    std::fs::create_dir_all(home.logs_dir())?;
    std::fs::create_dir_all(home.pids_dir())?;
    tracing::info!(
        "pmr daemon {VERSION} started (pid {}, home {}, as {}; knobs: {})",
        std::process::id(),
        home.root.display(),
        pmr_core::personality::current().arg0(),
        pmr_core::knobs::get().describe()
    );
    // Off the runtime's threads: a plain blocking read (and the rename of a bad file).
    let table_path = crate::instances::table_file::path(&home);
    let table =
        tokio::task::spawn_blocking(move || crate::instances::table_file::load(&table_path))
            .await?;
    // What a daemon replaced by `update` handed over (its running processes), if any.
    let handoff = {
        let h = home.clone();
        tokio::task::spawn_blocking(move || crate::instances::handoff::take(&h)).await?
    };
    let d = Arc::new(Daemon::new(home, |d, req| Box::pin(call(d, req))));
    tokio::spawn(d.ctx.bus.clone().serve(bus_listener));
    crate::pm2::events::spawn(&d);
    let pm2_clients = Arc::new(tokio::sync::Semaphore::new(crate::pm2::rpc::MAX_CLIENTS));
    let unidentified = Arc::new(tokio::sync::Semaphore::new(MAX_UNIDENTIFIED));
    if let Some(h) = &handoff {
        d.ctx
            .next_worker
            .fetch_max(h.next_worker, std::sync::atomic::Ordering::SeqCst);
    }
    crate::instances::memory_guard::spawn(d.ctx.clone(), d.registry.clone());
    tokio::spawn(crate::alloc::reclaimer());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // SIGHUP is ignored (a closed terminal must not take the daemon down).
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // SIGUSR2 reopens the log files, as `pmr reloadLogs` (for the system's logrotate).
    let mut usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())?;
    // After the signal handlers (a SIGTERM meanwhile is handled once it is done). Clients that
    // connect meanwhile wait in the backlog: their first answer shows the restored apps.
    let adopted = crate::update::request::adopt_sockets(&d);
    let handed = handoff.map(|h| h.children).unwrap_or_default();
    crate::recovery::recover::restore(&d, table, handed).await;
    if adopted {
        // Those of apps that did not come back (stopped, errored, not online in time).
        d.ctx.listeners.drop_unjoined();
    }
    // After the restored apps (a module among them stays as it is). Not in the foreground:
    // `pmr-runtime` runs the apps it is given and exits when they end.
    if hook.is_none() {
        crate::modules::launch(&d).await;
    }
    // After the restored apps: `resurrect` skips the names they have.
    crate::boot::start(&d, resurrect);
    // The HTTP API, when `conf.json` turns it on (off: nothing is created).
    {
        let d = d.clone();
        tokio::spawn(async move { crate::http::boot(&d).await });
    }
    // Serving from now on: what only starting used leaves the resident set.
    crate::text::drop_start_up_pages();
    // After the handlers: a SIGTERM from now on stops the apps the hook starts.
    if let Some(hook) = hook {
        hook(d.clone());
    }
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let (stream, _) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == my_uid => {}
                    Ok(cred) => {
                        tracing::warn!("refused a client of uid {} (daemon uid {my_uid})", cred.uid());
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("refused a client whose credentials are unknown: {e}");
                        continue;
                    }
                }
                // Beyond the bound, closed at once (its descriptor is not kept).
                let Ok(waiting) = unidentified.clone().try_acquire_owned() else {
                    continue;
                };
                tokio::spawn(connection(d.clone(), stream, waiting, pm2_clients.clone()));
            }
            _ = d.exit.notified() => return Ok(Stop::Requested),
            _ = term.recv() => return Ok(on_signal(&d).await),
            _ = int.recv() => return Ok(on_signal(&d).await),
            _ = hup.recv() => {}
            _ = usr2.recv() => {
                let sinks = d.ctx.sinks.clone();
                tokio::spawn(async move {
                    let (n, _) = sinks.reload().await;
                    tracing::info!("SIGUSR2: reopened {n} log file(s)");
                });
            }
        }
    }
}

/// A unix socket of ours, created 0600 from the start: no window in which another user could
/// connect. We hold the lock, so any socket file there is stale.
fn bind(path: &std::path::Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Which protocol a client speaks, from its first byte: pmr's frames start with the high byte
/// of a length under 16 MiB (0), PM2's AMP messages with `0x1N` (version 1, N arguments).
async fn connection(
    d: Arc<Daemon>,
    stream: UnixStream,
    waiting: tokio::sync::OwnedSemaphorePermit,
    pm2_clients: Arc<tokio::sync::Semaphore>,
) {
    // Every client says something at once (PM2's probe closes at once): one that stays silent
    // is not kept, so that connections held open in a loop cannot pile up.
    let first = tokio::time::timeout(FIRST_BYTE_WITHIN, first_byte(&stream)).await;
    drop(waiting);
    match first.ok().flatten() {
        // Closed without a word: PM2's client checks that a daemon is there this way.
        None => {}
        Some(b) if b >> 4 == pmr_core::protocol::amp::VERSION => {
            // Beyond the bound, closed at once: its descriptor is not kept.
            if let Ok(_slot) = pm2_clients.try_acquire_owned() {
                crate::pm2::rpc::serve(d, stream).await;
            }
        }
        Some(_) => client(d, stream).await,
    }
}

const FIRST_BYTE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections not yet past their first byte, at most.
const MAX_UNIDENTIFIED: usize = 512;

async fn first_byte(stream: &UnixStream) -> Option<u8> {
    use std::os::fd::AsRawFd;
    loop {
        stream.readable().await.ok()?;
        let mut b = [0u8; 1];
        let r = stream.try_io(tokio::io::Interest::READABLE, || {
            // SAFETY: a valid socket and a 1-byte buffer we own.
            let n =
                unsafe { libc::recv(stream.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n)
            }
        });
        match r {
            Ok(0) => return None,
            Ok(_) => return Some(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

/// SIGTERM/SIGINT: stop every app, and say whether one had to be SIGKILLed.
async fn on_signal(d: &Arc<Daemon>) -> Stop {
    crate::pm2::events::killed(d, "pm2 has been killed by SIGNAL");
    let sigkills = || d.ctx.sigkills.load(std::sync::atomic::Ordering::SeqCst);
    let before = sigkills();
    kill::shutdown(d).await;
    Stop::Signal {
        sigkilled: sigkills() != before,
    }
}

async fn client(d: Arc<Daemon>, mut stream: UnixStream) {
    loop {
        let req: Request = match protocol::read_frame_async(&mut stream).await {
            Ok(r) => r,
            Err(protocol::FrameError::Closed) => return,
            Err(e) => {
                tracing::warn!("bad frame from a client, closing its connection: {e}");
                let _ = protocol::write_frame_async(
                    &mut stream,
                    &Response::Error {
                        message: e.to_string(),
                    },
                )
                .await;
                return;
            }
        };
        crate::text::note_request();
        if let Request::Subscribe(SubscribeRequest {
            ids,
            out,
            err,
            daemon,
        }) = req
        {
            let filter = crate::logs::hub::Filter {
                ids,
                out,
                err,
                daemon,
            };
            let hub = d.ctx.sinks.hub.clone();
            return hub.serve(stream, filter).await;
        }
        if crate::update::request::refused_meanwhile(&d, &req) {
            let message = "the daemon is being replaced (`update`): retry in a moment".into();
            let _ = protocol::write_frame_async(&mut stream, &Response::Error { message }).await;
            continue;
        }
        let is_kill = matches!(req, Request::Kill);
        let Request::Update(UpdateRequest { binary }) = req else {
            let _answering = Answering::begin(&d.answering);
            let (frame, text) = reply(&d, req).await;
            if stream.write_all(&frame).await.is_ok() {
                for part in &text {
                    if stream.write_all(part).await.is_err() {
                        break;
                    }
                }
            }
            text.into_iter().for_each(pmr_render::bufs::give);
            crate::text::note_request();
            list::rescan_if_due(&d);
            if is_kill {
                d.exit.notify_one();
                return;
            }
            continue;
        };
        let resp = handle(
            &d,
            Request::Update(UpdateRequest {
                binary: binary.clone(),
            }),
        )
        .await;
        let _ = protocol::write_frame_async(&mut stream, &resp).await;
        if let Response::Updating { .. } = &resp {
            // A request read before the update (a `restart` that the update waited for) is
            // answered before the exec closes its connection: its CLI must not be left without
            // knowing whether it was done. Bounded: a client that does not read its reply.
            Answering::wait_none(&d.answering, std::time::Duration::from_secs(2)).await;
            // Returns only when the exec failed. The table is written: exiting lets the next
            // CLI call start a daemon that restores it.
            let e = crate::update::request::exec(&binary);
            tracing::error!("update: cannot execute {binary}: {e}; exiting (the next command starts a daemon that restores the apps)");
            d.exit.notify_one();
            return;
        }
    }
}

/// Counts one request in [`Daemon::answering`] from its read to its reply's last byte (or a
/// failed write).
struct Answering<'a>(&'a std::sync::atomic::AtomicUsize);

impl Answering<'_> {
    fn begin(count: &std::sync::atomic::AtomicUsize) -> Answering<'_> {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Answering(count)
    }

    async fn wait_none(count: &std::sync::atomic::AtomicUsize, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while count.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The encoded reply frame, and the text that follows it for `render`; the response itself is
/// freed before the frame is written, so a slow reader holds one buffer and no permit.
async fn reply(d: &Arc<Daemon>, req: Request) -> (Vec<u8>, Vec<Vec<u8>>) {
    let _permit = match req {
        Request::List | Request::Render { .. } => d.whole_table.acquire().await.ok(),
        _ => None,
    };
    if let Request::Render(req) = req {
        return crate::requests::render::render(d, req).await;
    }
    if matches!(req, Request::Kill) {
        crate::pm2::events::killed(d, "pm2 has been killed via CLI");
    }
    let manual = crate::pm2::events::before(d, &req).await;
    let resp = handle(d, req).await;
    crate::pm2::events::after(d, manual, &resp).await;
    let frame = protocol::encode(&resp).unwrap_or_else(|e| {
        protocol::encode(&Response::Error {
            message: e.to_string(),
        })
        .unwrap_or_default()
    });
    (frame, Vec::new())
}

/// A request from the HTTP API (its [`Daemon::http`] handler): the same handlers, the same
/// bound on whole-table replies ([`Daemon::whole_table`]).
async fn call(d: &Arc<Daemon>, req: Request) -> Response {
    let _permit = match req {
        Request::List => d.whole_table.acquire().await.ok(),
        _ => None,
    };
    let resp = handle(d, req).await;
    list::rescan_if_due(d);
    resp
}

/// One handler per request kind, each in its own file under `requests/`.
async fn handle(d: &Arc<Daemon>, req: Request) -> Response {
    match req {
        Request::Ping => ping::ping(),
        Request::Start(req) => start::start(d, req).await,
        Request::Apply(req) => start::apply(d, req).await,
        Request::List => list::list(d).await,
        Request::Resolve(req) => resolve::resolve(d, req),
        Request::Action(req) if req.action == Action::Reload => reload::reload(d, req).await,
        Request::Action(req) => action::action(d, req).await,
        Request::Signal(req) => signal::signal(d, req).await,
        Request::SendLine(req) => crate::requests::send::send_line(d, req).await,
        Request::Scale(req) => scale::scale(d, req).await,
        Request::Kill => kill::kill(d).await,
        Request::Flush(req) => logs::flush(d, req).await,
        Request::ReloadLogs => logs::reload(d).await,
        Request::Resurrect(req) => crate::requests::resurrect::resurrect(d, req).await,
        Request::Update(req) => crate::update::request::update(d, &req.binary).await,
        Request::Trigger(req) => crate::requests::trigger::trigger(d, req).await,
        Request::Web(req) => crate::http::web(d, req.listen, req.stop, req.rotate_token).await,
        // Answered in `reply` (text follows the frame).
        Request::Render { .. } => Response::Error {
            message: "unexpected render".into(),
        },
        // Handled in `client` (the connection becomes a stream).
        Request::Subscribe { .. } => Response::Error {
            message: "unexpected subscribe".into(),
        },
    }
}
