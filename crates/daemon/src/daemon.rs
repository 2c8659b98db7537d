//! What every request handler shares: the context given to instances, the process table, the
//! metrics sampler, and the state of the socket server and of the HTTP API.

use crate::instances::instance::Ctx;
use crate::instances::registry::Registry;
use crate::instances::table_file;
use crate::logs;
use crate::node::drain;
use crate::processes::{metrics, notify};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

pub struct Daemon {
    pub ctx: Arc<Ctx>,
    pub registry: Arc<Mutex<Registry>>,
    pub sampler: Arc<Mutex<metrics::Sampler>>,
    pub username: Arc<str>,
    /// Tells the accept loop to shut down (after `kill` has stopped every app).
    pub exit: tokio::sync::Notify,
    /// Requests read from a client whose reply is not written yet (`server.rs`).
    pub answering: AtomicUsize,
    /// Replies that carry every app (`list`: ~6 KB per app) are built and encoded two at a
    /// time. Fifty CLI calls at once (each `restart` ends with the table) would otherwise hold
    /// fifty copies of the table in the allocator at the same moment, memory it keeps
    /// afterwards.
    pub whole_table: tokio::sync::Semaphore,
    /// Set once an `update` has begun (`update/request.rs`).
    pub updating: AtomicBool,
    pub http: HttpState,
}

/// How the HTTP API and PM2's protocol (`pm2/`) have a request answered: by the socket
/// server's handlers (`server.rs`), which they cannot name (the server starts them).
pub type Handler =
    for<'a> fn(&'a Arc<Daemon>, Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// The HTTP API's state (`http.rs`), kept here so that the API depends on the daemon's context
/// and not the other way round.
pub struct HttpState {
    pub handler: Handler,
    /// The server, while it runs.
    pub running: Mutex<Option<HttpServer>>,
    /// `Web` requests one at a time (bind, swap, persist are not atomic together).
    pub serial: tokio::sync::Mutex<()>,
    /// A `Web` request was answered: `boot` (which may run after it) must not undo it.
    pub asked: AtomicBool,
    /// Bounds the connections open at once, whichever server they came to (`http/listen.rs`).
    pub connections: OnceLock<Arc<tokio::sync::Semaphore>>,
    /// When the daemon started serving (set at boot, whether the API is on or not).
    pub started: OnceLock<std::time::Instant>,
}

/// A running HTTP server.
pub struct HttpServer {
    pub addr: std::net::SocketAddr,
    /// Its bearer token, replaced in place by `--rotate-token`.
    pub token: Arc<RwLock<String>>,
    /// Dropped (or sent) to stop the accept loops and close every connection.
    pub stop: tokio::sync::watch::Sender<bool>,
    /// The accept loops: awaited on stop, so the port is free when `Web` answers.
    pub loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Start the daemon-wide services (log sinks, `$NOTIFY_SOCKET`, the drain preload);
    /// `handler` answers the requests of the HTTP API.
    pub fn new(home: Home, handler: Handler) -> Daemon {
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
        let limits = Arc::new(crate::instances::limits::Limits::default());
        let events = Arc::new(crate::instances::events::Events::default());
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
                ended: Default::default(),
                sigkills: Default::default(),
                limits: limits.clone(),
                events: events.clone(),
                stdin: Default::default(),
                bus: Default::default(),
            }),
            registry: Arc::new(Mutex::new(Registry::new(limits, events))),
            sampler: Arc::new(Mutex::new(metrics::Sampler::keeping_files())),
            username: current_username().into(),
            exit: tokio::sync::Notify::new(),
            answering: AtomicUsize::new(0),
            whole_table: tokio::sync::Semaphore::new(2),
            updating: AtomicBool::new(false),
            http: HttpState {
                handler,
                running: Mutex::new(None),
                serial: tokio::sync::Mutex::new(()),
                asked: AtomicBool::new(false),
                connections: OnceLock::new(),
                started: OnceLock::new(),
            },
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
