//! `pmr start`: scripts, binaries, command strings, or existing apps (which are restarted).

use super::ecosystem::{is_ecosystem, load_specs};
use super::flags::AppArgs;
use super::{call, Out, StartArgs};
use crate::client::Client;
use crate::config::app::{build_spec, BuildCtx};
use crate::config::options::normalize_app;
use crate::paths::Home;
use crate::protocol::{Request, Response};
use crate::spec::AppSpec;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

/// PM2's command-line flags as raw app options (see `flags.rs`).
pub fn flags_to_options(f: &AppArgs) -> Map<String, Value> {
    f.options.clone()
}

/// Raw options → a complete spec, with errors that name the app and the option.
pub fn spec_from_options(raw: &Map<String, Value>, ctx: &BuildCtx) -> Result<AppSpec> {
    let opts = normalize_app(raw).map_err(|e| anyhow!("{e}"))?;
    build_spec(&opts, ctx).map_err(|e| anyhow!("{e}"))
}

pub fn start(home: &Home, out: &Out, a: StartArgs) -> Result<i32> {
    let targets = if a.targets.is_empty() {
        vec!["ecosystem.config.js".to_string()]
    } else {
        a.targets.clone()
    };
    if targets.len() > 1 && a.app.name.is_some() {
        bail!("--name can only be used with one script");
    }

    // Build every spec before talking to the daemon: bad input starts nothing.
    let ctx = BuildCtx::from_process(a.app.env.clone());
    let flags = flags_to_options(&a.app);
    let mut client: Option<Client> = None;
    let mut specs = Vec::new();
    let mut file_specs = Vec::new();
    let mut restart_selectors = Vec::new();
    for t in &targets {
        if is_ecosystem(t) {
            file_specs.extend(load_specs(t, a.app.only.as_deref(), a.app.env.as_deref())?);
            continue;
        }
        let mut opts = flags.clone();
        opts.insert("script".into(), json!(t));
        if !a.script_args.is_empty() {
            opts.insert("args".into(), json!(a.script_args));
        }
        match spec_from_options(&opts, &ctx) {
            Ok(spec) => specs.push(spec),
            // Bad flags (e.g. `-i` above the maximum) are wrong whatever the target names.
            Err(e) if normalize_app(&opts).is_err() => return Err(e),
            Err(e) => {
                // Not a script: maybe an existing app (PM2 restarts it then). This is not the
                // daemon's "start or restart an existing app" rule (`daemon::requests::start::
                // decide`), which judges a complete spec against the managed apps: here the
                // question is only whether the word on the command line is a script or the name
                // or id of an app, and only the daemon can answer the latter.
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => client.insert(Client::connect(home)?),
                };
                if super::resolve(c, std::slice::from_ref(t)).is_ok() {
                    restart_selectors.push(t.clone());
                } else {
                    return Err(e);
                }
            }
        }
    }

    let mut client = match client {
        Some(c) => c,
        None => Client::connect(home)?,
    };
    if !restart_selectors.is_empty() {
        let sel = super::SelArgs {
            targets: restart_selectors,
            update_env: a.update_env,
            parallel: None,
            app: a.app.clone(),
        };
        super::ops::run_action(&mut client, out, crate::protocol::Action::Restart, &sel)?;
    }
    let mut code = 0;
    if !file_specs.is_empty() {
        let results = match call(
            &mut client,
            &Request::Apply {
                apps: file_specs,
                reload: false,
            },
        )? {
            Response::Done { results } => results,
            other => bail!("unexpected reply from the daemon: {other:?}"),
        };
        for r in results {
            match r.error {
                None => out.info(format!("App [{}]({}) launched", r.name, r.id)),
                Some(e) => {
                    code = 1;
                    eprintln!("{} [{}]({}) {e}", crate::personality::err(), r.name, r.id);
                }
            }
        }
    }
    if !specs.is_empty() {
        for s in &specs {
            out.info(format!(
                "Starting {} in {} ({} instance{})",
                s.script,
                s.exec_mode.pm2_name(),
                s.instances,
                if s.instances == 1 { "" } else { "s" }
            ));
        }
        match call(
            &mut client,
            &Request::Start {
                apps: specs,
                force: a.force,
            },
        )? {
            Response::Started { .. } => out.info("Done."),
            other => bail!("unexpected reply from the daemon: {other:?}"),
        }
    }
    super::show::print_table(&mut client, out)?;
    Ok(code)
}
