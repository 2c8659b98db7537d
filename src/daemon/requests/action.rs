//! `stop`, `restart`, `delete`, `reset` of selected instances (`reload` is in `reload.rs`).

use super::fan_out;
use crate::daemon::instance::{self, Ctl};
use crate::daemon::state::Daemon;
use crate::protocol::{Action, ActionResult, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn action(
    d: &Arc<Daemon>,
    action: Action,
    ids: &[u32],
    update_env: Option<BTreeMap<String, String>>,
) -> Response {
    Response::Done {
        results: act(d, action, ids, update_env).await,
    }
}

pub async fn act(
    d: &Arc<Daemon>,
    action: Action,
    ids: &[u32],
    update_env: Option<BTreeMap<String, String>>,
) -> Vec<ActionResult> {
    let results = fan_out(d, ids, |reply| match action {
        Action::Stop => Ctl::Stop(reply),
        Action::Restart | Action::Reload => Ctl::Restart {
            update: instance::Update {
                env: update_env.clone(),
                spec: None,
            },
            reply,
        },
        Action::Delete => Ctl::Delete(reply),
        Action::Reset => Ctl::Reset(reply),
    })
    .await;
    if action == Action::Delete {
        let mut reg = d.registry.lock().unwrap();
        for r in &results {
            if r.error.is_none() {
                reg.remove(r.id);
            }
        }
    }
    results
}
