//! The stop sequence of one process (or its whole tree, with `treekill`).

use super::Running;
use crate::spec::AppSpec;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
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
/// tree, SIGKILL after `kill_timeout` (or `PM2_KILL_TIMEOUT` for apps without one), and wait
/// until no process of the tree is left. Returns the exit code.
pub(super) async fn terminate(r: &mut Running, spec: &AppSpec, label: &str) -> Option<i32> {
    let pid = r.pid;
    let knobs = crate::knobs::get();
    let kill_timeout = knobs.kill_timeout(spec.kill_timeout);
    let deadline = Instant::now() + Duration::from_millis(kill_timeout);
    // Descendants that left the process group (setsid) are found through /proc; the group
    // itself gets `killpg`.
    let tree = if spec.treekill {
        tokio::task::spawn_blocking(move || {
            crate::daemon::metrics::descendants(pid)
                .unwrap_or_else(|| crate::daemon::metrics::tree_pids(pid))
        })
        .await
        .unwrap_or_default()
    } else {
        vec![pid]
    };
    match (&r.ipc, spec.shutdown_with_message || knobs.kill_use_message) {
        (Some(ipc), true) => ipc.send(serde_json::Value::String("shutdown".into())),
        _ => signal_tree(pid, &tree, spec.treekill, knobs.stop_signal()),
    }
    let status = match tokio::time::timeout_at(deadline, r.child.wait()).await {
        Ok(st) => st,
        Err(_) => {
            tracing::warn!(
                "App {label} still alive after kill_timeout ({kill_timeout} ms): SIGKILL"
            );
            SIGKILLS.fetch_add(1, Ordering::SeqCst);
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
                SIGKILLS.fetch_add(1, Ordering::SeqCst);
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
    tree.iter().skip(1).any(|&p| crate::procfs::alive(p))
}
