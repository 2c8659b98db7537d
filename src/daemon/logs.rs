//! The log pipeline: child pipes → whole lines → log files.
//!
//! Each log file has one writer thread (a "sink") fed by a bounded channel, so file I/O never
//! runs on the async runtime and a slow disk slows the app (through its pipe) instead of growing
//! the daemon's memory. Bound: [`SINK_QUEUE`] chunks of at most [`CHUNK`] bytes per file, plus one
//! read buffer per pipe. Several instances that share a file (`merge_logs`) share its sink, so
//! their lines never interleave mid-line.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// Largest piece read from a pipe at once; also the longest line kept whole.
pub const CHUNK: usize = 64 * 1024;
/// Chunks queued per file before readers wait.
pub const SINK_QUEUE: usize = 16;

/// One open log file and the thread that writes it.
pub struct Sink {
    pub path: PathBuf,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Sink {
    /// Queue bytes (whole lines) for the file; waits while the queue is full.
    pub async fn write(&self, bytes: Vec<u8>) {
        // An error means the writer thread is gone (daemon shutting down): nothing to do.
        let _ = self.tx.send(bytes).await;
    }
}

/// All open sinks by path, so that instances writing one file share one writer.
#[derive(Default)]
pub struct Sinks {
    open: Mutex<HashMap<PathBuf, Weak<Sink>>>,
}

impl Sinks {
    /// The sink for `path`, opening the file (and creating its directory) if needed.
    /// Blocking: call from `spawn_blocking`.
    pub fn get(&self, path: &Path) -> std::io::Result<Arc<Sink>> {
        let mut open = self.open.lock().unwrap();
        if let Some(sink) = open.get(path).and_then(Weak::upgrade) {
            return Ok(sink);
        }
        let file = open_append(path)?;
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("pmr-log".into())
            .stack_size(64 * 1024)
            .spawn(move || write_loop(file, thread_path, rx))?;
        let sink = Arc::new(Sink {
            path: path.to_path_buf(),
            tx,
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(path.to_path_buf(), Arc::downgrade(&sink));
        Ok(sink)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn write_loop(mut file: File, path: PathBuf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.blocking_recv() {
        let mut warned = false;
        // Never drop a line: on a write error (disk full, ...) keep retrying, which holds back
        // the app through its pipe until space returns.
        while let Err(e) = file.write_all(&bytes) {
            if !warned {
                tracing::error!(
                    "cannot write {}: {e}; retrying every second",
                    path.display()
                );
                warned = true;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        if warned {
            tracing::info!("writing {} again", path.display());
        }
    }
}

/// Read a child's pipe until EOF, handing whole lines to every sink.
/// A line longer than [`CHUNK`] is written in pieces; a last line without a newline is
/// completed with one when the pipe closes.
pub async fn pump(mut pipe: impl AsyncRead + Unpin, sinks: Vec<Arc<Sink>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(CHUNK);
        }
        let n = match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let scan_from = buf.len() - n;
        let cut = match buf[scan_from..].iter().rposition(|&b| b == b'\n') {
            Some(i) => scan_from + i + 1,
            None if buf.len() >= CHUNK => buf.len(),
            None => continue,
        };
        let rest = buf.split_off(cut);
        let lines = std::mem::replace(&mut buf, rest);
        send(&sinks, lines).await;
        if buf.capacity() < CHUNK {
            buf.reserve(CHUNK - buf.len());
        }
    }
    if !buf.is_empty() {
        buf.push(b'\n');
        send(&sinks, buf).await;
    }
}

async fn send(sinks: &[Arc<Sink>], lines: Vec<u8>) {
    match sinks {
        [] => {}
        [one] => one.write(lines).await,
        many => {
            for s in many {
                s.write(lines.clone()).await;
            }
        }
    }
}

/// The last `n` lines of a file (for `logs --nostream`). Reads only the file's tail.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut want = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(want);
        f.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        let text = String::from_utf8_lossy(&data);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0); // probably a partial line
        }
        if lines.len() >= n || start == 0 {
            let skip = lines.len().saturating_sub(n);
            return Ok(lines[skip..].iter().map(|s| s.to_string()).collect());
        }
        want *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_kept_whole_and_the_last_partial_line_is_completed() {
        let dir = std::env::temp_dir().join(format!("pmr-logs-test-{}", std::process::id()));
        let path = dir.join("a.log");
        let sinks = Sinks::default();
        let sink = sinks.get(&path).unwrap();
        let (mut w, r) = tokio::io::duplex(1024);
        let task = tokio::spawn(pump(r, vec![sink.clone()]));
        use tokio::io::AsyncWriteExt;
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
        // The writer thread drains its queue before the file is complete: poll for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&path).unwrap_or_default();
            if got == expected {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "file incomplete");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            tail_lines(&path, 2).unwrap(),
            [
                "line 4999 ".to_string() + &"x".repeat(4999 % 97),
                "partial".into()
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
