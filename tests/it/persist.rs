//! `save`, `resurrect`, `cleardump`, PM2's dump.pm2, `daemon --resurrect` with sd_notify.

use crate::support::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn ticker(pmr: &Pmr) -> String {
    let dst = pmr.dir.join("ticker.js");
    if !dst.exists() {
        std::fs::copy(fixture("ticker.js"), &dst).unwrap();
    }
    dst.to_string_lossy().into_owned()
}

/// `(pm_id, name, status)` of every process, in id order.
fn table(pmr: &Pmr) -> Vec<(u64, String, String)> {
    let mut t: Vec<_> = pmr
        .jlist()
        .iter()
        .map(|p| {
            (
                p["pm_id"].as_u64().unwrap(),
                p["name"].as_str().unwrap().to_string(),
                p["pm2_env"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    t.sort();
    t
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn wait_online(pmr: &Pmr, ids: &[u64]) {
    for &id in ids {
        pmr.wait_status(id, "online");
    }
}

fn dump(pmr: &Pmr) -> PathBuf {
    pmr.home.join("dump.json")
}

#[test]
fn save_then_resurrect_restores_ids_names_env_instances_and_stopped_apps() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run_env(&["start", &t, "--name", "a"], &[("SAVED_VAR", "kept 1")])
        .ok();
    pmr.run(&["start", &t, "--name", "gone"]).ok();
    pmr.run(&["start", &t, "--name", "b", "-i", "2"]).ok();
    pmr.run(&["start", &t, "--name", "c"]).ok();
    pmr.run(&["delete", "gone"]).ok(); // ids 0, 2, 3, 4: a gap to keep
    wait_online(&pmr, &[0, 2, 3, 4]);
    pmr.run(&["stop", "c"]).ok();
    let before = table(&pmr);
    let r = pmr.run(&["save"]).ok();
    assert!(r.stdout.contains("Successfully saved in"), "{}", r.stdout);
    assert_eq!(mode(&dump(&pmr)), 0o600);
    pmr.run(&["kill"]).ok();

    let r = pmr.run(&["resurrect"]).ok();
    assert!(
        r.stdout.contains("Restoring processes located in"),
        "{}",
        r.stdout
    );
    wait_online(&pmr, &[0, 2, 3]);
    assert_eq!(table(&pmr), before);
    let a = pmr.proc(0).unwrap();
    assert_eq!(env_of(&a)["SAVED_VAR"], "kept 1");
    let b = pmr.proc(3).unwrap();
    assert_eq!(b["pm2_env"]["instances"], 2, "{b:#}");
    // A second save keeps the first one as .bak, 0600 too.
    pmr.run(&["save"]).ok();
    let bak = pmr.home.join("dump.json.bak");
    assert_eq!(mode(&bak), 0o600);
    assert_eq!(mode(&dump(&pmr)), 0o600);
}

#[test]
fn resurrect_skips_apps_already_running() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run(&["start", &t, "--name", "a"]).ok();
    pmr.run(&["start", &t, "--name", "b"]).ok();
    wait_online(&pmr, &[0, 1]);
    pmr.run(&["save"]).ok();
    pmr.run(&["delete", "b"]).ok();
    let pid_a = pmr.proc(0).unwrap()["pid"].clone();
    let r = pmr.run(&["resurrect"]).ok();
    assert!(r.stdout.contains("App [a] already managed"), "{}", r.stdout);
    wait_online(&pmr, &[1]);
    assert_eq!(pmr.proc(0).unwrap()["pid"], pid_a, "a was not restarted");
    assert_eq!(pmr.jlist().len(), 2, "no duplicate of a");
}

#[test]
fn a_corrupt_dump_falls_back_to_the_backup_and_is_kept_aside() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run(&["start", &t, "--name", "a"]).ok();
    pmr.run(&["save"]).ok();
    pmr.run(&["start", &t, "--name", "b"]).ok();
    pmr.run(&["save"]).ok(); // the first save (a only) is now the .bak
    pmr.run(&["kill"]).ok();
    std::fs::write(
        dump(&pmr),
        r#"{"pmr_dump":1,"saved_at":0,"procs":[{"pm_id":"x"}]}"#,
    )
    .unwrap();
    let r = pmr.run(&["resurrect"]).ok();
    assert!(r.stderr.contains("is corrupt"), "{}", r.stderr);
    wait_online(&pmr, &[0]);
    assert_eq!(table(&pmr).len(), 1, "only what the backup holds");
    let aside: Vec<String> = std::fs::read_dir(&pmr.home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dump.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept");

    // Both bad: one clear error, nothing started.
    pmr.run(&["kill"]).ok();
    std::fs::write(dump(&pmr), "not json").unwrap();
    std::fs::write(pmr.home.join("dump.json.bak"), "[42]").unwrap();
    let r = pmr.run(&["resurrect"]).fails();
    assert!(r.stderr.contains("nothing started"), "{}", r.stderr);
    assert!(pmr.jlist().is_empty());
}

#[test]
fn apps_whose_script_is_gone_are_errored_and_the_others_start() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    let doomed = pmr.dir.join("doomed.js");
    std::fs::copy(fixture("ticker.js"), &doomed).unwrap();
    pmr.run(&["start", &t, "--name", "ok"]).ok();
    pmr.run(&["start", doomed.to_str().unwrap(), "--name", "doomed"])
        .ok();
    pmr.run(&["save"]).ok();
    pmr.run(&["kill"]).ok();
    std::fs::remove_file(&doomed).unwrap();
    let r = pmr.run(&["resurrect"]).fails();
    assert!(r.stderr.contains("Script not found"), "{}", r.stderr);
    wait_online(&pmr, &[0]);
    let d = pmr.proc(1).unwrap();
    assert_eq!(d["pm2_env"]["status"], "errored", "{d:#}");
    let desc = pmr.run(&["describe", "doomed"]).ok().stdout;
    assert!(desc.contains("Script not found"), "{desc}");
}

/// The PM2 fixture, its apps copied into the test's directory: the path of its `dump.pm2`.
fn pm2_fixture(pmr: &Pmr) -> PathBuf {
    // The fixture was written by PM2 7.0.4 with its apps in /tmp/pmr-pm2-fixture and its home
    // in /tmp/pmr-pm2-fixture/home (see tests/fixtures/pm2-dump/README.md).
    let apps = pmr.dir.join("pm2apps");
    std::fs::create_dir_all(apps.join("home")).unwrap();
    for f in ["web.js", "worker.js", "tick.py"] {
        std::fs::copy(fixtures().join("pm2-dump").join(f), apps.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(fixtures().join("pm2-dump/dump.pm2")).unwrap();
    let file = apps.join("home/dump.pm2");
    std::fs::write(
        &file,
        text.replace("/tmp/pmr-pm2-fixture", apps.to_str().unwrap()),
    )
    .unwrap();
    file
}

#[test]
fn a_pm2_dump_is_imported() {
    let pmr = Pmr::new();
    let file = pm2_fixture(&pmr);
    pmr.run(&["resurrect", file.to_str().unwrap()]).ok();
    wait_online(&pmr, &[0, 1, 2, 3]);
    let list = pmr.jlist();
    let by_id = |id: u64| list.iter().find(|p| p["pm_id"] == id).unwrap().clone();
    let web = by_id(0);
    let e = &web["pm2_env"];
    assert_eq!(
        (
            e["name"].as_str(),
            e["exec_mode"].as_str(),
            e["namespace"].as_str()
        ),
        (Some("web"), Some("cluster_mode"), Some("front"))
    );
    assert_eq!(env_of(&web)["GREETING"], "hello world");
    assert!(env_of(&web).get("PM2_HOME").is_none());
    assert_eq!(by_id(3)["name"], "web", "the second worker keeps PM2's id");
    let worker = by_id(1);
    assert_eq!(
        worker["pm2_env"]["args"],
        serde_json::json!(["--queue", "jobs"])
    );
    assert_eq!(
        worker["pm2_env"]["node_args"],
        serde_json::json!(["--max-old-space-size=128"])
    );
    assert_eq!(worker["pm2_env"]["kill_timeout"], 3000);
    assert_eq!(env_of(&worker)["SECRET"], "s3cret");
    assert_eq!(by_id(2)["pm2_env"]["exec_interpreter"], "python3");
    assert_eq!(by_id(4)["name"], "idle");
    assert_eq!(by_id(4)["pm2_env"]["status"], "stopped");
    assert_eq!(
        pmr.jlist()
            .iter()
            .filter(|p| p["pm2_env"]["status"] == "online")
            .count(),
        4
    );
    // PM2's default log files (in its home) are not carried over: pmr's own are used.
    let out = web["pm2_env"]["pm_out_log_path"].as_str().unwrap();
    assert!(out.starts_with(pmr.home.to_str().unwrap()), "{out}");
}

#[test]
fn cleardump_empties_the_dump() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run(&["start", &t, "--name", "a"]).ok();
    pmr.run(&["save"]).ok();
    let r = pmr.run(&["cleardump"]).ok();
    assert!(r.stdout.contains("Successfully created"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(dump(&pmr)).unwrap(), "[]");
    assert_eq!(mode(&dump(&pmr)), 0o600);
    pmr.run(&["kill"]).ok();
    pmr.run(&["resurrect"]).ok();
    assert!(pmr.jlist().is_empty());
}

#[test]
fn an_empty_list_is_saved_only_with_force() {
    let pmr = Pmr::new();
    let r = pmr.run(&["save"]).ok();
    assert!(r.stdout.contains("skipping save"), "{}", r.stdout);
    assert!(r.stdout.contains("pmr save --force"), "{}", r.stdout);
    assert!(!dump(&pmr).exists());
    pmr.run(&["save", "--force"]).ok();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dump(&pmr)).unwrap()).unwrap();
    assert_eq!(v["procs"], serde_json::json!([]));
}

#[test]
fn a_save_that_cannot_be_written_leaves_the_previous_dump() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run(&["start", &t, "--name", "a"]).ok();
    pmr.run(&["save"]).ok();
    let before = std::fs::read(dump(&pmr)).unwrap();
    pmr.run(&["start", &t, "--name", "b"]).ok();
    // A full disk, made real even for root (who ignores a read-only mode): the CLI may write
    // at most 512 bytes per file (RLIMIT_FSIZE), so writing the dump fails with EFBIG.
    let mut c = pmr.cmd();
    c.arg("save");
    // SAFETY: std has no safe way to set a limit or a signal disposition for the child alone
    // (setting them here would affect every test thread). The closure runs between fork and
    // exec, where only async-signal-safe calls are sound: signal(2) and setrlimit(2) are, and
    // nothing allocates (an error reads errno into an `io::Error` without allocating).
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 512,
                rlim_max: 512,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Failed to save dump file"), "{stderr}");
    assert_eq!(
        std::fs::read(dump(&pmr)).unwrap(),
        before,
        "previous dump intact"
    );
    let names: Vec<String> = std::fs::read_dir(&pmr.home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The dump's temporary file is gone (the daemon's own `state.json` may have one for an
    // instant: it writes that table whenever something changes).
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".tmp") && n.contains("dump")),
        "{names:?}"
    );
}

/// systemd's side of sd_notify: a datagram socket the daemon is told about.
struct FakeSystemd {
    sock: UnixDatagram,
    /// `NOTIFY_SOCKET` as systemd would set it.
    env: String,
}

impl FakeSystemd {
    fn at_path(p: &Path) -> FakeSystemd {
        let sock = UnixDatagram::bind(p).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        FakeSystemd {
            sock,
            env: p.to_string_lossy().into_owned(),
        }
    }

    fn abstract_name(name: &str) -> FakeSystemd {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        FakeSystemd {
            sock,
            env: format!("@{name}"),
        }
    }

    /// The next message that contains `what` (others are skipped).
    fn expect(&self, what: &str) -> String {
        let mut buf = [0u8; 512];
        let mut got = String::new();
        wait_until(&format!("sd_notify {what}"), || {
            match self.sock.recv(&mut buf) {
                Ok(n) => got = String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) => got.clear(),
            }
            got.contains(what)
        });
        got
    }
}

fn daemon_resurrect(pmr: &Pmr, env: &[(&str, &str)]) -> std::process::Child {
    let mut c = pmr.cmd();
    c.args(["daemon", "--resurrect"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    pmr.track(child.id());
    child
}

#[test]
fn daemon_resurrect_says_ready_once_every_app_is_online_and_stopping_on_kill() {
    let pmr = Pmr::new();
    let t = ticker(&pmr);
    pmr.run(&["start", &t, "--name", "a"]).ok();
    pmr.run(&["start", &t, "--name", "b", "-i", "2"]).ok();
    pmr.run(&["save"]).ok();
    pmr.run(&["kill"]).ok();
    let sd = FakeSystemd::at_path(&pmr.dir.join("notify"));
    let mut child = daemon_resurrect(&pmr, &[("NOTIFY_SOCKET", &sd.env)]);
    sd.expect("READY=1");
    // READY came after the apps: they are all online right now, without waiting.
    let list = pmr.jlist();
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().all(|p| p["pm2_env"]["status"] == "online"),
        "{list:#?}"
    );
    pmr.run(&["kill"]).ok();
    sd.expect("STOPPING=1");
    let _ = child.wait();
}

#[test]
fn the_watchdog_is_fed_on_an_abstract_notify_socket_and_sigterm_says_stopping() {
    let pmr = Pmr::new();
    let name = format!(
        "pmr-it-sd-{}",
        pmr.dir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let sd = FakeSystemd::abstract_name(&name);
    let mut child = daemon_resurrect(
        &pmr,
        &[("NOTIFY_SOCKET", &sd.env), ("WATCHDOG_USEC", "200000")],
    );
    sd.expect("READY=1");
    sd.expect("WATCHDOG=1");
    sd.expect("WATCHDOG=1");
    signal(child.id(), Signal::SIGTERM);
    sd.expect("STOPPING=1");
    let _ = child.wait();
}

#[test]
fn startup_writes_a_notify_unit_under_the_test_root_and_unstartup_removes_it() {
    let pmr = Pmr::new();
    let root = pmr.dir.join("root");
    let root_s = root.to_str().unwrap();
    let env = [("PMR_STARTUP_ROOT", root_s)];
    let r = pmr
        .run_env(
            &["startup", "systemd", "-u", "app", "--hp", "/home/app"],
            &env,
        )
        .ok();
    assert!(
        r.stdout
            .contains("Not executed (PMR_STARTUP_ROOT is set): systemctl enable pmr-app"),
        "{}",
        r.stdout
    );
    let unit_path = root.join("etc/systemd/system/pmr-app.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=notify".to_string(),
        "User=app".to_string(),
        "Environment=PMR_HOME=/home/app/.pmr".to_string(),
        format!("ExecStart={BIN} daemon --resurrect"),
        format!("ExecReload={BIN} reload all"),
        format!("ExecStop={BIN} kill"),
        format!("Environment=PATH={}", std::env::var("PATH").unwrap()),
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing in\n{unit}");
    }
    assert!(unit.contains("pmr unstartup` then `pmr startup"), "{unit}");
    assert_eq!(mode(&unit_path), 0o644);
    // systemd's own parser, where it is installed (it needs no running systemd).
    if let Ok(o) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
    {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.trim().is_empty(), "{err}");
    }

    // A user unit, for users without root.
    pmr.run_env(
        &[
            "startup",
            "systemd",
            "--user-unit",
            "-u",
            "app",
            "--hp",
            "/home/app",
        ],
        &env,
    )
    .ok();
    let user_unit =
        std::fs::read_to_string(root.join("home/app/.config/systemd/user/pmr.service")).unwrap();
    assert!(!user_unit.contains("User="), "{user_unit}");
    assert!(user_unit.contains("WantedBy=default.target"), "{user_unit}");

    pmr.run_env(
        &["unstartup", "systemd", "-u", "app", "--hp", "/home/app"],
        &env,
    )
    .ok();
    assert!(!unit_path.exists());
    pmr.run_env(
        &["unstartup", "systemd", "-u", "app", "--hp", "/home/app"],
        &env,
    )
    .fails();
}

#[test]
fn startup_for_an_init_system_this_machine_lacks_fails_and_writes_nothing() {
    let pmr = Pmr::new();
    let home = pmr.dir.join("userhome");
    std::fs::create_dir_all(&home).unwrap();
    let home_s = home.to_str().unwrap();
    // launchd never exists on Linux: no PMR_STARTUP_ROOT here, the real check runs.
    let r = pmr
        .run_env(&["startup", "launchd", "--hp", home_s], &[("HOME", home_s)])
        .fails();
    assert!(
        r.stderr.contains("launchd is not on this machine"),
        "{}",
        r.stderr
    );
    assert!(!home.join("Library").exists());
    let r = pmr.run(&["startup", "bsd-init"]).fails();
    assert!(r.stderr.contains("unknown init system"), "{}", r.stderr);
}

#[test]
fn startup_without_a_platform_looks_at_pid_1() {
    let pmr = Pmr::new();
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let comm = comm.trim();
    if matches!(comm, "systemd" | "init" | "openrc-init") {
        // A machine booted with an init system: detection would succeed and write to /etc
        // (as root). Only the container case (PID 1 is something else) is checked here.
        return;
    }
    let root = pmr.dir.join("root");
    let r = pmr
        .run_env(
            &["startup"],
            &[("PMR_STARTUP_ROOT", root.to_str().unwrap())],
        )
        .fails();
    assert!(
        r.stderr
            .contains(&format!("Init system not found (PID 1 is `{comm}`)")),
        "{}",
        r.stderr
    );
    assert!(!root.exists());
}

#[test]
fn daemon_resurrect_imports_a_pm2_dump_before_ready() {
    let pmr = Pmr::new();
    let file = pm2_fixture(&pmr);
    let sd = FakeSystemd::at_path(&pmr.dir.join("notify"));
    let mut child = daemon_resurrect(
        &pmr,
        &[
            ("NOTIFY_SOCKET", &sd.env),
            ("PMR_DUMP_FILE_PATH", file.to_str().unwrap()),
        ],
    );
    sd.expect("READY=1");
    let list = pmr.jlist();
    let online = list
        .iter()
        .filter(|p| p["pm2_env"]["status"] == "online")
        .count();
    assert_eq!((list.len(), online), (5, 4), "{list:#?}");
    pmr.run(&["kill"]).ok();
    let _ = child.wait();
}

#[test]
fn a_daemon_started_on_demand_never_notifies_the_callers_service() {
    let pmr = Pmr::new();
    let sd = FakeSystemd::at_path(&pmr.dir.join("notify"));
    // A CLI run from some Type=notify unit's script: the daemon it starts is not that unit.
    pmr.run_env(&["ping"], &[("NOTIFY_SOCKET", &sd.env)]).ok();
    // A daemon with a notify socket says READY=1 before it answers any client, so by now the
    // datagram would be queued: nothing to wait for.
    sd.sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let got = sd.sock.recv(&mut buf);
    assert!(
        got.is_err(),
        "the caller's service got {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
}
