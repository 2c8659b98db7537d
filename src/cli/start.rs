//! `pmr start`: scripts, binaries, command strings, or existing apps (which are restarted).

use super::{call, AppFlags, Out, StartArgs};
use crate::client::Client;
use crate::config::app::{build_spec, BuildCtx};
use crate::paths::Home;
use crate::protocol::{Request, Response};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

/// PM2's command-line flags as raw app options (the names of the ecosystem file).
pub fn flags_to_options(f: &AppFlags) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    let ms = |flag: &str, v: &str| -> Result<Value> {
        v.trim().parse::<u64>().map(Value::from).map_err(|_| {
            anyhow!("--{flag} must be a non-negative number of milliseconds; got {v:?}")
        })
    };
    if let Some(v) = &f.name {
        put("name", json!(v));
    }
    if let Some(v) = &f.namespace {
        put("namespace", json!(v));
    }
    if let Some(v) = &f.cwd {
        put("cwd", json!(v));
    }
    if let Some(v) = &f.instances {
        let n = if v == "max" {
            0
        } else {
            v.trim().parse::<i64>().map_err(|_| {
                anyhow!("-i/--instances must be a number, 'max' or a negative number; got {v:?}")
            })?
        };
        put("instances", json!(n));
    }
    if let Some(v) = &f.interpreter {
        put("interpreter", json!(v));
    }
    if let Some(v) = &f.node_args {
        put(
            "interpreter_args",
            json!(v.split_whitespace().collect::<Vec<_>>()),
        );
    }
    if let Some(v) = &f.output {
        put("out_file", json!(v));
    }
    if let Some(v) = &f.error {
        put("error_file", json!(v));
    }
    if let Some(v) = &f.log {
        put(
            "log_file",
            if v.is_empty() { json!(true) } else { json!(v) },
        );
    }
    if f.merge_logs {
        put("merge_logs", json!(true));
    }
    if f.time {
        put("time", json!(true));
    }
    if let Some(v) = &f.log_date_format {
        put("log_date_format", json!(v));
    }
    if let Some(v) = &f.log_type {
        put("log_type", json!(v));
    }
    if f.disable_logs {
        put("disable_logs", json!(true));
    }
    if let Some(v) = &f.pid {
        put("pid_file", json!(v));
    }
    for (flag, key, v) in [
        ("kill-timeout", "kill_timeout", &f.kill_timeout),
        ("listen-timeout", "listen_timeout", &f.listen_timeout),
        ("restart-delay", "restart_delay", &f.restart_delay),
        (
            "exp-backoff-restart-delay",
            "exp_backoff_restart_delay",
            &f.exp_backoff_restart_delay,
        ),
        ("min-uptime", "min_uptime", &f.min_uptime),
    ] {
        if let Some(v) = v {
            put(key, ms(flag, v)?);
        }
    }
    if let Some(v) = &f.max_restarts {
        let n = v
            .trim()
            .parse::<u32>()
            .map_err(|_| anyhow!("--max-restarts must be a non-negative number; got {v:?}"))?;
        put("max_restarts", json!(n));
    }
    if let Some(v) = &f.max_memory_restart {
        put("max_memory_restart", json!(v));
    }
    if !f.stop_exit_codes.is_empty() {
        let codes = f
            .stop_exit_codes
            .iter()
            .map(|c| {
                c.parse::<i32>()
                    .map_err(|_| anyhow!("--stop-exit-codes takes numbers; got {c:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        put("stop_exit_codes", json!(codes));
    }
    if f.no_autorestart {
        put("autorestart", json!(false));
    }
    if f.no_autostart {
        put("autostart", json!(false));
    }
    if f.no_treekill {
        put("treekill", json!(false));
    }
    if f.wait_ready {
        put("wait_ready", json!(true));
    }
    if f.shutdown_with_message {
        put("shutdown_with_message", json!(true));
    }
    if let Some(v) = &f.cron_restart {
        put("cron_restart", json!(v));
    }
    if let Some(v) = &f.watch {
        put("watch", if v == "true" { json!(true) } else { json!([v]) });
    }
    if let Some(v) = &f.ignore_watch {
        put(
            "ignore_watch",
            json!(v.split_whitespace().collect::<Vec<_>>()),
        );
    }
    if let Some(v) = &f.instance_var {
        put("instance_var", json!(v));
    }
    if !f.filter_env.is_empty() {
        put("filter_env", json!(f.filter_env));
    }
    if f.execute_command {
        put("exec_mode", json!("fork"));
    }
    Ok(m)
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
    let flags = flags_to_options(&a.app)?;
    let mut client: Option<Client> = None;
    let mut specs = Vec::new();
    let mut restart_selectors = Vec::new();
    for t in &targets {
        let mut opts = flags.clone();
        opts.insert("script".into(), json!(t));
        if !a.script_args.is_empty() {
            opts.insert("args".into(), json!(a.script_args));
        }
        match build_spec(&opts, &ctx) {
            Ok(spec) => specs.push(spec),
            Err(e) => {
                // Not a script: maybe an existing app (PM2 restarts it then).
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => client.insert(Client::connect(home)?),
                };
                if super::resolve(c, std::slice::from_ref(t)).is_ok() {
                    restart_selectors.push(t.clone());
                } else {
                    bail!("{e}");
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
            app: a.app.clone(),
        };
        super::ops::run_action(&mut client, out, crate::protocol::Action::Restart, &sel)?;
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
    Ok(0)
}
