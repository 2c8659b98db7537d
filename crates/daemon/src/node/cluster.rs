//! Daemon-owned listening sockets for cluster mode (`docs/node-cluster-protocol.md` §3).
//!
//! Shared-handle mode: the first worker's `queryServer` binds a socket (bound and listening),
//! every worker that asks for the same handle gets a dup of it over IPC and accepts on it
//! itself, so the daemon is outside the data path. As under PM2 (one Node primary for every
//! app) a handle is keyed by Node's key (address, port, type, fd, index), not by app: two apps
//! listening on one port share it, and the kernel spreads connections over all their workers.
//! A socket stays open while any worker of any app holds it: during a reload the new worker
//! joins before the old one leaves, so no connection is refused; it is closed with the last.
//!
//! Round-robin mode (the default for TCP, `balance.rs`): the socket is not handed to the
//! workers; the daemon accepts on it and hands each connection to one worker in turn. A socket's
//! mode is set by the first worker that asks for it; every later one follows it.

use crate::node::balance::Balancer;
use pmr_core::spec::{ListenAddr, ListenKind};
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What a worker asked for in `queryServer`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub address: Option<String>,
    /// -1 for a unix socket.
    pub port: i64,
    /// 4, 6, or -1 for a unix socket.
    pub address_type: i64,
    pub backlog: i32,
}

impl Query {
    pub fn from_message(m: &Value) -> Query {
        let backlog = m["backlog"].as_i64().filter(|&b| b > 0).unwrap_or(511) as i32;
        Query {
            address: m["address"].as_str().map(str::to_string),
            port: m["port"].as_i64().unwrap_or(0),
            address_type: m["addressType"].as_i64().unwrap_or(4),
            backlog,
        }
    }

    /// Node's handle key: `address:port:addressType:fd:index`.
    pub fn key(m: &Value) -> String {
        let s = |v: &Value| match v {
            Value::Null => "null".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let fd = match &m["fd"] {
            Value::Null => "undefined".to_string(),
            v => s(v),
        };
        format!(
            "{}:{}:{}:{}:{}",
            s(&m["address"]),
            s(&m["port"]),
            s(&m["addressType"]),
            fd,
            s(&m["index"])
        )
    }

    /// Whose socket this query joins. A named port or path is shared by every app that asks
    /// for it, as under PM2's single Node primary. An ephemeral port (`listen(0)`) stays the
    /// app's own: Node's key would give the n-th `listen(0)` of two unrelated apps one port,
    /// so each would serve the other's clients.
    pub fn owner(&self, app: &str) -> Owner {
        if self.port == 0 && self.address_type != -1 {
            Owner::App(app.to_string())
        } else {
            Owner::Shared
        }
    }

    pub fn describe(&self) -> String {
        match (&self.address, self.address_type) {
            (Some(p), -1) => p.clone(),
            (Some(a), _) => format!("{a}:{}", self.port),
            (None, _) => format!(":::{}", self.port),
        }
    }
}

impl From<&ListenAddr> for Query {
    fn from(a: &ListenAddr) -> Query {
        let (address, port, address_type) = match &a.kind {
            ListenKind::Unix(path) => (Some(path.clone()), -1, -1),
            ListenKind::Tcp { ip: None, port } => (None, *port as i64, 4),
            ListenKind::Tcp { ip: Some(ip), port } => (
                Some(ip.to_string()),
                *port as i64,
                if ip.is_ipv6() { 6 } else { 4 },
            ),
        };
        Query {
            address,
            port,
            address_type,
            backlog: 511,
        }
    }
}

/// Who may share a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Owner {
    /// Every cluster worker of every app that asks for the key, as under Node's (and PM2's)
    /// single primary.
    Shared,
    /// One app's workers only: `listen` sockets, and ephemeral ports (see [`Query::owner`]).
    App(String),
}

struct Listener {
    socket: Arc<OwnedFd>,
    /// The first worker's `data` (TLS session ticket keys), echoed to every worker.
    data: Value,
    members: HashSet<u64>,
    unix_path: Option<PathBuf>,
    /// Round-robin: the daemon accepts and hands connections out.
    rr: Option<Arc<Balancer>>,
    /// Node's `server.address()` for round-robin workers, which get no socket to ask.
    sockname: Value,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(b) = &self.rr {
            b.close();
        }
    }
}

/// All listening sockets of the daemon, by owner and handle key.
#[derive(Default)]
pub struct Listeners {
    map: Mutex<HashMap<(Owner, String), Listener>>,
}

pub struct Joined {
    pub socket: Arc<OwnedFd>,
    pub data: Value,
    /// Round-robin: the worker gets connections from this, not the socket.
    pub rr: Option<Arc<Balancer>>,
    pub sockname: Value,
}

impl Listeners {
    /// Join `worker` to `owner`'s socket for `key`, binding it on first use (in round-robin
    /// mode if `round_robin` and it is TCP). Errors are errno values (positive), which the
    /// worker receives negated.
    pub fn join(
        &self,
        owner: Owner,
        key: &str,
        worker: u64,
        q: &Query,
        data: &Value,
        round_robin: bool,
    ) -> Result<Joined, i32> {
        let mut map = self.map.lock().unwrap();
        let k = (owner, key.to_string());
        if let Some(l) = map.get_mut(&k) {
            l.members.insert(worker);
            return Ok(l.joined());
        }
        let (socket, unix_path) = bind(q)?;
        let rr = match round_robin && unix_path.is_none() {
            true => Some(Balancer::start(key, &socket).map_err(|e| errno_of(&e))?),
            false => None,
        };
        let l = Listener {
            sockname: sockname(&socket),
            socket: Arc::new(socket),
            data: data.clone(),
            members: [worker].into_iter().collect(),
            unix_path,
            rr,
        };
        let j = l.joined();
        map.insert(k, l);
        Ok(j)
    }

    /// A worker handed over by `update` takes its round-robin connections again, through its
    /// resumed channel.
    pub fn rejoin(
        &self,
        worker: u64,
        tx: &tokio::sync::mpsc::UnboundedSender<crate::node::balance::Conn>,
    ) {
        for l in self.map.lock().unwrap().values() {
            if let (Some(b), true) = (&l.rr, l.members.contains(&worker)) {
                b.add(worker, tx.clone());
            }
        }
    }

    /// The worker closed that server: the socket is closed with its last member, whichever
    /// app that member belongs to. Worker ids are unique in the daemon, so the key and the
    /// worker find the socket whatever its owner.
    pub fn leave(&self, key: &str, worker: u64) {
        self.leave_where(worker, |k| k == key);
    }

    /// The worker went away (channel closed, process gone): it leaves every socket it held.
    pub fn leave_all(&self, worker: u64) {
        self.leave_where(worker, |_| true);
    }

    fn leave_where(&self, worker: u64, key_matches: impl Fn(&str) -> bool) {
        let mut map = self.map.lock().unwrap();
        map.retain(|(_, k), l| {
            if !key_matches(k) || !l.members.remove(&worker) {
                return true;
            }
            if let Some(b) = &l.rr {
                b.remove(worker);
            }
            if l.members.is_empty() {
                if let Some(p) = &l.unix_path {
                    let _ = std::fs::remove_file(p);
                }
                return false;
            }
            true
        });
    }

    /// `update`: a hold on every socket, with its members, so that it crosses the exec (the
    /// handed workers keep serving on it; a worker the new daemon starts again joins it, its
    /// connections queued meanwhile). Unix socket paths are taken out: no leave unlinks them
    /// from now on.
    pub fn hold_all(&self) -> Vec<Held> {
        let mut map = self.map.lock().unwrap();
        map.iter_mut()
            .map(|((owner, key), l)| Held {
                owner: owner.clone(),
                key: key.clone(),
                socket: l.socket.clone(),
                data: l.data.clone(),
                unix_path: l.unix_path.take(),
                members: l.members.iter().copied().collect(),
                round_robin: l.rr.is_some(),
            })
            .collect()
    }

    /// `update`: the daemon stops accepting on its round-robin sockets (the next one accepts
    /// again, see [`adopt`](Self::adopt)).
    pub fn stop_balancing(&self) {
        for l in self.map.lock().unwrap().values() {
            if let Some(b) = &l.rr {
                b.close();
            }
        }
    }

    /// The new daemon's side of [`hold_all`](Self::hold_all): the socket keeps its handed
    /// members, and waits for any worker started again that asks for its key.
    pub fn adopt(&self, h: Held) {
        let rr = match h.round_robin {
            true => match Balancer::start(&h.key, &h.socket) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!("cluster: {}: round-robin lost in update ({e})", h.key);
                    None
                }
            },
            false => None,
        };
        self.map
            .lock()
            .unwrap()
            .entry((h.owner, h.key))
            .or_insert(Listener {
                sockname: sockname(&h.socket),
                socket: h.socket,
                data: h.data,
                members: h.members.into_iter().collect(),
                unix_path: h.unix_path,
                rr,
            });
    }

    /// Close the adopted sockets no restored worker joined (their apps are not online).
    pub fn drop_unjoined(&self) {
        self.map.lock().unwrap().retain(|_, l| {
            if l.members.is_empty() {
                if let Some(p) = &l.unix_path {
                    let _ = std::fs::remove_file(p);
                }
                return false;
            }
            true
        });
    }

    /// How many sockets are open (for tests).
    pub fn count(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

/// A listening socket handed from a daemon to the one that replaces it (`update`).
pub struct Held {
    pub owner: Owner,
    pub key: String,
    pub socket: Arc<OwnedFd>,
    pub data: Value,
    pub unix_path: Option<PathBuf>,
    /// The workers that had joined it: those handed over (`update` in place) still have it.
    pub members: Vec<u64>,
    pub round_robin: bool,
}

impl Listener {
    fn joined(&self) -> Joined {
        Joined {
            socket: self.socket.clone(),
            data: self.data.clone(),
            rr: self.rr.clone(),
            sockname: self.sockname.clone(),
        }
    }
}

/// What Node's `getsockname` gives for a TCP socket: `{address, family, port}`.
fn sockname(fd: &OwnedFd) -> Value {
    match socket2::SockRef::from(fd)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
    {
        Some(a) => serde_json::json!({
            "address": a.ip().to_string(),
            "family": if a.is_ipv6() { "IPv6" } else { "IPv4" },
            "port": a.port(),
        }),
        None => Value::Null,
    }
}

/// A process's hold on its sockets: released (and each socket closed with its last holder)
/// when the process is dropped after it exits.
pub struct Membership {
    pub listeners: Arc<Listeners>,
    pub worker: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.listeners.leave_all(self.worker);
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// Bind as Node's primary would: no host → `[::]` dual-stack, falling back to `0.0.0.0`.
fn bind(q: &Query) -> Result<(OwnedFd, Option<PathBuf>), i32> {
    if q.address_type == -1 {
        let path = PathBuf::from(q.address.clone().ok_or(libc::EINVAL)?);
        let s =
            Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None).map_err(|e| errno_of(&e))?;
        let addr = socket2::SockAddr::unix(&path).map_err(|e| errno_of(&e))?;
        s.bind(&addr).map_err(|e| errno_of(&e))?;
        s.listen(q.backlog).map_err(|e| errno_of(&e))?;
        s.set_nonblocking(true).map_err(|e| errno_of(&e))?;
        return Ok((s.into(), Some(path)));
    }
    let port = u16::try_from(q.port).map_err(|_| libc::EINVAL)?;
    let tcp = |addr: SocketAddr, v6only: Option<bool>| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        if let Some(only) = v6only {
            s.set_only_v6(only)?;
        }
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(q.backlog)?;
        // Non-blocking, as libuv's own listening sockets are: O_NONBLOCK belongs to the open
        // file that every worker shares, and libuv does not set it on a socket it receives.
        // A blocking one makes a worker that loses an accept race sleep in accept(2), its
        // event loop stopped, until the next connection arrives.
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let sock = match &q.address {
        None => tcp(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            Some(false),
        )
        .or_else(|_| {
            tcp(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                None,
            )
        }),
        Some(a) => {
            let ip: IpAddr = a.parse().map_err(|_| libc::EINVAL)?;
            tcp(SocketAddr::new(ip, port), ip.is_ipv6().then_some(true))
        }
    }
    .map_err(|e| errno_of(&e))?;
    Ok((sock.into(), None))
}

/// The TCP port a socket is bound to.
pub fn fd_port(fd: &OwnedFd) -> Option<u16> {
    socket2::SockRef::from(fd)
        .local_addr()
        .ok()?
        .as_socket()
        .map(|a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_nodes() {
        let m = json!({"address": null, "port": 3000, "addressType": 4, "index": 0});
        assert_eq!(Query::key(&m), "null:3000:4:undefined:0");
        let m = json!({"address": "127.0.0.1", "port": 0, "addressType": 4, "fd": 7, "index": 1});
        assert_eq!(Query::key(&m), "127.0.0.1:0:4:7:1");
        assert_eq!(Query::from_message(&json!({"backlog": false})).backlog, 511);
    }

    fn query(port: i64) -> Query {
        Query {
            address: Some("127.0.0.1".into()),
            port,
            address_type: 4,
            backlog: 511,
        }
    }

    fn nonblocking(fd: &OwnedFd) -> bool {
        let flags = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            nix::fcntl::FcntlArg::F_GETFL,
        )
        .unwrap();
        flags & libc::O_NONBLOCK != 0
    }

    #[test]
    fn ephemeral_ports_are_per_app_and_closed_with_their_last_member() {
        let l = Listeners::default();
        let q = query(0);
        assert_eq!(q.owner("web"), Owner::App("web".into()));
        let a = l
            .join(q.owner("web"), "k", 1, &q, &Value::Null, false)
            .unwrap();
        let b = l
            .join(q.owner("web"), "k", 2, &q, &Value::Null, false)
            .unwrap();
        assert!(Arc::ptr_eq(&a.socket, &b.socket));
        // Workers' libuv relies on the shared open file being non-blocking.
        assert!(nonblocking(&a.socket));
        // Another app's n-th listen(0) gets a port of its own.
        let c = l
            .join(q.owner("other"), "k", 3, &q, &Value::Null, false)
            .unwrap();
        assert_ne!(fd_port(&a.socket), fd_port(&c.socket));
        l.leave("k", 1);
        assert_eq!(l.count(), 2);
        l.leave_all(2);
        l.leave_all(3);
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn a_named_port_is_shared_by_every_app_until_its_last_worker_leaves() {
        let l = Listeners::default();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let q = query(port as i64);
        assert_eq!(q.owner("a"), Owner::Shared);
        let data = serde_json::json!({"ticketKeys": "aa"});
        let a = l.join(q.owner("a"), "k", 1, &q, &data, false).unwrap();
        // App b's worker gets the same socket, and the first worker's TLS data.
        let b = l
            .join(q.owner("b"), "k", 2, &q, &Value::Null, false)
            .unwrap();
        assert!(Arc::ptr_eq(&a.socket, &b.socket));
        assert_eq!(b.data, data);
        assert_eq!(l.count(), 1);
        let socket = Arc::downgrade(&a.socket);
        drop((a, b));
        // App a goes away: b still holds the socket, so the port stays taken.
        l.leave_all(1);
        assert_eq!(l.count(), 1);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        // The last worker leaves: the socket is closed. (Not checked by binding the port
        // again: a test running beside this one may be given it as its ephemeral port.)
        l.leave("k", 2);
        assert_eq!(l.count(), 0);
        assert!(
            socket.upgrade().is_none(),
            "the listening socket is still open"
        );
    }

    #[test]
    fn held_sockets_outlive_their_workers_and_are_joined_after_adoption() {
        let old = Listeners::default();
        let q = query(0);
        let a = old
            .join(q.owner("web"), "k", 1, &q, &Value::Null, false)
            .unwrap();
        let port = fd_port(&a.socket).unwrap();
        drop(a);
        let held = old.hold_all();
        old.leave_all(1);
        assert_eq!(old.count(), 0);
        // Still open: the port stays taken across the stop of its last worker.
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        let new = Listeners::default();
        let sock = held[0].socket.clone();
        for h in held {
            new.adopt(h);
        }
        let b = new
            .join(q.owner("web"), "k", 2, &q, &Value::Null, false)
            .unwrap();
        assert!(Arc::ptr_eq(&b.socket, &sock));
        // An adopted socket nobody joined is closed after the restore; a joined one stays.
        let c = query(0);
        let other = Listeners::default();
        let x = other
            .join(c.owner("x"), "k2", 3, &c, &Value::Null, false)
            .unwrap();
        let x_port = fd_port(&x.socket).unwrap();
        drop(x);
        let unjoined = other.hold_all();
        assert_eq!(unjoined[0].members, [3]);
        other.leave_all(3);
        for mut h in unjoined {
            // Its worker was not handed over (stopped, or restarted by the new daemon).
            h.members.clear();
            new.adopt(h);
        }
        assert_eq!(new.count(), 2);
        new.drop_unjoined();
        assert_eq!(new.count(), 1);
        drop(sock);
        std::net::TcpListener::bind(("127.0.0.1", x_port)).unwrap();
    }

    #[test]
    fn an_adopted_socket_keeps_its_handed_members() {
        let old = Listeners::default();
        let q = query(0);
        drop(
            old.join(q.owner("web"), "k", 7, &q, &Value::Null, false)
                .unwrap(),
        );
        let new = Listeners::default();
        for h in old.hold_all() {
            new.adopt(h);
        }
        new.drop_unjoined();
        assert_eq!(new.count(), 1);
        // The handed worker's exit (its `Membership` dropped) closes it.
        new.leave_all(7);
        assert_eq!(new.count(), 0);
    }

    #[tokio::test]
    async fn round_robin_is_for_tcp_and_set_by_the_first_worker() {
        let l = Listeners::default();
        let a = l
            .join(Owner::Shared, "k", 1, &query(0), &Value::Null, true)
            .unwrap();
        assert!(a.rr.is_some());
        assert_eq!(a.sockname["port"], fd_port(&a.socket).unwrap());
        assert_eq!(a.sockname["family"], "IPv4");
        // A later worker follows the socket's mode, whatever its own app says.
        let b = l
            .join(Owner::Shared, "k", 2, &query(0), &Value::Null, false)
            .unwrap();
        assert!(b.rr.is_some());
        let dir = std::env::temp_dir().join(format!("pmr-rr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let unix = Query {
            address: Some(path.to_string_lossy().into()),
            port: -1,
            address_type: -1,
            backlog: 511,
        };
        let u = l
            .join(Owner::Shared, "u", 3, &unix, &Value::Null, true)
            .unwrap();
        assert!(u.rr.is_none(), "a unix socket is always shared");
        l.leave_all(3);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn app_owned_sockets_still_conflict_with_another_app() {
        let l = Listeners::default();
        let a = l
            .join(
                Owner::App("a".into()),
                "listen:x",
                1,
                &query(0),
                &Value::Null,
                false,
            )
            .unwrap();
        let q = query(fd_port(&a.socket).unwrap() as i64);
        assert_eq!(
            l.join(
                Owner::App("b".into()),
                "listen:x",
                2,
                &q,
                &Value::Null,
                false
            )
            .err(),
            Some(libc::EADDRINUSE)
        );
    }
}
