//! `scale`: add instances with the app's spec, or retire the highest instance numbers.

use super::{collect, fan_out};
use crate::daemon::Daemon;
use crate::instances::instance::Ctl;
use crate::requests::register::{self, launch};
use pmr_core::protocol::{max_instances, too_many_instances, ActionResult, Response, ScaleRequest};
use pmr_core::spec::AppSpec;
use std::sync::Arc;

/// Scale an app: new instances take the next free instance numbers with the app's spec;
/// scaling down retires the highest instance numbers (PM2 stops the lowest, which kills
/// instance 0, where apps often run their once-per-cluster jobs).
pub async fn scale(d: &Arc<Daemon>, req: ScaleRequest) -> Response {
    let ScaleRequest {
        name,
        relative,
        count,
    } = req;
    let name = &name[..];
    let mut members: Vec<(u32, u32, Arc<AppSpec>)> = d
        .registry
        .lock()
        .unwrap()
        .snapshot()
        .into_iter()
        .filter(|(_, s)| s.spec.name == name)
        .map(|(id, s)| (s.instance, id, s.spec))
        .collect();
    if members.is_empty() {
        return Response::Error {
            message: format!("app {name} not found"),
        };
    }
    members.sort_by_key(|m| m.0);
    let current = members.len() as i64;
    // Any i64 may come from a client: checked arithmetic, and a bound before any work.
    let target = if relative {
        current.checked_add(count)
    } else {
        Some(count)
    };
    let target = match target {
        Some(t) if t >= 0 => t,
        _ => {
            let shown = target.map_or_else(|| format!("{current}{count:+}"), |t| t.to_string());
            return Response::Error {
                message: format!("cannot scale {name} to {shown} instances (it has {current})"),
            };
        }
    };
    let max = max_instances();
    if target > current && target > i64::from(max) {
        return Response::Error {
            message: too_many_instances(name, target, max),
        };
    }
    let mut results = Vec::new();
    if target > current {
        let mut spec = (*members[0].2).clone();
        // Fits: current < target <= max.
        spec.instances = (target - current) as u32;
        let mut new = match register::reserve(&mut d.registry.lock().unwrap(), Arc::new(spec), max)
        {
            Ok(n) => n,
            Err(message) => return Response::Error { message },
        };
        // That count only said how many slots to reserve: the added instances show the app's
        // `instances` as its others do (PM2's too).
        let mut shown = (*new.spec).clone();
        shown.instances = members[0].2.instances;
        new.spec = Arc::new(shown);
        let mut waits = Vec::new();
        for (id, wait) in launch(d, new) {
            match wait {
                Some(w) => waits.push(w),
                None => results.push(ActionResult {
                    id,
                    name: name.to_string(),
                    error: None,
                }),
            }
        }
        results.extend(collect(waits).await);
    } else if target < current {
        let ids: Vec<u32> = members[target as usize..].iter().map(|m| m.1).collect();
        results = fan_out(d, &ids, Ctl::Retire).await;
        let mut reg = d.registry.lock().unwrap();
        for r in &results {
            if r.error.is_none() {
                reg.remove(r.id);
            }
        }
        d.ctx.table.touch();
    }
    Response::Done { results }
}
