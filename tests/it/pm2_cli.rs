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

#[test]
fn graceful_reload_is_reload() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "g"]).ok();
    let before = pmr.wait_status(0, "online");
    let r = pmr.run(&["gracefulReload", "g"]).ok();
    assert!(r.stdout.contains("reloadProcessId"), "{}", r.stdout);
    let after = pmr.wait_status(0, "online");
    assert_eq!(restart_time(&after), 1);
    assert_ne!(after["pid"], before["pid"]);
    pmr.run(&["gracefulReload", "nosuchapp"]).fails();
}

#[test]
fn mini_list_prints_pm2s_blocks() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "mini"])
        .ok();
    let p = pmr.wait_status(0, "online");
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "other",
        "--no-autostart",
    ])
    .ok();
    for flag in ["-m", "--mini-list"] {
        let r = pmr.run(&["ls", flag]).ok();
        assert!(!r.stdout.contains("│"), "a table: {}", r.stdout);
        let blocks: Vec<&str> = r.stdout.split("\n\n").filter(|b| !b.is_empty()).collect();
        assert_eq!(blocks.len(), 2, "{}", r.stdout);
        let want = [
            "+--- mini".to_string(),
            "namespace : default".into(),
            "version : undefined".into(),
            format!("pid : {}", p["pid"]),
            "pm2 id : 0".into(),
            "status : online".into(),
            "mode : fork".into(),
            "restarted : 0".into(),
        ];
        let lines: Vec<&str> = blocks[0].lines().collect();
        assert_eq!(lines[..want.len()], want, "{}", blocks[0]);
        assert!(lines[8].starts_with("uptime : "), "{}", lines[8]);
        assert!(lines[9].starts_with("memory usage : "), "{}", lines[9]);
        assert_eq!(
            lines[10],
            format!(
                "error log : {}",
                p["pm2_env"]["pm_err_log_path"].as_str().unwrap()
            )
        );
        assert_eq!(lines[11], "watching : no");
        assert_eq!(
            lines[12],
            format!(
                "PID file : {}",
                p["pm2_env"]["pm_pid_path"].as_str().unwrap()
            )
        );
        assert!(blocks[1].contains("+--- other\n"), "{}", blocks[1]);
        assert!(blocks[1].contains("\nuptime : 0\n"), "{}", blocks[1]);
    }
}

#[test]
fn completion_scripts_come_from_the_command_definitions() {
    let pmr = Pmr::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = pmr.run(&["completion", shell]).ok();
        for word in [
            "startOrRestart",
            "jlist",
            "mini-list",
            "update-env",
            "completion",
        ] {
            assert!(r.stdout.contains(word), "{shell}: no {word}");
        }
        // Checked by the shell itself where it is installed.
        let path = pmr.dir.join(format!("pmr.{shell}"));
        std::fs::write(&path, &r.stdout).unwrap();
        if let Ok(o) = std::process::Command::new(shell)
            .arg("-n")
            .arg(&path)
            .output()
        {
            assert!(
                o.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let r = pmr.run_env(&["completion"], &[("SHELL", "/bin/bash")]).ok();
    assert!(r.stdout.contains("complete -F _pmr"), "{}", r.stdout);
    let r = pmr
        .run_env(&["completion"], &[("SHELL", "/bin/nosuch")])
        .fails();
    assert!(r.stderr.contains("name the shell"), "{}", r.stderr);
    // A usage error, as clap reports them (exit 2).
    let r = pmr.run(&["completion", "tcsh"]);
    assert!(r.code != 0 && r.stderr.contains("tcsh"), "{}", r.stderr);
}

#[test]
fn examples_and_install_pmr_logrotate() {
    let pmr = Pmr::new();
    let r = pmr.run(&["examples"]).ok();
    assert!(
        r.stdout.contains("$ pmr start app.js --name app"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("$ pmr start app.js -i max"),
        "{}",
        r.stdout
    );

    // The built-in rotation (`pm2-logrotate` installs the real module: tests/it/pm2_modules.rs).
    let r = pmr.run(&["install", "pmr-logrotate"]).ok();
    assert!(r.stdout.contains("built in"), "{}", r.stdout);
    // Every key it names is one `pmr set` takes.
    for (key, value) in [
        ("max_size", "20M"),
        ("retain", "5"),
        ("compress", "true"),
        ("interval", "1d"),
        ("cron", "0 0 * * *"),
    ] {
        let full = format!("pmr-logrotate:{key}");
        assert!(r.stdout.contains(&full), "{full}: {}", r.stdout);
        pmr.run(&["set", &full, value]).ok();
    }
    // Other modules go to npm (tests/it/modules.rs); a folder that is not there fails first.
    let r = pmr.run(&["install", "./no-such-module"]).fails();
    assert!(r.stderr.contains("./no-such-module"), "{}", r.stderr);
    // Neither started a daemon.
    assert!(pmr.daemon_pid().is_none());
}
