//! Read-only commands: ls, jlist, prettylist, describe, env, pid, id.

use super::{list, Out};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{ProcInfo, Status, View};
use std::io::{IsTerminal, Write};

fn home_str(home: &Home) -> String {
    home.root.to_string_lossy().into_owned()
}

pub(super) fn print(text: &str) -> Result<()> {
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
    let width = if std::io::stdout().is_terminal() {
        terminal_width()
    } else {
        None
    };
    let table = |client: &mut Client| -> Result<()> {
        let view = View::Table {
            width,
            color: out.color,
        };
        if client.render(view, &mut std::io::stdout().lock())? {
            return Ok(());
        }
        let procs = list(client)?;
        print(&pmr_render::table::ls(&procs, width, out.color))
    };
    // Also the table after a command, once the command was answered.
    again_if_gone(client, table)
}

/// A read-only request whose connection closed unanswered (`pmr update` replaced the daemon
/// meanwhile) is asked again of the daemon that answers now.
fn again_if_gone<T>(client: &mut Client, mut f: impl FnMut(&mut Client) -> Result<T>) -> Result<T> {
    match f(client) {
        Err(e) if e.is::<crate::client::Gone>() => {
            client.reconnect()?;
            f(client)
        }
        r => r,
    }
}

fn terminal_width() -> Option<usize> {
    let cols = rustix::termios::tcgetwinsize(std::io::stdout()).map_or(0, |ws| ws.ws_col);
    (cols > 0)
        .then_some(cols as usize)
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

/// `ls -m` / `--mini-list`: PM2's `pm2-ls-minimal.js`, one block per process, for scripts
/// that grep it.
pub fn mini_list(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = list(&mut client)?;
    let v = jlist_values(&procs, home);
    print(&mini_list_text(&v, pmr_render::now_ms()))?;
    Ok(0)
}

/// The text of `ls -m` from jlist entries (read as PM2 reads its list), at time `now` (ms).
fn mini_list_text(procs: &[serde_json::Value], now: i64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for p in procs {
        let e = &p["pm2_env"];
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "undefined".into(),
            other => other.to_string(),
        };
        let status = text(&e["status"]);
        let mode = text(&e["exec_mode"]);
        // jlist says `N/A` where PM2's pm2_env has no version, which console.log writes so.
        let version = match text(&e["version"]).as_str() {
            "N/A" => "undefined".to_string(),
            v => v.to_string(),
        };
        let uptime = match e["pm_uptime"].as_i64() {
            Some(t) if t > 0 && status == "online" => pmr_render::human_duration(now - t),
            _ => "0".into(),
        };
        let watching = !matches!(
            e["watch"],
            serde_json::Value::Bool(false) | serde_json::Value::Null
        );
        let _ = writeln!(s, "+--- {}", text(&e["name"]));
        let _ = writeln!(s, "namespace : {}", text(&e["namespace"]));
        let _ = writeln!(s, "version : {version}");
        let _ = writeln!(s, "pid : {}", text(&p["pid"]));
        let _ = writeln!(s, "pm2 id : {}", text(&e["pm_id"]));
        let _ = writeln!(s, "status : {status}");
        let _ = writeln!(
            s,
            "mode : {}",
            mode.split("_mode").next().unwrap_or_default()
        );
        let _ = writeln!(s, "restarted : {}", e["restart_time"].as_u64().unwrap_or(0));
        let _ = writeln!(s, "uptime : {uptime}");
        // PM2's bytesToSize leaves a space after the unit.
        let mem = p["monit"]["memory"].as_u64().unwrap_or(0);
        let _ = writeln!(s, "memory usage : {} ", pmr_render::human_bytes(mem));
        let _ = writeln!(s, "error log : {}", text(&e["pm_err_log_path"]));
        let _ = writeln!(s, "watching : {}", if watching { "yes" } else { "no" });
        let _ = writeln!(s, "PID file : {}\n", text(&e["pm_pid_path"]));
    }
    s
}

pub fn jlist(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    again_if_gone(&mut client, |client| {
        let view = View::Jlist {
            home: home_str(home),
        };
        if client.render(view, &mut std::io::stdout().lock())? {
            return Ok(0);
        }
        let procs = list(client)?;
        print(&(pmr_render::jlist(&procs, &home_str(home)) + "\n"))?;
        Ok(0)
    })
}

pub fn prettylist(home: &Home) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let procs = list(&mut client)?;
    let v = jlist_values(&procs, home);
    print(&(pmr_render::prettylist::inspect(&serde_json::Value::Array(v)) + "\n"))?;
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
        print(&pmr_render::describe::describe(p, out.color))?;
        // The app's own words on why it stopped (pmr's "last error" only says how).
        if matches!(p.status, Status::Errored) {
            let path = std::path::Path::new(&*p.err_log_path);
            if let Ok(lines) = pmr_core::tail::tail_lines(path, ERROR_TAIL) {
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
        Some(p) => print(&pmr_render::env::env_listing(&p))?,
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

/// Each process as PM2's jlist shows it.
fn jlist_values(procs: &[ProcInfo], home: &Home) -> Vec<serde_json::Value> {
    procs
        .iter()
        .map(|p| pmr_render::jlist::jlist_value(p, &home_str(home)))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn mini_list_is_pm2s_format() {
        let now = 1_700_000_000_000;
        let p = json!({
            "pid": 4242,
            "monit": {"memory": 43_830_000, "cpu": 0.5},
            "pm2_env": {
                "name": "k", "namespace": "default", "version": "N/A", "pm_id": 0,
                "status": "online", "exec_mode": "fork_mode", "restart_time": 2,
                "pm_uptime": now - 150_000, "watch": false,
                "pm_err_log_path": "/h/logs/k-error.log", "pm_pid_path": "/h/pids/k-0.pid",
            },
        });
        // As printed by PM2 7.0.4 for such a process.
        assert_eq!(
            super::mini_list_text(&[p], now),
            "+--- k\nnamespace : default\nversion : undefined\npid : 4242\npm2 id : 0\n\
             status : online\nmode : fork\nrestarted : 2\nuptime : 2m\n\
             memory usage : 41.8mb \nerror log : /h/logs/k-error.log\nwatching : no\n\
             PID file : /h/pids/k-0.pid\n\n"
        );
        let stopped = json!({"pid": 0, "monit": {"memory": 0},
            "pm2_env": {"name": "c", "namespace": "ns", "version": "1.2.0", "pm_id": 3,
                "status": "stopped", "exec_mode": "cluster_mode", "pm_uptime": now,
                "watch": ["src"], "pm_err_log_path": "e", "pm_pid_path": "p"}});
        let t = super::mini_list_text(&[stopped], now);
        for line in [
            "version : 1.2.0",
            "mode : cluster",
            "restarted : 0",
            "uptime : 0\n",
            "memory usage : 0b \n",
            "watching : yes",
        ] {
            assert!(t.contains(line), "{line:?} in {t}");
        }
    }
}
