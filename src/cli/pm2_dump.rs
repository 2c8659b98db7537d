//! PM2's `dump.pm2` → pmr's dump processes: `pmr resurrect ~/.pm2/dump.pm2` moves from PM2 in
//! one command. Each `pm2_env` object is mapped to PM2's app options and built into a spec
//! as an ecosystem app would be, with the environment PM2 recorded (not the CLI's).

use pmr_config::app::{build_spec, BuildCtx};
use pmr_config::options::normalize_app_lenient;
use pmr_core::protocol::{DumpProc, Status};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Options copied as they are when PM2 recorded them (PM2 keeps unset ones out, or `null`).
const COPIED: &[&str] = &[
    "namespace",
    "max_memory_restart",
    "kill_timeout",
    "autorestart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "listen_timeout",
    "wait_ready",
    "treekill",
    "merge_logs",
    "cron_restart",
    "instance_var",
    "increment_var",
    "log_date_format",
    "stop_exit_codes",
    "shutdown_with_message",
    "log_type",
    "time",
    "watch",
    "ignore_watch",
];

/// Variables PM2's CLI adds to every app's `env` (pmr's apps get `PMR_HOME` instead).
const PM2_MARKERS: &[&str] = &[
    "PM2_USAGE",
    "PM2_INTERACTOR_PROCESSING",
    "PM2_JSON_PROCESSING",
    "PM2_HOME",
    "unique_id",
];

/// The processes of a PM2 dump found in `dump_dir` (PM2's home: its default log files there
/// are not carried over, pmr's own go to `$PMR_HOME/logs`). `Err`: a process has the wrong
/// types (nothing is started then). Apps that cannot be built (script gone, interpreter
/// missing) come back with `error` set, to be registered `errored`.
pub fn convert(list: &[Map<String, Value>], dump_dir: &Path) -> Result<Vec<DumpProc>, String> {
    let mut names: Vec<String> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let name =
            str_of(p, "name").ok_or_else(|| format!("process {i} has no string \"name\""))?;
        str_of(p, "pm_exec_path")
            .ok_or_else(|| format!("process {i} (\"{name}\") has no string \"pm_exec_path\""))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut out = Vec::new();
    for name in &names {
        let members: Vec<(usize, &Map<String, Value>)> = list
            .iter()
            .enumerate()
            .filter(|(_, p)| str_of(p, "name").as_deref() == Some(name.as_str()))
            .collect();
        let first = members[0].1;
        let (spec, error) = spec_of(first, members.len(), dump_dir)
            .map_err(|e| format!("process \"{name}\": {e}"))?;
        for (index, p) in members {
            out.push(DumpProc {
                // PM2 leaves `pm_id` out of its dump: the ids it would give in its order.
                pm_id: index as u32,
                instance: p
                    .get("NODE_APP_INSTANCE")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                status: match p.get("status").and_then(Value::as_str) {
                    Some("stopped" | "stopping") => Status::Stopped,
                    _ => Status::Online,
                },
                spec: spec.clone(),
                error: error.clone(),
            });
        }
    }
    Ok(out)
}

fn str_of(p: &Map<String, Value>, k: &str) -> Option<String> {
    p.get(k).and_then(Value::as_str).map(str::to_string)
}

/// PM2's app options of one `pm2_env`.
fn options_of(p: &Map<String, Value>, instances: usize, dump_dir: &Path) -> Map<String, Value> {
    let name = str_of(p, "name").unwrap_or_default();
    let mut o = Map::new();
    o.insert("name".into(), name.clone().into());
    o.insert(
        "script".into(),
        str_of(p, "pm_exec_path").unwrap_or_default().into(),
    );
    if let Some(cwd) = str_of(p, "pm_cwd") {
        o.insert("cwd".into(), cwd.into());
    }
    if let Some(i) = str_of(p, "exec_interpreter") {
        o.insert("interpreter".into(), i.into());
    }
    for (from, to) in [("node_args", "interpreter_args"), ("args", "args")] {
        if let Some(v) = p.get(from).filter(|v| !v.is_null()) {
            o.insert(to.into(), v.clone());
        }
    }
    let cluster = str_of(p, "exec_mode").is_some_and(|m| m.starts_with("cluster"));
    o.insert(
        "exec_mode".into(),
        if cluster { "cluster" } else { "fork" }.into(),
    );
    o.insert("instances".into(), (instances as u64).into());
    for k in COPIED {
        if let Some(v) = p.get(*k).filter(|v| !v.is_null()) {
            o.insert((*k).into(), v.clone());
        }
    }
    // Log files the user chose; PM2's defaults (in its home) give way to pmr's.
    let pm2_logs = dump_dir.join("logs");
    for (from, to) in [
        ("pm_out_log_path", "out_file"),
        ("pm_err_log_path", "error_file"),
    ] {
        let pm2_default = |f: &String| {
            let file = Path::new(f)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base = pmr_core::paths::sanitize_name(&name);
            Path::new(f).starts_with(&pm2_logs)
                || file.starts_with(&format!("{base}-out"))
                || file.starts_with(&format!("{base}-error"))
        };
        if let Some(path) = str_of(p, from).filter(|f| !pm2_default(f)) {
            o.insert(to.into(), path.into());
        }
    }
    let mut env = match p.get("env") {
        Some(Value::Object(e)) => e.clone(),
        _ => Map::new(),
    };
    for k in PM2_MARKERS {
        env.remove(*k);
    }
    // PM2's `{}` under the app's own name (its module settings slot).
    env.remove(&name);
    o.insert("env".into(), Value::Object(env));
    o
}

/// The spec of an app, or (when it cannot be built) a spec carrying what PM2 recorded with
/// the reason, so the app is listed `errored` instead of vanishing.
fn spec_of(
    p: &Map<String, Value>,
    instances: usize,
    dump_dir: &Path,
) -> Result<(pmr_core::spec::AppSpec, Option<String>), String> {
    let raw = options_of(p, instances, dump_dir);
    let (opts, _unknown) = normalize_app_lenient(&raw).map_err(|e| e.to_string())?;
    let path = opts
        .get("env")
        .and_then(|e| e.get("PATH"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let cwd = str_of(p, "pm_cwd").unwrap_or_else(|| "/".into());
    let ctx = BuildCtx {
        base_dir: cwd.clone().into(),
        // PM2 recorded the whole environment the app had: it is the app's `env`, over nothing.
        env: BTreeMap::from([("PATH".to_string(), path)]),
        ..BuildCtx::from_process(None)
    };
    match build_spec(&opts, &ctx) {
        Ok(spec) => Ok((spec, None)),
        Err(why) => {
            // Built around a file that exists, then given back PM2's script and cwd: the
            // spec is only shown (errored) and tried again by a restart.
            let mut stand_in = opts.clone();
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            stand_in.insert("script".into(), exe.to_string_lossy().into_owned().into());
            stand_in.insert("interpreter".into(), "none".into());
            stand_in.insert("cwd".into(), "/".into());
            stand_in.remove("exec_mode");
            let ctx = BuildCtx {
                base_dir: "/".into(),
                ..ctx
            };
            let mut spec = build_spec(&stand_in, &ctx).map_err(|e| format!("{why}; {e}"))?;
            spec.script = str_of(p, "pm_exec_path").unwrap_or_default();
            spec.cwd = cwd;
            spec.interpreter = str_of(p, "exec_interpreter").filter(|i| i != "none");
            Ok((spec, Some(why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn wrong_types_are_refused_and_gone_scripts_kept_as_errored() {
        let dir = Path::new("/nonexistent-pm2-home");
        let no_name = obj(json!({"pm_exec_path": "/x.js"}));
        assert!(convert(&[no_name], dir).unwrap_err().contains("\"name\""));
        let bad_path = obj(json!({"name": "a", "pm_exec_path": 3}));
        assert!(convert(&[bad_path], dir)
            .unwrap_err()
            .contains("pm_exec_path"));

        let gone = obj(json!({
            "name": "gone", "pm_exec_path": "/nonexistent/app.js", "pm_cwd": "/",
            "exec_interpreter": "node", "exec_mode": "fork_mode", "status": "online",
            "env": {"PM2_HOME": "/h", "PM2_USAGE": "CLI", "gone": "{}", "KEEP": "1"},
            "pm_out_log_path": "/nonexistent-pm2-home/logs/gone-out.log",
        }));
        let procs = convert(&[gone.clone(), gone], dir).unwrap();
        assert_eq!(procs.len(), 2);
        let p = &procs[0];
        assert!(
            p.error.as_deref().unwrap().contains("Script not found"),
            "{p:?}"
        );
        assert_eq!(p.spec.script, "/nonexistent/app.js");
        assert_eq!(p.spec.interpreter.as_deref(), Some("node"));
        assert_eq!(p.spec.instances, 2);
        assert_eq!((procs[0].pm_id, procs[1].pm_id), (0, 1));
        assert_eq!(p.spec.env.get("KEEP").map(String::as_str), Some("1"));
        for k in ["PM2_HOME", "PM2_USAGE", "gone"] {
            assert!(!p.spec.env.contains_key(k), "{k}");
        }
        assert_eq!(p.spec.out_file, None, "PM2's default log path is not kept");
    }
}
