//! One file per request kind (as pueue's daemon does), plus what several of them share:
//! sending a control message to instances and waiting for their answers.

pub mod action;
pub mod kill;
pub mod list;
pub mod logs;
pub mod patch;
pub mod ping;
pub mod register;
pub mod reload;
pub mod render;
pub mod resolve;
pub mod resurrect;
pub mod scale;
pub mod send;
pub mod signal;
pub mod start;
pub mod trigger;

use crate::daemon::Daemon;
use crate::instances::instance::{self, Ctl};
use pmr_core::protocol::ActionResult;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A new instance's id, its app's name, and the reply that comes when it is online.
pub type StartWait = (u32, String, oneshot::Receiver<Result<(), String>>);

/// The one reading of an instance's answer: `None` is success. A reply dropped unanswered
/// (the instance task ended) is a failure, never a success.
pub fn reply_error(reply: Result<Result<(), String>, oneshot::error::RecvError>) -> Option<String> {
    match reply {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some("the instance task ended".into()),
    }
}

/// Wait for newly started instances to be online (or to fail).
pub async fn collect(waits: Vec<StartWait>) -> Vec<ActionResult> {
    let mut out = Vec::new();
    for (id, name, rx) in waits {
        let error = reply_error(rx.await);
        out.push(ActionResult { id, name, error });
    }
    out
}

/// Send one control message to each instance at once and collect the answers in id order.
pub async fn fan_out(
    d: &Arc<Daemon>,
    ids: &[u32],
    make: impl Fn(instance::Reply) -> Ctl,
) -> Vec<ActionResult> {
    fan_out_each(d, ids, |_, reply| make(reply)).await
}

/// [`fan_out`] with a message made for each instance (by id).
pub async fn fan_out_each(
    d: &Arc<Daemon>,
    ids: &[u32],
    make: impl Fn(u32, instance::Reply) -> Ctl,
) -> Vec<ActionResult> {
    let mut pending = Vec::new();
    {
        let reg = d.registry.lock().unwrap();
        for &id in ids {
            let Some(e) = reg.entries.get(&id) else {
                pending.push((id, String::new(), None));
                continue;
            };
            let name = e.shared.lock().unwrap().spec.name.clone();
            let (tx, rx) = oneshot::channel();
            let sent = e.ctl.send(make(id, tx)).is_ok();
            pending.push((id, name, sent.then_some(rx)));
        }
    }
    let mut out = Vec::new();
    for (id, name, rx) in pending {
        let error = match rx {
            None => Some(format!("process {id} not found")),
            Some(rx) => reply_error(rx.await),
        };
        out.push(ActionResult { id, name, error });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::requests::reply_error;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn a_dropped_reply_is_an_error() {
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        drop(tx);
        assert_eq!(
            reply_error(rx.await).as_deref(),
            Some("the instance task ended")
        );
        let (tx, rx) = oneshot::channel();
        tx.send(Ok(())).unwrap();
        assert_eq!(reply_error(rx.await), None);
        let (tx, rx) = oneshot::channel();
        tx.send(Err("boom".to_string())).unwrap();
        assert_eq!(reply_error(rx.await).as_deref(), Some("boom"));
    }
}
