//! `update`: the daemon re-executes the installed binary with the same pid and takes its
//! running processes over (same pids, ids, names, restart counts, uptimes; logs, stdin, IPC
//! channels and cluster sockets carried across the exec). A handoff the new binary cannot
//! read falls back to restarting the apps, and says so; a binary that is missing or not
//! executable changes nothing.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn pids(list: &[Value]) -> BTreeSet<u32> {
    list.iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect()
}

fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

/// A copy of the pmr binary: the "installed" new version, told apart from the old by path.
fn installed_copy(dir: &Path) -> PathBuf {
    let to = dir.join("pmr-installed");
    std::fs::copy(BIN, &to).unwrap();
    to
}

/// `update` to a "new version" (a wrapper around pmr) that first replaces `file` in the home
/// with `json`: what a binary with another format would find there.
fn update_to_a_version_that_overwrites(pmr: &Pmr, file: &str, json: &str) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = pmr.dir.join("pmr-next");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho '{json}' > \"$PMR_HOME/{file}\"\nexec {BIN} \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    pmr.run_env(
        &["update"],
        &[("PMR_UPDATE_BINARY", wrapper.to_str().unwrap())],
    )
    .ok()
}

/// `slow`: an app that ignores SIGINT (its stop takes the whole `kill_timeout`), once it runs.
/// Returns its out log.
fn start_slow(pmr: &Pmr, kill_timeout: &str) -> PathBuf {
    pmr.run(&[
        "start",
        &fixture("stubborn.js"),
        "--name",
        "slow",
        "--kill-timeout",
        kill_timeout,
    ])
    .ok();
    let out = pmr.home.join("logs").join("slow-out.log");
    wait_until("the app to print", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("stubborn"))
    });
    out
}

fn all_online(pmr: &Pmr) -> Vec<Value> {
    let mut list = Vec::new();
    wait_until("every instance online", || {
        list = pmr.jlist();
        list.iter().all(|p| p["pm2_env"]["status"] == "online")
    });
    list
}

/// GET requests on new connections in a loop (bounded) until `stop`: (ok, refused, other).
fn load(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u32, u32, u32)> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let (mut ok, mut refused, mut other) = (0u32, 0u32, 0u32);
        // Bounded: the update is over long before.
        for _ in 0..200_000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match http_get(port) {
                Ok(_) => ok += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                Err(_) => other += 1,
            }
        }
        (ok, refused, other)
    })
}

fn daemon_log(pmr: &Pmr) -> String {
    std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap_or_default()
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|p| p["name"] == name).unwrap()
}

fn pid_of(list: &[Value], name: &str) -> u32 {
    by_name(list, name)["pid"].as_u64().unwrap() as u32
}

#[test]
fn update_keeps_every_app_running_with_the_same_pids_and_the_new_daemon_owns_them() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let pmr = Pmr::new();
    let port = free_port();
    let marker = pmr.dir.join("shutdown-marker");
    pmr.run_env(
        &["start", &fixture("http.js"), "--name", "web", "-i", "2"],
        &[("PORT", &port.to_string())],
    )
    .ok();
    pmr.run_env(
        &["start", &fixture("ticker.js"), "--name", "tick"],
        &[("TICK_MS", "50")],
    )
    .ok();
    pmr.run(&["restart", "tick"]).ok();
    pmr.run(&["start", &fixture("run.sh"), "--name", "shell"])
        .ok();
    pmr.run(&["start", &fixture("stdin_echo.js"), "--name", "echo"])
        .ok();
    // Its line is open when the update comes (written out by the pump, or held by it).
    pmr.run(&["start", &fixture("partial.js"), "--name", "partial"])
        .ok();
    pmr.run_env(
        &[
            "start",
            &fixture("shutdown.js"),
            "--name",
            "polite",
            "--shutdown-with-message",
        ],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    pmr.run_env(
        &[
            "start",
            &fixture("ready.js"),
            "--name",
            "ready",
            "--wait-ready",
        ],
        &[("READY_AFTER_MS", "100")],
    )
    .ok();
    let before = all_online(&pmr);
    pids_answering(port, 2);
    let daemon = pmr.daemon_pid().unwrap();
    let new_bin = installed_copy(&pmr.dir);
    assert_ne!(exe_of(daemon), new_bin);

    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(port, stop.clone());
    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", new_bin.to_str().unwrap())],
        )
        .ok();
    assert!(
        r.stdout
            .contains("update: every app kept running (8 process(es), same pids)"),
        "{}",
        r.stdout
    );
    // Same process, now running the installed binary, and answering.
    assert_eq!(pmr.daemon_pid(), Some(daemon));
    assert_eq!(exe_of(daemon), new_bin);
    let after = all_online(&pmr);
    pids_answering(port, 2);
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, other) = loader.join().unwrap();
    assert_eq!((refused, other), (0, 0), "{ok} requests answered");
    assert!(ok > 0);
    // Same ids, names, restart counts, statuses, pids and uptimes.
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(pids(&after), pids(&before));
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            a["pm2_env"]["pm_uptime"], b["pm2_env"]["pm_uptime"],
            "{}",
            a["name"]
        );
    }
    let tick = pid_of(&after, "tick");
    // The handover variables are the daemon's alone, and no app inherited a handed fd.
    let environ = std::fs::read(format!("/proc/{tick}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("PMR_UPDATE_"),
        "an app inherited the handover variables"
    );
    // A line written after the update reaches the same file, and `logs`.
    let seen = pmr.log_of("tick-out.log").len();
    wait_until("a line of tick written after the update", || {
        pmr.log_of("tick-out.log")[seen..].contains(&format!(" pid {tick}\n"))
    });
    let r = pmr
        .run(&["logs", "tick", "--lines", "3", "--nostream"])
        .ok();
    assert!(r.stdout.contains(&format!("pid {tick}")), "{}", r.stdout);
    // stdin: the pipe crossed too.
    let echo_id = by_name(&after, "echo")["pm_id"].to_string();
    pmr.run(&["send", &echo_id, "after the update"]).ok();
    wait_until("the echo of a line sent after the update", || {
        pmr.log_of("echo-out.log").contains("after the update")
    });
    // The line left open by the old daemon is continued by the new one, in place.
    let partial_id = by_name(&after, "partial")["pm_id"].to_string();
    pmr.run(&["send", &partial_id, "and"]).ok();
    wait_until("the open line completed after the update", || {
        pmr.log_of("partial-out.log") == "first half and second half\n"
    });
    // The IPC channels crossed: the 'shutdown' message reaches the fork app, and the cluster
    // workers are told to disconnect by a reload (then replaced).
    pmr.run(&["stop", "polite"]).ok();
    assert_eq!(wait_file(&marker), "shutdown");
    let web_before: BTreeSet<u32> = after
        .iter()
        .filter(|p| p["name"] == "web")
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    pmr.run(&["reload", "web"]).ok();
    let reloaded: BTreeSet<u32> = pmr
        .jlist()
        .iter()
        .filter(|p| p["name"] == "web")
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    assert!(
        web_before.is_disjoint(&reloaded),
        "{web_before:?} {reloaded:?}"
    );
    wait_until("the handed workers gone after the reload", || {
        web_before.iter().all(|&p| !alive(p))
    });
    // A wait_ready app started by the new daemon: its process.send('ready') arrives.
    pmr.run(&["restart", "ready"]).ok();
    assert_eq!(
        pmr.status(by_name(&after, "ready")["pm_id"].as_u64().unwrap()),
        "online"
    );
    // The new daemon really owns the handed children: a crash is seen and restarted.
    let tick_id = by_name(&after, "tick")["pm_id"].as_u64().unwrap();
    kill9(tick);
    let p = pmr.wait_proc(tick_id, "tick restarted after its crash", |p| {
        p["pid"]
            .as_u64()
            .is_some_and(|n| n != 0 && n != tick as u64)
            && p["pm2_env"]["status"] == "online"
    });
    assert_eq!(
        p["pm2_env"]["restart_time"].as_u64().unwrap(),
        by_name(&before, "tick")["pm2_env"]["restart_time"]
            .as_u64()
            .unwrap()
            + 1
    );
    // And a stop is graceful and complete.
    let shell = pid_of(&after, "shell");
    pmr.run(&["stop", "shell"]).ok();
    assert!(!alive(shell));
    // The home's lock crossed the exec: it is held, so no second daemon can start.
    let lock = std::fs::File::open(pmr.home.join("daemon.lock")).unwrap();
    assert!(
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockSharedNonblock).is_err(),
        "the daemon lock is free after update"
    );
}

#[test]
fn update_with_a_missing_or_non_executable_binary_changes_nothing() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    let before = all_online(&pmr);
    let daemon = pmr.daemon_pid().unwrap();
    let exe = exe_of(daemon);

    let missing = pmr.dir.join("gone");
    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", missing.to_str().unwrap())],
        )
        .fails();
    assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
    assert!(r.stderr.contains("nothing changed"), "{}", r.stderr);

    let plain = pmr.dir.join("plain");
    std::fs::write(&plain, "not a program").unwrap();
    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", plain.to_str().unwrap())],
        )
        .fails();
    assert!(r.stderr.contains("not executable"), "{}", r.stderr);

    assert_eq!(pmr.daemon_pid(), Some(daemon));
    assert_eq!(exe_of(daemon), exe);
    let after = pmr.jlist();
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(pids(&after), pids(&before));
}

#[test]
fn update_without_a_daemon_starts_none_and_updatepm2_is_an_alias() {
    let pmr = Pmr::new();
    let r = pmr.run(&["updatePM2"]).ok();
    assert!(r.stdout.contains("not running"), "{}", r.stdout);
    assert!(pmr.daemon_pid().is_none());
    assert!(!pmr.home.join("rpc.sock").exists());
}

#[test]
fn a_foreground_runtime_refuses_update() {
    let pmr = Pmr::new();
    let mut rt = pmr
        .cmd()
        .args(["runtime", &fixture("ticker.js")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runtime_pid = rt.id();
    // Not `pmr ping` meanwhile: it would start a daemon of its own.
    let sock = pmr.home.join("rpc.sock");
    wait_until("the runtime's socket", || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    wait_until("the runtime's app", || pmr.jlist().len() == 1);
    let before = pids(&pmr.jlist());
    let r = pmr.run(&["update"]).fails();
    assert!(r.stderr.contains("foreground"), "{}", r.stderr);
    assert_eq!(pids(&pmr.jlist()), before);
    signal(runtime_pid, Signal::SIGTERM);
    assert!(rt.wait().unwrap().success());
}

#[test]
fn while_the_daemon_is_replaced_changes_are_refused_and_ls_answers() {
    let pmr = Pmr::new();
    // Ignores SIGINT: its stop takes the whole kill_timeout, which the update waits out.
    let out = start_slow(&pmr, "3000");
    let daemon = pmr.daemon_pid().unwrap();
    let restart = pmr
        .cmd()
        .args(["restart", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the stop of the restart", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("got SIGINT"))
    });
    let update = pmr
        .cmd()
        .arg("update")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the update to begin", || {
        daemon_log(&pmr).contains("waiting for changes under way")
    });
    let r = pmr
        .run(&["start", &fixture("ticker.js"), "--name", "late"])
        .fails();
    assert!(r.stderr.contains("being replaced"), "{}", r.stderr);
    let r = pmr.run(&["ls"]).ok();
    assert!(r.stdout.contains("slow"), "{}", r.stdout);
    let done = update.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // The restart was answered before the exec; its CLI's table listing, if it met the exec,
    // asks the new daemon.
    let r = restart.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert_eq!(pmr.daemon_pid(), Some(daemon));
    let list = pmr.jlist();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["slow"]);
    assert_eq!(list[0]["pm2_env"]["status"], "online");
}

#[test]
fn jlist_and_ls_called_all_through_two_updates_all_answer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    let before = pids(&all_online(&pmr));
    let stop = AtomicBool::new(false);
    let calls = std::thread::scope(|s| {
        let callers: Vec<_> = ["jlist", "ls"]
            .into_iter()
            .map(|cmd| {
                let (pmr, stop) = (&pmr, &stop);
                s.spawn(move || {
                    let mut calls = 0;
                    while !stop.load(Ordering::SeqCst) {
                        // A call that met the exec is asked again of the new daemon.
                        let r = pmr.run(&[cmd]).ok();
                        assert!(r.stdout.contains("tick"), "{cmd}: {}", r.stdout);
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        pmr.run(&["update"]).ok();
        pmr.run(&["update"]).ok();
        stop.store(true, Ordering::SeqCst);
        callers
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect::<Vec<u32>>()
    });
    assert!(calls.iter().all(|&n| n > 0), "{calls:?}");
    assert_eq!(pids(&all_online(&pmr)), before);
}

#[test]
fn a_cluster_port_refuses_no_connection_across_two_updates() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let pmr = Pmr::new();
    let port = free_port();
    pmr.run_env(
        &["start", &fixture("http.js"), "--name", "web", "-i", "2"],
        &[("PORT", &port.to_string())],
    )
    .ok();
    let before = pids(&all_online(&pmr));
    pids_answering(port, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(port, stop.clone());
    pmr.run(&["update"]).ok();
    // A second update hands over what the first one took over.
    pmr.run(&["update"]).ok();
    let after = pids(&all_online(&pmr));
    let answering: BTreeSet<u32> = pids_answering(port, 2)
        .into_iter()
        .map(|p| p as u32)
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, other) = loader.join().unwrap();
    assert_eq!(after, before);
    assert_eq!(answering, before);
    assert_eq!((refused, other), (0, 0), "{ok} requests answered");
    assert!(ok > 0);
}

#[test]
fn a_handoff_the_new_binary_cannot_read_falls_back_to_a_restart_and_says_so() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    let before = all_online(&pmr);
    let old = pid_of(&before, "tick");
    // A "new version" whose handoff format differs.
    let r = update_to_a_version_that_overwrites(
        &pmr,
        "handoff.json",
        r#"{"format": 999, "children": []}"#,
    );
    assert!(
        r.stdout.contains("restarted (not handed over"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("tick:0"), "{}", r.stdout);
    let after = all_online(&pmr);
    assert_eq!(summary(&after), summary(&before));
    assert_ne!(pid_of(&after, "tick"), old);
    wait_until("the old process stopped", || !alive(old));
    assert!(daemon_log(&pmr).contains("handoff file has format 999"));
}

#[test]
fn an_update_waits_for_a_restart_under_way_or_is_refused_after_5_s() {
    let pmr = Pmr::new();
    // Ignores SIGINT: its stop takes the whole kill_timeout.
    let out = start_slow(&pmr, "7000");
    let daemon = pmr.daemon_pid().unwrap();
    let exe = exe_of(daemon);
    let restart = pmr
        .cmd()
        .args(["restart", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the stop of the restart", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("got SIGINT"))
    });
    let r = pmr.run(&["update"]).fails();
    assert!(r.stderr.contains("App [slow:0] is still"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing changed"), "{}", r.stderr);
    assert_eq!(exe_of(daemon), exe);
    assert!(restart.wait_with_output().unwrap().status.success());
    // Not refused for good: the next update goes through.
    pmr.run(&["update"]).ok();
    assert_eq!(pmr.daemon_pid(), Some(daemon));
}

#[test]
fn a_table_the_new_binary_cannot_read_falls_back_to_resurrect_and_says_so() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    pmr.run(&["stop", "tick"]).ok();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tock"])
        .ok();
    let daemon = pmr.daemon_pid().unwrap();
    // A "new version" whose table format differs: the table it is handed does not parse.
    let r = update_to_a_version_that_overwrites(&pmr, "state.json", r#"{"format": 999}"#);
    assert!(
        r.stdout.contains("could not take over the process table"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("as PM2 does"), "{}", r.stdout);
    assert_eq!(pmr.daemon_pid(), Some(daemon));
    let list = pmr.jlist();
    let state: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["pm2_env"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        state,
        [
            ("tick".into(), "stopped".into()),
            ("tock".into(), "online".into())
        ]
    );
}

#[test]
fn the_daemon_raises_its_fd_limit_and_its_apps_keep_the_original_across_update() {
    let pmr = Pmr::new();
    // The daemon is started by a CLI whose soft limit is 512.
    let r = std::process::Command::new("sh")
        .args(["-c", &format!("ulimit -Sn 512 && exec {BIN} ping")])
        .env("PMR_HOME", &pmr.home)
        .current_dir(&pmr.dir)
        .output()
        .unwrap();
    assert!(r.status.success());
    let daemon = pmr.daemon_pid().unwrap();
    // "Max open files  <soft>  <hard>  files" in /proc/<pid>/limits.
    let nofile = |pid: u32, field: usize| -> String {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        line.split_whitespace().nth(field).unwrap().to_string()
    };
    let soft = |pid: u32| nofile(pid, 3);
    let hard = nofile(daemon, 4);
    if hard == "512" {
        // Nothing to raise on this machine.
        return;
    }
    assert_ne!(soft(daemon), "512");
    // A shell app (Node raises its own limit at start-up).
    pmr.run(&["start", &fixture("run.sh"), "--name", "tick"])
        .ok();
    let tick = pid_of(&all_online(&pmr), "tick");
    assert_eq!(soft(tick), "512");
    pmr.run(&["update"]).ok();
    assert_ne!(soft(daemon), "512");
    pmr.run(&["restart", "tick"]).ok();
    let again = pid_of(&all_online(&pmr), "tick");
    assert_ne!(again, tick);
    assert_eq!(soft(again), "512");
}
