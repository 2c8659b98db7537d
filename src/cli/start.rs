//! `pmr start`: scripts, binaries, command strings, or existing apps (which are restarted).

use super::app_spec::{flags_to_options, spec_from_options};
use super::ecosystem::{is_ecosystem, load_specs};
use super::launch::{apply_files, start_scripts};
use super::{Out, StartArgs};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_config::app::BuildCtx;
use pmr_config::options::normalize_app;
use pmr_core::paths::Home;
use serde_json::json;
use std::path::Path;

pub fn start(home: &Home, out: &Out, a: StartArgs) -> Result<i32> {
    if a.no_daemon {
        return super::runtime::no_daemon(home, out, a);
    }
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
            file_specs.extend(load_specs(
                t,
                a.app.only.as_deref(),
                a.app.env.as_deref(),
                a.strict,
            )?);
            continue;
        }
        // PM2's order (`API._startScript`): a word without a slash or an extension may name
        // apps (by name, script path or namespace); a number names an id (and nothing else);
        // only then is the word a script or a program on PATH.
        let numeric = is_number(t);
        if numeric || (!t.contains('/') && Path::new(t).extension().is_none()) {
            let c = match client.as_mut() {
                Some(c) => c,
                None => client.insert(Client::connect(home)?),
            };
            match super::resolve(c, std::slice::from_ref(t)) {
                Ok(_) => {
                    restart_selectors.push(t.clone());
                    continue;
                }
                Err(e) if numeric => return Err(e),
                Err(_) => {}
            }
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
    let mut code = 0;
    if !restart_selectors.is_empty() {
        let sel = super::SelArgs {
            targets: restart_selectors,
            update_env: a.update_env,
            parallel: None,
            app: a.app.clone(),
        };
        code = super::ops::act(
            &mut client,
            out,
            pmr_core::protocol::Action::Restart,
            &sel,
            true,
        )?;
    }
    if !file_specs.is_empty() && apply_files(&mut client, out, file_specs)? != 0 {
        code = 1;
    }
    if !specs.is_empty() {
        start_scripts(&mut client, out, specs, &a.app, a.force)?;
    }
    super::show::print_table(&mut client, out)?;
    Ok(code)
}

/// A number as JavaScript's `isNaN` sees it (`7`, ` 7 `, `1e1`): PM2 takes such a word as an id.
fn is_number(t: &str) -> bool {
    let t = t.trim();
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_as_pm2_sees_them() {
        for yes in ["0", "7", " 12 ", "1e1", "3.0"] {
            assert!(super::is_number(yes), "{yes}");
        }
        for no in ["", "echo", "7a", "inf", "NaN", "app.js", "./7"] {
            assert!(!super::is_number(no), "{no}");
        }
    }
}
