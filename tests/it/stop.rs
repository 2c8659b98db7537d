//! The stop sequence: SIGINT to the tree, SIGKILL after kill_timeout, no orphans.

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn an_app_ignoring_sigint_is_killed_after_kill_timeout() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("stubborn.js"), "--kill-timeout", "800"])
        .ok();
    wait_until("stubborn started", || {
        pmr.log_of("stubborn-out.log").contains("stubborn")
    });
    let pid = pmr.proc(0).unwrap()["pid"].as_u64().unwrap() as u32;
    let t = Instant::now();
    pmr.run(&["stop", "stubborn"]).ok();
    let took = t.elapsed();
    assert!(!alive(pid), "still alive after stop returned");
    assert!(
        took >= Duration::from_millis(800),
        "SIGKILL came before kill_timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(800 + 500 + 1500),
        "took {took:?}"
    );
    assert!(pmr
        .log_of("stubborn-out.log")
        .contains("got SIGINT, ignoring"));
    assert_eq!(pmr.status(0), "stopped");
}

#[test]
fn stop_kills_grandchildren_in_the_group_and_outside_it() {
    let pmr = Pmr::new();
    let gc1 = pmr.dir.join("gc1.pid");
    let gc2 = pmr.dir.join("gc2.pid");
    pmr.run_env(
        &["start", &fixture("grandchild.sh"), "--kill-timeout", "600"],
        &[("GRANDCHILD_PID_FILE", gc1.to_str().unwrap())],
    )
    .ok();
    pmr.run_env(
        &["start", &fixture("escaper.sh")],
        &[("GRANDCHILD_PID_FILE", gc2.to_str().unwrap())],
    )
    .ok();
    let g1: u32 = wait_file(&gc1).trim().parse().unwrap();
    let g2: u32 = wait_file(&gc2).trim().parse().unwrap();
    pmr.track(g1);
    pmr.track(g2);
    assert!(alive(g1) && alive(g2));
    pmr.run(&["stop", "all"]).ok();
    wait_until("grandchildren gone", || !alive(g1) && !alive(g2));
}

#[test]
fn no_treekill_signals_the_main_process_only() {
    let pmr = Pmr::new();
    let gc = pmr.dir.join("gc.pid");
    pmr.run_env(
        &[
            "start",
            &fixture("grandchild.sh"),
            "--no-treekill",
            "--kill-timeout",
            "300",
        ],
        &[("GRANDCHILD_PID_FILE", gc.to_str().unwrap())],
    )
    .ok();
    let g: u32 = wait_file(&gc).trim().parse().unwrap();
    pmr.track(g);
    pmr.run(&["stop", "all"]).ok();
    assert!(alive(g), "with --no-treekill the grandchild is left alone");
    kill9(g);
}

#[test]
fn shutdown_with_message_sends_shutdown_over_ipc() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("shutdown.txt");
    pmr.run_env(
        &[
            "start",
            &fixture("shutdown.js"),
            "--shutdown-with-message",
            "--kill-timeout",
            "5000",
        ],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    pmr.wait_status(0, "online");
    let t = Instant::now();
    pmr.run(&["stop", "0"]).ok();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "shutdown");
    // It exited by itself, long before the SIGKILL deadline.
    assert!(t.elapsed() < Duration::from_millis(4000));
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pm2_env"]["exit_code"], 0);
}

#[test]
fn kill_stops_every_app_and_the_next_command_starts_a_fresh_daemon() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    pmr.run(&["start", &fixture("worker.py")]).ok();
    let pids: Vec<u32> = pmr
        .jlist()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    let daemon = pmr.daemon_pid().unwrap();
    pmr.run(&["kill"]).ok();
    assert!(!alive(daemon), "daemon still alive after kill");
    for p in pids {
        assert!(!alive(p), "app {p} survived kill");
    }
    assert!(!pmr.home.join("rpc.sock").exists());
    pmr.run(&["ping"]).ok();
    let fresh = pmr.daemon_pid().unwrap();
    assert_ne!(fresh, daemon);
    assert!(pmr.jlist().is_empty());
}

/// A stop does not wait behind a reload in progress: it aborts it, and stops the old and the
/// new process within one kill_timeout.
#[test]
fn stop_during_a_slow_reload_acts_within_kill_timeout() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("first.pid");
    let new_pid_file = pmr.dir.join("new.pid");
    let env = [
        ("MARKER", marker.to_str().unwrap()),
        ("NEW_PID_FILE", new_pid_file.to_str().unwrap()),
        ("SLOW_READY_MS", "20000"),
    ];
    let args = [
        "start",
        &fixture("slow_reload_ready.js"),
        "-i",
        "1",
        "--name",
        "slow",
        "--wait-ready",
        "--listen-timeout",
        "30000",
        "--kill-timeout",
        "2000",
    ];
    pmr.run_env(&args, &env).ok();
    let old = pmr.wait_status(0, "online")["pid"].as_u64().unwrap() as u32;

    let mut reload = pmr.cmd().args(["reload", "slow"]).spawn().unwrap();
    let new: u32 = wait_file(&new_pid_file).trim().parse().unwrap();
    pmr.track(new);
    assert_ne!(new, old);

    let t = Instant::now();
    pmr.run(&["stop", "slow"]).ok();
    let took = t.elapsed();
    // Both ignore SIGINT: SIGKILL after kill_timeout, once for both at the same time.
    assert!(took >= Duration::from_millis(2000), "took {took:?}");
    assert!(took < Duration::from_millis(2000 + 3000), "took {took:?}");
    assert!(!alive(old), "the old process {old} survived the stop");
    assert!(!alive(new), "the new process {new} survived the stop");
    assert_eq!(pmr.status(0), "stopped");

    // The reload is answered with an error, long before the new process would be ready.
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = reload.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "reload never returned");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "the aborted reload reported success");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(pmr.status(0), "stopped");
    assert_eq!(pmr.proc(0).unwrap()["pid"], 0);
}

/// A tree whose every process ignores SIGINT gets its SIGKILL in one pass at `kill_timeout`,
/// a process forked since the SIGINT out of the group included: when `stop` returns, none of
/// them runs (issue 22; the time it takes is a bench row, `bench/run stop`).
#[test]
fn every_process_of_a_tree_ignoring_sigint_is_killed_in_one_pass() {
    let pmr = Pmr::new();
    let pids_file = pmr.dir.join("tree.pids");
    pmr.run_env(
        &[
            "start",
            &fixture("stubborn_tree.js"),
            "--kill-timeout",
            "1000",
        ],
        &[
            ("TREE_PIDS", pids_file.to_str().unwrap()),
            ("STRAGGLER", "1"),
        ],
    )
    .ok();
    let read = || -> Vec<u32> {
        std::fs::read_to_string(&pids_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait_until("three levels", || read().len() >= 3);
    pmr.run(&["stop", "stubborn_tree"]).ok();
    let pids = read();
    for &p in &pids {
        pmr.track(p);
    }
    assert_eq!(pids.len(), 4, "the straggler was not started: {pids:?}");
    let survivors: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(survivors.is_empty(), "survived the stop: {survivors:?}");
    assert_eq!(pmr.status(0), "stopped");
}
