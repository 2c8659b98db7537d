//! An instance's `watch`: it lives in the instance's task, like the cron timer, so it
//! follows option patches (`restart --watch` toggles it, `stop` turns it off) and ends with
//! a delete. Changes within `watch_delay` are coalesced into one restart, and what was
//! queued while the app restarted is dropped afterwards ([`Watcher::restarted`]): a burst of
//! writes (`npm install`, a build) gives at most one restart per `watch_delay`.
//!
//! The backend is inotify ([`inotify`]); polling ([`poll`]) when `watch_options.usePolling`
//! asks for it or when inotify is out of watches (said in the daemon log, with the sysctl).

mod ignore;
mod inotify;
mod poll;
mod walk;

pub use ignore::Ignore;

use crate::spec::{AppSpec, Watch};
use inotify::{InotifyWatch, Root, SetupError};
use poll::PollWatch;
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// chokidar's default polling interval.
const DEFAULT_INTERVAL_MS: u64 = 100;

/// What the spec asks to watch.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    paths: Vec<PathBuf>,
    cwd: PathBuf,
    ignore: Option<Vec<String>>,
    delay: Duration,
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
        delay: Duration::from_millis(spec.watch_delay.unwrap_or(0)),
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

#[derive(Default)]
pub struct Watcher {
    /// The spec's `watch` fields last seen (the config is rebuilt only when they change), as
    /// JSON text: kept per instance, a `Value` tree is several times bigger.
    key: Option<String>,
    cfg: Option<Config>,
    setup: Option<JoinHandle<Result<(Backend, String), String>>>,
    backend: Option<Backend>,
    pending: Option<(Instant, String)>,
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
fn open(cfg: &Config, rt: &tokio::runtime::Handle) -> Result<(Backend, String), String> {
    let ignore = || Ignore::new(&cfg.cwd, cfg.ignore.as_deref());
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
                        self.setup = Some(tokio::task::spawn_blocking(move || open(&c, &rt)));
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
        let delay = self.cfg.as_ref().map_or(Duration::ZERO, |c| c.delay);
        loop {
            match &self.pending {
                Some((at, _)) => {
                    let at = *at;
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            let (_, file) = self.pending.take().unwrap();
                            return Event::Changed(file);
                        }
                        // Later changes fold into the pending one.
                        _ = b.next() => {}
                    }
                }
                None => {
                    let file = b.next().await;
                    self.pending = Some((Instant::now() + delay, file));
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
            delay: Duration::ZERO,
            polling: false,
            interval: Duration::from_millis(20),
            follow: true,
            max_watches: Some(2),
        };
        let rt = tokio::runtime::Handle::current();
        let (mut b, summary) = tokio::task::spawn_blocking(move || open(&cfg, &rt))
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
