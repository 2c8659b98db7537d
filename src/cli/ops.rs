//! Lifecycle commands: stop, restart, reload, delete, reset, sendSignal, kill, ping.

use super::ecosystem::{is_ecosystem, load_specs};
use super::{call, Out, SelArgs};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{
    Action, ActionRequest, ApplyRequest, Request, Response, ScaleRequest, SignalRequest,
};

pub fn action(home: &Home, out: &Out, action: Action, a: SelArgs) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let code = run_action(&mut client, out, action, &a)?;
    super::show::print_table(&mut client, out)?;
    Ok(code)
}

/// Resolve the selectors and apply `action`; prints PM2-style progress lines. Ecosystem files
/// among the targets stand for their apps; restart/reload of a file re-applies its config and
/// starts the apps that are not running (as PM2 does).
pub fn run_action(client: &mut Client, out: &Out, action: Action, a: &SelArgs) -> Result<i32> {
    act(client, out, action, a, false)
}

/// `run_action`; `from_start`: `start <app>` of existing apps, which PM2 reports with
/// "Process successfully started" and without the `--update-env` hint.
pub fn act(
    client: &mut Client,
    out: &Out,
    action: Action,
    a: &SelArgs,
    from_start: bool,
) -> Result<i32> {
    let mut selectors = Vec::new();
    let mut file_apps = Vec::new();
    let mut apply = Vec::new();
    for t in &a.targets {
        if !is_ecosystem(t) {
            selectors.push(t.clone());
            continue;
        }
        let specs = load_specs(t, a.app.only.as_deref(), a.app.env.as_deref(), false)?;
        match action {
            Action::Restart | Action::Reload => apply.extend(specs),
            _ => file_apps.extend(specs.into_iter().map(|s| s.name)),
        }
    }
    if a.app.env.is_some() && apply.is_empty() {
        bail!("Using --env [env] without passing the ecosystem.config.js does not work");
    }
    let mut failed = 0;
    if !apply.is_empty() {
        let names: Vec<String> = apply.iter().map(|s| s.name.clone()).collect();
        out.info(format!(
            "Applying action {} on apps [{}]",
            action.pm2_method(),
            names.join(", ")
        ));
        let results = match call(
            client,
            &Request::Apply(ApplyRequest {
                apps: apply,
                reload: action == Action::Reload,
            }),
        )? {
            Response::Done { results } => results,
            other => bail!("unexpected reply from the daemon: {other:?}"),
        };
        failed += report(out, results);
    }
    if selectors.is_empty() && file_apps.is_empty() {
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    let restarts = matches!(action, Action::Restart | Action::Reload);
    if restarts && !a.update_env && !from_start {
        out.info("Use --update-env to update environment variables");
    }
    // Checked before anything is resolved or sent: a bad value changes nothing.
    let mut patch = if restarts {
        super::patch::from_flags(out, &a.app, &selectors.join(", "))?
    } else {
        None
    };
    let mut ids = if selectors.is_empty() {
        Vec::new()
    } else {
        super::resolve(client, &selectors)?
    };
    // PM2 acts on the apps of a file that exist and passes over the others in silence, so
    // `delete ecosystem.json` after `delete one-of-its-apps` still succeeds.
    for name in &file_apps {
        match super::resolve(client, std::slice::from_ref(name)) {
            Ok(found) => {
                for i in found {
                    if !ids.contains(&i) {
                        ids.push(i);
                    }
                }
            }
            // The daemon's answer for a selector that matches nothing (`registry.rs`).
            Err(e) if e.to_string().ends_with(&format!("{name} not found")) => {}
            Err(e) => return Err(e),
        }
    }
    if ids.is_empty() && selectors.is_empty() {
        return Ok(if failed > 0 { 1 } else { 0 });
    }
    selectors.extend(file_apps);
    let update_env = a.update_env.then(|| std::env::vars().collect());
    // PM2 treats "nothing to act on" (`stop all` on an empty list) as a failure: scripts and
    // CI jobs test the exit status. Except `reset all`, which PM2 answers with silence and 0.
    if ids.is_empty() && action == Action::Reset {
        return Ok(0);
    }
    if ids.is_empty() {
        return Err(super::Warning("No process found").into());
    }
    if let Some(p) = &mut patch {
        super::patch::default_interpreter(client, &ids, p)?;
    }
    out.info(format!(
        "Applying action {} on app [{}](ids: [ {} ])",
        action.pm2_method(),
        selectors.join(", "),
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let results = match call(
        client,
        &Request::Action(ActionRequest {
            action,
            ids,
            update_env,
            parallel: a.parallel,
            patch,
        }),
    )? {
        Response::Done { results } => results,
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    failed += report(out, results);
    if from_start && failed == 0 {
        out.info("Process successfully started");
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// Print one line per process; returns how many failed.
fn report(out: &Out, results: Vec<pmr_core::protocol::ActionResult>) -> usize {
    let mut failed = 0;
    for r in results {
        match r.error {
            None => out.info(format!("[{}]({}) ✓", r.name, r.id)),
            Some(e) => {
                failed += 1;
                eprintln!(
                    "{} [{}]({}) {e}",
                    pmr_core::personality::err(),
                    r.name,
                    r.id
                );
            }
        }
    }
    failed
}

pub fn scale(home: &Home, out: &Out, name: &str, count: &str) -> Result<i32> {
    let relative = count.starts_with('+') || count.starts_with('-');
    let n: i64 = count.trim_start_matches('+').parse().map_err(|_| {
        anyhow::anyhow!("scale takes a number of instances: N, +N or -N; got {count:?}")
    })?;
    // Checked before asking the daemon (which checks the resulting count again): a typo like
    // 10000 must not start anything.
    let max = pmr_core::protocol::max_instances();
    if n > i64::from(max) {
        bail!(pmr_core::protocol::too_many_instances(name, count, max));
    }
    let mut client = Client::connect(home)?;
    let results = match call(
        &mut client,
        &Request::Scale(ScaleRequest {
            name: name.to_string(),
            relative,
            count: n,
        }),
    )? {
        Response::Done { results } => results,
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    if results.is_empty() {
        out.info(format!("{name} already has that many instances"));
    }
    let failed = report(out, results);
    super::show::print_table(&mut client, out)?;
    Ok(if failed > 0 { 1 } else { 0 })
}

pub fn ping(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    match call(&mut client, &Request::Ping)? {
        // A version mismatch was already reported by `Client::connect`.
        Response::Pong { .. } => {
            println!("{{ msg: 'pong' }}");
            Ok(0)
        }
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// Signal names as PM2 takes them (`SIGUSR2`, `USR2`) or numbers.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s}"))
}

pub fn send_signal(home: &Home, out: &Out, signal: &str, targets: &[String]) -> Result<i32> {
    let sig = parse_signal(signal)?;
    if targets.is_empty() {
        bail!("sendSignal needs a process: pmr sendSignal <signal> <id|name>");
    }
    let mut client = Client::connect(home)?;
    let ids = super::resolve(&mut client, targets)?;
    let results = match call(
        &mut client,
        &Request::Signal(SignalRequest { signal: sig, ids }),
    )? {
        Response::Done { results } => results,
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    let mut code = 0;
    for r in results {
        match r.error {
            None => out.info(format!(
                "successfully sent signal {signal} to process [{}]({})",
                r.name, r.id
            )),
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

pub fn kill(home: &Home, out: &Out) -> Result<i32> {
    let Some(mut client) = Client::connect_existing(home) else {
        out.info("pmr daemon is not running");
        return Ok(0);
    };
    // Not `pmr.pid`: a daemon in another PID namespace (`pmr-runtime` in a container whose
    // home is shared) wrote its own pid there, which may be a live process here.
    let pid = client.peer_pid();
    call(&mut client, &Request::Kill)?;
    // The daemon answers once every app is stopped, then exits, releasing its lock last;
    // the process itself is gone a moment later, and a script may check for it right away.
    wait_daemon_gone(home, pid);
    out.info("pmr daemon stopped");
    Ok(0)
}

/// Wait (bounded) until no process holds the daemon lock of `home` and the daemon's
/// process (`pid`, read before the kill) has exited.
fn wait_daemon_gone(home: &Home, pid: Option<u32>) {
    use nix::fcntl::{Flock, FlockArg};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let unlocked = || match std::fs::File::open(home.lock_file()) {
        Ok(f) => Flock::lock(f, FlockArg::LockSharedNonblock).is_ok(),
        Err(_) => true,
    };
    let exited = || pid.is_none_or(|p| !pmr_core::procfs::alive(p));
    while std::time::Instant::now() < deadline && !(unlocked() && exited()) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signals() {
        assert_eq!(super::parse_signal("SIGUSR2").unwrap(), libc::SIGUSR2);
        assert_eq!(super::parse_signal("usr1").unwrap(), libc::SIGUSR1);
        assert_eq!(super::parse_signal("9").unwrap(), 9);
        assert!(super::parse_signal("SIGNOPE").is_err());
    }
}
