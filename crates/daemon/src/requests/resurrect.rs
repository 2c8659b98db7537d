//! `resurrect`: a dump's processes registered in one request, each in the state it was saved
//! in, every app whose name is already managed skipped (as PM2's `resurrect`).

use crate::daemon::Daemon;
use crate::instances::registry::{Registry, Slot};
use crate::requests::collect;
use crate::requests::register::{self, launch_as, Initial, NewInstances};
use pmr_core::protocol::{
    max_instances, ActionResult, DumpProc, Response, ResurrectRequest, Status,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The new instances and how each begins, reserved under one registry lock.
struct Plan {
    new: Vec<(NewInstances, Initial)>,
    skipped: Vec<String>,
}

/// Reserve a slot for every process of an app not yet managed: the dump's id and instance
/// number when both are free, else the next free ones. All or nothing.
fn plan(reg: &mut Registry, procs: Vec<DumpProc>) -> Result<Plan, String> {
    let managed: BTreeSet<String> = reg
        .entries
        .values()
        .map(|e| e.shared.lock().unwrap().spec.name.clone())
        .collect();
    let mut plan = Plan {
        new: Vec::new(),
        skipped: Vec::new(),
    };
    let max = max_instances();
    let mut taken: Vec<Slot> = Vec::new();
    let mut result = Ok(());
    for p in procs {
        if managed.contains(&p.spec.name) {
            if !plan.skipped.contains(&p.spec.name) {
                plan.skipped.push(p.spec.name.clone());
            }
            continue;
        }
        let initial = match (&p.error, p.status) {
            (Some(e), _) => Initial::Errored(e.clone()),
            (None, Status::Stopped | Status::Stopping) => Initial::Stopped,
            (None, _) => Initial::Start,
        };
        let wanted = Slot {
            id: p.pm_id,
            instance: p.instance,
        };
        let spec = Arc::new(p.spec);
        let slots = if reg.reserve_at(&spec.name, wanted) {
            vec![wanted]
        } else {
            let mut one = (*spec).clone();
            one.instances = 1;
            match register::reserve(reg, Arc::new(one), max) {
                Ok(n) => n.slots,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        };
        taken.extend(slots.iter().copied());
        plan.new.push((NewInstances { spec, slots }, initial));
    }
    if let Err(e) = result {
        reg.release(&taken);
        return Err(e);
    }
    Ok(plan)
}

pub async fn resurrect(d: &Arc<Daemon>, req: ResurrectRequest) -> Response {
    let ResurrectRequest { procs } = req;
    let plan = match plan(&mut d.registry.lock().unwrap(), procs) {
        Ok(p) => p,
        Err(message) => return Response::Error { message },
    };
    let mut waits = Vec::new();
    let mut results = Vec::new();
    for (new, initial) in plan.new {
        let name = new.spec.name.clone();
        let error = match &initial {
            Initial::Errored(e) => Some(e.clone()),
            _ => None,
        };
        for (id, wait) in launch_as(d, new, initial.clone()) {
            match wait {
                Some(w) => waits.push(w),
                None => results.push(ActionResult {
                    id,
                    name: name.clone(),
                    error: error.clone(),
                }),
            }
        }
    }
    results.extend(collect(waits).await);
    results.sort_by_key(|r| r.id);
    Response::Resurrected {
        results,
        skipped: plan.skipped,
    }
}
