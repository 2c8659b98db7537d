//! Starting one process of an instance: log sinks, the child, its log pumps, its IPC channel
//! or notify registration, cluster membership and `listen` sockets.

use super::{Instance, Running};
use crate::logs::pump_pipe;
use crate::node::ipc::{self as node_ipc, ClusterCtx};
use crate::processes::spawn;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

impl Instance {
    /// Start a child for this instance: sinks, process, log pumps, IPC. Does not touch the
    /// instance's visible state except its env.
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

        let cluster = spec.exec_mode == pmr_core::spec::ExecMode::Cluster;
        let listen = &spec.listen;
        let worker = (cluster || !listen.is_empty())
            .then(|| self.ctx.next_worker.fetch_add(1, Ordering::SeqCst));
        let drain = if cluster && listen.is_empty() && spec.drain_keepalive {
            self.ctx.preload.as_deref()
        } else {
            None
        };
        let preload = crate::node::rejections::preload(&spec, drain, self.ctx.preload.as_deref());
        let membership = worker.map(|w| crate::node::cluster::Membership {
            listeners: self.ctx.listeners.clone(),
            worker: w,
        });
        // Sockets passed the systemd way are bound (or shared) before the process starts.
        let mut sockets = Vec::new();
        for addr in listen {
            let q = crate::node::cluster::Query::from(addr);
            let key = format!("listen:{addr}");
            // Not shared with other apps: a `listen` socket is the app's, as a port is a program's.
            match self.ctx.listeners.join(
                crate::node::cluster::Owner::App(spec.name.clone()),
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
        let names = listen
            .iter()
            .map(|a| a.to_string().replace([':', '/'], "_"))
            .collect();
        let mut env = env;
        if let Some(p) = &self.ctx.notify_path {
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
            let argv0 = spawn::argv(&spec, None).remove(0);
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
        let tracked = start_ticks.map(|t| self.ctx.table.track(pid, t, self.id));
        // Our own copies, for an `update` that keeps this process (see `handoff.rs`).
        let dup =
            |fd: &Option<std::os::fd::OwnedFd>| fd.as_ref().and_then(crate::update::handoff::dup);
        let mut keep = crate::update::handoff::Keep {
            out: dup(&spawned.stdout),
            err: dup(&spawned.stderr),
            stdin: dup(&spawned.stdin),
            ipc: spawned.ipc.as_ref().and_then(crate::update::handoff::dup),
        };
        let stdin = spawned.stdin.take().and_then(|s| {
            crate::processes::stdin::Feed::new(self.id, pid, s)
                .map_err(|e| tracing::warn!("App {}: no stdin: {e}", self.label()))
                .ok()
        });
        if let Some(out) = spawned.stdout.take() {
            tokio::spawn(pump_pipe(Ok(out), out_sinks));
        }
        if let Some(err) = spawned.stderr.take() {
            tokio::spawn(pump_pipe(Ok(err), err_sinks));
        }
        let cluster_ctx = (cluster && listen.is_empty()).then(|| ClusterCtx {
            listeners: self.ctx.listeners.clone(),
            app: spec.name.clone(),
            worker: worker.unwrap_or(0),
        });
        let mut notify = None;
        let agent = std::sync::Arc::new(crate::node::axm::Agent::new(self.label()));
        let (ipc, ipc_rx) = match spawned
            .ipc
            .take()
            .map(|s| node_ipc::start(s, cluster_ctx, agent.clone()))
        {
            Some(Ok((tx, rx))) => (Some(tx), Some(rx)),
            Some(Err(e)) => {
                tracing::warn!("App {}: no IPC channel: {e}", self.label());
                keep.ipc = None;
                (None, None)
            }
            // No Node channel: readiness can come as READY=1 on $NOTIFY_SOCKET.
            None => {
                let (tx, rx) = mpsc::channel(8);
                notify = Some(self.ctx.notify.register(pid, tx));
                (None, Some(rx))
            }
        };
        let ready_deadline = ((cluster && listen.is_empty()) || spec.wait_ready).then(|| {
            let ms = pmr_core::knobs::get().listen_timeout(spec.listen_timeout);
            Instant::now() + Duration::from_millis(ms)
        });
        Ok(Box::new(Running {
            child: spawned.child,
            pid,
            started: Instant::now(),
            ipc_rx,
            axm: ipc.is_some().then_some(agent),
            ipc,
            ready_deadline,
            waiters: Vec::new(),
            listen_error: None,
            _tracked: tracked,
            _membership: membership,
            _notify: notify,
            _stdin: stdin,
            start_ticks,
            keep,
        }))
    }
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
