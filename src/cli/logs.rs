//! `pmr logs`: the last lines of each app's log files, then new lines as they arrive.
//!
//! Streaming through the daemon (with rotation awareness, JSON and timestamps) is a later
//! step; following here reads the files, which already survives restarts.

use super::list;
use crate::client::Client;
use crate::daemon::logs::tail_lines;
use crate::paths::Home;
use anyhow::{bail, Result};
use clap::Args;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// An id, name, namespace, `all` or /regex/ (default: all).
    pub target: Option<String>,
    /// How many lines of each file to print first.
    #[arg(long, default_value = "15", allow_hyphen_values = true)]
    pub lines: String,
    /// Print and exit instead of following.
    #[arg(long)]
    pub nostream: bool,
    /// Lines without the `id|name|` prefix.
    #[arg(long)]
    pub raw: bool,
    /// Only the error logs.
    #[arg(long)]
    pub err: bool,
    /// Only the output logs.
    #[arg(long)]
    pub out: bool,
}

struct Followed {
    prefix: String,
    path: PathBuf,
    pos: u64,
}

pub fn logs(home: &Home, a: LogsArgs) -> Result<i32> {
    let lines: usize = match a.lines.parse::<i64>() {
        Ok(n) if n >= 0 => n as usize,
        _ => bail!("--lines must be a non-negative number; got {:?}", a.lines),
    };
    let mut client = Client::connect(home)?;
    let target = a.target.clone().unwrap_or_else(|| "all".into());
    let ids = super::resolve(&mut client, std::slice::from_ref(&target))?;
    let procs: Vec<_> = list(&mut client)?
        .into_iter()
        .filter(|p| ids.contains(&p.pm_id))
        .collect();

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if a.target.is_none() || target == "all" {
        files.push(("PMR      ".into(), home.daemon_log()));
    }
    for p in &procs {
        let prefix = format!("{}|{:<9}", p.pm_id, p.spec.name);
        if !a.out {
            files.push((prefix.clone(), PathBuf::from(&p.err_log_path)));
        }
        if !a.err {
            files.push((prefix, PathBuf::from(&p.out_log_path)));
        }
    }
    files.dedup_by(|x, y| x.1 == y.1);

    let mut stdout = std::io::stdout().lock();
    if !a.raw {
        let _ = writeln!(
            stdout,
            "[TAILING] Tailing last {lines} lines for [{target}] processes (change the value with --lines option)"
        );
    }
    let mut followed = Vec::new();
    for (prefix, path) in &files {
        let tail = tail_lines(path, lines).unwrap_or_default();
        if !a.raw {
            let _ = writeln!(stdout, "{} last {lines} lines:", path.display());
        }
        for l in tail {
            let _ = if a.raw {
                writeln!(stdout, "{l}")
            } else {
                writeln!(stdout, "{prefix} | {l}")
            };
        }
        if !a.raw {
            let _ = writeln!(stdout);
        }
        let pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        followed.push(Followed {
            prefix: prefix.clone(),
            path: path.clone(),
            pos,
        });
    }
    let _ = stdout.flush();
    if a.nostream {
        return Ok(0);
    }
    loop {
        for f in &mut followed {
            let Ok(mut file) = std::fs::File::open(&f.path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < f.pos {
                f.pos = 0; // truncated or replaced
            }
            if len == f.pos {
                continue;
            }
            let _ = file.seek(SeekFrom::Start(f.pos));
            let mut buf = Vec::new();
            let _ = file.read_to_end(&mut buf);
            let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            f.pos += complete as u64;
            for l in String::from_utf8_lossy(&buf[..complete]).lines() {
                let r = if a.raw {
                    writeln!(stdout, "{l}")
                } else {
                    writeln!(stdout, "{} | {l}", f.prefix)
                };
                if r.is_err() {
                    return Ok(0);
                }
            }
            let _ = stdout.flush();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
