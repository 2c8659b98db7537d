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
    })
}

enum Backend {
    Inotify(InotifyWatch),
    Poll(PollWatch),
}

impl Backend {
    async fn next(&mut self) -> String {
        match self {
            Backend::Inotify(w) => w.next().await,
            Backend::Poll(w) => w.next().await,
        }
    }

    fn drain(&mut self) {
        match self {
            Backend::Inotify(w) => w.drain(),
            Backend::Poll(w) => w.drain(),
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
    /// The spec's `watch` fields last seen (the config is rebuilt only when they change).
    key: Option<serde_json::Value>,
    cfg: Option<Config>,
    setup: Option<JoinHandle<Result<(Backend, String), String>>>,
    backend: Option<Backend>,
    pending: Option<(Instant, String)>,
}

fn key_of(spec: &AppSpec) -> serde_json::Value {
    serde_json::json!([
        spec.watch.to_json(),
        spec.cwd,
        spec.ignore_watch,
        spec.watch_delay,
        spec.watch_options
    ])
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
    match InotifyWatch::open(&roots, ignore()?, cfg.follow, rt) {
        Ok(w) => {
            for d in &w.unreadable {
                tracing::warn!("watch: cannot read {}: not watched", d.display());
            }
            let plural = if w.dirs == 1 { "y" } else { "ies" };
            let summary = format!("{names} (inotify, {} director{plural})", w.dirs);
            Ok((Backend::Inotify(w), summary))
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
