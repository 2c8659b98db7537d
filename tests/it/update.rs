//! `update`: the daemon re-executes the installed binary with the same pid, and restores its
//! table (same ids, names, restart counts; the apps are restarted: in-place handoff is not
//! supported yet, and the CLI says so). A binary that is missing or not executable changes
//! nothing.

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

fn all_online(pmr: &Pmr) -> Vec<Value> {
    let mut list = Vec::new();
    wait_until("every instance online", || {
        list = pmr.jlist();
        list.iter().all(|p| p["pm2_env"]["status"] == "online")
    });
    list
}

#[test]
fn update_reexecs_the_installed_binary_with_the_same_pid_and_table() {
    let pmr = Pmr::new();
    let port = free_port();
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
    let before = all_online(&pmr);
    let daemon = pmr.daemon_pid().unwrap();
    let new_bin = installed_copy(&pmr.dir);
    assert_ne!(exe_of(daemon), new_bin);

    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", new_bin.to_str().unwrap())],
        )
        .ok();
    assert!(
        r.stdout
            .contains("update: apps were restarted (in-place handoff not supported yet)"),
        "{}",
        r.stdout
    );
    // Same process, now running the installed binary, and answering.
    assert_eq!(pmr.daemon_pid(), Some(daemon));
    assert_eq!(exe_of(daemon), new_bin);
    pmr.run(&["ping"]).ok();
    let after = all_online(&pmr);
    assert_eq!(summary(&after), summary(&before));
    // Restarted, exactly once each: the old processes are gone, the new ones serve.
    assert!(pids(&before).iter().all(|&p| !alive(p)), "{before:?}");
    let tick = after.iter().find(|p| p["name"] == "tick").unwrap()["pid"]
        .as_u64()
        .unwrap();
    let web: BTreeSet<u64> = after
        .iter()
        .filter(|p| p["name"] == "web")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    let answering: BTreeSet<u64> = pids_answering(port, 2).into_iter().collect();
    assert_eq!(answering, web);
    // The handover variables are the daemon's alone.
    let environ = std::fs::read(format!("/proc/{tick}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("PMR_UPDATE_"),
        "an app inherited the handover variables"
    );
    // Logs still go to the same files.
    wait_until("a line of the new tick process in tick-out.log", || {
        pmr.log_of("tick-out.log")
            .contains(&format!(" pid {tick}\n"))
    });
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
    // SAFETY: kill(2) on the runtime this test started.
    unsafe {
        libc::kill(runtime_pid as i32, libc::SIGTERM);
    }
    assert!(rt.wait().unwrap().success());
}

#[test]
fn while_the_daemon_is_replaced_changes_are_refused_and_ls_answers() {
    let pmr = Pmr::new();
    // Ignores SIGINT: its stop takes the whole kill_timeout, which is when we act.
    pmr.run(&[
        "start",
        &fixture("stubborn.js"),
        "--name",
        "slow",
        "--kill-timeout",
        "3000",
    ])
    .ok();
    let out = pmr.home.join("logs").join("slow-out.log");
    wait_until("the app to print", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("stubborn"))
    });
    let daemon = pmr.daemon_pid().unwrap();
    let update = pmr
        .cmd()
        .arg("update")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the stop of the update", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("got SIGINT"))
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
    assert_eq!(pmr.daemon_pid(), Some(daemon));
    let names: Vec<String> = pmr
        .jlist()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["slow"]);
}

#[test]
fn a_cluster_port_refuses_no_connection_across_update() {
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
    let load = {
        let stop = stop.clone();
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
    };
    pmr.run(&["update"]).ok();
    let after = pids(&all_online(&pmr));
    // The new workers serve: the load sees them before it stops.
    let answering: BTreeSet<u32> = pids_answering(port, 2)
        .into_iter()
        .map(|p| p as u32)
        .collect();
    assert_eq!(answering, after);
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, other) = load.join().unwrap();
    // A second update finds the sockets adopted, and hands them over again.
    pmr.run(&["update"]).ok();
    let again: BTreeSet<u32> = pids_answering(port, 2)
        .into_iter()
        .map(|p| p as u32)
        .collect();
    assert_eq!(again, pids(&all_online(&pmr)));
    assert!(before.is_disjoint(&after), "{before:?} {after:?}");
    assert_eq!(
        refused, 0,
        "refused connections ({ok} ok, {other} other errors)"
    );
    assert!(ok > 0);
}

#[test]
fn a_table_the_new_binary_cannot_read_falls_back_to_resurrect_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    pmr.run(&["stop", "tick"]).ok();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tock"])
        .ok();
    let daemon = pmr.daemon_pid().unwrap();
    // A "new version" whose table format differs: the table it is handed does not parse.
    let wrapper = pmr.dir.join("pmr-next");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho '{{\"format\": 999}}' > \"$PMR_HOME/state.json\"\nexec {BIN} \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = pmr
        .run_env(
            &["update"],
            &[("PMR_UPDATE_BINARY", wrapper.to_str().unwrap())],
        )
        .ok();
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
