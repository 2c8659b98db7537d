//! Many apps and many restarts: the daemon keeps answering, leaks no fd, leaves no zombie.

use crate::support::*;
use std::time::{Duration, Instant};

const APPS: usize = 100;
const RESTARTS: usize = 300;
const AT_ONCE: usize = 25;
/// Generous for 2 busy cores: a `restart` alone takes tens of milliseconds.
const CALL_BOUND: Duration = Duration::from_secs(15);

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Children of `parent` that exited and were not reaped.
fn zombies_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn all_online(pmr: &Pmr) -> Option<Vec<u64>> {
    let list = pmr.jlist();
    let pids: Vec<u64> = list
        .iter()
        .filter(|p| p["pm2_env"]["status"] == "online")
        .filter_map(|p| p["pid"].as_u64().filter(|&p| p != 0))
        .collect();
    (list.len() == APPS && pids.len() == APPS).then_some(pids)
}

#[test]
fn restarts_of_100_apps_leak_no_fd_and_leave_no_zombie() {
    let pmr = Pmr::new();
    let apps: Vec<_> = (0..APPS)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "script": "sleep", "args": "100000"}))
        .collect();
    let file = pmr.dir.join("many.json");
    std::fs::write(&file, serde_json::json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", file.to_str().unwrap()]).ok();
    let mut first = Vec::new();
    wait_until("100 apps online", || {
        all_online(&pmr).map(|p| first = p).is_some()
    });
    let daemon = pmr.daemon_pid().unwrap();
    let fds_before = fds(daemon);

    let started = Instant::now();
    let slowest = std::thread::scope(|s| {
        let workers: Vec<_> = (0..AT_ONCE)
            .map(|w| {
                let pmr = &pmr;
                s.spawn(move || {
                    let mut slowest = Duration::ZERO;
                    for i in (w..RESTARTS).step_by(AT_ONCE) {
                        let t = Instant::now();
                        pmr.run(&["restart", &format!("s{}", i % APPS)]).ok();
                        slowest = slowest.max(t.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    });
    assert!(
        slowest < CALL_BOUND,
        "a restart took {slowest:?} ({RESTARTS} restarts, {AT_ONCE} at a time, {:?} in all)",
        started.elapsed()
    );

    let mut now = Vec::new();
    wait_until("100 apps online again", || {
        all_online(&pmr).map(|p| now = p).is_some()
    });
    let restarts: u64 = pmr
        .jlist()
        .iter()
        .map(|p| p["pm2_env"]["restart_time"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, RESTARTS as u64);
    for pid in &first {
        assert!(!now.contains(pid), "pid {pid} was not restarted");
        wait_until(&format!("old pid {pid} gone"), || !alive(*pid as u32));
    }
    // Pipes of the old processes close as their pumps see EOF: give them the deadline.
    wait_until("the daemon's fds back to their count before", || {
        fds(daemon) <= fds_before
    });
    wait_until("no zombie child of the daemon", || {
        zombies_of(daemon).is_empty()
    });
    let t = Instant::now();
    pmr.run(&["delete", "all"]).ok();
    assert!(
        t.elapsed() < CALL_BOUND,
        "delete all took {:?}",
        t.elapsed()
    );
    for pid in &now {
        wait_until(&format!("pid {pid} stopped"), || !alive(*pid as u32));
    }
}

/// The daemon's anonymous resident memory (heap, stacks): what its per-app structures use.
fn anon_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Per-app memory of the daemon, with a generous margin: the debug build measured 60 KB per
/// idle app before the environments were shared and the per-process queues and tasks made
/// small, 24 KB after (a release build uses less).
const KB_PER_APP: u64 = 40;

#[test]
fn idle_apps_cost_the_daemon_little_memory_each() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let daemon = pmr.daemon_pid().unwrap();
    let empty = anon_kb(daemon);
    let apps: Vec<_> = (0..APPS)
        .map(|i| {
            serde_json::json!({"name": format!("m{i}"), "script": "sleep", "args": "100000",
            "env": {"PORT": 3000 + i}})
        })
        .collect();
    let file = pmr.dir.join("many.json");
    std::fs::write(&file, serde_json::json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", file.to_str().unwrap()]).ok();
    wait_until("100 apps online", || all_online(&pmr).is_some());
    // What starting them used and freed is handed back within seconds (`alloc::reclaimer`).
    let mut per_app = 0;
    let within = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            per_app = anon_kb(daemon).saturating_sub(empty) / APPS as u64;
            if per_app <= KB_PER_APP {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })();
    assert!(
        within,
        "{per_app} KB of daemon memory per idle app (at most {KB_PER_APP})"
    );
}

fn jlist_to_pipe(pmr: &Pmr) -> std::process::Child {
    pmr.cmd()
        .arg("jlist")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A `jlist` of hundreds of KB reaches a pipe whole, in a pipe widened for it (1 MiB, not the
/// default 64 KiB), and a reader that stops early ends the CLI without error or hang; the
/// daemon keeps answering.
#[test]
fn a_long_jlist_streams_through_a_wide_pipe_and_a_closed_one_is_no_error() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let pmr = Pmr::new();
    let n = 40;
    let apps: Vec<_> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("long{i}"), "script": "sleep", "args": "100000",
                "env": { "LONG": "x".repeat(4000) },
            })
        })
        .collect();
    let file = pmr.dir.join("long.json");
    std::fs::write(&file, serde_json::json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", file.to_str().unwrap()]).ok();
    wait_until("all online", || {
        let l = pmr.jlist();
        l.len() == n && l.iter().all(|p| p["pm2_env"]["status"] == "online")
    });

    let mut child = jlist_to_pipe(&pmr);
    let mut out = child.stdout.take().unwrap();
    let mut text = Vec::new();
    out.read_to_end(&mut text).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(text.len() > 64 * 1024 * 4, "{} bytes", text.len());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
    assert_eq!(list.len(), n);
    assert!(list
        .iter()
        .all(|p| p["pm2_env"]["env"]["LONG"].as_str().unwrap().len() == 4000));
    let size = nix::fcntl::fcntl(out.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();
    assert!(size >= 256 * 1024, "pipe of {size} bytes");

    let mut child = jlist_to_pipe(&pmr);
    let mut first = [0u8; 100];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "jlist hangs on a closed pipe");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(pmr.jlist().len(), n, "the daemon still answers");
    pmr.run(&["delete", "all"]).ok();
}
