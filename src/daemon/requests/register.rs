//! New instances: table entries, their log/pid paths, their tasks (for start, apply, scale).

use super::StartWait;
use crate::daemon::instance::{now_ms, Ctl, Instance, Paths, Shared};
use crate::daemon::registry::Entry;
use crate::daemon::spawn;
use crate::daemon::state::Daemon;
use crate::paths::{sanitize_name, with_id_suffix, Home};
use crate::protocol::Status;
use crate::spec::AppSpec;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

fn default_paths(home: &Home, spec: &AppSpec, id: u32) -> Paths {
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
        Some(u) if u == "/dev/null" || u == "NULL" => u.clone(),
        Some(u) => per_id(u.clone()),
        None => per_id(default),
    };
    Paths {
        out: user_or(
            &spec.out_file,
            logs.join(format!("{base}-out.log"))
                .to_string_lossy()
                .into_owned(),
        ),
        err: user_or(
            &spec.error_file,
            logs.join(format!("{base}-error.log"))
                .to_string_lossy()
                .into_owned(),
        ),
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
            }),
    }
}

/// Add `spec.instances` new processes to the table and launch them (unless `autostart` is
/// off); returns their ids with the replies that come when each is online.
pub fn register(d: &Arc<Daemon>, spec: Arc<AppSpec>) -> Vec<(u32, Option<StartWait>)> {
    let mut reg = d.registry.lock().unwrap();
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for _ in 0..spec.instances.max(1) {
        let id = reg.next_id();
        let instance = reg.free_instance_number(&spec.name, &taken);
        taken.push(instance);
        let now = now_ms();
        let shared = Arc::new(Mutex::new(Shared {
            spec: spec.clone(),
            instance,
            status: if spec.autostart {
                Status::Launching
            } else {
                Status::Stopped
            },
            pid: 0,
            pm_uptime: now,
            created_at: now,
            restart_time: 0,
            counters: Default::default(),
            exit_code: None,
            last_error: None,
            env: spawn::child_env(&spec, id, instance, &d.ctx.home.root.to_string_lossy()),
            paths: default_paths(&d.ctx.home, &spec, id),
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let inst = Instance {
            id,
            shared: shared.clone(),
            ctx: d.ctx.clone(),
        };
        tokio::spawn(inst.run(rx));
        let wait = spec.autostart.then(|| {
            let (rtx, rrx) = oneshot::channel();
            let _ = tx.send(Ctl::Start(rtx));
            (id, spec.name.clone(), rrx)
        });
        reg.insert(id, Entry { shared, ctl: tx });
        out.push((id, wait));
    }
    out
}
