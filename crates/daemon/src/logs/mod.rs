//! The log pipeline: child pipes → whole lines → log files (formatted, rotated) and live
//! subscribers.
//!
//! * [`pump`] reads a pipe (an async task) and cuts what it read at the last newline, so whole
//!   lines move on whole. A partial line (no newline yet) is held only while the pipe keeps
//!   talking: once it has been quiet for [`QUIET`] (or the partial line is [`HOLD_MAX`] old),
//!   it is written out as it is, so `process.stderr.write('x')` shows up at once, as with PM2.
//!   A partial line left by a large read is a write cut by the pipe: it waits for the rest up to
//!   [`BUSY_HOLD`] (and so does one left by a small read within `BUSY_HOLD` of a large one:
//!   the rest of the same write), so that bursts on a loaded machine keep their lines whole.
//!   At EOF, a line left open is completed with a newline.
//! * What the rest of such a line looks like when it comes, as PM2 writes it: in a raw file the
//!   bytes continue the same line (`x` then `y\n` reads `xy`); with a date prefix or JSON each
//!   piece is a line of its own (`<date>: x`, `<date>: y`), since a prefix or a JSON record
//!   cannot be left open; `pmr logs` shows each piece as a line. In a file written by several
//!   streams (`merge_logs`, the combined file), the writer ends an open line with a newline
//!   before another stream's lines, so lines of two streams never share a line.
//! * Each log file has one [`Sink`]: a bounded queue and a [`Writer`], run by the threads of
//!   the writer [`pool`] (a few for all files), one thread at a time per file. It is the only
//!   writer of its file, so lines of instances sharing a file (`merge_logs`) never interleave,
//!   and file I/O never runs on the async runtime. What is queued is written with one `writev`
//!   per batch. The writer also rotates (rename + reopen), reopens on `reloadLogs` and
//!   truncates on `flush`.
//! * A busy pipe is read in batches: the pump naps between reads, out of the epoll set, and the
//!   pipe is grown ([`pace`]).
//! * A full queue makes the pump wait, which fills the app's pipe and slows the app:
//!   backpressure, never loss while the file can be written. A failed write (disk full) drops
//!   the rest of its batch at once and counts the lines ([`Sinks::dropped`], shown by
//!   `describe`): waiting for space on a pool thread held up every other file. Each later batch
//!   is tried again, so writing resumes by itself; both changes are said once in `pmr.log`.
//! * Live subscribers ([`hub`]) are offered the same blocks without waiting.
//!
//! Memory bound per app stream: one read buffer of ≤ [`CHUNK`] bytes (2 × CHUNK while a
//! line longer than a pipe read is completed); per file: [`SINK_QUEUE`] blocks of ≤ CHUNK bytes
//! (+ the date prefix or JSON of each line when the app asks for it).

pub mod daemon_log;
pub mod format;
pub mod hub;
mod pace;
mod pool;
pub mod rotate;
mod spare;

use format::{JsonMeta, LineFormat};
use hub::{Block, Hub, Stream};
use pmr_core::conf::{self, RotateConf};
use pmr_core::spec::AppSpec;
use rotate::Housekeeper;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Largest piece read from a pipe at once; also the longest line kept whole.
pub const CHUNK: usize = 64 * 1024;
/// The read buffer of a stream that is not busy (most of them, most of the time), taken when
/// there is something to read.
pub const QUIET_BUF: usize = 1024;
/// Blocks queued per file before readers wait.
pub const SINK_QUEUE: usize = 16;
/// How long a pipe must stay quiet before a partial line (no newline yet) is written out.
/// Short enough to look immediate; long enough that a line written in several `write()`s
/// by the app (or cut by a pipe read) is almost always kept whole.
pub const QUIET: Duration = Duration::from_millis(5);
/// The longest a partial line is held while bytes keep trickling in without a newline
/// (a progress bar printing dots).
pub const HOLD_MAX: Duration = Duration::from_millis(100);
/// How long a partial line left by a large read is held. A `write()` larger than the pipe
/// reaches us in pieces cut anywhere, with the app asleep in `write()` until we read; on a busy
/// machine it may not run again for a while. Writes of at most `PIPE_BUF` bytes are atomic, so
/// a small read is the app's own choice of where to stop; a large one is not.
pub const BUSY_HOLD: Duration = Duration::from_secs(1);
/// Linux's `PIPE_BUF`.
const PIPE_BUF: usize = 4096;

pub(crate) static HOUSEKEEPER: Housekeeper = Housekeeper::new();
/// Some file of the daemon has dropped lines.
static DROPPED_ANY: AtomicBool = AtomicBool::new(false);

enum Msg {
    /// Bytes from one stream (its [`Source::owner`]): whole lines, the last possibly partial.
    Data(u64, Arc<Vec<u8>>),
    /// The stream ended: complete its line if it is still open.
    EndLine(u64),
    /// Reopen the path (after an external rotation) with these settings. Boxed: each file's
    /// queue allocates room for 32 messages at once, the size of the largest.
    Reopen(Box<RotateConf>, oneshot::Sender<()>),
    /// Truncate the file.
    Flush(oneshot::Sender<()>),
    /// The rotation schedule fired: rotate if the file is not empty.
    Tick,
    /// Write out what came before, then answer (`update`: nothing is left in memory).
    Sync(oneshot::Sender<()>),
}

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
    pub async fn write(&self, owner: u64, bytes: Arc<Vec<u8>>) {
        // An error means the writer is gone (daemon shutting down): nothing to do.
        self.send(Msg::Data(owner, bytes)).await;
    }

    async fn end_line(&self, owner: u64) {
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

/// All open sinks by path (so that instances writing one file share one writer), the live
/// subscribers, and the global rotation settings.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<PathBuf, Weak<Sink>>>,
    pub hub: Arc<Hub>,
    /// `$PMR_HOME/conf.json` (global rotation settings) and `pmr.log`.
    conf_path: Option<PathBuf>,
    daemon_log: Option<PathBuf>,
    global: RwLock<RotateConf>,
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
        let writer = Writer::new(file, path, conf.clone(), dropped.clone());
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
        if !DROPPED_ANY.load(Ordering::Relaxed) {
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

    /// Open the sinks of one instance and describe its two streams, ready for [`pump`].
    /// Blocking: call from `spawn_blocking`. The error names the file that cannot be opened.
    pub fn open_app(
        &self,
        spec: &AppSpec,
        id: u32,
        out: &str,
        err: &str,
        combined: Option<&str>,
    ) -> Result<(Source, Source), String> {
        let rotate = spec.log_rotate.as_ref();
        let open = |p: &str| -> Result<Option<Arc<Sink>>, String> {
            if spec.disable_logs || pmr_core::paths::is_null_device(p) {
                return Ok(None);
            }
            self.get(Path::new(p), rotate)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let mut out_sinks: Vec<_> = open(out)?.into_iter().collect();
        let mut err_sinks: Vec<_> = open(err)?.into_iter().collect();
        if let Some(c) = combined {
            if let Some(s) = open(c)? {
                out_sinks.push(s.clone());
                err_sinks.push(s);
            }
        }
        let name: Arc<str> = spec.name.as_str().into();
        let source = |stream: Stream, sinks| Source {
            owner: Source::next_owner(),
            id,
            name: name.clone(),
            stream,
            format: LineFormat {
                date_format: spec.log_date_format.clone(),
                json: (spec.log_type.as_deref() == Some("json")).then(|| JsonMeta {
                    id,
                    app_name: spec.name.clone(),
                    stream: stream.as_str(),
                }),
            },
            sinks,
            hub: (!spec.disable_logs).then(|| self.hub.clone()),
        };
        Ok((
            source(Stream::Out, out_sinks),
            source(Stream::Err, err_sinks),
        ))
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
            s.request(|ack| Msg::Reopen(Box::new(conf), ack)).await;
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
    /// `update`: every open file has written what was queued before this call.
    pub async fn sync_all(&self) {
        for s in self.live() {
            s.request(Msg::Sync).await;
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: cannot create {}: {e}", path.display(), dir.display()),
            )
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Bytes written by one sink after which, once the writers are idle, freed memory is returned.
const TRIM_AFTER: usize = 4 << 20;

pub(crate) fn release_free_memory() {
    spare::clear();
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A piece of the bytes a batch writes: part of a queued block (shared, not copied), or a
/// newline the writer adds to end an open line.
enum Piece {
    Block(Arc<Vec<u8>>, usize, usize),
    Newline,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Block(b, start, end) => &b[*start..*end],
            Piece::Newline => b"\n",
        }
    }
}

/// Largest number of pieces given to one `writev` (Linux's `IOV_MAX` is 1024).
const MAX_IOV: usize = 512;

/// The owner of an open line no stream has ([`Source::next_owner`] starts at 1): the file ends
/// mid-line after a failed write, so whoever writes next starts a new line.
const CUT_LINE: u64 = 0;

/// The lines in bytes not written: a last piece without its newline is one too.
fn lines_in(bytes: &[IoSlice]) -> u64 {
    let newlines: usize = bytes
        .iter()
        .map(|s| s.iter().filter(|&&b| b == b'\n').count())
        .sum();
    let open = bytes
        .iter()
        .rev()
        .find(|s| !s.is_empty())
        .is_some_and(|s| !s.ends_with(b"\n"));
    (newlines + usize::from(open)) as u64
}

/// The state of one open file, run by a thread of the writer [`pool`].
pub(crate) struct Writer {
    file: File,
    path: PathBuf,
    /// The file's size, counting the pieces of the batch not written yet.
    size: u64,
    conf: RotateConf,
    /// After a failed rotation, size rotation pauses for a minute (no retry on every write).
    rotate_blocked_until: Option<std::time::Instant>,
    last_rotation: rotate::Last,
    /// The stream whose last line in the file has no newline yet (a partial line written
    /// out early), if any; [`CUT_LINE`] after a failed write.
    open_line: Option<u64>,
    /// Whether the file ended mid-line when the batch began: where it still ends if none of
    /// the batch gets written.
    batch_mid_line: bool,
    /// Lines that could not be written (shared with the [`Sink`]).
    dropped: Arc<AtomicU64>,
    /// While writes fail: the lines dropped since they began to.
    failing: Option<u64>,
    /// The batch: written with one `writev` when the queue is drained, and before a rotation,
    /// reopen or flush.
    out: Vec<Piece>,
    since_trim: usize,
}

impl Writer {
    fn new(file: File, path: &Path, conf: RotateConf, dropped: Arc<AtomicU64>) -> Writer {
        Writer {
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            file,
            path: path.to_path_buf(),
            conf,
            rotate_blocked_until: None,
            last_rotation: None,
            open_line: None,
            batch_mid_line: false,
            dropped,
            failing: None,
            out: Vec::new(),
            since_trim: 0,
        }
    }

    /// Handle what is queued, at most `budget` messages, then write the batch.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>, budget: usize) -> pool::Drained {
        use mpsc::error::TryRecvError;
        let mut handled = 0;
        let end = loop {
            if handled == budget {
                break pool::Drained::More;
            }
            match rx.try_recv() {
                Ok(msg) => self.handle(msg),
                Err(TryRecvError::Empty) => break pool::Drained::Empty,
                Err(TryRecvError::Disconnected) => break pool::Drained::Closed,
            }
            handled += 1;
        };
        self.write_out();
        // After a burst, give the freed buffers back to the system so that the daemon's RSS
        // returns to its idle level: once the pool has been idle a while (not between the
        // batches of a burst, where the buffers are reused).
        if end != pool::Drained::More && self.since_trim >= TRIM_AFTER {
            self.since_trim = 0;
            pool::trim_when_idle();
        }
        end
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Data(owner, bytes) => {
                self.since_trim += bytes.len();
                self.write_block(owner, bytes);
            }
            Msg::EndLine(owner) => {
                if self.open_line == Some(owner) {
                    self.push(Piece::Newline);
                    self.open_line = None;
                }
            }
            Msg::Reopen(conf, ack) => {
                self.write_out();
                self.open_line = None;
                self.conf = *conf;
                self.rotate_blocked_until = None;
                match open_append(&self.path) {
                    Ok(f) => {
                        self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                        self.file = f;
                    }
                    Err(e) => tracing::error!("cannot reopen {e}"),
                }
                let _ = ack.send(());
            }
            Msg::Flush(ack) => {
                self.write_out();
                self.open_line = None;
                match self.file.set_len(0) {
                    Ok(()) => self.size = 0,
                    Err(e) => tracing::error!("cannot flush {}: {e}", self.path.display()),
                }
                let _ = ack.send(());
            }
            Msg::Tick => {
                if self.size > 0 {
                    self.rotate();
                }
            }
            Msg::Sync(ack) => {
                self.write_out();
                let _ = ack.send(());
            }
        }
    }

    fn max_size(&self) -> Option<u64> {
        match self.rotate_blocked_until {
            Some(t) if std::time::Instant::now() < t => None,
            _ => self.conf.max_size,
        }
    }

    fn push(&mut self, piece: Piece) {
        if self.out.is_empty() {
            self.batch_mid_line = self.open_line.is_some();
        }
        self.size += piece.bytes().len() as u64;
        self.out.push(piece);
    }

    /// Write a block of `owner`'s stream. Its first bytes continue the file's open line if that
    /// line is `owner`'s; another stream's open line is ended first.
    fn write_block(&mut self, owner: u64, bytes: Arc<Vec<u8>>) {
        let len = bytes.len();
        if len == 0 {
            return;
        }
        let open_after = (!bytes.ends_with(b"\n")).then_some(owner);
        let mut start = 0;
        match self.open_line {
            Some(o) if o != owner => self.push(Piece::Newline),
            // The rest of our own line: it ends in this file, whatever its size.
            Some(_) => {
                start = bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |i| i + 1);
                self.push(Piece::Block(bytes.clone(), 0, start));
            }
            None => {}
        }
        self.open_line = None;
        self.write_lines(bytes, start);
        self.open_line = open_after;
    }

    /// Write whole lines from `start`; when the file would grow past `max_size`, write the
    /// lines that fit, rotate, and go on in the new file. A single line longer than `max_size`
    /// is written whole.
    fn write_lines(&mut self, bytes: Arc<Vec<u8>>, mut start: usize) {
        let len = bytes.len();
        while start < len {
            let rest = &bytes[start..];
            let fits = self
                .max_size()
                .is_none_or(|max| self.size + rest.len() as u64 <= max);
            if fits {
                self.push(Piece::Block(bytes, start, len));
                return;
            }
            let max = self.max_size().unwrap_or(u64::MAX);
            let room = max.saturating_sub(self.size).min(rest.len() as u64) as usize;
            let mut cut = rest[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if cut == 0 && self.size == 0 {
                cut = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
            }
            if cut > 0 {
                self.push(Piece::Block(bytes.clone(), start, start + cut));
            }
            start += cut;
            self.rotate();
        }
    }

    /// Write the batch. On a write error (disk full, ...) the rest of the batch is dropped and
    /// its lines counted: this thread writes other files too, and a file that cannot be
    /// written must not hold them up. The next batch is tried again (a write to a full disk
    /// fails at once), so writing resumes as soon as it can.
    fn write_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut slices: Vec<IoSlice> = self.out.iter().map(|p| IoSlice::new(p.bytes())).collect();
        let total: usize = slices.iter().map(|s| s.len()).sum();
        let mut left = &mut slices[..];
        let error = loop {
            if left.is_empty() {
                break None;
            }
            let n = left.len().min(MAX_IOV);
            match self.file.write_vectored(&left[..n]) {
                Ok(0) => break Some(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut left, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let unwritten: usize = left.iter().map(|s| s.len()).sum();
        let lines = lines_in(left);
        drop(slices);
        match error {
            Some(e) => self.drop_rest(e, total - unwritten, unwritten, lines),
            None => {
                if let Some(n) = self.failing.take() {
                    tracing::info!(
                        "writing {} again; {n} lines dropped meanwhile",
                        self.path.display()
                    );
                }
            }
        }
        for piece in self.out.drain(..) {
            if let Piece::Block(b, ..) = piece {
                if let Ok(v) = Arc::try_unwrap(b) {
                    spare::give_back(v);
                }
            }
        }
    }

    /// After a failed write of the batch, of which `written` bytes made it: count the rest's
    /// `lines` as dropped, say so when the file starts failing, and leave the writer as the
    /// file now is.
    fn drop_rest(&mut self, e: std::io::Error, written: usize, unwritten: usize, lines: u64) {
        let mid_line = match written {
            0 => self.batch_mid_line,
            n => self.byte_at(n - 1) != b'\n',
        };
        self.open_line = mid_line.then_some(CUT_LINE);
        self.size -= unwritten as u64;
        self.dropped.fetch_add(lines, Ordering::Relaxed);
        DROPPED_ANY.store(true, Ordering::Relaxed);
        match &mut self.failing {
            Some(n) => *n += lines,
            None => {
                tracing::error!(
                    "cannot write {}: {e}; its lines are dropped until it can be written again",
                    self.path.display()
                );
                self.failing = Some(lines);
            }
        }
    }

    /// The byte at `pos` of the batch.
    fn byte_at(&self, mut pos: usize) -> u8 {
        for p in &self.out {
            let b = p.bytes();
            if pos < b.len() {
                return b[pos];
            }
            pos -= b.len();
        }
        unreachable!("a position within the batch")
    }

    /// Rename the file and reopen its path; gzip and retention happen on the housekeeping
    /// thread.
    fn rotate(&mut self) {
        self.write_out();
        // The new file starts clean: the rest of an open line starts it, nothing ends it.
        self.open_line = None;
        let now = chrono::Utc::now().timestamp_millis();
        let target = rotate::rotated_name(&self.path, now, &mut self.last_rotation);
        if let Err(e) = std::fs::rename(&self.path, &target) {
            tracing::error!("cannot rotate {}: {e}", self.path.display());
            self.rotate_blocked_until =
                Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
            return;
        }
        match open_append(&self.path) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
            }
            Err(e) => {
                // Keep writing to the renamed file rather than lose lines.
                tracing::error!("cannot reopen after rotation {e}");
                self.rotate_blocked_until =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
            }
        }
        HOUSEKEEPER.submit(rotate::Job {
            live: self.path.clone(),
            rotated: target,
            compress: self.conf.compress,
            retain: self.conf.retain,
        });
    }
}

/// One stream (stdout or stderr) of one instance: where its lines go and how they look.
pub struct Source {
    /// Unique for the daemon's life: which stream an open line in a shared file belongs to.
    pub owner: u64,
    pub id: u32,
    pub name: Arc<str>,
    pub stream: Stream,
    pub format: LineFormat,
    pub sinks: Vec<Arc<Sink>>,
    /// `None` with `disable_logs`: no live stream either (as PM2).
    pub hub: Option<Arc<Hub>>,
}

impl Source {
    pub fn next_owner() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Hand on whole lines, or (last) a partial line written out early: raw files get it as
    /// it is; a date prefix or JSON makes it a line of its own.
    async fn send(&self, lines: Vec<u8>) {
        let live = self.hub.as_ref().filter(|h| h.active());
        if self.sinks.is_empty() && live.is_none() {
            return;
        }
        let raw = Arc::new(lines);
        let time = if live.is_some() || !self.format.is_raw() {
            chrono::Utc::now().timestamp_millis()
        } else {
            0
        };
        if let Some(hub) = live {
            hub.publish(Block {
                id: Some(self.id),
                name: self.name.clone(),
                stream: self.stream,
                time,
                lines: raw.clone(),
            });
        }
        if self.sinks.is_empty() {
            return;
        }
        let data = if self.format.is_raw() {
            raw
        } else {
            let formatted = Arc::new(self.format.apply(&raw, time));
            if let Ok(v) = Arc::try_unwrap(raw) {
                spare::give_back(v);
            }
            formatted
        };
        // The last sink gets our reference: its writer, once done, is then the block's only
        // holder and can give the buffer back for reuse ([`spare`]).
        let (last, others) = self.sinks.split_last().expect("not empty");
        for s in others {
            s.write(self.owner, data.clone()).await;
        }
        last.write(self.owner, data).await;
    }

    async fn end(&self) {
        for s in &self.sinks {
            s.end_line(self.owner).await;
        }
    }
}

/// Read a child's pipe until EOF, handing whole lines to the source's files and subscribers.
/// A partial line is written out when the pipe goes quiet ([`QUIET`], [`HOLD_MAX`]); a line
/// longer than [`CHUNK`] is written in pieces; a line left open at EOF is completed.
pub async fn pump(pipe: impl AsyncRead + Unpin, src: Source) {
    pump_paced(pace::Plain(pipe, false), src).await
}

/// [`pump`] for a child's stdout or stderr (handed over by tokio as an fd), read in batches
/// while busy ([`pace`]).
pub async fn pump_pipe(pipe: std::io::Result<OwnedFd>, src: Source) {
    match pipe.and_then(pace::PipeIn::new) {
        Ok(p) => pump_paced(p, src).await,
        Err(e) => tracing::error!("cannot read the output of {}: {e}", src.name),
    }
}

/// `update`: every pump hands on what it holds (a partial line too, without ending it) and
/// stops reading; the pipes cross the exec and the next daemon's pumps read on.
pub fn freeze_pumps() {
    let _ = frozen().send(true);
}

fn frozen() -> &'static tokio::sync::watch::Sender<bool> {
    static FROZEN: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> =
        std::sync::OnceLock::new();
    FROZEN.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// One read of the pump: `None` when the partial line's time is due first.
async fn read_or_due(
    pipe: &mut impl pace::Input,
    buf: &mut Vec<u8>,
    pending: Option<(Instant, Instant)>,
) -> Option<std::io::Result<usize>> {
    match pending {
        None => Some(pipe.read(buf).await),
        Some((_, due)) => tokio::time::timeout_at(due, pipe.read(buf)).await.ok(),
    }
}

async fn pump_paced(mut pipe: impl pace::Input, src: Source) {
    let _live = LivePump::new();
    let mut freeze = frozen().subscribe();
    let mut pace = pace::Pace::default();
    // A quiet stream reads into a small buffer, taken when there is something to read and
    // given back once its lines are written: a buffer kept per stream (64 KiB, later 1 KiB)
    // counted in the daemon's RSS for every idle app. A read that fills it marks the stream
    // busy, and busy streams read into CHUNK buffers.
    let mut buf: Vec<u8> = Vec::new();
    // Handing lines on is boxed (one allocation per batch): inline, its state would be part of
    // this task's future, which every stream of every app holds for its whole life.
    // While `buf` holds a partial line: when it began to wait, and when it is written out.
    let mut pending: Option<(Instant, Instant)> = None;
    // The last read that took a whole pipe's worth or filled the buffer: a big write under way.
    let mut last_big: Option<Instant> = None;
    loop {
        if buf.capacity() > 0 && buf.len() == buf.capacity() {
            buf.reserve(CHUNK);
        }
        let before = buf.len();
        let read = tokio::select! {
            biased;
            _ = async { freeze.wait_for(|f| *f).await.is_ok() } => {
                // The line stays open: the next daemon's pump continues it.
                if !buf.is_empty() {
                    Box::pin(src.send(buf)).await;
                }
                return;
            }
            r = read_or_due(&mut pipe, &mut buf, pending) => r,
        };
        let read = match read {
            Some(r) => r,
            None => {
                // Quiet: write the partial line out as it is; a busy stream's big read
                // buffer stays (a small copy).
                let part = if buf.capacity() > QUIET_BUF {
                    let part = buf.to_vec();
                    buf.clear();
                    part
                } else {
                    std::mem::take(&mut buf)
                };
                pending = None;
                Box::pin(src.send(part)).await;
                continue;
            }
        };
        // The room the read had (the input may have just made it).
        let spare = buf.capacity() - before;
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let scan_from = buf.len() - n;
        let cut = match buf[scan_from..].iter().rposition(|&b| b == b'\n') {
            Some(i) => scan_from + i + 1,
            None if buf.len() >= CHUNK => buf.len(),
            None => 0,
        };
        let now = Instant::now();
        if n >= PIPE_BUF || n == spare {
            last_big = Some(now);
        }
        // A small read soon after a big one is still the big write: a writer on a
        // non-blocking pipe (Node's stdout) puts in what fits when the pipe is nearly full, so
        // its write is cut into pieces of any size, with it asleep in between.
        let busy = last_big.is_some_and(|t| now.duration_since(t) < BUSY_HOLD);
        pace.after_read(&mut pipe, n < spare);
        if cut == 0 {
            // Nothing but the partial line so far.
            let since = pending.map_or(now, |(since, _)| since);
            pending = Some((since, hold(since, now, busy)));
            continue;
        }
        let mut rest = if busy {
            spare::take()
        } else if cut < buf.len() {
            Vec::with_capacity(QUIET_BUF)
        } else {
            Vec::new()
        };
        rest.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let lines = std::mem::replace(&mut buf, rest);
        pending = (!buf.is_empty()).then(|| (now, hold(now, now, busy)));
        Box::pin(src.send(lines)).await;
    }
    if !buf.is_empty() {
        Box::pin(src.send(buf)).await;
    }
    Box::pin(src.end()).await;
}

/// When a partial line that began to wait at `since` is written out, given the last read.
fn hold(since: Instant, now: Instant, busy: bool) -> Instant {
    if busy {
        now + BUSY_HOLD
    } else {
        (now + QUIET).min(since + HOLD_MAX)
    }
}

static LIVE_PUMPS: AtomicUsize = AtomicUsize::new(0);

/// Pumps still reading a pipe: the foreground daemon waits for them before it exits, so the
/// last lines of stopped apps reach its console.
pub fn live_pumps() -> usize {
    LIVE_PUMPS.load(Ordering::SeqCst)
}

struct LivePump;

impl LivePump {
    fn new() -> LivePump {
        LIVE_PUMPS.fetch_add(1, Ordering::SeqCst);
        LivePump
    }
}

impl Drop for LivePump {
    fn drop(&mut self) {
        LIVE_PUMPS.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmr_core::tail::tail_lines;
    use tokio::io::AsyncWriteExt;

    fn source(sinks: Vec<Arc<Sink>>) -> Source {
        Source {
            owner: Source::next_owner(),
            id: 0,
            name: "t".into(),
            stream: Stream::Out,
            format: LineFormat::default(),
            sinks,
            hub: None,
        }
    }

    async fn wait_for(path: &Path, expected: &str) {
        // The writer pool drains its queue before the file is complete: poll for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(path).unwrap_or_default();
            if got == expected {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "file incomplete");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn lines_are_kept_whole_and_the_last_partial_line_is_completed() {
        let dir = std::env::temp_dir().join(format!("pmr-logs-test-{}", std::process::id()));
        let path = dir.join("a.log");
        let sinks = Sinks::default();
        let sink = sinks.get(&path, None).unwrap();
        let (mut w, r) = tokio::io::duplex(1024);
        let task = tokio::spawn(pump(r, source(vec![sink.clone()])));
        let mut expected = String::new();
        for i in 0..5000 {
            let line = format!("line {i} {}\n", "x".repeat(i % 97));
            expected.push_str(&line);
            w.write_all(line.as_bytes()).await.unwrap();
        }
        w.write_all(b"partial").await.unwrap();
        expected.push_str("partial\n");
        drop(w);
        task.await.unwrap();
        drop(sink);
        wait_for(&path, &expected).await;
        assert_eq!(
            tail_lines(&path, 2).unwrap(),
            [
                "line 4999 ".to_string() + &"x".repeat(4999 % 97),
                "partial".into()
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn test_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pmr-logs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn a_partial_line_is_written_out_when_the_pipe_goes_quiet() {
        let dir = test_dir("partial");
        let (raw, dated) = (dir.join("raw.log"), dir.join("dated.log"));
        let sinks = Sinks::default();
        let (mut w1, r1) = tokio::io::duplex(1024);
        let (mut w2, r2) = tokio::io::duplex(1024);
        let t1 = tokio::spawn(pump(r1, source(vec![sinks.get(&raw, None).unwrap()])));
        let mut dated_src = source(vec![sinks.get(&dated, None).unwrap()]);
        dated_src.format.date_format = Some("[T]".into());
        let t2 = tokio::spawn(pump(r2, dated_src));
        for w in [&mut w1, &mut w2] {
            w.write_all(b"a\nx").await.unwrap();
        }
        // No newline comes, the pipes stay open: the partial line shows up anyway.
        wait_for(&raw, "a\nx").await;
        wait_for(&dated, "T: a\nT: x\n").await;
        // Its rest continues the line in a raw file, is a line of its own with a prefix.
        for w in [&mut w1, &mut w2] {
            w.write_all(b"y\nz").await.unwrap();
        }
        wait_for(&raw, "a\nxy\nz").await;
        wait_for(&dated, "T: a\nT: x\nT: y\nT: z\n").await;
        // EOF completes the open line.
        drop((w1, w2));
        t1.await.unwrap();
        t2.await.unwrap();
        wait_for(&raw, "a\nxy\nz\n").await;
        wait_for(&dated, "T: a\nT: x\nT: y\nT: z\n").await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn in_a_shared_file_another_stream_never_continues_an_open_line() {
        let dir = test_dir("shared");
        let path = dir.join("merged.log");
        let sinks = Sinks::default();
        let sink = sinks.get(&path, None).unwrap();
        let (mut wa, ra) = tokio::io::duplex(1024);
        let (mut wb, rb) = tokio::io::duplex(1024);
        let ta = tokio::spawn(pump(ra, source(vec![sink.clone()])));
        let tb = tokio::spawn(pump(rb, source(vec![sink.clone()])));
        wa.write_all(b"a1").await.unwrap();
        wait_for(&path, "a1").await;
        wb.write_all(b"b1\n").await.unwrap();
        wait_for(&path, "a1\nb1\n").await;
        wa.write_all(b"a2\n").await.unwrap();
        wait_for(&path, "a1\nb1\na2\n").await;
        wb.write_all(b"b2").await.unwrap();
        wait_for(&path, "a1\nb1\na2\nb2").await;
        drop(wa);
        ta.await.unwrap();
        // A's end does not end B's line.
        wb.write_all(b"b3\n").await.unwrap();
        wait_for(&path, "a1\nb1\na2\nb2b3\n").await;
        drop(wb);
        tb.await.unwrap();
        drop(sink);
        wait_for(&path, "a1\nb1\na2\nb2b3\n").await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_large_write_cut_by_the_pipe_waits_for_its_rest() {
        let dir = test_dir("busy");
        let path = dir.join("d.log");
        let sinks = Sinks::default();
        let mut src = source(vec![sinks.get(&path, None).unwrap()]);
        src.format.date_format = Some("[T]".into());
        let (mut w, r) = tokio::io::duplex(2 * CHUNK);
        let task = tokio::spawn(pump(r, src));
        // A line of 8 KiB arrives in two pieces, the second well after QUIET.
        let one = "y".repeat(8192);
        w.write_all(&one.as_bytes()[..6000]).await.unwrap();
        tokio::time::sleep(QUIET * 10).await;
        w.write_all(format!("{}\n", &one[6000..]).as_bytes())
            .await
            .unwrap();
        // Node's write into a nearly full pipe: a big piece, then 36 bytes (what fit), then,
        // the writer having slept well past QUIET, the rest. The small piece is no line end.
        let two = "z".repeat(8192);
        w.write_all(&two.as_bytes()[..6000]).await.unwrap();
        tokio::time::sleep(QUIET * 2).await;
        w.write_all(&two.as_bytes()[6000..6036]).await.unwrap();
        tokio::time::sleep(QUIET * 10).await;
        w.write_all(format!("{}\n", &two[6036..]).as_bytes())
            .await
            .unwrap();
        drop(w);
        task.await.unwrap();
        wait_for(&path, &format!("T: {one}\nT: {two}\n")).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_files_share_the_writer_pool_and_keep_their_order() {
        let dir = test_dir("pool");
        let sinks = Sinks::default();
        const FILES: usize = 40;
        const LINES: usize = 2000;
        let mut tasks = Vec::new();
        for f in 0..FILES {
            let sink = sinks.get(&dir.join(format!("f{f}.log")), None).unwrap();
            let (mut w, r) = tokio::io::duplex(4096);
            let pumping = tokio::spawn(pump(r, source(vec![sink])));
            tasks.push(tokio::spawn(async move {
                for i in 0..LINES {
                    w.write_all(format!("{f} {i}\n").as_bytes()).await.unwrap();
                }
                drop(w);
                pumping.await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for f in 0..FILES {
            let expected: String = (0..LINES).map(|i| format!("{f} {i}\n")).collect();
            wait_for(&dir.join(format!("f{f}.log")), &expected).await;
        }
        let writers = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.starts_with("pmr-log-"))
            .count();
        assert_eq!(writers, pool::THREADS, "{FILES} files, one pool");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A writer of `path` whose fd is `file`, and its dropped-lines counter.
    fn bare_writer(path: &Path, file: File) -> (Writer, Arc<AtomicU64>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let w = Writer::new(file, path, RotateConf::default(), dropped.clone());
        (w, dropped)
    }

    fn write(w: &mut Writer, owner: u64, bytes: &[u8]) {
        w.handle(Msg::Data(owner, Arc::new(bytes.to_vec())));
        w.write_out();
    }

    #[test]
    fn a_failed_write_drops_and_counts_its_lines_and_writing_resumes() {
        let dir = test_dir("full");
        let path = dir.join("a.log");
        let real = || open_append(&path).unwrap();
        let (mut w, dropped) = bare_writer(&path, real());
        write(&mut w, 1, b"x");
        // The disk fills: each batch fails at once (no retry), its lines are counted.
        w.file = OpenOptions::new().append(true).open("/dev/full").unwrap();
        write(&mut w, 1, b"y\nz\n");
        write(&mut w, 2, b"b\npartial");
        // y and z; the newline ending x's line, b and the partial line.
        assert_eq!(dropped.load(Ordering::Relaxed), 5);
        assert_eq!(w.failing, Some(5));
        // The file still ends in x's open line: whoever writes next starts a new one.
        assert_eq!(w.open_line, Some(CUT_LINE));
        assert_eq!(w.size, 1);
        // Space returns: the next batch is written, on a line of its own.
        w.file = real();
        write(&mut w, 1, b"w\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\nw\n");
        assert_eq!(w.failing, None);
        assert_eq!(w.open_line, None);
        assert_eq!(dropped.load(Ordering::Relaxed), 5);
        // A batch dropped at a line start leaves the file as it was: no empty line after.
        w.file = OpenOptions::new().append(true).open("/dev/full").unwrap();
        write(&mut w, 1, b"lost");
        assert_eq!(w.open_line, None);
        w.file = real();
        write(&mut w, 2, b"v\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\nw\nv\n");
        assert_eq!(dropped.load(Ordering::Relaxed), 6);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_write_cut_mid_line_counts_the_cut_line_and_the_next_starts_a_new_one() {
        // A non-blocking pipe takes what fits and then fails (EAGAIN): a write cut anywhere.
        let (r, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let (mut w, dropped) = bare_writer(Path::new("pipe"), File::from(wr));
        let line = format!("{}\n", "l".repeat(999));
        write(&mut w, 1, line.repeat(100).as_bytes());
        let mut got = Vec::new();
        let mut r = File::from(r);
        let mut buf = vec![0; 1 << 20];
        loop {
            match std::io::Read::read(&mut r, &mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        assert!(
            !got.is_empty() && got.len() < 100 * line.len(),
            "{}",
            got.len()
        );
        let whole = got.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(whole + dropped.load(Ordering::Relaxed), 100);
        let cut = !got.ends_with(b"\n");
        assert_eq!(w.open_line, cut.then_some(CUT_LINE));
        // The pipe has room again: the cut line is ended before the next one.
        write(&mut w, 1, b"next\n");
        let n = std::io::Read::read(&mut r, &mut buf).unwrap();
        let expected: &[u8] = if cut { b"\nnext\n" } else { b"next\n" };
        assert_eq!(&buf[..n], expected);
        assert_eq!(w.failing, None);
    }

    #[tokio::test]
    async fn size_rotation_splits_at_line_boundaries_and_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("pmr-logs-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("b.log");
        let sinks = Sinks::default();
        let block = pmr_core::spec::LogRotate {
            max_size: Some(1000),
            retain: Some(1000),
            ..Default::default()
        };
        let sink = sinks.get(&path, Some(&block)).unwrap();
        let (mut w, r) = tokio::io::duplex(4096);
        let task = tokio::spawn(pump(r, source(vec![sink.clone()])));
        let mut expected = String::new();
        for i in 0..2000 {
            let line = format!("{i:05} {}\n", "y".repeat(i % 50));
            expected.push_str(&line);
            w.write_all(line.as_bytes()).await.unwrap();
        }
        drop(w);
        task.await.unwrap();
        drop(sink);
        // Wait until the writer has closed the live file (all data written).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut all = String::new();
            for f in rotate::rotated_files(&path) {
                let s = std::fs::read_to_string(&f).unwrap();
                assert!(s.len() <= 1000 && s.ends_with('\n'), "{}", f.display());
                all.push_str(&s);
            }
            all.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            if all == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "lines lost or reordered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
