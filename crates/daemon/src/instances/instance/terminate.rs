//! The stop sequence of one process (or its whole tree, with `treekill`).

use crate::instances::instance::Running;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use pmr_core::spec::AppSpec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How many stop sequences ended in SIGKILL since the daemon started: `pmr-runtime` exits 137
/// when one did during its shutdown.
static SIGKILLS: AtomicU64 = AtomicU64::new(0);

pub fn sigkills() -> u64 {
    SIGKILLS.load(Ordering::SeqCst)
}

/// The stop sequence: the stop signal (SIGINT, or `PM2_KILL_SIGNAL`) or `'shutdown'`
/// (`shutdown_with_message`, or `PM2_KILL_USE_MESSAGE` for every app with a channel) to the
/// tree, SIGKILL after `kill_timeout` (or `PM2_KILL_TIMEOUT` for apps without one) to every
/// process of the tree in one pass, and wait until none is left. Returns the exit code.
pub(super) async fn terminate(r: &mut Running, spec: &AppSpec, label: &str) -> Option<i32> {
    let pid = r.pid;
    let knobs = pmr_core::knobs::get();
    let kill_timeout = knobs.kill_timeout(spec.kill_timeout);
    let deadline = Instant::now() + Duration::from_millis(kill_timeout);
    let mut tree = if spec.treekill {
        members(pid, Vec::new()).await
    } else {
        vec![pid]
    };
    match (&r.ipc, spec.shutdown_with_message || knobs.kill_use_message) {
        (Some(ipc), true) => ipc.send(serde_json::Value::String("shutdown".into())),
        _ => signal_tree(pid, &tree, spec.treekill, knobs.stop_signal()),
    }
    let mut killed = false;
    let status = match tokio::time::timeout_at(deadline, r.child.wait()).await {
        Ok(st) => st,
        Err(_) => {
            tracing::warn!(
                "App {label} still alive after kill_timeout ({kill_timeout} ms): SIGKILL"
            );
            SIGKILLS.fetch_add(1, Ordering::SeqCst);
            if spec.treekill {
                // What the tree is now, with what it was: a child forked since the stop
                // signal gets its SIGKILL in the same pass.
                tree = members(pid, tree).await;
            }
            signal_tree(pid, &tree, spec.treekill, Signal::SIGKILL);
            killed = true;
            r.child.wait().await
        }
    };
    if spec.treekill {
        // The main process is gone; wait (bounded) for the rest of its group.
        // /proc reads stay off the runtime's threads.
        let alive = |tree: Vec<u32>| async move {
            tokio::task::spawn_blocking(move || group_alive(pid, &tree))
                .await
                .unwrap_or(false)
        };
        while alive(tree.clone()).await {
            let now = Instant::now();
            if now >= deadline && !killed {
                SIGKILLS.fetch_add(1, Ordering::SeqCst);
                signal_tree(pid, &tree, true, Signal::SIGKILL);
                killed = true;
            } else if now >= deadline + Duration::from_secs(2) {
                tracing::error!("App {label}: some processes of its tree survive SIGKILL");
                break;
            }
            // Before the SIGKILL, looks until the deadline and not past it; after it, often:
            // the tree dies within milliseconds.
            let next = if killed {
                now + Duration::from_millis(5)
            } else {
                (now + Duration::from_millis(20)).min(deadline)
            };
            tokio::time::sleep_until(next).await;
        }
    }
    status.ok().and_then(|s| s.code())
}

/// `pid`, its descendants (those that left the process group too: found through /proc; the
/// group itself gets `killpg`), and `known`, each once. Blocking work on the blocking pool.
async fn members(pid: u32, known: Vec<u32>) -> Vec<u32> {
    tokio::task::spawn_blocking(move || {
        let mut tree = crate::processes::metrics::descendants(pid)
            .unwrap_or_else(|| crate::processes::metrics::tree_pids(pid));
        for p in known {
            if !tree.contains(&p) {
                tree.push(p);
            }
        }
        tree
    })
    .await
    .unwrap_or_default()
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

/// Whether a process of the tree or of its group still runs. A zombie does not: the
/// descendants of a process that is gone are reparented to init, which may take a second or
/// more to reap them (the group then still answers `killpg`).
fn group_alive(pgid: u32, tree: &[u32]) -> bool {
    // Not the main process (`tree[0]`): it was reaped, its pid may already be another's.
    if tree.iter().skip(1).any(|&p| pmr_core::procfs::alive(p)) {
        return true;
    }
    if killpg(Pid::from_raw(pgid as i32), None).is_err() {
        return false;
    }
    // Members of the group we do not know, or only zombies: look at every process.
    crate::processes::scan::scan()
        .values()
        .any(|s| s.pgrp == pgid && !s.is_zombie())
}
