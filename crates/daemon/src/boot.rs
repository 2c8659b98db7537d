//! What the daemon does once it serves: with `--resurrect`, start the dump's processes (the
//! boot unit of `pmr startup`); then `READY=1` to systemd, and its watchdog pings.

use crate::daemon::Daemon;
use crate::requests::resurrect;
use pmr_core::dump::{self, Contents};
use pmr_core::protocol::{Response, ResurrectRequest};
use std::sync::Arc;

pub fn start(d: &Arc<Daemon>, resurrect_dump: bool) {
    crate::sd_notify::spawn_watchdog();
    if !resurrect_dump {
        crate::sd_notify::send("READY=1");
        return;
    }
    let d = d.clone();
    tokio::spawn(async move {
        run(&d).await;
        // Only now: a slow boot is systemd's start-up time, not a `TimeoutStartSec` failure
        // after a READY that came before the apps.
        crate::sd_notify::send("READY=1");
    });
}

async fn run(d: &Arc<Daemon>) {
    let path = d.ctx.home.dump_file();
    let loaded = tokio::task::spawn_blocking(move || {
        let loaded = dump::load(&path)?;
        Ok::<_, String>(loaded.map(|l| {
            let procs = match &l.contents {
                Contents::Pmr(p) => {
                    let mut p = p.clone();
                    dump::check_files(&mut p);
                    Some(p)
                }
                Contents::Pm2(_) => None,
            };
            (l, procs)
        }))
    })
    .await;
    let (loaded, procs) = match loaded {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => {
            tracing::info!("resurrect: no dump, nothing to start");
            return;
        }
        Ok(Err(e)) => {
            tracing::error!("resurrect: {e}");
            return;
        }
        Err(e) => {
            tracing::error!("resurrect: {e}");
            return;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("resurrect: {w}");
    }
    let Some(procs) = procs else {
        if !loaded.contents.is_empty() {
            pm2_dump(d, &loaded.from).await;
        }
        return;
    };
    let n = procs.len();
    match resurrect::resurrect(d, ResurrectRequest { procs }).await {
        Response::Resurrected { results, .. } => {
            for r in results.iter() {
                if let Some(e) = &r.error {
                    tracing::warn!("resurrect: [{}]({}) {e}", r.name, r.id);
                }
            }
            tracing::info!("resurrect: {n} process(es) from {}", loaded.from.display());
        }
        other => tracing::error!("resurrect: {other:?}"),
    }
}

/// A PM2 `dump.pm2` (a home moved from PM2, or pmr run as `pm2`): turning `pm2_env` objects
/// into specs is the CLI's work (the daemon never builds specs), so the daemon runs its own
/// `resurrect <file>` against itself and waits for it, before READY.
async fn pm2_dump(d: &Arc<Daemon>, file: &std::path::Path) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(
                "resurrect: cannot find this binary to import {}: {e}",
                file.display()
            );
            return;
        }
    };
    let p = pmr_core::personality::current();
    tracing::info!(
        "resurrect: {} is PM2's format; importing it with `{} resurrect`",
        file.display(),
        p.arg0()
    );
    let status = tokio::process::Command::new(exe)
        // The personality comes from argv[0], and with it the home's names.
        .arg0(p.arg0())
        .args(["resurrect", "--silent", "--no-color"])
        .arg(file)
        .env(p.home_var(), &d.ctx.home.root)
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!("resurrect of {}: {s} (see the lines above)", file.display()),
        Err(e) => tracing::error!("resurrect of {}: {e}", file.display()),
    }
}
