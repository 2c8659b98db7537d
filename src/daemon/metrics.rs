//! CPU and memory of each managed process tree, read from /proc.
//!
//! A tree is the main pid, every descendant, and every process still in its process group
//! (which catches grandchildren orphaned by a wrapper such as npm). Blocking: call from
//! `spawn_blocking`.

use crate::procfs::{read_stat, Stat};
use nix::unistd::{sysconf, SysconfVar};
use std::collections::HashMap;
use std::time::Instant;

/// Children and group members of every process of one scan, so that finding the trees of
/// 1,000 apps is one pass over the scan, not one per app and per member.
struct Index {
    children: HashMap<u32, Vec<u32>>,
    group: HashMap<u32, Vec<u32>>,
}

impl Index {
    fn new(stats: &HashMap<u32, Stat>) -> Index {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut group: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, s) in stats {
            children.entry(s.ppid).or_default().push(pid);
            group.entry(s.pgrp).or_default().push(pid);
        }
        Index { children, group }
    }

    /// Every pid in the tree of `root` (see the module comment), root included.
    fn tree(&self, root: u32) -> Vec<u32> {
        let mut members = vec![root];
        let mut seen: std::collections::HashSet<u32> = [root].into();
        let mut i = 0;
        while i < members.len() {
            for &c in self.children.get(&members[i]).into_iter().flatten() {
                if seen.insert(c) {
                    members.push(c);
                }
            }
            i += 1;
        }
        for &p in self.group.get(&root).into_iter().flatten() {
            if seen.insert(p) {
                members.push(p);
            }
        }
        members
    }
}

/// Pids of a process tree, for stopping it (`treekill`).
pub fn tree_pids(root: u32) -> Vec<u32> {
    Index::new(&super::scan::scan()).tree(root)
}

/// `root` and its descendants, found through each process's `task/*/children` (what PM2's
/// `ps --ppid` walk sees), without a scan of every process on the machine: `delete all` of
/// 1,000 apps made the kernel format /proc stat lines for every process, over and over. The
/// process group is not needed here: the stop sequence signals it with `killpg`. `None` when
/// the kernel has no `children` files (CONFIG_PROC_CHILDREN): use [`tree_pids`].
pub fn descendants(root: u32) -> Option<Vec<u32>> {
    let mut members = vec![root];
    let mut seen: std::collections::HashSet<u32> = [root].into();
    let mut i = 0;
    while i < members.len() {
        let pid = members[i];
        let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
            Ok(t) => t,
            // Gone since: it has no children to find.
            Err(_) => {
                i += 1;
                continue;
            }
        };
        for task in tasks.flatten() {
            match std::fs::read_to_string(task.path().join("children")) {
                Ok(list) => {
                    for c in list
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok())
                    {
                        if seen.insert(c) {
                            members.push(c);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && task.path().exists() => {
                    return None;
                }
                // The thread or process ended while we read.
                Err(_) => {}
            }
        }
        i += 1;
    }
    Some(members)
}

/// Remembers the previous CPU reading of each tree, so CPU is the average since the last call.
#[derive(Default)]
pub struct Sampler {
    prev: HashMap<u32, (u64, Instant)>,
    /// Tree members by root, from the last full /proc scan. Finding members needs every
    /// process's parent and group (a scan of the whole machine); their usage needs only their
    /// own stat files. Trees change rarely, so the scan is redone only when it is older than
    /// `rescan` or a root is new, which keeps `jlist` cheap on a busy host.
    members: HashMap<u32, Vec<u32>>,
    scanned: Option<Instant>,
    /// How long tree membership from a scan is trusted: `PM2_WORKER_INTERVAL`, else
    /// `knobs::DEFAULT_WORKER_INTERVAL_MS`. `Some` only in tests.
    rescan: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub memory: u64,
    pub cpu: f64,
}

impl Sampler {
    pub fn sample(&mut self, roots: &[u32]) -> HashMap<u32, Usage> {
        let mut out = HashMap::new();
        if roots.is_empty() {
            self.prev.clear();
            return out;
        }
        let now = Instant::now();
        let rescan = self.rescan.unwrap_or_else(|| crate::knobs::get().rescan());
        let fresh = self.scanned.is_some_and(|t| now.duration_since(t) < rescan)
            && roots.iter().all(|r| self.members.contains_key(r));
        let stats: HashMap<u32, Stat> = if fresh {
            self.members
                .values()
                .flatten()
                .filter_map(|&p| read_stat(p).map(|s| (p, s)))
                .collect()
        } else {
            let all = std::sync::Arc::unwrap_or_clone(super::scan::scan());
            let index = Index::new(&all);
            self.members = roots.iter().map(|&r| (r, index.tree(r))).collect();
            self.scanned = Some(now);
            all
        };
        let hz = clock_ticks();
        let page = page_size();
        let uptime_ticks = boot_uptime_secs().map(|s| s * hz as f64);
        let mut next = HashMap::new();
        for &root in roots {
            let Some(root_stat) = stats.get(&root) else {
                continue;
            };
            let pids = self
                .members
                .get(&root)
                .cloned()
                .unwrap_or_else(|| vec![root]);
            let (mut ticks, mut rss) = (0u64, 0u64);
            for p in &pids {
                if let Some(s) = stats.get(p) {
                    ticks += s.ticks;
                    rss += s.rss_pages * page;
                }
            }
            let cpu = match self.prev.get(&root) {
                Some(&(t0, at)) if ticks >= t0 && now > at => {
                    let secs = now.duration_since(at).as_secs_f64();
                    (ticks - t0) as f64 / hz as f64 / secs * 100.0
                }
                // First look at this tree: average over the main process's life, like `ps`.
                _ => match uptime_ticks {
                    Some(up) if up > root_stat.start_ticks as f64 => {
                        ticks as f64 / (up - root_stat.start_ticks as f64) * 100.0
                    }
                    _ => 0.0,
                },
            };
            next.insert(root, (ticks, now));
            out.insert(
                root,
                Usage {
                    memory: rss,
                    cpu: (cpu * 10.0).round() / 10.0,
                },
            );
        }
        self.prev = next;
        self.members.retain(|r, _| roots.contains(r));
        out
    }
}

fn clock_ticks() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => 100,
    }
}

fn page_size() -> u64 {
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(v)) if v > 0 => v as u64,
        _ => 4096,
    }
}

fn boot_uptime_secs() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_through_children_files() {
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"])
            .spawn()
            .unwrap();
        let root = sh.id();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let d = descendants(root).expect("this kernel has children files");
            if d.len() >= 4 || Instant::now() > deadline {
                break d;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let scanned = tree_pids(root);
        for &p in &found {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = sh.wait();
        // sh, its sleep, the inner sh and its sleep: the same set the full scan finds.
        assert_eq!(found.len(), 4, "{found:?}");
        let mut a = found.clone();
        let mut b = scanned;
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn tree_includes_grandchildren_and_sums_memory() {
        // sh → sleep (a grandchild of this test through sh).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .spawn()
            .unwrap();
        let root = child.id();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let pids = loop {
            let p = tree_pids(root);
            if p.len() >= 3 {
                break p;
            }
            assert!(Instant::now() < deadline, "tree never grew: {p:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let mut s = Sampler::default();
        let u = s.sample(&[root])[&root];
        assert!(u.memory > 0);
        assert!(u.cpu >= 0.0);
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        child.wait().unwrap();
    }

    #[test]
    fn a_tree_scan_is_trusted_for_the_rescan_interval() {
        use std::io::Write;
        // sh forks a child only once told to, after the first scan.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x; sleep 30 & wait"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let root = child.id();
        let mut slow = Sampler {
            rescan: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        };
        let mut fast = Sampler {
            rescan: Some(std::time::Duration::ZERO),
            ..Default::default()
        };
        slow.sample(&[root]);
        fast.sample(&[root]);
        assert_eq!(slow.members[&root], vec![root]);
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let pids = loop {
            let p = tree_pids(root);
            if p.len() >= 2 {
                break p;
            }
            assert!(Instant::now() < deadline, "tree never grew: {p:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        slow.sample(&[root]);
        fast.sample(&[root]);
        assert_eq!(slow.members[&root], vec![root], "scan trusted for an hour");
        assert_eq!(
            fast.members[&root].len(),
            2,
            "rescanned: {:?}",
            fast.members
        );
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        child.wait().unwrap();
    }
}
