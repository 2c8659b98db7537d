//! CPU and memory of each managed process tree, read from /proc.
//!
//! A tree is the main pid, every descendant, and every process still in its process group
//! (which catches grandchildren orphaned by a wrapper such as npm). Blocking: call from
//! `spawn_blocking`.

use nix::unistd::{sysconf, SysconfVar};
use pmr_core::procfs::{cpu_time_ns, read_rss_pages_of, read_stat, Stat};
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
    Index::new(&crate::processes::scan::scan()).tree(root)
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
    /// CPU time of each tree (ns) and when it was read.
    prev: HashMap<u32, (u64, Instant)>,
    /// Tree members by root, from the last full /proc scan. Finding members needs every
    /// process's parent and group (a scan of the whole machine); their usage needs only their
    /// own figures. Trees change rarely, so the scan is redone only when it is older than
    /// `rescan` or a root is new, which keeps `jlist` cheap on a busy host.
    members: HashMap<u32, Vec<u32>>,
    scanned: Option<Instant>,
    /// How long tree membership from a scan is trusted: `PM2_WORKER_INTERVAL`, else
    /// `knobs::DEFAULT_WORKER_INTERVAL_MS`. `Some` only in tests.
    rescan: Option<std::time::Duration>,
    /// Members' statm files kept open between samples ([`Sampler::keeping_files`]).
    files: Option<StatmFiles>,
    /// A sample used a scan older than `rescan` ([`Sampler::sample`]'s `defer`): the next
    /// one scans if [`Sampler::rescan`] has not been called in between.
    due: bool,
}

/// What a sample reads of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    cpu_ns: u64,
    rss_pages: u64,
}

/// The reading of `pid`: its CPU clock, then resident pages from `statm` (opened now unless
/// given). The file is bound to the process it was opened for, and read after the clock: if
/// it still reads, the pid was that process's when the clock was read, never a later one's.
fn read_usage(statm: Option<&std::fs::File>, pid: u32) -> Got {
    let read = |f: &std::fs::File| -> Option<Reading> {
        let cpu_ns = cpu_time_ns(pid)?;
        Some(Reading {
            cpu_ns,
            rss_pages: read_rss_pages_of(f)?,
        })
    };
    match statm {
        Some(f) => read(f).map_or(Got::Gone, Got::Kept),
        None => {
            let Ok(f) = std::fs::File::open(format!("/proc/{pid}/statm")) else {
                return Got::Gone;
            };
            match read(&f) {
                Some(r) => Got::New(r, f),
                None => Got::Gone,
            }
        }
    }
}

/// Open `/proc/<pid>/statm` files, read again at each sample, with the CPU clock of their
/// process. Opening is a path walk and a permission check per file and closing another call:
/// with a thousand apps that was 40% of the sample, itself half of a `jlist`; a `stat` line
/// instead of `statm` and the clock is twice the kernel's work. One descriptor per member,
/// within `limit`.
struct StatmFiles {
    open: HashMap<u32, std::fs::File>,
    limit: usize,
    /// From this many pids on, two threads read them.
    split_at: usize,
}

impl StatmFiles {
    fn new() -> StatmFiles {
        // A quarter of what the daemon may open: the rest stays for pipes, sockets and logs.
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        StatmFiles {
            open: HashMap::new(),
            limit: usize::try_from(soft / 4).unwrap_or(usize::MAX),
            split_at: 256,
        }
    }

    /// The readings of `pids` (those still running). A thousand reads are milliseconds of
    /// kernel time: a long list is read in two halves on two threads.
    fn read_all(&mut self, pids: &[u32]) -> HashMap<u32, Reading> {
        let open = &self.open;
        let read = |part: &[u32]| -> Vec<(u32, Got)> {
            part.iter()
                .map(|&p| match read_usage(open.get(&p), p) {
                    // Kept but gone: the pid may be another process's now: open it anew.
                    Got::Gone if open.contains_key(&p) => (p, read_usage(None, p)),
                    g => (p, g),
                })
                .collect()
        };
        let got = if pids.len() < self.split_at {
            read(pids)
        } else {
            let (a, b) = pids.split_at(pids.len() / 2);
            std::thread::scope(|s| {
                match std::thread::Builder::new()
                    .name("pmr-stat".into())
                    .spawn_scoped(s, || read(a))
                {
                    Ok(other) => {
                        let mut got = read(b);
                        got.extend(other.join().unwrap_or_default());
                        got
                    }
                    // No thread to be had: one pass.
                    Err(_) => read(pids),
                }
            })
        };
        let mut out = HashMap::with_capacity(got.len());
        for (pid, g) in got {
            match g {
                Got::Kept(r) => {
                    out.insert(pid, r);
                }
                Got::New(r, f) => {
                    out.insert(pid, r);
                    self.open.remove(&pid);
                    if self.open.len() < self.limit {
                        self.open.insert(pid, f);
                    }
                }
                Got::Gone => {
                    self.open.remove(&pid);
                }
            }
        }
        out
    }
}

enum Got {
    Kept(Reading),
    New(Reading, std::fs::File),
    Gone,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub memory: u64,
    pub cpu: f64,
}

impl Sampler {
    /// A sampler that keeps its members' statm files open (the one `jlist` uses, called often
    /// and over every app).
    pub fn keeping_files() -> Sampler {
        Sampler {
            files: Some(StatmFiles::new()),
            ..Sampler::default()
        }
    }

    /// Whether a sample used an old scan and [`Sampler::rescan`] should follow.
    pub fn rescan_due(&self) -> bool {
        self.due
    }

    /// Finds the trees of the last sample's roots again (see [`Sampler::sample`]).
    pub fn rescan(&mut self) {
        if !self.due {
            return;
        }
        let roots: Vec<u32> = self.members.keys().copied().collect();
        if !roots.is_empty() {
            self.scan_trees(&roots, Instant::now());
        }
        self.due = false;
        self.close_non_members();
    }

    fn close_non_members(&mut self) {
        if let Some(f) = &mut self.files {
            let members: std::collections::HashSet<u32> =
                self.members.values().flatten().copied().collect();
            f.open.retain(|p, _| members.contains(p));
        }
    }

    /// Every process's stat, and the trees of `roots` found in them.
    fn scan_trees(&mut self, roots: &[u32], now: Instant) -> crate::processes::scan::Stats {
        let all = crate::processes::scan::scan();
        let index = Index::new(&all);
        self.members = roots.iter().map(|&r| (r, index.tree(r))).collect();
        self.scanned = Some(now);
        self.due = false;
        all
    }

    /// CPU and memory of the trees of `roots`. Trees are found by a scan of every process,
    /// made when an app is new or the last scan is older than `rescan`. With `defer`, a scan
    /// that is only old is used once more and [`Sampler::rescan_due`] tells the caller to
    /// [`Sampler::rescan`] after its reply: a `jlist` of 1,000 apps now and then took 40% longer
    /// for the scan (the reads of every process on the machine). A process a tree gained since
    /// is counted one call later; a second deferral in a row is not made.
    pub fn sample(&mut self, roots: &[u32], defer: bool) -> HashMap<u32, Usage> {
        let mut out = HashMap::new();
        if roots.is_empty() {
            self.prev.clear();
            self.members.clear();
            if let Some(f) = &mut self.files {
                f.open.clear();
            }
            return out;
        }
        let now = Instant::now();
        let rescan = self
            .rescan
            .unwrap_or_else(|| pmr_core::knobs::get().rescan());
        let recent = self.scanned.is_some_and(|t| now.duration_since(t) < rescan);
        let known = roots.iter().all(|r| self.members.contains_key(r));
        let fresh = known && (recent || (defer && !self.due));
        if fresh && !recent {
            self.due = true;
        }
        let scanned = (!fresh).then(|| self.scan_trees(roots, now));
        let pids: Vec<u32> = roots
            .iter()
            .filter_map(|r| self.members.get(r))
            .flatten()
            .copied()
            .collect();
        let readings = match &mut self.files {
            Some(f) => f.read_all(&pids),
            None => pids
                .iter()
                .filter_map(|&p| match read_usage(None, p) {
                    Got::Kept(r) | Got::New(r, _) => Some((p, r)),
                    Got::Gone => None,
                })
                .collect(),
        };
        let page = page_size();
        let mut next = HashMap::with_capacity(roots.len());
        out.reserve(roots.len());
        for root in roots {
            if !readings.contains_key(root) {
                continue;
            }
            let members = self
                .members
                .get(root)
                .map_or(std::slice::from_ref(root), Vec::as_slice);
            let (mut cpu_ns, mut rss) = (0u64, 0u64);
            for r in members.iter().filter_map(|p| readings.get(p)) {
                cpu_ns += r.cpu_ns;
                rss += r.rss_pages * page;
            }
            let cpu = match self.prev.get(root) {
                Some(&(t0, at)) if cpu_ns >= t0 && now > at => {
                    (cpu_ns - t0) as f64 / now.duration_since(at).as_nanos() as f64 * 100.0
                }
                // First look at this tree: average over the main process's life, like `ps`.
                _ => {
                    let start = scanned
                        .as_ref()
                        .and_then(|all| all.get(root).copied())
                        .or_else(|| read_stat(*root))
                        .map(|s| s.start_ticks);
                    lifetime_cpu(cpu_ns, start)
                }
            };
            next.insert(*root, (cpu_ns, now));
            out.insert(
                *root,
                Usage {
                    memory: rss,
                    cpu: (cpu * 10.0).round() / 10.0,
                },
            );
        }
        self.prev = next;
        let roots: std::collections::HashSet<u32> = roots.iter().copied().collect();
        self.members.retain(|r, _| roots.contains(r));
        self.close_non_members();
        out
    }
}

/// CPU % of `cpu_ns` spent since the process started (`start_ticks` after boot).
fn lifetime_cpu(cpu_ns: u64, start_ticks: Option<u64>) -> f64 {
    let hz = clock_ticks() as f64;
    match (boot_uptime_secs(), start_ticks) {
        (Some(up), Some(start)) if up > start as f64 / hz => {
            cpu_ns as f64 / 1e9 / (up - start as f64 / hz) * 100.0
        }
        _ => 0.0,
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
        let found = grown(root, 4, |r| {
            descendants(r).expect("this kernel has children files")
        });
        let scanned = tree_pids(root);
        kill_all(&found);
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
        let pids = grown(root, 3, tree_pids);
        let mut s = Sampler::default();
        let u = s.sample(&[root], false)[&root];
        assert!(u.memory > 0);
        assert!(u.cpu >= 0.0);
        kill_all(&pids);
        child.wait().unwrap();
    }

    #[test]
    fn a_tree_scan_is_trusted_for_the_rescan_interval() {
        tree_scan_trusted(Sampler::default);
        tree_scan_trusted(Sampler::keeping_files);
    }

    fn tree_scan_trusted(new: fn() -> Sampler) {
        // sh forks a child only once told to, after the first scan.
        let mut child = forks_when_told();
        let root = child.id();
        let mut slow = Sampler {
            rescan: Some(std::time::Duration::from_secs(3600)),
            ..new()
        };
        let mut fast = Sampler {
            rescan: Some(std::time::Duration::ZERO),
            ..new()
        };
        slow.sample(&[root], false);
        fast.sample(&[root], false);
        assert_eq!(slow.members[&root], vec![root]);
        let pids = tell_to_fork(&mut child);
        slow.sample(&[root], false);
        fast.sample(&[root], false);
        assert_eq!(slow.members[&root], vec![root], "scan trusted for an hour");
        assert_eq!(
            fast.members[&root].len(),
            2,
            "rescanned: {:?}",
            fast.members
        );
        if let Some(f) = &fast.files {
            // The rescan opened every process's file; only the tree's stay open.
            let mut open: Vec<u32> = f.open.keys().copied().collect();
            open.sort();
            let mut members = fast.members[&root].clone();
            members.sort();
            assert_eq!(open, members);
        }
        kill_all(&pids);
        child.wait().unwrap();
    }

    /// With `defer`, an old scan is used once more and the scan is left to `rescan`; without
    /// a `rescan` in between, the next sample scans itself.
    #[test]
    fn an_old_scan_is_deferred_once_to_rescan() {
        let mut child = forks_when_told();
        let root = child.id();
        let mut s = Sampler {
            rescan: Some(std::time::Duration::ZERO),
            ..Sampler::keeping_files()
        };
        s.sample(&[root], true);
        assert!(!s.rescan_due(), "a new root is scanned at once");
        let pids = tell_to_fork(&mut child);
        s.sample(&[root], true);
        assert_eq!(s.members[&root], vec![root], "the old scan, once more");
        assert!(s.rescan_due());
        s.rescan();
        assert!(!s.rescan_due());
        assert_eq!(s.members[&root].len(), 2, "{:?}", s.members);
        // Deferred and not rescanned: the following sample scans.
        s.sample(&[root], true);
        assert!(s.rescan_due());
        s.sample(&[root], true);
        assert!(!s.rescan_due(), "no second deferral");
        assert_eq!(s.members[&root].len(), 2, "{:?}", s.members);
        kill_all(&pids);
        child.wait().unwrap();
    }

    /// `sh` that forks a `sleep` once told to (after a first scan).
    fn forks_when_told() -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", "read x; sleep 30 & wait"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Tells it, and waits for its tree of two.
    fn tell_to_fork(child: &mut std::process::Child) -> Vec<u32> {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        grown(child.id(), 2, tree_pids)
    }

    /// `tree(root)` once it has at least `n` pids (10 s at most).
    fn grown(root: u32, n: usize, tree: impl Fn(u32) -> Vec<u32>) -> Vec<u32> {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let p = tree(root);
            if p.len() >= n {
                return p;
            }
            assert!(Instant::now() < deadline, "tree never grew: {p:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn kill_all(pids: &[u32]) {
        for &p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// A kept statm file gives fresh figures at each read, and none once its process is gone.
    #[test]
    fn kept_statm_files_are_read_anew_and_dropped_with_their_process() {
        let mut busy = pmr_core::procfs::Spinner::start();
        let root = busy.0.id();
        let mut s = Sampler {
            rescan: Some(std::time::Duration::from_secs(3600)),
            ..Sampler::keeping_files()
        };
        s.sample(&[root], false);
        s.sample(&[root], false);
        let kept = |s: &Sampler| s.files.as_ref().unwrap().open.contains_key(&root);
        assert!(kept(&s), "the member's file is kept open");
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let u = s.sample(&[root], false)[&root];
            if u.cpu > 10.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cpu stays {} on a kept file",
                u.cpu
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        busy.end();
        assert!(!s.sample(&[root], false).contains_key(&root));
        assert!(!kept(&s), "the file is closed with its process");
        s.sample(&[], false);
        assert!(s.files.as_ref().unwrap().open.is_empty());
    }

    #[test]
    fn a_long_list_is_read_in_two_halves_with_the_same_result() {
        let mut kids: Vec<std::process::Child> = (0..5)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut pids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
        pids.push(u32::MAX - 1); // no such process
                                 // Settled (asleep, its pages in) before figures are compared.
        for k in &kids {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            let mut last = None;
            loop {
                let s = read_stat(k.id()).unwrap();
                let now = (s.state, s.rss_pages);
                if s.state == 'S' && last == Some(now) {
                    break;
                }
                assert!(Instant::now() < deadline, "sleep never settles: {s:?}");
                last = Some(now);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let mut files = StatmFiles::new();
        files.split_at = 2;
        let first = files.read_all(&pids);
        assert_eq!(files.open.len(), 5);
        let again = files.read_all(&pids);
        for k in &kids {
            let p = k.id();
            let statm = std::fs::File::open(format!("/proc/{p}/statm")).unwrap();
            let rss = read_rss_pages_of(&statm).unwrap();
            let cpu = cpu_time_ns(p).unwrap();
            for got in [&first, &again] {
                let r = got[&p];
                assert_eq!(
                    r.rss_pages, rss,
                    "a sleeping process's figures, read in either half"
                );
                assert!(r.cpu_ns > 0 && r.cpu_ns <= cpu);
            }
        }
        assert_eq!(again.len(), 5);
        let _ = kids[0].kill();
        kids[0].wait().unwrap();
        assert_eq!(files.read_all(&pids).len(), 4);
        assert_eq!(files.open.len(), 4, "the gone process's file is closed");
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }
}
