//! Live subscribers (`pmr logs`): every block of lines read from an app (and every line of the
//! daemon's own log) is offered to each subscriber whose filter matches.
//!
//! Offering never waits: each subscriber has a bounded queue ([`SUB_QUEUE`] blocks, each at most
//! one pipe read, so ≤ 1 MiB), and a block that does not fit is counted instead of queued. The
//! count travels with the next block that fits, and the subscriber prints "N lines skipped" at
//! the place they were lost. So a slow reader never slows an app, and the daemon's memory does
//! not follow it. At most [`MAX_SUBSCRIBERS`] at once.

use pmr_core::protocol::{self, Response};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

pub const SUB_QUEUE: usize = 16;
pub const MAX_SUBSCRIBERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
    /// The daemon's own log (`pmr.log`).
    Daemon,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Daemon => "pmr",
        }
    }
}

/// A block of lines as read from one pipe at `time`: whole lines, except that the last may be
/// a partial line written out when the pipe went quiet (the next block continues it).
#[derive(Debug)]
pub struct Block {
    /// `None` for the daemon's own log.
    pub id: Option<u32>,
    pub name: Arc<str>,
    pub stream: Stream,
    /// ms since the epoch, when the daemon read it.
    pub time: i64,
    pub lines: Arc<Vec<u8>>,
}

impl Block {
    fn line_count(&self) -> u64 {
        let partial = !self.lines.is_empty() && !self.lines.ends_with(b"\n");
        self.lines.iter().filter(|&&b| b == b'\n').count() as u64 + partial as u64
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    /// `None`: every app, including apps started later.
    pub ids: Option<Vec<u32>>,
    pub out: bool,
    pub err: bool,
    pub daemon: bool,
}

impl Filter {
    fn wants(&self, b: &Block) -> bool {
        match b.stream {
            Stream::Daemon => self.daemon,
            Stream::Out | Stream::Err => {
                (if b.stream == Stream::Out {
                    self.out
                } else {
                    self.err
                }) && match (&self.ids, b.id) {
                    (None, _) => true,
                    (Some(ids), Some(id)) => ids.contains(&id),
                    (Some(_), None) => false,
                }
            }
        }
    }
}

/// (lines skipped just before this block, the block)
pub type Queued = (u64, Arc<Block>);

struct Sub {
    filter: Filter,
    tx: mpsc::Sender<Queued>,
    skipped: AtomicU64,
}

#[derive(Default)]
pub struct Hub {
    count: AtomicUsize,
    subs: Mutex<Vec<Arc<Sub>>>,
}

impl Hub {
    /// Whether anyone listens (a cheap check before building a block).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Offer a block to every matching subscriber; never waits.
    pub fn publish(&self, block: Block) {
        let block = Arc::new(block);
        let mut subs = self.subs.lock().unwrap();
        let mut closed = false;
        for s in subs.iter() {
            if !s.filter.wants(&block) {
                continue;
            }
            let before = s.skipped.swap(0, Ordering::Relaxed);
            match s.tx.try_send((before, block.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.skipped
                        .fetch_add(before + block.line_count(), Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
            }
        }
        if closed {
            subs.retain(|s| !s.tx.is_closed());
            self.count.store(subs.len(), Ordering::Relaxed);
        }
    }

    fn add(&self, filter: Filter) -> Option<(Arc<Sub>, mpsc::Receiver<Queued>)> {
        self.add_sized(filter, SUB_QUEUE)
    }

    /// An in-process subscriber (`pmr-runtime`'s console) with its own queue length; `None`
    /// when the subscriber limit is reached.
    pub fn subscribe(&self, filter: Filter, queue: usize) -> Option<mpsc::Receiver<Queued>> {
        self.add_sized(filter, queue).map(|(_, rx)| rx)
    }

    /// Drop every subscriber: their receivers see the end once they have read what is queued.
    pub fn close_all(&self) {
        self.subs.lock().unwrap().clear();
        self.count.store(0, Ordering::Relaxed);
    }

    fn add_sized(
        &self,
        filter: Filter,
        queue: usize,
    ) -> Option<(Arc<Sub>, mpsc::Receiver<Queued>)> {
        let mut subs = self.subs.lock().unwrap();
        subs.retain(|s| !s.tx.is_closed());
        if subs.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (tx, rx) = mpsc::channel(queue);
        let sub = Arc::new(Sub {
            filter,
            tx,
            skipped: AtomicU64::new(0),
        });
        subs.push(sub.clone());
        self.count.store(subs.len(), Ordering::Relaxed);
        Some((sub, rx))
    }

    fn prune(&self) {
        let mut subs = self.subs.lock().unwrap();
        subs.retain(|s| !s.tx.is_closed());
        self.count.store(subs.len(), Ordering::Relaxed);
    }

    /// Serve one `pmr logs` connection until the client hangs up: `Subscribed`, then `Log` and
    /// `Skipped` frames.
    pub async fn serve(self: &Arc<Self>, stream: UnixStream, filter: Filter) {
        let (mut rd, mut wr) = stream.into_split();
        let Some((sub, mut rx)) = self.add(filter) else {
            let _ = protocol::write_frame_async(
                &mut wr,
                &Response::Error {
                    message: format!("too many log subscribers (at most {MAX_SUBSCRIBERS})"),
                },
            )
            .await;
            return;
        };
        if protocol::write_frame_async(&mut wr, &Response::Subscribed)
            .await
            .is_err()
        {
            drop(rx);
            self.prune();
            return;
        }
        let mut probe = [0u8; 64];
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some((skipped, b)) = got else { break };
                    if skipped > 0
                        && protocol::write_frame_async(&mut wr, &Response::Skipped { count: skipped })
                            .await
                            .is_err()
                    {
                        break;
                    }
                    let frame = Response::Log {
                        id: b.id,
                        name: b.name.to_string(),
                        stream: b.stream.as_str().into(),
                        time: b.time,
                        lines: String::from_utf8_lossy(&b.lines).into_owned(),
                    };
                    if protocol::write_frame_async(&mut wr, &frame).await.is_err() {
                        break;
                    }
                    // Caught up: lines skipped since the last queued block are said now,
                    // not only when the next block comes (there may be none for a while).
                    if rx.is_empty() {
                        let n = sub.skipped.swap(0, Ordering::Relaxed);
                        if n > 0
                            && protocol::write_frame_async(&mut wr, &Response::Skipped { count: n })
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                }
                // The client sends nothing more: a read returns only when it hangs up.
                r = rd.read(&mut probe) => if matches!(r, Ok(0) | Err(_)) { break },
            }
        }
        drop(rx);
        drop(sub);
        self.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: u32, n: usize) -> Block {
        Block {
            id: Some(id),
            name: "a".into(),
            stream: Stream::Out,
            time: 0,
            lines: Arc::new("x\n".repeat(n).into_bytes()),
        }
    }

    #[test]
    fn a_full_subscriber_gets_a_count_of_what_it_missed() {
        let hub = Hub::default();
        assert!(!hub.active());
        let (_sub, mut rx) = hub
            .add(Filter {
                ids: Some(vec![1]),
                out: true,
                err: false,
                daemon: false,
            })
            .unwrap();
        assert!(hub.active());
        for _ in 0..SUB_QUEUE {
            hub.publish(block(1, 1));
        }
        hub.publish(block(1, 3)); // dropped: 3 lines
        hub.publish(block(2, 5)); // not wanted
        hub.publish(block(1, 2)); // dropped: 2 lines
        for _ in 0..SUB_QUEUE {
            assert_eq!(rx.try_recv().unwrap().0, 0);
        }
        hub.publish(block(1, 1));
        let (skipped, b) = rx.try_recv().unwrap();
        assert_eq!(skipped, 5);
        assert_eq!(b.lines.len(), 2);
        drop(rx);
        hub.publish(block(1, 1));
        assert!(!hub.active());
    }
}
