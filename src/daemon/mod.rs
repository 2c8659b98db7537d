//! The daemon: one per `$PMR_HOME`. It owns every managed process, serves the CLI over
//! `rpc.sock`, and never runs user configuration.

pub mod boot;
pub mod cluster;
pub mod cron;
pub mod drain;
pub mod history;
pub mod instance;
pub mod logs;
pub mod memory_guard;
pub mod metrics;
pub mod node_ipc;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod rejections;
mod requests;
pub mod sd_notify;
mod server;
pub mod spawn;
mod state;
pub mod stdin;
pub mod watch;

use crate::paths::Home;
use anyhow::{Context, Result};

/// Entry point of `pmr daemon` (started detached by the CLI, stdio on `pmr.log`, or `pm2.log`
/// and PM2's home as `pm2`).
pub fn run(home: Home) -> Result<()> {
    run_with(home, false)
}

/// `run`; `resurrect`: start what the dump holds once serving (`pmr daemon --resurrect`, the
/// boot unit's command), and tell systemd `READY=1` only after that.
pub fn run_with(home: Home, resurrect: bool) -> Result<()> {
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {}", home.root.display()))?;
    // The lock, not the pid file, says who owns this home: it dies with the process.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .with_context(|| format!("cannot open {}", home.lock_file().display()))?;
    let lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        // Another daemon owns this home (two CLIs raced to start one): let it serve.
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(()),
        Err((_, e)) => return Err(e).context("cannot lock the daemon lock file"),
    };
    // The CLI checked both before starting us; a daemon started another way checks here.
    let knobs = crate::knobs::check_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(f) = crate::foreign::daemon_of(&home) {
        anyhow::bail!("{}", crate::foreign::refusal(&home, &f));
    }
    crate::knobs::init(knobs);
    for dir in [home.pid_file(), home.daemon_log(), home.socket()]
        .iter()
        .filter_map(|p| p.parent())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    logs::daemon_log::init(home.daemon_log());
    tracing_subscriber::fmt()
        .with_writer(logs::daemon_log::DaemonLog)
        .with_ansi(false)
        .with_target(false)
        .init();

    sd_notify::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()?;
    let res = rt.block_on(server::serve(home.clone(), resurrect));
    let _ = std::fs::remove_file(home.socket());
    let _ = std::fs::remove_file(home.pid_file());
    tracing::info!("daemon exited");
    // Do not wait for log writer threads of apps that are already gone.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // Released last: `pmr kill` waits for this lock to know the daemon is gone.
    drop(lock);
    res
}
