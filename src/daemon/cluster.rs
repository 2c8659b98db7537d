//! Daemon-owned listening sockets for cluster mode (`../shared/node-cluster-protocol.md` §3).
//!
//! Shared-handle mode: the first worker's `queryServer` binds a socket (bound and listening),
//! every worker of the app gets a dup of it over IPC and accepts on it itself, so the daemon is
//! outside the data path. Sockets are keyed per app, so two apps asking for one port conflict as
//! two programs would (EADDRINUSE), and they stay open while any worker of the app holds them:
//! during a reload the new worker joins before the old one leaves, so no connection is refused.

use crate::spec::{ListenAddr, ListenKind};
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

struct Listener {
    socket: Arc<OwnedFd>,
    /// The first worker's `data` (TLS session ticket keys), echoed to every worker.
    data: Value,
    members: HashSet<u64>,
    unix_path: Option<PathBuf>,
}

/// All listening sockets of the daemon, by (app name, handle key).
#[derive(Default)]
pub struct Listeners {
    map: Mutex<HashMap<(String, String), Listener>>,
}

pub struct Joined {
    pub socket: Arc<OwnedFd>,
    pub data: Value,
}

impl Listeners {
    /// Join worker `worker` of `app` to the socket for `key`, binding it on first use.
    /// Errors are errno values (positive), which the worker receives negated.
    pub fn join(
        &self,
        app: &str,
        key: &str,
        worker: u64,
        q: &Query,
        data: &Value,
    ) -> Result<Joined, i32> {
        let mut map = self.map.lock().unwrap();
        let k = (app.to_string(), key.to_string());
        if let Some(l) = map.get_mut(&k) {
            l.members.insert(worker);
            return Ok(Joined {
                socket: l.socket.clone(),
                data: l.data.clone(),
            });
        }
        let (socket, unix_path) = bind(q)?;
        let socket = Arc::new(socket);
        map.insert(
            k,
            Listener {
                socket: socket.clone(),
                data: data.clone(),
                members: [worker].into_iter().collect(),
                unix_path,
            },
        );
        Ok(Joined {
            socket,
            data: data.clone(),
        })
    }

    /// The worker closed that server (or went away): the socket is closed with its last member.
    pub fn leave(&self, app: &str, key: &str, worker: u64) {
        let mut map = self.map.lock().unwrap();
        let k = (app.to_string(), key.to_string());
        let empty = match map.get_mut(&k) {
            Some(l) => {
                l.members.remove(&worker);
                l.members.is_empty()
            }
            None => false,
        };
        if empty {
            if let Some(l) = map.remove(&k) {
                if let Some(p) = l.unix_path {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    pub fn leave_all(&self, app: &str, worker: u64) {
        let keys: Vec<String> = {
            let map = self.map.lock().unwrap();
            map.iter()
                .filter(|((a, _), l)| a == app && l.members.contains(&worker))
                .map(|((_, k), _)| k.clone())
                .collect()
        };
        for k in keys {
            self.leave(app, &k, worker);
        }
    }

    /// Raw fds of an app's sockets (for tests and `describe`).
    pub fn count(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

/// A process's hold on its app's sockets: released (and the sockets closed with their last
/// holder) when the process is dropped after it exits.
pub struct Membership {
    pub listeners: Arc<Listeners>,
    pub app: String,
    pub worker: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.listeners.leave_all(&self.app, self.worker);
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

    #[test]
    fn one_socket_per_app_and_key_closed_with_its_last_member() {
        let l = Listeners::default();
        let q = Query {
            address: Some("127.0.0.1".into()),
            port: 0,
            address_type: 4,
            backlog: 511,
        };
        let a = l.join("web", "k", 1, &q, &Value::Null).unwrap();
        let b = l.join("web", "k", 2, &q, &Value::Null).unwrap();
        assert!(Arc::ptr_eq(&a.socket, &b.socket));
        let port = fd_port(&a.socket).unwrap();
        // Workers' libuv relies on the shared open file being non-blocking.
        let flags = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&*a.socket),
            nix::fcntl::FcntlArg::F_GETFL,
        )
        .unwrap();
        assert!(flags & libc::O_NONBLOCK != 0);
        // Another app asking for the same port conflicts, as two programs would.
        let q2 = Query {
            port: port as i64,
            ..q.clone()
        };
        assert_eq!(
            l.join("other", "k", 3, &q2, &Value::Null).err(),
            Some(libc::EADDRINUSE)
        );
        l.leave("web", "k", 1);
        assert_eq!(l.count(), 1);
        l.leave_all("web", 2);
        assert_eq!(l.count(), 0);
    }
}
