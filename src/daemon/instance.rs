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
use super::node_ipc::{self, IpcEvent, IpcWriter};
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

#[derive(Debug)]
pub enum Ctl {
    Start(Reply),
    Stop(Reply),
    /// Stop (if running) and start again; `env` is merged over the stored env (`--update-env`).
    Restart {
        env: Option<BTreeMap<String, String>>,
        reply: Reply,
    },
    /// Stop and end the task.
    Delete(Reply),
    Signal(i32, Reply),
    Reset(Reply),
}

/// What the daemon-wide context offers every instance.
pub struct Ctx {
    pub home: crate::paths::Home,
    pub sinks: Arc<Sinks>,
    /// Set by `kill`: exits are no longer restarted.
    pub shutting_down: AtomicBool,
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
    ipc_tx: Option<IpcWriter>,
    /// Set while launching with `wait_ready`: online anyway when it passes.
    ready_deadline: Option<Instant>,
    /// Start requests answered once the instance is online.
    waiters: Vec<Reply>,
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
                    Some(ev) = recv_opt(&mut r.ipc_rx) => {
                        self.on_ipc(&mut r, ev);
                        Phase::Running(r)
                    }
                    _ = sleep_opt(r.ready_deadline) => {
                        tracing::warn!("App {} sent no 'ready' within listen_timeout; considered online", self.label());
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
            Ctl::Start(reply) | Ctl::Restart { env: None, reply } => {
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Restart {
                env: Some(env),
                reply,
            } => {
                self.merge_env(env);
                self.reset_for_manual_start();
                self.launch(Some(reply)).await
            }
            Ctl::Stop(reply) => {
                self.with(|s| s.status = Status::Stopped);
                let _ = reply.send(Ok(()));
                Phase::Idle
            }
            Ctl::Delete(reply) => {
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
            Ctl::Restart { env, reply } => {
                self.stop_running(*r).await;
                if let Some(env) = env {
                    self.merge_env(env);
                }
                self.reset_for_manual_start();
                self.with(|s| s.restart_time += 1);
                self.launch(Some(reply)).await
            }
            Ctl::Delete(reply) => {
                self.stop_running(*r).await;
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

    fn merge_env(&self, env: BTreeMap<String, String>) {
        self.with(|s| {
            let spec = Arc::make_mut(&mut s.spec);
            spec.env.extend(env);
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

    /// Spawn the child. `reply` is answered when it is online, or with the reason it failed.
    async fn launch(&self, reply: Option<Reply>) -> Phase {
        let (spec, paths, env) = self.with(|s| {
            s.status = Status::Launching;
            s.exit_code = None;
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
        let (out_sinks, err_sinks) = match sinks {
            Ok(s) => s,
            Err(e) => return self.fail_launch(format!("cannot open log file {e}"), reply),
        };

        let mut spawned = match spawn::spawn(&spec, &env, true) {
            Ok(s) => s,
            Err(e) => {
                let argv0 = spawn::argv(&spec).remove(0);
                return self.fail_launch(format!("cannot start {argv0}: {e}"), reply);
            }
        };
        let pid = spawned.child.id().unwrap_or(0);
        if let Some(out) = spawned.child.stdout.take() {
            tokio::spawn(pump(out, out_sinks));
        }
        if let Some(err) = spawned.child.stderr.take() {
            tokio::spawn(pump(err, err_sinks));
        }
        let (ipc_tx, ipc_rx) = match spawned.ipc.take().map(node_ipc::start) {
            Some(Ok((tx, rx))) => (Some(tx), Some(rx)),
            Some(Err(e)) => {
                tracing::warn!("App {}: no IPC channel: {e}", self.label());
                (None, None)
            }
            None => (None, None),
        };
        let pid_path = paths.pid.clone();
        let _ = tokio::task::spawn_blocking(move || write_pid_file(&pid_path, pid)).await;

        self.with(|s| {
            s.pid = pid;
            s.pm_uptime = now_ms();
        });
        let mut r = Box::new(Running {
            child: spawned.child,
            pid,
            started: Instant::now(),
            ipc_rx,
            ipc_tx,
            ready_deadline: None,
            waiters: reply.into_iter().collect(),
        });
        if spec.wait_ready {
            r.ready_deadline = Some(Instant::now() + Duration::from_millis(spec.listen_timeout));
        } else {
            self.set_online(&mut r);
        }
        Phase::Running(r)
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

    fn on_ipc(&self, r: &mut Running, ev: IpcEvent) {
        match ev {
            IpcEvent::Ready => {
                if r.ready_deadline.is_some() {
                    self.set_online(r);
                }
            }
            IpcEvent::Message(_) => {}
            IpcEvent::Garbage(g) => {
                tracing::warn!("App {} sent a malformed IPC message: {g:?}", self.label());
            }
        }
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
        let reason = match (code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by {}", signal_name(s)),
            _ => "exited".to_string(),
        };
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

    /// The stop sequence: the stop signal (or `'shutdown'`) to the tree, SIGKILL after
    /// `kill_timeout`, and wait until no process of the tree is left.
    async fn stop_running(&self, mut r: Running) {
        let spec = self.with(|s| {
            s.status = Status::Stopping;
            s.spec.clone()
        });
        for w in r.waiters.drain(..) {
            let _ = w.send(Err("stopped before it was ready".into()));
        }
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
        let by_message = spec.shutdown_with_message && r.ipc_tx.is_some();
        if by_message {
            let msg = serde_json::Value::String("shutdown".into());
            if let Some(tx) = r.ipc_tx.as_mut() {
                let _ = tx.send(&msg).await;
            }
        } else {
            signal_tree(pid, &tree, spec.treekill, Signal::SIGINT);
        }

        let exited = tokio::time::timeout_at(deadline, r.child.wait()).await;
        let mut status = match exited {
            Ok(st) => Some(st),
            Err(_) => {
                tracing::warn!(
                    "App {} still alive after kill_timeout ({} ms): SIGKILL",
                    self.label(),
                    spec.kill_timeout
                );
                signal_tree(pid, &tree, spec.treekill, Signal::SIGKILL);
                Some(r.child.wait().await)
            }
        };
        if spec.treekill {
            // The main process is gone; wait (bounded) for the rest of its group.
            let mut killed = false;
            while group_alive(pid, &tree) {
                if Instant::now() >= deadline && !killed {
                    signal_tree(pid, &tree, true, Signal::SIGKILL);
                    killed = true;
                } else if Instant::now() >= deadline + Duration::from_secs(2) {
                    tracing::error!(
                        "App {}: some processes of its tree survive SIGKILL",
                        self.label()
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let code = status.take().and_then(|s| s.ok()).and_then(|s| s.code());
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
