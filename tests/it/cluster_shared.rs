//! Two cluster apps listening on one port share it, as under PM2's single Node primary: both
//! answer, a reload of one drops nothing, stopping one leaves the other serving, and the
//! socket is closed when the last worker of either goes.

use crate::load::Load;
use crate::support::*;
use std::collections::HashSet;
use std::time::Duration;

fn pids_of(pmr: &Pmr, name: &str) -> HashSet<u64> {
    pmr.jlist()
        .iter()
        .filter(|p| p["name"] == name && p["pm2_env"]["status"] == "online")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

fn start(pmr: &Pmr, script: &str, name: &str, n: &str, port: u16) {
    pmr.run_env(
        &["start", script, "-i", n, "--name", name],
        &[("PORT", &port.to_string())],
    )
    .ok();
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn two_apps_on_one_port_share_it_until_the_last_worker_leaves() {
    let pmr = Pmr::new();
    let port = free_port();
    start(&pmr, &fixture("http.js"), "a", "2", port);
    start(&pmr, &fixture("http.js"), "b", "1", port);
    let (a, b) = (pids_of(&pmr, "a"), pids_of(&pmr, "b"));
    assert_eq!((a.len(), b.len()), (2, 1), "{:#?}", pmr.jlist());
    // Every worker of both apps accepts on the one socket.
    let all: HashSet<u64> = a.union(&b).copied().collect();
    assert_eq!(pids_answering(port, 3), all);
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(!log.contains("EADDRINUSE"), "{log}");

    // Reloading one app while clients hammer the port: nothing refused, nothing broken.
    let close = Load::start(port, 4, false, Duration::from_secs(60));
    let keep = Load::start(port, 8, true, Duration::from_secs(60));
    let seen = keep.ok_so_far();
    wait_until("traffic flowing", || keep.ok_so_far() > seen + 200);
    pmr.run(&["reload", "a"]).ok();
    let a2 = pids_of(&pmr, "a");
    assert!(a.is_disjoint(&a2) && a2.len() == 2, "{a:?} then {a2:?}");
    let seen = keep.ok_so_far();
    wait_until("traffic after the reload", || keep.ok_so_far() > seen + 200);
    let (close, keep) = (close.finish(), keep.finish());
    eprintln!("reload of a: Connection: close {close:?}\nkeep-alive {keep:?}");
    assert_eq!(close.errors(), 0, "{close:?}");
    assert_eq!(
        (keep.connect, keep.non_2xx, keep.fresh_broken),
        (0, 0, 0),
        "{keep:?}"
    );
    assert!(keep.kept_alive_broken <= 2, "{keep:?}");

    // Stopping app a: b keeps the socket open and serves every request.
    let close = Load::start(port, 4, false, Duration::from_secs(60));
    let seen = close.ok_so_far();
    wait_until("traffic flowing", || close.ok_so_far() > seen + 100);
    pmr.run(&["stop", "a"]).ok();
    let seen = close.ok_so_far();
    wait_until("traffic after the stop", || close.ok_so_far() > seen + 200);
    let close = close.finish();
    eprintln!("stop of a: Connection: close {close:?}");
    // Requests a's workers had accepted when they were killed may break (a stop, not a
    // reload); a refused connection would mean the socket was closed with a's workers.
    assert_eq!((close.connect, close.non_2xx), (0, 0), "{close:?}");
    assert!(close.fresh_broken <= 4, "{close:?}");
    assert_eq!(pids_answering(port, 1), b);
    for _ in 0..30 {
        let body = http_get(port).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(b.contains(&v["pid"].as_u64().unwrap()), "{body}");
    }
    assert!(!port_is_free(port));

    // The last worker leaves: the daemon closes the socket and the port is free again.
    pmr.run(&["stop", "b"]).ok();
    wait_until("the port freed", || port_is_free(port));
    // And a later start binds it anew.
    pmr.run(&["start", "a"]).ok();
    assert_eq!(pids_answering(port, 2), pids_of(&pmr, "a"));
}

#[test]
fn an_app_started_on_a_port_another_app_serves_joins_it_even_without_a_host() {
    // listen(PORT) with no host: both apps ask for the dual-stack wildcard socket.
    let pmr = Pmr::new();
    let port = free_port();
    start(&pmr, &fixture("listen_any.js"), "a", "1", port);
    start(&pmr, &fixture("listen_any.js"), "b", "1", port);
    let all: HashSet<u64> = pids_of(&pmr, "a")
        .union(&pids_of(&pmr, "b"))
        .copied()
        .collect();
    assert_eq!(all.len(), 2, "{:#?}", pmr.jlist());
    assert_eq!(pids_answering(port, 2), all);
    // Deleting the first app leaves the second one serving.
    pmr.run(&["delete", "a"]).ok();
    assert_eq!(pids_answering(port, 1), pids_of(&pmr, "b"));
}

#[test]
fn listen_zero_stays_per_app() {
    // Node would give the first listen(0) of every worker one port, across apps too; pmr keeps
    // an ephemeral port to the app that asked, so unrelated apps never serve each other.
    let pmr = Pmr::new();
    let ports = |name: &str| -> serde_json::Value {
        pmr.run(&[
            "start",
            &fixture("listen_any.js"),
            "-i",
            "2",
            "--name",
            name,
        ])
        .ok();
        let mut found = Vec::new();
        let files: Vec<String> = pmr
            .jlist()
            .iter()
            .filter(|p| p["name"] == name)
            .map(|p| {
                p["pm2_env"]["pm_out_log_path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(files.len(), 2);
        for f in files {
            let mut line = String::new();
            wait_until(&f, || {
                line = std::fs::read_to_string(&f)
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.starts_with('{'))
                    .unwrap_or("")
                    .to_string();
                !line.is_empty()
            });
            found.push(serde_json::from_str::<serde_json::Value>(&line).unwrap()["ports"].clone());
        }
        assert_eq!(found[0], found[1], "one app's workers share their ports");
        found.remove(0)
    };
    let (x, y) = (ports("x"), ports("y"));
    for p in x.as_array().unwrap() {
        assert!(!y.as_array().unwrap().contains(p), "{x} and {y}");
    }
}

/// One HTTP/1.0 request over a unix socket: the pid that answered.
fn pid_over_unix(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let json = body.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .ok_or_else(|| std::io::Error::other(body))
}

#[test]
fn two_apps_on_one_unix_socket_share_it_and_the_last_one_unlinks_it() {
    let pmr = Pmr::new();
    let app = pmr.dir.join("unix_app.js");
    std::fs::write(
        &app,
        "require('http').createServer((q, r) => r.end(JSON.stringify({ pid: process.pid })))\
         .listen(process.env.SOCK);\n",
    )
    .unwrap();
    let sock = pmr.dir.join("app.sock");
    for name in ["a", "b"] {
        pmr.run_env(
            &["start", app.to_str().unwrap(), "-i", "1", "--name", name],
            &[("SOCK", sock.to_str().unwrap())],
        )
        .ok();
    }
    let (a, b) = (pids_of(&pmr, "a"), pids_of(&pmr, "b"));
    let all: HashSet<u64> = a.union(&b).copied().collect();
    assert_eq!(all.len(), 2, "{:#?}", pmr.jlist());
    let mut seen = HashSet::new();
    wait_until("both apps answering on the unix socket", || {
        for _ in 0..20 {
            if let Ok(p) = pid_over_unix(&sock) {
                seen.insert(p);
            }
        }
        seen == all
    });
    pmr.run(&["stop", "a"]).ok();
    for _ in 0..20 {
        assert!(b.contains(&pid_over_unix(&sock).unwrap()));
    }
    pmr.run(&["stop", "b"]).ok();
    wait_until("the socket file removed", || !sock.exists());
}
