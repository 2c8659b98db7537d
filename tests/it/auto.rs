//! Automatic restarts: `cron_restart`, `max_memory_restart`, and the restart history that says
//! why each restart happened.

use crate::support::*;
use serde_json::Value;

fn history(p: &Value) -> Vec<Value> {
    p["pm2_env"]["pmr_restart_history"]
        .as_array()
        .unwrap_or_else(|| panic!("no pmr_restart_history: {p:#}"))
        .clone()
}

fn causes(p: &Value) -> Vec<String> {
    history(p)
        .iter()
        .map(|r| r["cause"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cron_restart_restarts_on_schedule_and_can_be_removed() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "cronned"])
        .ok();
    pmr.wait_status(0, "online");
    // Given with a restart (an option patch): the schedule follows the spec.
    pmr.run(&["restart", "cronned", "--cron-restart", "* * * * * *"])
        .ok();
    let p = pmr.wait_proc(0, "two cron restarts", |p| {
        p["pm2_env"]["restart_time"].as_u64() >= Some(3)
    });
    let h = history(&p);
    assert_eq!(h[0]["cause"], "restart", "{h:?}");
    let h = &h[1..];
    assert!(h.len() >= 2, "{h:?}");
    for r in h {
        assert_eq!(r["cause"], "cron", "{h:?}");
        assert_eq!(r["detail"], "* * * * * *");
        assert!(r["uptime_ms"].as_u64().unwrap() > 0);
    }
    let d = pmr.run(&["describe", "cronned"]).ok().stdout;
    assert!(
        d.lines()
            .any(|l| l.contains("│ cron restart ") && l.contains("│ * * * * * * (next ")),
        "{d}"
    );
    assert!(d.contains("Restart history"), "{d}");
    assert!(!d.contains("not supported yet"), "{d}");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(log.contains("restart: cron (* * * * * *)"), "{log}");

    // `--cron-restart 0` removes the schedule: the process then keeps running.
    pmr.run(&["restart", "cronned", "--cron-restart", "0"]).ok();
    let p = pmr.wait_status(0, "online");
    assert!(p["pm2_env"].get("cron_restart").is_none(), "{p:#}");
    let pid = p["pid"].as_u64().unwrap();
    let restarts = p["pm2_env"]["restart_time"].as_u64().unwrap();
    let started = p["pm2_env"]["pm_uptime"].as_i64().unwrap();
    // Three schedule periods pass without a restart.
    wait_until("3 s of uptime", || {
        chrono::Utc::now().timestamp_millis() - started > 3_000
    });
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pid"], pid, "{p:#}");
    assert_eq!(p["pm2_env"]["restart_time"], restarts);
    assert_eq!(causes(&p).last().unwrap(), "restart");
}

/// A restart pmr makes on its own during a launch does not fail the user's `start` (issue 22):
/// a cluster worker that never listens is not ready before `listen_timeout`, and a cron every
/// 2 s cuts every launch short; PM2's `start` succeeds and its worker restarts every 2 s.
#[test]
fn a_cron_restart_during_a_launch_does_not_fail_the_start() {
    let pmr = Pmr::new();
    let r = pmr
        .run(&[
            "start",
            &fixture("no_listen.js"),
            "-i",
            "1",
            "--cron-restart",
            "*/2 * * * * *",
            "--listen-timeout",
            "60000",
        ])
        .ok();
    assert!(!r.stderr.contains("before it was ready"), "{}", r.stderr);
    // pmr's rule for a cluster worker stands: online once it listens or `listen_timeout` passed.
    let p = pmr.wait_proc(0, "two cron restarts, launching again", |p| {
        p["pm2_env"]["restart_time"].as_u64() >= Some(2) && p["pm2_env"]["status"] == "launching"
    });
    assert!(causes(&p).iter().all(|c| c == "cron"), "{p:#}");
}

#[test]
fn cron_restart_starts_a_stopped_app_as_pm2_does() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "-c", "*/1 * * * * *"])
        .ok();
    pmr.wait_status(0, "online");
    pmr.run(&["stop", "0"]).ok();
    // The start of the stopped app is recorded with no uptime before it.
    pmr.wait_proc(0, "started again by cron", |p| {
        p["pm2_env"]["status"] == "online"
            && history(p)
                .iter()
                .any(|r| r["cause"] == "cron" && r["uptime_ms"] == 0)
    });
    // Deleted: the schedule goes with it.
    pmr.run(&["delete", "0"]).ok();
    assert!(pmr.jlist().is_empty());
}

#[test]
fn a_bad_cron_pattern_is_refused_naming_it() {
    let pmr = Pmr::new();
    for bad in ["0 0 3 * * * 2030", "0 25 * * *", "every day"] {
        let r = pmr
            .run(&["start", &fixture("ticker.js"), "--cron", bad])
            .fails();
        assert!(
            r.stderr.contains(bad) && r.stderr.contains("cron_restart"),
            "{bad}: {}",
            r.stderr
        );
    }
    assert!(pmr.jlist().is_empty());
}

#[test]
fn a_crash_is_in_the_history_with_its_exit_code() {
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("crash.js"), "--name", "crashy"],
        &[("CRASH_AFTER_MS", "300"), ("EXIT_CODE", "3")],
    )
    .ok();
    let p = pmr.wait_proc(0, "a crash restart", |p| !history(p).is_empty());
    let r = &history(&p)[0];
    assert_eq!(r["cause"], "crash");
    assert_eq!(r["detail"], "exited with code 3");
    assert!(r["uptime_ms"].as_u64().unwrap() >= 300, "{r}");
    let d = pmr.run(&["describe", "crashy"]).ok().stdout;
    assert!(d.contains("│ crash │ exited with code 3 "), "{d}");
}

/// The first memory restart in the history of `pm_id`, waited for.
fn wait_memory_restart(pmr: &Pmr, pm_id: u64) -> Value {
    let p = pmr.wait_proc(pm_id, "a memory restart", |p| {
        history(p).iter().any(|r| r["cause"] == "memory")
    });
    history(&p)
        .into_iter()
        .find(|r| r["cause"] == "memory")
        .unwrap()
}

#[test]
fn max_memory_restart_restarts_a_growing_app_and_says_why() {
    let pmr = Pmr::new();
    pmr.run(&[
        "start",
        &fixture("grow.js"),
        "--name",
        "grower",
        "--max-memory-restart",
        "60M",
    ])
    .ok();
    let first = pmr.wait_status(0, "online")["pid"].as_u64().unwrap();
    let r = wait_memory_restart(&pmr, 0);
    let detail = r["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("memory ") && detail.ends_with(" MB > 60 MB"),
        "{r}"
    );
    let p = pmr.wait_status(0, "online");
    assert_ne!(p["pid"].as_u64().unwrap(), first, "a new process");
    assert!(!alive(first as u32), "the old one is gone");
    let d = pmr.run(&["describe", "grower"]).ok().stdout;
    assert!(d.contains(detail), "{d}");
    assert!(!d.contains("not supported yet"), "{d}");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains(&format!("restart: memory ({detail})")),
        "{log}"
    );
}

#[test]
fn max_memory_restart_measures_the_whole_tree() {
    // PM2 reads the main pid only (here `sh`), so it would never restart this app.
    let pmr = Pmr::new();
    pmr.run(&[
        "start",
        &fixture("grow_tree.sh"),
        "--max-memory-restart",
        "60M",
    ])
    .ok();
    let r = wait_memory_restart(&pmr, 0);
    assert!(r["detail"].as_str().unwrap().ends_with("> 60 MB"), "{r}");
}

#[test]
fn max_memory_restart_reloads_a_cluster_worker() {
    let pmr = Pmr::new();
    let port = free_port();
    pmr.run_env(
        &[
            "start",
            &fixture("grow.js"),
            "-i",
            "1",
            "--max-memory-restart",
            "60M",
        ],
        &[("PORT", &port.to_string())],
    )
    .ok();
    let r = wait_memory_restart(&pmr, 0);
    assert!(r["uptime_ms"].as_u64().unwrap() > 0, "{r}");
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["pm2_env"]["exec_mode"], "cluster_mode");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains("reloaded: pid"),
        "a reload, not a restart: {log}"
    );
}

#[test]
fn a_bad_memory_size_is_refused() {
    let pmr = Pmr::new();
    let r = pmr
        .run(&[
            "start",
            &fixture("ticker.js"),
            "--max-memory-restart",
            "12Q",
        ])
        .fails();
    assert!(r.stderr.contains("12Q"), "{}", r.stderr);
    assert!(pmr.jlist().is_empty());
}

#[test]
fn the_memory_grace_delays_the_restart() {
    let pmr = Pmr::new();
    // Over 60 MB within 0.3 s of its start; restarted only after 3 s over the limit.
    pmr.run_env(
        &["start", &fixture("grow.js"), "--max-memory-restart", "60M"],
        &[
            ("PMR_MEMORY_GRACE_MS", "3000"),
            ("GROW_MB_S", "200"),
            ("GROW_MAX_MB", "100"),
        ],
    )
    .ok();
    let r = wait_memory_restart(&pmr, 0);
    let up = r["uptime_ms"].as_u64().unwrap();
    assert!((3_000..10_000).contains(&up), "{r}");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(log.contains("memory grace 3000 ms"), "{log}");
}

#[test]
fn a_bad_memory_grace_is_refused_before_the_daemon_starts() {
    let pmr = Pmr::new();
    let r = pmr
        .run_env(
            &["start", &fixture("ticker.js")],
            &[("PMR_MEMORY_GRACE_MS", "1s")],
        )
        .fails();
    assert!(r.stderr.contains("PMR_MEMORY_GRACE_MS"), "{}", r.stderr);
    assert!(pmr.daemon_pid().is_none());
}
