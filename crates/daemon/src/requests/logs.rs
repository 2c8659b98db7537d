//! `flush` (empty log files) and `reloadLogs` (reopen them).

use crate::daemon::Daemon;
use pmr_core::protocol::{FlushRequest, Response};
use std::sync::Arc;

/// `flush`: empty the log files of these apps (`None`: all, and `pmr.log`).
pub async fn flush(d: &Arc<Daemon>, req: FlushRequest) -> Response {
    let FlushRequest { ids } = req;
    let paths: Vec<String> = {
        let reg = d.registry.lock().unwrap();
        reg.snapshot()
            .into_iter()
            .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id)))
            .flat_map(|(_, s)| [Some(s.paths.out), Some(s.paths.err), s.paths.combined])
            .flatten()
            .map(|p| p.to_string())
            .collect()
    };
    Response::Flushed {
        paths: d.ctx.sinks.flush(paths, ids.is_none()).await,
    }
}

/// `reloadLogs`: reopen every log file (after an outside rotation).
pub async fn reload(d: &Arc<Daemon>) -> Response {
    let (files, warnings) = d.ctx.sinks.reload().await;
    Response::LogsReloaded { files, warnings }
}
