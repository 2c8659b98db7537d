//! Programs that use the real `pm2` npm package as a library (`require('pm2')`) against pmr's
//! daemon, which speaks PM2's own protocol on the home's `rpc.sock` and `pub.sock` (axon
//! req/rep and pub-emitter over AMP; `docs/pm2-protocol-capture.md`). The scripts are in
//! `tests/pm2-client/` and were checked against PM2 7.0.4 itself; PM2 is the pinned one of
//! `tests/pm2/npm/`, installed once into the apps cache.
//!
//! pmr's daemon is started first (`pmr ping`), so that the pm2 client finds it and never spawns
//! PM2's own daemon: both tests check that none was, and kill one if it was.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn client_script(name: &str) -> PathBuf {
    manifest().join("tests/pm2-client").join(name)
}

/// The pinned PM2 package (`node_modules/pm2` of the cached install of `tests/pm2/npm`).
fn pm2_module() -> PathBuf {
    crate::apps::installed("pm2", &manifest().join("tests/pm2/npm")).join("node_modules/pm2")
}

/// A hung script is a failure with its output, not a hung test.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

struct NodeRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

impl NodeRun {
    fn show(&self) -> String {
        format!(
            "exit {:?}{}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            if self.timed_out {
                format!(" (killed after {SCRIPT_TIMEOUT:?})")
            } else {
                String::new()
            },
            self.stdout,
            self.stderr
        )
    }
}

/// `node <script> <args>` with PM2's client environment pointed at pmr's home, killed (by its
/// pid) after `SCRIPT_TIMEOUT`.
fn node(pmr: &Pmr, script: &Path, args: &[&str], env: &[(&str, &str)]) -> NodeRun {
    let mut c = Command::new("node");
    c.arg(script)
        .args(args)
        .current_dir(&pmr.dir)
        .env("PM2_HOME", &pmr.home)
        .env("PM2_DISABLE_VERSION_CHECK", "1")
        .env("HOME", &pmr.dir)
        .env_remove("PMR_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    let read = |r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let mut r = r;
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    NodeRun {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        timed_out,
    }
}

/// The JSON lines of a script's stdout (the pm2 package may print other things).
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// PM2's own daemons for `home` (`node …/pm2/lib/Daemon.js` with `PM2_HOME=<home>`), with
/// their descendants (the apps they started).
fn pm2_daemons(home: &Path) -> Vec<u32> {
    let want = format!("PM2_HOME={}", home.display());
    let pids = all_pids();
    let mut found: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains("lib/Daemon.js")
                && env.split(|&b| b == 0).any(|v| v == want.as_bytes())
                && alive(*pid)
        })
        .collect();
    // Descendants, to a fixed point.
    loop {
        let more: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| !found.contains(p))
            .filter(|p| ppid_of(*p).is_some_and(|pp| found.contains(&pp)))
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Kills any PM2 daemon of the home (and its apps) when dropped, so that a pm2 client that
/// spawned one because pmr's daemon did not answer leaves nothing behind.
struct NoPm2Daemon(PathBuf);

impl NoPm2Daemon {
    /// What betrays a PM2 daemon: its process, its pid file or its log in the home.
    fn evidence(&self) -> Vec<String> {
        let mut e = Vec::new();
        let procs = pm2_daemons(&self.0);
        if !procs.is_empty() {
            e.push(format!("PM2 daemon processes (and children): {procs:?}"));
        }
        for f in ["pm2.pid", "pm2.log"] {
            if self.0.join(f).exists() {
                let text = std::fs::read_to_string(self.0.join(f)).unwrap_or_default();
                let tail: String = text.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                e.push(format!("{f} exists:\n{tail}"));
            }
        }
        e
    }
}

impl Drop for NoPm2Daemon {
    fn drop(&mut self) {
        for pid in pm2_daemons(&self.0) {
            if pid > 1 {
                kill9(pid);
            }
        }
    }
}

/// A started pmr daemon in a home that PM2's client accepts as PM2_HOME.
fn started() -> (Pmr, u32, NoPm2Daemon) {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let daemon = pmr.daemon_pid().expect("pmr.pid after `pmr ping`");
    // PM2's first-run marker: without it a PM2 client prints a banner and phones home.
    std::fs::write(pmr.home.join("touch"), "").unwrap();
    let guard = NoPm2Daemon(pmr.home.clone());
    (pmr, daemon, guard)
}

/// Every step of `library.js`, in order; a run that stops early misses some.
const LIBRARY_STEPS: &[&str] = &[
    "connect",
    "list",
    "launchBus",
    "start(script)",
    "bus process:event start",
    "start(config)",
    "bus process:event start(config)",
    "bus log:out",
    "describe",
    "restart",
    "bus process:event restart",
    "reload",
    "bus process:event reload",
    "sendDataToProcessId",
    "bus process:msg",
    "stop",
    "bus process:event stop",
    "delete lib-fork",
    "delete lib-cluster",
    "bus process:event shape",
    "killDaemon",
    "disconnect",
];

/// connect, list, start (a script path with options, and a configuration object), describe,
/// restart, reload, stop, delete, sendDataToProcessId, the bus (`process:event`, `log:out`,
/// `process:msg`), killDaemon and disconnect, each callback exactly once, and the script ends
/// by itself: see `tests/pm2-client/library.js` for what each step checks.
#[test]
fn pm2_package_as_a_library_drives_pmr() {
    let (pmr, daemon, guard) = started();
    let module = pm2_module();
    let run = node(
        &pmr,
        &client_script("library.js"),
        &[],
        &[
            ("PM2_MODULE", module.to_str().unwrap()),
            ("LIB_EXPECT_EXISTING_DAEMON", "1"),
        ],
    );
    let lines = json_lines(&run.stdout);
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("step").is_some() && l["ok"] != true)
        .collect();
    let missing: Vec<&&str> = LIBRARY_STEPS
        .iter()
        .filter(|s| !lines.iter().any(|l| l["step"] == **s && l["ok"] == true))
        .collect();
    let summary = lines.iter().find(|l| l["summary"] == true);
    assert!(
        run.code == Some(0)
            && !run.timed_out
            && failed.is_empty()
            && missing.is_empty()
            && summary.is_some_and(|s| s["failed"].as_array().is_some_and(|f| f.is_empty())),
        "library.js against pmr: failed steps {failed:#?}\nsteps that never passed: {missing:?}\n{}",
        run.show()
    );

    // The daemon the script talked to, and killed, was pmr's own.
    let evidence = guard.evidence();
    assert!(
        evidence.is_empty(),
        "the pm2 client started PM2's own daemon:\n{}",
        evidence.join("\n")
    );
    wait_until("pmr's daemon to exit after killDaemon", || !alive(daemon));
    assert!(
        pmr.daemon_pid().is_none_or(|p| p == daemon),
        "pmr.pid names another daemon"
    );
}

/// Malformed frames on `rpc.sock` (a frame cut short, header version 2, argc 0, a `j:` argument
/// that is not JSON, a call without args, an unknown method, `methods`): each gets an answer
/// or a closed connection, never silence, and the daemon answers a ping after each. (PM2 7.0.4
/// itself leaves an argc-0 connection silent and dies on the bad JSON: see the capture notes.)
#[test]
fn raw_axon_bad_input_is_answered_or_closed() {
    let (pmr, daemon, guard) = started();
    let run = node(
        &pmr,
        &client_script("raw-axon.js"),
        &["--home", pmr.home.to_str().unwrap(), "--bad", "--strict"],
        &[],
    );
    let lines = json_lines(&run.stdout);
    let cases = lines.iter().filter(|l| l.get("case").is_some()).count();
    assert!(
        run.code == Some(0) && !run.timed_out && cases == 7,
        "raw-axon.js --bad against pmr ({cases} cases ran):\n{}",
        run.show()
    );
    assert_eq!(pmr.daemon_pid(), Some(daemon), "the daemon was replaced");
    assert!(alive(daemon));
    pmr.run(&["ping"]).ok();
    let evidence = guard.evidence();
    assert!(
        evidence.is_empty(),
        "a PM2 daemon appeared:\n{}",
        evidence.join("\n")
    );
}

/// Round trips of `getMonitorData` and `ping` through the raw client: they must all succeed
/// (the timings are printed, for BENCHMARKS, not judged).
#[test]
fn raw_axon_round_trips() {
    let (pmr, _daemon, _guard) = started();
    for method in ["getMonitorData", "ping"] {
        let run = node(
            &pmr,
            &client_script("raw-axon.js"),
            &[
                "--home",
                pmr.home.to_str().unwrap(),
                "--bench",
                "200",
                method,
            ],
            &[],
        );
        let lines = json_lines(&run.stdout);
        let ok = lines
            .first()
            .is_some_and(|l| l["method"] == method && l["median_us"].as_u64().is_some());
        assert!(
            run.code == Some(0) && ok,
            "raw-axon.js --bench 200 {method}:\n{}",
            run.show()
        );
        eprintln!("{}", run.stdout.trim());
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Clients that connect 1,000 times and hold their connections (PM2's #2013, #2319), on the RPC
/// socket (each after the first byte of a PM2 message, or silent) and on the bus: the daemon
/// keeps serving, holds a bounded number of descriptors, and gives them back when they leave.
#[test]
fn a_thousand_held_connections_leave_the_daemon_serving_and_bounded() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let (pmr, daemon, _guard) = started();
    // Room for our own 1,000 sockets (a soft limit of 1,024 is common).
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < 4096 {
            l.rlim_cur = l.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
    let before = fd_count(daemon);
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 4
    };
    let rss_before = rss(daemon);
    let mut held = Vec::new();
    for i in 0..1000 {
        let path = if i % 2 == 0 { "rpc.sock" } else { "pub.sock" };
        let Ok(mut s) = UnixStream::connect(pmr.home.join(path)) else {
            continue;
        };
        // Half the RPC ones start a PM2 message and never finish it; the others say nothing.
        if i % 4 == 0 {
            let _ = s.write_all(&[0x12, 0, 0]);
        }
        held.push(s);
    }
    pmr.run(&["ping"]).ok();
    pmr.run(&["jlist"]).ok();
    let during = fd_count(daemon);
    // At most 512 connections before their first byte, 256 PM2 clients and 64 bus subscribers.
    assert!(
        during <= before + 512 + 256 + 64 + 8,
        "the daemon holds {during} descriptors for 1,000 held connections (before: {before})"
    );
    let grown = rss(daemon).saturating_sub(rss_before);
    assert!(grown < 30 << 10, "the daemon grew by {grown} KiB");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fd_count(daemon) > before + 5 {
        assert!(
            Instant::now() < deadline,
            "the daemon still holds {} descriptors after the clients left (before: {before})",
            fd_count(daemon)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pmr.run(&["ping"]).ok();
}
