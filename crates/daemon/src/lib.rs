//! The daemon: one per `$PMR_HOME`. It owns every managed process, serves the CLI over
//! `rpc.sock`, and never runs user configuration.

pub mod alloc;
pub mod boot;
pub mod bus;
mod daemon;
pub mod foreground;
pub mod http;
pub mod instances;
pub mod logs;
mod modules;
pub mod node;
pub mod pm2;
pub mod processes;
pub mod recovery;
mod requests;
pub mod sd_notify;
mod server;
mod text;
pub mod update;
pub mod watch;

pub use update::request::check_binary as check_update_binary;

use anyhow::{Context, Result};
use pmr_core::paths::Home;

/// Entry point of `pmr daemon` (started detached by the CLI, stdio on `pmr.log`, or `pm2.log`
/// and PM2's home as `pm2`).
pub fn run(home: Home) -> Result<()> {
    run_with(home, false)
}

/// `run`; `resurrect`: start what the dump holds once serving (`pmr daemon --resurrect`, the
/// boot unit's command), and tell systemd `READY=1` only after that.
pub fn run_with(home: Home, resurrect: bool) -> Result<()> {
    // Another daemon owns this home (two CLIs raced to start one): let it serve.
    let Some(lock) = prepare(&home, tracing::Level::INFO)? else {
        return Ok(());
    };
    // This daemon can replace itself (`update`); the foreground runner (`pmr-runtime`,
    // `--no-daemon`) cannot: it is a container's or a terminal's main process, whose output
    // and exit code belong to whoever started it.
    {
        use std::os::fd::AsRawFd;
        let _ = update::request::LOCK_FD.set(lock.as_raw_fd());
    }
    sd_notify::init();
    let rt = runtime()?;
    let res = rt
        .block_on(server::serve(home.clone(), resurrect, None))
        .map(|_| ());
    finish(&home, rt, lock);
    res
}

type HomeLock = nix::fcntl::Flock<std::fs::File>;

/// Take the home's lock (`None`: another daemon has it), check the knobs, create the home's
/// directories and set up the daemon's log. Shared by `run` and `foreground::run`.
fn prepare(home: &Home, level: tracing::Level) -> Result<Option<HomeLock>> {
    processes::child::check_kernel().map_err(|e| anyhow::anyhow!("{e}"))?;
    alloc::tune();
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {}", home.root.display()))?;
    // The lock, not the pid file, says who owns this home: it dies with the process.
    let lock = match update::request::inherited_lock() {
        // The daemon this one replaces (`update`, same pid) held the lock on this open file:
        // taken over, so no other daemon can start in between.
        Some(f) => f,
        None => std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.lock_file())
            .with_context(|| format!("cannot open {}", home.lock_file().display()))?,
    };
    let lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
        Err((_, e)) => return Err(e).context("cannot lock the daemon lock file"),
    };
    processes::spawn::raise_nofile();
    // The CLI checked both before starting us; a daemon started another way checks here.
    let knobs = pmr_core::knobs::check_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(f) = pmr_core::foreign::daemon_of(home) {
        anyhow::bail!("{}", pmr_core::foreign::refusal(home, &f));
    }
    pmr_core::knobs::init(knobs);
    for dir in [
        home.pid_file(),
        home.daemon_log(),
        home.socket(),
        home.pub_socket(),
    ]
    .iter()
    .filter_map(|p| p.parent())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    logs::daemon_log::init(home.daemon_log());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(logs::daemon_log::DaemonLog)
        .with_ansi(false)
        .with_target(false)
        .init();
    Ok(Some(lock))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()?)
}

fn finish(home: &Home, rt: tokio::runtime::Runtime, lock: HomeLock) {
    let _ = std::fs::remove_file(home.socket());
    let _ = std::fs::remove_file(home.pub_socket());
    let _ = std::fs::remove_file(home.pid_file());
    let _ = std::fs::remove_file(home.root.join("http.sock"));
    tracing::info!("daemon exited");
    // Do not wait for log writer threads of apps that are already gone.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // Released last: `pmr kill` waits for this lock to know the daemon is gone.
    drop(lock);
}
