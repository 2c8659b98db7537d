//! `start` (scripts given on the command line) and `apply` (the apps of an ecosystem file).

use super::action::act;
use super::register::register;
use super::reload::reload_with;
use super::{collect, fan_out, StartWait};
use crate::daemon::instance::{self, Ctl};
use crate::daemon::state::Daemon;
use crate::protocol::{Action, Response, Status};
use crate::spec::AppSpec;
use std::sync::Arc;

pub async fn start(d: &Arc<Daemon>, apps: Vec<AppSpec>, force: bool) -> Response {
    // Same name and script already managed: PM2 restarts stopped ones, refuses running ones.
    let mut restart_ids = Vec::new();
    let mut new_apps = Vec::new();
    {
        let reg = d.registry.lock().unwrap();
        for spec in apps {
            let existing: Vec<(u32, Status)> = reg
                .snapshot()
                .into_iter()
                .filter(|(_, s)| s.spec.name == spec.name && s.spec.script == spec.script)
                .map(|(id, s)| (id, s.status))
                .collect();
            if existing.is_empty() || force {
                new_apps.push(spec);
            } else if existing
                .iter()
                .all(|(_, st)| matches!(st, Status::Stopped | Status::Errored))
            {
                restart_ids.extend(existing.iter().map(|e| e.0));
            } else {
                return Response::Error {
                    message: format!(
                        "Script {} already launched as app \"{}\", add -f option to force re-execution",
                        spec.script, spec.name
                    ),
                };
            }
        }
    }

    let mut waits = Vec::new();
    let mut ids = Vec::new();
    for spec in new_apps {
        for (id, wait) in register(d, Arc::new(spec)) {
            ids.push(id);
            waits.extend(wait);
        }
    }
    let mut results = collect(waits).await;
    if !restart_ids.is_empty() {
        results.extend(act(d, Action::Restart, &restart_ids, None).await);
        ids.extend(restart_ids);
    }
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| Some(format!("[{}]({}) {}", r.name, r.id, r.error?)))
        .collect();
    if errors.is_empty() {
        Response::Started { ids }
    } else {
        Response::Error {
            message: errors.join("\n"),
        }
    }
}

/// The apps of an ecosystem file: those already known by name restart with their new spec,
/// the others start (PM2's startOrRestart, which `start`/`restart` of a file also do).
pub async fn apply(d: &Arc<Daemon>, apps: Vec<AppSpec>, reload_known: bool) -> Response {
    let mut waits: Vec<StartWait> = Vec::new();
    let mut restarts = Vec::new();
    for spec in apps {
        let known: Vec<u32> = d
            .registry
            .lock()
            .unwrap()
            .snapshot()
            .into_iter()
            .filter(|(_, s)| s.spec.name == spec.name)
            .map(|(id, _)| id)
            .collect();
        let spec = Arc::new(spec);
        if known.is_empty() {
            waits.extend(register(d, spec).into_iter().filter_map(|(_, w)| w));
        } else {
            restarts.push((known, spec));
        }
    }
    let mut results = Vec::new();
    for (ids, spec) in restarts {
        let update = instance::Update {
            env: None,
            spec: Some(spec),
        };
        if reload_known {
            results.extend(reload_with(d, &ids, update, 1).await);
        } else {
            results.extend(
                fan_out(d, &ids, |reply| Ctl::Restart {
                    update: update.clone(),
                    reply,
                })
                .await,
            );
        }
    }
    results.extend(collect(waits).await);
    results.sort_by_key(|r| r.id);
    Response::Done { results }
}
