//! One task per managed instance: it owns the child process and runs the instance state
//! machine (docs/ARCHITECTURE.md) on control messages, the child's exit, IPC messages and timers.
//!
//! ```text
//!  stopped/errored ──start──▶ launching ──ready──▶ online
//!        ▲                       │  │                │
//!        │                       │  └──exit──┐  exit │
//!        │       stop            ▼           ▼       ▼
//!        └──── stopping ◀── (any running) policy::on_unrequested_exit
//!                                          ├─ Stop    → stopped
//!                                          ├─ Errored → errored
//!                                          └─ Restart → waiting restart ──delay──▶ launching
//! ```
//! Other tasks only read the instance's [`Shared`] snapshot (under a short std mutex, no I/O
//! under it) and send [`Ctl`] messages. Stop, delete and retire jump the queue
//! ([`control`]); a reload in progress watches for them and is aborted by them (both
//! processes stopped, the reload answered with an error).
//!
//! This file is the state machine; starting a process is in [`launch`], the stop sequence in
//! [`terminate`], a cluster worker's graceful exit in [`retire`].

mod adopt;
mod control;
mod launch;
mod retire;
mod terminate;
#[cfg(test)]
mod tests;

pub use control::{channel, Ctl, CtlReceiver, CtlSender, Reply, Update};
pub use launch::{App, Held, Launcher, Spawner, Started};

use crate::instances::history::{History, Why};
use crate::instances::policy::{self, Counters, ExitDecision};
use crate::logs::Sinks;
use crate::node::ipc::{IpcEvent, IpcHandle};
use crate::processes::handle::Process;
use launch::write_pid_file;
use nix::sys::signal::Signal;
use pmr_core::protocol::{RestartCause, Status};
use pmr_core::spec::AppSpec;
use retire::retire;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use terminate::terminate;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the daemon-wide context offers every instance.
pub struct Ctx {
    pub home: pmr_core::paths::Home,
    pub sinks: Arc<Sinks>,
    /// Set by `kill`: exits are no longer restarted.
    pub shutting_down: AtomicBool,
    pub listeners: Arc<crate::node::cluster::Listeners>,
    /// NODE_UNIQUE_ID of the next cluster worker (unique for the daemon's life).
    pub next_worker: std::sync::atomic::AtomicU64,
    /// The drain preload for cluster workers (see `drain.rs`), if it could be written.
    pub preload: Option<String>,
    pub notify: Arc<crate::processes::notify::Notify>,
    /// `$NOTIFY_SOCKET`, offered to every app.
    pub notify_path: Option<String>,
    /// The table on disk (`table_file.rs`): told of every change, knows every live child.
    pub table: Arc<crate::instances::table_file::TableWriter>,
    /// What the daemon writes itself, which never restarts a watched app.
    pub own: Arc<crate::watch::OwnFiles>,
    /// Starts the processes: [`Spawner`] (a fake in the state machine's tests).
    pub launcher: Arc<dyn Launcher>,
    /// Source of [`Shared::ended`].
    pub ended: AtomicU64,
    /// How many stop sequences ended in SIGKILL since the daemon started: `pmr-runtime` exits
    /// 137 when one did during its shutdown.
    pub sigkills: AtomicU64,
    /// Told of every spec with a memory limit (shared with the registry).
    pub limits: Arc<crate::instances::limits::Limits>,
    /// State changes for live watchers (shared with the registry).
    pub events: Arc<crate::instances::events::Events>,
    /// The stdin pipes of the running processes.
    pub stdin: Arc<crate::processes::stdin::Feeds>,
    /// PM2's event bus (`pub.sock`), for the messages apps send.
    pub bus: Arc<crate::bus::Bus>,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub out: Arc<str>,
    pub err: Arc<str>,
    pub combined: Option<Arc<str>>,
    pub pid: Arc<str>,
}

/// The instance's state as others may see it.
#[derive(Debug, Clone)]
pub struct Shared {
    pub spec: Arc<AppSpec>,
    pub instance: u32,
    pub status: Status,
    pub pid: u32,
    pub pm_uptime: i64,
    pub created_at: i64,
    pub restart_time: u32,
    pub counters: Counters,
    pub exit_code: Option<i32>,
    pub last_error: Option<String>,
    pub env: pmr_core::env_map::Env,
    pub paths: Paths,
    pub history: History,
    /// Daemon-wide order in which instances last became `stopped` or `errored` (0: never):
    /// `pmr-runtime` exits with the code of the app that ended last.
    pub ended: u64,
    /// Between the stop and the start of a restart (what the table on disk records as wanted).
    pub restarting: bool,
    /// Being deleted or retired (scale down): no longer in the table on disk, though its
    /// process is until it has exited.
    pub leaving: bool,
    /// What is watched (`watch`), while it is: for `describe` and `ls`.
    pub watching: Option<String>,
    /// The last change that restarted the app.
    pub watch_last: Option<String>,
    /// The running process's @pm2/io metrics and actions (PM2 forgets them when it exits).
    pub axm: Option<Arc<crate::node::axm::Agent>>,
}

fn is_over(s: Status) -> bool {
    matches!(s, Status::Stopped | Status::Errored)
}

impl Shared {
    /// A new instance that has not run yet (`register`; `recover` then sets what it restores).
    pub fn new(
        spec: Arc<AppSpec>,
        instance: u32,
        status: Status,
        env: pmr_core::env_map::Env,
        paths: Paths,
    ) -> Shared {
        let now = now_ms();
        Shared {
            spec,
            instance,
            status,
            pid: 0,
            pm_uptime: now,
            created_at: now,
            restart_time: 0,
            counters: Counters::default(),
            exit_code: None,
            last_error: None,
            env,
            paths,
            history: History::default(),
            ended: 0,
            restarting: false,
            leaving: false,
            watching: None,
            watch_last: None,
            axm: None,
        }
    }

    /// What the table on disk holds of this instance, cheaply: the spec by its address (a
    /// change replaces the `Arc`; `apply` touches the table itself for in-place env merges).
    #[allow(clippy::type_complexity)]
    fn fingerprint(&self) -> (Status, u32, u32, u32, *const AppSpec, bool, i64, bool, bool) {
        (
            self.status,
            self.restart_time,
            self.counters.unstable_restarts,
            self.pid,
            Arc::as_ptr(&self.spec),
            self.last_error.is_some(),
            self.created_at,
            self.restarting,
            self.leaving,
        )
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One started process of the instance.
struct Running {
    child: Box<dyn Process>,
    pid: u32,
    started: Instant,
    ipc_rx: Option<mpsc::Receiver<IpcEvent>>,
    ipc: Option<IpcHandle>,
    /// What the process says through @pm2/io (Node apps, with their IPC channel).
    axm: Option<Arc<crate::node::axm::Agent>>,
    /// Set while launching (cluster, or `wait_ready`): online anyway when it passes.
    ready_deadline: Option<Instant>,
    /// Start requests answered once the instance is online.
    waiters: Vec<Reply>,
    /// Why the last `listen()` failed (EADDRINUSE...), for `describe` when it dies of it.
    listen_error: Option<String>,
    /// Its place in the table on disk, cluster membership, stdin...: released when this
    /// process is dropped (after it was reaped).
    held: Held,
}

/// What an IPC event asks of the instance.
enum IpcOutcome {
    Nothing,
    /// The worker broke the protocol: replace it.
    Restart,
}

enum Phase {
    Idle,
    Running(Box<Running>),
    Waiting(Instant),
    Deleted,
}

pub struct Instance {
    pub id: u32,
    pub shared: Arc<Mutex<Shared>>,
    pub ctx: Arc<Ctx>,
}

impl Instance {
    /// Every change of the state goes through here: one that the table on disk records
    /// (seen by comparing a cheap fingerprint) tells the table's writer.
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let (r, changed) = {
            let mut s = self.shared.lock().unwrap();
            let before = s.fingerprint();
            let was_over = is_over(s.status);
            let r = f(&mut s);
            if !was_over && is_over(s.status) {
                s.ended = self.ctx.ended.fetch_add(1, Ordering::SeqCst) + 1;
            }
            // A new pid without a new status: a reload's new process took over. (Not a pid
            // cleared as a process ends, before its status changes: that is no new state.)
            if s.status != before.0 || (s.pid != before.3 && s.pid != 0) {
                self.ctx
                    .events
                    .state(self.id, &s.spec.name, s.status, s.pid, s.restart_time);
            }
            (r, s.fingerprint() != before)
        };
        if changed {
            self.ctx.table.touch();
        }
        r
    }

    fn label(&self) -> String {
        self.with(|s| format!("[{}:{}]", s.spec.name, self.id))
    }

    /// The app's `listen_timeout`, or `PM2_GRACEFUL_LISTEN_TIMEOUT` when it has none.
    fn listen_timeout(&self) -> u64 {
        pmr_core::knobs::get().listen_timeout(self.with(|s| s.spec.listen_timeout))
    }

    pub async fn run(self, rx: CtlReceiver) {
        self.run_in(Phase::Idle, rx).await
    }

    /// The instance's task (from `Idle`, or around a process handed over by `update`). Every
    /// handler runs boxed: the task's future is as big as the largest state it can be in, and
    /// is allocated for every instance for its whole life; inline, the rare paths (reload,
    /// launch, stop) made it several KB per app.
    async fn run_in(self, mut phase: Phase, mut rx: CtlReceiver) {
        let mut cron = crate::instances::cron::Timer::default();
        let mut watcher = crate::watch::Watcher::new(self.ctx.own.clone());
        let paths = self.with(|s| s.paths.clone());
        let files = [
            Some(&paths.out),
            Some(&paths.err),
            paths.combined.as_ref(),
            Some(&paths.pid),
        ];
        let _own = self.ctx.own.hold(
            files
                .into_iter()
                .flatten()
                .map(|p| std::path::Path::new(&**p)),
        );
        loop {
            let (pattern, spec) = self.with(|s| (s.spec.cron_restart.clone(), s.spec.clone()));
            let cron_due = cron.due(pattern.as_deref());
            let watched = watcher.next(&spec);
            let mut by_watch = false;
            phase = match phase {
                Phase::Deleted => break,
                Phase::Idle => tokio::select! {
                    _ = cron_due => Box::pin(self.on_cron(None)).await,
                    ev = watched => match self.on_watch_event(ev) {
                        Some(file) => {
                            by_watch = true;
                            Box::pin(self.on_watch(None, file, &mut rx)).await
                        }
                        None => Phase::Idle,
                    },
                    ctl = rx.recv() => match ctl {
                        None => break,
                        Some(ctl) => Box::pin(self.on_ctl_idle(ctl)).await,
                    },
                },
                Phase::Waiting(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => Box::pin(self.relaunch(None)).await,
                    _ = cron_due => Box::pin(self.on_cron(None)).await,
                    ev = watched => match self.on_watch_event(ev) {
                        Some(file) => {
                            by_watch = true;
                            Box::pin(self.on_watch(None, file, &mut rx)).await
                        }
                        None => Phase::Waiting(at),
                    },
                    ctl = rx.recv() => match ctl {
                        None => break,
                        Some(ctl) => Box::pin(self.on_ctl_waiting(ctl, at)).await,
                    },
                },
                Phase::Running(mut r) => tokio::select! {
                    status = r.child.wait() => Box::pin(self.on_exit(*r, status)).await,
                    _ = cron_due => Box::pin(self.on_cron(Some(r))).await,
                    ev = watched => match self.on_watch_event(ev) {
                        Some(file) => {
                            by_watch = true;
                            Box::pin(self.on_watch(Some(r), file, &mut rx)).await
                        }
                        None => Phase::Running(r),
                    },
                    Some(ev) = recv_opt(&mut r.ipc_rx) => match self.on_ipc(&mut r, ev) {
                        IpcOutcome::Nothing => Phase::Running(r),
                        IpcOutcome::Restart => {
                            let why = Why::new(RestartCause::Crash, "broke the cluster protocol");
                            self.record(why, &r);
                            let waiters = Box::pin(self.stop_for_restart(*r, RestartCause::Crash)).await;
                            Box::pin(self.relaunch(waiters)).await
                        }
                    },
                    _ = sleep_opt(r.ready_deadline) => {
                        tracing::warn!("App {} was not ready within listen_timeout ({} ms); considered online", self.label(), self.listen_timeout());
                        self.set_online(&mut r);
                        Phase::Running(r)
                    }
                    ctl = rx.recv() => match ctl {
                        None => {
                            Box::pin(self.stop_running(*r)).await;
                            break;
                        }
                        Some(ctl) => Box::pin(self.on_ctl_running(r, ctl, &mut rx)).await,
                    },
                },
            };
            if by_watch {
                watcher.restarted();
            }
        }
    }

    /// A watcher's news: the file that changed, if the app is to restart for it.
    fn on_watch_event(&self, ev: crate::watch::Event) -> Option<String> {
        match ev {
            crate::watch::Event::State(w) => {
                if let Some(w) = w.as_ref().filter(|w| !w.ends_with("(starting)")) {
                    tracing::info!("App {} watching {w}", self.label());
                }
                self.with(|s| s.watching = w);
                None
            }
            crate::watch::Event::Changed(file) => Some(file),
        }
    }

    /// A watched file changed: a running app restarts (cluster: reloads, as PM2); one that
    /// crashed or is waiting to restart starts now (PM2's watcher restarts it by name).
    async fn on_watch(&self, r: Option<Box<Running>>, file: String, rx: &mut CtlReceiver) -> Phase {
        if self.ctx.shutting_down.load(Ordering::SeqCst) {
            return r.map_or(Phase::Idle, Phase::Running);
        }
        tracing::info!(
            "Change detected on path {file} for app {} - restarting",
            self.label()
        );
        self.with(|s| s.watch_last = Some(file.clone()));
        let why = Why::new(RestartCause::Watch, file);
        let (reply, _) = tokio::sync::oneshot::channel();
        match r {
            Some(r) => self.reload_or_restart(r, why, reply, rx).await,
            None => {
                self.with(|s| s.history.push(now_ms(), why, 0));
                self.reset_for_manual_start();
                self.launch(None).await
            }
        }
    }

    /// `stop` and `delete` turn watching off, as PM2's do.
    fn unwatch(&self) {
        self.with(|s| {
            if s.spec.watch != pmr_core::spec::Watch::Off {
                Arc::make_mut(&mut s.spec).watch = pmr_core::spec::Watch::Off;
            }
        });
    }

    async fn on_ctl_idle(&self, ctl: Ctl) -> Phase {
        match ctl {
            Ctl::Start(reply) => {
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Resume(reply) => self.launch(Some(reply)).await,
            Ctl::Restart { update, reply } | Ctl::Reload { update, reply } => {
                self.apply(update);
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Stop(reply) => {
                self.unwatch();
                self.with(|s| s.status = Status::Stopped);
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Delete(reply) | Ctl::Retire(reply) => {
                let _ = reply.send(Ok(()));
                Phase::Deleted
            }
            Ctl::Signal(_, reply) => {
                let _ = reply.send(Err("process is not running".into()));
                Phase::Idle
            }
            Ctl::Reset(reply) => {
                self.reset_meta();
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Auto(_, reply) => {
                // Memory is over the limit only while it runs: never start a stopped app.
                let _ = reply.send(Err("process is not running".into()));
                Phase::Idle
            }
            Ctl::Handoff(reply) => {
                // Nothing runs: the table says what the next daemon does with it.
                let _ = reply.send(None);
                adopt::park(None).await
            }
        }
    }

    async fn on_ctl_waiting(&self, ctl: Ctl, at: Instant) -> Phase {
        match ctl {
            Ctl::Auto(_, reply) => {
                let _ = reply.send(Err("process is not running".into()));
                Phase::Waiting(at)
            }
            Ctl::Stop(reply) => {
                self.unwatch();
                self.with(|s| s.status = Status::Stopped);
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Reset(reply) => {
                self.reset_meta();
                let _ = reply.send(Ok(()));
                let at = Instant::now(); // restart without further delay
                Phase::Waiting(at)
            }
            other => self.on_ctl_idle(other).await,
        }
    }

    async fn on_ctl_running(&self, mut r: Box<Running>, ctl: Ctl, rx: &mut CtlReceiver) -> Phase {
        match ctl {
            Ctl::Start(reply) | Ctl::Resume(reply) => {
                if r.ready_deadline.is_some() {
                    r.waiters.push(reply);
                } else {
                    let _ = reply.send(Ok(()));
                }
                Phase::Running(r)
            }
            Ctl::Stop(reply) => {
                self.unwatch();
                self.stop_running(*r).await;
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Restart { update, reply } => {
                self.record(Why::new(RestartCause::Restart, ""), &r);
                let mut waiters = self.stop_for_restart(*r, RestartCause::Restart).await;
                self.apply(update);
                self.reset_for_manual_start();
                waiters.push(reply);
                self.relaunch(waiters).await
            }
            Ctl::Reload { update, reply } => {
                self.apply(update);
                let why = Why::new(RestartCause::Reload, "");
                self.reload_or_restart(r, why, reply, rx).await
            }
            Ctl::Auto(why, reply) => self.reload_or_restart(r, why, reply, rx).await,
            Ctl::Delete(reply) => {
                self.with(|s| s.leaving = true);
                self.stop_running(*r).await;
                let _ = reply.send(Ok(()));
                Phase::Deleted
            }
            Ctl::Retire(reply) => {
                let spec = self.with(|s| {
                    s.leaving = true;
                    s.status = Status::Stopping;
                    s.spec.clone()
                });
                retire(*r, None, &spec, &self.label(), &self.ctx.sigkills).await;
                self.with(|s| {
                    s.status = Status::Stopped;
                    s.pid = 0;
                    s.axm = None;
                });
                let _ = reply.send(Ok(()));
                Phase::Deleted
            }
            Ctl::Signal(sig, reply) => {
                let res = Signal::try_from(sig)
                    .map_err(|e| e.to_string())
                    .and_then(|sig| r.child.signal(sig).map_err(|e| e.to_string()));
                let _ = reply.send(res);
                Phase::Running(r)
            }
            Ctl::Reset(reply) => {
                self.reset_meta();
                let _ = reply.send(Ok(()));
                Phase::Running(r)
            }
            Ctl::Handoff(reply) => {
                let handed = self.hand_over(&mut r).await;
                let _ = reply.send(handed);
                adopt::park(Some(r)).await
            }
        }
    }

    /// Cluster mode (or `listen` sockets): a zero-downtime reload; otherwise (or not up
    /// yet) a restart, as in PM2.
    async fn reload_or_restart(
        &self,
        r: Box<Running>,
        why: Why,
        reply: Reply,
        rx: &mut CtlReceiver,
    ) -> Phase {
        let seamless = self.with(|s| {
            s.spec.exec_mode == pmr_core::spec::ExecMode::Cluster || !s.spec.listen.is_empty()
        });
        if seamless && r.ready_deadline.is_none() {
            self.reload(r, why, reply, rx).await
        } else {
            let cause = why.cause;
            self.record(why, &r);
            let mut waiters = self.stop_for_restart(*r, cause).await;
            self.reset_for_manual_start();
            waiters.push(reply);
            self.relaunch(waiters).await
        }
    }

    /// `cron_restart` is due: restart what runs, start what does not (as PM2 does: its cron
    /// job calls `restartProcessId`, which starts a stopped or errored process).
    async fn on_cron(&self, r: Option<Box<Running>>) -> Phase {
        if self.ctx.shutting_down.load(Ordering::SeqCst) {
            // `kill` is stopping everything: nothing starts again.
            return r.map_or(Phase::Idle, Phase::Running);
        }
        let pattern = self.with(|s| s.spec.cron_restart.clone().unwrap_or_default());
        let why = Why::new(RestartCause::Cron, pattern);
        match r {
            Some(r) => {
                self.record(why, &r);
                let waiters = self.stop_for_restart(*r, RestartCause::Cron).await;
                self.reset_for_manual_start();
                self.relaunch(waiters).await
            }
            None => {
                tracing::info!(
                    "App {} started by cron_restart ({})",
                    self.label(),
                    why.detail
                );
                self.with(|s| s.history.push(now_ms(), why, 0));
                self.reset_for_manual_start();
                self.launch(None).await
            }
        }
    }

    /// Note a restart of the process `r` in the history and the daemon log.
    fn record(&self, why: Why, r: &Running) {
        self.record_uptime(why, r.started.elapsed().as_millis() as u64);
    }

    fn record_uptime(&self, why: Why, uptime_ms: u64) {
        tracing::info!("App {} restart: {why}", self.label());
        self.with(|s| s.history.push(now_ms(), why, uptime_ms));
    }

    fn apply(&self, update: Update) {
        self.with(|s| {
            if let Some(spec) = update.spec {
                self.ctx.limits.note_spec(&spec);
                s.spec = spec;
            }
            if let Some(env) = update.env {
                Arc::make_mut(&mut s.spec).env.extend(env);
            }
        });
        self.ctx.table.touch();
    }

    /// A manual start or restart forgets earlier crashes (as PM2's restart does).
    fn reset_for_manual_start(&self) {
        self.with(|s| {
            s.counters = Counters::default();
            s.last_error = None;
        });
    }

    fn reset_meta(&self) {
        self.with(|s| {
            s.restart_time = 0;
            s.counters.unstable_restarts = 0;
            s.created_at = now_ms();
        });
    }

    /// Spawn the child. `waiters` are answered when it is online, or with the reason it failed.
    async fn launch(&self, waiters: impl IntoIterator<Item = Reply>) -> Phase {
        // `exit_code` stays: PM2 shows the last run's exit code until the next exit.
        self.with(|s| {
            s.status = Status::Launching;
            s.restarting = false;
        });
        let mut r = match self.spawn_child().await {
            Ok(r) => r,
            Err(e) => return self.fail_launch(e, waiters),
        };
        r.waiters.extend(waiters);
        let (pid, pid_path) = (r.pid, self.with(|s| s.paths.pid.clone()));
        let _ = tokio::task::spawn_blocking(move || write_pid_file(&pid_path, pid)).await;
        self.with(|s| {
            s.pid = pid;
            s.pm_uptime = now_ms();
            s.axm = r.axm.clone();
        });
        if r.ready_deadline.is_none() {
            self.set_online(&mut r);
        }
        Phase::Running(r)
    }

    /// Every start after the first counts as a restart (`restart_time`, `↺`).
    async fn relaunch(&self, waiters: impl IntoIterator<Item = Reply>) -> Phase {
        self.with(|s| s.restart_time += 1);
        self.launch(waiters).await
    }

    /// Zero-downtime replacement of a cluster worker (docs/ARCHITECTURE.md, "Cluster mode and
    /// reload"): the new process takes this pm_id once it is ready, then the old one is retired
    /// in the background; `reply` is answered when the old one is gone. If the new one dies
    /// before it is ready, it is dropped and the old one keeps serving. A stop (delete, scale
    /// down) sent meanwhile aborts the reload; other control messages wait until the swap is
    /// done.
    async fn reload(
        &self,
        mut old: Box<Running>,
        why: Why,
        reply: Reply,
        rx: &mut CtlReceiver,
    ) -> Phase {
        let mut new = match self.spawn_child().await {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Phase::Running(old);
            }
        };
        let mut old_exit = None;
        // Without a readiness signal to wait for (socket passing, no wait_ready) the new
        // process is ready at once: connections wait in the shared socket's backlog.
        while new.ready_deadline.is_some() {
            tokio::select! {
                st = new.child.wait() => {
                    let why = match st.ok().and_then(|s| s.code()) {
                        Some(c) => format!("exited with code {c}"),
                        None => "was killed".to_string(),
                    };
                    let extra = new.listen_error.take().map(|e| format!(" ({e})")).unwrap_or_default();
                    let msg = format!("the new process {why} before it was ready{extra}; the old one keeps serving");
                    tracing::error!("App {} reload failed: {msg}", self.label());
                    let _ = reply.send(Err(msg));
                    return Phase::Running(old);
                }
                st = old.child.wait(), if old_exit.is_none() => old_exit = Some(st),
                Some(ev) = recv_opt(&mut new.ipc_rx) => {
                    if ev.is_readiness(self.with(|s| s.spec.wait_ready)) {
                        new.ready_deadline = None;
                    } else if let IpcEvent::ListenError(e) = ev {
                        new.listen_error = Some(*e);
                    }
                }
                // The old worker's events are not needed any more; keep its queue drained.
                Some(_) = recv_opt(&mut old.ipc_rx) => {}
                _ = sleep_opt(new.ready_deadline) => {
                    tracing::warn!("App {}: the new process was not ready within listen_timeout ({} ms); considered ready", self.label(), self.listen_timeout());
                    new.ready_deadline = None;
                }
                ctl = rx.recv_urgent() => return self.abort_reload(old, new, old_exit.is_some(), reply, ctl).await,
            }
        }
        new.ready_deadline = None;
        self.record(why, &old);
        let (pid, pid_path, spec) = self.with(|s| {
            s.pid = new.pid;
            s.axm = new.axm.clone();
            s.pm_uptime = now_ms();
            s.restart_time += 1;
            s.counters = Counters::default();
            s.status = Status::Online;
            (new.pid, s.paths.pid.clone(), s.spec.clone())
        });
        let _ = tokio::task::spawn_blocking(move || write_pid_file(&pid_path, pid)).await;
        tracing::info!(
            "App {} reloaded: pid {} replaces {}",
            self.label(),
            new.pid,
            old.pid
        );
        let (label, ctx) = (self.label(), self.ctx.clone());
        tokio::spawn(async move {
            retire(*old, old_exit, &spec, &label, &ctx.sigkills).await;
            let _ = reply.send(Ok(()));
        });
        Phase::Running(new)
    }

    /// A stop, delete or scale down arrived during a reload: both processes go (at once, so
    /// the stop takes one `kill_timeout`), the reload fails, then `ctl` is handled as if the
    /// instance had been stopped.
    async fn abort_reload(
        &self,
        mut old: Box<Running>,
        new: Box<Running>,
        old_exited: bool,
        reply: Reply,
        ctl: Ctl,
    ) -> Phase {
        tracing::info!("App {}: reload aborted by a {}", self.label(), ctl.name());
        if matches!(ctl, Ctl::Delete(_) | Ctl::Retire(_)) {
            self.with(|s| s.leaving = true);
        }
        let (spec, label) = (self.with(|s| s.spec.clone()), self.label());
        let old_gone = async {
            if !old_exited {
                terminate(&mut old, &spec, &label, &self.ctx.sigkills).await;
            }
        };
        tokio::join!(self.stop_running(*new), old_gone);
        let _ = reply.send(Err(format!("reload aborted by a {}", ctl.name())));
        self.on_ctl_idle(ctl).await
    }

    fn fail_launch(&self, reason: String, waiters: impl IntoIterator<Item = Reply>) -> Phase {
        tracing::error!("App {} failed to start: {reason}", self.label());
        self.with(|s| {
            s.status = Status::Errored;
            s.pid = 0;
            s.axm = None;
            s.last_error = Some(reason.clone());
        });
        for w in waiters {
            let _ = w.send(Err(reason.clone()));
        }
        Phase::Idle
    }

    fn set_online(&self, r: &mut Running) {
        r.ready_deadline = None;
        self.with(|s| s.status = Status::Online);
        tracing::info!("App {} online", self.label());
        for w in r.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    fn on_ipc(&self, r: &mut Running, ev: IpcEvent) -> IpcOutcome {
        let (cluster, wait_ready) = self.with(|s| {
            (
                s.spec.exec_mode == pmr_core::spec::ExecMode::Cluster,
                s.spec.wait_ready,
            )
        });
        match ev {
            ev if ev.is_readiness(wait_ready) => {
                if r.ready_deadline.is_some() {
                    self.set_online(r);
                }
            }
            IpcEvent::Ready | IpcEvent::Listening { .. } => {}
            IpcEvent::ListenError(e) => {
                tracing::error!("App {}: {e}", self.label());
                r.listen_error = Some(*e);
            }
            // On PM2's bus, built only when someone subscribes.
            IpcEvent::Message(m) if self.ctx.bus.active() => {
                let (name, namespace) = {
                    let s = self.shared.lock().unwrap();
                    (s.spec.name.clone(), s.spec.namespace.clone())
                };
                let app = crate::bus::AppId {
                    pm_id: self.id,
                    name,
                    namespace,
                };
                self.ctx.bus.from_app(&app, None, &m);
            }
            IpcEvent::Message(_) | IpcEvent::Closed => {}
            IpcEvent::Garbage(g) => {
                tracing::warn!("App {} sent a malformed IPC message: {g:?}", self.label());
                if cluster {
                    // A worker that breaks the cluster protocol cannot be trusted with it.
                    tracing::warn!("App {}: restarting it", self.label());
                    return IpcOutcome::Restart;
                }
            }
        }
        IpcOutcome::Nothing
    }

    async fn on_exit(
        &self,
        r: Running,
        status: std::io::Result<std::process::ExitStatus>,
    ) -> Phase {
        let run_ms = r.started.elapsed().as_millis() as u64;
        let (code, signal) = match &status {
            Ok(st) => {
                use std::os::unix::process::ExitStatusExt;
                (st.code(), st.signal())
            }
            Err(_) => (None, None),
        };
        tracing::info!(
            "App {} exited with code [{}] via signal [{}]",
            self.label(),
            code.map_or("null".into(), |c| c.to_string()),
            signal.map_or("null".into(), signal_name)
        );
        let mut reason = match (code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by {}", signal_name(s)),
            _ => "exited".to_string(),
        };
        if let Some(e) = &r.listen_error {
            reason = format!("{reason} after {e}");
        }
        for w in r.waiters {
            let _ = w.send(Err(format!("{reason} before it was ready")));
        }
        let pid_path = self.with(|s| {
            s.pid = 0;
            s.axm = None;
            s.exit_code = code.or(signal.map(|s| 128 + s));
            s.paths.pid.clone()
        });
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(&*pid_path)).await;

        if self.ctx.shutting_down.load(Ordering::SeqCst) {
            self.with(|s| s.status = Status::Stopped);
            return Phase::Idle;
        }
        let decision = self.with(|s| {
            let spec = s.spec.clone();
            policy::on_unrequested_exit(&spec, &mut s.counters, run_ms, code)
        });
        match decision {
            ExitDecision::Stop => {
                self.with(|s| s.status = Status::Stopped);
                Phase::Idle
            }
            ExitDecision::Errored => {
                let msg = self.with(|s| {
                    let m = format!(
                        "{} consecutive runs shorter than min_uptime ({} ms); last one {reason}",
                        s.counters.unstable_restarts, s.spec.min_uptime
                    );
                    s.status = Status::Errored;
                    s.last_error = Some(m.clone());
                    m
                });
                tracing::error!("App {} errored: {msg}", self.label());
                Phase::Idle
            }
            ExitDecision::Restart { delay_ms: 0 } => {
                self.record_uptime(Why::new(RestartCause::Crash, reason), run_ms);
                self.relaunch(None).await
            }
            ExitDecision::Restart { delay_ms } => {
                self.record_uptime(Why::new(RestartCause::Crash, reason), run_ms);
                tracing::info!("App {} will restart in {delay_ms}ms", self.label());
                self.with(|s| s.status = Status::WaitingRestart);
                Phase::Waiting(Instant::now() + Duration::from_millis(delay_ms))
            }
        }
    }

    /// The stop half of a restart: a daemon that dies before the start half leaves the
    /// instance in its table as wanted online, not stopped. Returns the start requests still
    /// waiting for the stopped process to be ready, for the start half to answer: a user's
    /// restart or reload does not fail a `start` waiting for the launch it cuts short. Those
    /// cut short by a restart pmr makes on its own (cron, watch, memory) are answered at once
    /// instead: the app was started, and such restarts can come faster than a launch ends (a
    /// cluster app that never listens, restarted by a `cron_restart` every 2 s, would keep
    /// them waiting for ever).
    async fn stop_for_restart(&self, mut r: Running, cause: RestartCause) -> Vec<Reply> {
        let mut waiters = std::mem::take(&mut r.waiters);
        match cause {
            RestartCause::Restart | RestartCause::Reload => {}
            // A worker that broke the cluster protocol failed its launch, as one that exited.
            RestartCause::Crash => {
                for w in waiters.drain(..) {
                    let _ = w.send(Err("broke the cluster protocol before it was ready".into()));
                }
            }
            RestartCause::Cron | RestartCause::Memory | RestartCause::Watch => {
                for w in waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
        }
        self.with(|s| s.restarting = true);
        self.stop_running(r).await;
        waiters
    }

    /// Stop the running child (see [`terminate`]) and record it as stopped.
    async fn stop_running(&self, mut r: Running) {
        let spec = self.with(|s| {
            s.status = Status::Stopping;
            s.spec.clone()
        });
        for w in r.waiters.drain(..) {
            let _ = w.send(Err("stopped before it was ready".into()));
        }
        let code = terminate(&mut r, &spec, &self.label(), &self.ctx.sigkills).await;
        let pid_path = self.with(|s| {
            s.status = Status::Stopped;
            s.pid = 0;
            s.axm = None;
            s.exit_code = code;
            s.paths.pid.clone()
        });
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(&*pid_path)).await;
        tracing::info!("App {} stopped", self.label());
    }
}

pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<IpcEvent>>) -> Option<IpcEvent> {
    match rx {
        Some(r) => match r.recv().await {
            Some(ev) => Some(ev),
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
