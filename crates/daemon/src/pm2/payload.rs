//! Processes as PM2's daemon shows them: in replies, `{pid, name, pm2_env, pm_id, monit}` (the
//! elements of `jlist`); in bus messages, the `pm2_env` without its `env` (PM2's `formatCLU`).

use crate::daemon::Daemon;
use crate::requests::list;
use serde_json::Value;

pub fn home(d: &Daemon) -> String {
    d.ctx.home.root.display().to_string()
}

/// The `jlist` elements of these instances (those that exist), by id. Blocking: reads /proc.
pub fn formatted(d: &Daemon, ids: &[u32]) -> Vec<Value> {
    let home = home(d);
    list::procs_of(d, ids)
        .iter()
        .map(|p| pmr_render::jlist::jlist_value(p, &home))
        .collect()
}

/// Every instance, as `getMonitorData` lists them. Blocking.
pub fn all(d: &Daemon) -> Vec<Value> {
    let home = home(d);
    list::procs_now(d, true)
        .iter()
        .map(|p| pmr_render::jlist::jlist_value(p, &home))
        .collect()
}

/// The `process` of a bus message about this instance: its `pm2_env` without `env`.
pub fn clu(formatted: &Value) -> Value {
    let mut env = formatted.get("pm2_env").cloned().unwrap_or(Value::Null);
    if let Some(m) = env.as_object_mut() {
        m.remove("env");
    }
    env
}

/// The short `process` of log and app messages.
pub fn short(pm_id: u32, name: &str, namespace: &str) -> Value {
    serde_json::json!({ "pm_id": pm_id, "name": name, "rev": null, "namespace": namespace })
}

/// ms since the epoch, PM2's `at`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
