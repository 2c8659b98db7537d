//! A daemon that finds the table of one that died (`table_file.rs`) puts it back before it
//! answers anyone: the processes the dead daemon left are stopped, then every instance is
//! registered under its old id with its spec and counters, and those that were online are
//! started again (once each).
//!
//! Why stop and restart rather than adopt: a process left behind has its stdout/stderr on
//! pipes whose reading end died with the old daemon (its logs would be lost, and its next
//! write gets EPIPE/SIGPIPE), it is not our child (its exit cannot be waited for, so no
//! restart policy), and cluster workers exit by themselves when their IPC channel closes.
//! An adopted process would be a process pmr cannot see or log: the honest choice is to end
//! it (stop signal, `kill_timeout`, SIGKILL, its whole process group) and start it afresh.
//! A process is only touched when its pid *and* start time match (see `leftovers.rs`).
//!
//! `update` is the exception: the daemon that replaces itself is the same process, so its
//! apps are still its children, with their pipes and channels handed over across the exec;
//! those processes are taken over (`instance/adopt.rs`), not stopped.

use crate::daemon::Daemon;
use crate::instances::handoff::HandedChild;
use crate::instances::instance::{Ctl, Instance, Paths, Shared};
use crate::instances::registry::Entry;
use crate::instances::table_file::{self, Loaded, Record, Table, Wanted};
use crate::processes::spawn;
use crate::requests::register::default_paths;
use pmr_core::protocol::Status;
use std::sync::{Arc, Mutex};

/// How long the restore holds the first client back for apps to come online.
const RESTORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Restore what `load` found, then start writing the table. Called before the server accepts
/// its first client, so the first `pmr ls` after a crash already sees the apps.
///
/// `handed`: the processes a replaced daemon handed over (`update` in place); those of
/// instances that are to be online are taken over, not stopped and started again.
pub async fn restore(d: &Arc<Daemon>, loaded: Loaded, handed: Vec<HandedChild>) {
    if !matches!(loaded, Loaded::Table(_)) {
        // No table to match them with: they go as leftovers.
        release(handed.iter());
    }
    match loaded {
        Loaded::Table(t) => restore_table(d, t, handed).await,
        Loaded::Absent => start_writer(d),
        Loaded::Corrupt { reason, kept } => {
            tracing::warn!(
                "the process table of the previous daemon is unreadable ({reason}): starting with no apps; the file is kept as {}",
                kept.display()
            );
            // Its apps cannot come back, but its processes must not run on unmanaged: those
            // the /proc scan finds (this home, a pm_id, leading their group) are stopped.
            let none = Table {
                format: table_file::FORMAT,
                daemon_pid: 0,
                daemon_start_ticks: 0,
                apps: Vec::new(),
                processes: Vec::new(),
            };
            let home = d.ctx.home.root.to_string_lossy().into_owned();
            let stopped = crate::recovery::leftovers::stop_all(&none, &home, &[]).await;
            if stopped > 0 {
                tracing::info!("stopped {stopped} process(es) left by the previous daemon");
            }
            start_writer(d);
        }
    }
}

async fn restore_table(d: &Arc<Daemon>, t: Table, handed: Vec<HandedChild>) {
    tracing::info!(
        "restoring the process table of daemon {} ({} instance(s), {} process(es) left behind)",
        t.daemon_pid,
        t.apps.len(),
        t.processes.len()
    );
    let home = d.ctx.home.root.to_string_lossy().into_owned();
    // Taken over: the handed processes of instances that are to be online.
    let mut handed: std::collections::HashMap<u32, HandedChild> = handed
        .into_iter()
        .filter(|h| {
            t.apps
                .iter()
                .any(|a| a.id == h.id && a.wanted == Wanted::Online)
        })
        .map(|h| (h.id, h))
        .collect();
    let keep: Vec<u32> = handed.values().map(|h| h.pid).collect();
    // A daemon that handed every process of its table over had settled first (see
    // `requests/update.rs`): nothing is left over, and the /proc scan is skipped.
    let all_handed = !keep.is_empty() && t.processes.iter().all(|p| keep.contains(&p.pid));
    let stopped = if all_handed {
        0
    } else {
        crate::recovery::leftovers::stop_all(&t, &home, &keep).await
    };
    // The processes of the replaced daemon that are not taken over are still our children:
    // reaped once they are gone.
    let others = t
        .processes
        .iter()
        .map(|p| p.pid)
        .filter(|p| !keep.contains(p));
    reap_later(others.collect());
    if stopped > 0 {
        tracing::info!("stopped {stopped} process(es) left by the previous daemon");
    }
    let mut waits = Vec::new();
    let mut tasks = Vec::new();
    {
        let mut reg = d.registry.lock().unwrap();
        for rec in t.apps {
            let h = handed.remove(&rec.id);
            let (entry, task, wait) = rebuild(d, rec, &home, h);
            reg.restore(task.id, entry);
            tasks.push(task);
            waits.extend(wait);
        }
    }
    // From here the old table (whose processes are gone) is replaced by this daemon's, before
    // any process starts: a crash now leaves a table naming the new processes.
    start_writer(d);
    for t in tasks {
        match t.handed {
            Some(h) => tokio::spawn(t.inst.run_adopted(t.rx, h, t.taken_over)),
            None => tokio::spawn(t.inst.run(t.rx)),
        };
    }
    // The first client waits for the apps to be online, but not for a slow `wait_ready` app
    // (it shows as launching; its task carries on).
    match tokio::time::timeout(RESTORE_WAIT, crate::requests::collect(waits)).await {
        Ok(results) => {
            for r in results {
                if let Some(e) = r.error {
                    tracing::error!("App [{}:{}] not restarted: {e}", r.name, r.id);
                }
            }
        }
        Err(_) => tracing::warn!(
            "some apps are not online {} s after the restore began; serving meanwhile",
            RESTORE_WAIT.as_secs()
        ),
    }
}

struct Task {
    id: u32,
    inst: Instance,
    rx: crate::instances::instance::CtlReceiver,
    /// Its process, handed over by the daemon this one replaces.
    handed: Option<HandedChild>,
    /// Told once that process is taken over (or started again): the first client's list
    /// shows every handed process with its pid (`update` compares them).
    taken_over: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

/// One instance as it was, its entry and task; online ones get a `Resume` queued.
fn rebuild(
    d: &Arc<Daemon>,
    rec: Record,
    home: &str,
    handed: Option<HandedChild>,
) -> (Entry, Task, Option<crate::requests::StartWait>) {
    let spec = rec.spec;
    let id = rec.id;
    let paths: Paths = default_paths(&d.ctx.home, &spec, id);
    let status = match rec.wanted {
        Wanted::Online => Status::Launching,
        Wanted::Stopped => Status::Stopped,
        Wanted::Errored => Status::Errored,
    };
    let env = spawn::child_env(&spec, id, rec.instance, home);
    // The restart history is kept in memory only: a daemon that died took it with it.
    let mut state = Shared::new(spec.clone(), rec.instance, status, env, paths);
    state.created_at = rec.created_at;
    state.restart_time =
        rec.restart_time + u32::from(rec.restart_due && rec.wanted == Wanted::Online);
    state.counters.unstable_restarts = rec.unstable_restarts;
    state.last_error = rec.last_error;
    let shared = Arc::new(Mutex::new(state));
    let (tx, rx) = crate::instances::instance::channel();
    let (wait, taken_over) = if handed.is_some() {
        let (rtx, rrx) = tokio::sync::oneshot::channel();
        (Some((id, spec.name.clone(), rrx)), Some(rtx))
    } else {
        let wait = (rec.wanted == Wanted::Online).then(|| {
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            let _ = tx.send(Ctl::Resume(rtx));
            (id, spec.name.clone(), rrx)
        });
        (wait, None)
    };
    let inst = Instance {
        id,
        shared: shared.clone(),
        ctx: d.ctx.clone(),
    };
    (
        Entry { shared, ctl: tx },
        Task {
            id,
            inst,
            rx,
            handed,
            taken_over,
        },
        wait,
    )
}

/// Handed processes that are not taken over: their fds are closed (no app may inherit them)
/// and they are reaped once they are gone (the leftovers' stop ends them).
fn release<'a>(handed: impl Iterator<Item = &'a HandedChild>) {
    let mut pids = Vec::new();
    for h in handed {
        for fd in [h.out_fd, h.err_fd, h.stdin_fd, h.ipc_fd]
            .into_iter()
            .flatten()
        {
            drop(crate::instances::handoff::take_fd(
                fd,
                crate::instances::handoff::Kind::Any,
            ));
        }
        pids.push(h.pid);
    }
    reap_later(pids);
}

/// Wait for these processes (ours, after an `update`) so none stays a zombie; a pid that is
/// not our child ends its wait with ECHILD.
fn reap_later(pids: Vec<u32>) {
    for pid in pids {
        if let Ok(mut c) = crate::processes::child::ChildHandle::new(pid) {
            tokio::spawn(async move {
                let _ = c.wait().await;
            });
        }
    }
}

/// The table as it is now: every instance, and every child not yet reaped. After `kill` has
/// begun, no instance (a later daemon starts empty) but still the processes being stopped.
fn snapshot(d: &Daemon, daemon_start_ticks: u64) -> Table {
    let shutting_down = d
        .ctx
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst);
    let entries: Vec<(u32, Arc<Mutex<Shared>>)> = d
        .registry
        .lock()
        .unwrap()
        .entries
        .iter()
        .map(|(&id, e)| (id, e.shared.clone()))
        .collect();
    let apps = if shutting_down {
        Vec::new()
    } else {
        entries
            .into_iter()
            .filter_map(|(id, sh)| {
                // The fields, not a clone of the state (its env and paths are not written).
                let s = sh.lock().unwrap();
                (!s.leaving).then(|| Record {
                    id,
                    instance: s.instance,
                    wanted: if s.restarting {
                        Wanted::Online
                    } else {
                        Wanted::of(s.status)
                    },
                    restart_time: s.restart_time,
                    unstable_restarts: s.counters.unstable_restarts,
                    created_at: s.created_at,
                    pid: s.pid,
                    last_error: s.last_error.clone(),
                    restart_due: s.status == Status::WaitingRestart,
                    spec: s.spec.clone(),
                })
            })
            .collect()
    };
    Table {
        format: table_file::FORMAT,
        daemon_pid: std::process::id(),
        daemon_start_ticks,
        apps,
        processes: d.ctx.table.processes(),
    }
}

/// The table as it is now, for `update` (the start time is read off the runtime's threads).
pub async fn snapshot_now(d: &Arc<Daemon>) -> Table {
    let me = std::process::id();
    let ticks = tokio::task::spawn_blocking(move || {
        pmr_core::procfs::read_stat(me)
            .map(|s| s.start_ticks)
            .unwrap_or(0)
    })
    .await
    .unwrap_or(0);
    snapshot(d, ticks)
}

fn start_writer(d: &Arc<Daemon>) {
    let weak = Arc::downgrade(d);
    let me = std::process::id();
    let writer = d.ctx.table.clone();
    // This process's start time, read once, on the writer thread: /proc is file I/O.
    let start = std::sync::OnceLock::new();
    let spawned = writer.start(move || {
        let ticks = *start.get_or_init(|| {
            pmr_core::procfs::read_stat(me)
                .map(|s| s.start_ticks)
                .unwrap_or(0)
        });
        weak.upgrade().map(|d| snapshot(&d, ticks))
    });
    match spawned {
        Ok(()) => d.ctx.table.touch(),
        Err(e) => tracing::error!(
            "cannot start the process table writer: {e}; a daemon crash would forget the apps"
        ),
    }
}
