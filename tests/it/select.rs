//! Selecting apps as PM2 does: by script path (relative to the CLI's cwd, or absolute) for
//! every command that takes a selector; `start <word>` restarting an existing app before it
//! looks for a script or a program; options given with restart/reload/start applying to the
//! app, all or nothing.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// `pmr args` run in `cwd`: (exit code, stdout, stderr).
fn run_in(pmr: &Pmr, cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let o = pmr.cmd().current_dir(cwd).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok_in(pmr: &Pmr, cwd: &Path, args: &[&str]) -> String {
    let (code, out, err) = run_in(pmr, cwd, args);
    assert_eq!(code, 0, "{args:?} failed:\nstdout: {out}\nstderr: {err}");
    out
}

/// name → status, from jlist.
fn statuses(pmr: &Pmr) -> Vec<(String, String)> {
    pmr.jlist()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pm2_env"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn st(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Two apps running `<dir>/app.js` and one running the fixture; returns the sub directory
/// the relative selectors are given from.
fn three_apps(pmr: &Pmr) -> std::path::PathBuf {
    std::fs::copy(fixture("ticker.js"), pmr.dir.join("app.js")).unwrap();
    let sub = pmr.dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    pmr.run(&["start", "app.js", "--name", "alpha"]).ok();
    pmr.run(&["start", "app.js", "--name", "beta"]).ok();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "gamma"])
        .ok();
    for id in 0..3 {
        pmr.wait_status(id, "online");
    }
    sub
}

#[test]
fn every_selector_command_takes_a_script_path() {
    let pmr = Pmr::new();
    let sub = three_apps(&pmr);
    let abs = pmr.dir.join("app.js").to_string_lossy().into_owned();
    let elsewhere = std::env::temp_dir();

    // Relative to the CLI's cwd, with `..`.
    let out = ok_in(&pmr, &sub, &["stop", "../app.js"]);
    assert!(out.contains("ids: [ 0, 1 ]"), "{out}");
    assert_eq!(
        statuses(&pmr),
        st(&[
            ("alpha", "stopped"),
            ("beta", "stopped"),
            ("gamma", "online")
        ])
    );
    // Absolute, from an unrelated directory.
    ok_in(&pmr, &elsewhere, &["restart", &abs]);
    pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
    let before = pmr.proc(0).unwrap()["pid"].clone();
    ok_in(&pmr, &pmr.dir, &["reload", "./app.js"]);
    pmr.wait_proc(0, "a new pid after reload", |p| {
        p["pid"] != before && p["pm2_env"]["status"] == "online"
    });
    ok_in(&pmr, &pmr.dir, &["reset", "app.js"]);
    for id in [0, 1] {
        assert_eq!(pmr.proc(id).unwrap()["pm2_env"]["restart_time"], 0);
    }
    assert!(pmr.proc(2).unwrap()["pm2_env"]["restart_time"].as_u64() == Some(0));

    let out = ok_in(&pmr, &sub, &["describe", "../app.js"]);
    assert!(out.contains("alpha") && out.contains("beta"), "{out}");
    assert!(!out.contains("gamma"), "{out}");
    let out = ok_in(&pmr, &elsewhere, &["pid", &abs]);
    assert_eq!(out.lines().count(), 2, "{out}");
    ok_in(&pmr, &sub, &["flush", "../app.js"]);
    ok_in(
        &pmr,
        &sub,
        &["logs", "../app.js", "--nostream", "--lines", "1"],
    );

    // A path that no app runs is an error, and changes nothing.
    let (code, _, err) = run_in(&pmr, &elsewhere, &["stop", "app.js"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("app.js"), "{err}");
    ok_in(&pmr, &sub, &["delete", "../app.js"]);
    assert_eq!(statuses(&pmr), st(&[("gamma", "online")]));
}

#[test]
fn start_restarts_an_app_before_looking_for_a_program() {
    let pmr = Pmr::new();
    // An app named like a program on PATH.
    pmr.run(&["start", &fixture("ticker.js"), "--name", "echo"])
        .ok();
    pmr.wait_status(0, "online");
    pmr.run(&["stop", "echo"]).ok();
    let r = pmr.run(&["start", "echo"]).ok();
    assert!(
        r.stdout.contains("Process successfully started"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("--update-env"),
        "PM2 gives no hint here: {}",
        r.stdout
    );
    let p = pmr.wait_status(0, "online");
    assert_eq!(pmr.jlist().len(), 1, "echo ran as a new app");
    assert!(p["pm2_env"]["pm_exec_path"]
        .as_str()
        .unwrap()
        .ends_with("ticker.js"));

    // By id, and by namespace.
    pmr.run(&["stop", "0"]).ok();
    pmr.run(&["start", "0"]).ok();
    pmr.wait_status(0, "online");
    pmr.run(&["stop", "default"]).ok();
    pmr.run(&["start", "default"]).ok();
    pmr.wait_status(0, "online");

    // An unknown id is an error: not a file named 7, not a new app.
    std::fs::copy(fixture("ticker.js"), pmr.dir.join("7")).unwrap();
    let r = pmr.run(&["start", "7"]).fails();
    assert!(r.stderr.contains('7'), "{}", r.stderr);
    assert_eq!(pmr.jlist().len(), 1);

    // Without an app of that name, the word is a program on PATH again.
    pmr.run(&["start", "true", "--no-autorestart"]).ok();
    let list = pmr.jlist();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["name"], "true");
}

fn env_of_app(pmr: &Pmr, id: u64) -> serde_json::Map<String, Value> {
    pmr.proc(id).unwrap()["pm2_env"]
        .as_object()
        .unwrap()
        .clone()
}

fn cmdline(pid: u64) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn options_given_with_restart_apply_and_zero_or_null_turn_them_off() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "web"])
        .ok();
    pmr.wait_status(0, "online");
    let r = pmr
        .run(&[
            "restart",
            "web",
            "--name",
            "api",
            "--node-args=--max-old-space-size=100",
            "--max-memory-restart",
            "100M",
            "--cron-restart",
            "0 0 * * *",
            "--kill-timeout",
            "3000",
        ])
        .ok();
    assert!(r.stdout.contains("[api](0) ✓"), "{}", r.stdout);
    let p = pmr.wait_proc(0, "a running api", |p| {
        p["pm2_env"]["status"] == "online" && p["pid"].as_u64().unwrap_or(0) != 0
    });
    let e = p["pm2_env"].as_object().unwrap();
    assert_eq!(e["name"], "api");
    assert_eq!(
        e["node_args"],
        serde_json::json!(["--max-old-space-size=100"])
    );
    assert_eq!(e["max_memory_restart"], 104857600);
    assert_eq!(e["cron_restart"], "0 0 * * *");
    assert_eq!(e["kill_timeout"], 3000);
    let pid = p["pid"].as_u64().unwrap();
    assert!(
        cmdline(pid).contains("--max-old-space-size=100"),
        "{}",
        cmdline(pid)
    );

    // `0` turns off, `null` removes, `--watch` toggles.
    pmr.run(&[
        "restart",
        "api",
        "--cron-restart",
        "0",
        "--max-memory-restart",
        "0",
        "--node-args",
        "null",
        "--watch",
    ])
    .ok();
    let e = env_of_app(&pmr, 0);
    assert!(e.get("cron_restart").is_none_or(|v| v.is_null()), "{e:?}");
    assert!(
        e.get("max_memory_restart").is_none_or(|v| v.is_null()),
        "{e:?}"
    );
    // As PM2: the key goes, and the process runs without the flag.
    assert!(e.get("node_args").is_none(), "{e:?}");
    let pid = pmr.wait_status(0, "online")["pid"].as_u64().unwrap();
    assert!(
        !cmdline(pid).contains("--max-old-space-size"),
        "{}",
        cmdline(pid)
    );
    assert_eq!(e["watch"], true);
    pmr.run(&["restart", "api", "--watch"]).ok();
    assert_eq!(env_of_app(&pmr, 0)["watch"], false);

    // Reload and `start <app>` take them too.
    pmr.run(&["reload", "api", "--kill-timeout", "2000"]).ok();
    assert_eq!(env_of_app(&pmr, 0)["kill_timeout"], 2000);
    pmr.run(&["start", "api", "--name", "web"]).ok();
    assert_eq!(env_of_app(&pmr, 0)["name"], "web");
    pmr.wait_status(0, "online");

    // `start <script>` of a stopped app of that script restarts it with the options given.
    std::fs::copy(fixture("ticker.js"), pmr.dir.join("app.js")).unwrap();
    pmr.run(&["start", "app.js"]).ok();
    pmr.run(&["stop", "app"]).ok();
    pmr.run(&["start", "app.js", "--kill-timeout", "4000"]).ok();
    let list = pmr.jlist();
    assert_eq!(list.len(), 2, "a second app.js was started");
    assert_eq!(list[1]["pm2_env"]["kill_timeout"], 4000);
    pmr.wait_status(1, "online");
}

/// What must not change when a restart is refused.
fn table(pmr: &Pmr) -> Vec<Value> {
    pmr.jlist()
        .into_iter()
        .map(|p| {
            let e = &p["pm2_env"];
            serde_json::json!([
                p["pid"],
                e["name"],
                e["status"],
                e["restart_time"],
                e["kill_timeout"],
                e["max_memory_restart"],
                e["node_args"],
                e["cron_restart"]
            ])
        })
        .collect()
}

#[test]
fn bad_options_on_restart_are_errors_and_change_nothing() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "web"])
        .ok();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "api"])
        .ok();
    pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
    let before = table(&pmr);
    for (args, says) in [
        (
            &["restart", "web", "--max-memory-restart", "abc"][..],
            "max_memory_restart",
        ),
        (
            &["restart", "web", "--kill-timeout", "soon"],
            "kill_timeout",
        ),
        (&["reload", "web", "--cron-restart", "bad cron"], "cron"),
        (&["restart", "web", "--name", "null"], "name"),
        (&["restart", "web", "--name", "api"], "another app"),
        (&["restart", "all", "--name", "one"], "renames one app"),
        (&["start", "web", "--kill-timeout", "-5"], "kill_timeout"),
    ] {
        let r = pmr.run(args).fails();
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr
                .trim()
                .lines()
                .filter(|l| l.contains("ERROR"))
                .count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(table(&pmr), before, "{args:?} changed the table");
    }
}
