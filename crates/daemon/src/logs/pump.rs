//! Reading a child's pipe: whole lines move on whole, a partial line waits while the pipe keeps
//! talking (see the module doc of `logs`), a busy pipe is read in batches.

use super::sinks::Pumps;
use super::source::Source;
use super::{pace, spare};
use super::{BUSY_HOLD, CHUNK, HOLD_MAX, PIPE_BUF, QUIET, QUIET_BUF};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use tokio::io::AsyncRead;
use tokio::time::Instant;

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
    let _live = LivePump::new(src.pumps.clone());
    let mut freeze = src.pumps.frozen.subscribe();
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

/// Counts one pump in [`Pumps::live`] while it reads.
struct LivePump(std::sync::Arc<Pumps>);

impl LivePump {
    fn new(pumps: std::sync::Arc<Pumps>) -> LivePump {
        pumps.live.fetch_add(1, Ordering::SeqCst);
        LivePump(pumps)
    }
}

impl Drop for LivePump {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}
