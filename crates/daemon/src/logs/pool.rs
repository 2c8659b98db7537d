//! The writer pool: [`THREADS`] threads write every log file of the daemon, however many apps
//! there are (a thread per file made 211 threads with 100 apps).
//!
//! Each open file is a [`Slot`]: its writer state and the receiving end of its bounded queue.
//! A sender that queues a message wakes the slot; a woken slot goes once onto the pool's ready
//! list (the `scheduled` flag), and one thread at a time drains it. So:
//! * per-file order: a slot is never on the list twice nor run by two threads at once;
//! * coalescing: the thread takes what is queued (at most [`BUDGET`] messages) and writes it
//!   with one `writev`;
//! * fairness: a slot that still has messages after its budget goes to the back of the list;
//! * backpressure stays where it was: the queue is bounded and senders wait on it.
//!
//! A thread never waits for a file that cannot be written (disk full): the writer drops what
//! fails and moves on (see `Writer::write_out`), so such files cannot hold up the others.

use super::writer::{Drained, Msg, Writer};
use super::SINK_QUEUE;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Writer threads for all log files.
pub const THREADS: usize = 2;
/// Messages of one file handled (and written together) before the thread moves on.
const BUDGET: usize = SINK_QUEUE;

/// How long the pool must have had nothing to do before a requested trim runs.
const IDLE_TRIM: Duration = Duration::from_millis(100);

/// A writer drained a burst: free memory is to be returned once the pool is idle.
/// Process-wide, as the pool and the allocator it trims.
static TRIM: AtomicBool = AtomicBool::new(false);

fn trim_when_idle() {
    TRIM.store(true, Ordering::Relaxed);
}

/// One open file in the pool.
pub(super) struct Slot {
    /// On the ready list or being run: wakes in that state add nothing.
    scheduled: AtomicBool,
    /// `None` once closed.
    job: Mutex<Option<(Writer, mpsc::Receiver<Msg>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one file's writer must not stop the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    /// Starts the pool's threads if they are not running yet (the error of the first start
    /// that failed, when none runs).
    pub fn new(writer: Writer, rx: mpsc::Receiver<Msg>) -> std::io::Result<Arc<Slot>> {
        POOL.start()?;
        Ok(Arc::new(Slot {
            scheduled: AtomicBool::new(false),
            job: Mutex::new(Some((writer, rx))),
        }))
    }

    /// Something was queued (or every sender is gone): make sure a thread will look.
    pub fn wake(self: &Arc<Self>) {
        // Pairs with the fence in `run`: either we see `scheduled` cleared, or the thread
        // that cleared it sees our message.
        fence(Ordering::SeqCst);
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            POOL.push(self.clone());
        }
    }

    /// Drain the queue; returns whether the slot must go back on the list (still scheduled).
    fn run(&self) -> bool {
        let mut job = lock(&self.job);
        let Some((writer, rx)) = job.as_mut() else {
            return false;
        };
        loop {
            let end = writer.drain(rx, BUDGET);
            // After a burst, give the freed buffers back to the system so that the daemon's
            // RSS returns to its idle level: once the pool has been idle a while (not between
            // the batches of a burst, where the buffers are reused).
            if end != Drained::More && writer.took_burst() {
                trim_when_idle();
            }
            match end {
                Drained::More => return true,
                Drained::Closed => {
                    *job = None; // closes the file
                    return false;
                }
                Drained::Empty => {
                    self.scheduled.store(false, Ordering::SeqCst);
                    fence(Ordering::SeqCst);
                    let more = !rx.is_empty() || rx.is_closed();
                    // A message that came after the drain, whose wake saw us still scheduled.
                    if !more || self.scheduled.swap(true, Ordering::SeqCst) {
                        return false;
                    }
                }
            }
        }
    }
}

struct Pool {
    ready: Mutex<VecDeque<Arc<Slot>>>,
    cv: Condvar,
    running: Mutex<usize>,
}

/// Process-wide: a few threads write every log file of the process.
static POOL: Pool = Pool {
    ready: Mutex::new(VecDeque::new()),
    cv: Condvar::new(),
    running: Mutex::new(0),
};

impl Pool {
    fn start(&'static self) -> std::io::Result<()> {
        let mut running = lock(&self.running);
        while *running < THREADS {
            let spawned = std::thread::Builder::new()
                .name(format!("pmr-log-{}", *running))
                .stack_size(256 * 1024)
                .spawn(move || self.work());
            match spawned {
                Ok(_) => *running += 1,
                Err(e) if *running == 0 => return Err(e),
                Err(_) => break, // fewer threads, retried at the next file opened
            }
        }
        Ok(())
    }

    fn push(&self, slot: Arc<Slot>) {
        lock(&self.ready).push_back(slot);
        self.cv.notify_one();
    }

    fn work(&self) {
        loop {
            let slot = {
                let mut ready = lock(&self.ready);
                loop {
                    if let Some(s) = ready.pop_front() {
                        break s;
                    }
                    if !TRIM.load(Ordering::Relaxed) {
                        ready = self.cv.wait(ready).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    let (r, waited) = self
                        .cv
                        .wait_timeout(ready, IDLE_TRIM)
                        .unwrap_or_else(|e| e.into_inner());
                    ready = r;
                    if waited.timed_out() && ready.is_empty() && TRIM.swap(false, Ordering::Relaxed)
                    {
                        drop(ready);
                        crate::logs::release_free_memory();
                        ready = lock(&self.ready);
                    }
                }
            };
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.run()))
                .unwrap_or_else(|_| {
                    tracing::error!("a log writer failed; its file is no longer written");
                    *lock(&slot.job) = None;
                    false
                });
            if again {
                self.push(slot);
            }
        }
    }
}
