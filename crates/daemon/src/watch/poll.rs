//! Polling (`watch_options.usePolling`, or when inotify is out of watches): the tree's
//! modification times, compared every `interval` from a blocking task. Costs CPU in
//! proportion to the tree; the inotify watcher is the default for that reason.

use crate::watch::filter::Filter;
use crate::watch::inotify::Root;
use crate::watch::walk::Walk;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

type Snapshot = HashMap<PathBuf, (i64, i64, u64)>;

struct Setup {
    roots: Vec<Root>,
    ignore: Filter,
    follow: bool,
}

pub struct PollWatch {
    setup: Arc<Setup>,
    every: Duration,
    last: Option<Snapshot>,
    scan: Option<tokio::task::JoinHandle<Snapshot>>,
    next_at: tokio::time::Instant,
    /// Set by [`PollWatch::drain`]: the next scan is the new reference, except for what was
    /// modified since then (the coarse clock of file times lags: a margin).
    drained_at: Option<(i64, i64)>,
}

/// Margin for the kernel's coarse file-time clock.
const MARGIN_NS: i64 = 20_000_000;

fn now_ns() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ns = d.as_nanos() as i64 - MARGIN_NS;
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

fn snapshot(s: &Setup) -> Snapshot {
    let mut out = Snapshot::new();
    let mut walk = Walk::new(&s.ignore, s.follow);
    for r in &s.roots {
        if r.is_dir {
            let _ = walk.dirs::<()>(&r.path, &r.path, &mut |_| Ok(()), &mut |p, m| {
                out.insert(p.to_path_buf(), (m.mtime(), m.mtime_nsec(), m.size()));
            });
        } else if s.ignore.is_own(&r.path) {
            continue;
        } else if let Ok(m) = std::fs::metadata(&r.path) {
            out.insert(r.path.clone(), (m.mtime(), m.mtime_nsec(), m.size()));
        }
    }
    out
}

impl PollWatch {
    /// Takes the first snapshot (blocking), so a change right after set-up is seen.
    pub fn new(roots: Vec<Root>, ignore: Filter, follow: bool, every: Duration) -> PollWatch {
        let setup = Arc::new(Setup {
            roots,
            ignore,
            follow,
        });
        let first = snapshot(&setup);
        PollWatch {
            setup,
            every,
            last: Some(first),
            drained_at: None,
            scan: None,
            next_at: tokio::time::Instant::now() + every,
        }
    }

    /// The next change seen (cancel-safe: a scan in flight is kept).
    pub async fn next(&mut self) -> String {
        loop {
            if self.scan.is_none() {
                tokio::time::sleep_until(self.next_at).await;
                let s = self.setup.clone();
                self.scan = Some(tokio::task::spawn_blocking(move || snapshot(&s)));
            }
            let snap = self.scan.as_mut().unwrap().await.unwrap_or_default();
            self.scan = None;
            self.next_at = tokio::time::Instant::now() + self.every;
            let prev = self.last.replace(snap);
            let Some(now) = self.last.as_ref() else {
                continue;
            };
            let Some(prev) = prev else {
                let since = self.drained_at.take();
                let recent = now
                    .iter()
                    .find(|(_, v)| since.is_some_and(|s| (v.0, v.1) >= s))
                    .map(|(p, _)| p.display().to_string());
                match recent {
                    Some(p) => return p,
                    None => continue,
                }
            };
            let changed = now
                .iter()
                .find(|(p, v)| prev.get(*p) != Some(v))
                .map(|(p, _)| p)
                .or_else(|| prev.keys().find(|p| !now.contains_key(*p)));
            if let Some(p) = changed {
                return p.display().to_string();
            }
        }
    }

    /// Forgets changes made so far: the next scan is the new reference.
    pub fn drain(&mut self) {
        self.last = None;
        self.drained_at = Some(now_ns());
        if let Some(s) = self.scan.take() {
            s.abort();
        }
        self.next_at = tokio::time::Instant::now();
    }
}
