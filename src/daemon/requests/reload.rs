//! `reload`: replace instances a few at a time, each new one online before the old one goes.

use super::fan_out;
use crate::daemon::instance::{self, Ctl};
use crate::daemon::state::Daemon;
use crate::protocol::{ActionResult, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reload `ids` a few at a time (`parallel`, default 1 or `PM2_CONCURRENT_ACTIONS`), so capacity never drops by more than
/// that many workers; a failure stops the reload of that app's remaining instances.
pub async fn reload(
    d: &Arc<Daemon>,
    ids: &[u32],
    update_env: Option<BTreeMap<String, String>>,
    parallel: Option<u32>,
) -> Response {
    let update = instance::Update {
        env: update_env,
        spec: None,
    };
    Response::Done {
        results: reload_with(
            d,
            ids,
            update,
            crate::knobs::get().reload_parallel(parallel),
        )
        .await,
    }
}

pub async fn reload_with(
    d: &Arc<Daemon>,
    ids: &[u32],
    update: instance::Update,
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
        for r in fan_out(d, &todo, |reply| Ctl::Reload {
            update: update.clone(),
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
