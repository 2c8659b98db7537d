//! `update` (alias `updatePM2`): replace the running daemon by the installed binary (see
//! `crates/daemon/src/update/request.rs`). The binary is the one this CLI runs from, or
//! `PMR_UPDATE_BINARY`; it is checked before anything changes.

use super::{call, Out};
use crate::client::Client;
use anyhow::{anyhow, bail, Context, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response, ResurrectRequest, UpdateRequest};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Which binary the daemon becomes: pmr's own variable, for a binary installed elsewhere
/// than the CLI's (and for tests).
const BINARY_VAR: &str = "PMR_UPDATE_BINARY";

/// How long the new daemon may take to answer (it restores and starts the apps first, at
/// most 5 s of which waiting for them to be online).
const NEW_DAEMON_DEADLINE: Duration = Duration::from_secs(30);

pub fn update(home: &Home, out: &Out) -> Result<i32> {
    let began = Instant::now();
    let binary = match std::env::var_os(BINARY_VAR).filter(|v| !v.is_empty()) {
        Some(v) => std::path::absolute(PathBuf::from(v))
            .with_context(|| format!("update: {BINARY_VAR}"))?,
        None => std::env::current_exe().context("update: cannot find this binary")?,
    };
    pmr_daemon::check_update_binary(&binary)
        .map_err(|e| anyhow!("update: {e}; nothing changed (the daemon, if any, keeps running)"))?;
    let Some(mut client) = Client::connect_existing(home) else {
        // Nothing to replace: the next command starts a daemon from the installed binary.
        out.info("pmr daemon is not running: nothing to update");
        return Ok(0);
    };
    let old_pid = match client.call(&Request::Ping)? {
        Response::Pong { pid, .. } => client.peer_pid().unwrap_or(pid),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    };
    // PM2's way, kept in memory: if the new binary cannot read the table it is handed
    // (another format), the apps are resurrected from this list.
    let before = super::list(&mut client)?;
    let procs: Vec<_> = before.iter().map(pmr_core::dump::proc_of).collect();
    out.info(format!(
        "Updating the daemon (pid {old_pid}) to {}",
        binary.display()
    ));
    let binary_str = binary
        .to_str()
        .ok_or_else(|| anyhow!("update: {} is not UTF-8", binary.display()))?
        .to_string();
    let instances = match client.call(&Request::Update(UpdateRequest { binary: binary_str })) {
        Ok(Response::Updating { instances }) => instances,
        Ok(Response::Error { message }) if message.contains("unknown variant") => bail!(
            "update: the running daemon predates `update`: `pmr save`, `pmr kill`, then `pmr resurrect`"
        ),
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected reply from the daemon: {other:?}"),
        Err(e) => return Err(e),
    };
    // The exec closes our connection; then the same pid answers from the new binary.
    client.set_timeout(Some(NEW_DAEMON_DEADLINE));
    let _ = client.recv();
    drop(client);
    let (version, mut client) = wait_new_daemon(home, old_pid)?;
    let answered = began.elapsed();
    let after = super::list(&mut client)?;
    let restored = after.len();
    out.info(format!(
        "Daemon {old_pid} now runs {} (pmr {version}), answering {} ms after the command; {restored} of {instances} instance(s) restored",
        binary.display(),
        answered.as_millis()
    ));
    let mut code = 0;
    if restored < instances as usize && !procs.is_empty() {
        out.info(format!(
            "update: the new daemon could not take over the process table (see {}): resurrecting the {} process(es) listed before the update, as PM2 does",
            home.daemon_log().display(),
            procs.len()
        ));
        match call(&mut client, &Request::Resurrect(ResurrectRequest { procs }))? {
            Response::Resurrected { results, .. } => {
                for r in results.iter().filter(|r| r.error.is_some()) {
                    code = 1;
                    eprintln!(
                        "{} [{}]({}) {}",
                        pmr_core::personality::err(),
                        r.name,
                        r.id,
                        r.error.as_deref().unwrap_or_default()
                    );
                }
            }
            other => bail!("unexpected reply from the daemon: {other:?}"),
        }
    }
    out.info(kept_message(&before, &super::list(&mut client)?));
    super::show::print_table(&mut client, out)?;
    Ok(code)
}

/// Which processes the update kept (same pid) and which it started again.
fn kept_message(
    before: &[pmr_core::protocol::ProcInfo],
    after: &[pmr_core::protocol::ProcInfo],
) -> String {
    let mut kept = 0;
    let mut restarted = Vec::new();
    for b in before.iter().filter(|b| b.pid != 0) {
        match after.iter().find(|a| a.pm_id == b.pm_id) {
            Some(a) if a.pid == b.pid => kept += 1,
            _ => restarted.push(format!("{}:{}", b.spec.name, b.pm_id)),
        }
    }
    if restarted.is_empty() {
        format!("update: every app kept running ({kept} process(es), same pids)")
    } else {
        format!(
            "update: {kept} process(es) kept running; restarted (not handed over, see the daemon log): {}",
            restarted.join(", ")
        )
    }
}

/// The daemon answering `Ping` with `old_pid` again (it keeps its pid across the exec).
fn wait_new_daemon(home: &Home, old_pid: u32) -> Result<(String, Client)> {
    let deadline = Instant::now() + NEW_DAEMON_DEADLINE;
    loop {
        if let Some(mut c) = Client::connect_existing(home) {
            c.set_timeout(Some(NEW_DAEMON_DEADLINE));
            match call(&mut c, &Request::Ping) {
                Ok(Response::Pong { version, pid, .. })
                    if c.peer_pid().unwrap_or(pid) == old_pid =>
                {
                    c.set_timeout(None);
                    return Ok((version, c));
                }
                Ok(Response::Pong { pid, .. }) => bail!(
                    "update: another daemon (pid {pid}) answers in place of {old_pid}: see {}",
                    home.daemon_log().display()
                ),
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "update: the new daemon did not answer within {} s: see {}",
                NEW_DAEMON_DEADLINE.as_secs(),
                home.daemon_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
