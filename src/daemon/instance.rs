//! One task per managed instance: it owns the child process and runs the state machine of
//! DESIGN §2 on control messages, the child's exit, IPC messages and timers.
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
//! under it) and send [`Ctl`] messages.

use super::logs::{pump, Sinks};
use super::node_ipc::{self, ClusterCtx, IpcEvent, IpcHandle};
use super::policy::{self, Counters, ExitDecision};
use super::spawn;
use crate::protocol::Status;
use crate::spec::AppSpec;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub type Reply = oneshot::Sender<Result<(), String>>;

/// What a restart changes.
#[derive(Debug, Default, Clone)]
pub struct Update {
    /// Merged over the stored env (`--update-env`): variables are added or replaced.
    pub env: Option<BTreeMap<String, String>>,
    /// A new spec from an ecosystem file (PM2 re-applies the file's config on restart).
    pub spec: Option<Arc<AppSpec>>,
}

#[derive(Debug)]
pub enum Ctl {
    Start(Reply),
    Stop(Reply),
    /// Stop (if running) and start again with the changes in `update`.
    Restart {
        update: Update,
        reply: Reply,
    },
    /// Cluster mode: start a new process, and once it is ready retire the old one (disconnect,
    /// SIGINT, SIGKILL). Other modes: a restart.
    Reload {
        update: Update,
        reply: Reply,
    },
    /// Stop and end the task.
    Delete(Reply),
    /// Scale down: retire gracefully (cluster disconnect first, as in a reload), then end.
    Retire(Reply),
    Signal(i32, Reply),
    Reset(Reply),
}

/// What the daemon-wide context offers every instance.
pub struct Ctx {
    pub home: crate::paths::Home,
    pub sinks: Arc<Sinks>,
    /// Set by `kill`: exits are no longer restarted.
    pub shutting_down: AtomicBool,
    pub listeners: Arc<super::cluster::Listeners>,
    /// NODE_UNIQUE_ID of the next cluster worker (unique for the daemon's life).
    pub next_worker: std::sync::atomic::AtomicU64,
    /// The drain preload for cluster workers (see `drain.rs`), if it could be written.
    pub preload: Option<String>,
    pub notify: Arc<super::notify::Notify>,
    /// `$NOTIFY_SOCKET`, offered to every app.
    pub notify_path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub out: String,
    pub err: String,
    pub combined: Option<String>,
    pub pid: String,
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
    pub env: BTreeMap<String, String>,
    pub paths: Paths,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct Running {
    child: Child,
    pid: u32,
    started: Instant,
    ipc_rx: Option<mpsc::Receiver<IpcEvent>>,
    ipc: Option<IpcHandle>,
    /// Set while launching (cluster, or `wait_ready`): online anyway when it passes.
    ready_deadline: Option<Instant>,
    /// Start requests answered once the instance is online.
    waiters: Vec<Reply>,
    /// Why the last `listen()` failed (EADDRINUSE...), for `describe` when it dies of it.
    listen_error: Option<String>,
    /// Released when this process is dropped (after it exited).
    _membership: Option<super::cluster::Membership>,
    _notify: Option<super::notify::Registration>,
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
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        f(&mut self.shared.lock().unwrap())
    }

    fn label(&self) -> String {
        self.with(|s| format!("[{}:{}]", s.spec.name, self.id))
    }

    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Ctl>) {
        let mut phase = Phase::Idle;
        loop {
            phase = match phase {
                Phase::Deleted => break,
                Phase::Idle => match rx.recv().await {
                    None => break,
                    Some(ctl) => self.on_ctl_idle(ctl).await,
                },
                Phase::Waiting(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {
                        self.with(|s| s.restart_time += 1);
                        self.launch(None).await
                    }
                    ctl = rx.recv() => match ctl {
                        None => break,
                        Some(ctl) => self.on_ctl_waiting(ctl).await,
                    },
                },
                Phase::Running(mut r) => tokio::select! {
                    status = r.child.wait() => self.on_exit(*r, status).await,
                    Some(ev) = recv_opt(&mut r.ipc_rx) => match self.on_ipc(&mut r, ev) {
                        IpcOutcome::Nothing => Phase::Running(r),
                        IpcOutcome::Restart => {
                            self.stop_running(*r).await;
                            self.with(|s| s.restart_time += 1);
                            self.launch(None).await
                        }
                    },
                    _ = sleep_opt(r.ready_deadline) => {
                        tracing::warn!("App {} was not ready within listen_timeout; considered online", self.label());
                        self.set_online(&mut r);
                        Phase::Running(r)
                    }
                    ctl = rx.recv() => match ctl {
                        None => {
                            self.stop_running(*r).await;
                            break;
                        }
                        Some(ctl) => self.on_ctl_running(r, ctl).await,
                    },
                },
            };
        }
    }

    async fn on_ctl_idle(&self, ctl: Ctl) -> Phase {
        match ctl {
            Ctl::Start(reply) => {
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Restart { update, reply } | Ctl::Reload { update, reply } => {
                self.apply(update);
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Stop(reply) => {
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
        }
    }

    async fn on_ctl_waiting(&self, ctl: Ctl) -> Phase {
        match ctl {
            Ctl::Stop(reply) => {
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

    async fn on_ctl_running(&self, mut r: Box<Running>, ctl: Ctl) -> Phase {
        match ctl {
            Ctl::Start(reply) => {
                if r.ready_deadline.is_some() {
                    r.waiters.push(reply);
                } else {
                    let _ = reply.send(Ok(()));
                }
                Phase::Running(r)
            }
            Ctl::Stop(reply) => {
                self.stop_running(*r).await;
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Restart { update, reply } => {
                self.stop_running(*r).await;
                self.apply(update);
                self.reset_for_manual_start();
                self.with(|s| s.restart_time += 1);
                self.launch(Some(reply)).await
            }
            Ctl::Reload { update, reply } => {
                self.apply(update);
                let seamless = self.with(|s| {
                    s.spec.exec_mode == crate::spec::ExecMode::Cluster
                        || !listen_addresses(&s.spec).is_empty()
                });
                if seamless && r.ready_deadline.is_none() {
                    self.reload(r, reply).await
                } else {
                    // Fork mode (or not up yet): a restart, as in PM2.
                    self.stop_running(*r).await;
                    self.reset_for_manual_start();
                    self.with(|s| s.restart_time += 1);
                    self.launch(Some(reply)).await
                }
            }
            Ctl::Delete(reply) => {
                self.stop_running(*r).await;
                let _ = reply.send(Ok(()));
                Phase::Deleted
            }
            Ctl::Retire(reply) => {
                let spec = self.with(|s| {
                    s.status = Status::Stopping;
                    s.spec.clone()
                });
                retire(*r, None, &spec, &self.label()).await;
                self.with(|s| {
                    s.status = Status::Stopped;
                    s.pid = 0;
                });
                let _ = reply.send(Ok(()));
                Phase::Deleted
            }
            Ctl::Signal(sig, reply) => {
                let res = Signal::try_from(sig)
                    .map_err(|e| e.to_string())
                    .and_then(|sig| {
                        kill(Pid::from_raw(r.pid as i32), sig).map_err(|e| e.to_string())
                    });
                let _ = reply.send(res);
                Phase::Running(r)
            }
            Ctl::Reset(reply) => {
                self.reset_meta();
                let _ = reply.send(Ok(()));
                Phase::Running(r)
            }
        }
    }

    fn apply(&self, update: Update) {
        self.with(|s| {
            if let Some(spec) = update.spec {
                s.spec = spec;
            }
            if let Some(env) = update.env {
                Arc::make_mut(&mut s.spec).env.extend(env);
            }
        });
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

    /// Start a child for this instance: sinks, process, log pumps, IPC. Does not touch the
    /// instance's visible state except its env.
    async fn spawn_child(&self) -> Result<Box<Running>, String> {
        let (spec, paths, env) = self.with(|s| {
            let env = spawn::child_env(
                &s.spec,
                self.id,
                s.instance,
                &self.ctx.home.root.to_string_lossy(),
            );
            s.env = env.clone();
            (s.spec.clone(), s.paths.clone(), env)
        });
        tracing::info!(
            "App {} starting in -{} mode-",
            self.label(),
            spec.exec_mode.short()
        );

        let (ctx, log_paths, log_spec, id) =
            (self.ctx.clone(), paths.clone(), spec.clone(), self.id);
        let sinks = tokio::task::spawn_blocking(move || {
            let p = &log_paths;
            ctx.sinks
                .open_app(&log_spec, id, &p.out, &p.err, p.combined.as_deref())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let (out_sinks, err_sinks) = sinks.map_err(|e| format!("cannot open log file {e}"))?;

        let cluster = spec.exec_mode == crate::spec::ExecMode::Cluster;
        let listen = listen_addresses(&spec);
        let worker = (cluster || !listen.is_empty())
            .then(|| self.ctx.next_worker.fetch_add(1, Ordering::SeqCst));
        let drain = if cluster
            && listen.is_empty()
            && spec.extra.get("drain_keepalive") != Some(&serde_json::Value::Bool(false))
        {
            self.ctx.preload.as_deref()
        } else {
            None
        };
        let preload = super::rejections::preload(&spec, drain, self.ctx.preload.as_deref());
        let membership = worker.map(|w| super::cluster::Membership {
            listeners: self.ctx.listeners.clone(),
            app: spec.name.clone(),
            worker: w,
        });
        // Sockets passed the systemd way are bound (or shared) before the process starts.
        let mut sockets = Vec::new();
        for addr in &listen {
            let q = super::cluster::Query::from_address(addr)?;
            let key = format!("listen:{addr}");
            match self.ctx.listeners.join(
                &spec.name,
                &key,
                worker.unwrap_or(0),
                &q,
                &serde_json::Value::Null,
            ) {
                Ok(j) => sockets.push(j.socket),
                Err(errno) => {
                    let e = nix::errno::Errno::from_raw(errno);
                    return Err(format!("cannot listen on {addr}: {e:?} ({})", e.desc()));
                }
            }
        }
        let names = listen.iter().map(|a| a.replace([':', '/'], "_")).collect();
        let listen_fds = (!sockets.is_empty()).then(|| spawn::ListenFds::new(&sockets, names));
        let mut env = env;
        if let Some(p) = &self.ctx.notify_path {
            env.insert("NOTIFY_SOCKET".into(), p.clone());
        }
        let mut spawned = spawn::spawn(&spec, &env, worker, preload.as_deref(), listen_fds)
            .map_err(|e| {
                let argv0 = spawn::argv(&spec, None).remove(0);
                format!("cannot start {argv0}: {e}")
            })?;
        let pid = spawned.child.id().unwrap_or(0);
        if let Some(out) = spawned.child.stdout.take() {
            tokio::spawn(pump(out, out_sinks));
        }
        if let Some(err) = spawned.child.stderr.take() {
            tokio::spawn(pump(err, err_sinks));
        }
        let cluster_ctx = (cluster && listen.is_empty()).then(|| ClusterCtx {
            listeners: self.ctx.listeners.clone(),
            app: spec.name.clone(),
            worker: worker.unwrap_or(0),
        });
        let mut notify = None;
        let (ipc, ipc_rx) = match spawned.ipc.take().map(|s| node_ipc::start(s, cluster_ctx)) {
            Some(Ok((tx, rx))) => (Some(tx), Some(rx)),
            Some(Err(e)) => {
                tracing::warn!("App {}: no IPC channel: {e}", self.label());
                (None, None)
            }
            // No Node channel: readiness can come as READY=1 on $NOTIFY_SOCKET.
            None => {
                let (tx, rx) = mpsc::channel(8);
                notify = Some(self.ctx.notify.register(pid, tx));
                (None, Some(rx))
            }
        };
        let ready_deadline = ((cluster && listen.is_empty()) || spec.wait_ready)
            .then(|| Instant::now() + Duration::from_millis(spec.listen_timeout));
        Ok(Box::new(Running {
            child: spawned.child,
            pid,
            started: Instant::now(),
            ipc_rx,
            ipc,
            ready_deadline,
            waiters: Vec::new(),
            listen_error: None,
            _membership: membership,
            _notify: notify,
        }))
    }

    /// Spawn the child. `reply` is answered when it is online, or with the reason it failed.
    async fn launch(&self, reply: Option<Reply>) -> Phase {
        self.with(|s| {
            s.status = Status::Launching;
            s.exit_code = None;
        });
        let mut r = match self.spawn_child().await {
            Ok(r) => r,
            Err(e) => return self.fail_launch(e, reply),
        };
        r.waiters.extend(reply);
        let (pid, pid_path) = (r.pid, self.with(|s| s.paths.pid.clone()));
        let _ = tokio::task::spawn_blocking(move || write_pid_file(&pid_path, pid)).await;
        self.with(|s| {
            s.pid = pid;
            s.pm_uptime = now_ms();
        });
        if r.ready_deadline.is_none() {
            self.set_online(&mut r);
        }
        Phase::Running(r)
    }

    /// Zero-downtime replacement of a cluster worker (DESIGN §3): the new process takes this
    /// pm_id once it is ready, then the old one is retired in the background; `reply` is
    /// answered when the old one is gone. If the new one dies before it is ready, it is
    /// dropped and the old one keeps serving. Control messages sent meanwhile wait in the
    /// channel until the swap is done.
    async fn reload(&self, mut old: Box<Running>, reply: Reply) -> Phase {
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
                    let ready = match ev {
                        IpcEvent::Listening { .. } => !self.with(|s| s.spec.wait_ready),
                        IpcEvent::Ready => self.with(|s| s.spec.wait_ready),
                        IpcEvent::ListenError(e) => { new.listen_error = Some(e); false }
                        _ => false,
                    };
                    if ready { new.ready_deadline = None; }
                }
                // The old worker's events are not needed any more; keep its queue drained.
                Some(_) = recv_opt(&mut old.ipc_rx) => {}
                _ = sleep_opt(new.ready_deadline) => {
                    tracing::warn!("App {}: the new process was not ready within listen_timeout; considered ready", self.label());
                    new.ready_deadline = None;
                }
            }
        }
        new.ready_deadline = None;
        let (pid, pid_path, spec) = self.with(|s| {
            s.pid = new.pid;
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
        let label = self.label();
        tokio::spawn(async move {
            retire(*old, old_exit, &spec, &label).await;
            let _ = reply.send(Ok(()));
        });
        Phase::Running(new)
    }

    fn fail_launch(&self, reason: String, reply: Option<Reply>) -> Phase {
        tracing::error!("App {} failed to start: {reason}", self.label());
        self.with(|s| {
            s.status = Status::Errored;
            s.pid = 0;
            s.last_error = Some(reason.clone());
        });
        if let Some(r) = reply {
            let _ = r.send(Err(reason));
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
                s.spec.exec_mode == crate::spec::ExecMode::Cluster,
                s.spec.wait_ready,
            )
        });
        match ev {
            IpcEvent::Ready => {
                if r.ready_deadline.is_some() && wait_ready {
                    self.set_online(r);
                }
            }
            IpcEvent::Listening { .. } => {
                if r.ready_deadline.is_some() && !wait_ready {
                    self.set_online(r);
                }
            }
            IpcEvent::ListenError(e) => {
                tracing::error!("App {}: {e}", self.label());
                r.listen_error = Some(e);
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
            s.exit_code = code.or(signal.map(|s| 128 + s));
            s.paths.pid.clone()
        });
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(pid_path)).await;

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
                self.with(|s| s.restart_time += 1);
                self.launch(None).await
            }
            ExitDecision::Restart { delay_ms } => {
                tracing::info!("App {} will restart in {delay_ms}ms", self.label());
                self.with(|s| s.status = Status::WaitingRestart);
                Phase::Waiting(Instant::now() + Duration::from_millis(delay_ms))
            }
        }
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
        let code = terminate(&mut r, &spec, &self.label()).await;
        let pid_path = self.with(|s| {
            s.status = Status::Stopped;
            s.pid = 0;
            s.exit_code = code;
            s.paths.pid.clone()
        });
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(pid_path)).await;
        tracing::info!("App {} stopped", self.label());
    }
}

/// The stop sequence: the stop signal (or `'shutdown'`) to the tree, SIGKILL after
/// `kill_timeout`, and wait until no process of the tree is left. Returns the exit code.
async fn terminate(r: &mut Running, spec: &AppSpec, label: &str) -> Option<i32> {
    let pid = r.pid;
    let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout);
    // Descendants that left the process group (setsid) are found through /proc.
    let tree = if spec.treekill {
        tokio::task::spawn_blocking(move || super::metrics::tree_pids(pid))
            .await
            .unwrap_or_default()
    } else {
        vec![pid]
    };
    match (&r.ipc, spec.shutdown_with_message) {
        (Some(ipc), true) => ipc.send(serde_json::Value::String("shutdown".into())),
        _ => signal_tree(pid, &tree, spec.treekill, Signal::SIGINT),
    }
    let status = match tokio::time::timeout_at(deadline, r.child.wait()).await {
        Ok(st) => st,
        Err(_) => {
            tracing::warn!(
                "App {label} still alive after kill_timeout ({} ms): SIGKILL",
                spec.kill_timeout
            );
            signal_tree(pid, &tree, spec.treekill, Signal::SIGKILL);
            r.child.wait().await
        }
    };
    if spec.treekill {
        // The main process is gone; wait (bounded) for the rest of its group.
        let mut killed = false;
        // /proc reads stay off the runtime's threads.
        let alive = |tree: Vec<u32>| async move {
            tokio::task::spawn_blocking(move || group_alive(pid, &tree))
                .await
                .unwrap_or(false)
        };
        while alive(tree.clone()).await {
            if Instant::now() >= deadline && !killed {
                signal_tree(pid, &tree, true, Signal::SIGKILL);
                killed = true;
            } else if Instant::now() >= deadline + Duration::from_secs(2) {
                tracing::error!("App {label}: some processes of its tree survive SIGKILL");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    status.ok().and_then(|s| s.code())
}

/// Retire a cluster worker replaced by a reload: it stops taking connections (cluster
/// `disconnect`: its servers close and, with the drain preload, kept-alive connections finish
/// with `Connection: close`); once its channel closes (drained) or `kill_timeout` passes, the
/// usual stop sequence follows.
async fn retire(
    mut old: Running,
    exited: Option<std::io::Result<std::process::ExitStatus>>,
    spec: &AppSpec,
    label: &str,
) {
    if exited.is_some() {
        return;
    }
    if let Some(ipc) = &old.ipc {
        ipc.disconnect();
        let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout);
        let mut events = old.ipc_rx.take();
        let drained = async {
            while let Some(ev) = recv_opt(&mut events).await {
                if matches!(ev, IpcEvent::Closed) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = old.child.wait() => {
                tracing::info!("App {label}: retired process {} exited after disconnect", old.pid);
                return;
            }
            _ = drained => tracing::info!("App {label}: retired process {} drained its connections", old.pid),
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("App {label}: retired process {} still had connections after kill_timeout", old.pid);
            }
        }
    }
    terminate(&mut old, spec, label).await;
}

/// The `listen` option: addresses whose sockets the daemon passes the systemd way.
pub fn listen_addresses(spec: &AppSpec) -> Vec<String> {
    match spec.extra.get("listen") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn signal_tree(pid: u32, tree: &[u32], treekill: bool, sig: Signal) {
    if !treekill {
        let _ = kill(Pid::from_raw(pid as i32), sig);
        return;
    }
    // Deepest first, as PM2 does, then the whole group at once.
    for &p in tree.iter().rev() {
        let _ = kill(Pid::from_raw(p as i32), sig);
    }
    let _ = killpg(Pid::from_raw(pid as i32), sig);
}

fn group_alive(pgid: u32, tree: &[u32]) -> bool {
    if killpg(Pid::from_raw(pgid as i32), None).is_ok() {
        return true;
    }
    // Processes that left the group: alive unless gone or a zombie awaiting its parent.
    tree.iter().skip(1).any(|&p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with(|c| c != 'Z')))
            .unwrap_or(false)
    })
}

pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

fn write_pid_file(path: &str, pid: u32) {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(p, pid.to_string()) {
        tracing::warn!("cannot write pid file {path}: {e}");
    }
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
