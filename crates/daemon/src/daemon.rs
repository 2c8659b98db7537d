//! What every request handler shares: the context given to instances, the process table, the
//! metrics sampler.

use crate::instances::instance::Ctx;
use crate::instances::registry::Registry;
use crate::logs;
use crate::node::drain;
use crate::processes::{metrics, notify};
use crate::recovery::table_file;
use pmr_core::paths::Home;
use std::sync::{Arc, Mutex};

pub struct Daemon {
    pub ctx: Arc<Ctx>,
    pub registry: Mutex<Registry>,
    pub sampler: Arc<Mutex<metrics::Sampler>>,
    pub username: Arc<str>,
    /// Tells the accept loop to shut down (after `kill` has stopped every app).
    pub exit: tokio::sync::Notify,
}

impl Daemon {
    /// Start the daemon-wide services (log sinks, `$NOTIFY_SOCKET`, the drain preload).
    pub fn new(home: Home) -> Daemon {
        let sinks = Arc::new(logs::Sinks::new(&home));
        let table = Arc::new(table_file::TableWriter::new(table_file::path(&home)));
        let notifier = Arc::new(notify::Notify::default());
        let notify_sock = home.root.join("notify.sock");
        // sd_notify paths must fit a sockaddr_un; apps simply get no NOTIFY_SOCKET otherwise.
        let notify_path = match notify::start(&notify_sock, notifier.clone()) {
            Ok(()) => Some(notify_sock.to_string_lossy().into_owned()),
            Err(e) => {
                tracing::warn!("no $NOTIFY_SOCKET for apps: {}: {e}", notify_sock.display());
                None
            }
        };
        let own = crate::watch::OwnFiles::new(&home);
        Daemon {
            ctx: Arc::new(Ctx {
                own,
                preload: match drain::install(&home.root) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(
                            "cannot write the preloads (drain, unhandled rejections): Node apps run without them: {e}"
                        );
                        None
                    }
                },
                home,
                sinks,
                shutting_down: Default::default(),
                listeners: Default::default(),
                next_worker: std::sync::atomic::AtomicU64::new(1),
                notify: notifier,
                notify_path,
                table,
                launcher: Arc::new(crate::instances::instance::Spawner),
            }),
            registry: Mutex::new(Registry::default()),
            sampler: Arc::new(Mutex::new(metrics::Sampler::keeping_files())),
            username: current_username().into(),
            exit: tokio::sync::Notify::new(),
        }
    }
}

fn current_username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}
