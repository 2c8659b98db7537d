//! Apps using the real `@pm2/io` and the older `pmx` from the npm registry (`tests/apps/axm`,
//! pinned by its package-lock.json): metrics and actions in jlist and describe, `trigger` with a
//! parameter, `--json`, a timeout, a cluster app; then apps that flood or garble their IPC
//! channel.

use crate::apps::app;
use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn start_metrics_app(pmr: &Pmr, name: &str, extra: &[&str]) {
    let dir = app("axm");
    let script = dir.join("metrics.js");
    let mut args = vec!["start", script.to_str().unwrap(), "--name", name];
    args.extend_from_slice(extra);
    pmr.run(&args).ok();
}

fn monitor(p: &Value) -> &serde_json::Map<String, Value> {
    p["pm2_env"]["axm_monitor"].as_object().unwrap()
}

fn has_metrics(p: &Value) -> bool {
    monitor(p).contains_key("Realtime users")
        && !p["pm2_env"]["axm_actions"].as_array().unwrap().is_empty()
}

/// The daemon's CPU time so far, in clock ticks (100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn metrics_actions_and_trigger_of_a_real_pm2_io_app() {
    let pmr = Pmr::new();
    let dir = app("axm");
    let started = Instant::now();
    start_metrics_app(&pmr, "io", &[]);
    // Visible in describe within 2 s of the app's first report.
    let mut first = 0;
    wait_until("the first report in describe", || {
        let d = pmr.run(&["describe", "io"]).stdout;
        let cell = d.lines().find(|l| l.contains("│ First report"));
        first = cell
            .and_then(|l| l.split('│').nth(2))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        first != 0
    });
    let seen_after = chrono::Utc::now().timestamp_millis() - first;
    eprintln!("first report in describe {seen_after} ms after the app sent it");
    assert!(seen_after < 2000, "{seen_after} ms");
    // @pm2/io's own metrics come every second.
    wait_until("@pm2/io's metrics in describe", || {
        let d = pmr.run(&["describe", "io"]).stdout;
        d.contains("Code metrics value") && d.contains("│ Realtime users ")
    });
    eprintln!(
        "@pm2/io metrics in describe {:?} after start",
        started.elapsed()
    );
    let p = pmr.wait_proc(0, "metrics", has_metrics);
    let m = monitor(&p);
    // PM2's shapes: the metric as @pm2/io serialises it, the action as it registers it.
    assert_eq!(
        m["Realtime users"],
        json!({"historic": true, "unit": "users", "value": 42})
    );
    assert_eq!(m["Jobs done"], json!({"historic": true, "value": 2}));
    assert_eq!(m["Mode"], json!({"historic": true, "value": "busy"}));
    let actions = p["pm2_env"]["axm_actions"].as_array().unwrap();
    assert!(actions.contains(&json!({"action_name": "echo", "action_type": "custom", "arity": 2})));
    assert!(actions.contains(&json!({"action_name": "hello", "action_type": "custom", "arity": 1})));
    let d = pmr.run(&["describe", "0"]).ok().stdout;
    assert!(d.contains("Actions available"), "{d}");
    // io.emit (`human:event`) and @pm2/io's `application:dependencies`, counted.
    assert!(d.contains(" 2 event(s) sent by the app"), "{d}");
    assert!(d.contains("│ echo "), "{d}");
    assert!(
        d.contains("Trigger via: pmr trigger io <action_name>"),
        "{d}"
    );

    // A parameter reaches the action; the reply is printed as PM2 prints it.
    let r = pmr.run(&["trigger", "io", "echo", "abc"]).ok();
    assert!(
        r.stdout.contains("1 processes have received command echo"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(r#"[io:0:default]={"got":"abc"}"#),
        "{}",
        r.stdout
    );

    let r = pmr.run(&["trigger", "0", "hello", "--json"]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["pm_id"], 0);
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["data"]["hello"], "world");
    assert_eq!(v[0]["data"]["pid"], p["pid"]);

    // A scoped action: sent with a uuid, its stream and end gathered.
    let r = pmr.run(&["trigger", "io", "count", "--json"]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v[0]["data"],
        json!({"stream": ["one", "two"], "end": {"upto": 2}})
    );

    // An unknown action: exit 1, naming the ones there are.
    let r = pmr.run(&["trigger", "io", "nope"]).fails();
    assert!(
        r.stderr.contains(r#"unknown action "nope""#),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hello, echo, never, fail"),
        "{}",
        r.stderr
    );

    // An action that never replies: exit 1 once the timeout passes, not later.
    let t = Instant::now();
    let r = pmr
        .run(&["trigger", "io", "never", "--timeout", "500"])
        .fails();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        r.stderr.contains("[io:0:default] no reply within 500 ms"),
        "{}",
        r.stderr
    );
    let r = pmr
        .run(&["trigger", "io", "never", "--timeout", "300", "--json"])
        .fails();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        json!([{"pm_id": 0, "name": "io", "namespace": "default", "ok": false, "error": "no reply within 300 ms"}])
    );

    // process:exception (io.notifyError): logged by the daemon and shown by describe.
    pmr.run(&["trigger", "io", "fail"]).ok();
    wait_until("the exception in describe", || {
        pmr.run(&["describe", "io"])
            .stdout
            .contains("1 exception(s) reported by the app, the last: reported on purpose")
    });
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains("App [io:0] reported an exception: reported on purpose"),
        "{log}"
    );

    // As PM2, metrics and actions belong to the running process.
    pmr.run(&["stop", "io"]).ok();
    let p = pmr.wait_status(0, "stopped");
    assert_eq!(p["pm2_env"]["axm_monitor"], json!({}));
    assert_eq!(p["pm2_env"]["axm_actions"], json!([]));
    pmr.run(&["trigger", "io", "hello"]).fails();
    drop(dir);
}

#[test]
fn a_cluster_app_replies_from_every_instance() {
    let pmr = Pmr::new();
    start_metrics_app(&pmr, "ioc", &["-i", "2"]);
    for id in [0, 1] {
        pmr.wait_proc(id, "metrics", has_metrics);
    }
    let r = pmr.run(&["trigger", "ioc", "echo", "x", "--json"]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    let ids: Vec<&Value> = v.iter().map(|r| &r["pm_id"]).collect();
    assert_eq!(ids, [&json!(0), &json!(1)]);
    assert!(
        v.iter()
            .all(|r| r["ok"] == true && r["data"] == json!({"got": "x"})),
        "{v:?}"
    );
    let r = pmr.run(&["trigger", "ioc", "hello"]).ok();
    assert!(
        r.stdout.contains("2 processes have received command hello"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("[ioc:0:default]=") && r.stdout.contains("[ioc:1:default]="));
}

#[test]
fn a_flooding_app_costs_the_daemon_little_and_others_are_fine() {
    let pmr = Pmr::new();
    start_metrics_app(&pmr, "quiet", &[]);
    pmr.run(&["start", &fixture("axm_flood.js"), "--name", "flood"])
        .ok();
    let p = pmr.wait_proc(1, "flood metrics", |p| monitor(p).contains_key("count"));
    let first = p["pm2_env"]["axm_monitor"]["count"]["value"]
        .as_u64()
        .unwrap();
    pmr.wait_proc(0, "metrics", has_metrics);

    let daemon = pmr.daemon_pid().unwrap();
    let (t0, c0) = (Instant::now(), cpu_ticks(daemon));
    std::thread::sleep(Duration::from_secs(3));
    let (secs, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks(daemon) - c0);
    let pct = ticks as f64 / secs;
    let p = pmr.proc(1).unwrap();
    let m = &p["pm2_env"]["axm_monitor"];
    let count = m["count"]["value"].as_u64().unwrap();
    let rate = (count - first) as f64 / secs;
    eprintln!("flood: {rate:.0} messages/s seen, daemon CPU {pct:.1}% of a core");
    assert!(rate > 2000.0, "the flood is a flood: {rate}");
    assert!(
        pct < 30.0,
        "daemon CPU {pct:.1}% of a core under a 10,000/s flood"
    );
    // The daemon keeps up: the latest value is recent.
    let lag = chrono::Utc::now().timestamp_millis() - m["sent"]["value"].as_i64().unwrap();
    assert!(lag < 2000, "metrics {lag} ms behind");
    // The other app is answered at once.
    let t = Instant::now();
    pmr.run(&["trigger", "quiet", "hello", "--timeout", "2000"])
        .ok();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(pmr.status(1), "online");
}

#[test]
fn garbage_on_the_channel_is_dropped_and_logged_once() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("axm_garbage.js"), "--name", "garbage"])
        .ok();
    let p = pmr.wait_proc(0, "the good metric and every action", |p| {
        monitor(p).contains_key("ok")
            && p["pm2_env"]["axm_actions"].as_array().unwrap().len() >= 100
    });
    let m = monitor(&p);
    assert!(!m.contains_key("big"), "the 2 MiB message is dropped");
    assert!(m.keys().all(|k| k.len() <= 256), "long names are refused");
    let huge = m["huge"]["value"].as_str().unwrap();
    assert_eq!(
        huge.chars().count(),
        1025,
        "a huge value is cut to 1024 chars and …"
    );
    assert_eq!(m["huge"]["unit"], "u");
    assert_eq!(m.len(), 100, "at most 100 metrics");
    assert_eq!(p["pm2_env"]["axm_actions"].as_array().unwrap().len(), 100);
    assert_eq!(p["pm2_env"]["restart_time"], 0);
    assert_eq!(p["pm2_env"]["status"], "online");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert_eq!(
        log.matches("App [garbage:0] sent a malformed IPC message")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("refused (further refusals").count(), 1, "{log}");
    // Nothing else is affected: the daemon answers and other apps start.
    pmr.run(&["start", &fixture("ticker.js"), "--name", "other"])
        .ok();
    pmr.wait_status(1, "online");
}

#[test]
fn an_app_using_the_older_pmx_works_too() {
    let pmr = Pmr::new();
    let script = app("axm").join("pmx.js");
    pmr.run(&["start", script.to_str().unwrap(), "--name", "old"])
        .ok();
    let p = pmr.wait_proc(0, "pmx metrics and actions", |p| {
        monitor(p).contains_key("Old metric")
            && p["pm2_env"]["axm_actions"].as_array().unwrap().len() == 2
    });
    // pmx's own shapes, kept as sent.
    assert_eq!(monitor(&p)["Old metric"]["value"], 7);
    assert_eq!(monitor(&p)["Old metric"]["agg_type"], "avg");
    assert_eq!(
        p["pm2_env"]["axm_actions"][1],
        json!({"action_name": "echo", "opts": null, "arity": 2})
    );
    let r = pmr.run(&["trigger", "old", "echo", "hi"]).ok();
    assert!(
        r.stdout.contains(r#"[old:0:default]={"param":"hi"}"#),
        "{}",
        r.stdout
    );
    let r = pmr.run(&["trigger", "old", "ping"]).ok();
    assert!(r.stdout.contains(r#"={"pong":true}"#), "{}", r.stdout);
}

/// @pm2/io registers its actions once, at the app's start: an in-place `update` must carry
/// them (and the metrics) to the new daemon, and the channel must still carry a trigger.
#[test]
fn actions_and_metrics_survive_an_update() {
    let pmr = Pmr::new();
    start_metrics_app(&pmr, "io", &[]);
    let before = pmr.wait_proc(0, "metrics", has_metrics);
    let new_bin = pmr.dir.join("pmr-installed");
    std::fs::copy(crate::support::BIN, &new_bin).unwrap();
    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", new_bin.to_str().unwrap())],
        )
        .ok();
    assert!(r.stdout.contains("same pids"), "{}", r.stdout);
    let after = pmr.proc(0).unwrap();
    assert_eq!(after["pid"], before["pid"]);
    assert_eq!(
        after["pm2_env"]["axm_actions"], before["pm2_env"]["axm_actions"],
        "{after:#}"
    );
    assert!(monitor(&after).contains_key("Realtime users"), "{after:#}");
    let r = pmr.run(&["trigger", "io", "echo", "after"]).ok();
    assert!(
        r.stdout.contains(r#"[io:0:default]={"got":"after"}"#),
        "{}",
        r.stdout
    );
}
