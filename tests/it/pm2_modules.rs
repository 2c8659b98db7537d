//! Real PM2 modules from the npm registry, installed with the real `pmr install` against pmr's
//! daemon: pm2-metrics (the Prometheus exporter) lists pmr's apps and their custom metrics,
//! pm2-logrotate rotates an app's log and the daemon's own by copy + truncate, pm2-intercom
//! relays a message from one app to another.
//!
//! Pinning: `tests/pm2-modules/<name>/` is an npm project whose package-lock.json pins the module
//! and its whole dependency tree, installed once with `npm ci` into the apps' cache
//! (`crate::apps::installed`). `npm install <folder>` (what `pmr install` runs) would resolve
//! the module's dependencies afresh (npm ignores a dependency's lock file, and honours the
//! `npm-shrinkwrap.json` of registry packages only), so each test installs a copy of the module
//! whose `node_modules` is the locked tree and whose package.json bundles it
//! (`bundleDependencies: true`, the one change to the package): npm then installs those exact
//! files and fetches nothing.

use crate::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `npm install` of a module with its bundled tree (tens of MB) on 2 busy cores.
const INSTALL_DEADLINE: Duration = Duration::from_secs(240);
/// A module's first answer: node loading PM2's library and @pm2/io, connecting, listing.
const MODULE_DEADLINE: Duration = Duration::from_secs(60);

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `npm ci`-ed project that pins `name`, with a clear failure when the registry is out of
/// reach.
fn pinned_project(name: &str) -> PathBuf {
    let src = manifest().join("tests/pm2-modules").join(name);
    let key = format!("pm2-module-{name}");
    match std::panic::catch_unwind(|| crate::apps::installed(&key, &src)) {
        Ok(dir) => dir,
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "cannot install the pinned {name} ({}) with `npm ci`: these tests need the npm \
                 registry (https://registry.npmjs.org) and node/npm on PATH.\n{why}",
                src.display()
            )
        }
    }
}

/// Copy `from` into `to` (created), symlinks as symlinks, skipping the names in `skip` at the
/// top level.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&src, &dst, &[]);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A folder in `dir` that `install` turns into `name` with exactly its locked dependencies: the
/// package's files, the lock's tree (all of the project's `node_modules` but the module
/// itself) as its own `node_modules`, bundled.
fn pinned_module(dir: &Path, name: &str) -> PathBuf {
    let project = pinned_project(name);
    let modules = project.join("node_modules");
    let dst = dir.join(name);
    copy_tree(&modules.join(name), &dst, &["node_modules"]);
    assert!(
        !modules.join(name).join("node_modules").exists(),
        "{name} has nested dependencies: the lock's top-level tree is not all of its tree"
    );
    copy_tree(
        &modules,
        &dst.join("node_modules"),
        &[name, ".bin", ".package-lock.json"],
    );
    let pkg_path = dst.join("package.json");
    let mut pkg: Value = serde_json::from_slice(&std::fs::read(&pkg_path).unwrap()).unwrap();
    pkg["bundleDependencies"] = Value::Bool(true);
    std::fs::write(&pkg_path, serde_json::to_vec_pretty(&pkg).unwrap()).unwrap();
    dst
}

/// The version the lock pins for `dep` (top level of the tree).
fn locked_version(name: &str, dep: &str) -> String {
    let lock: Value = serde_json::from_slice(
        &std::fs::read(
            manifest()
                .join("tests/pm2-modules")
                .join(name)
                .join("package-lock.json"),
        )
        .unwrap(),
    )
    .unwrap();
    lock["packages"][format!("node_modules/{dep}")]["version"]
        .as_str()
        .unwrap_or_else(|| panic!("{dep} not in {name}'s lock"))
        .to_string()
}

/// The installed module runs its locked tree: PM2's library as the lock pins it.
fn assert_locked_pm2(ctl: &Ctl, name: &str) {
    let pkg = ctl
        .home
        .join("modules")
        .join(name)
        .join("node_modules")
        .join(name)
        .join("node_modules/pm2/package.json");
    let pkg: Value = serde_json::from_slice(&std::fs::read(&pkg).unwrap()).unwrap();
    assert_eq!(pkg["version"], locked_version(name, "pm2"), "{name}'s pm2");
}

/// A home of pmr's, used through the binary as `pmr` (`PMR_HOME`) or through a symlink named
/// `pm2` (`PM2_HOME`, the daemon's log is `pm2.log`). Dropping it kills its daemon through the
/// home, then SIGKILLs the daemon and every pid seen, if still alive.
struct Ctl {
    base: PathBuf,
    bin: PathBuf,
    home: PathBuf,
    /// `PMR_HOME` or `PM2_HOME`.
    var: &'static str,
    dir: PathBuf,
    pids: std::sync::Mutex<Vec<u32>>,
}

impl Ctl {
    fn new(pm2: bool) -> Ctl {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("pmr-it-mod-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("work");
        std::fs::create_dir_all(&dir).unwrap();
        let (bin, home, var) = if pm2 {
            let bin = base.join("pm2");
            std::os::unix::fs::symlink(BIN, &bin).unwrap();
            (bin, base.join("dot-pm2"), "PM2_HOME")
        } else {
            (PathBuf::from(BIN), base.join("home"), "PMR_HOME")
        };
        Ctl {
            base,
            bin,
            home,
            var,
            dir,
            pids: Default::default(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env(self.var, &self.home)
            // A PM2 library that missed pmr's daemon would start a PM2 in `$HOME/.pm2`: here,
            // where `no_stray_pm2` looks (npm fetches nothing: the modules come bundled).
            .env("HOME", &self.base)
            .env("NO_COLOR", "1")
            .env("npm_config_update_notifier", "false")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        if self.var == "PM2_HOME" {
            // Not this home: a PMR_HOME in the environment must change nothing.
            c.env("PMR_HOME", self.base.join("not-here"));
        }
        c
    }

    /// Run a command, with variables for it (an app started so gets them), killed (by its pid)
    /// past `deadline`.
    fn run_for(&self, args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Run {
        let mut child = self
            .cmd()
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                kill9(child.id());
                let _ = child.wait();
                panic!(
                    "`{} {}` took more than {deadline:?}",
                    self.bin.display(),
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: t_out.join().unwrap(),
            stderr: t_err.join().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_for(args, &[], DEADLINE)
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_for(args, env, DEADLINE)
    }

    fn install(&self, folder: &Path) -> Run {
        self.run_for(
            &["install", folder.to_str().unwrap()],
            &[],
            INSTALL_DEADLINE,
        )
        .ok()
    }

    fn jlist(&self) -> Vec<Value> {
        let r = self.run(&["jlist"]).ok();
        let list: Vec<Value> = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("bad jlist {e}: {}", r.stdout));
        let mut pids = self.pids.lock().unwrap();
        for p in &list {
            if let Some(pid) = p["pid"].as_u64().filter(|&p| p != 0) {
                if !pids.contains(&(pid as u32)) {
                    pids.push(pid as u32);
                }
            }
        }
        list
    }

    fn by_name(&self, name: &str) -> Option<Value> {
        self.jlist().into_iter().find(|p| p["name"] == name)
    }

    fn wait_online(&self, name: &str) -> Value {
        let mut last = None;
        wait_for(&format!("{name} online"), DEADLINE, || {
            last = self.by_name(name);
            last.as_ref()
                .is_some_and(|p| p["pm2_env"]["status"] == "online")
        });
        last.unwrap()
    }

    /// No module's PM2 library started a PM2 daemon of its own.
    fn no_stray_pm2(&self) {
        let stray = self.base.join(".pm2");
        assert!(!stray.exists(), "a PM2 home was made: {}", stray.display());
    }

    fn daemon_pid(&self) -> Option<u32> {
        let file = if self.var == "PM2_HOME" {
            "pm2.pid"
        } else {
            "pmr.pid"
        };
        std::fs::read_to_string(self.home.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let daemon = self.daemon_pid();
        if self.home.join("rpc.sock").exists() {
            if let Ok(o) = self.cmd().arg("jlist").output() {
                if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&o.stdout) {
                    let mut pids = self.pids.lock().unwrap();
                    pids.extend(
                        list.iter()
                            .filter_map(|p| p["pid"].as_u64().filter(|&p| p != 0))
                            .map(|p| p as u32),
                    );
                }
            }
        }
        let _ = self.cmd().arg("kill").output();
        if let Some(pid) = daemon {
            kill9(pid);
        }
        for &pid in self.pids.lock().unwrap().iter() {
            kill9(pid);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// Poll `f` until it holds, for at most `deadline`.
fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out ({deadline:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `path` on loopback `port` (HTTP/1.0); the body.
fn http_get_path(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The value of the Prometheus sample `metric` whose labels include `name="<app>"`.
fn sample(body: &str, metric: &str, app: &str) -> Option<f64> {
    let label = format!("name=\"{app}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// pm2-metrics 1.0.47 (pm2-prometheus-exporter): its `/metrics` lists pmr's apps, as PM2's
/// `list` gives them, with each app's custom @pm2/io metrics (`axm_monitor`) as gauges.
#[test]
fn pm2_metrics_exports_the_apps_and_their_custom_metrics() {
    let ctl = Ctl::new(false);
    let module = pinned_module(&ctl.dir, "pm2-metrics");
    let port = free_port();
    // Before the install: the install seeds the package's defaults, keeping these.
    ctl.run(&["set", "pm2-metrics:port", &port.to_string()])
        .ok();
    ctl.run(&["set", "pm2-metrics:host", "127.0.0.1"]).ok();
    let axm = crate::apps::app("axm").join("metrics.js");
    ctl.run(&["start", axm.to_str().unwrap(), "--name", "axm-app"])
        .ok();
    ctl.wait_online("axm-app");

    let t = Instant::now();
    ctl.install(&module);
    eprintln!("pm2-metrics installed in {:?}", t.elapsed());
    let m = ctl.wait_online("pm2-metrics");
    assert_eq!(m["pm2_env"]["pmx_module"], true, "{m:#}");
    assert_locked_pm2(&ctl, "pm2-metrics");

    let mut body = String::new();
    wait_for(
        "pm2-metrics' /metrics with axm-app's metrics",
        MODULE_DEADLINE,
        || {
            ctl.no_stray_pm2();
            body = http_get_path(port, "/metrics").unwrap_or_default();
            sample(&body, "pm2_realtime_users", "axm-app").is_some()
        },
    );
    assert_eq!(sample(&body, "pm2_up", "axm-app"), Some(1.0), "{body}");
    assert_eq!(
        sample(&body, "pm2_restarts", "axm-app"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "pm2_realtime_users", "axm-app"),
        Some(42.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "pm2_jobs_done", "axm-app"),
        Some(2.0),
        "{body}"
    );
    assert!(
        sample(&body, "pm2_memory", "axm-app").is_some_and(|m| m > 0.0),
        "{body}"
    );
    // The module itself is one of the processes it lists.
    assert_eq!(sample(&body, "pm2_up", "pm2-metrics"), Some(1.0), "{body}");

    // A stopped app is listed as down.
    ctl.run(&["stop", "axm-app"]).ok();
    wait_for("axm-app down in /metrics", MODULE_DEADLINE, || {
        body = http_get_path(port, "/metrics").unwrap_or_default();
        sample(&body, "pm2_up", "axm-app") == Some(0.0)
    });
    ctl.no_stray_pm2();
}

/// The numbers `tick N pid P` lines carry; `None` if a line is not one. A last line without its
/// newline (being written as the file was read) is left out.
fn tick_numbers(text: &str) -> Option<Vec<u64>> {
    let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
    whole
        .lines()
        .map(|l| l.strip_prefix("tick ")?.split(' ').next()?.parse().ok())
        .collect()
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

/// Rotated files of `live` (`<stem>__<date>.log`, pm2-logrotate's names and the built-in's),
/// sorted.
fn rotated(live: &Path) -> Vec<String> {
    let stem = live.file_stem().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<String> = std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{stem}__")))
        .collect();
    v.sort();
    v
}

/// pm2-logrotate 3.0.0, under the `pm2` personality (its daemon log is `$PM2_HOME/pm2.log`,
/// where the module looks): set small, it copies each log over 1K aside and truncates it. The
/// app goes on writing into the same file (pmr appends), from the start: no hole, no NUL
/// bytes, the sequence going on. pmr's own rotation stays out of it (it would rename: the
/// live files keep their inode).
#[test]
fn pm2_logrotate_rotates_app_and_daemon_logs_by_copy_and_truncate() {
    let ctl = Ctl::new(true);
    let module = pinned_module(&ctl.dir, "pm2-logrotate");
    let ticker = ctl.dir.join("ticker.js");
    std::fs::copy(fixture("ticker.js"), &ticker).unwrap();
    ctl.run_env(
        &["start", ticker.to_str().unwrap(), "--name", "ticker"],
        &[("TICK_MS", "5")],
    )
    .ok();
    ctl.wait_online("ticker");
    let logs = ctl.home.join("logs");
    let out_log = logs.join("ticker-out.log");
    let daemon_log = ctl.home.join("pm2.log");
    wait_for("ticker's log", DEADLINE, || out_log.exists());

    let t = Instant::now();
    ctl.install(&module);
    eprintln!("pm2-logrotate installed in {:?}", t.elapsed());
    ctl.wait_online("pm2-logrotate");
    assert_locked_pm2(&ctl, "pm2-logrotate");
    let conf: Value =
        serde_json::from_slice(&std::fs::read(ctl.home.join("conf.json")).unwrap()).unwrap();
    assert_eq!(conf["pm2-logrotate"]["max_size"], "10M", "{conf}");
    for (k, v) in [("max_size", "1K"), ("workerInterval", "1"), ("retain", "3")] {
        let r = ctl.run(&["set", &format!("pm2-logrotate:{k}"), v]).ok();
        assert!(r.stdout.contains("restarted"), "{}", r.stdout);
    }
    ctl.wait_online("pm2-logrotate");
    let out_inode = inode(&out_log);
    // The daemon's log past 1K: what it says about another app's restarts (the ticker's
    // sequence goes on undisturbed).
    let filler = ctl.dir.join("filler.js");
    std::fs::copy(fixture("ticker.js"), &filler).unwrap();
    ctl.run_env(
        &["start", filler.to_str().unwrap(), "--name", "filler"],
        &[("TICK_MS", "60000")],
    )
    .ok();
    let grow_daemon_log = || {
        let before = std::fs::metadata(&daemon_log).unwrap().len();
        ctl.run(&["restart", "filler"]).ok();
        wait_for("pm2.log to grow", DEADLINE, || {
            std::fs::metadata(&daemon_log).unwrap().len() != before
        });
    };
    for _ in 0..20 {
        if std::fs::metadata(&daemon_log).unwrap().len() > 2048 {
            break;
        }
        grow_daemon_log();
    }
    let daemon_inode = inode(&daemon_log);

    wait_for("the app's log rotated (twice)", MODULE_DEADLINE, || {
        rotated(&out_log).len() >= 2
    });
    wait_for("the daemon's log rotated", MODULE_DEADLINE, || {
        !rotated(&daemon_log).is_empty()
    });
    // What the daemon writes next goes at the start of the truncated file.
    grow_daemon_log();

    // Copy + truncate: the same files (pmr's rotation renames), no NUL byte.
    assert_eq!(inode(&out_log), out_inode, "the app's log was replaced");
    assert_eq!(
        inode(&daemon_log),
        daemon_inode,
        "the daemon's log was replaced"
    );
    // The ticker goes on writing from the start of the truncated file: its numbers go on (one
    // run from 1: the ticker never restarted), and the first is past 1 (truncated).
    let mut live = String::new();
    wait_for(
        "the live log with the sequence going on",
        MODULE_DEADLINE,
        || {
            live = std::fs::read_to_string(&out_log).unwrap_or_default();
            tick_numbers(&live).is_some_and(|n| n.len() >= 5)
        },
    );
    let bytes = std::fs::read(&out_log).unwrap();
    assert!(!bytes.contains(&0), "NUL bytes in the live log: {live:?}");
    let nums = tick_numbers(&live).unwrap_or_else(|| panic!("not all ticks: {live:?}"));
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a hole in the live log: {live}");
    }
    assert!(nums[0] > 1, "the live log was never truncated: {live}");
    for name in rotated(&out_log) {
        let text = std::fs::read_to_string(logs.join(&name)).unwrap();
        assert!(
            tick_numbers(&text).is_some_and(|n| !n.is_empty()),
            "{name}: {text:?}"
        );
    }
    let daemon_bytes = std::fs::read(&daemon_log).unwrap();
    assert!(!daemon_bytes.contains(&0), "NUL bytes in pm2.log");
    assert!(
        daemon_bytes.len() < 64 * 1024,
        "pm2.log not truncated: {} bytes",
        daemon_bytes.len()
    );
    // Rotated by the module: `<stem>__<date>.log` (seconds), never the built-in's `_<n>`
    // second-sequence suffix, and at most `retain` of them plus one being written.
    for live in [&out_log, &daemon_log] {
        for name in rotated(live) {
            let date = name
                .strip_suffix(".log")
                .and_then(|n| n.rsplit_once("__"))
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            assert_eq!(date.len(), "YYYY-MM-DD_HH-mm-ss".len(), "{name}");
            let rotated_bytes = std::fs::read(live.parent().unwrap().join(&name)).unwrap();
            assert!(!rotated_bytes.contains(&0), "NUL bytes in {name}");
        }
    }
    ctl.no_stray_pm2();
}

/// pm2-intercom 1.0.0: what an app sends with `process.send({topic, data})` reaches the other
/// apps' `process.on('message')` (the module hears it on PM2's bus as `process:msg` and sends
/// it on with `sendDataToProcessId`).
#[test]
fn pm2_intercom_relays_a_message_between_apps() {
    let ctl = Ctl::new(false);
    let module = pinned_module(&ctl.dir, "pm2-intercom");
    let got = ctl.dir.join("received.jsonl");
    let receiver = fixture("intercom_receiver.js");
    let sender = fixture("intercom_sender.js");
    ctl.run_env(
        &["start", &receiver, "--name", "receiver"],
        &[("OUT_FILE", got.to_str().unwrap())],
    )
    .ok();
    let t = Instant::now();
    ctl.install(&module);
    eprintln!("pm2-intercom installed in {:?}", t.elapsed());
    ctl.wait_online("pm2-intercom");
    assert_locked_pm2(&ctl, "pm2-intercom");
    ctl.run(&["start", &sender, "--name", "sender"]).ok();
    ctl.wait_online("receiver");

    let mut text = String::new();
    wait_for(
        "the receiver writing a relayed message",
        MODULE_DEADLINE,
        || {
            text = std::fs::read_to_string(&got).unwrap_or_default();
            !text.is_empty()
        },
    );
    let first: Value = serde_json::from_str(text.lines().next().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let sender_pid = ctl.by_name("sender").unwrap()["pid"].clone();
    assert_eq!(first["topic"], "pmr:intercom", "{first}");
    assert_eq!(first["data"]["from"], "sender", "{first}");
    assert_eq!(first["data"]["pid"], sender_pid, "{first}");
    assert!(first["data"]["n"].as_u64().is_some(), "{first}");
    ctl.no_stray_pm2();
}
