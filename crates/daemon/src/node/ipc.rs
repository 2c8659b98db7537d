//! Node's IPC channel: newline-delimited JSON over a Unix socketpair, with file descriptors
//! passed alongside (`docs/node-cluster-protocol.md` §2–3).
//!
//! One task per channel reads and writes it. It answers the cluster protocol itself (so a
//! worker's `listen()` never waits on the instance task), and reports what the instance task
//! cares about as [`IpcEvent`]s: readiness, user messages, garbage, end of channel.
//! `@pm2/io` messages (`{type, data}`) go straight to the process's [`Agent`], so a chatty app
//! never fills the instance's event queue. A channel that delivers more than [`BUSY_RATE`]
//! messages a second is busy: its `axm:monitor` messages are parsed at most every
//! [`MONITOR_EVERY`] (the latest kept), and it is read at most every [`BUSY_PAUSE`], in large
//! reads: the daemon's work for a flooding app is bounded while it still keeps up with it.

use crate::node::axm::Agent;
use crate::node::balance::Conn;
use crate::node::channel::Out;
pub use crate::node::channel::{Frozen, IpcHandle};
use crate::node::cluster::{Joined, Listeners, Query};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

/// A message longer than this is garbage; it is dropped so the daemon's memory stays bounded.
const MAX_MESSAGE: usize = 1 << 20;

/// Received descriptors waiting for their `NODE_HANDLE` message. Node sends one handle at a
/// time (it waits for the ack), so more than this is an app making the daemon hoard fds.
const MAX_PENDING_FDS: usize = 8;

/// `axm:monitor` messages are parsed at most this often (@pm2/io sends one a second).
const MONITOR_EVERY: Duration = Duration::from_millis(100);
/// Above this many messages a second, a channel is busy: it is read in batches.
const BUSY_RATE: u32 = 1000;
/// A busy channel's pause between two batches.
const BUSY_PAUSE: Duration = Duration::from_millis(20);
/// How every @pm2/io metrics message starts (`JSON.stringify({type, data})`).
const MONITOR_PREFIX: &[u8] = br#"{"type":"axm:monitor","#;
/// How often a round-robin worker's answers are read while connections flow.
const ACK_BATCH: Duration = Duration::from_millis(2);
/// Node's answer for every descriptor received, as it writes it.
const HANDLE_ACK: &[u8] = br#"{"cmd":"NODE_HANDLE_ACK"}"#;
/// How Node's internal messages start (`cmd` is the first key it writes).
const NODE_PREFIX: &[u8] = br#"{"cmd":"NODE_"#;

#[derive(Debug)]
pub enum IpcEvent {
    /// `process.send('ready')`.
    Ready,
    /// A cluster worker listens (its first server, or any later one).
    Listening {
        port: i64,
    },
    /// A cluster worker could not get its socket (the message says which and why).
    ListenError(Box<String>),
    /// Boxed, as the texts: every process's event queue allocates room for 32 events at once
    /// (tokio's block), sized by the largest; a `Value` would make that 2.3 KB per process, two
    /// `String`s 1 KB, boxes 0.5 KB.
    Message(Box<Value>),
    Garbage(Box<String>),
    /// The worker closed the channel (after a disconnect: its servers are closed and drained).
    Closed,
}

const _: () = assert!(std::mem::size_of::<IpcEvent>() <= 16);

impl IpcEvent {
    /// Does this event make a launching process ready? With `wait_ready` only `'ready'` does;
    /// otherwise a cluster worker is ready once it listens.
    pub fn is_readiness(&self, wait_ready: bool) -> bool {
        match self {
            IpcEvent::Ready => wait_ready,
            IpcEvent::Listening { .. } => !wait_ready,
            _ => false,
        }
    }
}

/// Set for cluster workers: where their listening sockets come from.
pub struct ClusterCtx {
    pub listeners: Arc<Listeners>,
    /// Owns the worker's ephemeral ports; named ones are shared with every app.
    pub app: String,
    /// Unique for the daemon's life (NODE_UNIQUE_ID), so a reloading pm_id's old and new
    /// workers are told apart.
    pub worker: u64,
    /// The app's `instance_balancing` is round-robin (`balance.rs`).
    pub round_robin: bool,
}

/// Take over our end of the socketpair.
pub fn start(
    stream: std::os::unix::net::UnixStream,
    cluster: Option<ClusterCtx>,
    agent: Arc<Agent>,
) -> std::io::Result<(IpcHandle, mpsc::Receiver<IpcEvent>)> {
    resume(stream, cluster, agent, Frozen::default())
}

/// [`start`] on a channel a replaced daemon froze (`update`).
pub fn resume(
    stream: std::os::unix::net::UnixStream,
    cluster: Option<ClusterCtx>,
    agent: Arc<Agent>,
    frozen: Frozen,
) -> std::io::Result<(IpcHandle, mpsc::Receiver<IpcEvent>)> {
    stream.set_nonblocking(true)?;
    let stream = UnixStream::from_std(stream)?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (conn_tx, conn_rx) = mpsc::unbounded_channel();
    if let Some(c) = &cluster {
        c.listeners.rejoin(c.worker, &conn_tx);
    }
    let ch = Channel {
        stream,
        cluster,
        events: ev_tx,
        rbuf: frozen.partial,
        skipping: false,
        fds_in: VecDeque::new(),
        warned_fds: false,
        inflight: false,
        fds_out: VecDeque::new(),
        queue: VecDeque::new(),
        seq: frozen.seq,
        agent,
        bad: 0,
        monitor_line: None,
        monitor_next: Instant::now(),
        window: (Instant::now(), 0),
        paused_until: None,
        me: conn_tx,
        conns: HashMap::new(),
    };
    let handle = IpcHandle(out_tx);
    ch.agent.attach(handle.clone());
    tokio::spawn(ch.run(out_rx, conn_rx));
    Ok((handle, ev_rx))
}

struct Channel {
    stream: UnixStream,
    cluster: Option<ClusterCtx>,
    events: mpsc::Sender<IpcEvent>,
    rbuf: Vec<u8>,
    skipping: bool,
    /// Descriptors received and not yet claimed by a NODE_HANDLE message.
    fds_in: VecDeque<OwnedFd>,
    /// Unclaimed descriptors were closed and said so in the log (once per channel).
    warned_fds: bool,
    /// A message with a descriptor was sent and not yet acknowledged: Node accepts one at a
    /// time, so later messages wait in `queue`, in order.
    inflight: bool,
    /// Every descriptor sent and not yet acknowledged, oldest first (the worker acknowledges in
    /// order): true for a connection, which does not hold back what follows.
    fds_out: VecDeque<bool>,
    queue: VecDeque<(Vec<u8>, Option<Arc<OwnedFd>>)>,
    seq: u64,
    agent: Arc<Agent>,
    /// Malformed or oversized messages so far: the first is reported, the rest counted.
    bad: u64,
    /// The latest `axm:monitor` line not parsed yet, and when the next may be.
    monitor_line: Option<Vec<u8>>,
    monitor_next: Instant,
    /// Start of the current one-second window and the messages seen in it.
    window: (Instant, u32),
    /// A busy channel waits until then before its next read.
    paused_until: Option<Instant>,
    /// Where the round-robin balancer hands this worker its connections.
    me: mpsc::UnboundedSender<Conn>,
    /// Connections handed to the worker and not yet answered for, by `newconn` seq.
    conns: HashMap<u64, Conn>,
}

impl Channel {
    async fn run(
        mut self,
        mut out: mpsc::UnboundedReceiver<Out>,
        mut conns: mpsc::UnboundedReceiver<Conn>,
    ) {
        let mut out_open = true;
        loop {
            let paused = self.paused_until;
            let monitor_due = self.monitor_line.as_ref().map(|_| self.monitor_next);
            tokio::select! {
                r = self.stream.ready(Interest::READABLE), if paused.is_none() => {
                    if r.is_err() || !self.read_some().await {
                        break;
                    }
                }
                _ = sleep_opt(paused) => self.paused_until = None,
                _ = sleep_opt(monitor_due) => self.flush_monitor(),
                Some(c) = conns.recv() => self.hand(c).await,
                o = out.recv(), if out_open => match o {
                    Some(Out::User(v)) => self.send(v, None).await,
                    Some(Out::Disconnect) => {
                        let m = self.cluster_msg(json!({"act": "disconnect"}));
                        self.send(m, None).await;
                    }
                    Some(Out::Freeze(tx)) => {
                        let partial = std::mem::take(&mut self.rbuf);
                        let _ = tx.send(Frozen { partial, seq: self.seq });
                        return;
                    }
                    None => out_open = false,
                },
            }
        }
        if let Some(c) = &self.cluster {
            c.listeners.leave_all(c.worker);
            // What the worker had not answered for when its channel ended, it never served
            // (it answers before it serves): another worker takes it. A worker retired by a
            // reload leaves this way with the connections handed to it while it closed.
            for (_, conn) in self.conns.drain() {
                conn.hand_back(c.worker);
            }
        }
        self.flush_monitor();
        self.emit(IpcEvent::Closed);
    }

    /// Events are advisory: if nobody reads them (a retiring worker), they are dropped rather
    /// than blocking the protocol.
    fn emit(&self, ev: IpcEvent) {
        let _ = self.events.try_send(ev);
    }

    fn cluster_msg(&mut self, mut fields: Value) -> Value {
        fields["cmd"] = json!("NODE_CLUSTER");
        fields["seq"] = json!(self.seq);
        self.seq += 1;
        fields
    }

    /// Read what is available; false at EOF or on a fatal error.
    async fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let fd = self.stream.as_raw_fd();
        let res = self
            .stream
            .try_io(Interest::READABLE, || recv_with_fds(fd, &mut buf));
        let (n, fds) = match res {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        self.take_fds(fds);
        if n == 0 {
            return false;
        }
        let mut app_lines = false;
        for &b in &buf[..n] {
            if b != b'\n' {
                if !self.skipping {
                    self.rbuf.push(b);
                    if self.rbuf.len() > MAX_MESSAGE {
                        self.rbuf = Vec::new();
                        self.skipping = true;
                        self.on_bad("a message longer than 1 MiB".into(), false);
                    }
                }
                continue;
            }
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let line = std::mem::take(&mut self.rbuf);
            // Node's own messages (a round-robin worker answers two per connection) do not
            // make a channel busy: only the app's do.
            if !line.starts_with(NODE_PREFIX) {
                self.count_message();
                app_lines = true;
            }
            if line == HANDLE_ACK {
                self.on_handle_ack().await;
                continue;
            }
            // A busy channel's metrics: only the latest message counts (@pm2/io sends every
            // metric in each), parsed at most every MONITOR_EVERY.
            if self.window.1 > BUSY_RATE && line.starts_with(MONITOR_PREFIX) {
                self.monitor_line = Some(line);
                if Instant::now() >= self.monitor_next {
                    self.flush_monitor();
                }
                continue;
            }
            // Whatever was kept goes first, in order.
            self.flush_monitor();
            match serde_json::from_slice::<Value>(&line) {
                Ok(v) => self.dispatch(v).await,
                Err(_) => {
                    let text = String::from_utf8_lossy(&line).chars().take(200).collect();
                    self.on_bad(text, true);
                }
            }
        }
        // A busy channel that has been read dry waits a little, so the next read takes a
        // batch rather than one message.
        if n < buf.len() && self.window.1 > BUSY_RATE && self.conns.is_empty() {
            self.paused_until = Some(Instant::now() + BUSY_PAUSE);
        }
        // A round-robin worker's answers are read in batches too: reading each as it comes
        // woke the daemon twice more per connection, its largest cost.
        if n < buf.len() && !app_lines && !self.conns.is_empty() && self.rbuf.is_empty() {
            self.paused_until = Some(Instant::now() + ACK_BATCH);
        }
        // A descriptor arrives with the first byte of the message that claims it: once no
        // message is partly read, nothing can claim those still here.
        if self.rbuf.is_empty() && !self.fds_in.is_empty() {
            let n = self.fds_in.len();
            self.fds_in.clear();
            self.warn_fds(n);
        }
        true
    }

    /// Keep received descriptors for the message that will claim them, up to
    /// [`MAX_PENDING_FDS`]; close the excess.
    fn take_fds(&mut self, fds: Vec<OwnedFd>) {
        let mut closed = 0;
        for fd in fds {
            if self.fds_in.len() < MAX_PENDING_FDS {
                self.fds_in.push_back(fd);
            } else {
                drop(fd);
                closed += 1;
            }
        }
        if closed > 0 {
            self.warn_fds(closed);
        }
    }

    fn count_message(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 = self.window.1.saturating_add(1);
    }

    /// Parse the latest metrics line kept, if any.
    fn flush_monitor(&mut self) {
        let Some(line) = self.monitor_line.take() else {
            return;
        };
        self.monitor_next = Instant::now() + MONITOR_EVERY;
        match serde_json::from_slice::<Value>(&line) {
            Ok(mut v) => {
                let data = v["data"].take();
                self.agent.on_message("axm:monitor", data);
            }
            Err(_) => self.on_bad(
                String::from_utf8_lossy(&line).chars().take(200).collect(),
                true,
            ),
        }
    }

    /// A message that cannot be read: the first one is reported (malformed JSON as an event,
    /// since a cluster worker that sends it cannot be trusted with the protocol); the rest
    /// are dropped without a word. Oversized messages are valid JSON cut by us: dropped.
    fn on_bad(&mut self, what: String, malformed: bool) {
        self.bad += 1;
        if self.bad > 1 {
            return;
        }
        if malformed {
            self.emit(IpcEvent::Garbage(Box::new(what)));
        } else {
            tracing::warn!(
                "App {} sent {what} over IPC: dropped (further bad messages from it are \
                 dropped without a word)",
                self.agent.label()
            );
        }
    }

    fn warn_fds(&mut self, n: usize) {
        if !std::mem::replace(&mut self.warned_fds, true) {
            tracing::warn!(
                "a process sent {n} file descriptor(s) over IPC without a NODE_HANDLE message \
                 to claim them: closed (further ones are closed without a word)"
            );
        }
    }

    async fn dispatch(&mut self, m: Value) {
        let cmd = m.get("cmd").and_then(Value::as_str).unwrap_or("");
        let internal = cmd.len() > 5 && cmd.starts_with("NODE_");
        if !internal {
            if m == "ready" {
                self.emit(IpcEvent::Ready);
            } else if let (Some(ty), true) =
                (m["type"].as_str().map(str::to_string), truthy(&m["data"]))
            {
                // PM2's test for a bus message (`msg.data && msg.type`).
                let mut m = m;
                self.agent.on_message(&ty, m["data"].take());
            } else {
                self.emit(IpcEvent::Message(Box::new(m)));
            }
            return;
        }
        match cmd {
            // A NACK means the worker could not take the fd: nothing useful to retry with a
            // listening socket it asked for (a connection is answered for apart), so move on.
            "NODE_HANDLE_ACK" | "NODE_HANDLE_NACK" => self.on_handle_ack().await,
            "NODE_HANDLE" => {
                // The worker sent us a handle: we have no use for it; acknowledge and close it.
                let fd = self.fds_in.pop_front();
                let ack = json!({"cmd": if fd.is_some() { "NODE_HANDLE_ACK" } else { "NODE_HANDLE_NACK" }});
                self.write_now(&line_of(&ack), None).await;
                drop(fd);
                if let Some(inner) = m.get("msg").cloned() {
                    Box::pin(self.dispatch(inner)).await;
                }
            }
            "NODE_CLUSTER" => self.on_cluster(m).await,
            _ => {}
        }
    }

    async fn on_handle_ack(&mut self) {
        if self.fds_out.pop_front() == Some(false) {
            self.inflight = false;
            self.flush_queue().await;
        }
    }

    /// Hand a connection to the worker as Node's primary does: `newconn` with the fd; the
    /// worker answers `{ack, accepted}`.
    async fn hand(&mut self, c: Conn) {
        let seq = self.seq;
        self.seq += 1;
        let line = format!(
            "{}\n",
            format_args!(
                r#"{{"cmd":"NODE_HANDLE","type":"net.Native","msg":{{"cmd":"NODE_CLUSTER","act":"newconn","key":{},"seq":{seq}}}}}"#,
                Value::from(&*c.key)
            )
        );
        let fd = c.fd.clone();
        self.conns.insert(seq, c);
        // Not queued behind an unacknowledged listening socket: the worker takes each
        // descriptor with the message it starts (`docs/node-cluster-protocol.md` §2).
        self.fds_out.push_back(true);
        self.write_now(line.as_bytes(), Some(fd)).await;
    }

    /// The worker's answer for a connection: taken, or refused (its server is closing), which
    /// goes to another worker.
    fn on_conn_answer(&mut self, m: &Value) {
        let (Some(c), Some(ack)) = (&self.cluster, m["ack"].as_u64()) else {
            return;
        };
        let Some(conn) = self.conns.remove(&ack) else {
            return;
        };
        conn.from.done(c.worker);
        if m["accepted"] != Value::Bool(true) {
            conn.hand_back(c.worker);
        }
    }

    async fn on_cluster(&mut self, m: Value) {
        if m.get("act").is_none() && m.get("accepted").is_some() {
            return self.on_conn_answer(&m);
        }
        let Some(c) = &self.cluster else { return };
        match m["act"].as_str().unwrap_or("") {
            "queryServer" => {
                let key = Query::key(&m);
                let q = Query::from_message(&m);
                let seq = m["seq"].clone();
                match c.listeners.join(
                    q.owner(&c.app),
                    &key,
                    c.worker,
                    &q,
                    &m["data"],
                    c.round_robin,
                ) {
                    Ok(Joined {
                        rr: Some(rr),
                        data,
                        sockname,
                        ..
                    }) => {
                        // Round-robin: no socket; connections come as `newconn`.
                        rr.add(c.worker, self.me.clone());
                        let reply = self.cluster_msg(json!({
                            "errno": 0, "key": key, "ack": seq, "data": data, "sockname": sockname,
                        }));
                        self.send(reply, None).await;
                    }
                    Ok(j) => {
                        let reply = json!({
                            "cmd": "NODE_HANDLE",
                            "type": "net.Native",
                            "msg": self.cluster_msg(json!({"errno": 0, "key": key, "ack": seq, "data": j.data})),
                        });
                        self.send(reply, Some(j.socket)).await;
                    }
                    Err(errno) => {
                        let what = format!(
                            "{}: cannot listen on {}",
                            nix::errno::Errno::from_raw(errno).desc(),
                            q.describe()
                        );
                        let code = nix::errno::Errno::from_raw(errno);
                        self.emit(IpcEvent::ListenError(Box::new(format!(
                            "{code:?} ({what})"
                        ))));
                        let reply = self.cluster_msg(
                            json!({"errno": -errno, "key": key, "ack": seq, "data": m["data"]}),
                        );
                        self.send(reply, None).await;
                    }
                }
            }
            "listening" => self.emit(IpcEvent::Listening {
                port: m["port"].as_i64().unwrap_or(0),
            }),
            "close" => {
                if let Some(k) = m["key"].as_str() {
                    c.listeners.leave(k, c.worker);
                }
            }
            "exitedAfterDisconnect" => {
                // Required: the worker waits for this ack before closing the channel.
                let ack = self.cluster_msg(json!({"ack": m["seq"]}));
                self.send(ack, None).await;
            }
            _ => {}
        }
    }

    async fn send(&mut self, msg: Value, fd: Option<Arc<OwnedFd>>) {
        self.send_line(line_of(&msg), fd).await;
    }

    async fn send_line(&mut self, mut line: Vec<u8>, fd: Option<Arc<OwnedFd>>) {
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        if self.inflight {
            self.queue.push_back((line, fd));
            return;
        }
        let has_fd = fd.is_some();
        if has_fd {
            self.fds_out.push_back(false);
        }
        self.write_now(&line, fd).await;
        self.inflight = has_fd;
    }

    async fn flush_queue(&mut self) {
        while !self.inflight {
            let Some((line, fd)) = self.queue.pop_front() else {
                return;
            };
            let has_fd = fd.is_some();
            if has_fd {
                self.fds_out.push_back(false);
            }
            self.write_now(&line, fd).await;
            self.inflight = has_fd;
        }
    }

    /// Write one whole line; the descriptor rides with its first byte.
    async fn write_now(&mut self, line: &[u8], fd: Option<Arc<OwnedFd>>) {
        let raw = self.stream.as_raw_fd();
        let mut off = 0;
        let mut pass = fd.as_ref().map(|f| f.as_raw_fd());
        while off < line.len() {
            if self.stream.writable().await.is_err() {
                return;
            }
            match self
                .stream
                .try_io(Interest::WRITABLE, || send_with_fd(raw, &line[off..], pass))
            {
                Ok(n) => {
                    off += n;
                    pass = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}

/// JavaScript's truthiness.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn line_of(v: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    l
}

fn send_with_fd(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [IoSlice::new(data)];
    let fds;
    let cmsgs: Vec<ControlMessage> = match fd {
        Some(f) => {
            fds = [f];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => vec![],
    };
    sendmsg::<()>(sock, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(std::io::Error::from)
}

fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(list) = c {
            // SAFETY: the kernel just gave us these descriptors; we own them now.
            fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod handoff_tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    /// `update` freezes a channel in the middle of a message: the part read so far goes with
    /// the fd, and the channel resumed on a copy of the fd reads the message whole.
    #[tokio::test]
    async fn a_message_cut_by_a_freeze_arrives_whole_after_resume() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let copy = ours.as_fd().try_clone_to_owned().unwrap();
        let agent = || Arc::new(Agent::new("t".into()));
        let (h, mut rx) = start(ours, None, agent()).unwrap();
        theirs.write_all(b"{\"a\":").unwrap();
        // Wait until the reader has taken the first part (the socket is empty again).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut b = [0u8; 1];
            let peeked = nix::sys::socket::recv(
                copy.as_raw_fd(),
                &mut b,
                nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            );
            if peeked.is_err() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never read");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let frozen = h.freeze().await.unwrap();
        assert_eq!(frozen.partial, b"{\"a\":");
        theirs.write_all(b"1}\n").unwrap();
        let (_h, mut rx2) = resume(
            std::os::unix::net::UnixStream::from(copy),
            None,
            agent(),
            frozen,
        )
        .unwrap();
        match rx2.recv().await {
            Some(IpcEvent::Message(v)) => assert_eq!(*v, serde_json::json!({"a": 1})),
            other => panic!("{other:?}"),
        }
        // The frozen channel said nothing more (no `Closed`: the process is not gone).
        assert!(rx.try_recv().is_err());
    }
}
