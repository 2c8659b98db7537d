//! `pmr report`: a diagnostic dump to paste into an issue, in the sections of PM2's
//! `pm2 report`: the daemon, the CLI, the system, the process list, the last lines of pmr.log.
//!
//! Unlike PM2 it never starts the daemon: the report is about the state the user is asking
//! about, and a daemon that is down (and the end of its log saying why) is part of it.

use super::Out;
use crate::client::Client;
use anyhow::Result;
use pmr_core::paths::Home;
use pmr_core::protocol::{ProcInfo, Request, Response};
use pmr_render::{self, style};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How many lines of pmr.log the report ends with (PM2: 20).
const LOG_LINES: usize = 20;
/// A daemon that takes longer than this to answer is reported as not answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

const RULE: &str =
    "===============================================================================";

/// What the report says about the daemon.
enum Daemon {
    Running {
        version: String,
        pid: u32,
        uptime_ms: Option<i64>,
        /// `Err`: why the list could not be read.
        procs: Result<Vec<ProcInfo>, String>,
    },
    /// Something listens but does not answer as a pmr daemon.
    NotAnswering(String),
    NotRunning {
        /// The pid file names a process that is gone.
        stale_pid: Option<u32>,
    },
}

pub fn report(home: &Home, out: &Out) -> Result<i32> {
    let daemon = probe(home);
    let text = render(home, &daemon, out.color);
    super::show::print(&text)?;
    Ok(0)
}

fn probe(home: &Home) -> Daemon {
    let Some(mut client) = Client::connect_existing(home) else {
        let stale_pid = std::fs::read_to_string(home.pid_file())
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return Daemon::NotRunning { stale_pid };
    };
    client.set_timeout(Some(ANSWER_TIMEOUT));
    let (version, pid) = match client.call(&Request::Ping) {
        Ok(Response::Pong { version, pid, .. }) => (version, pid),
        Ok(other) => return Daemon::NotAnswering(format!("unexpected reply {other:?}")),
        Err(e) => return Daemon::NotAnswering(format!("{e:#}")),
    };
    let procs = match client.call(&Request::List) {
        Ok(Response::List { procs }) => Ok(procs),
        Ok(Response::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(format!("{e:#}")),
    };
    Daemon::Running {
        version,
        pid,
        uptime_ms: process_uptime_ms(pid),
        procs,
    }
}

fn render(home: &Home, daemon: &Daemon, color: bool) -> String {
    let mut r = Report {
        s: String::new(),
        color,
    };
    r.s.push_str("\n```\n");
    r.title("pmr report", 79);
    r.field(
        "Date",
        &chrono::Local::now()
            .format("%a %b %d %Y %H:%M:%S GMT%z")
            .to_string(),
    );
    r.section("Daemon");
    r.daemon(home, daemon);
    r.section("CLI");
    r.cli();
    r.section("System info");
    r.system();
    r.section("pmr list");
    match daemon {
        Daemon::Running { procs: Ok(p), .. } => {
            r.s.push_str(&pmr_render::table::ls(p, None, color))
        }
        Daemon::Running { procs: Err(e), .. } => r.line(&format!("cannot read the list: {e}")),
        _ => r.line("none: the daemon is not running"),
    }
    r.section("Daemon logs");
    r.log_tail(&home.daemon_log());
    r.s.push_str("```\n\n");
    r.s.push_str("Paste the report above (between the ``` lines) into your issue.\n");
    r.s
}

struct Report {
    s: String,
    color: bool,
}

impl Report {
    fn line(&mut self, l: &str) {
        self.s.push_str(l);
        self.s.push('\n');
    }

    fn title(&mut self, name: &str, width: usize) {
        let head = format!("--- {name} ");
        let pad = width.saturating_sub(head.chars().count());
        let name = style::paint(self.color, &[style::BOLD, style::BLUE], name);
        self.line(&format!("--- {name} {}", "-".repeat(pad)));
    }

    fn section(&mut self, name: &str) {
        self.line(RULE);
        self.title(name, 60);
    }

    /// PM2's `key                  : value` layout.
    fn field(&mut self, key: &str, value: &str) {
        self.line(&format!("{key:<20} : {value}"));
    }

    fn daemon(&mut self, home: &Home, d: &Daemon) {
        match d {
            Daemon::Running {
                version,
                pid,
                uptime_ms,
                procs,
            } => {
                self.field("status", "running");
                let mut v = version.clone();
                if v != pmr_core::protocol::VERSION {
                    v.push_str(" (not this CLI's version: `pmr update` replaces it)");
                }
                self.field("pmr daemon version", &v);
                self.field("pid", &pid.to_string());
                let up = uptime_ms.map_or("unknown".into(), pmr_render::human_duration);
                self.field("uptime", &up);
                self.field("home", &home.root.to_string_lossy());
                if let Ok(p) = procs {
                    let (apps, summary) = summary(p);
                    self.field("apps", &apps.to_string());
                    self.field("processes", &summary);
                }
            }
            Daemon::NotAnswering(why) => {
                self.field(
                    "status",
                    &format!("not answering on {}: {why}", home.socket().display()),
                );
                self.field("home", &home.root.to_string_lossy());
            }
            Daemon::NotRunning { stale_pid } => {
                self.field("status", "not running (the report does not start it)");
                let sock = format!("{}: nothing listens", home.socket().display());
                self.field("socket", &sock);
                if let Some(pid) = stale_pid {
                    let alive = pmr_core::procfs::alive(*pid);
                    let what = format!(
                        "{} names pid {pid}, {}",
                        home.pid_file().display(),
                        if alive {
                            "which is alive"
                        } else {
                            "which is gone"
                        }
                    );
                    self.field("pid file", &what);
                }
                self.field("home", &home.root.to_string_lossy());
            }
        }
    }

    fn cli(&mut self) {
        self.field("local pmr", pmr_core::protocol::VERSION);
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        self.field("pmr path", &exe);
        let argv: Vec<String> = std::env::args().collect();
        self.field("argv", &argv.join(" "));
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or("unknown".to_string(), |u| u.name);
        self.field("user", &user);
        self.field("uid", &uid.to_string());
        self.field("gid", &nix::unistd::getgid().to_string());
        let path = std::env::var("PATH").unwrap_or_default();
        match pmr_config::app::which("node", &path) {
            Some(node) => {
                self.field("node version", &node_version(&node));
                self.field("node path", &node.display().to_string());
            }
            None => self.field("node version", "none: no node on PATH"),
        }
    }

    fn system(&mut self) {
        self.field("arch", std::env::consts::ARCH);
        self.field("platform", std::env::consts::OS);
        if let Ok(u) = nix::sys::utsname::uname() {
            let kernel = format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            );
            self.field("kernel", &kernel);
        }
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| os_pretty_name(&t));
        self.field("os", os.as_deref().unwrap_or("unknown"));
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown", |(_, m)| m.trim());
        self.field("cpus", model);
        let n = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.field("cpus nb", &n.to_string());
        let mem = meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        for (key, field) in [("freemem", "MemAvailable"), ("totalmem", "MemTotal")] {
            let v = mem.get(field).map_or("unknown".into(), |b| {
                format!("{b} ({})", pmr_render::human_bytes(*b))
            });
            self.field(key, &v);
        }
        self.field("home", &std::env::var("HOME").unwrap_or_default());
    }

    fn log_tail(&mut self, path: &Path) {
        match pmr_core::tail::tail_lines(path, LOG_LINES) {
            Ok(lines) => {
                let head = format!("{} last {LOG_LINES} lines:", path.display());
                self.line(&style::paint(self.color, &[style::GREY], &head));
                for l in lines {
                    self.line(&l);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.line(&format!(
                "{}: no such file (no daemon has run with this home)",
                path.display()
            )),
            Err(e) => self.line(&format!("{}: {e}", path.display())),
        }
    }
}

/// Number of apps, and the processes by status (`3 (2 online, 1 stopped)`).
fn summary(procs: &[ProcInfo]) -> (usize, String) {
    let apps: std::collections::HashSet<&str> =
        procs.iter().map(|p| p.spec.name.as_str()).collect();
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for p in procs {
        *by.entry(p.status.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let s = if parts.is_empty() {
        "0".to_string()
    } else {
        format!("{} ({})", procs.len(), parts.join(", "))
    };
    (apps.len(), s)
}

/// `PRETTY_NAME` of an os-release file.
fn os_pretty_name(text: &str) -> Option<String> {
    let v = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(v.trim().trim_matches('"').to_string())
}

/// `/proc/meminfo` in bytes, by field name.
fn meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb: u64 = v.trim().strip_suffix(" kB")?.trim().parse().ok()?;
            Some((k.to_string(), kb * 1024))
        })
        .collect()
}

/// How long a process has run, from its start time after boot and the system's uptime.
fn process_uptime_ms(pid: u32) -> Option<i64> {
    let start_ticks = pmr_core::procfs::read_stat(pid)?.start_ticks;
    let tck = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let started_ms = start_ticks as f64 * 1000.0 / tck as f64;
    Some((up * 1000.0 - started_ms).max(0.0) as i64)
}

/// `node --version`, waited for at most a few seconds (a broken node must not hang the report).
fn node_version(node: &Path) -> String {
    use std::process::{Command, Stdio};
    let child = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return format!("cannot run it: {e}"),
    };
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return "no answer from `node --version`".into();
            }
        }
    }
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_string(&mut out);
    }
    match out.trim() {
        "" => "unknown (`node --version` printed nothing)".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmr_core::protocol::Status;

    #[test]
    fn reads_os_release_and_meminfo() {
        let os = "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\n";
        assert_eq!(os_pretty_name(os).as_deref(), Some("Ubuntu 24.04.1 LTS"));
        assert_eq!(os_pretty_name("ID=x\n"), None);
        let m = meminfo(
            "MemTotal:       24683124 kB\nMemAvailable:    2048 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(m["MemTotal"], 24683124 * 1024);
        assert_eq!(m["MemAvailable"], 2048 * 1024);
        assert!(!m.contains_key("HugePages_Total"));
    }

    #[test]
    fn summarises_the_list_by_status() {
        use pmr_render::testutil::proc_info;
        let procs = vec![
            proc_info(0, "web", Status::Online),
            proc_info(1, "web", Status::Online),
            proc_info(2, "worker", Status::Stopped),
        ];
        assert_eq!(summary(&procs), (2, "3 (2 online, 1 stopped)".to_string()));
        assert_eq!(summary(&[]), (0, "0".to_string()));
    }

    #[test]
    fn a_report_without_a_daemon_says_so_and_has_every_section() {
        let dir = std::env::temp_dir().join(format!("pmr-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pmr.log"), "first\nlast line\n").unwrap();
        let home = Home::named(dir.clone(), pmr_core::personality::Personality::Pmr);
        let text = render(&home, &Daemon::NotRunning { stale_pid: None }, false);
        for s in [
            "--- pmr report",
            "--- Daemon",
            "--- CLI",
            "--- System info",
            "--- pmr list",
            "--- Daemon logs",
        ] {
            assert!(text.contains(s), "{s} missing from\n{text}");
        }
        assert!(
            text.contains("status               : not running"),
            "{text}"
        );
        assert!(text.contains("last line\n"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
