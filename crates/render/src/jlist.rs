//! `pmr jlist`: PM2's `getMonitorData()` element shape, so exporters and scripts written for
//! `pm2 jlist` read pmr unchanged (PM2 7's own output is in `testdata/`; the differential harness,
//! docs/pm2-diff-harness.md, compares the two). Each element as a `serde_json::Value`: the
//! reference that `jlist_write`, which writes the text, matches byte for byte.

use super::{app_version, json_number, live_monit};
use pmr_core::protocol::ProcInfo;
use pmr_core::spec::LogRotate;
use serde_json::{json, Map, Value};

/// PM2's option defaults: an option at its default is left out of `pm2_env`, as PM2 only echoes
/// options that were set.
pub(super) const DEFAULT_KILL_TIMEOUT: u64 = 1600;
pub(super) const DEFAULT_LISTEN_TIMEOUT: u64 = 3000;
pub(super) const DEFAULT_MIN_UPTIME: u64 = 1000;
pub(super) const DEFAULT_MAX_RESTARTS: u32 = 16;

/// One element of `pmr jlist`. `home` is `$PMR_HOME`, shown as `env.PMR_HOME` where PM2 shows
/// `PM2_HOME`.
pub fn jlist_value(p: &ProcInfo, home: &str) -> Value {
    let s = &p.spec;
    let env = env_object(p, home);
    let mut e = Map::new();
    let put = |e: &mut Map<String, Value>, k: &str, v: Value| {
        e.insert(k.to_string(), v);
    };

    put(&mut e, "name", json!(s.name));
    if !s.removed("namespace") {
        put(&mut e, "namespace", json!(s.namespace));
    }
    put(&mut e, "env", Value::Object(env.clone()));
    if s.merge_logs {
        put(&mut e, "merge_logs", json!(true));
    }
    if s.pmx_module {
        put(&mut e, "pmx_module", json!(true));
    }
    put(&mut e, "autostart", json!(s.autostart));
    put(&mut e, "autorestart", json!(s.autorestart));
    if !s.removed("watch") {
        put(&mut e, "watch", s.watch.to_json());
    }
    put(&mut e, "instance_var", json!(s.instance_var));
    put(&mut e, "treekill", json!(s.treekill));
    put(&mut e, "username", json!(p.username));
    put(&mut e, "kill_retry_time", json!(100));
    if !s.removed("interpreter_args") {
        put(&mut e, "node_args", json!(s.interpreter_args));
    }
    put(&mut e, "pm_exec_path", json!(s.script));
    put(&mut e, "pm_cwd", json!(s.cwd));
    if !s.removed("interpreter") {
        put(&mut e, "exec_interpreter", json!(s.interpreter_display()));
    }
    put(&mut e, "exec_mode", json!(s.exec_mode.pm2_name()));
    put(&mut e, "instances", json!(s.instances));

    if s.kill_timeout != DEFAULT_KILL_TIMEOUT {
        put(&mut e, "kill_timeout", json!(s.kill_timeout));
    }
    if s.listen_timeout != DEFAULT_LISTEN_TIMEOUT {
        put(&mut e, "listen_timeout", json!(s.listen_timeout));
    }
    if s.min_uptime != DEFAULT_MIN_UPTIME {
        put(&mut e, "min_uptime", json!(s.min_uptime));
    }
    if s.max_restarts != DEFAULT_MAX_RESTARTS {
        put(&mut e, "max_restarts", json!(s.max_restarts));
    }
    if s.restart_delay != 0 {
        put(&mut e, "restart_delay", json!(s.restart_delay));
    }
    if let Some(d) = s.exp_backoff_restart_delay {
        put(&mut e, "exp_backoff_restart_delay", json!(d));
    }
    if !s.stop_exit_codes.is_empty() {
        put(&mut e, "stop_exit_codes", json!(s.stop_exit_codes));
    }
    if s.wait_ready {
        put(&mut e, "wait_ready", json!(true));
    }
    if s.shutdown_with_message {
        put(&mut e, "shutdown_with_message", json!(true));
    }
    if let Some(v) = &s.increment_var {
        put(&mut e, "increment_var", json!(v));
    }
    if let Some(v) = &s.log_date_format {
        put(&mut e, "log_date_format", json!(v));
    }
    if s.disable_logs {
        put(&mut e, "disable_logs", json!(true));
    }
    if let Some(v) = &s.log_type {
        put(&mut e, "log_type", json!(v));
    }
    // Typed options the user set, where `extra` used to put them (option table order).
    if let Some(v) = &s.ignore_watch {
        put(&mut e, "ignore_watch", json!(v));
    }
    if let Some(v) = s.watch_delay {
        put(&mut e, "watch_delay", json!(v));
    }
    if let Some(v) = &s.watch_options {
        put(&mut e, "watch_options", Value::Object(v.clone()));
    }
    if let Some(v) = s.max_memory_restart {
        put(&mut e, "max_memory_restart", json!(v));
    }
    if !s.drain_keepalive {
        put(&mut e, "drain_keepalive", json!(false));
    }
    if let Some(v) = &s.instance_balancing {
        put(&mut e, "instance_balancing", json!(v));
    }
    if !s.catch_unhandled_rejections {
        put(&mut e, "catch_unhandled_rejections", json!(false));
    }
    if !s.listen.is_empty() {
        let l: Vec<&str> = s.listen.iter().map(|a| a.as_str()).collect();
        put(&mut e, "listen", json!(l));
    }
    if let Some(v) = &s.cron_restart {
        put(&mut e, "cron_restart", json!(v));
    }
    if let Some(r) = &s.log_rotate {
        put(&mut e, "log_rotate", log_rotate_value(r));
    }
    // A key already present keeps its place and takes the user's value, as a JS assignment
    // would.
    for (k, v) in &s.extra {
        put(&mut e, k, v.clone());
    }

    put(&mut e, "pm_out_log_path", json!(p.out_log_path));
    put(&mut e, "pm_err_log_path", json!(p.err_log_path));
    if let Some(l) = &p.log_path {
        put(&mut e, "pm_log_path", json!(l));
    }
    put(&mut e, "pm_pid_path", json!(p.pid_path));
    if !s.args.is_empty() {
        put(&mut e, "args", json!(s.args));
    }
    put(&mut e, &s.instance_var, json!(p.instance));
    // PM2 copies every env var to the top level too; config keys of the same name win, and
    // objects stay behind (`Common.extend` skips `[object Object]`).
    for (k, v) in &env {
        if !e.contains_key(k) && !v.is_object() {
            e.insert(k.clone(), v.clone());
        }
    }

    put(&mut e, "status", json!(p.status.as_str()));
    put(&mut e, "pm_uptime", json!(p.pm_uptime));
    put(&mut e, "axm_actions", json!(p.axm.actions));
    put(&mut e, "axm_monitor", Value::Object(p.axm.monitor.clone()));
    let mut options = super::axm::axm_options(s, env.get(&s.name).and_then(Value::as_str));
    // What the app's own agent reported (`axm:option:configuration`) wins, as in PM2.
    if let Value::Object(o) = &mut options {
        for (k, v) in &p.axm.options {
            o.insert(k.clone(), v.clone());
        }
    }
    put(&mut e, "axm_options", options);
    put(&mut e, "axm_dynamic", json!({}));
    put(&mut e, "created_at", json!(p.created_at));
    put(&mut e, "pm_id", json!(p.pm_id));
    put(&mut e, "restart_time", json!(p.restart_time));
    put(&mut e, "unstable_restarts", json!(p.unstable_restarts));
    if let Some(c) = p.exit_code {
        put(&mut e, "exit_code", json!(c));
    }
    if p.prev_restart_delay > 0 {
        put(&mut e, "prev_restart_delay", json!(p.prev_restart_delay));
    }
    put(&mut e, "version", json!(app_version(&s.script)));
    // pmr's own key (PM2's tools ignore keys they do not know): why each restart happened.
    put(&mut e, "pmr_restart_history", json!(p.restart_history));
    // pmr's own keys: what `watch` really watches (absent when nothing is), and the file
    // whose change last restarted the app.
    if let Some(w) = &p.watching {
        put(&mut e, "pmr_watching", json!(w));
    }
    if let Some(w) = &p.watch_last {
        put(&mut e, "pmr_watch_last", json!(w));
    }
    // Lines its log files could not take (disk full), when there are any.
    if p.log_lines_dropped > 0 {
        put(&mut e, "pmr_log_lines_dropped", json!(p.log_lines_dropped));
    }

    let (memory, cpu) = live_monit(p);
    let mut el = Map::new();
    el.insert("pid".into(), json!(p.pid));
    el.insert("name".into(), json!(s.name));
    el.insert("pm2_env".into(), Value::Object(e));
    el.insert("pm_id".into(), json!(p.pm_id));
    el.insert(
        "monit".into(),
        json!({ "memory": memory, "cpu": json_number(cpu) }),
    );
    Value::Object(el)
}

/// An app's `log_rotate` block as the user gave it (canonical keys, sizes in bytes).
pub(super) fn log_rotate_value(r: &LogRotate) -> Value {
    let mut m = Map::new();
    if let Some(v) = r.max_size {
        m.insert("max_size".into(), json!(v));
    }
    if let Some(v) = r.retain {
        m.insert("retain".into(), json!(v));
    }
    if let Some(v) = r.compress {
        m.insert("compress".into(), json!(v));
    }
    if let Some(v) = &r.interval {
        m.insert("interval".into(), json!(v));
    }
    if let Some(v) = &r.cron {
        m.insert("cron".into(), json!(v));
    }
    Value::Object(m)
}

/// Every key `jlist_value` puts in `pm2_env` itself, optional ones included.
const KEYS: &[&str] = &[
    "name",
    "namespace",
    "env",
    "merge_logs",
    "pmx_module",
    "autostart",
    "autorestart",
    "watch",
    "instance_var",
    "treekill",
    "username",
    "kill_retry_time",
    "node_args",
    "pm_exec_path",
    "pm_cwd",
    "exec_interpreter",
    "exec_mode",
    "instances",
    "kill_timeout",
    "listen_timeout",
    "min_uptime",
    "max_restarts",
    "restart_delay",
    "exp_backoff_restart_delay",
    "stop_exit_codes",
    "wait_ready",
    "shutdown_with_message",
    "increment_var",
    "log_date_format",
    "disable_logs",
    "log_type",
    "ignore_watch",
    "watch_delay",
    "watch_options",
    "max_memory_restart",
    "drain_keepalive",
    "instance_balancing",
    "catch_unhandled_rejections",
    "listen",
    "cron_restart",
    "log_rotate",
    "pm_out_log_path",
    "pm_err_log_path",
    "pm_log_path",
    "pm_pid_path",
    "args",
    "status",
    "pm_uptime",
    "axm_actions",
    "axm_monitor",
    "axm_options",
    "axm_dynamic",
    "created_at",
    "pm_id",
    "restart_time",
    "unstable_restarts",
    "exit_code",
    "prev_restart_delay",
    "version",
    "pmr_restart_history",
    "pmr_watching",
    "pmr_watch_last",
    "pmr_log_lines_dropped",
];

/// Whether `k` is a key `jlist_value` puts in `pm2_env` itself: a user-named key equal to one
/// takes its place there, so the byte writer leaves such an element to `jlist_value`.
pub(super) fn reserved(k: &str) -> bool {
    KEYS.contains(&k)
}

/// `pm2_env.env` as PM2's: the app's environment with the JSON types the config gave, this
/// instance's `increment_var` value (a number, as PM2's `God.injectVariables` makes it) and
/// `PMR_HOME`. Not the variables the daemon adds for the child (`pm_id`, `name`, `namespace`,
/// `exec_mode`, the instance var, ...): PM2 keeps those as top-level keys, and counting
/// `fork_mode` in `prettylist` must not find them twice.
pub(super) fn env_object(p: &ProcInfo, home: &str) -> Map<String, Value> {
    let s = &p.spec;
    let mut env = s.env_typed();
    if let Some(var) = &s.increment_var {
        if let Some(n) = p.env.get(var).and_then(|v| v.parse::<i64>().ok()) {
            env.insert(var.clone(), json!(n));
        }
    }
    if !home.is_empty() {
        env.insert(
            pmr_core::personality::current().home_var().into(),
            json!(home),
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc_info;
    use pmr_core::protocol::Status;

    #[test]
    fn element_shape_and_key_order() {
        let p = proc_info(0, "api", Status::Online);
        let v = jlist_value(&p, "/h/.pmr");
        let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(top, ["pid", "name", "pm2_env", "pm_id", "monit"]);
        let env = v["pm2_env"].as_object().unwrap();
        let keys: Vec<&str> = env.keys().map(|k| k.as_str()).collect();
        let pos = |k: &str| {
            keys.iter()
                .position(|x| *x == k)
                .unwrap_or_else(|| panic!("{k} missing"))
        };
        let order = [
            "name",
            "namespace",
            "env",
            "merge_logs",
            "autostart",
            "autorestart",
            "watch",
            "instance_var",
            "treekill",
            "username",
            "kill_retry_time",
            "node_args",
            "pm_exec_path",
            "pm_cwd",
            "exec_interpreter",
            "exec_mode",
            "instances",
            "pm_out_log_path",
            "pm_err_log_path",
            "pm_pid_path",
            "NODE_APP_INSTANCE",
            "PORT",
            "status",
            "pm_uptime",
            "axm_actions",
            "axm_monitor",
            "axm_options",
            "created_at",
            "pm_id",
            "restart_time",
            "unstable_restarts",
            "version",
        ];
        for w in order.windows(2) {
            assert!(
                pos(w[0]) < pos(w[1]),
                "{} should come before {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(env["exec_mode"], "fork_mode");
        assert_eq!(env["NODE_APP_INSTANCE"], 0);
        assert_eq!(env["kill_retry_time"], 100);
        assert_eq!(env["version"], "N/A");
        assert_eq!(env["pmr_restart_history"], json!([]));
        assert_eq!(env["env"]["PORT"], "3000");
        assert_eq!(env["env"]["PMR_HOME"], "/h/.pmr");
        // Injected per-instance variables are typed top-level keys, not strings in `env`.
        assert!(env["env"].get("pm_id").is_none());
        assert_eq!(env["pm_id"], 0);
        assert_eq!(env["name"], "api");
        for absent in [
            "pm_log_path",
            "args",
            "exit_code",
            "prev_restart_delay",
            "kill_timeout",
            "pmr_log_lines_dropped",
        ] {
            assert!(env.get(absent).is_none(), "{absent} should be absent");
        }
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["monit"], json!({"memory": 53587968, "cpu": 0.3}));
    }

    #[test]
    fn env_keeps_json_types_and_only_pm2s_keys() {
        let mut p = proc_info(1, "api", Status::Online);
        p.instance = 1;
        std::sync::Arc::make_mut(&mut p.spec).exec_mode = pmr_core::spec::ExecMode::Cluster;
        std::sync::Arc::make_mut(&mut p.spec).increment_var = Some("PORT".into());
        std::sync::Arc::make_mut(&mut p.spec)
            .env_json
            .insert("PORT".into(), json!(3000));
        std::sync::Arc::make_mut(&mut p.spec)
            .env
            .insert("FLAG".into(), "true".into());
        std::sync::Arc::make_mut(&mut p.spec)
            .env_json
            .insert("FLAG".into(), json!(true));
        // Changed since (`--update-env`): shown as the string it now is.
        std::sync::Arc::make_mut(&mut p.spec)
            .env
            .insert("RATIO".into(), "2".into());
        std::sync::Arc::make_mut(&mut p.spec)
            .env_json
            .insert("RATIO".into(), json!(1));
        std::sync::Arc::make_mut(&mut p.spec)
            .env_json
            .insert("api".into(), json!({}));
        // What the daemon adds for the child.
        for (k, v) in [
            ("PORT", "3001"),
            ("namespace", "default"),
            ("exec_mode", "cluster_mode"),
            ("PMR_HOME", "/h/.pmr"),
            ("NODE_APP_INSTANCE", "1"),
            ("PYTHONUNBUFFERED", "1"),
        ] {
            p.env.insert(k.into(), v.into());
        }
        let v = jlist_value(&p, "/h/.pmr");
        let env = &v["pm2_env"]["env"];
        assert_eq!(
            env,
            &json!({"FLAG": true, "PORT": 3001, "RATIO": "2", "api": {}, "PMR_HOME": "/h/.pmr"})
        );
        assert_eq!(v["pm2_env"]["PORT"], 3001);
        assert_eq!(v["pm2_env"]["FLAG"], true);
        assert!(
            v["pm2_env"].get("api").is_none(),
            "objects are not copied up"
        );
        assert_eq!(v["pm2_env"]["exec_mode"], "cluster_mode");
        assert_eq!(v["pm2_env"]["NODE_APP_INSTANCE"], 1);
        // `fork_mode`/`cluster_mode` once per process, as in PM2's prettylist.
        let text = crate::inspect(&v);
        assert_eq!(text.matches("cluster_mode").count(), 1, "{text}");
        assert_eq!(v["pm2_env"]["axm_options"]["module_name"], "api");
    }

    #[test]
    fn stopped_process_and_optional_keys() {
        let mut p = proc_info(3, "worker", Status::Stopped);
        p.pid = 0;
        p.exit_code = Some(1);
        p.prev_restart_delay = 150;
        p.log_path = Some("/h/logs/worker.log".into());
        std::sync::Arc::make_mut(&mut p.spec).args = vec!["--x".into()];
        std::sync::Arc::make_mut(&mut p.spec).kill_timeout = 5000;
        std::sync::Arc::make_mut(&mut p.spec).watch =
            pmr_core::spec::Watch::Paths(vec!["src".into()]);
        std::sync::Arc::make_mut(&mut p.spec).max_memory_restart = Some(104857600);
        std::sync::Arc::make_mut(&mut p.spec).cron_restart = Some("0 * * * *".into());
        std::sync::Arc::make_mut(&mut p.spec).listen =
            vec![pmr_core::spec::ListenAddr::parse("127.0.0.1:8000").unwrap()];
        std::sync::Arc::make_mut(&mut p.spec).drain_keepalive = false;
        std::sync::Arc::make_mut(&mut p.spec).log_rotate = Some(LogRotate {
            max_size: Some(1024),
            cron: Some("0 0 * * *".into()),
            ..Default::default()
        });
        let v = jlist_value(&p, "");
        let env = &v["pm2_env"];
        assert_eq!(v["monit"], json!({"memory": 0, "cpu": 0}));
        assert_eq!(v["pid"], 0);
        assert_eq!(env["status"], "stopped");
        assert_eq!(env["exit_code"], 1);
        assert_eq!(env["prev_restart_delay"], 150);
        assert_eq!(env["pm_log_path"], "/h/logs/worker.log");
        assert_eq!(env["args"], json!(["--x"]));
        assert_eq!(env["kill_timeout"], 5000);
        assert_eq!(env["watch"], json!(["src"]));
        assert_eq!(env["max_memory_restart"], 104857600);
        assert_eq!(env["cron_restart"], "0 * * * *");
        assert_eq!(env["listen"], json!(["127.0.0.1:8000"]));
        assert_eq!(env["drain_keepalive"], false);
        assert_eq!(
            env["log_rotate"],
            json!({"max_size": 1024, "cron": "0 0 * * *"})
        );
        assert!(env["env"].get("PMR_HOME").is_none());
        // `watch` stays where PM2 puts it.
        let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
        let watch = keys.iter().position(|k| *k == "watch").unwrap();
        let instance_var = keys.iter().position(|k| *k == "instance_var").unwrap();
        assert!(watch < instance_var);
    }

    #[test]
    fn version_from_nearest_package_json() {
        let dir = std::env::temp_dir().join(format!("pmr-render-ver-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(
            dir.join("package.json"),
            r#"{"name":"x","version":"1.4.2"}"#,
        )
        .unwrap();
        let mut p = proc_info(0, "api", Status::Online);
        std::sync::Arc::make_mut(&mut p.spec).script =
            dir.join("lib/app.js").to_string_lossy().into_owned();
        assert_eq!(jlist_value(&p, "")["pm2_env"]["version"], "1.4.2");
        std::fs::remove_dir_all(&dir).ok();
    }
}
