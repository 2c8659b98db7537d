//! Round-robin balancing (`instance_balancing: 'round_robin'`, the default): the daemon accepts
//! on a cluster listening socket and hands each connection to the next worker, as Node's own
//! primary does (`docs/node-cluster-protocol.md` §3, `newconn`).
//!
//! Why the daemon takes part at all: when every worker accepts on the shared socket, the kernel
//! wakes whichever is idle and libuv then accepts everything queued, so a burst of keep-alive
//! connections lands mostly on one worker (16 on 2 workers split 4/28) and that one saturates
//! while the other idles (`docs/decisions/cluster-balancing.md`). The daemon's part is one
//! `accept` and one `sendmsg` per new connection; an established connection never passes
//! through it.
//!
//! Each worker has at most [`MAX_PENDING`] connections handed and not yet acknowledged; when
//! every worker is at that bound the daemon stops accepting, and connections wait in the
//! kernel's backlog as they would for busy workers. A worker whose unanswered connections exceed
//! the least busy one's by [`LAG`] is passed over: a worker whose event loop is held up (a slow
//! request, a GC pause) must not be handed every N-th connection regardless, which cost a third
//! of Next.js's new-connection throughput. A connection a worker refuses (its server was
//! closing: a reload) goes to another worker.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, Notify};

/// Connections handed to one worker and not yet acknowledged, at most.
const MAX_PENDING: usize = 128;
/// A worker with this many more unanswered connections than the least busy one is passed over:
/// its event loop is behind (a slow request, a GC pause), and what it was given waits.
const LAG: usize = 4;

/// A connection on its way to a worker: the channel task keeps it until the worker's answer.
pub struct Conn {
    pub fd: Arc<OwnedFd>,
    pub key: Arc<str>,
    pub from: Arc<Balancer>,
}

impl Conn {
    /// To another worker than `worker`, which refused it or left without answering for it.
    pub fn hand_back(self, worker: u64) {
        if let Ok(fd) = Arc::try_unwrap(self.fd).or_else(|fd| fd.try_clone()) {
            self.from.dispatch(fd, Some(worker));
        }
    }
}

struct Member {
    worker: u64,
    tx: mpsc::UnboundedSender<Conn>,
    pending: usize,
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    next: usize,
}

impl State {
    /// The next worker in turn that is not `except` and not lagging behind the others.
    fn pick(&self, except: Option<u64>) -> Option<usize> {
        let n = self.members.len();
        let eligible = |i: &usize| Some(self.members[*i].worker) != except;
        let least = (0..n)
            .filter(eligible)
            .map(|i| self.members[i].pending)
            .min()?;
        (0..n)
            .map(|k| (self.next + k) % n)
            .filter(eligible)
            .find(|&i| self.members[i].pending <= least + LAG)
    }

    fn can_take(&self) -> bool {
        self.members.iter().any(|m| m.pending < MAX_PENDING)
    }
}

/// One round-robin listening socket's workers and turn.
pub struct Balancer {
    key: Arc<str>,
    state: Mutex<State>,
    /// A member joined, or one acknowledged a connection, or the socket closed.
    changed: Notify,
    closed: AtomicBool,
}

impl Balancer {
    /// Start accepting on `socket` (a dup is kept by the accept task until [`close`](Self::close)).
    pub fn start(key: &str, socket: &OwnedFd) -> std::io::Result<Arc<Balancer>> {
        let fd = socket.try_clone()?;
        let b = Arc::new(Balancer {
            key: key.into(),
            state: Mutex::default(),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
        });
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same socket until it drops
        // it. Not a tokio TcpListener: its accept registers each connection with epoll (and
        // giving it to a worker deregisters it), two system calls per connection for nothing.
        let listener = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        tokio::spawn(accept_loop(b.clone(), listener));
        Ok(b)
    }

    /// `worker` takes connections from now on, through its channel.
    pub fn add(&self, worker: u64, tx: mpsc::UnboundedSender<Conn>) {
        let mut st = self.state.lock().unwrap();
        if let Some(m) = st.members.iter_mut().find(|m| m.worker == worker) {
            m.tx = tx;
        } else {
            st.members.push(Member {
                worker,
                tx,
                pending: 0,
            });
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// `worker` closed its server or went away: no more connections for it.
    pub fn remove(&self, worker: u64) {
        self.state
            .lock()
            .unwrap()
            .members
            .retain(|m| m.worker != worker);
        self.changed.notify_waiters();
    }

    /// `worker` answered for one connection.
    pub fn done(&self, worker: u64) {
        let mut st = self.state.lock().unwrap();
        let could = st.can_take();
        if let Some(m) = st.members.iter_mut().find(|m| m.worker == worker) {
            m.pending = m.pending.saturating_sub(1);
        }
        // Only a change the accept task waits for wakes it: one wake-up per connection costs
        // the daemon more than the rest of its work for it.
        if !could && st.can_take() {
            drop(st);
            self.changed.notify_waiters();
        }
    }

    /// Hand `fd` to the next worker (not `except`, which refused it). Without one the
    /// connection is closed, as Node's primary does.
    pub fn dispatch(self: &Arc<Self>, fd: OwnedFd, except: Option<u64>) {
        let mut fd = Arc::new(fd);
        let mut st = self.state.lock().unwrap();
        while let Some(i) = st.pick(except) {
            let conn = Conn {
                fd,
                key: self.key.clone(),
                from: self.clone(),
            };
            match st.members[i].tx.send(conn) {
                Ok(()) => {
                    st.members[i].pending += 1;
                    st.next = i + 1;
                    return;
                }
                // That worker's channel is gone: forget it and try the next.
                Err(mpsc::error::SendError(c)) => {
                    st.members.remove(i);
                    fd = c.fd;
                }
            }
        }
    }

    /// The socket was closed (its last worker left): the accept task ends.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn can_take(&self) -> bool {
        self.state.lock().unwrap().can_take()
    }
}

async fn accept_loop(b: Arc<Balancer>, listener: AsyncFd<OwnedFd>) {
    let mut warned = false;
    loop {
        let changed = b.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if b.closed.load(Ordering::SeqCst) {
            return;
        }
        if !b.can_take() {
            changed.await;
            continue;
        }
        tokio::select! {
            r = listener.async_io(Interest::READABLE, accept) => match r {
                Ok(conn) => b.dispatch(conn, None),
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) => {
                    // Out of descriptors or memory: the connections wait in the backlog.
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!("cluster: accept on {} failed: {e}", b.key);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = changed => {}
        }
    }
}

/// A connection, non-blocking as libuv's own accept makes it (the worker shares the open file).
fn accept(listener: &OwnedFd) -> std::io::Result<OwnedFd> {
    let (conn, _) = socket2::SockRef::from(listener).accept()?;
    conn.set_nonblocking(true)?;
    Ok(conn.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(worker: u64, pending: usize) -> Member {
        Member {
            worker,
            tx: mpsc::unbounded_channel().0,
            pending,
        }
    }

    #[test]
    fn turns_go_round_and_skip_a_lagging_worker() {
        let mut st = State {
            members: vec![member(1, 0), member(2, 0), member(3, 0)],
            next: 1,
        };
        assert_eq!(st.pick(None), Some(1));
        st.next = 3;
        assert_eq!(st.pick(None), Some(0));
        st.members[0].pending = LAG;
        assert_eq!(st.pick(None), Some(0), "within the lag: its turn");
        st.members[0].pending = LAG + 1;
        assert_eq!(st.pick(None), Some(1), "behind the others: passed over");
        assert_eq!(st.pick(Some(2)), Some(2), "not the one that refused");
        for m in &mut st.members {
            m.pending = 50;
        }
        st.members[2].pending = 40;
        assert_eq!(st.pick(None), Some(2), "all busy: the least");
        assert!(st.can_take());
        for m in &mut st.members {
            m.pending = MAX_PENDING;
        }
        assert!(!st.can_take());
    }

    #[test]
    fn a_refused_connection_never_returns_to_its_only_worker() {
        let st = State {
            members: vec![member(7, 0)],
            next: 0,
        };
        assert_eq!(st.pick(Some(7)), None);
        assert_eq!(st.pick(None), Some(0));
        assert_eq!(State::default().pick(None), None);
    }
}
