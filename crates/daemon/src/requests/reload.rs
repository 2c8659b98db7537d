//! `reload`: replace instances a few at a time, each new one online before the old one goes.

use crate::daemon::Daemon;
use crate::instances::instance::{self, Ctl};
use crate::requests::action::renamed;
use crate::requests::fan_out_each;
use crate::requests::patch::patched;
use pmr_core::protocol::{ActionRequest, ActionResult, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reload `ids` a few at a time (`parallel`, default 1 or `PM2_CONCURRENT_ACTIONS`), so capacity never drops by more than
/// that many workers; a failure stops the reload of that app's remaining instances.
pub async fn reload(d: &Arc<Daemon>, req: ActionRequest) -> Response {
    let ActionRequest {
        ids,
        update_env,
        parallel,
        patch,
        ..
    } = req;
    let ids = &ids[..];
    // Every new spec is computed before the first instance is touched: all or nothing.
    let specs = match patch.filter(|p| !p.is_empty()) {
        Some(p) => match patched(&d.registry.lock().unwrap(), ids, &p) {
            Ok(specs) => specs,
            Err(message) => return Response::Error { message },
        },
        None => BTreeMap::new(),
    };
    let update = |id: u32| instance::Update {
        env: update_env.clone(),
        spec: specs.get(&id).cloned(),
    };
    let mut results = reload_with(
        d,
        ids,
        update,
        pmr_core::knobs::get().reload_parallel(parallel),
    )
    .await;
    renamed(&mut results, &specs);
    Response::Done { results }
}

/// Reload `ids`, each with the changes `update` gives for its id.
pub async fn reload_with(
    d: &Arc<Daemon>,
    ids: &[u32],
    update: impl Fn(u32) -> instance::Update,
    parallel: u32,
) -> Vec<ActionResult> {
    let mut results: Vec<ActionResult> = Vec::new();
    let mut failed_apps: Vec<String> = Vec::new();
    for batch in ids.chunks(parallel.max(1) as usize) {
        let todo: Vec<u32> = {
            let reg = d.registry.lock().unwrap();
            batch
                .iter()
                .copied()
                .filter(|id| {
                    reg.entries
                        .get(id)
                        .map(|e| !failed_apps.contains(&e.shared.lock().unwrap().spec.name))
                        .unwrap_or(true)
                })
                .collect()
        };
        for &id in batch.iter().filter(|id| !todo.contains(id)) {
            let name = d
                .registry
                .lock()
                .unwrap()
                .entries
                .get(&id)
                .map(|e| e.shared.lock().unwrap().spec.name.clone());
            results.push(ActionResult {
                id,
                name: name.unwrap_or_default(),
                error: Some(
                    "not reloaded: an earlier instance of this app failed to reload".into(),
                ),
            });
        }
        for r in fan_out_each(d, &todo, |id, reply| Ctl::Reload {
            update: update(id),
            reply,
        })
        .await
        {
            if r.error.is_some() {
                failed_apps.push(r.name.clone());
            }
            results.push(r);
        }
    }
    results
}
