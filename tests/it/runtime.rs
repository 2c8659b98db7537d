//! `pmr-runtime` (the daemon in the foreground, for containers), run as PID 1 of a new PID
//! namespace with `unshare --pid --fork --mount-proc` when this machine allows it (as root it
//! does; otherwise the tests run it as a plain child, and orphans reach it as a subreaper), and
//! `pmr start --no-daemon`.

use crate::support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `unshare` can give us a PID namespace here (`PMR_TEST_NO_UNSHARE=1` says no, to
/// run these tests as an unprivileged CI would).
fn can_unshare() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("PMR_TEST_NO_UNSHARE").is_none()
            && Command::new("unshare")
                .args(["--pid", "--fork", "--mount-proc", "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// A running `pmr-runtime`. Dropped (declared after the `Pmr`, so dropped first): SIGKILLed
/// with its namespace, and its pid file removed (it holds the pid inside the namespace, which
/// `Pmr`'s cleanup must never signal).
struct Runtime {
    child: Child,
    /// The runtime's pid as we see it (PID 1 inside its namespace).
    pid: u32,
    out: Receiver<String>,
    err: Receiver<String>,
    home: PathBuf,
    code: Option<i32>,
}

fn spawn_runtime(pmr: &Pmr, args: &[&str]) -> Runtime {
    let link = pmr.dir.join("pmr-runtime");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let mut cmd = if can_unshare() {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&link);
        c
    } else {
        Command::new(&link)
    };
    cmd.args(args)
        .env("PMR_HOME", &pmr.home)
        .env("NO_COLOR", "1")
        .current_dir(&pmr.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = line_channel(child.stdout.take().unwrap());
    let err = line_channel(child.stderr.take().unwrap());
    let pid = if can_unshare() {
        let parent = child.id();
        let mut found = 0;
        wait_until("the runtime under unshare", || {
            found = children_of(parent).first().copied().unwrap_or(0);
            // A runtime that ends at once may be gone before it is seen (std keeps the status
            // for `wait`).
            found != 0 || child.try_wait().ok().flatten().is_some()
        });
        found
    } else {
        child.id()
    };
    Runtime {
        child,
        pid,
        out,
        err,
        home: pmr.home.clone(),
        code: None,
    }
}

impl Runtime {
    /// Wait for the runtime to exit; its status.
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let code = st.code().unwrap_or(-1);
                self.code = Some(code);
                return code;
            }
            assert!(Instant::now() < deadline, "pmr-runtime did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line of stdout (or stderr) printed so far; after `wait`, all of them.
    fn lines(rx: &Receiver<String>) -> Vec<String> {
        let mut v = Vec::new();
        // After exit the reader thread ends with the pipe: wait for its last lines.
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            v.push(l);
        }
        v
    }

    fn wait_line(rx: &Receiver<String>, what: &str, f: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = f(&l);
                    seen.push(l);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
            }
        }
    }

    fn signal(&self, sig: i32) {
        signal(self.pid, Signal::try_from(sig).unwrap());
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.code.is_none() {
            kill9(self.pid);
            kill9(self.child.id());
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(self.home.join("pmr.pid"));
    }
}

/// Pids whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| pmr_core::procfs::read_stat(p).is_some_and(|s| s.ppid == pid))
        .collect()
}

fn write(pmr: &Pmr, name: &str, text: &str) -> String {
    let p = pmr.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn output_forwarded_and_exit_code_of_the_last_app() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[
          {"name":"late","script":"/bin/sh","args":["-c","echo late-out; echo late-err >&2; sleep 0.5; exit 3"],"autorestart":false},
          {"name":"early","script":"/bin/sh","args":["-c","echo early-out; exit 0"],"autorestart":false}
        ]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    assert_eq!(rt.wait(), 3, "the last app to end exited 3");
    let out = Runtime::lines(&rt.out);
    let err = Runtime::lines(&rt.err);
    assert!(out.contains(&"late-out".into()), "{out:?}");
    assert!(out.contains(&"early-out".into()), "{out:?}");
    assert!(
        !out.contains(&"late-err".into()),
        "stderr stays on stderr: {out:?}"
    );
    assert!(err.contains(&"late-err".into()), "{err:?}");
    // Apps of an ecosystem file keep their log files, as under pm2-runtime.
    assert_eq!(pmr.log_of("late-out.log"), "late-out\n");
}

#[test]
fn json_output_is_one_object_per_line() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"j","script":"/bin/sh","args":["-c","echo one; echo two >&2; exit 0"],"autorestart":false}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &["--json", &eco]);
    assert_eq!(rt.wait(), 0);
    let out = Runtime::lines(&rt.out);
    let objs: Vec<serde_json::Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let one = objs.iter().find(|o| o["message"] == "one").expect("one");
    assert_eq!(one["type"], "out");
    assert_eq!(one["app_name"], "j");
    assert_eq!(one["process_id"], 0);
    assert!(one["timestamp"].as_str().unwrap().ends_with('Z'));
    let two = objs.iter().find(|o| o["message"] == "two").expect("two");
    assert_eq!(two["type"], "err");
}

#[test]
fn orphans_are_reaped() {
    let pmr = Pmr::new();
    // Each round a child forks a grandchild and exits: the grandchild is reparented to the
    // runtime (PID 1, or the subreaper) and becomes its zombie when it ends.
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"orphans","script":"/bin/sh","args":["-c","for i in 1 2 3 4 5; do sh -c 'sleep 0.3 &'; done; echo spawned; exec tail -f /dev/null"]}]}"#,
    );
    let rt = spawn_runtime(&pmr, &[&eco]);
    Runtime::wait_line(&rt.out, "spawned", |l| l == "spawned");
    let adopted = |zombie: bool| {
        children_of(rt.pid)
            .into_iter()
            .filter(|&p| {
                pmr_core::procfs::read_stat(p).is_some_and(|s| s.is_zombie() == zombie)
                    && (zombie
                        || std::fs::read_to_string(format!("/proc/{p}/comm"))
                            .is_ok_and(|c| c.trim() == "sleep"))
            })
            .count()
    };
    // The sleeps run as the runtime's children (adopted), then end: none stays a zombie.
    let mut saw_adopted = adopted(false) > 0;
    wait_until("every orphan reaped", || {
        saw_adopted |= adopted(false) > 0;
        children_of(rt.pid).len() == 1 && adopted(true) == 0
    });
    assert!(saw_adopted, "the orphans were never the runtime's children");
    // The app itself is still managed and online.
    let list = pmr.jlist();
    assert_eq!(list[0]["pm2_env"]["status"], "online");
}

#[test]
fn sigterm_stops_apps_gracefully_and_ls_works_meanwhile() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"polite","script":"/bin/sh","args":["-c","trap 'echo bye; exit 0' INT; echo ready; while :; do sleep 0.05; done"]}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    Runtime::wait_line(&rt.out, "ready", |l| l == "ready");
    // The socket is there: the CLI works against the runtime's home.
    let r = pmr.run(&["ls"]).ok();
    assert!(r.stdout.contains("polite"), "{}", r.stdout);
    let list = pmr.jlist();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["pm2_env"]["status"], "online");
    rt.signal(libc::SIGTERM);
    Runtime::wait_line(&rt.out, "bye", |l| l == "bye");
    assert_eq!(rt.wait(), 0);
    assert!(!pmr.home.join("rpc.sock").exists());
}

#[test]
fn an_app_that_must_be_sigkilled_gives_137() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"stubborn","script":"/bin/sh","kill_timeout":300,"args":["-c","trap '' INT; echo ready; while :; do sleep 0.05; done"]}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    Runtime::wait_line(&rt.out, "ready", |l| l == "ready");
    let started = Instant::now();
    rt.signal(libc::SIGINT);
    assert_eq!(rt.wait(), 137);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "kill_timeout honoured"
    );
}

#[test]
fn no_auto_exit_keeps_running_after_the_apps_end() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"once","script":"/bin/sh","args":["-c","echo done-once; exit 4"],"autorestart":false}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &["--no-auto-exit", &eco]);
    Runtime::wait_line(&rt.out, "done-once", |l| l == "done-once");
    pmr.wait_status(0, "stopped");
    // A negative, so a witness instead of a sleep: the same app in a runtime started only now,
    // without the flag, has exited by itself; the first one had at least as long to do so.
    let witness = Pmr::new();
    let eco2 = write(
        &witness,
        "eco.json",
        &std::fs::read_to_string(&eco).unwrap(),
    );
    let mut control = spawn_runtime(&witness, &[&eco2]);
    assert_eq!(control.wait(), 4);
    assert!(rt.child.try_wait().unwrap().is_none(), "exited");
    pmr.run(&["ping"]).ok();
    rt.signal(libc::SIGTERM);
    assert_eq!(rt.wait(), 0);
}

#[test]
fn a_bad_config_starts_nothing() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"x","script":"/bin/sh","instances":"lots"}]}"#,
    );
    let link = pmr.dir.join("pmr-runtime");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = Command::new(&link)
        .arg(&eco)
        .env("PMR_HOME", &pmr.home)
        .current_dir(&pmr.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!pmr.home.join("rpc.sock").exists());
}

#[test]
fn start_no_daemon_runs_in_the_foreground() {
    let pmr = Pmr::new();
    let mut c = pmr.cmd();
    c.args([
        "start",
        "--no-daemon",
        "--name",
        "fg",
        "/bin/sh",
        "--",
        "-c",
        "echo fg-ready; exec sleep 600",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let out = line_channel(child.stdout.take().unwrap());
    let _err = line_channel(child.stderr.take().unwrap());
    // PM2's `--no-daemon` streams as `pm2 logs`: `HH:mm:ss <id>|<name> | line`.
    let seen = Runtime::wait_line(&out, "fg-ready", |l| l.ends_with(" 0|fg  | fg-ready"));
    let line = seen.last().unwrap();
    assert_eq!(line.as_bytes()[2], b':', "{line}");
    let list = pmr.jlist();
    assert_eq!(list[0]["name"], "fg");
    assert_eq!(
        pmr.daemon_pid(),
        Some(child.id()),
        "the daemon is this process"
    );
    signal(child.id(), Signal::SIGINT);
    let deadline = Instant::now() + DEADLINE;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.code(), Some(0));
    let app = list[0]["pid"].as_u64().unwrap() as u32;
    assert!(!alive(app));
}

#[test]
fn a_script_on_the_command_line_writes_no_log_file() {
    let pmr = Pmr::new();
    let mut rt = spawn_runtime(
        &pmr,
        &[
            "--no-autorestart",
            "--name",
            "job",
            "/bin/sh",
            "--",
            "-c",
            "echo job-out; exit 7",
        ],
    );
    assert_eq!(rt.wait(), 7);
    assert_eq!(Runtime::lines(&rt.out), ["job-out"]);
    // pm2-runtime's `--output`/`--error` default to /dev/null: the console is the log.
    let logs = pmr.home.join("logs");
    let files: Vec<_> = std::fs::read_dir(&logs)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn format_mode_prints_key_values() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"kv","script":"/bin/sh","args":["-c","echo hi; echo oops >&2"],"autorestart":false}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &["--format", "--silent", &eco]);
    assert_eq!(rt.wait(), 0);
    let out = Runtime::lines(&rt.out);
    // `--silent`: none of pmr's own info lines on stderr (the app's stderr is on stdout here).
    let err = Runtime::lines(&rt.err);
    assert!(err.is_empty(), "{err:?}");
    for (kind, msg) in [("out", "hi"), ("error", "oops")] {
        let want = format!(" app=kv id=0 type={kind} message={msg}");
        assert!(
            out.iter()
                .any(|l| l.starts_with("timestamp=") && l.ends_with(&want)),
            "{want} in {out:?}"
        );
    }
}

#[test]
fn a_signal_during_delay_starts_nothing() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"later","script":"/bin/sh","args":["-c","echo started; exec sleep 600"]}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &["--delay", "60", &eco]);
    wait_until("the runtime's socket", || {
        pmr.home.join("rpc.sock").exists()
    });
    assert!(pmr.jlist().is_empty());
    rt.signal(libc::SIGTERM);
    assert_eq!(rt.wait(), 0);
    assert!(!Runtime::lines(&rt.out).contains(&"started".to_string()));
}

#[test]
fn a_crash_loop_ending_errored_gives_its_exit_code() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[
          {"name":"crashy","script":"/bin/sh","args":["-c","exit 5"],"max_restarts":2,"min_uptime":5000,"restart_delay":10},
          {"name":"fine","script":"/bin/sh","args":["-c","exit 0"],"autorestart":false}
        ]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    assert_eq!(rt.wait(), 5, "the errored app ended last");
}

#[test]
fn a_home_with_a_daemon_is_refused() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let daemon = pmr.daemon_pid().unwrap();
    let r = pmr
        .run(&[
            "start",
            "--no-daemon",
            "/bin/sh",
            "--",
            "-c",
            "exec sleep 600",
        ])
        .fails();
    assert!(r.stderr.contains("already runs"), "{}", r.stderr);
    let r = pmr.run(&["runtime", "/bin/sh"]).fails();
    assert!(r.stderr.contains("already runs"), "{}", r.stderr);
    assert!(alive(daemon));
    assert!(pmr.jlist().is_empty(), "nothing started");
}

#[test]
fn pmr_kill_beside_the_runtime_ends_it_with_0() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"k","script":"/bin/sh","args":["-c","echo up; exec sleep 600"]}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    Runtime::wait_line(&rt.out, "up", |l| l == "up");
    let t = Instant::now();
    pmr.run(&["kill"]).ok();
    // `pmr kill` waits for the daemon's own pid (seen through the socket), not the one in
    // `pmr.pid`, which inside a namespace is 1: a live process out here.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(rt.wait(), 0);
}

#[test]
fn env_and_only_select_as_for_start() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[
          {"name":"api","script":"/bin/sh","args":["-c","echo greeting=$GREETING"],"autorestart":false,
           "env":{"GREETING":"dev"},"env_production":{"GREETING":"prod"}},
          {"name":"other","script":"/bin/sh","args":["-c","echo other-ran"],"autorestart":false}
        ]}"#,
    );
    // `start <file>`, as PM2's docs write pm2-runtime's command line.
    let mut rt = spawn_runtime(
        &pmr,
        &["start", &eco, "--env", "production", "--only", "api"],
    );
    assert_eq!(rt.wait(), 0);
    let out = Runtime::lines(&rt.out);
    assert_eq!(out, ["greeting=prod"]);
}

#[test]
fn the_code_is_that_of_the_app_that_ended_last_even_within_one_look() {
    let pmr = Pmr::new();
    // Both end before the auto-exit check's first look; the lower id ends last.
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[
          {"name":"second","script":"/bin/sh","args":["-c","sleep 0.1; exit 4"],"autorestart":false},
          {"name":"first","script":"/bin/sh","args":["-c","exit 9"],"autorestart":false}
        ]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    assert_eq!(rt.wait(), 4);
}

#[test]
fn an_app_that_cannot_start_stops_the_others_and_gives_1() {
    let pmr = Pmr::new();
    let bad_dir = pmr.dir.join("not-a-dir");
    std::fs::write(&bad_dir, "a file, so no log directory can be made under it").unwrap();
    let eco = write(
        &pmr,
        "eco.json",
        &format!(
            r#"{{"apps":[
              {{"name":"good","script":"/bin/sh","args":["-c","echo good-up; exec sleep 600"]}},
              {{"name":"bad","script":"/bin/sh","args":["-c","echo bad"],"out_file":"{}/out.log"}}
            ]}}"#,
            bad_dir.display()
        ),
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    assert_eq!(rt.wait(), 1);
    let err = Runtime::lines(&rt.err);
    assert!(
        err.iter()
            .any(|l| l.contains("[bad](1)") && l.contains("out.log")),
        "{err:?}"
    );
}

#[test]
fn a_stdout_nobody_reads_does_not_keep_it_alive() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"chatty","script":"/bin/sh","args":["-c","i=0; while [ $i -lt 20000 ]; do echo line-$i-padding-padding-padding-padding-padding; i=$((i+1)); done; echo done >&2; exec sleep 600"]}]}"#,
    );
    let link = pmr.dir.join("pmr-runtime");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let mut child = Command::new(&link)
        .arg(&eco)
        .env("PMR_HOME", &pmr.home)
        .current_dir(&pmr.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped()) // never read: the pipe fills
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _err = line_channel(child.stderr.take().unwrap());
    // The console is stuck on stdout; the app's log file says when it has written everything.
    wait_until("the app's last line in its log file", || {
        pmr.log_of("chatty-out.log").contains("line-19999-")
    });
    signal(child.id(), Signal::SIGTERM);
    let deadline = Instant::now() + DEADLINE;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            kill9(child.id());
            panic!("pmr-runtime stayed alive behind a full stdout");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.code(), Some(0));
}

#[test]
fn sigterm_while_an_app_is_still_starting() {
    let pmr = Pmr::new();
    // Never ready (`wait_ready` without 'ready'): the start is still waiting when SIGTERM comes.
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"slow","script":"/bin/sh","args":["-c","echo slow-up; exec sleep 600"],"wait_ready":true,"listen_timeout":60000}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    Runtime::wait_line(&rt.out, "slow-up", |l| l == "slow-up");
    rt.signal(libc::SIGTERM);
    assert_eq!(rt.wait(), 0);
    let err = Runtime::lines(&rt.err);
    assert!(!err.iter().any(|l| l.contains("ERROR")), "{err:?}");
}

#[test]
fn an_app_killed_by_a_signal_gives_128_plus_the_signal() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"oom","script":"/bin/sh","args":["-c","kill -KILL $$"],"autorestart":false}]}"#,
    );
    let mut rt = spawn_runtime(&pmr, &[&eco]);
    assert_eq!(rt.wait(), 137, "as a Job killed by the OOM killer");
}

/// `pmr runtime`/a link with `env`, which must end by itself within the deadline (the debug
/// switch hands the apps to the background daemon and exits).
fn run_to_end(pmr: &Pmr, program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    use std::io::Read;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PMR_HOME", &pmr.home)
        .env("NO_COLOR", "1")
        .current_dir(&pmr.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            kill9(child.id());
            let _ = child.wait();
            panic!("{args:?} did not return; stderr: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn runtime_debug_starts_the_apps_in_the_background_daemon_and_returns() {
    let pmr = Pmr::new();
    let script = fixture("run.sh");
    let args = ["runtime", &script, "-i", "2", "--name", "bg"];
    let debug = [("PMR_RUNTIME_DEBUG", "true")];
    let r = run_to_end(&pmr, BIN.as_ref(), &args, &debug).ok();
    // What `pmr start` prints.
    assert!(
        r.stdout.contains("Starting ") && r.stdout.contains("Done."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("bg"), "the table: {}", r.stdout);
    // The daemon is the home's ordinary one, alive after the runtime has gone.
    let daemon = pmr.daemon_pid().expect("a daemon for the home");
    assert!(alive(daemon));
    pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
    let list = pmr.jlist();
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list.iter().all(|p| p["name"] == "bg"));
    let pids: Vec<u32> = list
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    // Run again, the script is already running: refused as by `pmr start`, nothing added.
    let again = run_to_end(&pmr, BIN.as_ref(), &args, &debug).fails();
    assert!(
        again.stderr.contains("already launched"),
        "{}",
        again.stderr
    );
    assert_eq!(pmr.jlist().len(), 2);
    pmr.run(&["kill"]).ok();
    wait_until("the apps and the daemon gone", || {
        !alive(daemon) && pids.iter().all(|&p| !alive(p))
    });
}

#[test]
fn runtime_debug_under_pm2s_name_with_a_file_and_foreground_only_flags() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"filed","script":"/bin/sh","args":["-c","echo up; exec sleep 600"]}]}"#,
    );
    let link = pmr.dir.join("pm2-runtime");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let t = Instant::now();
    let r = run_to_end(
        &pmr,
        &link,
        &["--json", "--no-auto-exit", "--delay", "0.5", &eco],
        &[("PM2_RUNTIME_DEBUG", "1")],
    )
    .ok();
    assert!(t.elapsed() >= Duration::from_millis(500), "--delay waits");
    assert!(r.stdout.contains("App [filed](0) launched"), "{}", r.stdout);
    // The flags that only mean something in the foreground are named, not silently dropped.
    assert!(
        r.stderr
            .contains("--json --no-auto-exit: no effect with PM2_RUNTIME_DEBUG"),
        "{}",
        r.stderr
    );
    pmr.wait_status(0, "online");
    assert!(pmr.daemon_pid().is_some_and(alive));
}

#[test]
fn runtime_debug_false_runs_in_the_foreground() {
    let pmr = Pmr::new();
    // PM2 takes any non-empty value as on; `false` is off here.
    let r = run_to_end(
        &pmr,
        BIN.as_ref(),
        &[
            "runtime",
            "--no-autorestart",
            "/bin/sh",
            "--",
            "-c",
            "exit 3",
        ],
        &[
            ("PMR_RUNTIME_DEBUG", "false"),
            ("PM2_RUNTIME_DEBUG", "true"),
        ],
    );
    assert_eq!(
        r.code, 3,
        "the app's code, as in the foreground: {}",
        r.stderr
    );
    assert!(!pmr.home.join("rpc.sock").exists(), "no daemon stayed");
}

#[test]
fn runtime_debug_with_bad_input_starts_nothing() {
    let pmr = Pmr::new();
    let eco = write(
        &pmr,
        "eco.json",
        r#"{"apps":[{"name":"x","script":"/bin/sh","instances":"lots"}]}"#,
    );
    let missing = pmr.dir.join("missing.js");
    let missing = missing.to_str().unwrap();
    for (args, env, want) in [
        (
            vec!["runtime", missing, "-i", "2"],
            ("PMR_RUNTIME_DEBUG", "true"),
            "missing.js",
        ),
        (vec!["runtime", &eco], ("PM2_RUNTIME_DEBUG", "yes"), "lots"),
        (
            vec!["runtime", "/bin/sh"],
            ("PMR_RUNTIME_DEBUG", "verbose"),
            "PMR_RUNTIME_DEBUG=\"verbose\"",
        ),
    ] {
        let r = run_to_end(&pmr, BIN.as_ref(), &args, &[env]).fails();
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(
            !pmr.home.join("rpc.sock").exists(),
            "{args:?} started a daemon"
        );
    }
}

/// `pmr setup-links`: `pmr-runtime` (and with `--pm2`, `pm2` and `pm2-runtime`) beside the
/// binary, as `cargo install` users need; run again, it says so; a name taken by something
/// else is an error and nothing is made.
#[test]
fn setup_links_makes_the_runtime_name_beside_the_binary() {
    let pmr = Pmr::new();
    let bin_dir = pmr.dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("pmr");
    std::fs::copy(BIN, &bin).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(&bin)
            .args(args)
            .env("PMR_HOME", &pmr.home)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["setup-links"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let link = bin_dir.join("pmr-runtime");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        bin.canonicalize().unwrap()
    );
    let o = std::process::Command::new(&link)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Usage: pmr-runtime"), "{help}");
    assert!(
        help.contains("--no-auto-exit"),
        "the runtime's own options: {help}"
    );
    let (code, out, _) = run(&["setup-links"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("already links to"), "{out}");

    // `pm2` is some other program here: nothing is made, the error names it.
    std::fs::write(bin_dir.join("pm2"), "#!/bin/sh\n").unwrap();
    let (code, _, err) = run(&["setup-links", "--pm2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("pm2 exists and is a file"), "{err}");
    assert!(bin_dir.join("pm2-runtime").symlink_metadata().is_err());
    std::fs::remove_file(bin_dir.join("pm2")).unwrap();
    let elsewhere = pmr.dir.join("links");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (code, _, err) = run(&["setup-links", "--pm2", elsewhere.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    for n in ["pmr-runtime", "pm2", "pm2-runtime"] {
        assert!(elsewhere.join(n).symlink_metadata().is_ok(), "{n}");
    }
}
