//! `stop`, `restart`, `delete`, `reset` of selected instances (`reload` is in `reload.rs`).

use crate::daemon::Daemon;
use crate::instances::instance::{self, Ctl};
use crate::requests::fan_out_each;
use crate::requests::patch::patched;
use pmr_core::protocol::{Action, ActionRequest, ActionResult, Response};
use pmr_core::spec::AppSpec;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn action(d: &Arc<Daemon>, req: ActionRequest) -> Response {
    let ActionRequest {
        action,
        ids,
        update_env,
        patch,
        ..
    } = req;
    let ids = &ids[..];
    let specs = match patch.filter(|p| !p.is_empty()) {
        Some(p) if matches!(action, Action::Restart | Action::Reload) => {
            match patched(&d.registry.lock().unwrap(), ids, &p) {
                Ok(specs) => specs,
                Err(message) => return Response::Error { message },
            }
        }
        _ => BTreeMap::new(),
    };
    Response::Done {
        results: act_with(d, action, ids, update_env, &specs).await,
    }
}

pub async fn act(
    d: &Arc<Daemon>,
    action: Action,
    ids: &[u32],
    update_env: Option<BTreeMap<String, String>>,
) -> Vec<ActionResult> {
    act_with(d, action, ids, update_env, &BTreeMap::new()).await
}

/// `act`, restarting the instances in `specs` with that spec.
pub async fn act_with(
    d: &Arc<Daemon>,
    action: Action,
    ids: &[u32],
    update_env: Option<BTreeMap<String, String>>,
    specs: &BTreeMap<u32, Arc<AppSpec>>,
) -> Vec<ActionResult> {
    let mut results = fan_out_each(d, ids, |id, reply| match action {
        Action::Stop => Ctl::Stop(reply),
        Action::Restart | Action::Reload => Ctl::Restart {
            update: instance::Update {
                env: update_env.clone(),
                spec: specs.get(&id).cloned(),
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
        d.ctx.table.touch();
    }
    renamed(&mut results, specs);
    results
}

/// Results of the instances that restarted carry the app's new name (after a `--name`), as
/// PM2 prints them.
pub fn renamed(results: &mut [ActionResult], specs: &BTreeMap<u32, Arc<AppSpec>>) {
    for r in results.iter_mut().filter(|r| r.error.is_none()) {
        if let Some(s) = specs.get(&r.id) {
            r.name = s.name.clone();
        }
    }
}
