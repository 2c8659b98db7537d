//! `send` (and `attach`'s lines): a line to the stdin of each selected process, with PM2's
//! checks and wording (`God.sendLineToStdin`): unknown id, cluster mode, not running.

use crate::daemon::Daemon;
use pmr_core::protocol::{ActionResult, Response, SendLineRequest, Status};
use pmr_core::spec::ExecMode;
use std::sync::Arc;

pub async fn send_line(d: &Arc<Daemon>, req: SendLineRequest) -> Response {
    let SendLineRequest { ids, line } = req;
    let ids = &ids[..];
    let mut results = Vec::new();
    for &id in ids {
        let found = d.registry.lock().unwrap().entries.get(&id).map(|e| {
            let s = e.shared.lock().unwrap();
            (s.spec.name.clone(), s.spec.exec_mode, s.status)
        });
        let (name, error) = match found {
            None => (
                String::new(),
                Some(format!("Process with ID <{id}> unknown.")),
            ),
            Some((name, ExecMode::Cluster, _)) => (
                name,
                Some("Cannot send line to processes in cluster mode".into()),
            ),
            Some((name, _, Status::Online | Status::Launching)) => {
                let error = match d.ctx.stdin.write(id, line.clone().into_bytes()).await {
                    Ok(true) => None,
                    Ok(false) => Some(format!("Process with ID <{id}> offline.")),
                    Err(e) => Some(format!("Process with ID <{id}>: {e}")),
                };
                (name, error)
            }
            Some((name, _, _)) => (name, Some(format!("Process with ID <{id}> offline."))),
        };
        results.push(ActionResult { id, name, error });
    }
    Response::Done { results }
}
