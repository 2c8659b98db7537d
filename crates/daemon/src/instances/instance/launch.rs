//! Starting one process of an instance. The instance task asks its [`Launcher`]: the real one,
//! [`Spawner`], opens the log sinks, forks and execs the child, starts its log pumps, its IPC
//! channel or notify registration, cluster membership and `listen` sockets; the state machine's
//! tests give a fake one.

use super::{Ctx, Instance, Paths, Running};
use crate::logs::pump_pipe;
use crate::node::axm::Agent;
use crate::node::ipc::{self as node_ipc, ClusterCtx, IpcEvent, IpcHandle};
use crate::processes::handle::{BoxFuture, Process};
use crate::processes::spawn;
use pmr_core::spec::AppSpec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

impl Instance {
    /// Start a process for this instance (see [`Launcher`]), launching until the deadline it
    /// gets in cluster mode or with `wait_ready`. Does not touch the instance's visible state
    /// except its env.
    pub(super) async fn spawn_child(&self) -> Result<Box<Running>, String> {
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
        let label = self.label();
        tracing::info!("App {label} starting in -{} mode-", spec.exec_mode.short());
        let app = App {
            id: self.id,
            spec: &spec,
            paths: &paths,
            env,
            label: &label,
        };
        let started = self.ctx.launcher.launch(&self.ctx, app).await?;
        let cluster = spec.exec_mode == pmr_core::spec::ExecMode::Cluster;
        let ready_deadline = ((cluster && spec.listen.is_empty()) || spec.wait_ready).then(|| {
            let ms = pmr_core::knobs::get().listen_timeout(spec.listen_timeout);
            Instant::now() + Duration::from_millis(ms)
        });
        Ok(Box::new(Running {
            pid: started.process.pid(),
            child: started.process,
            started: Instant::now(),
            ipc_rx: started.events,
            axm: started.axm,
            ipc: started.ipc,
            ready_deadline,
            waiters: Vec::new(),
            listen_error: None,
            held: started.held,
        }))
    }
}

/// Starts the processes of instances.
pub trait Launcher: Send + Sync {
    /// Start a process for `app`. Touches nothing of the instance's state.
    fn launch<'a>(&'a self, ctx: &'a Ctx, app: App<'a>) -> BoxFuture<'a, Result<Started, String>>;
}

/// What a launch starts.
pub struct App<'a> {
    pub id: u32,
    pub spec: &'a Arc<AppSpec>,
    pub paths: &'a Paths,
    /// The app's environment with PM2's variables.
    pub env: pmr_core::env_map::Env,
    /// `[name:id]`, for the log.
    pub label: &'a str,
}

/// A started process and what comes with it.
pub struct Started {
    pub process: Box<dyn Process>,
    /// Its Node IPC channel.
    pub ipc: Option<IpcHandle>,
    /// What it says on that channel, or `READY=1` on `$NOTIFY_SOCKET`.
    pub events: Option<mpsc::Receiver<IpcEvent>>,
    /// What the process says through @pm2/io (Node apps, with their IPC channel).
    pub axm: Option<Arc<Agent>>,
    pub held: Held,
}

/// What the daemon holds for a process besides the process itself, until the process is
/// dropped (after it was reaped).
#[derive(Default)]
pub struct Held {
    /// In the table on disk.
    pub tracked: Option<crate::instances::table_file::Tracked>,
    /// Its cluster membership (and so its share of the listening sockets).
    pub membership: Option<crate::node::cluster::Membership>,
    pub notify: Option<crate::processes::notify::Registration>,
    /// The stdin pipe (fork mode).
    pub stdin: Option<crate::processes::stdin::Feed>,
    /// Field 22 of its /proc stat (`update` hands it over with its pid).
    pub start_ticks: Option<u64>,
    /// Copies of our ends of its pipes and channel, for `update` (see `handoff.rs`).
    pub keep: crate::instances::handoff::Keep,
}

/// The real launcher: fork and exec.
pub struct Spawner;

impl Launcher for Spawner {
    fn launch<'a>(&'a self, ctx: &'a Ctx, app: App<'a>) -> BoxFuture<'a, Result<Started, String>> {
        Box::pin(spawn_child(ctx, app))
    }
}

async fn spawn_child(ctx: &Ctx, app: App<'_>) -> Result<Started, String> {
    let App {
        id,
        spec,
        paths,
        env,
        label,
    } = app;
    let (sinks, log_paths, log_spec) = (ctx.sinks.clone(), paths.clone(), spec.clone());
    let opened = tokio::task::spawn_blocking(move || {
        let p = &log_paths;
        sinks.open_app(&log_spec, id, &p.out, &p.err, p.combined.as_deref())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let (out_sinks, err_sinks) = opened.map_err(|e| format!("cannot open log file {e}"))?;

    let cluster = spec.exec_mode == pmr_core::spec::ExecMode::Cluster;
    let listen = &spec.listen;
    let worker =
        (cluster || !listen.is_empty()).then(|| ctx.next_worker.fetch_add(1, Ordering::SeqCst));
    let drain = if cluster && listen.is_empty() && spec.drain_keepalive {
        ctx.preload.as_deref()
    } else {
        None
    };
    let preload = crate::node::rejections::preload(spec, drain, ctx.preload.as_deref());
    let membership = worker.map(|w| crate::node::cluster::Membership {
        listeners: ctx.listeners.clone(),
        worker: w,
    });
    // Sockets passed the systemd way are bound (or shared) before the process starts.
    let mut sockets = Vec::new();
    for addr in listen {
        let q = crate::node::cluster::Query::from(addr);
        let key = format!("listen:{addr}");
        // Not shared with other apps: a `listen` socket is the app's, as a port is a program's.
        match ctx.listeners.join(
            crate::node::cluster::Owner::App(spec.name.clone()),
            &key,
            worker.unwrap_or(0),
            &q,
            &serde_json::Value::Null,
            false,
        ) {
            Ok(j) => sockets.push(j.socket),
            Err(errno) => {
                let e = nix::errno::Errno::from_raw(errno);
                return Err(format!("cannot listen on {addr}: {e:?} ({})", e.desc()));
            }
        }
    }
    let names = listen
        .iter()
        .map(|a| a.to_string().replace([':', '/'], "_"))
        .collect();
    let mut env = env;
    if let Some(p) = &ctx.notify_path {
        env.insert("NOTIFY_SOCKET".into(), p.clone());
    }
    // fork + exec blocks until the child has exec'd (std waits on a close-on-exec pipe),
    // and a PATH search reads directories: off the runtime's threads, so a burst of
    // launches (resurrect, `start` of many apps) runs side by side instead of two at a
    // time behind processes that are busy booting.
    let spawn_spec = spec.clone();
    let mut spawned = tokio::task::spawn_blocking(move || {
        let listen_fds = (!sockets.is_empty()).then(|| spawn::ListenFds::new(&sockets, names));
        spawn::spawn(&spawn_spec, &env, worker, preload.as_deref(), listen_fds)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    .map_err(|e| {
        let argv0 = spawn::argv(spec, None).remove(0);
        format!("cannot start {argv0}: {e}")
    })?;
    let pid = spawned.child.id();
    // Recorded before anything else can fail: a daemon that dies from here on leaves a
    // table naming this process (and its start time, so a reused pid is never touched).
    // The child is not reaped before `Running` is dropped, so its /proc entry is its own.
    let start_ticks = tokio::task::spawn_blocking(move || pmr_core::procfs::read_stat(pid))
        .await
        .ok()
        .flatten()
        .map(|s| s.start_ticks);
    let tracked = start_ticks.map(|t| ctx.table.track(pid, t, id));
    // Our own copies, for an `update` that keeps this process (see `handoff.rs`).
    let dup =
        |fd: &Option<std::os::fd::OwnedFd>| fd.as_ref().and_then(crate::instances::handoff::dup);
    let mut keep = crate::instances::handoff::Keep {
        out: dup(&spawned.stdout),
        err: dup(&spawned.stderr),
        stdin: dup(&spawned.stdin),
        ipc: spawned
            .ipc
            .as_ref()
            .and_then(crate::instances::handoff::dup),
    };
    let stdin = spawned.stdin.take().and_then(|s| {
        crate::processes::stdin::Feed::new(&ctx.stdin, id, pid, s)
            .map_err(|e| tracing::warn!("App {label}: no stdin: {e}"))
            .ok()
    });
    if let Some(out) = spawned.stdout.take() {
        tokio::spawn(pump_pipe(Ok(out), out_sinks));
    }
    if let Some(err) = spawned.stderr.take() {
        tokio::spawn(pump_pipe(Ok(err), err_sinks));
    }
    let cluster_ctx = (cluster && listen.is_empty()).then(|| ClusterCtx {
        listeners: ctx.listeners.clone(),
        app: spec.name.clone(),
        worker: worker.unwrap_or(0),
        round_robin: spec.round_robin(),
    });
    let mut notify = None;
    let agent = Arc::new(Agent::new(label.to_string()));
    relay(&agent, ctx, id, spec);
    let (ipc, events) = match spawned
        .ipc
        .take()
        .map(|s| node_ipc::start(s, cluster_ctx, agent.clone()))
    {
        Some(Ok((tx, rx))) => (Some(tx), Some(rx)),
        Some(Err(e)) => {
            tracing::warn!("App {label}: no IPC channel: {e}");
            keep.ipc = None;
            (None, None)
        }
        // No Node channel: readiness can come as READY=1 on $NOTIFY_SOCKET.
        None => {
            let (tx, rx) = mpsc::channel(8);
            notify = Some(ctx.notify.register(pid, tx));
            (None, Some(rx))
        }
    };
    Ok(Started {
        process: Box::new(spawned.child),
        axm: ipc.is_some().then_some(agent),
        ipc,
        events,
        held: Held {
            tracked,
            membership,
            notify,
            stdin,
            start_ticks,
            keep,
        },
    })
}

pub(super) fn write_pid_file(path: &str, pid: u32) {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(p, pid.to_string()) {
        tracing::warn!("cannot write pid file {path}: {e}");
    }
}

/// The app's messages to PM2's bus too.
pub(super) fn relay(agent: &Agent, ctx: &Ctx, id: u32, spec: &AppSpec) {
    let bus = ctx.bus.clone();
    let app = crate::bus::AppId {
        pm_id: id,
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
    };
    agent.relay_to(Box::new(move |ty, data| bus.from_app(&app, Some(ty), data)));
}
