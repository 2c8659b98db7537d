//! What the daemon does once it serves: with `--resurrect`, start the dump's processes (the
//! boot unit of `pmr startup`); then `READY=1` to systemd, and its watchdog pings.

use super::requests::resurrect;
use super::state::Daemon;
use crate::dump::{self, Contents};
use crate::protocol::Response;
use std::sync::Arc;

pub fn start(d: &Arc<Daemon>, resurrect_dump: bool) {
    super::sd_notify::spawn_watchdog();
    if !resurrect_dump {
        super::sd_notify::send("READY=1");
        return;
    }
    let d = d.clone();
    tokio::spawn(async move {
        run(&d).await;
        // Only now: a slow boot is systemd's start-up time, not a `TimeoutStartSec` failure
        // after a READY that came before the apps.
        super::sd_notify::send("READY=1");
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
            tracing::error!(
                "resurrect: {} is PM2's format: import it once with `pmr resurrect {}` then `pmr save`",
                loaded.from.display(),
                loaded.from.display()
            );
        }
        return;
    };
    let n = procs.len();
    match resurrect::resurrect(d, procs).await {
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
