//! The 5-minute form of `bench/soak`: restarts, crash loops, log bursts and CLI calls against
//! 100 apps. The daemon's RSS and fds stay flat (the last minute within 20% of the second, as
//! `bench/soak --check`; RSS: or 3 MiB), every call is answered in time, and every process is
//! gone after `delete all`. Small programs (`sleep`, `sh`) rather than Node apps.
//!
//! A test binary of its own: cargo runs test binaries one after another, so the soak runs
//! alone, after the integration tests, and they do not share 2 cores with its churn for 5
//! minutes (its figures are the daemon's, not the neighbours').

#[path = "it/support.rs"]
mod support;

use crate::support::*;
use std::time::{Duration, Instant};

const IDLE: usize = 94;
const WARM_UP: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(60);
const LENGTH: Duration = Duration::from_secs(300);
const GROWTH: f64 = 1.20;
const RSS_SLACK_KB: u64 = 3 * 1024;
/// Generous for 2 busy cores (the bound is 1 s on a quiet machine).
const CALL_BOUND: Duration = Duration::from_secs(10);

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn five_minutes_of_churn_keep_rss_and_fds_flat() {
    let pmr = Pmr::new();
    let mut apps: Vec<_> = (0..IDLE)
        .map(|i| serde_json::json!({"name": format!("idle{i}"), "script": "sleep", "args": ["100000"]}))
        .collect();
    for i in 0..3 {
        apps.push(serde_json::json!({
            "name": format!("crash{i}"), "script": "sh", "args": ["-c", "exit 1"],
            "restart_delay": 200, "max_restarts": 1_000_000_000u64, "min_uptime": 50,
        }));
        apps.push(serde_json::json!({
            "name": format!("log{i}"), "script": "sh",
            "args": ["-c", "seq 1 20000; exec sleep 100000"],
        }));
    }
    let file = pmr.dir.join("soak.json");
    std::fs::write(&file, serde_json::json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", file.to_str().unwrap()]).ok();
    wait_until("100 apps listed", || pmr.jlist().len() == 100);
    let daemon = pmr.daemon_pid().unwrap();
    // Warm-up: every app restarted once, so that the per-app buffers have been reallocated
    // (the daemon's high-water mark) before the first window.
    pmr.run(&["restart", "all"]).ok();

    let begin = Instant::now();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    let mut slowest = Duration::ZERO;
    let mut i = 0usize;
    while begin.elapsed() < LENGTH {
        let idle = format!("idle{}", (i * 7) % IDLE);
        let mut calls: Vec<Vec<&str>> = vec![vec!["restart", &idle], vec!["jlist"], vec!["ls"]];
        if i.is_multiple_of(20) {
            calls.push(vec!["restart", "/^log/"]);
        }
        for args in calls {
            let t = Instant::now();
            pmr.run(&args).ok();
            slowest = slowest.max(t.elapsed());
        }
        let at = begin.elapsed();
        let sample = (rss_kb(daemon), fds(daemon));
        if at >= WARM_UP && at < WARM_UP + WINDOW {
            first.push(sample);
        } else if at >= LENGTH - WINDOW {
            last.push(sample);
        }
        i += 1;
    }
    assert!(slowest < CALL_BOUND, "a CLI call took {slowest:?}");
    assert!(
        !first.is_empty() && !last.is_empty(),
        "{i} rounds: too few samples"
    );
    let rss = |v: &[(u64, u64)]| median(v.iter().map(|s| s.0).collect());
    let fd = |v: &[(u64, u64)]| median(v.iter().map(|s| s.1).collect());
    let (r0, r1, f0, f1) = (rss(&first), rss(&last), fd(&first), fd(&last));
    // 20%, but at least RSS_SLACK: with the log pool the daemon is small, and one app's
    // read buffers becoming resident (2 × 64 KiB) or a reclaimer tick not yet run moves it by
    // more than 20% of a few MB (seen once in a full parallel run).
    assert!(
        r1 as f64 <= (r0 as f64 * GROWTH).max((r0 + RSS_SLACK_KB) as f64),
        "daemon RSS grew {r0} → {r1} KiB over {i} rounds of churn"
    );
    assert!(
        f1 as f64 <= f0 as f64 * GROWTH,
        "daemon fds grew {f0} → {f1} over {i} rounds of churn"
    );

    let pids: Vec<u32> = pmr
        .jlist()
        .iter()
        .filter_map(|p| p["pid"].as_u64().filter(|&p| p != 0))
        .map(|p| p as u32)
        .collect();
    pmr.run(&["delete", "all"]).ok();
    for pid in pids {
        wait_until(&format!("pid {pid} stopped"), || !alive(pid));
    }
}
