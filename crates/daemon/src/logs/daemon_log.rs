//! The daemon's own log, `pmr.log`: tracing writes each event to stderr (which the CLI opened on
//! `pmr.log` when it started the daemon), offers it to live subscribers, rotates the file by size
//! (the global `max_size`/`retain`/`compress`) and reopens it on `reloadLogs`. Reopening and
//! rotating put the new file on fds 1 and 2 with `dup2`, so panics land there too.

use crate::logs::hub::{Block, Hub, Stream};
use crate::logs::rotate;
use pmr_core::conf::RotateConf;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

struct State {
    path: PathBuf,
    /// Whether fd 2 is `pmr.log` (not when the daemon runs in a terminal).
    owns_stderr: bool,
    conf: RotateConf,
    last_rotation: rotate::Last,
}

/// Process-wide: the daemon's own log is what tracing's global subscriber writes, on the
/// process's fds 1 and 2.
static STATE: Mutex<Option<State>> = Mutex::new(None);
static SIZE: AtomicU64 = AtomicU64::new(0);
static MAX: AtomicU64 = AtomicU64::new(u64::MAX);
static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

fn same_file(fd: i32, path: &std::path::Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    let st = nix::sys::stat::fstat(fd).ok()?;
    (st.st_ino == meta.ino() && st.st_dev == meta.dev()).then_some(meta.len())
}

/// Called once at daemon start, before tracing is set up.
pub fn init(path: PathBuf) {
    let size = same_file(2, &path);
    SIZE.store(size.unwrap_or(0), Ordering::Relaxed);
    *STATE.lock().unwrap() = Some(State {
        path,
        owns_stderr: size.is_some(),
        conf: RotateConf::default(),
        last_rotation: None,
    });
}

/// Live subscribers get the daemon's lines from now on.
pub fn set_hub(hub: Arc<Hub>) {
    let _ = HUB.set(hub);
}

pub fn configure(conf: &RotateConf) {
    if let Some(s) = STATE.lock().unwrap().as_mut() {
        s.conf = own_conf(conf, &s.path);
        if s.owns_stderr {
            MAX.store(s.conf.max_size.unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }
}

/// The settings the daemon's log at `path` rotates with. The real pm2-logrotate rotates
/// `$PM2_HOME/pm2.log` (the daemon's log as `pm2`) and no other: as `pmr`, `pmr.log` is no file
/// of its, so the built-in rotation keeps it, with its defaults, rather than letting it grow.
fn own_conf(conf: &RotateConf, path: &std::path::Path) -> RotateConf {
    if conf.by_module && path.file_name().is_none_or(|n| n != "pm2.log") {
        RotateConf::default()
    } else {
        conf.clone()
    }
}

/// Point fds 1 and 2 at a fresh open of `pmr.log` (after an external rename, or ours).
fn reopen_locked(s: &mut State) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.path)?;
    nix::unistd::dup2(f.as_raw_fd(), 1)?;
    nix::unistd::dup2(f.as_raw_fd(), 2)?;
    SIZE.store(
        f.metadata().map(|m| m.len()).unwrap_or(0),
        Ordering::Relaxed,
    );
    Ok(())
}

/// `reloadLogs`: reopen `pmr.log` (if the daemon's stderr is it).
pub fn reopen() {
    let mut g = STATE.lock().unwrap();
    if let Some(s) = g.as_mut().filter(|s| s.owns_stderr) {
        if let Err(e) = reopen_locked(s) {
            drop(g);
            tracing::error!("cannot reopen the daemon log: {e}");
        }
    }
}

fn rotate_if_due() {
    let mut g = STATE.lock().unwrap();
    let Some(s) = g.as_mut() else { return };
    if !s.owns_stderr || SIZE.load(Ordering::Relaxed) < MAX.load(Ordering::Relaxed) {
        return;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let target = rotate::rotated_name(&s.path, now, &mut s.last_rotation);
    let res = std::fs::rename(&s.path, &target).and_then(|_| reopen_locked(s));
    match res {
        Ok(()) => {
            let job = rotate::Job {
                live: s.path.clone(),
                rotated: target,
                compress: s.conf.compress,
                retain: s.conf.retain,
            };
            drop(g);
            crate::logs::HOUSEKEEPER.submit(job);
        }
        Err(e) => {
            // Do not try again on every line.
            MAX.store(u64::MAX, Ordering::Relaxed);
            drop(g);
            eprintln!("cannot rotate the daemon log: {e}");
        }
    }
}

/// tracing's writer for the daemon.
#[derive(Clone, Copy, Default)]
pub struct DaemonLog;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DaemonLog {
    type Writer = DaemonLog;
    fn make_writer(&'a self) -> DaemonLog {
        DaemonLog
    }
}

impl Write for DaemonLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing hands over one whole formatted event per call.
        std::io::stderr().write_all(buf)?;
        if SIZE.fetch_add(buf.len() as u64, Ordering::Relaxed) + buf.len() as u64
            >= MAX.load(Ordering::Relaxed)
        {
            rotate_if_due();
        }
        if let Some(hub) = HUB.get().filter(|h| h.active()) {
            let mut lines = buf.to_vec();
            if !lines.ends_with(b"\n") {
                lines.push(b'\n');
            }
            hub.publish(Block {
                id: None,
                name: "PMR".into(),
                stream: Stream::Daemon,
                time: chrono::Utc::now().timestamp_millis(),
                lines: Arc::new(lines),
            });
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn pm2_logrotate_rotates_pm2_log_only() {
        let by_module = RotateConf {
            max_size: None,
            by_module: true,
            ..RotateConf::default()
        };
        let c = own_conf(&by_module, Path::new("/h/.pm2/pm2.log"));
        assert_eq!((c.max_size, c.by_module), (None, true));
        let c = own_conf(&by_module, Path::new("/h/.pmr/pmr.log"));
        assert_eq!(c.max_size, Some(pmr_core::conf::DEFAULT_MAX_SIZE));
        let mine = RotateConf {
            max_size: Some(1024),
            ..RotateConf::default()
        };
        assert_eq!(
            own_conf(&mine, Path::new("/h/.pmr/pmr.log")).max_size,
            Some(1024)
        );
    }
}
