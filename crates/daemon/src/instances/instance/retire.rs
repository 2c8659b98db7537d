//! Retiring a cluster worker that a reload replaced or a scale-down removes.

use super::{recv_opt, Running};
use crate::instances::instance::terminate::terminate;
use crate::node::ipc::IpcEvent;
use pmr_core::spec::AppSpec;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::time::Instant;

/// Retire a cluster worker replaced by a reload: it stops taking connections (cluster
/// `disconnect`: its servers close and, with the drain preload, kept-alive connections finish
/// with `Connection: close`); once its channel closes (drained) or `kill_timeout` (or
/// `PM2_GRACEFUL_TIMEOUT`) passes, the
/// usual stop sequence follows.
pub(super) async fn retire(
    mut old: Running,
    exited: Option<std::io::Result<std::process::ExitStatus>>,
    spec: &AppSpec,
    label: &str,
    sigkills: &AtomicU64,
) {
    if exited.is_some() {
        return;
    }
    if let Some(ipc) = &old.ipc {
        ipc.disconnect();
        // PM2_GRACEFUL_TIMEOUT, else the app's kill_timeout.
        let knobs = pmr_core::knobs::get();
        let grace = knobs.drain_timeout(knobs.kill_timeout(spec.kill_timeout));
        let deadline = Instant::now() + Duration::from_millis(grace);
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
                tracing::warn!("App {label}: retired process {} still had connections after {grace} ms", old.pid);
            }
        }
    }
    terminate(&mut old, spec, label, sigkills).await;
}
