//! PM2's command-line contract as scripts rely on it: exit statuses, messages, accepted flags
//! and the small commands (issue 11, items 4, 6 and 13).

use crate::support::*;

fn restart_time(p: &serde_json::Value) -> u64 {
    p["pm2_env"]["restart_time"].as_u64().unwrap()
}

#[test]
fn acting_on_all_with_no_process_fails_as_pm2() {
    let pmr = Pmr::new();
    for cmd in ["stop", "restart", "reload", "delete"] {
        let r = pmr.run(&[cmd, "all"]).fails();
        assert!(
            r.stderr.contains("[PMR][WARN] No process found"),
            "{cmd}: {}",
            r.stderr
        );
        // PM2 prints no table after the warning.
        assert!(!r.stdout.contains("│ id"), "{cmd}: {}", r.stdout);
    }
    // Once there is something to act on, `all` succeeds again.
    pmr.run(&["start", &fixture("run.sh"), "--name", "one"])
        .ok();
    pmr.run(&["stop", "all"]).ok();
    pmr.run(&["delete", "all"]).ok();
    pmr.run(&["restart", "all"]).fails();
    // An unknown name or id fails the same way for every lifecycle command.
    pmr.run(&["start", &fixture("run.sh"), "--name", "two"])
        .ok();
    for cmd in ["stop", "restart", "reload", "delete"] {
        let r = pmr.run(&[cmd, "nosuchapp"]).fails();
        assert!(r.stderr.contains("nosuchapp not found"), "{}", r.stderr);
        let r = pmr.run(&[cmd, "42"]).fails();
        assert!(r.stderr.contains("42 not found"), "{}", r.stderr);
    }
    assert_eq!(pmr.jlist().len(), 1);
}

/// Measured with PM2 7.0.4: `restart` of an online app counts (`restart_time` + 1); `restart`
/// or `reload` of a stopped app starts it without counting (God.restartProcessId only counts
/// after stopping an online process).
#[test]
fn restart_counts_as_pm2_counts() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "k"]).ok();
    pmr.wait_status(0, "online");
    assert_eq!(restart_time(&pmr.proc(0).unwrap()), 0);
    pmr.run(&["restart", "k"]).ok();
    assert_eq!(restart_time(&pmr.wait_status(0, "online")), 1);
    pmr.run(&["stop", "k"]).ok();
    assert_eq!(pmr.status(0), "stopped");
    pmr.run(&["restart", "k"]).ok();
    assert_eq!(restart_time(&pmr.wait_status(0, "online")), 1);
    pmr.run(&["stop", "k"]).ok();
    pmr.run(&["reload", "k"]).ok();
    assert_eq!(restart_time(&pmr.wait_status(0, "online")), 1);
    pmr.run(&["reload", "k"]).ok();
    assert_eq!(restart_time(&pmr.wait_status(0, "online")), 2);
}
