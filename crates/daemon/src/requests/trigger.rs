//! `trigger`: an @pm2/io action sent to each selected process, as PM2's `msgProcess`, then
//! every reply awaited at once, each for at most the timeout (PM2's `trigger` waits forever).

use crate::daemon::Daemon;
use crate::node::axm::TriggerError;
use pmr_core::protocol::{Response, TriggerReply, TriggerRequest};
use std::sync::Arc;
use std::time::Duration;

/// The longest a trigger may wait (an hour): a bigger timeout is this one.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

pub async fn trigger(d: &Arc<Daemon>, req: TriggerRequest) -> Response {
    let TriggerRequest {
        ids,
        action,
        param,
        timeout_ms,
    } = req;
    let (ids, action) = (&ids[..], &action[..]);
    let targets: Vec<_> = {
        let reg = d.registry.lock().unwrap();
        ids.iter()
            .filter_map(|id| {
                let e = reg.entries.get(id)?;
                let s = e.shared.lock().unwrap();
                let agent = s.axm.clone().filter(|_| s.pid != 0);
                let who = (s.spec.name.clone(), s.spec.namespace.clone());
                Some((*id, who, agent))
            })
            .collect()
    };
    if targets.iter().all(|(_, _, a)| a.is_none()) {
        return Response::Error {
            message: "Not any process has received a command (offline or unexistent)".into(),
        };
    }
    let timeout = Duration::from_millis(timeout_ms.clamp(1, MAX_TIMEOUT_MS));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut known: Vec<String> = Vec::new();
    let mut unknown = false;
    let mut pending = Vec::new();
    for (id, (name, namespace), agent) in targets {
        let sent = match &agent {
            None => Err(format!("Process with ID <{id}> offline")),
            Some(a) => a.trigger(action, param.clone()).map_err(|e| match e {
                TriggerError::Unknown(list) => {
                    unknown = true;
                    for k in list {
                        if !known.contains(&k) {
                            known.push(k);
                        }
                    }
                    format!("Action doesn't exist {action} for {name}")
                }
                TriggerError::Busy => {
                    format!("Process with ID <{id}> has too many triggers waiting for a reply")
                }
                TriggerError::NoChannel => format!("Process with ID <{id}> has no IPC channel"),
            }),
        };
        pending.push((id, name, namespace, sent));
    }
    // Nobody got it because nobody has it: one clear error naming what there is.
    if unknown && pending.iter().all(|(_, _, _, s)| s.is_err()) {
        let list = if known.is_empty() {
            "none registered: does the app use @pm2/io?".to_string()
        } else {
            known.join(", ")
        };
        return Response::Error {
            message: format!("unknown action \"{action}\" (known actions: {list})"),
        };
    }
    // Every action went out at once: waiting for each in turn up to one deadline is waiting
    // for all of them together.
    let mut replies = Vec::new();
    for (id, name, namespace, sent) in pending {
        let outcome = match sent {
            Err(e) => Err(e),
            Ok(rx) => match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err("the process exited before it replied".into()),
                Err(_) => Err(format!("no reply within {} ms", timeout.as_millis())),
            },
        };
        let (ok, data, error) = match outcome {
            Ok(v) => (true, Some(v), None),
            Err(e) => (false, None, Some(e)),
        };
        replies.push(TriggerReply {
            pm_id: id,
            name,
            namespace,
            ok,
            data,
            error,
        });
    }
    Response::Triggered { replies }
}
