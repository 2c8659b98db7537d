//! `pmr monit`'s conversations with the daemon and the terminal, each on its own thread, all
//! feeding one channel of [`Event`]s to the UI loop: the list poller (one `List` a second, or
//! at once when poked after an action), the selected process's live log lines (`Subscribe`),
//! actions (one short-lived thread each, so a slow stop never freezes the screen), terminal
//! input, and SIGTERM/SIGHUP (so the terminal is restored when killed politely).

use crate::client::Client;
use pmr_core::paths::Home;
use pmr_core::protocol::{ProcInfo, Request, Response, SubscribeRequest};
use ratatui::crossterm::event::{self as term, KeyEvent, KeyEventKind};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How often the list is asked for when nothing happens: the "at most once a second".
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How long a daemon that stopped answering may take to come back (`pmr update` re-executes
/// it under the same pid) before monit says it is gone.
const RECONNECT_FOR: Duration = Duration::from_secs(5);

pub enum Event {
    Key(KeyEvent),
    Resize,
    List(Vec<ProcInfo>),
    /// Lines of the subscription number `gen` (older subscriptions' lines are dropped).
    Log {
        gen: u64,
        err: bool,
        lines: String,
    },
    Skipped {
        gen: u64,
        count: u64,
    },
    /// An action finished: what to show in the status line.
    Done(String),
    DaemonGone(String),
    /// SIGTERM, SIGHUP or SIGINT from outside: leave as with `q`.
    Signal,
}

/// Keys and resizes from the terminal. Blocks in `read`: no timer, no wake-up while idle.
pub fn spawn_input(tx: Sender<Event>) {
    std::thread::spawn(move || loop {
        let ev = match term::read() {
            Ok(term::Event::Key(k)) if k.kind != KeyEventKind::Release => Event::Key(k),
            Ok(term::Event::Resize(..)) => Event::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(ev).is_err() {
            return;
        }
    });
}

/// SIGTERM/SIGHUP/SIGINT are blocked in every thread (call this before spawning any) and
/// taken by one thread with `sigwait`, which turns them into [`Event::Signal`].
pub fn spawn_signals(tx: Sender<Event>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            let _ = tx.send(Event::Signal);
        }
    });
}

/// The list poller. Returns the sender that makes it ask again at once.
pub fn spawn_poller(home: Home, client: Client, tx: Sender<Event>) -> Sender<()> {
    let (poke, pokes) = mpsc::channel::<()>();
    std::thread::spawn(move || poll_loop(&home, client, &tx, &pokes));
    poke
}

fn poll_loop(home: &Home, mut client: Client, tx: &Sender<Event>, pokes: &Receiver<()>) {
    loop {
        let procs = match list(&mut client) {
            Ok(p) => p,
            Err(why) => match reconnect(home) {
                Some(c) => {
                    client = c;
                    continue;
                }
                None => {
                    let _ = tx.send(Event::DaemonGone(why));
                    return;
                }
            },
        };
        if tx.send(Event::List(procs)).is_err() {
            return;
        }
        match pokes.recv_timeout(POLL_EVERY) {
            Ok(()) => while pokes.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn list(client: &mut Client) -> Result<Vec<ProcInfo>, String> {
    match client.call(&Request::List) {
        Ok(Response::List { procs }) => Ok(procs),
        Ok(Response::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected reply from the daemon: {other:?}")),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// A daemon that answers again within [`RECONNECT_FOR`]; never starts one (monit watches a
/// daemon, it does not bring back one that was killed).
fn reconnect(home: &Home) -> Option<Client> {
    let deadline = Instant::now() + RECONNECT_FOR;
    loop {
        if let Some(mut c) = Client::connect_existing(home) {
            if list(&mut c).is_ok() {
                return Some(c);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A live log stream of some processes; dropping it hangs up.
pub struct LogFeed {
    stream: UnixStream,
}

impl Drop for LogFeed {
    fn drop(&mut self) {
        // Ends the reader's blocked `recv`; the daemon sees the hang-up and drops the subscriber.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Subscribe to the out and err lines of `ids`; lines arrive as [`Event::Log`] tagged `gen`.
pub fn subscribe(home: &Home, ids: Vec<u32>, gen: u64, tx: Sender<Event>) -> Option<LogFeed> {
    let mut client = Client::connect_existing(home)?;
    client
        .send(&Request::Subscribe(SubscribeRequest {
            ids: Some(ids),
            out: true,
            err: true,
            daemon: false,
        }))
        .ok()?;
    match client.recv() {
        Ok(Response::Subscribed) => {}
        _ => return None,
    }
    let stream = client.stream_handle().ok()?;
    std::thread::spawn(move || loop {
        let ev = match client.recv() {
            Ok(Response::Log { stream, lines, .. }) => Event::Log {
                gen,
                err: stream == "err",
                lines,
            },
            Ok(Response::Skipped { count }) => Event::Skipped { gen, count },
            Ok(_) => continue,
            // Hung up by us (selection changed) or the daemon went: the poller reports that.
            Err(_) => return,
        };
        if tx.send(ev).is_err() {
            return;
        }
    });
    Some(LogFeed { stream })
}

/// Send `req` on a fresh connection from a thread of its own; its outcome comes back as
/// [`Event::Done`] with `what` (e.g. `restart api (0)`), then the poller is poked.
pub fn spawn_request(home: Home, req: Request, what: String, tx: Sender<Event>, poke: Sender<()>) {
    std::thread::spawn(move || {
        let msg = match Client::connect_existing(&home).map(|mut c| c.call(&req)) {
            None => format!("{what}: the daemon is not running"),
            Some(Err(e)) => format!("{what}: {e:#}"),
            Some(Ok(Response::Error { message })) => format!("{what}: {message}"),
            Some(Ok(Response::Done { results })) => done_message(&what, &results),
            Some(Ok(Response::Triggered { replies })) => trigger_message(&what, &replies),
            Some(Ok(_)) => format!("{what}: done"),
        };
        let _ = tx.send(Event::Done(msg));
        let _ = poke.send(());
    });
}

fn trigger_message(what: &str, replies: &[pmr_core::protocol::TriggerReply]) -> String {
    let each: Vec<String> = replies
        .iter()
        .map(|r| match (&r.data, &r.error) {
            (_, Some(e)) => format!("[{}] {e}", r.pm_id),
            (Some(d), None) => format!("[{}] {d}", r.pm_id),
            (None, None) => format!("[{}] ✓", r.pm_id),
        })
        .collect();
    let line = format!("{what}: {}", each.join("; "));
    // One status line: the rest of a long reply is for `pmr trigger --json`.
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

fn done_message(what: &str, results: &[pmr_core::protocol::ActionResult]) -> String {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.error
                .as_ref()
                .map(|e| format!("[{}]({}) {e}", r.name, r.id))
        })
        .collect();
    match (results.is_empty(), failed.is_empty()) {
        (true, _) => format!("{what}: nothing to do"),
        (false, true) => format!("{what}: ✓"),
        (false, false) => format!("{what}: {}", failed.join("; ")),
    }
}
