//! Read-only commands: ls, jlist, prettylist, describe, env, pid, id.

use super::{list, Out};
use crate::client::Client;
use crate::paths::Home;
use crate::protocol::{ProcInfo, Status};
use crate::render;
use anyhow::{bail, Result};
use std::io::{IsTerminal, Write};

fn home_str(home: &Home) -> String {
    home.root.to_string_lossy().into_owned()
}

fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`pmr jlist | head`) is not an error worth a message.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

pub fn print_table(client: &mut Client, out: &Out) -> Result<()> {
    if out.silent {
        return Ok(());
    }
    let procs = list(client)?;
    let width = if std::io::stdout().is_terminal() {
        terminal_width()
    } else {
        None
    };
    print(&render::table::ls(&procs, width, out.color))
}

fn terminal_width() -> Option<usize> {
    let ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let mut ws = ws;
    // SAFETY: nix has no safe wrapper for TIOCGWINSZ. The request writes one `winsize`
    // through the pointer, which points at `ws`, owned here and alive for the call; on a bad fd
    // or a non-terminal the call fails without writing, and `r` says so.
    let r = unsafe { nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0)
        .then_some(ws.ws_col as usize)
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
}

pub fn ls(home: &Home, out: &Out) -> Result<i32> {
    let mut client = Client::connect(home)?;
    print_table(
        &mut client,
        &Out {
            silent: false,
            color: out.color,
        },
    )?;
    Ok(0)
}

pub fn jlist(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = list(&mut client)?;
    print(&(render::jlist::jlist(&procs, &home_str(home)) + "\n"))?;
    Ok(0)
}

pub fn prettylist(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = list(&mut client)?;
    let v: Vec<serde_json::Value> = procs
        .iter()
        .map(|p| render::jlist::jlist_value(p, &home_str(home)))
        .collect();
    print(&(render::prettylist::inspect(&serde_json::Value::Array(v)) + "\n"))?;
    Ok(0)
}

/// Processes matching a selector (name, id, namespace, all, /regex/).
fn select(client: &mut Client, target: &str) -> Result<Vec<ProcInfo>> {
    let ids = super::resolve(client, &[target.to_string()])?;
    Ok(list(client)?
        .into_iter()
        .filter(|p| ids.contains(&p.pm_id))
        .collect())
}

pub fn describe(home: &Home, out: &Out, target: &str) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = select(&mut client, target)?;
    for p in &procs {
        print(&render::describe::describe(p, out.color))?;
        // The app's own words on why it stopped (pmr's "last error" only says how).
        if matches!(p.status, Status::Errored) {
            let path = std::path::Path::new(&p.err_log_path);
            if let Ok(lines) = crate::daemon::logs::tail_lines(path, ERROR_TAIL) {
                if !lines.is_empty() {
                    print(&format!(
                        " Last lines of the error log ({}):\n{}\n\n",
                        p.err_log_path,
                        lines.join("\n")
                    ))?;
                }
            }
        }
    }
    Ok(0)
}

/// Lines of an errored app's error log that `describe` shows: a stack trace's head.
const ERROR_TAIL: usize = 15;

pub fn env(home: &Home, id: &str) -> Result<i32> {
    let Ok(id) = id.parse::<u32>() else {
        bail!("pmr env takes a process id; got {id:?}");
    };
    let mut client = Client::connect(home)?;
    match list(&mut client)?.into_iter().find(|p| p.pm_id == id) {
        Some(p) => print(&render::env::env_listing(&p))?,
        None => bail!("process {id} not found"),
    }
    Ok(0)
}

pub fn pid(home: &Home, name: Option<&str>) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = match name {
        Some(n) => select(&mut client, n)?,
        None => list(&mut client)?,
    };
    let mut s = String::new();
    for p in procs.iter().filter(|p| p.pid != 0) {
        s.push_str(&format!("{}\n", p.pid));
    }
    print(&s)?;
    Ok(0)
}

pub fn id(home: &Home, name: &str) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let ids: Vec<String> = list(&mut client)?
        .into_iter()
        .filter(|p| p.spec.name == name)
        .map(|p| p.pm_id.to_string())
        .collect();
    // PM2 prints a JS array: `[ 0, 1 ]`, or `[]`.
    if ids.is_empty() {
        print("[]\n")?;
    } else {
        print(&format!("[ {} ]\n", ids.join(", ")))?;
    }
    Ok(0)
}
