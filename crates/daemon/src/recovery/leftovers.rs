//! The processes a dead daemon left running, found and stopped by the daemon that replaces it
//! (see `recover.rs` for why they are stopped rather than adopted).
//!
//! Found two ways: the table's record of every child (pid and start time), and, for a child
//! started in the moment before the table recorded it, a scan of /proc for leaders of their
//! own process group (as pmr starts every app) whose environment names this home and a
//! `pm_id`, started after the dead daemon, and whose parent is not itself such a process (an
//! app's own child is stopped with its group). Either way a process is only signalled while
//! its pid still has the start time it was found with: a reused pid is never touched.

use crate::instances::table_file::{Proc, Table};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::Duration;
use tokio::time::Instant;

/// A leftover to stop, and the other members of its process group when it leads one.
struct Target {
    p: Proc,
    members: Vec<Proc>,
}

/// Stop every leftover of `t`'s daemon, all at once, but the processes in `keep` (handed
/// over by `update`: taken over, not left over); returns how many were running.
pub async fn stop_all(t: &Table, home: &str, keep: &[u32]) -> usize {
    let (home_var, home, me) = (
        pmr_core::personality::current().home_var(),
        home.to_string(),
        std::process::id(),
    );
    let (recorded, since) = (t.processes.clone(), t.daemon_start_ticks);
    let found = tokio::task::spawn_blocking(move || find(recorded, home_var, &home, since, me))
        .await
        .unwrap_or_default();

    let knobs = pmr_core::knobs::get();
    let mut jobs = tokio::task::JoinSet::new();
    for target in found.into_iter().filter(|f| !keep.contains(&f.p.pid)) {
        let timeout = t
            .apps
            .iter()
            .find(|a| a.id == target.p.id)
            .map(|a| knobs.kill_timeout(a.spec.kill_timeout))
            .unwrap_or_else(|| knobs.kill_timeout(pmr_core::knobs::DEFAULT_KILL_TIMEOUT));
        jobs.spawn(stop_one(target, knobs.stop_signal(), timeout));
    }
    let mut n = 0;
    while let Some(r) = jobs.join_next().await {
        n += usize::from(r.unwrap_or(false));
    }
    n
}

/// The recorded processes still running as recorded, plus those of this home that no daemon
/// owns (see the module comment), from one read of /proc. Blocking.
fn find(recorded: Vec<Proc>, home_var: &str, home: &str, since: u64, me: u32) -> Vec<Target> {
    let mut stats = std::collections::HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(st) = pmr_core::procfs::read_stat(pid).filter(|s| !s.is_zombie()) {
                    stats.insert(pid, st);
                }
            }
        }
    }
    let marker = format!("{home_var}={home}");
    // Not us, nor the CLI that started us (it may run inside an app).
    let parent = stats.get(&me).map(|s| s.ppid);
    let mut all: Vec<Proc> = recorded
        .into_iter()
        .filter(|p| {
            stats
                .get(&p.pid)
                .is_some_and(|s| s.start_ticks == p.start_ticks)
        })
        .collect();
    for (&pid, st) in &stats {
        if pid == me || Some(pid) == parent || st.pgrp != pid || st.start_ticks < since {
            continue;
        }
        let Some(id) = app_id(pid, &marker) else {
            continue;
        };
        // An app's own child that leads a group of its own goes with the app.
        if app_id(st.ppid, &marker).is_some() {
            continue;
        }
        let p = Proc {
            pid,
            start_ticks: st.start_ticks,
            id,
        };
        if !all.contains(&p) {
            tracing::warn!(
                "pid {pid} (instance {id}) is not in the table but was started by a previous daemon"
            );
            all.push(p);
        }
    }
    let mut groups: std::collections::HashMap<u32, Vec<Proc>> = Default::default();
    for (&pid, st) in &stats {
        if st.pgrp != pid {
            groups.entry(st.pgrp).or_default().push(Proc {
                pid,
                start_ticks: st.start_ticks,
                id: 0,
            });
        }
    }
    all.into_iter()
        .map(|p| {
            let leads = stats.get(&p.pid).is_some_and(|s| s.pgrp == p.pid);
            let members = if leads {
                groups.remove(&p.pid).unwrap_or_default()
            } else {
                Vec::new()
            };
            Target { p, members }
        })
        .collect()
}

/// The `pm_id` of a process whose environment names this home.
fn app_id(pid: u32, marker: &str) -> Option<u32> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let mut home = false;
    let mut id = None;
    for var in env.split(|&b| b == 0) {
        if var == marker.as_bytes() {
            home = true;
        } else if let Some(v) = var.strip_prefix(b"pm_id=") {
            id = std::str::from_utf8(v).ok()?.parse().ok();
        }
    }
    id.filter(|_| home)
}

/// Is `p` still the process that was found, and is it its own group's leader? `None` when it
/// is gone, a zombie, or another process.
fn verify(p: Proc) -> Option<bool> {
    let st = pmr_core::procfs::read_stat(p.pid)?;
    (st.start_ticks == p.start_ticks && !st.is_zombie()).then_some(st.pgrp == p.pid)
}

async fn verify_async(p: Proc) -> Option<bool> {
    tokio::task::spawn_blocking(move || verify(p))
        .await
        .ok()
        .flatten()
}

/// The stop sequence for a process that is not our child: the stop signal to its group, SIGKILL
/// after `kill_timeout`, then SIGKILL to the members of its group still there (each verified:
/// once the leader is gone, its group id could be reused).
async fn stop_one(target: Target, sig: Signal, timeout_ms: u64) -> bool {
    let Target { p, members } = target;
    // Checked again just before the first signal.
    let Some(group) = verify_async(p).await else {
        return false;
    };
    let send = |sig: Signal| {
        // The group only while its leader is verified: its pid (the group's id) cannot be
        // reused while the group exists.
        let _ = if group {
            killpg(Pid::from_raw(p.pid as i32), sig)
        } else {
            kill(Pid::from_raw(p.pid as i32), sig)
        };
    };
    tracing::info!(
        "stopping pid {} (instance {}) left by the previous daemon",
        p.pid,
        p.id
    );
    send(sig);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut killed = false;
    while verify_async(p).await.is_some() {
        if Instant::now() >= deadline && !killed {
            tracing::warn!(
                "pid {} still alive after kill_timeout ({timeout_ms} ms): SIGKILL",
                p.pid
            );
            send(Signal::SIGKILL);
            killed = true;
        } else if Instant::now() >= deadline + Duration::from_secs(2) {
            tracing::error!("pid {} survives SIGKILL", p.pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Whatever else was in its group (the app's own children) goes with it.
    let _ = tokio::task::spawn_blocking(move || {
        for m in members {
            if verify(m).is_some() {
                let _ = kill(Pid::from_raw(m.pid as i32), Signal::SIGKILL);
            }
        }
    })
    .await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A process as pmr starts an app: leader of its own group, this home and a pm_id in its
    /// environment.
    fn fake_app(home: &str, id: &str) -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .env("PMR_HOME", home)
            .env("pm_id", id)
            .process_group(0)
            .spawn()
            .unwrap()
    }

    fn ticks(pid: u32) -> u64 {
        pmr_core::procfs::read_stat(pid).unwrap().start_ticks
    }

    #[test]
    fn finds_the_apps_of_this_home_only_and_drops_stale_records() {
        let home = format!("/tmp/pmr-leftovers-{}", std::process::id());
        let mut mine = fake_app(&home, "7");
        let mut other = fake_app(&format!("{home}-other"), "7");
        // `/proc/<pid>/environ` is the environment after exec: wait until sleep runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while app_id(mine.id(), &format!("PMR_HOME={home}")).is_none() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let me = std::process::id();
        // A record of a pid at another time (reused since) is dropped; the scan finds the app.
        let stale = Proc {
            pid: other.id(),
            start_ticks: ticks(other.id()) + 1,
            id: 3,
        };
        let found = find(vec![stale], "PMR_HOME", &home, 0, me);
        let pids: Vec<(u32, u32)> = found.iter().map(|t| (t.p.pid, t.p.id)).collect();
        assert_eq!(pids, [(mine.id(), 7)]);
        // Started before the dead daemon: not its child.
        let later = ticks(mine.id()) + 1;
        assert!(find(vec![], "PMR_HOME", &home, later, me).is_empty());
        // A record that matches is kept, once.
        let exact = Proc {
            pid: mine.id(),
            start_ticks: ticks(mine.id()),
            id: 7,
        };
        assert_eq!(find(vec![exact], "PMR_HOME", &home, 0, me).len(), 1);
        for c in [&mut mine, &mut other] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
