//! Node recognised by content (shebang bins without extension, `node_modules/.bin` links) in
//! fork and cluster mode, package scripts resolved with `${PORT:-…}`, the bad input around
//! them, and PM2's unhandled-rejection behaviour.

use crate::support::*;
use serde_json::{json, Value};

fn binapp() -> std::path::PathBuf {
    fixtures().join("binapp")
}

/// Start the apps of an ecosystem JSON written into the test's own directory.
fn start_apps(pmr: &Pmr, apps: Value) -> Run {
    let file = pmr.dir.join("apps.json");
    std::fs::write(&file, json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", file.to_str().unwrap()])
}

fn body(port: u16) -> Value {
    serde_json::from_str(&http_get(port).unwrap()).unwrap()
}

#[test]
fn a_bin_script_without_extension_runs_on_node_in_fork_mode_with_ipc() {
    let pmr = Pmr::new();
    let port = free_port();
    let marker = pmr.dir.join("marker");
    start_apps(
        &pmr,
        json!([{
            "name": "bin",
            "script": binapp().join("node_modules/srv/dist/bin/srv"),
            "args": ["start", "-p", port.to_string()],
            "wait_ready": true,
            "listen_timeout": 15000,
            "shutdown_with_message": true,
            "kill_timeout": 15000,
            "env": { "MARKER": marker },
        }]),
    )
    .ok();
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["pm2_env"]["exec_interpreter"], "node", "{p:#}");
    assert_eq!(p["pm2_env"]["exec_mode"], "fork_mode");
    assert_eq!(body(port)["pid"], p["pid"]);
    // 'shutdown' reaches the app only over Node's IPC channel.
    pmr.run(&["stop", "bin"]).ok();
    assert_eq!(wait_file(&marker), "shutdown");
}

#[test]
fn next_style_bins_run_as_cluster_workers_in_both_pm2_guide_forms() {
    let pmr = Pmr::new();
    let (p1, p2) = (free_port(), free_port());
    let app = |name: &str, script: &str, port: u16| {
        json!({
            "name": name, "cwd": binapp(), "script": script,
            "args": format!("start -p {port}"), "instances": 2, "exec_mode": "cluster",
        })
    };
    start_apps(
        &pmr,
        json!([
            app("direct", "node_modules/srv/dist/bin/srv", p1),
            app("dotbin", "node_modules/.bin/srv", p2),
        ]),
    )
    .ok();
    let list = pmr.jlist();
    assert_eq!(list.len(), 4);
    assert!(list
        .iter()
        .all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
    let mut served = pids_answering(p1, 2);
    served.extend(pids_answering(p2, 2));
    assert_eq!(
        served,
        online_pids(&pmr),
        "every worker serves its app's port"
    );
}

#[test]
fn package_scripts_expand_port_defaults_and_follow_nested_scripts() {
    let pmr = Pmr::new();
    let (p1, p2) = (free_port(), free_port());
    // `srv start -p ${PORT:-3999}`, PORT from the app's env; `npm run prod` sets NODE_ENV and
    // runs `npm run start`. Neither npm nor yarn is run.
    start_apps(
        &pmr,
        json!([
            { "name": "yarn", "cwd": binapp(), "script": "yarn start", "instances": 2,
              "env": { "PORT": p1 } },
            { "name": "prod", "cwd": binapp(), "script": "npm", "args": "run prod",
              "instances": 2, "exec_mode": "cluster", "env": { "PORT": p2 } },
        ]),
    )
    .ok();
    assert_eq!(pids_answering(p1, 2).len(), 2);
    assert_eq!(pids_answering(p2, 2).len(), 2);
    let b = body(p1);
    assert_eq!(b["argv"], json!(["start", "-p", p1.to_string()]));
    assert_eq!(b["node_env"], Value::Null);
    assert_eq!(body(p2)["node_env"], "production");
    assert!(pmr
        .jlist()
        .iter()
        .all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
}

#[test]
fn bad_scripts_and_bins_exit_1_and_start_nothing() {
    let pmr = Pmr::new();
    let cases: [(&[&str], &std::path::Path, &str); 6] = [
        (&["start", "npm run nothere", "-i", "2"], &binapp(), "has no script \"nothere\""),
        (&["start", "npm start", "-i", "2"], &pmr.dir, "package.json"),
        (
            &["start", "npm run piped", "-i", "2"],
            &binapp(),
            "uses shell features (a pipe `|`) that pmr does not run without a shell; use the `script`/`args` form instead, e.g. script: 'node_modules/.bin/srv', args: 'start'",
        ),
        (
            &["start", "npm run notnode", "-i", "2"],
            &binapp(),
            "shtool/run is not a Node.js program (its first line is `#!/bin/sh`",
        ),
        (
            &["start", "node_modules/.bin/shtool", "-i", "2"],
            &binapp(),
            "shtool/run is not a Node.js program (its first line is `#!/bin/sh`",
        ),
        (
            &["start", "ghost"],
            &binapp(),
            "ghost: its first line `#!/usr/bin/env pmr-no-such-interpreter` names the interpreter `pmr-no-such-interpreter`, which is not installed",
        ),
    ];
    for (args, cwd, want) in cases {
        let out = pmr.cmd().args(args).current_dir(cwd).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(pmr.jlist().is_empty(), "nothing started");
}

#[test]
fn an_unhandled_rejection_is_logged_and_the_app_keeps_running_unless_turned_off() {
    let pmr = Pmr::new();
    let log = |name: &str, kind: &str| pmr.dir.join(format!("{name}-{kind}.log"));
    let app = |name: &str, extra: Value| {
        let mut a = json!({
            "name": name, "script": fixture("reject.js"), "autorestart": false,
            "out_file": log(name, "out"), "error_file": log(name, "err"), "merge_logs": true,
        });
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    start_apps(
        &pmr,
        json!([
            app("fork", json!({})),
            app("cluster", json!({ "exec_mode": "cluster", "instances": 1 })),
            app("off", json!({ "catch_unhandled_rejections": false })),
        ]),
    )
    .ok();
    const PM2_MESSAGE: &str =
        "You have triggered an unhandledRejection, you may have forgotten to catch a Promise rejection:\nError: nobody caught me";
    for (id, name) in [(0, "fork"), (1, "cluster")] {
        wait_until(&format!("{name} lives on after the rejection"), || {
            std::fs::read_to_string(log(name, "out"))
                .unwrap_or_default()
                .contains("still alive after the rejection")
        });
        let err = std::fs::read_to_string(log(name, "err")).unwrap();
        assert!(err.contains(PM2_MESSAGE), "{name}: {err}");
        let p = pmr.proc(id).unwrap();
        assert_eq!(
            (
                p["pm2_env"]["status"].as_str(),
                p["pm2_env"]["restart_time"].as_u64()
            ),
            (Some("online"), Some(0)),
            "{p:#}"
        );
    }
    // Turned off: Node's default applies, the app exits with the error.
    pmr.wait_proc(2, "the app without the handler to exit", |p| {
        p["pm2_env"]["status"] != "online" && p["pm2_env"]["status"] != "launching"
    });
    let err = std::fs::read_to_string(log("off", "err")).unwrap();
    assert!(
        err.contains("nobody caught me") && !err.contains("You have triggered"),
        "{err}"
    );
    let out = std::fs::read_to_string(log("off", "out")).unwrap();
    assert!(!out.contains("still alive"), "{out}");
}
