//! New instances: table entries, their log/pid paths, their tasks (for start, apply, scale).

use crate::daemon::Daemon;
use crate::instances::instance::{Ctl, Instance, Paths, Shared};
use crate::instances::registry::{Entry, Registry, Slot};
use crate::processes::spawn;
use crate::requests::StartWait;
use pmr_core::paths::{sanitize_name, with_id_suffix, Home};
use pmr_core::protocol::{too_many_instances, Status};
use pmr_core::spec::AppSpec;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub fn default_paths(home: &Home, spec: &AppSpec, id: u32) -> Paths {
    let base = sanitize_name(&spec.name);
    let logs = home.logs_dir();
    let per_id = |p: String| {
        if spec.merge_logs {
            p
        } else {
            with_id_suffix(&p, id)
        }
    };
    let user_or = |user: &Option<String>, default: String| match user {
        Some(u) if pmr_core::paths::is_null_device(u) => u.clone(),
        Some(u) => per_id(u.clone()),
        None => per_id(default),
    };
    Paths {
        out: user_or(
            &spec.out_file,
            logs.join(format!("{base}-out.log"))
                .to_string_lossy()
                .into_owned(),
        )
        .into(),
        err: user_or(
            &spec.error_file,
            logs.join(format!("{base}-error.log"))
                .to_string_lossy()
                .into_owned(),
        )
        .into(),
        combined: spec.log_file.as_ref().map(|l| {
            if l.is_empty() {
                per_id(
                    logs.join(format!("{base}.log"))
                        .to_string_lossy()
                        .into_owned(),
                )
            } else {
                per_id(l.clone())
            }
            .into()
        }),
        pid: spec
            .pid_file
            .clone()
            .map(|p| with_id_suffix(&p, id))
            .unwrap_or_else(|| {
                home.pids_dir()
                    .join(format!("{base}-{id}.pid"))
                    .to_string_lossy()
                    .into_owned()
            })
            .into(),
    }
}

/// One app's new instances: slots reserved under the registry lock, built outside it.
pub struct NewInstances {
    pub spec: Arc<AppSpec>,
    pub slots: Vec<Slot>,
}

/// Reserve `spec.instances` slots for `spec` (see `Registry::reserve`).
pub fn reserve(reg: &mut Registry, spec: Arc<AppSpec>, max: u32) -> Result<NewInstances, String> {
    if spec.instances > max {
        return Err(too_many_instances(&spec.name, spec.instances, max));
    }
    let slots = reg.reserve(&spec.name, spec.instances.max(1), max)?;
    Ok(NewInstances { spec, slots })
}

/// Add reserved instances to the table and launch them (unless `autostart` is off); returns
/// their ids with the replies that come when each is online. The per-instance work (state,
/// env, paths, tasks) happens outside the registry lock, which is taken once to insert them.
pub fn launch(d: &Arc<Daemon>, new: NewInstances) -> Vec<(u32, Option<StartWait>)> {
    let initial = if new.spec.autostart {
        Initial::Start
    } else {
        Initial::Stopped
    };
    launch_as(d, new, initial)
}

/// How a new instance begins.
#[derive(Debug, Clone, PartialEq)]
pub enum Initial {
    Start,
    Stopped,
    /// Registered `errored` with this reason, not started (a resurrected app whose script is
    /// gone).
    Errored(String),
}

/// `launch`, with the first state chosen by the caller (`resurrect` keeps a dump's states).
pub fn launch_as(
    d: &Arc<Daemon>,
    new: NewInstances,
    initial: Initial,
) -> Vec<(u32, Option<StartWait>)> {
    let NewInstances { spec, slots } = new;
    let home = d.ctx.home.root.to_string_lossy().into_owned();
    let mut out = Vec::with_capacity(slots.len());
    let mut entries = Vec::with_capacity(slots.len());
    let mut tasks = Vec::with_capacity(slots.len());
    for Slot { id, instance } in slots {
        let status = match initial {
            Initial::Start => Status::Launching,
            Initial::Stopped => Status::Stopped,
            Initial::Errored(_) => Status::Errored,
        };
        let env = spawn::child_env(&spec, id, instance, &home);
        let mut state = Shared::new(
            spec.clone(),
            instance,
            status,
            env,
            default_paths(&d.ctx.home, &spec, id),
        );
        if let Initial::Errored(e) = &initial {
            state.last_error = Some(e.clone());
        }
        let shared = Arc::new(Mutex::new(state));
        let (tx, rx) = crate::instances::instance::channel();
        // Queued before the entry is visible: `Start` is the first message the task reads.
        let wait = (initial == Initial::Start).then(|| {
            let (rtx, rrx) = oneshot::channel();
            let _ = tx.send(Ctl::Start(rtx));
            (id, spec.name.clone(), rrx)
        });
        tasks.push((
            Instance {
                id,
                shared: shared.clone(),
                ctx: d.ctx.clone(),
            },
            rx,
        ));
        entries.push((id, Entry { shared, ctl: tx }));
        out.push((id, wait));
    }
    {
        let mut reg = d.registry.lock().unwrap();
        for (id, entry) in entries {
            reg.insert(id, entry);
        }
    }
    d.ctx.table.touch();
    for (inst, rx) in tasks {
        tokio::spawn(inst.run(rx));
    }
    out
}
