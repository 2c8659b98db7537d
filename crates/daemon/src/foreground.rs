//! The daemon in the caller's process (`pmr-runtime`, `pmr start --no-daemon`): the same
//! server on the home's socket (so `pmr ls`/`logs`/`reload` work beside it), plus the apps it was
//! given, their output handed to a console thread, orphans reaped, and an exit code.

use crate::daemon::Daemon;
use crate::logs::hub::{Filter, Queued};
use crate::requests::{kill, start};
use crate::server::{self, Stop};
use anyhow::{bail, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{ApplyRequest, Response, Status};
use pmr_core::spec::AppSpec;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::logs::hub::{Block, Stream};

/// Blocks of app output queued for the console before lines are counted as skipped: 256 pipe
/// reads (≤ 16 MiB). A console slower than that loses lines rather than stall the apps.
const CONSOLE_QUEUE: usize = 256;

/// How long the last output of stopped apps may take to be read (a process that left the
/// app's tree may hold its pipe open forever).
const PUMPS_DRAIN: Duration = Duration::from_secs(2);

/// How long the console may take to print what is queued once everything has stopped.
const CONSOLE_DRAIN: Duration = Duration::from_secs(2);

/// How often the apps' states are looked at for auto-exit.
const WATCH_EVERY: Duration = Duration::from_millis(100);

pub struct Options {
    pub apps: Vec<AppSpec>,
    /// Exit when every app has ended on its own (stopped or errored).
    pub auto_exit: bool,
    /// Only warnings and errors of the daemon's own log (on stderr).
    pub quiet: bool,
    /// Wait this long before starting the apps (pm2-runtime's `--delay`); signals are
    /// answered meanwhile.
    pub delay: Duration,
    /// Runs on a thread of its own with the apps' output (never on the runtime: it blocks on
    /// the console). It must return when `Console::recv` says the end.
    pub console: Box<dyn FnOnce(Console) + Send>,
}

/// The apps' output, in the order it was read.
pub struct Console(tokio::sync::mpsc::Receiver<Queued>);

impl Console {
    /// The next block and how many lines were lost just before it; `None` at the end.
    pub fn recv(&mut self) -> Option<(u64, Arc<Block>)> {
        self.0.blocking_recv()
    }
}

/// How the foreground daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: every app stopped; `sigkilled` if one needed SIGKILL.
    Signal { sigkilled: bool },
    /// `pmr kill` from another shell.
    Killed,
    /// Every app ended on its own; the exit code of the last one to end.
    AppsEnded { code: i32 },
    /// The apps could not be started (the errors were logged).
    StartFailed,
}

/// Run the daemon for `home` here until a signal, `pmr kill`, or (with `auto_exit`) the end of
/// every app. Errors when another daemon owns the home.
pub fn run(home: Home, opts: Options) -> Result<Outcome> {
    let level = if opts.quiet {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    };
    let Some(lock) = crate::prepare(&home, level)? else {
        bail!(
            "a pmr daemon already runs for {} (stop it with `pmr kill`, or give this one its own PMR_HOME)",
            home.root.display()
        );
    };
    // Before any app exists, so no orphan is ever missed and no child is untracked.
    if let Err(e) = crate::processes::reaper::start() {
        tracing::warn!("no orphan reaping: {e}");
    }
    let rt = crate::runtime()?;
    let ended: Arc<Mutex<Option<Outcome>>> = Arc::default();
    // Told by the console thread when it has printed everything.
    let (printed_tx, printed) = std::sync::mpsc::channel::<()>();
    let printer_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hub: Arc<Mutex<Option<Arc<crate::logs::hub::Hub>>>> = Arc::default();
    // The daemon's log sinks, whose pumps are waited for once the apps are gone.
    let sinks: Arc<Mutex<Option<Arc<crate::logs::Sinks>>>> = Arc::default();
    let hook = {
        let ended = ended.clone();
        let printer_started = printer_started.clone();
        let hub = hub.clone();
        let sinks = sinks.clone();
        let Options {
            apps,
            auto_exit,
            delay,
            console,
            ..
        } = opts;
        Box::new(move |d: Arc<Daemon>| {
            // Subscribed before the first app starts: its first line is not missed.
            let filter = Filter {
                ids: None,
                out: true,
                err: true,
                daemon: false,
            };
            *hub.lock().unwrap() = Some(d.ctx.sinks.hub.clone());
            *sinks.lock().unwrap() = Some(d.ctx.sinks.clone());
            if let Some(rx) = d.ctx.sinks.hub.subscribe(filter, CONSOLE_QUEUE) {
                let spawned = std::thread::Builder::new()
                    .name("pmr-console".into())
                    .spawn(move || {
                        console(Console(rx));
                        let _ = printed_tx.send(());
                    });
                match spawned {
                    Ok(_) => printer_started.store(true, std::sync::atomic::Ordering::SeqCst),
                    Err(e) => tracing::error!("no console output: {e}"),
                }
            }
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                launch(d, apps, auto_exit, ended).await
            });
        }) as server::Hook
    };
    let stop = rt.block_on(async {
        let stop = server::serve(home.clone(), false, Some(hook)).await;
        // The apps are gone; their pipes end as soon as their pumps have read the rest.
        let deadline = tokio::time::Instant::now() + PUMPS_DRAIN;
        let sinks = sinks.lock().unwrap().clone();
        let live = || sinks.as_ref().map_or(0, |s| s.live_pumps());
        while live() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop
    });
    let outcome = match stop {
        Ok(Stop::Signal { sigkilled }) => Outcome::Signal { sigkilled },
        Ok(Stop::Requested) => ended.lock().unwrap().unwrap_or(Outcome::Killed),
        Err(e) => {
            crate::finish(&home, rt, lock);
            return Err(e);
        }
    };
    crate::finish(&home, rt, lock);
    // Every app is gone: the console prints what is queued and ends.
    if let Some(hub) = hub.lock().unwrap().take() {
        hub.close_all();
    }
    // Bounded: a stdout nobody reads any more must not keep a stopped container alive.
    if printer_started.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = printed.recv_timeout(CONSOLE_DRAIN);
    }
    Ok(outcome)
}

/// Start the apps; then, with `auto_exit`, wait until all have ended.
async fn launch(
    d: Arc<Daemon>,
    apps: Vec<AppSpec>,
    auto_exit: bool,
    ended: Arc<Mutex<Option<Outcome>>>,
) {
    let answer = start::apply(
        &d,
        ApplyRequest {
            apps,
            reload: false,
        },
    )
    .await;
    // A signal or `pmr kill` came during the start: its errors are that stop, not failures.
    if d.ctx
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let failed = match answer {
        Response::Done { results } => {
            let mut failed = false;
            for r in results {
                if let Some(e) = r.error {
                    tracing::error!("[{}]({}) {e}", r.name, r.id);
                    failed = true;
                }
            }
            failed
        }
        Response::Error { message } => {
            tracing::error!("{message}");
            true
        }
        other => {
            tracing::error!("unexpected answer to the start: {other:?}");
            true
        }
    };
    // Nothing half-started: one app that cannot start stops the others.
    if failed {
        *ended.lock().unwrap() = Some(Outcome::StartFailed);
        kill::shutdown(&d).await;
        d.exit.notify_one();
        return;
    }
    if !auto_exit {
        return;
    }
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        if d.ctx
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        // (ended order, status, exit code) of every instance.
        let states: Vec<(u64, Status, Option<i32>)> = {
            let reg = d.registry.lock().unwrap();
            reg.entries
                .values()
                .map(|e| {
                    let s = e.shared.lock().unwrap();
                    (s.ended, s.status, s.exit_code)
                })
                .collect()
        };
        let running = states
            .iter()
            .any(|(_, st, _)| !matches!(st, Status::Stopped | Status::Errored));
        // `pmr delete all` beside the runtime leaves nothing to run either (code 0).
        if !running {
            let code = match states.iter().max_by_key(|(ended, _, _)| *ended) {
                Some((_, _, Some(c))) => *c,
                Some((_, Status::Errored, None)) => 1,
                _ => 0,
            };
            tracing::info!("every app has ended: exiting with {code}");
            *ended.lock().unwrap() = Some(Outcome::AppsEnded { code });
            kill::shutdown(&d).await;
            d.exit.notify_one();
            return;
        }
    }
}
