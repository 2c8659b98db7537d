//! `list` (`jlist`, `ls`, ...): every instance's state with its CPU and memory.

use crate::daemon::Daemon;
use pmr_core::protocol::{AxmInfo, Monit, ProcInfo, Response};
use std::sync::Arc;

/// The running process's @pm2/io state (none once it has exited, as PM2 resets it).
fn axm_info(s: &crate::instances::instance::Shared) -> AxmInfo {
    match (&s.axm, s.pid) {
        (Some(a), pid) if pid != 0 => a.snapshot(),
        _ => AxmInfo::default(),
    }
}

/// After a reply that sampled with an old tree scan: the scan, off the reply's path (see
/// `Sampler::sample`). Skipped while a sample holds the sampler; the next sample scans then.
pub fn rescan_if_due(d: &Arc<Daemon>) {
    let due = d.sampler.try_lock().is_ok_and(|s| s.rescan_due());
    if due {
        let sampler = d.sampler.clone();
        tokio::task::spawn_blocking(move || {
            sampler.lock().unwrap_or_else(|e| e.into_inner()).rescan();
        });
    }
}

pub async fn list(d: &Arc<Daemon>) -> Response {
    Response::List {
        procs: procs(d, false).await,
    }
}

/// Every instance's state; `lean`: child environments reduced to what `jlist` and `ls` read
/// (see `Registry::snapshot_lean`).
pub async fn procs(d: &Arc<Daemon>, lean: bool) -> Vec<ProcInfo> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || procs_now(&d, lean))
        .await
        .unwrap_or_default()
}

/// [`procs`], on a blocking thread (the usage is read from /proc), so that a caller with more
/// blocking work to do (`render`) does it all in one hand-over: each one is a wake-up to wait
/// for on a busy machine.
pub fn procs_now(d: &Daemon, lean: bool) -> Vec<ProcInfo> {
    let snap = {
        let reg = d.registry.lock().unwrap();
        if lean {
            reg.snapshot_lean()
        } else {
            reg.snapshot()
        }
    };
    infos(d, snap)
}

/// [`procs_now`] (lean) of these instances only (PM2's protocol answers with the processes it
/// acted on, and its bus events carry one).
pub fn procs_of(d: &Daemon, ids: &[u32]) -> Vec<ProcInfo> {
    let mut snap = d.registry.lock().unwrap().snapshot_lean_of(ids);
    snap.sort_by_key(|(id, _)| *id);
    infos(d, snap)
}

fn infos(d: &Daemon, snap: Vec<(u32, crate::instances::instance::Shared)>) -> Vec<ProcInfo> {
    let roots: Vec<u32> = snap
        .iter()
        .map(|(_, s)| s.pid)
        .filter(|&p| p != 0)
        .collect();
    let usage = d
        .sampler
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sample(&roots, true);
    snap.into_iter()
        .map(|(id, s)| {
            let monit = usage
                .get(&s.pid)
                .map(|u| Monit {
                    memory: u.memory,
                    cpu: u.cpu,
                })
                .unwrap_or_default();
            let axm = axm_info(&s);
            let log_lines_dropped = log_lines_dropped(d, &s.paths);
            ProcInfo {
                pm_id: id,
                instance: s.instance,
                spec: s.spec.clone(),
                status: s.status,
                pid: s.pid,
                pm_uptime: s.pm_uptime,
                created_at: s.created_at,
                restart_time: s.restart_time,
                unstable_restarts: s.counters.unstable_restarts,
                exit_code: s.exit_code,
                prev_restart_delay: s.counters.prev_restart_delay,
                out_log_path: s.paths.out,
                err_log_path: s.paths.err,
                log_path: s.paths.combined,
                pid_path: s.paths.pid,
                env: s.env,
                username: d.username.clone(),
                monit,
                last_error: s.last_error,
                restart_history: s.history.records(),
                cron_next: s
                    .spec
                    .cron_restart
                    .as_deref()
                    .and_then(pmr_core::cron::next_run_ms),
                watching: s.watching,
                watch_last: s.watch_last,
                axm,
                log_lines_dropped,
            }
        })
        .collect()
}

/// Lines dropped from the instance's open log files, each file counted once (`-o` and `-e`
/// may name the same file).
fn log_lines_dropped(d: &Daemon, paths: &crate::instances::instance::Paths) -> u64 {
    let (out, err) = (&*paths.out, &*paths.err);
    let combined = paths.combined.as_deref().filter(|c| *c != out && *c != err);
    let err = (err != out).then_some(err);
    [Some(out), err, combined]
        .into_iter()
        .flatten()
        .map(|f| d.ctx.sinks.dropped(std::path::Path::new(f)))
        .sum()
}
