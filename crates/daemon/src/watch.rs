//! An instance's `watch`: it lives in the instance's task, like the cron timer, so it
//! follows option patches (`restart --watch` toggles it, `stop` turns it off) and ends with
//! a delete. A burst of changes is one restart: without `watch_delay`, the restart comes once
//! the tree has been quiet for [`QUIET`], at most [`QUIET_MAX`] after the first change (a file
//! written for ever still restarts the app); an explicit `watch_delay` keeps PM2's meaning, the
//! restart comes that long after the first change. What was queued while the app restarted is
//! dropped afterwards ([`Watcher::restarted`]). The daemon's own files ([`own`]) never count.
//!
//! The backend is inotify ([`inotify`]); polling ([`poll`]) when `watch_options.usePolling`
//! asks for it or when inotify is out of watches (said in the daemon log, with the sysctl).

mod filter;
mod inotify;
mod own;
mod poll;
mod walk;

pub use own::{Held, OwnFiles};

use filter::Filter;
use inotify::{InotifyWatch, Root, SetupError};
use pmr_config::watch_ignore::Ignore;
use pmr_core::spec::{AppSpec, Watch};
use poll::PollWatch;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// chokidar's default polling interval.
const DEFAULT_INTERVAL_MS: u64 = 100;

/// Without `watch_delay`: how long the tree must be quiet before the restart. A `git checkout`
/// or a build writes its files within a few tens of ms of each other.
pub const QUIET: Duration = Duration::from_millis(300);
/// Without `watch_delay`: the latest a restart comes after the first change of a burst.
pub const QUIET_MAX: Duration = Duration::from_secs(2);

/// What the spec asks to watch.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    paths: Vec<PathBuf>,
    cwd: PathBuf,
    ignore: Option<Vec<String>>,
    /// `watch_delay`; `None`: wait for quiet ([`QUIET`], [`QUIET_MAX`]).
    delay: Option<Duration>,
    polling: bool,
    interval: Duration,
    follow: bool,
    /// Fewer inotify watches than the kernel allows (tests of the fallback); none otherwise.
    max_watches: Option<usize>,
}

fn config(spec: &AppSpec) -> Option<Config> {
    if spec.watch == Watch::Off {
        return None;
    }
    let opt = |k: &str| spec.watch_options.as_ref().and_then(|o| o.get(k));
    Some(Config {
        paths: spec.watch_paths(),
        cwd: PathBuf::from(&spec.cwd),
        ignore: spec.ignore_watch.clone(),
        delay: spec.watch_delay.map(Duration::from_millis),
        polling: opt("usePolling").and_then(|v| v.as_bool()).unwrap_or(false),
        interval: Duration::from_millis(
            opt("interval")
                .and_then(|v| v.as_u64())
                .unwrap_or(DEFAULT_INTERVAL_MS)
                .max(10),
        ),
        follow: opt("followSymlinks")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
        max_watches: None,
    })
}

enum Backend {
    Inotify(InotifyWatch),
    Poll(PollWatch),
    /// Out of inotify watches: what got none is polled.
    Mixed(InotifyWatch, PollWatch),
}

impl Backend {
    async fn next(&mut self) -> String {
        match self {
            Backend::Inotify(w) => w.next().await,
            Backend::Poll(w) => w.next().await,
            Backend::Mixed(i, p) => tokio::select! {
                f = i.next() => f,
                f = p.next() => f,
            },
        }
    }

    fn drain(&mut self) {
        match self {
            Backend::Inotify(w) => w.drain(),
            Backend::Poll(w) => w.drain(),
            Backend::Mixed(i, p) => {
                i.drain();
                p.drain();
            }
        }
    }
}

/// What the watcher tells its instance.
pub enum Event {
    /// Watching is set up (the summary for `describe`), or off.
    State(Option<String>),
    /// A change that counts, after `watch_delay`: the file.
    Changed(String),
}

/// A change waiting for its restart.
struct Pending {
    first: Instant,
    due: Instant,
    file: String,
}

#[derive(Default)]
pub struct Watcher {
    /// The daemon's own files, never counted (`None` in unit tests).
    own: Option<Arc<OwnFiles>>,
    /// The spec's `watch` fields last seen (the config is rebuilt only when they change), as
    /// JSON text: kept per instance, a `Value` tree is several times bigger.
    key: Option<String>,
    cfg: Option<Config>,
    setup: Option<JoinHandle<Result<(Backend, String), String>>>,
    backend: Option<Backend>,
    pending: Option<Pending>,
}

fn key_of(spec: &AppSpec) -> String {
    serde_json::json!([
        spec.watch.to_json(),
        spec.cwd,
        spec.ignore_watch,
        spec.watch_delay,
        spec.watch_options
    ])
    .to_string()
}

/// Sets the backend up (blocking).
fn open(
    cfg: &Config,
    own: Option<Arc<OwnFiles>>,
    rt: &tokio::runtime::Handle,
) -> Result<(Backend, String), String> {
    let ignore = || {
        Ok::<_, String>(Filter::new(
            Ignore::new(&cfg.cwd, cfg.ignore.as_deref())?,
            own.clone(),
        ))
    };
    let roots: Vec<Root> = cfg
        .paths
        .iter()
        .filter_map(|path| {
            // The CLI checked it exists; one removed since is skipped, and said.
            match std::fs::metadata(path) {
                Ok(m) => Some(Root {
                    path: path.clone(),
                    is_dir: m.is_dir(),
                }),
                Err(e) => {
                    tracing::warn!("watch: {} not watched: {e}", path.display());
                    None
                }
            }
        })
        .collect();
    if roots.is_empty() {
        return Err("no watched path exists".into());
    }
    let names = roots
        .iter()
        .map(|r| r.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let poll = |why: &str| {
        let w = PollWatch::new(roots.clone(), ignore()?, cfg.follow, cfg.interval);
        let summary = format!(
            "{names} (polling every {} ms{why})",
            cfg.interval.as_millis()
        );
        Ok::<_, String>((Backend::Poll(w), summary))
    };
    if cfg.polling {
        return poll("");
    }
    match InotifyWatch::open(&roots, ignore()?, cfg.follow, cfg.max_watches, rt) {
        Ok(mut w) => {
            for d in &w.unreadable {
                tracing::warn!("watch: cannot read {}: not watched", d.display());
            }
            let plural = if w.dirs == 1 { "y" } else { "ies" };
            let mut summary = format!("{names} (inotify, {} director{plural}", w.dirs);
            let overflow = std::mem::take(&mut w.overflow);
            if overflow.is_empty() {
                summary.push(')');
                return Ok((Backend::Inotify(w), summary));
            }
            let m = w.limit.take().unwrap_or_default();
            tracing::warn!(
                "watch: {m}; polling the {} subtree(s) of {names} left without a watch",
                overflow.len()
            );
            let n = overflow.len();
            let p = PollWatch::new(overflow, ignore()?, cfg.follow, cfg.interval);
            summary.push_str(&format!(
                "; {n} more polled every {} ms: inotify limit reached)",
                cfg.interval.as_millis()
            ));
            Ok((Backend::Mixed(w, p), summary))
        }
        Err(SetupError::Limit(m)) => {
            tracing::warn!("watch: {m}; polling {names} instead");
            poll(": inotify limit reached")
        }
        Err(SetupError::Other(m)) => Err(m),
    }
}

impl Watcher {
    pub fn new(own: Arc<OwnFiles>) -> Watcher {
        Watcher {
            own: Some(own),
            ..Watcher::default()
        }
    }

    /// The next event for an instance whose spec is `spec`; pending forever when it has no
    /// `watch`. Cancel-safe: setup, pending changes and the delay survive a drop.
    pub async fn next(&mut self, spec: &AppSpec) -> Event {
        let key = key_of(spec);
        if self.key.as_ref() != Some(&key) {
            self.key = Some(key);
            let cfg = config(spec);
            if cfg != self.cfg {
                self.cfg = cfg;
                if let Some(s) = self.setup.take() {
                    s.abort();
                }
                self.backend = None;
                self.pending = None;
                match &self.cfg {
                    None => return Event::State(None),
                    Some(c) => {
                        let c = c.clone();
                        let names = c
                            .paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let rt = tokio::runtime::Handle::current();
                        let own = self.own.clone();
                        self.setup = Some(tokio::task::spawn_blocking(move || open(&c, own, &rt)));
                        // Said at once, so `ls` right after `restart --watch` shows it on.
                        return Event::State(Some(format!("{names} (starting)")));
                    }
                }
            }
        }
        if let Some(setup) = &mut self.setup {
            let res = setup.await;
            self.setup = None;
            return match res {
                Ok(Ok((b, summary))) => {
                    self.backend = Some(b);
                    Event::State(Some(summary))
                }
                Ok(Err(e)) => {
                    tracing::warn!("watch: {e}");
                    Event::State(None)
                }
                Err(_) => std::future::pending().await,
            };
        }
        let Some(b) = &mut self.backend else {
            return std::future::pending().await;
        };
        let delay = self.cfg.as_ref().and_then(|c| c.delay);
        loop {
            match &mut self.pending {
                Some(p) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(p.due) => {
                            let p = self.pending.take().unwrap();
                            return Event::Changed(p.file);
                        }
                        // Later changes fold into the pending one.
                        _ = b.next() => {
                            if delay.is_none() {
                                p.due = quiet_due(p.first, Instant::now());
                            }
                        }
                    }
                }
                None => {
                    let file = b.next().await;
                    let now = Instant::now();
                    self.pending = Some(Pending {
                        first: now,
                        due: delay.map_or_else(|| quiet_due(now, now), |d| now + d),
                        file,
                    });
                }
            }
        }
    }

    /// The app restarted after a change: what was queued meanwhile is already in the new
    /// process, so it does not restart it again.
    pub fn restarted(&mut self) {
        self.pending = None;
        if let Some(b) = &mut self.backend {
            b.drain();
        }
    }
}

/// Without `watch_delay`: when the restart for a burst that began at `first` comes, the last
/// change having been at `last`.
fn quiet_due(first: Instant, last: Instant) -> Instant {
    (last + QUIET).min(first + QUIET_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn out_of_inotify_watches_the_rest_is_polled() {
        let dir = std::env::temp_dir().join(format!("pmr-watch-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["a", "b", "c"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let cfg = Config {
            paths: vec![dir.clone()],
            cwd: dir.clone(),
            ignore: None,
            delay: None,
            polling: false,
            interval: Duration::from_millis(20),
            follow: true,
            max_watches: Some(2),
        };
        let rt = tokio::runtime::Handle::current();
        let (mut b, summary) = tokio::task::spawn_blocking(move || open(&cfg, None, &rt))
            .await
            .unwrap()
            .unwrap();
        assert!(
            summary.contains("(inotify, 2 directories; 2 more polled every 20 ms"),
            "{summary}"
        );
        let Backend::Mixed(i, p) = &mut b else {
            panic!("not mixed: {summary}");
        };
        assert_eq!(i.dirs, 2);
        // Every subdirectory is seen, whether it has a watch or is polled.
        for sub in ["a", "b", "c"] {
            let f = dir.join(sub).join("x.js");
            std::fs::write(&f, "1").unwrap();
            let got = tokio::time::timeout(Duration::from_secs(10), async {
                tokio::select! {
                    f = i.next() => f,
                    f = p.next() => f,
                }
            })
            .await
            .unwrap();
            assert_eq!(got, f.display().to_string());
            tokio::time::sleep(Duration::from_millis(50)).await;
            i.drain();
            p.drain();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
