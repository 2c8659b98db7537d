//! The daemon's process table on disk (`$PMR_HOME/state.json`), so that a daemon that dies
//! (SIGKILL, OOM killer, panic) is replaced by one that knows what ran (see `recover.rs`).
//!
//! Not the user's dump (`save`/`resurrect`): this file follows every change of the table and is
//! removed by a clean shutdown (`pmr kill`). Writes are crash-safe (temp file, fsync, rename,
//! fsync of the directory) and happen on one writer thread that always writes the latest
//! state: a change only sets a flag (no I/O, no allocation on the hot path), and a thousand
//! changes during one write cost one more write, not a thousand.

use pmr_core::protocol::Status;
use pmr_core::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// Bumped when the format changes in a way an older reader must not guess at.
pub const FORMAT: u32 = 1;

/// How often a failed write is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What a restored instance should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wanted {
    Online,
    Stopped,
    Errored,
}

impl Wanted {
    pub fn of(status: Status) -> Wanted {
        match status {
            Status::Launching | Status::Online | Status::WaitingRestart => Wanted::Online,
            // A stop in progress is a stop (the stop half of a restart is recorded as online
            // by the snapshot, see `Shared::restarting`).
            Status::Stopping | Status::Stopped => Wanted::Stopped,
            Status::Errored => Wanted::Errored,
        }
    }
}

/// One instance of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: u32,
    pub instance: u32,
    pub wanted: Wanted,
    pub restart_time: u32,
    pub unstable_restarts: u32,
    pub created_at: i64,
    /// The instance's process when the table was written (0: none); informational, the
    /// processes to stop are in [`Table::processes`].
    pub pid: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// It was waiting out a restart delay: its next start is a restart (counted in `↺`).
    #[serde(default)]
    pub restart_due: bool,
    /// Shared with the instance: a snapshot copies no spec.
    #[serde(serialize_with = "ser_spec", deserialize_with = "de_spec")]
    pub spec: Arc<AppSpec>,
}

fn ser_spec<S: serde::Serializer>(spec: &Arc<AppSpec>, s: S) -> Result<S::Ok, S::Error> {
    spec.as_ref().serialize(s)
}

fn de_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<AppSpec>, D::Error> {
    AppSpec::deserialize(d).map(Arc::new)
}

/// A process the daemon started and had not yet seen exit, including a reload's second
/// process and a retiring worker: every one of them is stopped by the next daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when it was started: a pid reused by another process
    /// has another start time and is never touched.
    pub start_ticks: u64,
    /// The instance it belonged to.
    pub id: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub format: u32,
    /// The daemon that wrote it (pid, start ticks): a process of this home started before it
    /// cannot be one of its children.
    pub daemon_pid: u32,
    pub daemon_start_ticks: u64,
    pub apps: Vec<Record>,
    pub processes: Vec<Proc>,
}

/// The file, next to the daemon's other files.
pub fn path(home: &pmr_core::paths::Home) -> PathBuf {
    home.root.join("state.json")
}

/// What `load` found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start, or the last daemon shut down cleanly.
    Absent,
    Table(Table),
    /// Unreadable: it was moved aside to this path; the daemon starts empty.
    Corrupt {
        reason: String,
        kept: PathBuf,
    },
}

/// Read the table left by the previous daemon. Blocking: called before the runtime starts.
pub fn load(path: &Path) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Absent,
        Err(e) => return corrupt(path, format!("cannot read it: {e}")),
    };
    match serde_json::from_slice::<Table>(&bytes) {
        Ok(t) if t.format == FORMAT => Loaded::Table(t),
        Ok(t) => corrupt(
            path,
            format!("format {} (this pmr reads format {FORMAT})", t.format),
        ),
        Err(e) => corrupt(path, format!("not a process table: {e}")),
    }
}

fn corrupt(path: &Path, reason: String) -> Loaded {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let kept = PathBuf::from(format!("{}.bad-{stamp}", path.display()));
    match std::fs::rename(path, &kept) {
        Ok(()) => Loaded::Corrupt { reason, kept },
        // Cannot move it: the writer will replace it; say so instead of a path that is not there.
        Err(e) => Loaded::Corrupt {
            reason: format!("{reason} (and it could not be kept aside: {e})"),
            kept: path.to_path_buf(),
        },
    }
}

/// Write `bytes` to `path` so that a crash at any point leaves the old or the new file, never
/// a torn one: temp file in the same directory, fsync, rename, fsync of the directory. 0600:
/// the table holds every app's environment.
pub fn write_atomic(path: &Path, table: &Table) -> std::io::Result<()> {
    // Streamed: no copy of the whole table in memory.
    pmr_core::atomic_file::replace_private(path, |w| Ok(serde_json::to_writer(w, table)?))
}

#[derive(Default)]
struct WriterState {
    /// Something changed since the writer last took a snapshot.
    dirty: bool,
    /// A write is in progress (`clear` waits for it).
    writing: bool,
    /// Set by `clear`: no more writes.
    closed: bool,
}

/// The writer's side of the table: a dirty flag, the processes not yet seen exit, and the
/// thread that writes. Instances call [`touch`](Self::touch) after a change.
pub struct TableWriter {
    path: PathBuf,
    state: Mutex<WriterState>,
    wake: Condvar,
    /// Live children by pid (start ticks, instance id).
    children: Mutex<BTreeMap<u32, (u64, u32)>>,
}

impl TableWriter {
    pub fn new(path: PathBuf) -> TableWriter {
        TableWriter {
            path,
            state: Mutex::default(),
            wake: Condvar::new(),
            children: Mutex::default(),
        }
    }

    /// Something in the table changed: the writer will write the state as it is then.
    pub fn touch(&self) {
        let mut s = self.state.lock().unwrap();
        if !s.dirty {
            s.dirty = true;
            self.wake.notify_one();
        }
    }

    /// A child was started; the guard forgets it when dropped (once the child was reaped).
    pub fn track(self: &std::sync::Arc<Self>, pid: u32, start_ticks: u64, id: u32) -> Tracked {
        self.children.lock().unwrap().insert(pid, (start_ticks, id));
        self.touch();
        Tracked {
            writer: self.clone(),
            pid,
        }
    }

    pub fn processes(&self) -> Vec<Proc> {
        self.children
            .lock()
            .unwrap()
            .iter()
            .map(|(&pid, &(start_ticks, id))| Proc {
                pid,
                start_ticks,
                id,
            })
            .collect()
    }

    /// Start the writer thread; `snapshot` builds the table as it is now (called on that
    /// thread, never on the runtime's).
    pub fn start(
        self: &std::sync::Arc<Self>,
        snapshot: impl Fn() -> Option<Table> + Send + 'static,
    ) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("pmr-table".into())
            .stack_size(256 * 1024)
            .spawn(move || me.write_loop(snapshot))
            .map(|_| ())
    }

    fn write_loop(&self, snapshot: impl Fn() -> Option<Table>) {
        // A hash of the last table written, not a copy of it: the daemon stays small.
        let mut last: Option<u64> = None;
        let mut failing = false;
        loop {
            {
                let mut s = self.state.lock().unwrap();
                while !s.dirty && !s.closed {
                    if failing {
                        // Retried every second until it works, changes or not.
                        let (g, t) = self.wake.wait_timeout(s, RETRY).unwrap();
                        s = g;
                        s.dirty |= t.timed_out();
                    } else {
                        s = self.wake.wait(s).unwrap();
                    }
                }
                if s.closed {
                    return;
                }
                s.dirty = false;
                s.writing = true;
            }
            if let Some(table) = snapshot() {
                let hash = hash_of(&table);
                if hash.is_none() || hash != last {
                    match write_atomic(&self.path, &table) {
                        Ok(()) => {
                            last = hash;
                            if failing {
                                tracing::info!("process table written again");
                                failing = false;
                            }
                        }
                        // Said once, not at every attempt.
                        Err(e) if !failing => {
                            failing = true;
                            tracing::error!(
                                "cannot write the process table {}: {e}; a daemon crash now would forget the apps",
                                self.path.display()
                            );
                        }
                        Err(_) => {}
                    }
                }
            }
            self.state.lock().unwrap().writing = false;
            self.wake.notify_all();
        }
    }

    /// Stop writing, once a write in progress is done; the file stays as it is (`update`
    /// writes its own last table). Blocking.
    pub fn close(&self) {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        self.wake.notify_all();
        while s.writing {
            s = self.wake.wait(s).unwrap();
        }
    }

    /// Clean shutdown: stop writing, wait for a write in progress, remove the file (a daemon
    /// started later starts empty, as PM2's does after `kill`). Blocking.
    pub fn clear(&self) {
        self.close();
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!("cannot remove {}: {e}", self.path.display()),
        }
    }
}

/// A hash of the table's JSON, computed as it is serialized (nothing buffered).
fn hash_of(table: &Table) -> Option<u64> {
    use std::hash::Hasher;
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(Default::default());
    serde_json::to_writer(&mut w, table).ok()?;
    Some(w.0.finish())
}

/// A child in the table until it has been reaped.
pub struct Tracked {
    writer: std::sync::Arc<TableWriter>,
    pid: u32,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.writer.children.lock().unwrap().remove(&self.pid);
        self.writer.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pmr-table-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn table() -> Table {
        Table {
            format: FORMAT,
            daemon_pid: 1,
            daemon_start_ticks: 2,
            apps: vec![],
            processes: vec![Proc {
                pid: 10,
                start_ticks: 20,
                id: 0,
            }],
        }
    }

    #[test]
    fn round_trip_and_absent() {
        let d = dir();
        let p = d.join("state.json");
        assert!(matches!(load(&p), Loaded::Absent));
        write_atomic(&p, &table()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        match load(&p) {
            Loaded::Table(t) => assert_eq!(t, table()),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn corrupt_files_are_kept_aside() {
        let d = dir();
        let p = d.join("state.json");
        std::fs::write(&p, b"{\"format\": 1, \"apps\": [tru").unwrap();
        match load(&p) {
            Loaded::Corrupt { kept, .. } => {
                assert!(!p.exists());
                assert!(kept.exists(), "{}", kept.display());
            }
            other => panic!("{other:?}"),
        }
        let mut t = serde_json::to_value(table()).unwrap();
        t["format"] = 99.into();
        std::fs::write(&p, t.to_string()).unwrap();
        assert!(matches!(load(&p), Loaded::Corrupt { reason, .. } if reason.contains("format 99")));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_failed_write_is_retried_without_a_new_change() {
        let d = dir();
        // The directory is missing: every write fails until it is created.
        let p = d.join("later").join("state.json");
        let w = std::sync::Arc::new(TableWriter::new(p.clone()));
        let tried = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let t = tried.clone();
        w.start(move || {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Some(table())
        })
        .unwrap();
        w.touch();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while tried.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        while !p.exists() {
            assert!(std::time::Instant::now() < deadline, "not retried");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        w.clear();
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_writer_coalesces_and_clear_removes() {
        let d = dir();
        let p = d.join("state.json");
        let w = std::sync::Arc::new(TableWriter::new(p.clone()));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = calls.clone();
        w.start(move || {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // A slow snapshot: the touches below pile up behind it.
            std::thread::sleep(std::time::Duration::from_millis(20));
            Some(table())
        })
        .unwrap();
        for _ in 0..1000 {
            w.touch();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !p.exists() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let n = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < 10, "{n} snapshots for 1000 touches");
        w.clear();
        assert!(!p.exists());
        std::fs::remove_dir_all(d).unwrap();
    }
}
