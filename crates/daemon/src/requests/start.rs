//! `start` (scripts given on the command line) and `apply` (the apps of an ecosystem file),
//! with the one rule for an app that is already managed (`decide`).

use super::{collect, fan_out};
use crate::daemon::Daemon;
use crate::instances::instance::{self, Ctl};
use crate::instances::registry::Registry;
use crate::requests::action::act_with;
use crate::requests::patch::patched;
use crate::requests::register::{self, launch, NewInstances};
use crate::requests::reload::reload_with;
use pmr_core::protocol::{max_instances, Action, ApplyRequest, Response, StartRequest, Status};
use pmr_core::spec::AppSpec;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which request asks: the rule differs in what counts as "the same app".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `start` of scripts; `force` is `-f`.
    Start { force: bool },
    /// `apply` of an ecosystem file (PM2's startOrRestart).
    Apply,
}

/// One managed instance, as `decide` sees it.
#[derive(Debug, Clone)]
pub struct Managed {
    pub id: u32,
    pub name: String,
    pub script: String,
    pub status: Status,
}

/// What a spec does, given the instances already managed.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start `spec.instances` new instances.
    New,
    /// Restart these instances (with the new spec, for `apply`).
    Restart(Vec<u32>),
    /// Refuse the whole request with this message.
    Refuse(String),
}

/// PM2's "start or restart an existing app", the one place it is decided:
/// - `start`: instances of the same name *and* script are the app. None, or `-f`: start new
///   ones. All stopped or errored: restart them. Any other state: refuse (PM2's message).
/// - `apply`: instances of the same name are the app, whatever their script and state: they
///   restart with the file's spec. None: start new ones.
pub fn decide(spec: &AppSpec, managed: &[Managed], mode: Mode) -> Decision {
    let same =
        |m: &&Managed| m.name == spec.name && (mode == Mode::Apply || m.script == spec.script);
    let existing: Vec<&Managed> = managed.iter().filter(same).collect();
    match mode {
        _ if existing.is_empty() => Decision::New,
        Mode::Apply => Decision::Restart(existing.iter().map(|m| m.id).collect()),
        Mode::Start { force: true } => Decision::New,
        Mode::Start { force: false }
            if existing
                .iter()
                .all(|m| matches!(m.status, Status::Stopped | Status::Errored)) =>
        {
            Decision::Restart(existing.iter().map(|m| m.id).collect())
        }
        Mode::Start { force: false } => Decision::Refuse(format!(
            "Script {} already launched as app \"{}\", add -f option to force re-execution",
            spec.script, spec.name
        )),
    }
}

/// What a request will do, decided and reserved under one registry lock.
struct Plan {
    restarts: Vec<(Vec<u32>, Arc<AppSpec>)>,
    new: Vec<NewInstances>,
}

/// Decide for every spec and reserve the new instances, all or nothing: on an error nothing is
/// reserved and nothing has changed.
fn plan(reg: &mut Registry, apps: Vec<AppSpec>, mode: Mode) -> Result<Plan, String> {
    let max = max_instances();
    let mut managed: Vec<Managed> = reg
        .entries
        .iter()
        .map(|(&id, e)| {
            let s = e.shared.lock().unwrap();
            Managed {
                id,
                name: s.spec.name.clone(),
                script: s.spec.script.clone(),
                status: s.status,
            }
        })
        .collect();
    let mut plan = Plan {
        restarts: Vec::new(),
        new: Vec::new(),
    };
    let mut result = Ok(());
    for spec in apps {
        let spec = Arc::new(spec);
        match decide(&spec, &managed, mode) {
            Decision::New => match register::reserve(reg, spec.clone(), max) {
                Ok(new) => {
                    // In a file, a later app of the same name restarts these (as PM2, which
                    // applies the apps one after the other).
                    if mode == Mode::Apply {
                        managed.extend(new.slots.iter().map(|s| Managed {
                            id: s.id,
                            name: spec.name.clone(),
                            script: spec.script.clone(),
                            status: Status::Launching,
                        }));
                    }
                    plan.new.push(new);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
            Decision::Restart(ids) => plan.restarts.push((ids, spec)),
            Decision::Refuse(message) => {
                result = Err(message);
                break;
            }
        }
    }
    if let Err(e) = result {
        for n in &plan.new {
            reg.release(&n.slots);
        }
        return Err(e);
    }
    Ok(plan)
}

/// `patch`: the options of the command line, for the stopped apps this restarts (PM2 applies
/// them as it does for `restart`).
pub async fn start(d: &Arc<Daemon>, req: StartRequest) -> Response {
    let StartRequest { apps, force, patch } = req;
    let (plan, specs) = {
        let mut reg = d.registry.lock().unwrap();
        let plan = match plan(&mut reg, apps, Mode::Start { force }) {
            Ok(p) => p,
            Err(message) => return Response::Error { message },
        };
        let restart_ids: Vec<u32> = plan.restarts.iter().flat_map(|r| r.0.clone()).collect();
        match patch.filter(|p| !p.is_empty()) {
            None => (plan, BTreeMap::new()),
            Some(p) => match patched(&reg, &restart_ids, &p) {
                Ok(specs) => (plan, specs),
                Err(message) => {
                    for n in &plan.new {
                        reg.release(&n.slots);
                    }
                    return Response::Error { message };
                }
            },
        }
    };
    let mut waits = Vec::new();
    let mut ids = Vec::new();
    for new in plan.new {
        for (id, wait) in launch(d, new) {
            ids.push(id);
            waits.extend(wait);
        }
    }
    let mut results = collect(waits).await;
    let restart_ids: Vec<u32> = plan.restarts.into_iter().flat_map(|r| r.0).collect();
    if !restart_ids.is_empty() {
        results.extend(act_with(d, Action::Restart, &restart_ids, None, &specs).await);
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
pub async fn apply(d: &Arc<Daemon>, req: ApplyRequest) -> Response {
    let ApplyRequest {
        apps,
        reload: reload_known,
    } = req;
    let plan = match plan(&mut d.registry.lock().unwrap(), apps, Mode::Apply) {
        Ok(p) => p,
        Err(message) => return Response::Error { message },
    };
    let mut waits = Vec::new();
    for new in plan.new {
        waits.extend(launch(d, new).into_iter().filter_map(|(_, w)| w));
    }
    let mut results = Vec::new();
    for (ids, spec) in plan.restarts {
        let update = instance::Update {
            env: None,
            spec: Some(spec),
        };
        if reload_known {
            let parallel = pmr_core::knobs::get().reload_parallel(None);
            results.extend(reload_with(d, &ids, |_| update.clone(), parallel).await);
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

#[cfg(test)]
mod tests {
    use super::*;
    use pmr_core::spec::test_spec;

    fn m(id: u32, name: &str, script: &str, status: Status) -> Managed {
        Managed {
            id,
            name: name.into(),
            script: script.into(),
            status,
        }
    }

    #[test]
    fn start_restarts_stopped_apps_and_refuses_running_ones() {
        let spec = test_spec("web"); // script /bin/true
        let start = Mode::Start { force: false };
        assert_eq!(decide(&spec, &[], start), Decision::New);
        let other_script = [m(0, "web", "/bin/false", Status::Online)];
        assert_eq!(decide(&spec, &other_script, start), Decision::New);
        let stopped = [
            m(0, "web", "/bin/true", Status::Stopped),
            m(1, "web", "/bin/true", Status::Errored),
            m(2, "api", "/bin/true", Status::Online),
        ];
        assert_eq!(
            decide(&spec, &stopped, start),
            Decision::Restart(vec![0, 1])
        );
        let running = [
            m(0, "web", "/bin/true", Status::Stopped),
            m(1, "web", "/bin/true", Status::Online),
        ];
        assert!(matches!(
            decide(&spec, &running, start),
            Decision::Refuse(e) if e.contains("already launched as app \"web\"")
        ));
        assert_eq!(
            decide(&spec, &running, Mode::Start { force: true }),
            Decision::New
        );
    }

    #[test]
    fn apply_restarts_any_app_of_that_name() {
        let spec = test_spec("web");
        assert_eq!(decide(&spec, &[], Mode::Apply), Decision::New);
        let known = [
            m(3, "web", "/other", Status::Online),
            m(4, "api", "/bin/true", Status::Stopped),
            m(5, "web", "/bin/true", Status::Errored),
        ];
        assert_eq!(
            decide(&spec, &known, Mode::Apply),
            Decision::Restart(vec![3, 5])
        );
    }
}
