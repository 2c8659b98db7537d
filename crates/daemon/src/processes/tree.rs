//! A process's tree for `treekill`: its descendants, signalled deepest first with its group,
//! and whether any of them outlives it.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// `pid`, its descendants (those that left the process group too: found through /proc; the
/// group itself gets `killpg`), and `known`, each once. Blocking work on the blocking pool.
pub async fn members(pid: u32, known: Vec<u32>) -> Vec<u32> {
    tokio::task::spawn_blocking(move || {
        let mut tree = crate::processes::metrics::descendants(pid)
            .unwrap_or_else(|| crate::processes::metrics::tree_pids(pid));
        for p in known {
            if !tree.contains(&p) {
                tree.push(p);
            }
        }
        tree
    })
    .await
    .unwrap_or_default()
}

/// `sig` to `pid` alone, or with `treekill` to every process of `tree` and to the group.
pub fn signal(pid: u32, tree: &[u32], treekill: bool, sig: Signal) {
    if !treekill {
        let _ = kill(Pid::from_raw(pid as i32), sig);
        return;
    }
    // Deepest first, as PM2 does, then the whole group at once.
    for &p in tree.iter().rev() {
        let _ = kill(Pid::from_raw(p as i32), sig);
    }
    let _ = killpg(Pid::from_raw(pid as i32), sig);
}

/// Whether a process of the tree or of its group still runs. A zombie does not: the
/// descendants of a process that is gone are reparented to init, which may take a second or
/// more to reap them (the group then still answers `killpg`). Blocking (/proc).
pub fn group_alive(pgid: u32, tree: &[u32]) -> bool {
    // Not the main process (`tree[0]`): it was reaped, its pid may already be another's.
    if tree.iter().skip(1).any(|&p| pmr_core::procfs::alive(p)) {
        return true;
    }
    if killpg(Pid::from_raw(pgid as i32), None).is_err() {
        return false;
    }
    // Members of the group we do not know, or only zombies: look at every process.
    crate::processes::scan::scan()
        .values()
        .any(|s| s.pgrp == pgid && !s.is_zombie())
}
