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

const IGNORED_FLAGS: [&str; 10] = [
    "--no-automation",
    "--no-pmx",
    "--no-vizion",
    "--trace",
    "--disable-trace",
    "--v8",
    "--event-loop-inspector",
    "--deep-monitoring",
    "--source-map-support",
    "--disable-source-map-support",
];

#[test]
fn pm2_monitoring_flags_are_accepted_with_one_note() {
    let pmr = Pmr::new();
    let mut args = vec!["start", "--name", "flagged"];
    let script = fixture("run.sh");
    args.push(&script);
    args.extend(IGNORED_FLAGS);
    let r = pmr.run(&args).ok();
    let notes: Vec<&str> = r.stderr.lines().filter(|l| l.contains("ignored")).collect();
    assert_eq!(notes.len(), 1, "{}", r.stderr);
    for f in IGNORED_FLAGS {
        assert!(notes[0].contains(f), "{f} not named: {}", notes[0]);
    }
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["name"], "flagged");
    // PM2's options are global: any command takes them; without them, no note.
    let r = pmr.run(&["stop", "flagged", "--no-pmx"]).ok();
    assert!(r.stderr.contains("--no-pmx"), "{}", r.stderr);
    assert_eq!(pmr.status(0), "stopped");
    let r = pmr.run(&["restart", "flagged"]).ok();
    assert!(!r.stderr.contains("ignored"), "{}", r.stderr);
}

#[test]
fn pm2_plus_commands_say_they_are_not_offered() {
    let pmr = Pmr::new();
    for args in [
        &["link", "secret-key", "public-key", "machine"][..],
        &["unlink"],
        &["plus"],
    ] {
        let r = pmr.run(args).ok();
        assert!(r.stdout.contains("not offered"), "{args:?}: {}", r.stdout);
    }
    // Nothing was started for them, not even the daemon.
    assert!(pmr.daemon_pid().is_none());
}
