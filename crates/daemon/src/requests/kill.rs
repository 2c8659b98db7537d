//! `kill`: stop every app, answer, then the server exits (also on SIGTERM/SIGINT).

use crate::daemon::Daemon;
use crate::requests::action::act;
use pmr_core::protocol::{Action, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn kill(d: &Arc<Daemon>) -> Response {
    shutdown(d).await;
    Response::Done { results: vec![] }
}

/// Stop every app (no restarts from here on) and forget them: the table on disk goes too, so
/// the next daemon starts empty, as PM2's does after `kill` (`resurrect` brings apps back).
/// Until the stops are done it still names the processes being stopped (but no apps).
pub async fn shutdown(d: &Arc<Daemon>) {
    crate::sd_notify::send("STOPPING=1");
    d.ctx.shutting_down.store(true, Ordering::SeqCst);
    d.ctx.table.touch();
    let ids: Vec<u32> = d.registry.lock().unwrap().entries.keys().copied().collect();
    tracing::info!("stopping {} process(es) before exit", ids.len());
    act(d, Action::Delete, &ids, None).await;
    let table = d.ctx.table.clone();
    let _ = tokio::task::spawn_blocking(move || table.clear()).await;
}
