//! Cluster mode for programs that are not Node: daemon-owned sockets passed the systemd way
//! (LISTEN_FDS), readiness from READY=1 on $NOTIFY_SOCKET, and reloads that refuse nothing.

use crate::load::Load;
use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn config(pmr: &Pmr, app: Value) -> String {
    let path = pmr.dir.join("sockets.json");
    std::fs::write(&path, json!({ "apps": [app] }).to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn python_instances_share_a_daemon_owned_port() {
    let pmr = Pmr::new();
    let port = free_port();
    let cfg = config(
        &pmr,
        json!({"name": "py", "script": fixture("sdserver.py"), "instances": 2, "exec_mode": "cluster",
               "listen": [format!("127.0.0.1:{port}")]}),
    );
    pmr.run(&["start", &cfg]).ok();
    let list = pmr.jlist();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
    let pids = pids_answering(port, 2);
    let body: Value = serde_json::from_str(&http_get(port).unwrap()).unwrap();
    assert_eq!(body["fds"], 1);
    assert_eq!(body["names"], json!([format!("127.0.0.1_{port}")]));
    assert_eq!(pids.len(), 2);
}

#[test]
fn ready_comes_from_notify_socket_with_wait_ready() {
    let pmr = Pmr::new();
    let port = free_port();
    let cfg = config(
        &pmr,
        json!({"name": "py", "script": fixture("sdserver.py"), "wait_ready": true, "listen_timeout": 20000,
               "listen": [port.to_string()], "env": {"READY_DELAY": "1.5"}}),
    );
    let mut child = pmr
        .cmd()
        .args(["start", &cfg])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pmr.wait_status(0, "launching");
    pmr.wait_status(0, "online");
    assert!(child.wait().unwrap().success());
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(!log.contains("not ready within listen_timeout"), "{log}");
    pids_answering(port, 1);
}

fn reload_refuses_nothing(app: Value, instances: usize) {
    let pmr = Pmr::new();
    let port = free_port();
    let mut app = app;
    app["listen"] = json!([format!("127.0.0.1:{port}")]);
    let cfg = config(&pmr, app);
    pmr.run(&["start", &cfg]).ok();
    pids_answering(port, instances);
    let load = Load::start(port, 4, false, Duration::from_secs(60));
    for _ in 0..2 {
        let before: HashSet<u64> = pmr
            .jlist()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        let seen = load.ok_so_far();
        wait_until("traffic", || load.ok_so_far() > seen + 50);
        pmr.run(&["reload", "py"]).ok();
        let after: HashSet<u64> = pmr
            .jlist()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect();
        assert!(before.is_disjoint(&after));
    }
    let seen = load.ok_so_far();
    wait_until("traffic after the reloads", || load.ok_so_far() > seen + 50);
    let stats = load.finish();
    eprintln!("{stats:?}");
    assert_eq!(stats.errors(), 0, "{stats:?}");
}

#[test]
fn fork_mode_reload_of_a_socket_passing_app_refuses_nothing() {
    reload_refuses_nothing(json!({"name": "py", "script": fixture("sdserver.py")}), 1);
}

#[test]
fn cluster_reload_of_python_workers_with_readiness_refuses_nothing() {
    reload_refuses_nothing(
        json!({"name": "py", "script": fixture("sdserver.py"), "instances": 2, "exec_mode": "cluster",
               "wait_ready": true, "env": {"READY_DELAY": "0.3"}}),
        2,
    );
}

#[test]
fn a_bad_listen_address_is_a_clear_error() {
    let pmr = Pmr::new();
    let cfg = config(
        &pmr,
        json!({"name": "py", "script": fixture("sdserver.py"), "listen": ["not an address"]}),
    );
    let r = pmr.run(&["start", &cfg]).fails();
    assert!(
        r.stderr.contains("\"listen\"") && r.stderr.contains("not an address"),
        "{}",
        r.stderr
    );
    assert!(pmr.jlist().is_empty());
}
