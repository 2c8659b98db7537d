//! `jlist` written straight into bytes: the same text as building each element as a
//! `serde_json::Value` and serialising it (`jlist_value`), without the maps of every app's
//! options and environment (a thousand apps are megabytes; the daemon renders them for each
//! `jlist`). An app whose option, instance variable or environment variable is named like one of
//! the keys written here would, in the value, take that key's place (a JS assignment); such an
//! element is built as a value instead, so the text never differs.

use super::env_write::{Bases, EnvText};
use super::jlist::{
    jlist_value, log_rotate_value, reserved, DEFAULT_KILL_TIMEOUT, DEFAULT_LISTEN_TIMEOUT,
    DEFAULT_MAX_RESTARTS, DEFAULT_MIN_UPTIME,
};
use super::{app_version, json_number, live_monit};
use pmr_core::protocol::ProcInfo;
use serde::Serialize;
use serde_json::Map;
#[cfg(test)]
use serde_json::Value;

/// `pmr jlist`: the whole list on one line, as `JSON.stringify` writes it.
pub fn jlist(procs: &[ProcInfo], home: &str) -> String {
    // Only JSON text (of strings that were UTF-8) was written.
    String::from_utf8(jlist_bytes(procs, home)).unwrap_or_else(|_| "[]".into())
}

/// `pmr jlist`'s text (without the final newline) for `procs`.
pub fn jlist_bytes(procs: &[ProcInfo], home: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(procs.len() * 4096 + 2);
    out.push(b'[');
    elements(&mut out, procs, home, false);
    out.push(b']');
    out
}

/// The text of [`jlist_bytes`] in pieces to be written one after the other: from
/// [`SPLIT_AT`] apps on, two threads render half of the list each (a thousand apps are 4 MB
/// and 5 ms of one core). The pieces are buffers of [`super::bufs`]: give them back.
pub fn jlist_parts(procs: &[ProcInfo], home: &str) -> Vec<Vec<u8>> {
    if procs.len() < SPLIT_AT {
        let mut out = super::bufs::take(procs.len() * 4096 + 2);
        out.push(b'[');
        elements(&mut out, procs, home, false);
        out.push(b']');
        return vec![out];
    }
    let (a, b) = procs.split_at(procs.len() / 2);
    let second_half = || {
        let mut out = super::bufs::take(b.len() * 4096 + 1);
        elements(&mut out, b, home, true);
        out.push(b']');
        out
    };
    std::thread::scope(|s| {
        let second = std::thread::Builder::new()
            .name("pmr-render".into())
            .spawn_scoped(s, second_half);
        let mut first = super::bufs::take(a.len() * 4096 + 1);
        first.push(b'[');
        elements(&mut first, a, home, false);
        match second.ok().and_then(|h| h.join().ok()) {
            Some(rest) => vec![first, rest],
            // No thread to be had: one pass.
            None => {
                elements(&mut first, b, home, true);
                first.push(b']');
                vec![first]
            }
        }
    })
}

const SPLIT_AT: usize = 256;

/// `procs`' elements separated by commas, with one before the first if `after_one`.
fn elements<'a>(out: &mut Vec<u8>, procs: &'a [ProcInfo], home: &'a str, after_one: bool) {
    let mut bases = Bases::default();
    for (i, p) in procs.iter().enumerate() {
        if i > 0 || after_one {
            out.push(b',');
        }
        element(out, p, home, &mut bases);
    }
}

/// One element, written directly when no user-named key meets one of ours.
fn element<'a>(out: &mut Vec<u8>, p: &'a ProcInfo, home: &'a str, bases: &mut Bases<'a>) {
    let s = &p.spec;
    let env = EnvText::new(p, home, bases);
    let plain = !reserved(&s.instance_var)
        && !s.extra.contains_key(&s.instance_var)
        && !s.extra.keys().any(|k| reserved(k))
        && !env.any_reserved();
    if !plain {
        put_value(out, &jlist_value(p, home));
        return;
    }
    out.extend_from_slice(b"{\"pid\":");
    put_value(out, &p.pid);
    out.extend_from_slice(b",\"name\":");
    put_value(out, &s.name);
    out.extend_from_slice(b",\"pm2_env\":{");
    let mut w = Obj { out, first: true };
    w.put("name", &s.name);
    if !s.removed("namespace") {
        w.put("namespace", &s.namespace);
    }
    w.key("env");
    env.write_object(w.out);
    if s.merge_logs {
        w.put("merge_logs", &true);
    }
    if s.pmx_module {
        w.put("pmx_module", &true);
    }
    w.put("autostart", &s.autostart);
    w.put("autorestart", &s.autorestart);
    if !s.removed("watch") {
        w.put("watch", &s.watch.to_json());
    }
    w.put("instance_var", &s.instance_var);
    w.put("treekill", &s.treekill);
    w.put("username", &p.username);
    w.put("kill_retry_time", &100);
    if !s.removed("interpreter_args") {
        w.put("node_args", &s.interpreter_args);
    }
    w.put("pm_exec_path", &s.script);
    w.put("pm_cwd", &s.cwd);
    if !s.removed("interpreter") {
        w.put("exec_interpreter", &s.interpreter_display());
    }
    w.put("exec_mode", &s.exec_mode.pm2_name());
    w.put("instances", &s.instances);
    if s.kill_timeout != DEFAULT_KILL_TIMEOUT {
        w.put("kill_timeout", &s.kill_timeout);
    }
    if s.listen_timeout != DEFAULT_LISTEN_TIMEOUT {
        w.put("listen_timeout", &s.listen_timeout);
    }
    if s.min_uptime != DEFAULT_MIN_UPTIME {
        w.put("min_uptime", &s.min_uptime);
    }
    if s.max_restarts != DEFAULT_MAX_RESTARTS {
        w.put("max_restarts", &s.max_restarts);
    }
    if s.restart_delay != 0 {
        w.put("restart_delay", &s.restart_delay);
    }
    if let Some(d) = s.exp_backoff_restart_delay {
        w.put("exp_backoff_restart_delay", &d);
    }
    if !s.stop_exit_codes.is_empty() {
        w.put("stop_exit_codes", &s.stop_exit_codes);
    }
    if s.wait_ready {
        w.put("wait_ready", &true);
    }
    if s.shutdown_with_message {
        w.put("shutdown_with_message", &true);
    }
    if let Some(v) = &s.increment_var {
        w.put("increment_var", v);
    }
    if let Some(v) = &s.log_date_format {
        w.put("log_date_format", v);
    }
    if s.disable_logs {
        w.put("disable_logs", &true);
    }
    if let Some(v) = &s.log_type {
        w.put("log_type", v);
    }
    if let Some(v) = &s.ignore_watch {
        w.put("ignore_watch", v);
    }
    if let Some(v) = s.watch_delay {
        w.put("watch_delay", &v);
    }
    if let Some(v) = &s.watch_options {
        w.put("watch_options", v);
    }
    if let Some(v) = s.max_memory_restart {
        w.put("max_memory_restart", &v);
    }
    if !s.drain_keepalive {
        w.put("drain_keepalive", &false);
    }
    if let Some(v) = &s.instance_balancing {
        w.put("instance_balancing", v);
    }
    if !s.catch_unhandled_rejections {
        w.put("catch_unhandled_rejections", &false);
    }
    if !s.listen.is_empty() {
        let l: Vec<&str> = s.listen.iter().map(|a| a.as_str()).collect();
        w.put("listen", &l);
    }
    if let Some(v) = &s.cron_restart {
        w.put("cron_restart", v);
    }
    if let Some(r) = &s.log_rotate {
        w.put("log_rotate", &log_rotate_value(r));
    }
    for (k, v) in &s.extra {
        w.put(k, v);
    }
    w.put("pm_out_log_path", &p.out_log_path);
    w.put("pm_err_log_path", &p.err_log_path);
    if let Some(l) = &p.log_path {
        w.put("pm_log_path", l);
    }
    w.put("pm_pid_path", &p.pid_path);
    if !s.args.is_empty() {
        w.put("args", &s.args);
    }
    w.put(&s.instance_var, &p.instance);
    // PM2 copies every env var to the top level too, unless a key of that name is there
    // (here: an option of `extra`, or the instance variable); objects stay behind.
    for (k, text, object) in env.members() {
        if !object && !s.extra.contains_key(k) && k != s.instance_var {
            w.raw(text);
        }
    }
    w.put("status", &p.status.as_str());
    w.put("pm_uptime", &p.pm_uptime);
    w.put("axm_actions", &p.axm.actions);
    w.put("axm_monitor", &p.axm.monitor);
    let mut options = super::axm::axm_options(s, env.settings);
    // What the app's own agent reported (`axm:option:configuration`) wins, as in PM2.
    if let serde_json::Value::Object(o) = &mut options {
        for (k, v) in &p.axm.options {
            o.insert(k.clone(), v.clone());
        }
    }
    w.put("axm_options", &options);
    w.put("axm_dynamic", &Map::new());
    w.put("created_at", &p.created_at);
    w.put("pm_id", &p.pm_id);
    w.put("restart_time", &p.restart_time);
    w.put("unstable_restarts", &p.unstable_restarts);
    if let Some(c) = p.exit_code {
        w.put("exit_code", &c);
    }
    if p.prev_restart_delay > 0 {
        w.put("prev_restart_delay", &p.prev_restart_delay);
    }
    w.put("version", &app_version(&s.script));
    w.put("pmr_restart_history", &p.restart_history);
    if let Some(v) = &p.watching {
        w.put("pmr_watching", v);
    }
    if let Some(v) = &p.watch_last {
        w.put("pmr_watch_last", v);
    }
    if p.log_lines_dropped > 0 {
        w.put("pmr_log_lines_dropped", &p.log_lines_dropped);
    }
    let out = w.out;
    out.extend_from_slice(b"},\"pm_id\":");
    put_value(out, &p.pm_id);
    let (memory, cpu) = live_monit(p);
    out.extend_from_slice(b",\"monit\":{\"memory\":");
    put_value(out, &memory);
    out.extend_from_slice(b",\"cpu\":");
    put_value(out, &json_number(cpu));
    out.extend_from_slice(b"}}");
    bases.recycle(env);
}

/// Members of an object being written.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Obj<'_> {
    fn put<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) {
        self.key(key);
        put_value(self.out, v);
    }

    /// `"key":`, the value to be written next.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        put_value(self.out, key);
        self.out.push(b':');
    }

    /// A member already written as `"key":value`.
    fn raw(&mut self, member: &[u8]) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(member);
    }
}

/// As `serde_json::to_string` writes it (what serialising the `Value` of it writes too).
fn put_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Writing into a Vec cannot fail, and every type here serialises (string keys only).
    let _ = serde_json::to_writer(out, v);
}

/// Kept for the tests: the value path, for elements the direct path must match.
#[cfg(test)]
pub(super) fn via_values(procs: &[ProcInfo], home: &str) -> String {
    let list: Vec<Value> = procs.iter().map(|p| jlist_value(p, home)).collect();
    serde_json::to_string(&list).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc_info;
    use pmr_core::protocol::{RestartCause, RestartRecord, Status};
    use serde_json::json;

    fn same(procs: &[ProcInfo], home: &str) {
        let fast = String::from_utf8(jlist_bytes(procs, home)).unwrap();
        assert_eq!(fast, via_values(procs, home));
    }

    #[test]
    fn direct_text_is_the_values_text() {
        let mut a = proc_info(0, "api", Status::Online);
        a.monit.cpu = 12.5;
        a.monit.memory = 4_000_000;
        let mut b = proc_info(1, "worker", Status::Stopped);
        b.exit_code = Some(3);
        b.prev_restart_delay = 150;
        b.log_path = Some("/h/logs/w.log".into());
        b.watching = Some("inotify, 2 directories".into());
        b.watch_last = Some("/app/x.js".into());
        b.log_lines_dropped = 42;
        b.axm.actions = vec![json!({"action_name": "echo", "action_type": "custom", "arity": 2})];
        b.axm.monitor.insert(
            "Realtime users".into(),
            json!({"value": 42, "unit": "users"}),
        );
        b.axm.options.insert("heapdump".into(), json!(false));
        std::sync::Arc::make_mut(&mut b.spec).args = vec!["--port".into(), "3000".into()];
        std::sync::Arc::make_mut(&mut b.spec).kill_timeout = 5000;
        std::sync::Arc::make_mut(&mut b.spec).listen_timeout = 1;
        std::sync::Arc::make_mut(&mut b.spec).min_uptime = 2;
        std::sync::Arc::make_mut(&mut b.spec).max_restarts = 3;
        std::sync::Arc::make_mut(&mut b.spec).restart_delay = 4;
        std::sync::Arc::make_mut(&mut b.spec).exp_backoff_restart_delay = Some(100);
        std::sync::Arc::make_mut(&mut b.spec).stop_exit_codes = vec![0, 2];
        std::sync::Arc::make_mut(&mut b.spec).wait_ready = true;
        std::sync::Arc::make_mut(&mut b.spec).shutdown_with_message = true;
        std::sync::Arc::make_mut(&mut b.spec).merge_logs = true;
        std::sync::Arc::make_mut(&mut b.spec).log_date_format = Some("YYYY".into());
        std::sync::Arc::make_mut(&mut b.spec).disable_logs = true;
        std::sync::Arc::make_mut(&mut b.spec).log_type = Some("json".into());
        std::sync::Arc::make_mut(&mut b.spec).ignore_watch = Some(vec!["node_modules".into()]);
        std::sync::Arc::make_mut(&mut b.spec).watch_delay = Some(10);
        std::sync::Arc::make_mut(&mut b.spec).max_memory_restart = Some(1 << 20);
        std::sync::Arc::make_mut(&mut b.spec).drain_keepalive = false;
        std::sync::Arc::make_mut(&mut b.spec).catch_unhandled_rejections = false;
        std::sync::Arc::make_mut(&mut b.spec).cron_restart = Some("0 * * * *".into());
        std::sync::Arc::make_mut(&mut b.spec)
            .extra
            .insert("source_map_support".into(), json!(true));
        std::sync::Arc::make_mut(&mut b.spec)
            .extra
            .insert("my_opt".into(), json!({"a": [1, "two"]}));
        std::sync::Arc::make_mut(&mut b.spec)
            .env
            .insert("PORT".into(), "3000".into());
        std::sync::Arc::make_mut(&mut b.spec)
            .env_json
            .insert("PORT".into(), json!(3000));
        std::sync::Arc::make_mut(&mut b.spec)
            .env_json
            .insert("OBJ".into(), json!({"k": "v"}));
        std::sync::Arc::make_mut(&mut b.spec)
            .env
            .insert("Q".into(), "a \"quoted\"\n\u{1} é".into());
        b.restart_history = vec![RestartRecord {
            at: 1,
            cause: RestartCause::Crash,
            detail: "exited with code 1".into(),
            uptime_ms: 5,
        }];
        same(&[a.clone(), b.clone()], "/h/.pmr");
        assert!(via_values(&[b.clone()], "").contains(r#""pmr_log_lines_dropped":42"#));
        same(&[], "/h");
        same(&[b.clone()], "");
        // Keys that meet ours: the element is built as a value, still the same text.
        let mut c = b.clone();
        std::sync::Arc::make_mut(&mut c.spec)
            .extra
            .insert("status".into(), json!("mine"));
        std::sync::Arc::make_mut(&mut c.spec)
            .env
            .insert("version".into(), "9".into());
        let mut d = a.clone();
        std::sync::Arc::make_mut(&mut d.spec).instance_var = "name".into();
        let mut e = a.clone();
        std::sync::Arc::make_mut(&mut e.spec)
            .extra
            .insert("INSTANCE".into(), json!(1));
        std::sync::Arc::make_mut(&mut e.spec).instance_var = "INSTANCE".into();
        std::sync::Arc::make_mut(&mut e.spec)
            .env
            .insert("INSTANCE".into(), "x".into());
        same(&[c, d, e, a.clone()], "/h");
        // Options removed with `null`: their keys are left out, on both paths.
        let mut g = a;
        std::sync::Arc::make_mut(&mut g.spec).removed = vec![
            "interpreter_args".into(),
            "namespace".into(),
            "interpreter".into(),
        ];
        same(std::slice::from_ref(&g), "/h");
        let v = jlist_value(&g, "/h");
        for k in ["node_args", "namespace", "exec_interpreter"] {
            assert!(v["pm2_env"].get(k).is_none(), "{k}: {v:#}");
        }
    }

    #[test]
    fn a_long_list_in_two_parts_is_the_same_text() {
        for n in [0, 1, SPLIT_AT - 1, SPLIT_AT, SPLIT_AT + 1, 301] {
            let procs: Vec<ProcInfo> = (0..n)
                .map(|i| proc_info(i as u32, &format!("a{i}"), Status::Online))
                .collect();
            let parts = jlist_parts(&procs, "/h");
            assert_eq!(parts.len(), if n < SPLIT_AT { 1 } else { 2 });
            assert_eq!(parts.concat(), jlist_bytes(&procs, "/h"), "{n} apps");
        }
    }

    /// Variables shared as a base (their text cached) and each app's own, with every rule of
    /// `env_object`: typed values, objects, `increment_var`, the home variable, module settings.
    #[test]
    fn shared_variables_give_the_values_text() {
        let shell: std::collections::BTreeMap<String, String> = (0..40)
            .map(|i| (format!("SHELL_{i:02}"), format!("v{i} \"q\" \u{7} é")))
            .chain([
                ("PORT".to_string(), "3000".to_string()),
                ("PMR_HOME".to_string(), "/elsewhere".to_string()),
            ])
            .collect();
        let app = |id: u32, name: &str, edit: &dyn Fn(&mut pmr_core::spec::AppSpec)| {
            let mut p = proc_info(id, name, Status::Online);
            let spec = std::sync::Arc::make_mut(&mut p.spec);
            spec.env = shell.clone().into();
            edit(spec);
            p
        };
        let a = app(0, "a", &|_| {});
        let b = app(1, "b", &|s| {
            s.env.insert("PORT".into(), "3001".into());
            s.env_json.insert("PORT".into(), json!(3001));
            s.env_json.insert("SHELL_05".into(), json!(5));
            s.env_json.insert("OBJ".into(), json!({"k": [1]}));
            s.env.remove("SHELL_07");
        });
        let mut c = app(2, "c", &|s| {
            s.increment_var = Some("PORT".into());
            s.env
                .insert("c".into(), r#"{"k":"5","password":"x"}"#.into());
        });
        c.env.insert("PORT".into(), "3002".into());
        let mut d = app(3, "d", &|s| {
            s.increment_var = Some("NEW_PORT".into());
            s.env_json.insert("d".into(), json!({"not": "settings"}));
            s.env_json.insert("PMR_HOME".into(), json!({"o": 1}));
        });
        d.env.insert("NEW_PORT".into(), "4000".into());
        // `a`'s shell from elsewhere, a different base.
        let e = {
            let mut p = proc_info(4, "e", Status::Online);
            std::sync::Arc::make_mut(&mut p.spec).env = (0..30)
                .map(|i| (format!("OTHER_{i}"), i.to_string()))
                .collect();
            p
        };
        let all = [a.clone(), b, c, d, e, a];
        same(&all, "/h/.pmr");
        same(&all, "");
        // A shell variable named like one of jlist's keys: the value path, same text.
        let mut odd = shell.clone();
        odd.insert("status".into(), "x".into());
        let f = {
            let mut p = proc_info(5, "f", Status::Online);
            std::sync::Arc::make_mut(&mut p.spec).env = odd.into();
            p
        };
        same(&[f, all[0].clone()], "/h");
    }

    #[test]
    fn jlist_is_one_compact_line() {
        let procs = [
            proc_info(0, "api", Status::Online),
            proc_info(1, "web", Status::Errored),
        ];
        let out = jlist(&procs, "/h");
        assert!(!out.contains('\n'));
        assert!(out.starts_with("[{\"pid\":4242,\"name\":\"api\",\"pm2_env\":{\"name\":\"api\","));
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back.as_array().unwrap().len(), 2);
        assert_eq!(jlist(&[], "/h"), "[]");
    }
}
