//! Fork mode: interpreters, lifecycle commands, environment, IPC, selectors, output.

use crate::support::*;
use serde_json::Value;

#[test]
fn node_app_lifecycle_start_stop_restart_delete() {
    let pmr = Pmr::new();
    let r = pmr
        .run_env(
            &["start", &fixture("http.js"), "--name", "api"],
            &[("PORT", "0")],
        )
        .ok();
    assert!(
        r.stdout.contains("api"),
        "start prints the table: {}",
        r.stdout
    );
    let p = pmr.wait_status(0, "online");
    let pid = p["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    let env = &p["pm2_env"];
    assert_eq!(env["exec_mode"], "fork_mode");
    assert_eq!(env["pm_exec_path"], fixture("http.js"));
    assert_eq!(env["restart_time"], 0);
    assert_eq!(p["name"], "api");
    for key in [
        "pm_out_log_path",
        "pm_err_log_path",
        "pm_pid_path",
        "pm_cwd",
        "created_at",
        "pm_uptime",
        "unstable_restarts",
        "namespace",
        "instances",
    ] {
        assert!(env.get(key).is_some(), "jlist lacks pm2_env.{key}: {env:#}");
    }
    // The app writes to its log through the daemon.
    wait_until("listening line in api-out.log", || {
        pmr.log_of("api-out.log").contains("listening on")
    });
    let pid_file = pmr.home.join("pids/api-0.pid");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());

    pmr.run(&["stop", "api"]).ok();
    let p = pmr.wait_status(0, "stopped");
    assert_eq!(p["pid"], 0);
    wait_until("old pid gone", || !alive(pid));
    assert!(!pid_file.exists());

    pmr.run(&["restart", "api"]).ok();
    let p = pmr.wait_status(0, "online");
    let pid2 = p["pid"].as_u64().unwrap() as u32;
    assert_ne!(pid, pid2);
    pmr.run(&["restart", "0"]).ok();
    let p = pmr.wait_status(0, "online");
    assert_eq!(
        p["pm2_env"]["restart_time"], 1,
        "a restart of an online app counts"
    );
    let pid3 = p["pid"].as_u64().unwrap() as u32;
    wait_until("restarted pid gone", || !alive(pid2));

    pmr.run(&["delete", "api"]).ok();
    assert!(pmr.jlist().is_empty());
    wait_until("deleted app gone", || !alive(pid3));
}

#[test]
fn interpreters_by_extension_binaries_and_command_strings() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("worker.py")]).ok();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    // A binary: a copy of `sleep` given as a relative path.
    let bin = pmr.dir.join("server-bin");
    std::fs::copy("/bin/sleep", &bin).unwrap();
    pmr.run(&["start", "./server-bin", "--", "300"]).ok();
    let port = free_port();
    let cmd = format!("python3 -m http.server {port} --bind 127.0.0.1");
    pmr.run(&["start", &cmd]).ok();

    let list = pmr.jlist();
    let by_name = |n: &str| {
        list.iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no {n}: {list:#?}"))
            .clone()
    };
    assert!(by_name("worker")["pm2_env"]["exec_interpreter"]
        .as_str()
        .unwrap()
        .contains("python"));
    assert!(by_name("run")["pm2_env"]["exec_interpreter"]
        .as_str()
        .unwrap()
        .ends_with("bash"));
    let bin_entry = by_name("server-bin");
    assert_eq!(bin_entry["pm2_env"]["exec_interpreter"], "none");
    assert_eq!(bin_entry["pm2_env"]["args"], serde_json::json!(["300"]));
    by_name(&cmd);
    for id in 0..4 {
        pmr.wait_status(id, "online");
    }
    wait_until("python worker output", || {
        pmr.log_of("worker-out.log").contains("python worker 0 0")
    });
    wait_until("shell stdout and stderr", || {
        pmr.log_of("run-out.log").contains("shell out")
            && pmr.log_of("run-error.log").contains("shell err")
    });
    // The command string really runs: its server answers.
    wait_until("http.server answers", || http_get(port).is_ok());
}

#[test]
fn npm_start_with_name_and_script_args() {
    let pmr = Pmr::new();
    if which("npm").is_none() {
        panic!("npm is required for this test (installed with Node.js by .ci/run)");
    }
    let app = fixtures().join("npmapp");
    let port = free_port().to_string();
    pmr.run_env(
        &[
            "start",
            "npm",
            "--name",
            "web",
            "--cwd",
            app.to_str().unwrap(),
            "--",
            "start",
        ],
        &[("PORT", &port)],
    )
    .ok();
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["name"], "web");
    assert_eq!(p["pm2_env"]["args"], serde_json::json!(["start"]));
    let port: u16 = port.parse().unwrap();
    wait_until("npm start serves", || http_get(port).is_ok());
    // Metrics cover the tree: npm plus node is more than npm's wrapper alone would be.
    let p = pmr.wait_proc(0, "memory reported", |p| {
        p["monit"]["memory"].as_u64().unwrap_or(0) > 0
    });
    assert!(p["monit"]["memory"].as_u64().unwrap() > 20 << 20, "{p:#}");
}

fn which(name: &str) -> Option<String> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn fork_instances_get_their_own_instance_numbers_and_log_files() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("worker.py"), "-i", "3", "--name", "py"])
        .ok();
    let list = pmr.jlist();
    assert_eq!(list.len(), 3);
    for (i, p) in list.iter().enumerate() {
        assert_eq!(
            p["pm2_env"]["exec_mode"], "fork_mode",
            "non-node scripts fork"
        );
        assert_eq!(p["pm2_env"]["NODE_APP_INSTANCE"], i as u64);
        pmr.wait_status(i as u64, "online");
    }
    for i in 0..3 {
        let f = format!("py-out-{i}.log");
        wait_until(&f, || {
            pmr.log_of(&f).contains(&format!("python worker {i} {i}"))
        });
    }
}

#[test]
fn environment_of_the_child_and_update_env() {
    let pmr = Pmr::new();
    pmr.run_env(
        &[
            "start",
            &fixture("env.js"),
            "--name",
            "envy",
            "--namespace",
            "ns1",
        ],
        &[("MY_VAR", "one")],
    )
    .ok();
    pmr.wait_status(0, "online");
    let first_line = || -> Value {
        let mut line = String::new();
        wait_until("env line", || {
            line = pmr
                .log_of("envy-out.log")
                .lines()
                .last()
                .unwrap_or("")
                .to_string();
            !line.is_empty()
        });
        serde_json::from_str(&line).unwrap()
    };
    let env = first_line();
    assert_eq!(env["MY_VAR"], "one");
    assert_eq!(env["pm_id"], "0");
    assert_eq!(env["name"], "envy");
    assert_eq!(env["NODE_APP_INSTANCE"], "0");
    assert_eq!(env["PMR_HOME"], pmr.home.to_str().unwrap());
    assert!(
        env.get("NODE_CHANNEL_FD").is_none(),
        "node consumes its IPC fd variable"
    );

    // Restart keeps the start-time env...
    pmr.run_env(&["restart", "envy"], &[("MY_VAR", "two")]).ok();
    wait_until("second env line", || {
        pmr.log_of("envy-out.log").lines().count() >= 2
    });
    assert_eq!(first_line()["MY_VAR"], "one");
    // ... unless --update-env.
    pmr.run_env(&["restart", "ns1", "--update-env"], &[("MY_VAR", "three")])
        .ok();
    wait_until("third env line", || {
        pmr.log_of("envy-out.log").lines().count() >= 3
    });
    assert_eq!(first_line()["MY_VAR"], "three");
    let r = pmr.run(&["env", "0"]).ok();
    assert!(r.stdout.contains("MY_VAR: three"), "{}", r.stdout);
}

#[test]
fn wait_ready_holds_launching_until_ready_and_listen_timeout_bounds_it() {
    let pmr = Pmr::new();
    let r = pmr.run_env(
        &[
            "start",
            &fixture("ready.js"),
            "--name",
            "slow",
            "--wait-ready",
            "--listen-timeout",
            "10000",
        ],
        &[("READY_AFTER_MS", "1500")],
    );
    r.ok();
    // `start` returns once the app said 'ready'.
    assert_eq!(pmr.status(0), "online");
    let p = pmr.proc(0).unwrap();
    let up = p["pm2_env"]["pm_uptime"].as_i64().unwrap();
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(log.contains("App [slow:0] online"), "{log}");
    assert!(up > 0);

    // Never ready: online anyway after listen_timeout, with a warning.
    pmr.run_env(
        &[
            "start",
            &fixture("ready.js"),
            "--name",
            "mute",
            "--wait-ready",
            "--listen-timeout",
            "700",
        ],
        &[("NEVER_READY", "1")],
    )
    .ok();
    pmr.wait_status(1, "online");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains("App [mute:1] was not ready within listen_timeout"),
        "{log}"
    );
}

#[test]
fn wait_ready_status_is_launching_meanwhile() {
    let pmr = Pmr::new();
    let mut child = pmr
        .cmd()
        .args([
            "start",
            &fixture("ready.js"),
            "--name",
            "slow",
            "--wait-ready",
            "--listen-timeout",
            "20000",
        ])
        .env("READY_AFTER_MS", "4000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pmr.wait_status(0, "launching");
    pmr.wait_status(0, "online");
    assert!(child.wait().unwrap().success());
}

#[test]
fn send_signal_reaches_the_app() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("signals.txt");
    pmr.run_env(
        &["start", &fixture("signals.js"), "--name", "sig"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    wait_until("app ready for signals", || {
        pmr.log_of("sig-out.log").contains("ready for signals")
    });
    pmr.run(&["sendSignal", "SIGUSR2", "sig"]).ok();
    assert_eq!(wait_file(&marker).trim(), "SIGUSR2");
    assert_eq!(pmr.status(0), "online");
    pmr.run(&["sendSignal", "SIGNOPE", "sig"]).fails();
}

#[test]
fn selectors_ids_pids_and_namespaces() {
    let pmr = Pmr::new();
    pmr.run(&[
        "start",
        &fixture("worker.py"),
        "--name",
        "a1",
        "--namespace",
        "blue",
    ])
    .ok();
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "a2",
        "--namespace",
        "blue",
    ])
    .ok();
    pmr.run(&["start", &fixture("env.js"), "--name", "b1"]).ok();
    for id in 0..3 {
        pmr.wait_status(id, "online");
    }
    assert_eq!(pmr.run(&["id", "a2"]).ok().stdout.trim(), "[ 1 ]");
    assert_eq!(pmr.run(&["id", "zz"]).ok().stdout.trim(), "[]");
    let pids = pmr.run(&["pid", "blue"]).ok().stdout;
    assert_eq!(pids.lines().count(), 2);
    assert_eq!(pmr.run(&["pid"]).ok().stdout.lines().count(), 3);

    pmr.run(&["stop", "/^a/"]).ok();
    pmr.wait_status(0, "stopped");
    pmr.wait_status(1, "stopped");
    assert_eq!(pmr.status(2), "online");
    pmr.run(&["start", "blue"]).ok();
    pmr.wait_status(0, "online");
    pmr.run(&["delete", "2", "a1"]).ok();
    let names: Vec<Value> = pmr.jlist().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, vec![Value::from("a2")]);
    pmr.run(&["delete", "all"]).ok();
    // Ids start from 0 again once the table is empty (as PM2).
    pmr.run(&["start", &fixture("run.sh")]).ok();
    assert_eq!(pmr.jlist()[0]["pm_id"], 0);
}

#[test]
fn same_script_twice_needs_force() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    let r = pmr.run(&["start", &fixture("run.sh")]).fails();
    assert!(r.stderr.contains("already launched"), "{}", r.stderr);
    pmr.run(&["start", &fixture("run.sh"), "-f"]).ok();
    assert_eq!(pmr.jlist().len(), 2);
}

#[test]
fn reset_clears_counters() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    pmr.run(&["restart", "run"]).ok();
    pmr.wait_proc(0, "restart_time 1", |p| p["pm2_env"]["restart_time"] == 1);
    pmr.run(&["reset", "run"]).ok();
    pmr.wait_proc(0, "restart_time 0", |p| p["pm2_env"]["restart_time"] == 0);
}

#[test]
fn ls_prettylist_describe_and_logs_nostream() {
    let pmr = Pmr::new();
    pmr.run_env(
        &[
            "start",
            &fixture("lines.js"),
            "--name",
            "printer",
            "--no-autorestart",
        ],
        &[("LINES", "30")],
    )
    .ok();
    pmr.wait_status(0, "stopped");
    let ls = pmr.run(&["ls"]).ok().stdout;
    for col in [
        "id",
        "name",
        "namespace",
        "mode",
        "pid",
        "uptime",
        "↺",
        "status",
        "cpu",
        "mem",
        "user",
        "watching",
    ] {
        assert!(ls.contains(col), "ls lacks {col}: {ls}");
    }
    assert!(ls.contains("printer") && ls.contains("stopped"), "{ls}");
    let pretty = pmr.run(&["prettylist"]).ok().stdout;
    assert!(pretty.contains("name: 'printer'"), "{pretty}");
    let d = pmr.run(&["describe", "printer"]).ok().stdout;
    assert!(d.contains("script path") && d.contains("lines.js"), "{d}");

    let logs = pmr
        .run(&["logs", "printer", "--lines", "3", "--nostream"])
        .ok()
        .stdout;
    let tail: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("0|printer"))
        .collect();
    assert_eq!(tail.len(), 3, "{logs}");
    assert!(
        tail[0].ends_with("| line 29") && tail[2].ends_with("| partial-end"),
        "{logs}"
    );
    // The partial last line was completed, and nothing was lost.
    let out = pmr.log_of("printer-out.log");
    assert_eq!(out.lines().count(), 31);
    assert!(out.ends_with("partial-end\n"));
    let raw = pmr
        .run(&[
            "logs",
            "printer",
            "--lines",
            "2",
            "--nostream",
            "--raw",
            "--out",
        ])
        .ok()
        .stdout;
    assert_eq!(raw, "line 30\npartial-end\n");
    pmr.run(&["logs", "printer", "--lines", "-3", "--nostream"])
        .fails();
}

#[test]
fn custom_log_paths_and_combined_log() {
    let pmr = Pmr::new();
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "-o",
        "out.txt",
        "-e",
        "err.txt",
        "-l",
        "all.txt",
    ])
    .ok();
    let out = pmr.dir.join("out.txt");
    let err = pmr.dir.join("err.txt");
    let all = pmr.dir.join("all.txt");
    wait_until("custom logs", || {
        let a = std::fs::read_to_string(&all).unwrap_or_default();
        a.contains("shell out") && a.contains("shell err")
    });
    assert!(wait_file(&out).contains("shell out"));
    assert!(wait_file(&err).contains("shell err"));
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pm2_env"]["pm_out_log_path"], out.to_str().unwrap());
    assert_eq!(p["pm2_env"]["pm_log_path"], all.to_str().unwrap());
}
