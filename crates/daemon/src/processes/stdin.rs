//! Apps' stdin. As with PM2, a fork-mode process gets a pipe the daemon keeps open for the
//! process's life: a program reading stdin waits for input instead of seeing EOF at once, and
//! `pmr send`/`pmr attach` write lines to it. (Cluster workers keep `/dev/null`, as PM2's
//! cluster workers see EOF.)
//!
//! From the first line sent to it, each process's pipe end is owned by one small writer task
//! (until then the [`Feeds`] table holds it), so a process that does not read
//! its stdin never holds up the daemon: a write that cannot complete within [`WRITE_TIMEOUT`]
//! fails the request. The [`Feed`] lives in the instance's running process and goes with it:
//! dropping it ends the task and closes the pipe, so nothing is left open across restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// How long a line may wait for room in the pipe (the app does not read its stdin).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines queued per process before senders wait.
const QUEUE: usize = 4;

type Line = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// A process's stdin pipe: only the pipe until something is sent to it (most apps are never
/// sent anything), then its writer task. Measured with 1,000 apps, a writer for each from the
/// start cost 2 KB per process (its queue, its task).
enum Pipe {
    Idle(tokio::net::unix::pipe::Sender),
    Writing(mpsc::Sender<Line>, AbortHandle),
}

/// The stdin of each running process by instance id, with the pid it was started for.
#[derive(Default)]
pub struct Feeds(Mutex<HashMap<u32, (u32, Pipe)>>);

/// The daemon's hold on one process's stdin; dropping it closes the pipe.
pub struct Feed {
    feeds: Arc<Feeds>,
    id: u32,
    pid: u32,
}

impl Feed {
    /// Keep instance `id`'s process `pid`'s stdin (our end of its pipe) in `feeds` until it is
    /// written to or the process goes. Needs the tokio runtime.
    pub fn new(
        feeds: &Arc<Feeds>,
        id: u32,
        pid: u32,
        stdin: std::os::fd::OwnedFd,
    ) -> std::io::Result<Feed> {
        let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(stdin)?;
        feeds.0.lock().unwrap().insert(id, (pid, Pipe::Idle(stdin)));
        Ok(Feed {
            feeds: feeds.clone(),
            id,
            pid,
        })
    }
}

/// Start the writer of a pipe: it owns the pipe's end from now on. Needs the tokio runtime.
fn start_writer(mut stdin: tokio::net::unix::pipe::Sender) -> (mpsc::Sender<Line>, AbortHandle) {
    let (tx, mut rx) = mpsc::channel::<Line>(QUEUE);
    let task = tokio::spawn(async move {
        while let Some((bytes, reply)) = rx.recv().await {
            let r = match tokio::time::timeout(WRITE_TIMEOUT, stdin.write_all(&bytes)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot write to its stdin: {e}")),
                Err(_) => Err(format!(
                    "its stdin is full (not read for {}s)",
                    WRITE_TIMEOUT.as_secs()
                )),
            };
            let _ = reply.send(r);
        }
    })
    .abort_handle();
    (tx, task)
}

impl Drop for Feed {
    fn drop(&mut self) {
        let mut map = self.feeds.0.lock().unwrap();
        // A newer process of the same instance may already be registered.
        if map.get(&self.id).is_some_and(|(pid, _)| *pid == self.pid) {
            if let Some((_, Pipe::Writing(_, task))) = map.remove(&self.id) {
                // The task owns the pipe's end: ending it closes the pipe even if a write is
                // stuck.
                task.abort();
            }
        }
    }
}

impl Feeds {
    /// Write `bytes` to the stdin of instance `id`'s running process. `Ok(false)`: no process
    /// of this instance holds a stdin pipe.
    pub async fn write(&self, id: u32, bytes: Vec<u8>) -> Result<bool, String> {
        let tx = self.writer(id);
        let Some(tx) = tx else { return Ok(false) };
        let (reply, done) = oneshot::channel();
        match tokio::time::timeout(WRITE_TIMEOUT, tx.send((bytes, reply))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Ok(false),
            Err(_) => return Err("its stdin is full (lines are waiting)".into()),
        }
        drop(tx);
        match done.await {
            Ok(r) => r.map(|()| true),
            // The process went away while the line waited.
            Err(_) => Ok(false),
        }
    }

    /// The queue of instance `id`'s writer, started on first use.
    fn writer(&self, id: u32) -> Option<mpsc::Sender<Line>> {
        let mut map = self.0.lock().unwrap();
        let (pid, pipe) = map.remove(&id)?;
        let (tx, task) = match pipe {
            Pipe::Idle(stdin) => start_writer(stdin),
            Pipe::Writing(tx, task) => (tx, task),
        };
        map.insert(id, (pid, Pipe::Writing(tx.clone(), task)));
        Some(tx)
    }
}
