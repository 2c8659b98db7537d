//! PM2's environment knobs (`PM2_KILL_SIGNAL`, `PM2_PID_FILE_PATH`, ... and their `PMR_` twins)
//! and the `pm2` personality (the binary linked as `pm2`), with the real binary.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn daemon_log(pmr: &Pmr) -> String {
    std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap_or_default()
}

/// Start `stop_cause.js` with `env`, stop it, return how it was asked to stop.
fn stop_cause(env: &[(&str, &str)]) -> String {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("cause.txt");
    let mut all = vec![("MARKER", marker.to_str().unwrap())];
    all.extend_from_slice(env);
    pmr.run_env(&["start", &fixture("stop_cause.js")], &all)
        .ok();
    // Its handlers are in place once it says so.
    wait_until("the app's first line", || {
        pmr.log_of("stop_cause-out.log").contains("waiting")
    });
    pmr.run(&["stop", "0"]).ok();
    wait_file(&marker)
}

#[test]
fn kill_signal_knob_sets_the_stop_signal_and_pmr_wins_over_pm2() {
    assert_eq!(stop_cause(&[]), "SIGINT");
    assert_eq!(stop_cause(&[("PM2_KILL_SIGNAL", "SIGTERM")]), "SIGTERM");
    assert_eq!(
        stop_cause(&[("PM2_KILL_SIGNAL", "SIGHUP"), ("PMR_KILL_SIGNAL", "term")]),
        "SIGTERM"
    );
}

#[test]
fn kill_use_message_knob_stops_with_the_shutdown_message() {
    assert_eq!(stop_cause(&[("PM2_KILL_USE_MESSAGE", "true")]), "shutdown");
}

#[test]
fn a_bad_knob_is_an_error_naming_it_and_no_daemon_starts() {
    for (var, val) in [
        ("PM2_KILL_SIGNAL", "SIGFOO"),
        ("PMR_GRACEFUL_LISTEN_TIMEOUT", "3s"),
        ("PM2_KILL_USE_MESSAGE", "maybe"),
        ("PM2_CONCURRENT_ACTIONS", "0"),
        ("PM2_DAEMON_RPC_PORT", "6666"),
    ] {
        let pmr = Pmr::new();
        let r = pmr
            .run_env(&["start", &fixture("ticker.js")], &[(var, val)])
            .fails();
        assert!(
            r.stderr.starts_with("[PMR][ERROR] ") && r.stderr.contains(var),
            "{var}={val}: {}",
            r.stderr
        );
        assert!(
            !pmr.home.join("rpc.sock").exists(),
            "{var}: a daemon started"
        );
        assert!(
            !pmr.home.join("pmr.pid").exists(),
            "{var}: a daemon started"
        );
    }
}

#[test]
fn path_knobs_place_the_daemon_files() {
    let pmr = Pmr::new();
    let alt = pmr.dir.join("alt");
    let pid_file = alt.join("d.pid");
    let logs = alt.join("applogs");
    let pids = alt.join("apppids");
    let sock = alt.join("d.sock");
    let (pid_s, logs_s, pids_s, sock_s) = (
        pid_file.to_str().unwrap(),
        logs.to_str().unwrap(),
        pids.to_str().unwrap(),
        sock.to_str().unwrap(),
    );
    // A relative path is taken from the CLI's directory (the daemon runs in /).
    let env = [
        ("PM2_PID_FILE_PATH", pid_s),
        ("PMR_LOG_FILE_PATH", "rel/daemon.log"),
        ("PM2_DEFAULT_LOG_PATH", logs_s),
        ("PM2_DEFAULT_PID_PATH", pids_s),
        ("PM2_DAEMON_RPC_PORT", sock_s),
    ];
    pmr.run_env(&["start", &fixture("ticker.js")], &env).ok();
    let daemon: u32 = wait_file(&pid_file).trim().parse().unwrap();
    pmr.track(daemon);
    assert!(sock.exists());
    let log = std::fs::read_to_string(pmr.dir.join("rel/daemon.log")).unwrap();
    assert!(log.contains("pmr daemon"), "{log}");
    wait_until("the app's pid file", || pids.join("ticker-0.pid").exists());
    assert!(logs.join("ticker-out.log").exists());
    for f in ["pmr.pid", "pmr.log", "rpc.sock", "logs", "pids"] {
        assert!(!pmr.home.join(f).exists(), "{f} is in the home");
    }
    // The same knobs find the daemon again; without them there is none to find.
    let r = pmr.run_env(&["jlist"], &env).ok();
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let out = list[0]["pm2_env"]["pm_out_log_path"].as_str().unwrap();
    assert_eq!(Path::new(out), logs.join("ticker-out.log"));
    pmr.run_env(&["kill"], &env).ok();
    wait_until("the daemon's exit", || !alive(daemon));
    assert!(!pid_file.exists() && !sock.exists());
}

#[test]
fn graceful_listen_timeout_knob_is_the_default_listen_timeout() {
    let pmr = Pmr::new();
    pmr.run_env(
        &["start", &fixture("no_listen.js"), "-i", "1"],
        &[
            ("PM2_GRACEFUL_LISTEN_TIMEOUT", "150"),
            ("PM2_WORKER_INTERVAL", "30000"),
        ],
    )
    .ok();
    pmr.wait_status(0, "online");
    let log = daemon_log(&pmr);
    assert!(
        log.contains("was not ready within listen_timeout (150 ms)"),
        "{log}"
    );
    assert!(
        log.contains("knobs: listen timeout 150 ms, worker interval 30000 ms"),
        "{log}"
    );
    // An app's own listen_timeout wins over the knob.
    pmr.run(&[
        "start",
        &fixture("no_listen.js"),
        "-i",
        "1",
        "--name",
        "own",
        "--listen-timeout",
        "250",
    ])
    .ok();
    pmr.wait_status(1, "online");
    let log = daemon_log(&pmr);
    assert!(
        log.contains("[own:1] was not ready within listen_timeout (250 ms)"),
        "{log}"
    );
}

#[test]
fn concurrent_actions_knob_reloads_that_many_workers_at_once() {
    let pmr = Pmr::new();
    let gate = pmr.dir.join("gate");
    std::fs::write(&gate, "").unwrap();
    let port = free_port().to_string();
    let env = [
        ("GATE", gate.to_str().unwrap()),
        ("PORT", port.as_str()),
        ("PM2_CONCURRENT_ACTIONS", "2"),
    ];
    pmr.run_env(
        &[
            "start",
            &fixture("gated_listen.js"),
            "-i",
            "2",
            "--name",
            "gated",
            "--listen-timeout",
            "60000",
        ],
        &env,
    )
    .ok();
    pmr.wait_status(1, "online");
    let boots = || {
        ["gated-out-0.log", "gated-out-1.log"]
            .iter()
            .map(|f| pmr.log_of(f).matches("boot ").count())
            .sum::<usize>()
    };
    assert_eq!(boots(), 2);
    // Closed gate: new workers cannot get ready, so one at a time would show one new boot.
    std::fs::remove_file(&gate).unwrap();
    let reload = pmr.cmd().args(["reload", "gated"]).spawn().unwrap();
    wait_until("both replacement workers booting together", || boots() == 4);
    std::fs::write(&gate, "").unwrap();
    let out = reload.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn graceful_timeout_knob_bounds_the_drain_of_a_retired_worker() {
    use std::io::BufRead;
    let pmr = Pmr::new();
    let port = free_port();
    let port_s = port.to_string();
    pmr.run_env(
        &[
            "start",
            &fixture("net_hold.js"),
            "-i",
            "1",
            "--name",
            "hold",
        ],
        &[("PORT", port_s.as_str()), ("PM2_GRACEFUL_TIMEOUT", "300")],
    )
    .ok();
    pmr.wait_status(0, "online");
    // A client that never hangs up: the old worker's server cannot close.
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
    assert!(line.starts_with("hi "), "{line}");
    pmr.run(&["reload", "hold"]).ok();
    wait_until("the drain deadline in pmr.log", || {
        daemon_log(&pmr).contains("still had connections after 300 ms")
    });
    drop(conn);
}

/// A home used through a `pm2` symlink to the binary, as `ln -s $(command -v pmr) pm2`.
struct Pm2 {
    base: PathBuf,
    bin: PathBuf,
    home: PathBuf,
}

impl Pm2 {
    fn new() -> Pm2 {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("pmr-it-pm2-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let bin = base.join("pm2");
        std::os::unix::fs::symlink(BIN, &bin).unwrap();
        Pm2 {
            home: base.join("dot-pm2"),
            bin,
            base,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        // Relative, from the directory of the command: the daemon and the apps get it absolute.
        c.env("PM2_HOME", self.home.file_name().unwrap())
            // pmr's home is not pm2's: a PMR_HOME in the environment changes nothing.
            .env("PMR_HOME", self.base.join("not-here"))
            .env("NO_COLOR", "1")
            .current_dir(&self.base);
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let o = self
            .cmd()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.home.join("pm2.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        let daemon = self.daemon_pid();
        let _ = self.cmd().arg("kill").output();
        if let Some(pid) = daemon {
            kill9(pid);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

#[test]
fn a_pm2_symlink_uses_pm2_home_names_prefixes_and_variables() {
    let pm2 = Pm2::new();
    let marker = pm2.base.join("cause.txt");
    let (code, out, err) = pm2.run(
        &["start", &fixture("stop_cause.js")],
        &[
            ("MARKER", marker.to_str().unwrap()),
            // As pm2, PM2_ wins over PMR_.
            ("PM2_KILL_SIGNAL", "SIGTERM"),
            ("PMR_KILL_SIGNAL", "SIGHUP"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("[PM2] "), "{out}");
    let daemon = pm2.daemon_pid().expect("pm2.pid in PM2_HOME");
    assert!(alive(daemon));
    let log = std::fs::read_to_string(pm2.home.join("pm2.log")).unwrap();
    assert!(log.contains("as pm2"), "{log}");
    assert!(pm2.home.join("rpc.sock").exists());
    for f in ["pmr.pid", "pmr.log"] {
        assert!(!pm2.home.join(f).exists(), "{f}");
    }
    assert!(!pm2.base.join("not-here").exists(), "PMR_HOME was used");
    let cmdline = std::fs::read(format!("/proc/{daemon}/cmdline")).unwrap();
    assert_eq!(cmdline, b"pm2\0daemon\0");
    let (code, out, _) = pm2.run(&["jlist"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("stop_cause"), "{out}");
    // The app gets PM2_HOME (absolute), so a `pm2` it runs finds this daemon.
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let app_pid = list[0]["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{app_pid}/environ")).unwrap();
    let want = format!("PM2_HOME={}", pm2.home.display());
    assert!(
        environ.split(|&b| b == 0).any(|kv| kv == want.as_bytes()),
        "{want} not in the app's environment"
    );
    let (code, _, err) = pm2.run(&["stop", "nope"], &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("[PM2]"), "{err}");
    wait_until("the app's first line", || {
        std::fs::read_to_string(pm2.home.join("logs/stop_cause-out.log"))
            .unwrap_or_default()
            .contains("waiting")
    });
    assert_eq!(pm2.run(&["stop", "0"], &[]).0, 0);
    assert_eq!(wait_file(&marker), "SIGTERM");
    let (code, out, _) = pm2.run(&["kill"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("[PM2] "), "{out}");
    wait_until("the daemon's exit", || !alive(daemon));
}

#[test]
fn a_pm2_symlink_refuses_a_live_pm2_daemon_in_its_home() {
    let pm2 = Pm2::new();
    std::fs::create_dir_all(&pm2.home).unwrap();
    let sock = pm2.home.join("rpc.sock");
    // A stand-in for PM2's God daemon: node, serving PM2_HOME/rpc.sock, pid in pm2.pid.
    let mut fake = Command::new("node")
        .args([
            "-e",
            "require('net').createServer(() => {}).listen(process.argv[1], () => console.log('up'))",
            sock.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fake_pid = fake.id();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(fake.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "up");
    }
    std::fs::write(pm2.home.join("pm2.pid"), fake_pid.to_string()).unwrap();
    for args in [&["ls"][..], &["start", &fixture("ticker.js")], &["kill"]] {
        let (code, out, err) = pm2.run(args, &[]);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.starts_with("[PM2][ERROR] a PM2 daemon is running in")
                && err.contains(&format!("pid {fake_pid}"))
                && err.contains("`pm2 kill`"),
            "{args:?}: {err}"
        );
    }
    // A daemon started by hand refuses too (and exits: it would otherwise serve forever).
    let mut daemon = pm2
        .cmd()
        .arg("daemon")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the refusing daemon's exit", || {
            status = daemon.try_wait().unwrap();
            status.is_some()
        })
    }));
    if waited.is_err() {
        kill9(daemon.id());
        panic!("pm2 daemon started beside a live PM2 daemon");
    }
    assert_eq!(status.unwrap().code(), Some(1));
    let out = daemon.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a PM2 daemon is running in"), "{err}");
    std::fs::remove_file(pm2.home.join("daemon.lock")).unwrap();
    // Nothing of pmr's started beside it, and its files are untouched.
    assert!(!pm2.home.join("pm2.log").exists());
    assert!(!pm2.home.join("daemon.lock").exists());
    assert_eq!(pm2.daemon_pid(), Some(fake_pid));
    assert!(sock.exists());
    fake.kill().unwrap();
    fake.wait().unwrap();
    // Gone: its pid file and socket are stale, and pm2 (pmr) takes the home over.
    let (code, out, err) = pm2.run(&["start", &fixture("ticker.js")], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let daemon = pm2.daemon_pid().unwrap();
    assert_ne!(daemon, fake_pid);
    assert!(alive(daemon));
}
