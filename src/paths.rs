//! The `$PMR_HOME` layout (DESIGN §1) and PM2's log/pid file naming.

use std::path::{Path, PathBuf};

/// A log path that means "discard": `/dev/null`, or PM2's `NULL`. Such paths are neither
/// opened, made absolute nor flushed.
pub fn is_null_device(path: &str) -> bool {
    path == "/dev/null" || path == "NULL"
}

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `$PMR_HOME`, else `~/.pmr`.
    pub fn from_env() -> Home {
        let root = match std::env::var_os("PMR_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => {
                let home = std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/etc"));
                home.join(".pmr")
            }
        };
        // Absolute, so that a daemon started from another cwd agrees with the CLI.
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir().unwrap_or_default().join(root)
        };
        Home { root }
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("rpc.sock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("pmr.pid")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("pmr.log")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn pids_dir(&self) -> PathBuf {
        self.root.join("pids")
    }
    pub fn dump_file(&self) -> PathBuf {
        self.root.join("dump.json")
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
}
