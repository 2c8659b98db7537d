//! Control messages to an instance task, and their channel. Stop, delete and retire go
//! before anything else queued (as in watchexec's supervisor): a `stop` must not wait behind
//! a reload. The task also watches for them while it waits on a reload or a launch (see
//! [`CtlReceiver::recv_urgent`]).

use pmr_core::spec::AppSpec;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{self, error::SendError};
use tokio::sync::oneshot;

pub type Reply = oneshot::Sender<Result<(), String>>;

/// What a restart changes.
#[derive(Debug, Default, Clone)]
pub struct Update {
    /// Merged over the stored env (`--update-env`): variables are added or replaced.
    pub env: Option<BTreeMap<String, String>>,
    /// A new spec from an ecosystem file (PM2 re-applies the file's config on restart).
    pub spec: Option<Arc<AppSpec>>,
}

#[derive(Debug)]
pub enum Ctl {
    Start(Reply),
    Stop(Reply),
    /// Stop (if running) and start again with the changes in `update`.
    Restart {
        update: Update,
        reply: Reply,
    },
    /// Cluster mode: start a new process, and once it is ready retire the old one (disconnect,
    /// SIGINT, SIGKILL). Other modes: a restart.
    Reload {
        update: Update,
        reply: Reply,
    },
    /// Stop and end the task.
    Delete(Reply),
    /// Scale down: retire gracefully (cluster disconnect first, as in a reload), then end.
    Retire(Reply),
    Signal(i32, Reply),
    Reset(Reply),
    /// The daemon's own restart (memory guard): as `Reload` when the process runs, with the
    /// cause for the history; refused when it does not (it is never started by this).
    Auto(crate::instances::history::Why, Reply),
    /// A start by a daemon restoring the table of the one that died: as `Start`, but the
    /// counters (unstable restarts) carry on instead of being reset.
    Resume(Reply),
    /// `update`: describe the running process (if any) for the next daemon and its fds, then
    /// do nothing more (the task parks until the exec).
    Handoff(oneshot::Sender<Option<crate::instances::handoff::HandedChild>>),
}

impl Ctl {
    /// Stop, delete and retire end what is running: they jump the queue.
    pub fn is_urgent(&self) -> bool {
        matches!(self, Ctl::Stop(_) | Ctl::Delete(_) | Ctl::Retire(_))
    }

    /// Would this (re)start the app? Such requests sent before a stop are dropped by it.
    fn starts(&self) -> bool {
        matches!(
            self,
            Ctl::Start(_)
                | Ctl::Restart { .. }
                | Ctl::Reload { .. }
                | Ctl::Auto(..)
                | Ctl::Resume(_)
        )
    }

    /// For messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Ctl::Start(_) => "start",
            Ctl::Stop(_) => "stop",
            Ctl::Restart { .. } => "restart",
            Ctl::Reload { .. } => "reload",
            Ctl::Delete(_) => "delete",
            Ctl::Retire(_) => "scale down",
            Ctl::Signal(..) => "signal",
            Ctl::Reset(_) => "reset",
            Ctl::Auto(..) => "automatic restart",
            Ctl::Resume(_) => "start",
            Ctl::Handoff(_) => "update",
        }
    }

    pub fn into_reply(self) -> Reply {
        match self {
            Ctl::Start(r)
            | Ctl::Stop(r)
            | Ctl::Delete(r)
            | Ctl::Retire(r)
            | Ctl::Signal(_, r)
            | Ctl::Reset(r)
            | Ctl::Auto(_, r)
            | Ctl::Resume(r)
            | Ctl::Restart { reply: r, .. }
            | Ctl::Reload { reply: r, .. } => r,
            // Not a start (never cancelled by a stop): nobody listens to this one.
            Ctl::Handoff(_) => oneshot::channel().0,
        }
    }
}

/// Messages carry the order they were sent in, so that an urgent one can tell which queued
/// requests came before it.
/// Boxed: a channel allocates room for 32 messages at once, per instance (two channels), and
/// a `Ctl` is large; a box keeps each channel's block at ~0.5 KB instead of ~2 KB.
type Numbered = (u64, Box<Ctl>);

/// A new instance's control channel.
pub fn channel() -> (CtlSender, CtlReceiver) {
    let (utx, urx) = mpsc::unbounded_channel();
    let (ntx, nrx) = mpsc::unbounded_channel();
    (
        CtlSender {
            urgent: utx,
            normal: ntx,
            seq: Arc::new(AtomicU64::new(0)),
        },
        CtlReceiver {
            urgent: urx,
            normal: nrx,
            stash: VecDeque::new(),
        },
    )
}

#[derive(Clone)]
pub struct CtlSender {
    urgent: mpsc::UnboundedSender<Numbered>,
    normal: mpsc::UnboundedSender<Numbered>,
    seq: Arc<AtomicU64>,
}

impl CtlSender {
    /// Queue `ctl` by its priority; fails (giving it back) once the task has ended.
    pub fn send(&self, ctl: Ctl) -> Result<(), SendError<Ctl>> {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        let tx = if ctl.is_urgent() {
            &self.urgent
        } else {
            &self.normal
        };
        tx.send((n, Box::new(ctl))).map_err(|e| SendError(*e.0 .1))
    }
}

pub struct CtlReceiver {
    urgent: mpsc::UnboundedReceiver<Numbered>,
    normal: mpsc::UnboundedReceiver<Numbered>,
    /// Normal messages taken out of their channel while an urgent one was handled.
    stash: VecDeque<Numbered>,
}

enum Got {
    Urgent(Numbered),
    Normal(Option<Ctl>),
}

impl CtlReceiver {
    /// The next message, urgent ones first; `None` once the sender is gone and all is read.
    pub async fn recv(&mut self) -> Option<Ctl> {
        let got = tokio::select! {
            biased;
            Some(m) = self.urgent.recv() => Got::Urgent(m),
            c = next_normal(&mut self.stash, &mut self.normal) => Got::Normal(c),
        };
        match got {
            Got::Urgent(m) => Some(self.take_urgent(m)),
            Got::Normal(Some(c)) => Some(c),
            // The sender is gone: whatever urgent message it sent last is still due.
            Got::Normal(None) => self.urgent.try_recv().ok().map(|m| self.take_urgent(m)),
        }
    }

    /// The next urgent message only; others wait. Never resolves once the sender is gone
    /// (the caller finishes what it is doing, and [`recv`](Self::recv) sees the end).
    pub async fn recv_urgent(&mut self) -> Ctl {
        match self.urgent.recv().await {
            Some(m) => self.take_urgent(m),
            None => std::future::pending().await,
        }
    }

    /// A stop (delete, retire) supersedes the starts and restarts queued before it: they are
    /// answered with an error instead of undoing it afterwards.
    fn take_urgent(&mut self, (n, ctl): Numbered) -> Ctl {
        while let Ok(m) = self.normal.try_recv() {
            self.stash.push_back(m);
        }
        let what = ctl.name();
        let mut kept = VecDeque::new();
        for (m, c) in self.stash.drain(..) {
            if m < n && c.starts() {
                let _ = (*c)
                    .into_reply()
                    .send(Err(format!("cancelled by a {what} sent after it")));
            } else {
                kept.push_back((m, c));
            }
        }
        self.stash = kept;
        *ctl
    }
}

async fn next_normal(
    stash: &mut VecDeque<Numbered>,
    normal: &mut mpsc::UnboundedReceiver<Numbered>,
) -> Option<Ctl> {
    if let Some((_, c)) = stash.pop_front() {
        return Some(*c);
    }
    normal.recv().await.map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> (Reply, oneshot::Receiver<Result<(), String>>) {
        oneshot::channel()
    }

    fn restart(r: Reply) -> Ctl {
        Ctl::Restart {
            update: Update::default(),
            reply: r,
        }
    }

    #[tokio::test]
    async fn stop_jumps_the_queue_and_cancels_older_restarts() {
        let (tx, mut rx) = channel();
        let (r1, mut a1) = reply();
        let (r2, _a2) = reply();
        let (r3, _a3) = reply();
        let (r4, _a4) = reply();
        tx.send(Ctl::Reset(r1)).unwrap();
        tx.send(restart(r2)).unwrap();
        tx.send(Ctl::Stop(r3)).unwrap();
        tx.send(Ctl::Start(r4)).unwrap();
        assert!(matches!(rx.recv().await, Some(Ctl::Stop(_))));
        // The restart sent before the stop is answered, not run; the reset still runs.
        assert!(matches!(rx.recv().await, Some(Ctl::Reset(_))));
        assert!(
            a1.try_recv().is_err(),
            "the reset was answered by the queue"
        );
        // The start sent after the stop is kept.
        assert!(matches!(rx.recv().await, Some(Ctl::Start(_))));
        drop(tx);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_cancelled_restart_is_told_why() {
        let (tx, mut rx) = channel();
        let (r1, a1) = reply();
        let (r2, _a2) = reply();
        tx.send(restart(r1)).unwrap();
        tx.send(Ctl::Delete(r2)).unwrap();
        assert!(matches!(rx.recv().await, Some(Ctl::Delete(_))));
        let err = a1.await.unwrap().unwrap_err();
        assert!(err.contains("delete"), "{err}");
    }

    #[tokio::test]
    async fn recv_urgent_skips_normal_messages() {
        let (tx, mut rx) = channel();
        let (r1, _a1) = reply();
        let (r2, _a2) = reply();
        tx.send(Ctl::Signal(2, r1)).unwrap();
        tx.send(Ctl::Retire(r2)).unwrap();
        assert!(matches!(rx.recv_urgent().await, Ctl::Retire(_)));
        assert!(matches!(rx.recv().await, Some(Ctl::Signal(2, _))));
    }

    #[tokio::test]
    async fn an_urgent_message_sent_last_is_read_after_the_sender_is_gone() {
        let (tx, mut rx) = channel();
        let (r1, _a1) = reply();
        tx.send(Ctl::Stop(r1)).unwrap();
        drop(tx);
        assert!(matches!(rx.recv().await, Some(Ctl::Stop(_))));
        assert!(rx.recv().await.is_none());
    }
}
