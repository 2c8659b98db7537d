//! `pmr report`: PM2's diagnostic sections, with and without a running daemon.

use crate::support::*;

const SECTIONS: [&str; 6] = [
    "--- pmr report",
    "--- Daemon",
    "--- CLI",
    "--- System info",
    "--- pmr list",
    "--- Daemon logs",
];

fn field<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(" : ")?;
            (k.trim_end() == key).then_some(v)
        })
        .unwrap_or_else(|| panic!("no `{key}` in\n{report}"))
}

#[test]
fn report_without_a_daemon_says_so_and_does_not_start_one() {
    let pmr = Pmr::new();
    let r = pmr.run(&["report"]).ok();
    for s in SECTIONS {
        assert!(r.stdout.contains(s), "{s} missing:\n{}", r.stdout);
    }
    assert!(
        field(&r.stdout, "status").starts_with("not running"),
        "{}",
        r.stdout
    );
    assert_eq!(field(&r.stdout, "local pmr"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field(&r.stdout, "arch"), std::env::consts::ARCH);
    assert!(r.stdout.contains("none: the daemon is not running"));
    assert!(
        !pmr.home.join("rpc.sock").exists(),
        "the report started a daemon"
    );
    assert!(pmr.daemon_pid().is_none());
}

#[test]
fn report_with_a_daemon_shows_its_state_list_and_log() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tock"])
        .ok();
    pmr.run(&["stop", "tock"]).ok();
    let r = pmr.run(&["report"]).ok();
    let out = &r.stdout;
    for s in SECTIONS {
        assert!(out.contains(s), "{s} missing:\n{out}");
    }
    assert_eq!(field(out, "status"), "running");
    assert_eq!(field(out, "pmr daemon version"), env!("CARGO_PKG_VERSION"));
    let pid = pmr.daemon_pid().unwrap();
    assert_eq!(field(out, "pid"), pid.to_string());
    assert_eq!(field(out, "home"), pmr.home.to_string_lossy());
    assert_eq!(field(out, "apps"), "2");
    assert_eq!(field(out, "processes"), "2 (1 online, 1 stopped)");
    // The process table, then the end of pmr.log.
    assert!(out.contains("│ tick"), "{out}");
    let log_head = format!("{} last 20 lines:", pmr.home.join("pmr.log").display());
    let tail = &out[out.find(&log_head).expect(out) + log_head.len()..];
    assert!(tail.contains("App [tock:1] stopped"), "{out}");
    assert!(
        tail.lines().filter(|l| !l.starts_with("```")).count() <= 22,
        "{tail}"
    );
}

#[test]
fn report_after_the_daemon_died_names_its_pid_and_keeps_its_log() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let pid = pmr.daemon_pid().unwrap();
    kill9(pid);
    wait_until("the daemon gone", || !alive(pid));
    let out = pmr.run(&["report"]).ok().stdout;
    assert!(field(&out, "status").starts_with("not running"), "{out}");
    assert!(
        field(&out, "pid file").ends_with(&format!("names pid {pid}, which is gone")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "pmr daemon {} started (pid {pid}",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    // Still not restarted by the report.
    assert_eq!(pmr.daemon_pid(), Some(pid));
}
