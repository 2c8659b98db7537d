//! The installed PM2 modules (`pmr install`, listed in `conf.json`'s `module-db-v2`) started
//! when the daemon starts, before its first client is served, as PM2's CLI launches them
//! right after starting its daemon. Their specs come from their `package.json` (JSON only,
//! through `pmr_config::module`, as `POST /api/apps` builds its specs); a module already
//! registered (the table of a daemon that died, `update`'s handoff) is left as it is.

use crate::daemon::Daemon;
use pmr_config::app::BuildCtx;
use pmr_config::module;
use pmr_core::protocol::{Response, StartRequest};
use pmr_core::spec::AppSpec;
use std::sync::Arc;

pub async fn launch(d: &Arc<Daemon>) {
    let home = d.ctx.home.clone();
    let built = tokio::task::spawn_blocking(move || {
        let conf = match pmr_core::conf::read_conf(&home.conf_file()) {
            Ok(c) => c,
            Err(e) => return vec![Err(format!("modules not started: {e}"))],
        };
        let ctx = BuildCtx {
            module_conf: conf.clone(),
            ..BuildCtx::from_process(None)
        };
        module::installed(&conf)
            .into_iter()
            .map(|name| {
                let dir = module::package_dir(&module::prefix(&home.modules_dir(), &name), &name);
                module::specs(&dir, &name, &ctx, |w| tracing::warn!("module {name}: {w}"))
                    .map_err(|e| format!("module {name} not started: {e}"))
            })
            .collect::<Vec<Result<Vec<AppSpec>, String>>>()
    })
    .await
    .unwrap_or_default();
    for specs in built {
        let specs = match specs {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e}");
                continue;
            }
        };
        let Some(name) = specs.first().map(|s| s.name.clone()) else {
            continue;
        };
        let known = d
            .registry
            .lock()
            .unwrap()
            .entries
            .values()
            .any(|e| e.shared.lock().unwrap().spec.name == name);
        if known {
            continue;
        }
        let req = StartRequest {
            apps: specs,
            force: false,
            patch: None,
        };
        match crate::requests::start::start(d, req).await {
            Response::Error { message } => tracing::warn!("module {name} not started: {message}"),
            _ => tracing::info!("module {name} started"),
        }
    }
}
