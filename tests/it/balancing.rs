//! How cluster workers share a port: round-robin by default (the daemon hands each new
//! connection to the next worker), `instance_balancing: 'kernel'` for every worker accepting
//! on the socket itself (`crates/daemon/src/node/balance.rs`).

use crate::support::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Which process answers one request on an open keep-alive connection.
fn pid_on(conn: &mut TcpStream) -> u64 {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(body) = text.split("\r\n\r\n").nth(1).filter(|b| b.ends_with('}')) {
            return serde_json::from_str::<Value>(body).unwrap()["pid"]
                .as_u64()
                .unwrap();
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn spread(counts: &HashMap<u64, u32>) -> f64 {
    let max = *counts.values().max().unwrap() as f64;
    let min = *counts.values().min().unwrap() as f64;
    max / min
}

fn start(pmr: &Pmr, name: &str, n: usize, port: u16, balancing: Option<&str>) {
    let extra = balancing
        .map(|b| format!("instance_balancing: '{b}',"))
        .unwrap_or_default();
    let eco = pmr.dir.join(format!("{name}.config.js"));
    std::fs::write(
        &eco,
        format!(
            "module.exports = {{ apps: [{{ name: '{name}', script: '{}', instances: {n}, \
             exec_mode: 'cluster', env: {{ PORT: '{port}' }}, {extra} }}] }};",
            fixture("http.js")
        ),
    )
    .unwrap();
    pmr.run(&["start", eco.to_str().unwrap()]).ok();
    pids_answering(port, 1);
}

/// 16 keep-alive connections per worker, opened at once as a load generator does: each worker
/// holds its share (the kernel's spread gave 4 and 28 of 32 to two workers), and 200 fresh
/// connections one after another are spread evenly too.
#[test]
fn round_robin_spreads_kept_alive_and_fresh_connections_evenly() {
    for n in [2usize, 4] {
        let pmr = Pmr::new();
        let port = free_port();
        start(&pmr, "web", n, port, None);
        let workers = online_pids(&pmr);
        assert_eq!(workers.len(), n);
        let mut conns: Vec<TcpStream> = (0..16 * n).map(|_| connect(port)).collect();
        let mut kept: HashMap<u64, u32> = HashMap::new();
        for c in &mut conns {
            *kept.entry(pid_on(c)).or_default() += 1;
        }
        assert_eq!(kept.len(), n, "every worker holds connections: {kept:?}");
        assert!(spread(&kept) <= 1.5, "{n} workers, kept alive: {kept:?}");
        // The same connection stays with its worker.
        let first = pid_on(&mut conns[0]);
        assert_eq!(pid_on(&mut conns[0]), first);
        drop(conns);

        let mut fresh: HashMap<u64, u32> = HashMap::new();
        for _ in 0..200 {
            *fresh.entry(pid_on(&mut connect(port))).or_default() += 1;
        }
        let even = 200.0 / n as f64;
        assert!(
            fresh.len() == n
                && fresh
                    .values()
                    .all(|&c| (c as f64 - even).abs() <= 0.25 * even),
            "{n} workers, fresh: {fresh:?}"
        );
        pmr.run(&["delete", "all"]).ok();
    }
}

/// `kernel`: every worker accepts on the socket itself; the option shows in jlist.
/// `NODE_CLUSTER_SCHED_POLICY=none` in the app's env means the same, as for Node's primary.
#[test]
fn kernel_balancing_is_every_worker_accepting_itself() {
    let pmr = Pmr::new();
    let port = free_port();
    start(&pmr, "web", 2, port, Some("kernel"));
    assert_eq!(pids_answering(port, 2), online_pids(&pmr));
    let list = pmr.jlist();
    assert!(list
        .iter()
        .all(|p| p["pm2_env"]["instance_balancing"] == "kernel"));
    // Each worker holds the listening socket itself; under round-robin none does.
    let inode = listening_inode(port);
    for pid in online_pids(&pmr) {
        assert!(
            holds(pid, &inode),
            "worker {pid} holds no copy of the socket"
        );
    }
    let rr = Pmr::new();
    let port = free_port();
    start(&rr, "web", 2, port, None);
    let inode = listening_inode(port);
    for pid in online_pids(&rr) {
        assert!(
            !holds(pid, &inode),
            "round-robin worker {pid} holds the socket"
        );
    }
}

/// The inode of the socket listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A).
fn listening_inode(port: u16) -> String {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[1] == local && f[3] == "0A")
        .map(|f| f[9].to_string())
        .unwrap_or_else(|| panic!("nothing listens on {port}:\n{table}"))
}

/// Does process `pid` have the socket with that inode open?
fn holds(pid: u64, inode: &str) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|l| l.to_string_lossy() == want)
}

#[test]
fn an_unknown_balancing_is_refused_and_nothing_starts() {
    let pmr = Pmr::new();
    let eco = pmr.dir.join("bad.config.js");
    std::fs::write(
        &eco,
        format!(
            "module.exports = {{ apps: [{{ name: 'web', script: '{}', instances: 2, \
             instance_balancing: 'random' }}] }};",
            fixture("http.js")
        ),
    )
    .unwrap();
    let r = pmr.run(&["start", eco.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    let err = format!("{}{}", r.stdout, r.stderr);
    assert!(
        err.contains("instance_balancing") && err.contains("web") && err.contains("round_robin"),
        "{err}"
    );
    assert!(pmr.jlist().is_empty());
}
