//! Bad input: a clear error, exit 1, and nothing changed.

use crate::support::*;

fn assert_nothing_started(pmr: &Pmr) {
    assert!(pmr.jlist().is_empty(), "something was started");
}

#[test]
fn missing_script_unknown_interpreter_and_bad_numbers() {
    let pmr = Pmr::new();
    let r = pmr.run(&["start", "does-not-exist.js"]).fails();
    assert!(
        r.stderr.contains("Script not found") && r.stderr.contains("does-not-exist.js"),
        "{}",
        r.stderr
    );
    let r = pmr
        .run(&[
            "start",
            &fixture("http.js"),
            "--interpreter",
            "no-such-interpreter",
        ])
        .fails();
    assert!(
        r.stderr
            .contains("Interpreter no-such-interpreter is not available in PATH"),
        "{}",
        r.stderr
    );
    let r = pmr
        .run(&["start", &fixture("http.js"), "--kill-timeout", "-5"])
        .fails();
    assert!(
        r.stderr.contains("kill_timeout") && r.stderr.contains("-5"),
        "{}",
        r.stderr
    );
    let r = pmr
        .run(&["start", &fixture("http.js"), "-i", "lots"])
        .fails();
    assert!(r.stderr.contains("instances"), "{}", r.stderr);
    // Several targets: one bad one starts none of them.
    let r = pmr.run(&["start", &fixture("run.sh"), "nope.sh"]).fails();
    assert!(r.stderr.contains("nope.sh"), "{}", r.stderr);
    assert_nothing_started(&pmr);
}

#[test]
fn unknown_selectors_fail_and_change_nothing() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    for cmd in ["stop", "restart", "delete", "reset", "describe"] {
        let r = pmr.run(&[cmd, "nosuchapp"]).fails();
        assert!(
            r.stderr.contains("nosuchapp not found"),
            "{cmd}: {}",
            r.stderr
        );
    }
    pmr.run(&["stop", "42"]).fails();
    pmr.run(&["env", "42"]).fails();
    pmr.run(&["stop", "/[/"]).fails();
    assert_eq!(pmr.status(0), "online");
    assert_eq!(pmr.proc(0).unwrap()["pm2_env"]["restart_time"], 0);
}

#[test]
fn an_unusable_home_is_a_clear_error() {
    let pmr = Pmr::new();
    let file = pmr.dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let home = file.join("home");
    let r = pmr
        .run_env(&["ping"], &[("PMR_HOME", home.to_str().unwrap())])
        .fails();
    assert!(
        r.stderr.contains("cannot create PMR_HOME") && r.stderr.contains("a-file"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_command_and_unknown_command_exit_non_zero() {
    let pmr = Pmr::new();
    assert_ne!(pmr.run(&[]).code, 0);
    assert_ne!(pmr.run(&["frobnicate"]).code, 0);
}
