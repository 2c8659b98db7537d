//! Restart policy: crash loops end in errored, backoff grows, stop_exit_codes, autorestart.

use crate::support::*;

#[test]
fn a_crash_loop_ends_in_errored() {
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("crash.js"), "--name", "crasher"],
        &[("CRASH_AFTER_MS", "50")],
    )
    .ok();
    let p = pmr.wait_status(0, "errored");
    let env = &p["pm2_env"];
    // 16 consecutive short runs: the first start and 15 restarts.
    assert_eq!(env["restart_time"], 15, "{env:#}");
    assert_eq!(env["unstable_restarts"], 16);
    assert_eq!(env["exit_code"], 1);
    assert_eq!(p["pid"], 0);
    let d = pmr.run(&["describe", "crasher"]).ok().stdout;
    assert!(d.contains("min_uptime"), "describe says why: {d}");
    // A manual restart starts it again with fresh counters.
    pmr.run(&["restart", "crasher"]).ok();
    let p = pmr.wait_status(0, "errored");
    assert_eq!(p["pm2_env"]["unstable_restarts"], 16);
}

#[test]
fn max_restarts_is_honoured() {
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("crash.js"), "--max-restarts", "3"],
        &[("CRASH_AFTER_MS", "10")],
    )
    .ok();
    let p = pmr.wait_status(0, "errored");
    assert_eq!(p["pm2_env"]["restart_time"], 2);
}

#[test]
fn exponential_backoff_delays_grow() {
    let pmr = Pmr::new();
    let starts = pmr.dir.join("starts.txt");
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--exp-backoff-restart-delay",
            "200",
        ],
        &[
            ("CRASH_AFTER_MS", "10"),
            ("STARTS_FILE", starts.to_str().unwrap()),
        ],
    )
    .ok();
    let mut times: Vec<i64> = vec![];
    wait_until("5 starts", || {
        times = std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        times.len() >= 5
    });
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays 200, 300, 450, 675 ms (+ the run and node's start-up each time).
    for (gap, delay) in gaps.iter().zip([200, 300, 450, 675]) {
        assert!(
            *gap >= delay,
            "gap {gap} shorter than backoff {delay}: {gaps:?}"
        );
    }
    assert!(gaps[3] > gaps[0] + 300, "delays do not grow: {gaps:?}");
    let p = pmr.proc(0).unwrap();
    assert!(p["pm2_env"]["prev_restart_delay"].as_u64().unwrap() >= 675);
    let st = p["pm2_env"]["status"].as_str().unwrap().to_string();
    assert!(
        ["waiting restart", "online", "launching"].contains(&st.as_str()),
        "{st}"
    );
    // Stopping cancels a pending restart.
    pmr.run(&["stop", "0"]).ok();
    let p = pmr.wait_status(0, "stopped");
    assert_eq!(p["pid"], 0);
}

#[test]
fn fixed_restart_delay_shows_waiting_restart() {
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("crash.js"), "--restart-delay", "3000"],
        &[("CRASH_AFTER_MS", "10")],
    )
    .ok();
    pmr.wait_status(0, "waiting restart");
    let p = pmr.wait_proc(0, "a restart", |p| p["pm2_env"]["restart_time"] == 1);
    assert_ne!(p["pm2_env"]["status"], "errored");
}

#[test]
fn stop_exit_codes_and_no_autorestart_stop_the_app() {
    let pmr = Pmr::new();
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--name",
            "ok",
            "--stop-exit-codes",
            "0",
        ],
        &[("EXIT_CODE", "0")],
    )
    .ok();
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--name",
            "once",
            "--no-autorestart",
        ],
        &[],
    )
    .ok();
    let a = pmr.wait_status(0, "stopped");
    let b = pmr.wait_status(1, "stopped");
    assert_eq!(a["pm2_env"]["restart_time"], 0);
    assert_eq!(a["pm2_env"]["exit_code"], 0);
    assert_eq!(b["pm2_env"]["restart_time"], 0);
    assert_eq!(b["pm2_env"]["exit_code"], 1);
}

#[test]
fn the_last_exit_code_stays_across_a_restart() {
    // PM2 keeps pm2_env.exit_code until the next exit (measured with PM2 7.0.4).
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("crash.js"), "--no-autorestart"],
        &[("EXIT_CODE", "3"), ("CRASH_AFTER_MS", "300000")],
    )
    .ok();
    pmr.wait_status(0, "online");
    pmr.run_env(
        &["restart", "crash", "--update-env"],
        &[("EXIT_CODE", "3"), ("CRASH_AFTER_MS", "50")],
    )
    .ok();
    let p = pmr.wait_proc(0, "the exit with code 3", |p| {
        p["pm2_env"]["status"] == "stopped" && p["pm2_env"]["exit_code"] == 3
    });
    assert_eq!(p["pm2_env"]["restart_time"], 1);
    pmr.run_env(
        &["restart", "crash", "--update-env"],
        &[("EXIT_CODE", "3"), ("CRASH_AFTER_MS", "300000")],
    )
    .ok();
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["pm2_env"]["exit_code"], 3, "{:#}", p["pm2_env"]);
}
