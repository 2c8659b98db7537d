//! The `$PMR_HOME` layout (docs/ARCHITECTURE.md, "Files on disk"), with PM2's path overrides, and
//! PM2's log/pid file naming.

use std::path::{Path, PathBuf};

/// A log path that means "discard": `/dev/null`, or PM2's `NULL`. Such paths are neither
/// opened, made absolute nor flushed.
pub fn is_null_device(path: &str) -> bool {
    path == "/dev/null" || path == "NULL"
}

/// Where the daemon keeps its files: the home, with PM2's `paths.js` overrides applied
/// (`PM2_PID_FILE_PATH`, `PM2_DEFAULT_LOG_PATH`, ... and their `PMR_` twins; see `knobs`).
/// The file names follow the personality: `pmr.pid`/`pmr.log`/`dump.json`, or PM2's
/// `pm2.pid`/`pm2.log`/`dump.pm2` when run as `pm2`.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
    socket: PathBuf,
    /// PM2's event bus (`pm2/bus.rs` in the daemon).
    pub_socket: PathBuf,
    pid_file: PathBuf,
    daemon_log: PathBuf,
    logs_dir: PathBuf,
    pids_dir: PathBuf,
    dump_file: PathBuf,
}

impl Home {
    /// `$PMR_HOME`, else `~/.pmr` (as `pm2`: `$PM2_HOME`, else `~/.pm2`), and the path knobs.
    pub fn from_env() -> Home {
        let get = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
        let p = crate::personality::current();
        // Absolute, so that a daemon started from another cwd agrees with the CLI.
        let cwd = std::env::current_dir().unwrap_or_default();
        let root = crate::knobs::home_root_from(&get, p, &cwd);
        let mut home = Home::named(root, p);
        for (suffix, path) in crate::knobs::path_overrides_from(&get, p, &cwd) {
            *home.slot(suffix) = path;
        }
        home
    }

    /// The default layout of `root` for personality `p`, without overrides.
    pub fn named(root: PathBuf, p: crate::personality::Personality) -> Home {
        Home {
            socket: root.join("rpc.sock"),
            pub_socket: root.join("pub.sock"),
            pid_file: root.join(p.pid_file_name()),
            daemon_log: root.join(p.log_file_name()),
            logs_dir: root.join("logs"),
            pids_dir: root.join("pids"),
            dump_file: root.join(p.dump_file_name()),
            root,
        }
    }

    /// The path a knob of `knobs::PATH_KNOBS` overrides.
    fn slot(&mut self, suffix: &str) -> &mut PathBuf {
        match suffix {
            "PID_FILE_PATH" => &mut self.pid_file,
            "LOG_FILE_PATH" => &mut self.daemon_log,
            "DEFAULT_LOG_PATH" => &mut self.logs_dir,
            "DEFAULT_PID_PATH" => &mut self.pids_dir,
            "DUMP_FILE_PATH" => &mut self.dump_file,
            "DAEMON_RPC_PORT" => &mut self.socket,
            "DAEMON_PUB_PORT" => &mut self.pub_socket,
            other => unreachable!("path knob {other} has no file"),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.socket.clone()
    }
    pub fn pub_socket(&self) -> PathBuf {
        self.pub_socket.clone()
    }
    pub fn pid_file(&self) -> PathBuf {
        self.pid_file.clone()
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.daemon_log.clone()
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.logs_dir.clone()
    }
    pub fn pids_dir(&self) -> PathBuf {
        self.pids_dir.clone()
    }
    pub fn dump_file(&self) -> PathBuf {
        self.dump_file.clone()
    }
    /// The module settings: PM2's `module_conf.json`, pmr's `conf.json` (both personalities).
    pub fn conf_file(&self) -> PathBuf {
        self.root.join("conf.json")
    }
    /// Where `pmr install` puts PM2 modules, one npm prefix each (`modules/<name>`), as PM2.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("modules")
    }
}

/// PM2's file-name sanitising: anything but letters, digits, `.`, `-` and `_` becomes `-`.
pub fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Insert `-<id>` before the extension when logs are not merged (`web-out.log` → `web-out-1.log`).
/// Unlike PM2 we do not strip digits a user's name or path already ends with.
pub fn with_id_suffix(path: &str, id: u32) -> String {
    let p = Path::new(path);
    match (p.file_stem(), p.extension()) {
        (Some(stem), Some(ext)) => {
            let file = format!(
                "{}-{}.{}",
                stem.to_string_lossy(),
                id,
                ext.to_string_lossy()
            );
            p.with_file_name(file).to_string_lossy().into_owned()
        }
        _ => format!("{path}-{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming() {
        assert_eq!(sanitize_name("my app/1"), "my-app-1");
        assert_eq!(
            with_id_suffix("/h/logs/web-out.log", 2),
            "/h/logs/web-out-2.log"
        );
        assert_eq!(with_id_suffix("/h/logs/out", 2), "/h/logs/out-2");
    }

    #[test]
    fn personality_names() {
        use crate::personality::Personality;
        let h = Home::named(PathBuf::from("/h"), Personality::Pm2);
        assert_eq!(h.pid_file(), PathBuf::from("/h/pm2.pid"));
        assert_eq!(h.daemon_log(), PathBuf::from("/h/pm2.log"));
        assert_eq!(h.dump_file(), PathBuf::from("/h/dump.pm2"));
        assert_eq!(h.socket(), PathBuf::from("/h/rpc.sock"));
        let h = Home::named(PathBuf::from("/h"), Personality::Pmr);
        assert_eq!(h.pid_file(), PathBuf::from("/h/pmr.pid"));
        assert_eq!(h.daemon_log(), PathBuf::from("/h/pmr.log"));
        assert_eq!(h.dump_file(), PathBuf::from("/h/dump.json"));
    }
}
