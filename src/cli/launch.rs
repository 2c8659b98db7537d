//! Asking the daemon to start apps built by the CLI: the apps of ecosystem files (`apply`) and
//! scripts of the command line (`start`), for `pmr start` and `pmr-runtime`.

use super::flags::AppArgs;
use super::{call, Out};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::protocol::{ApplyRequest, Request, Response, StartRequest};
use pmr_core::spec::AppSpec;

/// The apps of ecosystem files, as PM2's startOrRestart (`apply`): those already known by name
/// restart with their new spec. One line per instance; 1 when one of them failed.
pub fn apply_files(client: &mut Client, out: &Out, apps: Vec<AppSpec>) -> Result<i32> {
    let results = match call(
        client,
        &Request::Apply(ApplyRequest {
            apps,
            reload: false,
        }),
    )? {
        Response::Done { results } => results,
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    let mut code = 0;
    for r in results {
        match r.error {
            None => out.info(format!("App [{}]({}) launched", r.name, r.id)),
            Some(e) => {
                code = 1;
                eprintln!(
                    "{} [{}]({}) {e}",
                    pmr_core::personality::err(),
                    r.name,
                    r.id
                );
            }
        }
    }
    Ok(code)
}

/// Scripts built from the command line (`app`: its options), as `start`: a stopped app of the
/// same script restarts instead (the daemon decides), with the options given applied to it, as
/// with `restart`. An error when one could not start.
pub fn start_scripts(
    client: &mut Client,
    out: &Out,
    apps: Vec<AppSpec>,
    app: &AppArgs,
    force: bool,
) -> Result<()> {
    let Some(first) = apps.first() else {
        return Ok(());
    };
    let patch = super::patch::from_spec(app, first);
    for s in &apps {
        out.info(format!(
            "Starting {} in {} ({} instance{})",
            s.script,
            s.exec_mode.pm2_name(),
            s.instances,
            if s.instances == 1 { "" } else { "s" }
        ));
    }
    match call(client, &Request::Start(StartRequest { apps, force, patch }))? {
        Response::Started { .. } => out.info("Done."),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
    Ok(())
}
