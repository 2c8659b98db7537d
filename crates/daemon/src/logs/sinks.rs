//! The open log files by path, each a [`Sink`]: its bounded queue and its place in the writer
//! pool, shared by the instances writing that file; the global rotation settings, `reloadLogs`,
//! `flush`, and the lines each file dropped.

use super::daemon_log;
use super::hub::Hub;
use super::pool;
use super::writer::{open_append, Msg, Writer};
use super::SINK_QUEUE;
use pmr_core::conf::{self, RotateConf};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::{mpsc, oneshot};

/// One open log file: its queue and its place in the writer pool.
pub struct Sink {
    pub path: PathBuf,
    /// `None` only while dropping: the pool must see the queue closed after the last wake.
    tx: Option<mpsc::Sender<Msg>>,
    slot: Arc<pool::Slot>,
    /// The app's `log_rotate` block, applied over the global settings on each reload.
    app_rotate: Option<pmr_core::spec::LogRotate>,
    /// Dropping the sender ends the schedule task.
    schedule: Mutex<Option<oneshot::Sender<()>>>,
    /// Lines its writer could not write (shared with it).
    dropped: Arc<AtomicU64>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        // What is still queued gets written, then the pool closes the file.
        drop(self.tx.take());
        self.slot.wake();
    }
}

impl Sink {
    /// Queue a message and wake the pool; false when the writer is gone.
    async fn send(&self, msg: Msg) -> bool {
        let Some(tx) = &self.tx else { return false };
        let sent = tx.send(msg).await.is_ok();
        self.slot.wake();
        sent
    }

    /// Queue bytes of stream `owner` for the file; waits while the queue is full.
    pub async fn write(&self, owner: u32, bytes: Arc<Vec<u8>>) {
        // An error means the writer is gone (daemon shutting down): nothing to do.
        self.send(Msg::Data(owner, bytes)).await;
    }

    pub(super) async fn end_line(&self, owner: u32) {
        self.send(Msg::EndLine(owner)).await;
    }

    async fn request(&self, make: impl FnOnce(oneshot::Sender<()>) -> Msg) {
        let (tx, rx) = oneshot::channel();
        if self.send(make(tx)).await {
            let _ = rx.await;
        }
    }

    /// (Re)start the task that sends `Tick` when the rotation schedule fires.
    fn schedule(self: &Arc<Self>, conf: &RotateConf) {
        let mut slot = self.schedule.lock().unwrap();
        *slot = None; // ends the previous task
        if conf.schedule.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let sink = Arc::downgrade(self);
        let conf = conf.clone();
        rt.spawn(async move {
            loop {
                let now = chrono::Utc::now().timestamp_millis();
                let Some(due) = conf.next_due(now) else {
                    return;
                };
                let wait = std::time::Duration::from_millis((due - now).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut stop_rx => return,
                }
                let Some(sink) = sink.upgrade() else { return };
                if !sink.send(Msg::Tick).await {
                    return;
                }
            }
        });
        *slot = Some(stop_tx);
    }
}

/// The daemon's pumps: how many still read, and `update`'s order to stop.
pub struct Pumps {
    pub(super) live: AtomicUsize,
    pub(super) frozen: tokio::sync::watch::Sender<bool>,
}

impl Default for Pumps {
    fn default() -> Pumps {
        Pumps {
            live: AtomicUsize::new(0),
            frozen: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Pumps {
    /// See [`Sinks::freeze_pumps`].
    pub fn freeze(&self) {
        let _ = self.frozen.send(true);
    }

    /// See [`Sinks::live_pumps`].
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// All open sinks by path (so that instances writing one file share one writer), the live
/// subscribers, the global rotation settings, and the pumps that feed them.
pub struct Sinks {
    open: Mutex<HashMap<PathBuf, Weak<Sink>>>,
    pub hub: Arc<Hub>,
    /// `$PMR_HOME/conf.json` (global rotation settings) and `pmr.log`.
    conf_path: Option<PathBuf>,
    daemon_log: Option<PathBuf>,
    global: RwLock<RotateConf>,
    /// Some file has dropped lines (set by its writer).
    dropped_any: Arc<AtomicBool>,
    pub(super) pumps: Arc<Pumps>,
    /// The next [`Source::owner`](super::Source::owner).
    /// Wraps after 2^32 streams: owners are only compared between the streams writing one
    /// file at the same time, which are never that many starts apart.
    next_owner: AtomicU32,
}

impl Default for Sinks {
    fn default() -> Sinks {
        Sinks {
            open: Mutex::default(),
            hub: Arc::default(),
            conf_path: None,
            daemon_log: None,
            global: RwLock::default(),
            dropped_any: Arc::default(),
            pumps: Arc::default(),
            // 0 is the writer's `CUT_LINE`.
            next_owner: AtomicU32::new(1),
        }
    }
}

impl Sinks {
    /// Reads the global rotation settings from `conf.json` (blocking, small).
    pub fn new(home: &pmr_core::paths::Home) -> Sinks {
        let s = Sinks {
            conf_path: Some(home.root.join("conf.json")),
            daemon_log: Some(home.daemon_log()),
            ..Default::default()
        };
        for w in s.load_conf() {
            tracing::warn!("{w}");
        }
        daemon_log::set_hub(s.hub.clone());
        s
    }

    /// Re-read `conf.json`; returns what was wrong in it.
    fn load_conf(&self) -> Vec<String> {
        let Some(path) = &self.conf_path else {
            return vec![];
        };
        let (conf, mut errors) = match conf::read_conf(path) {
            Ok(m) => RotateConf::global(&m),
            Err(e) => (RotateConf::default(), vec![e]),
        };
        daemon_log::configure(&conf);
        *self.global.write().unwrap() = conf;
        errors.dedup();
        errors
    }

    /// The sink for `path`, opening the file (and creating its directory) if needed.
    /// Blocking: call from `spawn_blocking`.
    pub fn get(
        &self,
        path: &Path,
        app_rotate: Option<&pmr_core::spec::LogRotate>,
    ) -> std::io::Result<Arc<Sink>> {
        let mut open = self.open.lock().unwrap();
        if let Some(sink) = open.get(path).and_then(Weak::upgrade) {
            return Ok(sink);
        }
        let file = open_append(path)?;
        let conf = self.global.read().unwrap().with_app(app_rotate);
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer::new(
            file,
            path,
            conf.clone(),
            dropped.clone(),
            self.dropped_any.clone(),
        );
        let slot = pool::Slot::new(writer, rx)?;
        let sink = Arc::new(Sink {
            path: path.to_path_buf(),
            tx: Some(tx),
            slot,
            app_rotate: app_rotate.cloned(),
            schedule: Mutex::new(None),
            dropped,
        });
        sink.schedule(&conf);
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(path.to_path_buf(), Arc::downgrade(&sink));
        Ok(sink)
    }

    /// Lines dropped so far because `path` could not be written (0 when it is not open).
    pub fn dropped(&self, path: &Path) -> u64 {
        // `list` asks for every file of every app: no lock nor lookup while nothing failed.
        if !self.dropped_any.load(Ordering::Relaxed) {
            return 0;
        }
        let open = self.open.lock().unwrap();
        open.get(path)
            .and_then(Weak::upgrade)
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    fn live(&self) -> Vec<Arc<Sink>> {
        self.open
            .lock()
            .unwrap()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// `reloadLogs` / SIGUSR2: re-read `conf.json`, reopen every open file (and `pmr.log`).
    /// Returns how many files were reopened and what was wrong in `conf.json`.
    pub async fn reload(self: &Arc<Self>) -> (usize, Vec<String>) {
        let me = self.clone();
        let warnings = tokio::task::spawn_blocking(move || {
            daemon_log::reopen();
            me.load_conf()
        })
        .await
        .unwrap_or_default();
        let global = self.global.read().unwrap().clone();
        let sinks = self.live();
        for s in &sinks {
            let conf = global.with_app(s.app_rotate.as_ref());
            s.schedule(&conf);
            s.request(|ack| Msg::Reopen(Box::new((conf, ack)))).await;
        }
        (sinks.len() + 1, warnings)
    }

    /// `flush`: empty these files (through their writer when one is open, so its size and
    /// position stay right). With `daemon_too`, `pmr.log` as well.
    pub async fn flush(&self, paths: Vec<String>, daemon_too: bool) -> Vec<String> {
        let mut done = Vec::new();
        let mut closed = Vec::new();
        let live = self.live();
        for p in paths {
            if pmr_core::paths::is_null_device(&p) || done.contains(&p) {
                continue;
            }
            match live.iter().find(|s| s.path == Path::new(&p)) {
                Some(s) => s.request(Msg::Flush).await,
                None => closed.push(p.clone()),
            }
            done.push(p);
        }
        if daemon_too {
            if let Some(d) = &self.daemon_log {
                closed.push(d.to_string_lossy().into_owned());
                done.push(d.to_string_lossy().into_owned());
            }
        }
        let _ = tokio::task::spawn_blocking(move || {
            for p in closed {
                // Only existing files: flushing never creates one.
                if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                    let _ = f.set_len(0);
                }
            }
        })
        .await;
        done
    }
}

impl Sinks {
    /// A stream's own owner number, never [`super::writer::CUT_LINE`].
    pub(super) fn next_owner(&self) -> u32 {
        match self.next_owner.fetch_add(1, Ordering::Relaxed) {
            super::writer::CUT_LINE => self.next_owner.fetch_add(1, Ordering::Relaxed),
            o => o,
        }
    }

    /// `update`: every pump hands on what it holds (a partial line too, without ending it) and
    /// stops reading; the pipes cross the exec and the next daemon's pumps read on.
    pub fn freeze_pumps(&self) {
        self.pumps.freeze();
    }

    /// Pumps still reading a pipe: the foreground daemon waits for them before it exits, so
    /// the last lines of stopped apps reach its console.
    pub fn live_pumps(&self) -> usize {
        self.pumps.live()
    }

    /// `update`: every open file has written what was queued before this call.
    pub async fn sync_all(&self) {
        for s in self.live() {
            s.request(Msg::Sync).await;
        }
    }
}
