//! `update` in place, the instance's part: the old daemon's task describes its running process
//! and hands its fds over ([`Instance::hand_over`]), then parks until the exec; the new
//! daemon's task rebuilds the same process's `Running` around the inherited fds
//! ([`Instance::run_adopted`]): same pid, log pumps on the same pipes, IPC reader on the same
//! channel (with what was read of a partial message), stdin, cluster membership.

use super::{now_ms, Held, Instance, Phase, Running};
use crate::instances::handoff::{self, HandedChild, Keep, Kind};
use crate::logs::pump_pipe;
use crate::node::ipc::{self as node_ipc, ClusterCtx};
use crate::processes::child::ChildHandle;
use crate::processes::handle::Process;
use pmr_core::protocol::Status;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Hold the process (and its fds, memberships and registrations) until the exec: nothing of
/// it may be closed, left or untracked now.
pub(super) async fn park(r: Option<Box<Running>>) -> Phase {
    let _held = r;
    std::future::pending().await
}

impl Instance {
    /// Describe `r` for the next daemon, its fds kept for the exec. `None`: it cannot be
    /// handed over (no start time known); the next daemon stops and starts it again.
    pub(super) async fn hand_over(&self, r: &mut Running) -> Option<HandedChild> {
        let start_ticks = r.held.start_ticks?;
        // The reader stops between two reads: what it has of a message goes with the fd.
        let frozen = match &r.ipc {
            Some(ipc) => ipc.freeze().await,
            None => None,
        };
        let keep = std::mem::take(&mut r.held.keep);
        let ipc_fd = match frozen {
            Some(_) => keep.ipc.map(handoff::cross),
            // The channel had ended: nothing to read on.
            None => None,
        };
        Some(HandedChild {
            id: self.id,
            pid: r.pid,
            start_ticks,
            pm_uptime: self.with(|s| s.pm_uptime),
            ready: r.ready_deadline.is_none(),
            worker: r.held.membership.as_ref().map(|m| m.worker),
            out_fd: keep.out.map(handoff::cross),
            err_fd: keep.err.map(handoff::cross),
            stdin_fd: keep.stdin.map(handoff::cross),
            ipc_fd,
            ipc: frozen.unwrap_or_default(),
            notify: r.held.notify.is_some(),
            axm: r.axm.as_ref().map(|a| a.snapshot()).unwrap_or_default(),
        })
    }

    /// The new daemon's task for an instance whose process was handed over: online with it,
    /// or, if it cannot be taken over, started afresh (the process, if still ours, killed).
    pub async fn run_adopted(
        self,
        rx: crate::instances::instance::CtlReceiver,
        h: HandedChild,
        taken_over: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) {
        let (pid, ticks) = (h.pid, h.start_ticks);
        let phase = match self.adopt(h).await {
            Ok(r) => Phase::Running(r),
            Err(e) => {
                tracing::error!(
                    "App {}: process {pid} not taken over ({e}): starting it again",
                    self.label()
                );
                let _ = tokio::task::spawn_blocking(move || kill_if_same(pid, ticks)).await;
                self.launch(None).await
            }
        };
        if let Some(t) = taken_over {
            let _ = t.send(Ok(()));
        }
        self.run_in(phase, rx).await
    }

    async fn adopt(&self, h: HandedChild) -> Result<Box<Running>, String> {
        let (pid, ticks) = (h.pid, h.start_ticks);
        let me = std::process::id();
        let same = tokio::task::spawn_blocking(move || {
            pmr_core::procfs::read_stat(pid).is_some_and(|s| s.start_ticks == ticks && s.ppid == me)
        })
        .await
        .unwrap_or(false);
        if !same {
            return Err("gone, or not our child".into());
        }
        let child = ChildHandle::new(pid).map_err(|e| format!("pidfd: {e}"))?;
        let take = |fd: Option<i32>, kind| fd.and_then(|fd| handoff::take_fd(fd, kind));
        let (out, err) = (take(h.out_fd, Kind::Pipe), take(h.err_fd, Kind::Pipe));
        let (stdin, ipc) = (take(h.stdin_fd, Kind::Pipe), take(h.ipc_fd, Kind::Socket));
        let keep = Keep {
            out: out.as_ref().and_then(handoff::dup),
            err: err.as_ref().and_then(handoff::dup),
            stdin: stdin.as_ref().and_then(handoff::dup),
            ipc: ipc.as_ref().and_then(handoff::dup),
        };
        let (spec, paths) = self.with(|s| (s.spec.clone(), s.paths.clone()));
        let (ctx, log_spec, id) = (self.ctx.clone(), spec.clone(), self.id);
        let sinks = tokio::task::spawn_blocking(move || {
            let p = &paths;
            ctx.sinks
                .open_app(&log_spec, id, &p.out, &p.err, p.combined.as_deref())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let (out_sinks, err_sinks) = sinks.map_err(|e| format!("cannot open log file {e}"))?;
        if let Some(out) = out {
            tokio::spawn(pump_pipe(Ok(out), out_sinks));
        }
        if let Some(err) = err {
            tokio::spawn(pump_pipe(Ok(err), err_sinks));
        }
        let stdin = stdin.and_then(|s| {
            crate::processes::stdin::Feed::new(&self.ctx.stdin, self.id, pid, s).ok()
        });
        let cluster = spec.exec_mode == pmr_core::spec::ExecMode::Cluster;
        let cluster_ctx = (cluster && spec.listen.is_empty()).then(|| ClusterCtx {
            listeners: self.ctx.listeners.clone(),
            app: spec.name.clone(),
            worker: h.worker.unwrap_or(0),
            round_robin: spec.round_robin(),
        });
        let mut notify = None;
        let agent = std::sync::Arc::new(crate::node::axm::Agent::restore(self.label(), h.axm));
        super::launch::relay(&agent, &self.ctx, self.id, &spec);
        let (ipc, ipc_rx) = match ipc {
            Some(fd) => {
                let stream = std::os::unix::net::UnixStream::from(fd);
                match node_ipc::resume(stream, cluster_ctx, agent.clone(), h.ipc) {
                    Ok((tx, rx)) => (Some(tx), Some(rx)),
                    Err(e) => {
                        tracing::warn!("App {}: no IPC channel: {e}", self.label());
                        (None, None)
                    }
                }
            }
            None if h.notify => {
                let (tx, rx) = mpsc::channel(8);
                notify = Some(self.ctx.notify.register(pid, tx));
                (None, Some(rx))
            }
            None => (None, None),
        };
        let membership = h.worker.map(|w| crate::node::cluster::Membership {
            listeners: self.ctx.listeners.clone(),
            worker: w,
        });
        let ready_deadline = (!h.ready).then(|| {
            let ms = pmr_core::knobs::get().listen_timeout(spec.listen_timeout);
            Instant::now() + Duration::from_millis(ms)
        });
        let ran = Duration::from_millis((now_ms() - h.pm_uptime).max(0) as u64);
        let started = Instant::now().checked_sub(ran).unwrap_or_else(Instant::now);
        let axm = ipc.is_some().then_some(agent);
        self.with(|s| {
            s.pid = pid;
            s.pm_uptime = h.pm_uptime;
            s.axm = axm.clone();
            s.status = if h.ready {
                Status::Online
            } else {
                Status::Launching
            };
        });
        tracing::info!("App {} taken over: pid {pid}", self.label());
        Ok(Box::new(Running {
            child: Box::new(child) as Box<dyn Process>,
            pid,
            started,
            ipc_rx,
            ipc,
            ready_deadline,
            waiters: Vec::new(),
            listen_error: None,
            held: Held {
                tracked: Some(self.ctx.table.track(pid, ticks, self.id)),
                membership,
                notify,
                stdin,
                start_ticks: Some(ticks),
                keep,
            },
            axm,
        }))
    }
}

/// The handed process could not be taken over: it must not run on unmanaged.
fn kill_if_same(pid: u32, ticks: u64) {
    if pmr_core::procfs::read_stat(pid).is_some_and(|s| s.start_ticks == ticks && !s.is_zombie()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        // Reaped here if it is our child (ECHILD at once otherwise): no zombie stays.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    }
}
