//! Test harness: each `Pmr` has its own temporary `PMR_HOME` and daemon; dropping it runs
//! `pmr kill`, then SIGKILLs the daemon and every pid the test registered, if still alive.

#![allow(dead_code)]

pub use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pmr");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> String {
    fixtures().join(name).to_string_lossy().into_owned()
}

/// Generous: these machines have 2 busy cores.
pub const DEADLINE: Duration = Duration::from_secs(20);

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Pmr {
    pub home: PathBuf,
    /// A scratch directory for the test's own files.
    pub dir: PathBuf,
    pids: std::sync::Mutex<Vec<u32>>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn fails(self) -> Run {
        assert_eq!(
            self.code, 1,
            "command should fail:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Pmr {
    pub fn new() -> Pmr {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("pmr-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let home = base.join("home");
        let dir = base.join("work");
        std::fs::create_dir_all(&dir).unwrap();
        Pmr {
            home,
            dir,
            pids: Default::default(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("PMR_HOME", &self.home)
            .env("NO_COLOR", "1")
            .current_dir(&self.dir);
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().unwrap())
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().unwrap())
    }

    pub fn jlist(&self) -> Vec<Value> {
        let r = self.run(&["jlist"]).ok();
        let v: Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("bad jlist {e}: {}", r.stdout));
        let list = v.as_array().unwrap().clone();
        for p in &list {
            if let Some(pid) = p["pid"].as_u64().filter(|&p| p != 0) {
                self.track(pid as u32);
            }
        }
        list
    }

    /// The jlist entry of `pm_id`.
    pub fn proc(&self, pm_id: u64) -> Option<Value> {
        self.jlist().into_iter().find(|p| p["pm_id"] == pm_id)
    }

    pub fn status(&self, pm_id: u64) -> String {
        self.proc(pm_id)
            .map(|p| p["pm2_env"]["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Poll `jlist` until `f` holds for the entry of `pm_id`.
    pub fn wait_proc(&self, pm_id: u64, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(p) = self.proc(pm_id) {
                if f(&p) {
                    return p;
                }
                if Instant::now() > deadline {
                    panic!("timed out waiting for {what}; last state: {p:#}");
                }
            } else if Instant::now() > deadline {
                panic!("timed out waiting for {what}; process {pm_id} is not in the list");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn wait_status(&self, pm_id: u64, status: &str) -> Value {
        self.wait_proc(pm_id, &format!("status {status}"), |p| {
            p["pm2_env"]["status"] == status
        })
    }

    pub fn track(&self, pid: u32) {
        let mut p = self.pids.lock().unwrap();
        if !p.contains(&pid) {
            p.push(pid);
        }
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.home.join("pmr.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn log_of(&self, file: &str) -> String {
        std::fs::read_to_string(self.home.join("logs").join(file)).unwrap_or_default()
    }
}

impl Drop for Pmr {
    fn drop(&mut self) {
        let daemon = self.daemon_pid();
        // Remember every app pid before asking the daemon to stop them, so that a daemon that
        // fails to stop them still leaves no process behind.
        let running = self.home.join("rpc.sock").exists();
        if let Some(out) = running
            .then(|| self.cmd().arg("jlist").output().ok())
            .flatten()
        {
            if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&out.stdout) {
                for p in list {
                    if let Some(pid) = p["pid"].as_u64().filter(|&p| p != 0) {
                        self.track(pid as u32);
                    }
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
            let _ = std::fs::remove_dir_all(self.home.parent().unwrap());
        }
    }
}

pub fn kill9(pid: u32) {
    signal(pid, Signal::SIGKILL);
}

/// `sig` to a process this test started; gone already is fine.
pub fn signal(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    pmr_core::procfs::alive(pid)
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Read a file once it exists and is non-empty.
pub fn wait_file(path: &Path) -> String {
    let mut content = String::new();
    wait_until(&format!("file {}", path.display()), || {
        content = std::fs::read_to_string(path).unwrap_or_default();
        !content.trim().is_empty()
    });
    std::fs::read_to_string(path).unwrap()
}

/// GET / over loopback with a plain HTTP/1.0 request; returns the body.
pub fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn env_of(p: &Value) -> &serde_json::Map<String, Value> {
    p["pm2_env"]["env"].as_object().unwrap()
}

/// Distinct `pid`s seen in JSON answers on `port`, polling until `n` are seen.
pub fn pids_answering(port: u16, n: usize) -> std::collections::HashSet<u64> {
    let mut seen = std::collections::HashSet::new();
    wait_until(
        &format!("{n} distinct processes answering on {port}"),
        || {
            for _ in 0..20 {
                if let Ok(body) = http_get(port) {
                    if let Ok(v) = serde_json::from_str::<Value>(&body) {
                        seen.insert(v["pid"].as_u64().unwrap());
                    }
                }
            }
            seen.len() >= n
        },
    );
    seen
}

/// The pids of the instances that are online.
pub fn online_pids(pmr: &Pmr) -> std::collections::HashSet<u64> {
    pmr.jlist()
        .iter()
        .filter(|p| p["pm2_env"]["status"] == "online")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

/// The lines `r` gives (a child's stdout), on a channel, read by a thread that ends with it, so
/// a test can wait for one line with a deadline.
pub fn line_channel(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// (id, name, restart_time, status) of every instance.
pub fn summary(list: &[Value]) -> Vec<(u64, String, u64, String)> {
    list.iter()
        .map(|p| {
            (
                p["pm_id"].as_u64().unwrap(),
                p["name"].as_str().unwrap().to_string(),
                p["pm2_env"]["restart_time"].as_u64().unwrap(),
                p["pm2_env"]["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
