//! One side of a scenario: PM2 or pmr, each with its own temporary home, cwd (a copy of
//! `tests/pm2/fixtures/`) and `HOME`, the same environment otherwise. Dropping a side stops its
//! daemon through its own home (`kill`), then SIGKILLs the daemon's pid and every app pid seen,
//! if still alive: never anything by name.

use crate::support::{alive, kill9, BIN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Pm2,
    Pmr,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pm2 => "pm2",
            Kind::Pmr => "pmr",
        }
    }
}

pub struct Side {
    pub kind: Kind,
    base: PathBuf,
    pub home: PathBuf,
    pub cwd: PathBuf,
    pub user_home: PathBuf,
    program: PathBuf,
    /// The `pm2` package's folder.
    pm2_module: PathBuf,
    pids: Mutex<BTreeSet<u32>>,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// How long `settle` waits for PM2's agent once no app is in a transient state.
const AGENT_WAIT: Duration = Duration::from_secs(6);

/// A command that hangs is a finding, not a reason for the test to hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(40);

impl Side {
    /// `pm2_dir`: the installed PM2 project (its `node_modules/.bin/pm2`).
    pub fn new(kind: Kind, scenario: &str, pm2_dir: &Path) -> Side {
        let base = std::env::temp_dir().join(format!(
            "pmr-pm2diff-{}-{scenario}-{}",
            std::process::id(),
            kind.label()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let home = base.join("home");
        let cwd = base.join("cwd");
        let user_home = base.join("user");
        for d in [&home, &cwd, &user_home] {
            std::fs::create_dir_all(d).unwrap();
        }
        // PM2's first-run marker: without it PM2 prints a banner and phones home.
        std::fs::write(home.join("touch"), "").unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pm2/fixtures");
        for e in std::fs::read_dir(&fixtures).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), cwd.join(e.file_name())).unwrap();
        }
        let program = match kind {
            Kind::Pm2 => pm2_dir.join("node_modules/.bin/pm2"),
            Kind::Pmr => PathBuf::from(BIN),
        };
        Side {
            kind,
            base,
            home,
            cwd,
            user_home,
            program,
            pm2_module: pm2_dir.join("node_modules/pm2"),
            pids: Default::default(),
        }
    }

    fn command(&self, args: &[String], env: &[(String, String)]) -> Command {
        let (program, args): (PathBuf, Vec<String>) = match args.split_first() {
            Some((first, rest)) if first == "pm2-runtime" => match self.kind {
                Kind::Pm2 => (self.program.with_file_name("pm2-runtime"), rest.to_vec()),
                Kind::Pmr => (
                    self.program.clone(),
                    std::iter::once("runtime".to_string())
                        .chain(rest.iter().cloned())
                        .collect(),
                ),
            },
            _ => (self.program.clone(), args.to_vec()),
        };
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.user_home)
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("PM2_DISABLE_VERSION_CHECK", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match self.kind {
            Kind::Pm2 => c.env("PM2_HOME", &self.home),
            Kind::Pmr => c.env("PMR_HOME", &self.home),
        };
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// A program that is not the tool (`node burst.js src 200`), in the cwd: its exit code.
    /// It gets PM2's variables for this side's home, and `PM2_MODULE`, the `pm2` package, for
    /// scripts that use it as a library (against pmr's daemon too: it speaks PM2's protocol).
    pub fn run_helper(&self, args: &[String]) -> Out {
        let (program, rest) = args.split_first().expect("a program");
        let o = Command::new(program)
            .args(rest)
            .current_dir(&self.cwd)
            .env("HOME", &self.user_home)
            .env("PM2_HOME", &self.home)
            .env("PM2_DISABLE_VERSION_CHECK", "1")
            .env("PM2_MODULE", &self.pm2_module)
            .env_remove("PMR_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Polls until `file` (relative to the cwd) has at least `n` lines.
    pub fn wait_lines(&self, file: &str, n: usize) {
        let path = self.cwd.join(file);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let have = std::fs::read_to_string(&path)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if have >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} has {have} lines, never {n}",
                self.kind.label(),
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn run(&self, args: &[String], env: &[(String, String)]) -> Out {
        self.try_run(args, env).unwrap_or_else(|| {
            panic!(
                "`{} {}` did not finish in {COMMAND_TIMEOUT:?}",
                self.kind.label(),
                args.join(" ")
            )
        })
    }

    /// None when the command timed out (it is killed then).
    fn try_run(&self, args: &[String], env: &[(String, String)]) -> Option<Out> {
        let mut child = self
            .command(args, env)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        // Read both pipes on threads so a chatty command cannot block on a full pipe.
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t1 = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut so, &mut s);
            s
        });
        let t2 = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut se, &mut s);
            s
        });
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Some(Out {
            code,
            stdout: t1.join().unwrap(),
            stderr: t2.join().unwrap(),
        })
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let o = self.run(&args, &[]);
        assert_eq!(
            o.code,
            0,
            "`{} {}` failed:\n{}\n{}",
            self.kind.label(),
            args.join(" "),
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// `jlist`, recording the pids for the clean-up.
    pub fn jlist(&self) -> Value {
        let out = self.run_ok(&["jlist"]);
        // PM2 may print notices before the JSON: the array starts at the first '['.
        let json = &out[out.find('[').unwrap_or(0)..];
        let v: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{}: bad jlist ({e}): {out}", self.kind.label()));
        for p in v.as_array().into_iter().flatten() {
            if let Some(pid) = p["pid"].as_u64().filter(|&p| p != 0) {
                self.pids.lock().unwrap().insert(pid as u32);
            }
        }
        v
    }

    /// `prettylist`: a Node `util.inspect` literal, for `eval_literals`.
    pub fn prettylist(&self) -> String {
        let out = self.run_ok(&["prettylist"]);
        // PM2 may print notices first: the literal starts with the first line that is `[`.
        let start = if out.starts_with('[') {
            0
        } else {
            out.find("\n[").map_or(0, |i| i + 1)
        };
        out[start..].to_string()
    }

    pub fn ls(&self) -> String {
        self.run_ok(&["ls"])
    }

    /// Poll `jlist` until no app is in a transient state (launching, stopping, waiting restart).
    /// Returns that last `jlist`.
    pub fn settle(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut steady_since: Option<Instant> = None;
        loop {
            let list = self.jlist();
            let steady = list.as_array().into_iter().flatten().all(|p| {
                let st = p["pm2_env"]["status"].as_str().unwrap_or("");
                (st == "online" && p["pid"].as_u64().unwrap_or(0) != 0)
                    || st == "stopped"
                    || st == "errored"
            });
            // PM2's agent inside a Node app reports `node_version` and `axm_options` some time
            // after the app is online (a restart empties `axm_options` again); without waiting,
            // what PM2 shows depends on the moment.
            let agent_ready = self.kind != Kind::Pm2
                || list.as_array().into_iter().flatten().all(|p| {
                    let e = &p["pm2_env"];
                    e["status"] != "online"
                        || e["exec_interpreter"] != "node"
                        || (e.get("node_version").is_some()
                            && e["axm_options"].get("module_name").is_some())
                });
            // The agent gets a few seconds: if it never reports, the difference shows.
            if !steady {
                steady_since = None;
            } else if agent_ready
                || steady_since.get_or_insert_with(Instant::now).elapsed() > AGENT_WAIT
            {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "{}: apps never settled (or PM2's agent never reported): {list:#}",
                self.kind.label()
            );
            // Each poll of PM2 is a Node start: poll it less often, the machine is small.
            std::thread::sleep(Duration::from_millis(match self.kind {
                Kind::Pm2 => 200,
                Kind::Pmr => 50,
            }));
        }
    }

    fn daemon_pid(&self) -> Option<u32> {
        let file = match self.kind {
            Kind::Pm2 => "pm2.pid",
            Kind::Pmr => "pmr.pid",
        };
        std::fs::read_to_string(self.home.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let daemon = self.daemon_pid();
        if daemon.is_some_and(alive) {
            // One more look at the apps, so that a daemon that fails to stop them leaves none.
            if let Some(o) = self.try_run(&["jlist".to_string()], &[]) {
                let json = &o.stdout[o.stdout.find('[').unwrap_or(0)..];
                if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(json) {
                    let mut pids = self.pids.lock().unwrap();
                    pids.extend(
                        list.iter()
                            .filter_map(|p| p["pid"].as_u64())
                            .filter(|&p| p > 1)
                            .map(|p| p as u32),
                    );
                }
            }
            let _ = self.try_run(&["kill".to_string()], &[]);
        }
        if let Some(pid) = daemon.filter(|&p| alive(p)) {
            kill9(pid);
        }
        for &pid in self.pids.lock().unwrap().iter() {
            // Never 0 or 1: kill(0) would hit this test's own process group.
            if pid > 1 && alive(pid) {
                kill9(pid);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// JS literals (`prettylist` outputs) read back into JSON by Node itself, all in one `node` run.
pub fn eval_literals(label: &str, texts: &[String]) -> Vec<Value> {
    if texts.is_empty() {
        return Vec::new();
    }
    let mut node = Command::new("node")
        .args([
            "-e",
            "const texts = JSON.parse(require('fs').readFileSync(0, 'utf8')); \
             process.stdout.write(JSON.stringify(texts.map((s, i) => { \
               try { return eval('(' + s + ')'); } \
               catch (e) { return { not_a_literal: String(e), index: i }; } })))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let input = serde_json::to_vec(texts).unwrap();
    let mut stdin = node.stdin.take().unwrap();
    // Written on a thread: the output may fill its pipe before the input is all read.
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let o = node.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        o.status.success(),
        "{label}: node could not read prettylist: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let values: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    for (v, text) in values.iter().zip(texts) {
        assert!(
            v.get("not_a_literal").is_none(),
            "{label}: prettylist is not a JS literal ({}):\n{text}",
            v["not_a_literal"]
        );
    }
    values
}
