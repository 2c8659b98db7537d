//! The daemon itself: one per home, its socket, bad peers and bad frames.

use crate::support::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

/// Pids of `pmr daemon` processes serving `home`.
fn daemons_of(home: &std::path::Path) -> Vec<u32> {
    let want = format!("PMR_HOME={}", home.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmd.ends_with(b"\0daemon\0")
                && env.split(|&b| b == 0).any(|v| v == want.as_bytes())
                && alive(*pid)
        })
        .collect()
}

#[test]
fn concurrent_clis_start_exactly_one_daemon() {
    let pmr = Pmr::new();
    let children: Vec<_> = (0..4)
        .map(|_| {
            pmr.cmd()
                .arg("ping")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "{ msg: 'pong' }"
        );
    }
    // Losers of the lock race exit at once; poll until only the winner is left.
    wait_until("a single daemon", || daemons_of(&pmr.home).len() == 1);
    assert_eq!(daemons_of(&pmr.home), vec![pmr.daemon_pid().unwrap()]);
}

#[test]
fn socket_is_private_and_other_uids_are_refused() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let sock = pmr.home.join("rpc.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Even with the file opened up, the daemon refuses a peer of another uid.
    if nix_is_root() {
        std::fs::set_permissions(&pmr.home, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        let out = pmr
            .cmd()
            .arg("ping")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a client of another uid was served");
        let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
        assert!(log.contains("refused a client of uid 65534"), "{log}");
        pmr.run(&["ping"]).ok();
    }
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn garbage_frames_are_logged_and_the_daemon_keeps_serving() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    let sock = pmr.home.join("rpc.sock");
    // Not JSON.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&7u32.to_be_bytes()).unwrap();
    s.write_all(b"garbage").unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    // A length far over the limit.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let _ = s.read_to_end(&mut reply);
    // Half a frame, then hang up.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&100u32.to_be_bytes()).unwrap();
    drop(s);

    assert_eq!(pmr.jlist().len(), 1);
    assert_eq!(pmr.status(0), "online");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(log.contains("bad frame from a client"), "{log}");
}

#[test]
fn a_stale_socket_and_pid_file_are_replaced() {
    let pmr = Pmr::new();
    std::fs::create_dir_all(&pmr.home).unwrap();
    // A socket file nobody listens on, as a crashed daemon leaves behind.
    let stale = std::os::unix::net::UnixListener::bind(pmr.home.join("rpc.sock")).unwrap();
    drop(stale);
    std::fs::write(pmr.home.join("pmr.pid"), "999999").unwrap();
    pmr.run(&["ping"]).ok();
    let pid = pmr.daemon_pid().unwrap();
    assert!(alive(pid));
}

#[test]
fn the_daemon_survives_the_cli_and_apps_outlive_it() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh")]).ok();
    let daemon = pmr.daemon_pid().unwrap();
    // The CLI has exited; the daemon is in its own session.
    assert!(alive(daemon));
    let sid = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let fields: Vec<&str> = sid[sid.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(
        fields[3],
        daemon.to_string(),
        "daemon leads its own session"
    );
    assert!(pmr.home.join("pmr.log").exists());
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// An app that sends descriptors over its IPC channel without NODE_HANDLE messages to claim
/// them cannot make the daemon hoard them: they are closed, and the daemon keeps serving.
#[test]
fn unclaimed_descriptors_sent_over_ipc_are_closed() {
    let pmr = Pmr::new();
    // pmr opens the Node IPC channel for interpreters named node: a python3 under that name.
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    let node = pmr.dir.join("bin/node");
    std::fs::create_dir_all(node.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(python.trim(), &node).unwrap();

    pmr.run(&["ping"]).ok();
    let daemon = pmr.daemon_pid().unwrap();
    let before = open_fds(daemon);
    let sent_file = pmr.dir.join("sent");
    // No unhandled-rejection preload: python3 would not understand `--require`.
    let config = pmr.dir.join("spam.json");
    std::fs::write(
        &config,
        serde_json::json!({"apps": [{
            "name": "spam",
            "script": fixture("fd_spam.py"),
            "interpreter": node,
            "catch_unhandled_rejections": false,
        }]})
        .to_string(),
    )
    .unwrap();
    pmr.run_env(
        &["start", config.to_str().unwrap()],
        &[("SENT_FILE", sent_file.to_str().unwrap())],
    )
    .ok();
    // 4 descriptors per message: 3,000 messages are 12,000 descriptors.
    wait_until("3000 messages sent", || {
        std::fs::read_to_string(&sent_file)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= 3000)
    });
    let during = open_fds(daemon);
    assert!(
        during < before + 100,
        "the daemon holds {during} descriptors (it had {before})"
    );
    pmr.run(&["ping"]).ok();
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pm2_env"]["status"], "online", "{p:#}");
    assert_eq!(p["pm2_env"]["restart_time"], 0, "{p:#}");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert_eq!(
        log.matches("without a NODE_HANDLE message").count(),
        1,
        "{log}"
    );
}
