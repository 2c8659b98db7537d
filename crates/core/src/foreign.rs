//! Telling a real PM2 daemon from pmr's own. As `pm2`, pmr uses PM2's home: `pm2.pid` and
//! `rpc.sock` there may belong to a live PM2 daemon, whose socket speaks another protocol and
//! whose apps pmr must not fight for ports. So before connecting or starting a daemon, pmr reads
//! the pid file: a live process there that is not a pmr daemon is a foreign daemon, and pmr
//! refuses to go on.
//!
//! A pmr daemon is recognised by `/proc/<pid>/exe` (this very binary, also after an upgrade
//! replaced the file: " (deleted)") or by its command line, `pmr daemon` / `pm2 daemon`
//! (another pmr build). PM2's daemon is node (or bun) with the title
//! `PM2 vX: God Daemon (<home>)`; anything else alive is foreign too: a recycled pid in a stale
//! pid file gets a refusal that says to delete the file.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Foreign {
    pub pid: u32,
    /// What the process is, for the message: its title or command line.
    pub what: String,
}

/// The foreign daemon of `home`, checked as `pm2` only: pmr's own home never holds one, and a
/// stale `pmr.pid` whose pid was reused must not stop pmr.
pub fn daemon_of(home: &crate::paths::Home) -> Option<Foreign> {
    if crate::personality::current() != crate::personality::Personality::Pm2 {
        return None;
    }
    // PM2's daemon always has its socket; without one it cannot be reached or fought with.
    if std::fs::symlink_metadata(home.socket()).is_err() {
        return None;
    }
    daemon_in(&home.pid_file())
}

/// The live process of `pid_file` when it is not a pmr daemon.
pub fn daemon_in(pid_file: &Path) -> Option<Foreign> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if pid == 0 || pid == std::process::id() || !crate::procfs::alive(pid) {
        return None;
    }
    let argv = cmdline(pid);
    if is_pmr_daemon(&exe(pid), &argv, std::env::current_exe().ok().as_deref()) {
        return None;
    }
    Some(Foreign {
        pid,
        what: if argv.is_empty() {
            "unknown process".into()
        } else {
            argv.join(" ").trim().to_string()
        },
    })
}

fn exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_pmr_daemon(exe: &Option<PathBuf>, argv: &[String], me: Option<&Path>) -> bool {
    let same_binary = match (exe, me) {
        (Some(e), Some(me)) => {
            let e = e.to_string_lossy();
            let e = e.strip_suffix(" (deleted)").unwrap_or(&e);
            Path::new(e) == me
        }
        _ => false,
    };
    let named = argv.len() == 2
        && argv[1] == "daemon"
        && matches!(
            Path::new(&argv[0]).file_name().and_then(|n| n.to_str()),
            Some("pmr" | "pm2")
        );
    same_binary || named
}

/// The refusal: names the pid and how to stop PM2.
pub fn refusal(home: &crate::paths::Home, f: &Foreign) -> String {
    format!(
        "a PM2 daemon is running in {} (pid {}: {}); stop it with PM2 itself (`pm2 kill` with the real pm2, e.g. `npx pm2 kill`), then retry. If pid {} is not PM2, delete {}",
        home.root.display(),
        f.pid,
        f.what,
        f.pid,
        home.pid_file().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pmr_daemons_are_recognised() {
        let me = Path::new("/usr/bin/pmr");
        assert!(is_pmr_daemon(
            &Some("/usr/bin/pmr".into()),
            &v(&["pm2", "daemon"]),
            Some(me)
        ));
        assert!(is_pmr_daemon(
            &Some("/usr/bin/pmr (deleted)".into()),
            &v(&[]),
            Some(me)
        ));
        assert!(is_pmr_daemon(&None, &v(&["/opt/pmr", "daemon"]), Some(me)));
        // PM2's God daemon (title set by node) and anything else.
        assert!(!is_pmr_daemon(
            &Some("/usr/bin/node".into()),
            &v(&["PM2 v7.0.4: God Daemon (/root/.pm2)"]),
            Some(me)
        ));
        assert!(!is_pmr_daemon(
            &Some("/usr/bin/node".into()),
            &v(&["node", "-e", "x"]),
            Some(me)
        ));
        assert!(!is_pmr_daemon(&None, &v(&["node", "daemon"]), Some(me)));
    }

    #[test]
    fn a_live_stranger_in_the_pid_file_is_foreign() {
        let dir = std::env::temp_dir().join(format!("pmr-foreign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pm2.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&file, child.id().to_string()).unwrap();
        // Right after exec the kernel may not have set the new argv yet (an empty cmdline):
        // wait for it, as a real pid file is read long after its process started.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cmdline(child.id()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let f = daemon_in(&file).expect("sleep is not pmr");
        assert_eq!(f.pid, child.id());
        assert!(f.what.starts_with("sleep"), "{}", f.what);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(daemon_in(&file), None, "a dead pid is stale, not foreign");
        std::fs::write(&file, std::process::id().to_string()).unwrap();
        assert_eq!(daemon_in(&file), None, "ourselves");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
