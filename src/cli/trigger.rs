//! `pmr trigger <app> <action> [param]`: PM2's command for @pm2/io actions, with a timeout
//! (PM2 waits forever for a process that never replies) and `--json` for scripts.

use super::{call, Out};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response, TriggerReply, TriggerRequest};

pub struct TriggerArgs<'a> {
    pub target: &'a str,
    pub action: &'a str,
    pub param: Option<&'a str>,
    pub timeout_ms: u64,
    pub json: bool,
}

pub fn trigger(home: &Home, out: &Out, a: TriggerArgs) -> Result<i32> {
    if a.timeout_ms == 0 {
        bail!("--timeout must be a number of milliseconds above 0");
    }
    let mut client = Client::connect(home)?;
    let ids = super::resolve(&mut client, &[a.target.to_string()])?;
    let req = Request::Trigger(TriggerRequest {
        ids,
        action: a.action.to_string(),
        // PM2 passes the parameter as the string typed.
        param: a.param.map(|p| serde_json::Value::String(p.to_string())),
        timeout_ms: a.timeout_ms,
    });
    let replies = match call(&mut client, &req)? {
        Response::Triggered { replies } => replies,
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    let failed = replies.iter().any(|r| !r.ok);
    if a.json {
        println!("{}", serde_json::to_string(&replies)?);
    } else {
        print_replies(out, a.action, &replies);
    }
    Ok(i32::from(failed))
}

/// PM2's lines: how many processes got the command, then `[name:id:namespace]=<reply>`.
fn print_replies(out: &Out, action: &str, replies: &[TriggerReply]) {
    let sent = replies
        .iter()
        .filter(|r| {
            r.ok || r
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("no reply"))
        })
        .count();
    if !out.silent {
        let head = format!("{sent} processes have received command {action}");
        println!(
            "{}",
            pmr_render::style::paint(out.color, &[pmr_render::style::BOLD], &head)
        );
    }
    for r in replies {
        let tag = format!("[{}:{}:{}]", r.name, r.pm_id, r.namespace);
        match (&r.data, &r.error) {
            (Some(d), _) if r.ok => println!("{tag}={d}"),
            (_, e) => eprintln!(
                "{} {tag} {}",
                pmr_core::personality::err(),
                e.as_deref().unwrap_or("failed")
            ),
        }
    }
}
