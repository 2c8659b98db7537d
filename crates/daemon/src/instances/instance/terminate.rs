//! The stop sequence of one process (or its whole tree, with `treekill`).

use crate::instances::instance::Running;
use nix::sys::signal::Signal;
use pmr_core::spec::AppSpec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The stop sequence: the stop signal (SIGINT, or `PM2_KILL_SIGNAL`) or `'shutdown'`
/// (`shutdown_with_message`, or `PM2_KILL_USE_MESSAGE` for every app with a channel) to the
/// tree, SIGKILL after `kill_timeout` (or `PM2_KILL_TIMEOUT` for apps without one) to every
/// process of the tree in one pass, and wait until none is left. Returns the exit code;
/// `sigkills` counts the sequences that needed SIGKILL.
pub(super) async fn terminate(
    r: &mut Running,
    spec: &AppSpec,
    label: &str,
    sigkills: &AtomicU64,
) -> Option<i32> {
    let knobs = pmr_core::knobs::get();
    let kill_timeout = knobs.kill_timeout(spec.kill_timeout);
    let deadline = Instant::now() + Duration::from_millis(kill_timeout);
    match (&r.ipc, spec.shutdown_with_message || knobs.kill_use_message) {
        (Some(ipc), true) => {
            if spec.treekill {
                r.child.signal_tree(None, true).await;
            }
            ipc.send(serde_json::Value::String("shutdown".into()))
        }
        _ => {
            r.child
                .signal_tree(Some(knobs.stop_signal()), spec.treekill)
                .await
        }
    }
    let mut killed = false;
    let status = match tokio::time::timeout_at(deadline, r.child.wait()).await {
        Ok(st) => st,
        Err(_) => {
            tracing::warn!(
                "App {label} still alive after kill_timeout ({kill_timeout} ms): SIGKILL"
            );
            sigkills.fetch_add(1, Ordering::SeqCst);
            r.child
                .signal_tree(Some(Signal::SIGKILL), spec.treekill)
                .await;
            killed = true;
            r.child.wait().await
        }
    };
    if spec.treekill {
        // The main process is gone; wait (bounded) for the rest of its group.
        while r.child.tree_alive().await {
            let now = Instant::now();
            if now >= deadline && !killed {
                sigkills.fetch_add(1, Ordering::SeqCst);
                r.child.signal_tree(Some(Signal::SIGKILL), true).await;
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
