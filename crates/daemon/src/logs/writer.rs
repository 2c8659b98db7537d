//! The writer of one log file, run by a thread of the writer [`pool`](super::pool): it batches
//! what its queue holds into one `writev`, keeps lines of different streams apart, rotates by
//! size and on schedule, reopens, truncates, and drops (counting them) what a failing file
//! cannot take.

use super::rotate;
use super::spare;
use super::HOUSEKEEPER;
use pmr_core::conf::RotateConf;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A message to a file's writer.
pub(super) enum Msg {
    /// Bytes from one stream (its [`Source::owner`]): whole lines, the last possibly partial.
    Data(u32, Arc<Vec<u8>>),
    /// The stream ended: complete its line if it is still open.
    EndLine(u32),
    /// Reopen the path (after an external rotation) with these settings. Boxed, and owners
    /// are `u32`: each file's queue allocates room for 32 messages at once, the size of the
    /// largest (16 bytes, not 24).
    Reopen(Box<(RotateConf, oneshot::Sender<()>)>),
    /// Truncate the file.
    Flush(oneshot::Sender<()>),
    /// The rotation schedule fired: rotate if the file is not empty.
    Tick,
    /// Write out what came before, then answer (`update`: nothing is left in memory).
    Sync(oneshot::Sender<()>),
}

const _: () = assert!(std::mem::size_of::<Msg>() <= 16);

/// How a drain of a file's queue ended.
#[derive(PartialEq, Eq)]
pub(super) enum Drained {
    /// The queue is empty for now.
    Empty,
    /// The budget ran out with messages left.
    More,
    /// Every sender is gone and the queue is empty: the file can be closed.
    Closed,
}

/// Bytes written by one sink after which, once the writers are idle, freed memory is returned.
const TRIM_AFTER: usize = 4 << 20;

pub(super) fn open_append(path: &Path) -> std::io::Result<File> {
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

/// The owner of an open line no stream has (`Sinks::next_owner` starts at 1): the file ends
/// mid-line after a failed write, so whoever writes next starts a new line.
pub(super) const CUT_LINE: u32 = 0;

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
    open_line: Option<u32>,
    /// Whether the file ended mid-line when the batch began: where it still ends if none of
    /// the batch gets written.
    batch_mid_line: bool,
    /// Lines that could not be written (shared with the [`Sink`]).
    dropped: Arc<AtomicU64>,
    /// Set when any file of the daemon drops lines (shared with the [`Sinks`]).
    dropped_any: Arc<AtomicBool>,
    /// While writes fail: the lines dropped since they began to.
    failing: Option<u64>,
    /// The batch: written with one `writev` when the queue is drained, and before a rotation,
    /// reopen or flush.
    out: Vec<Piece>,
    since_trim: usize,
}

impl Writer {
    pub(super) fn new(
        file: File,
        path: &Path,
        conf: RotateConf,
        dropped: Arc<AtomicU64>,
        dropped_any: Arc<AtomicBool>,
    ) -> Writer {
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
            dropped_any,
            failing: None,
            out: Vec::new(),
            since_trim: 0,
        }
    }

    /// Handle what is queued, at most `budget` messages, then write the batch.
    pub(super) fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>, budget: usize) -> Drained {
        use mpsc::error::TryRecvError;
        let mut handled = 0;
        let end = loop {
            if handled == budget {
                break Drained::More;
            }
            match rx.try_recv() {
                Ok(msg) => self.handle(msg),
                Err(TryRecvError::Empty) => break Drained::Empty,
                Err(TryRecvError::Disconnected) => break Drained::Closed,
            }
            handled += 1;
        };
        self.write_out();
        end
    }

    /// Whether this file took a burst ([`TRIM_AFTER`] bytes) since the last time it said so:
    /// freed memory is then to be given back to the system once the pool is idle.
    pub(super) fn took_burst(&mut self) -> bool {
        let burst = self.since_trim >= TRIM_AFTER;
        if burst {
            self.since_trim = 0;
        }
        burst
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
            Msg::Reopen(reopen) => {
                let (conf, ack) = *reopen;
                self.write_out();
                self.open_line = None;
                self.conf = conf;
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
    fn write_block(&mut self, owner: u32, bytes: Arc<Vec<u8>>) {
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
        self.dropped_any.store(true, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn test_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pmr-logs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A writer of `path` whose fd is `file`, and its dropped-lines counter.
    fn bare_writer(path: &Path, file: File) -> (Writer, Arc<AtomicU64>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let w = Writer::new(
            file,
            path,
            RotateConf::default(),
            dropped.clone(),
            Arc::default(),
        );
        (w, dropped)
    }

    fn write(w: &mut Writer, owner: u32, bytes: &[u8]) {
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
}
