//! `pmr logs`: the last lines of each log file, then a live stream of new lines from the daemon
//! (not from the files, so it survives restarts, reloads and rotations). `flush` and
//! `reloadLogs` live here too.

use super::{call, list};
use crate::client::Client;
use anyhow::{bail, Result};
use clap::Args;
use pmr_core::dayjs::dayjs;
use pmr_core::paths::Home;
use pmr_core::protocol::{FlushRequest, FrameError, Request, Response, SubscribeRequest};
use pmr_core::tail::tail_lines;
use pmr_render::style::{paint, BLUE, GREEN, GREY, RED};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// PM2's default `--timestamp` format.
pub const DEFAULT_TIMESTAMP: &str = "YYYY-MM-DD-HH:mm:ss";

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// An id, name, namespace, `all` or /regex/ (default: all, with the daemon's own log).
    pub target: Option<String>,
    /// How many lines of each file to print first.
    #[arg(long, default_value = "15", allow_hyphen_values = true)]
    pub lines: String,
    /// Print the last lines and exit instead of following.
    #[arg(long)]
    pub nostream: bool,
    /// Lines only: no `id|name|` prefix and no headers (error lines go to stderr).
    #[arg(long)]
    pub raw: bool,
    /// One JSON object per line: app, id, stream, time, message.
    #[arg(long)]
    pub json: bool,
    /// Prefix streamed lines with the time they were read (day.js format).
    #[arg(long, num_args = 0..=1, default_missing_value = DEFAULT_TIMESTAMP)]
    pub timestamp: Option<String>,
    /// Only the error logs.
    #[arg(long)]
    pub err: bool,
    /// Only the output logs.
    #[arg(long)]
    pub out: bool,
    /// Highlight this text in the lines (with colours on).
    #[arg(long)]
    pub highlight: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Out,
    Err,
    Daemon,
}

impl Kind {
    fn from_stream(s: &str) -> Kind {
        match s {
            "out" => Kind::Out,
            "err" => Kind::Err,
            _ => Kind::Daemon,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Kind::Out => "out",
            Kind::Err => "err",
            Kind::Daemon => "pmr",
        }
    }
}

struct Printer {
    raw: bool,
    json: bool,
    color: bool,
    timestamp: Option<String>,
    highlight: Option<String>,
    /// PM2 widens the stream's name column to the longest `id|name` seen so far.
    min_padding: usize,
}

fn pad(s: &str, width: usize) -> String {
    // PM2's pad(): cut or fill to exactly `width` characters.
    let mut out: String = s.chars().take(width).collect();
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width - n));
    out
}

impl Printer {
    fn label(id: Option<u32>, name: &str) -> String {
        match id {
            Some(id) => format!("{id}|{name}"),
            None => "PMR".into(),
        }
    }

    fn colored_prefix(&self, kind: Kind, text: &str) -> String {
        let code = match kind {
            Kind::Out => GREEN,
            Kind::Err => RED,
            Kind::Daemon => BLUE,
        };
        paint(self.color, &[code], &format!("{text} | "))
    }

    fn body(&self, line: &str) -> String {
        match &self.highlight {
            Some(h) if self.color && !h.is_empty() => {
                line.replace(h.as_str(), &format!("\x1b[100m{h}\x1b[49m"))
            }
            _ => line.to_string(),
        }
    }

    fn json_line(kind: Kind, id: Option<u32>, name: &str, time: Option<i64>, msg: &str) -> String {
        let time = time.map(|t| {
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        });
        json!({"app": name, "id": id, "stream": kind.as_str(), "time": time, "message": msg})
            .to_string()
    }

    /// One line from a file's tail (PM2: fixed 10-character name column, no timestamp).
    fn tail_line(
        &self,
        w: &mut impl Write,
        kind: Kind,
        id: Option<u32>,
        name: &str,
        line: &str,
    ) -> std::io::Result<()> {
        if self.json {
            return writeln!(w, "{}", Self::json_line(kind, id, name, None, line));
        }
        if self.raw {
            if kind == Kind::Err {
                return writeln!(std::io::stderr(), "{line}");
            }
            return writeln!(w, "{line}");
        }
        let prefix = self.colored_prefix(kind, &pad(&Self::label(id, name), 10));
        writeln!(w, "{prefix}{}", self.body(line))
    }

    /// One streamed line.
    fn stream_line(
        &mut self,
        w: &mut impl Write,
        kind: Kind,
        id: Option<u32>,
        name: &str,
        time: i64,
        line: &str,
    ) -> std::io::Result<()> {
        if self.json {
            return writeln!(w, "{}", Self::json_line(kind, id, name, Some(time), line));
        }
        if self.raw {
            if kind == Kind::Err {
                return writeln!(std::io::stderr(), "{line}");
            }
            return writeln!(w, "{line}");
        }
        if let Some(fmt) = &self.timestamp {
            let ts = dayjs(fmt, time) + " ";
            write!(w, "{}", paint(self.color, &["2", GREY], &ts))?;
        }
        let label = Self::label(id, name);
        if label.chars().count() > self.min_padding {
            self.min_padding = label.chars().count() + 1;
        }
        let prefix = self.colored_prefix(kind, &pad(&label, self.min_padding));
        writeln!(w, "{prefix}{}", self.body(line))
    }

    fn skipped(&self, w: &mut impl Write, count: u64) -> std::io::Result<()> {
        let msg = format!("[[[ {count} lines skipped: this reader is slower than the apps ]]]");
        if self.json {
            let now = chrono::Utc::now().timestamp_millis();
            let mut v: serde_json::Value =
                serde_json::from_str(&Self::json_line(Kind::Daemon, None, "PMR", Some(now), &msg))
                    .unwrap_or_default();
            v["stream"] = "skipped".into();
            v["skipped"] = count.into();
            return writeln!(w, "{v}");
        }
        let prefix = self.colored_prefix(Kind::Daemon, &pad("PMR", self.min_padding.max(3)));
        writeln!(w, "{prefix}{msg}")
    }
}

struct File {
    kind: Kind,
    id: Option<u32>,
    name: String,
    path: PathBuf,
}

pub fn logs(home: &Home, a: LogsArgs, color: bool) -> Result<i32> {
    let lines: usize = match a.lines.trim().parse::<i64>() {
        Ok(n) if n >= 0 => n as usize,
        _ => bail!("--lines must be a non-negative number; got {:?}", a.lines),
    };
    if a.err && a.out {
        bail!("--err and --out exclude each other; give neither to see both");
    }
    let mut client = Client::connect(home)?;
    let target = a.target.clone().unwrap_or_else(|| "all".into());
    let everything = target == "all";
    let ids = super::resolve(&mut client, std::slice::from_ref(&target))?;
    let procs: Vec<_> = list(&mut client)?
        .into_iter()
        .filter(|p| ids.contains(&p.pm_id))
        .collect();
    let with_daemon = everything && !a.err && !a.out;

    // Subscribe first, so that no line falls between the tail and the stream.
    let mut stream = if a.nostream {
        None
    } else {
        let mut s = Client::connect(home)?;
        s.send(&Request::Subscribe(SubscribeRequest {
            ids: (!everything).then(|| ids.clone()),
            out: !a.err,
            err: !a.out,
            daemon: with_daemon,
        }))?;
        match s.recv() {
            Ok(Response::Subscribed) => {}
            Ok(Response::Error { message }) => bail!("{message}"),
            Ok(other) => bail!("unexpected reply from the daemon: {other:?}"),
            Err(e) => bail!("no answer from the pmr daemon: {e}"),
        }
        Some(s)
    };

    let mut files: Vec<File> = Vec::new();
    if with_daemon {
        files.push(File {
            kind: Kind::Daemon,
            id: None,
            name: "PMR".into(),
            path: home.daemon_log(),
        });
    }
    for p in &procs {
        let mut add = |kind: Kind, path: &str| {
            if pmr_core::paths::is_null_device(path) || files.iter().any(|f| f.path == *path) {
                return;
            }
            files.push(File {
                kind,
                id: Some(p.pm_id),
                name: p.spec.name.clone(),
                path: PathBuf::from(path),
            });
        };
        if !a.out {
            add(Kind::Err, &p.err_log_path);
        }
        if !a.err {
            add(Kind::Out, &p.out_log_path);
        }
    }
    // PM2 prints the most recently written file last, nearest to the stream.
    files.sort_by_key(|f| std::fs::metadata(&f.path).and_then(|m| m.modified()).ok());

    let mut printer = Printer {
        raw: a.raw,
        json: a.json,
        color,
        timestamp: a.timestamp.clone(),
        highlight: a.highlight.clone(),
        min_padding: 3,
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let headers = !a.raw && !a.json;
    if headers {
        let _ = writeln!(
            w,
            "{}",
            paint(
                color,
                &[GREY],
                &format!(
                    "[TAILING] Tailing last {lines} lines for [{target}] processes (change the value with --lines option)"
                )
            )
        );
    }
    if lines > 0 {
        for f in &files {
            if !f.path.exists() {
                continue;
            }
            let tail = tail_lines(&f.path, lines).unwrap_or_default();
            if headers {
                let _ = writeln!(
                    w,
                    "{}",
                    paint(
                        color,
                        &[GREY],
                        &format!("{} last {lines} lines:", f.path.display())
                    )
                );
            }
            for l in &tail {
                if printer.tail_line(&mut w, f.kind, f.id, &f.name, l).is_err() {
                    return Ok(0);
                }
            }
            if headers && !tail.is_empty() {
                let _ = writeln!(w);
            }
        }
    }
    if w.flush().is_err() {
        return Ok(0);
    }
    let Some(mut s) = stream.take() else {
        return Ok(0);
    };
    loop {
        let r = match s.recv() {
            Ok(Response::Log {
                id,
                name,
                stream,
                time,
                lines,
            }) => {
                let kind = Kind::from_stream(&stream);
                let text = lines.strip_suffix('\n').unwrap_or(&lines);
                text.split('\n').try_for_each(|l| {
                    let l = l.strip_suffix('\r').unwrap_or(l);
                    printer.stream_line(&mut w, kind, id, &name, time, l)
                })
            }
            Ok(Response::Skipped { count }) => printer.skipped(&mut w, count),
            Ok(Response::Error { message }) => bail!("{message}"),
            Ok(_) => Ok(()),
            Err(FrameError::Closed) => {
                let _ = w.flush();
                eprintln!(
                    "{} the pmr daemon is gone; no more lines",
                    pmr_core::personality::msg()
                );
                return Ok(0);
            }
            Err(e) => bail!("log stream: {e}"),
        };
        // stdout closed (`| head`): done.
        if r.and_then(|_| w.flush()).is_err() {
            return Ok(0);
        }
    }
}

/// `pmr flush [app...]`: empty the log files (all apps and `pmr.log` without an argument).
pub fn flush(home: &Home, out: &super::Out, targets: &[String]) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let ids = if targets.is_empty() || targets.iter().any(|t| t == "all") {
        None
    } else {
        Some(super::resolve(&mut client, targets)?)
    };
    match call(&mut client, &Request::Flush(FlushRequest { ids }))? {
        Response::Flushed { paths } => {
            for p in paths {
                out.info(format!("Flushing {p}"));
            }
            out.info("Logs flushed");
            Ok(0)
        }
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// `pmr reloadLogs`: reopen every log file (after the system's logrotate moved them).
pub fn reload_logs(home: &Home, out: &super::Out) -> Result<i32> {
    let mut client = Client::connect(home)?;
    out.info("Reloading all logs...");
    match call(&mut client, &Request::ReloadLogs)? {
        Response::LogsReloaded { files, warnings } => {
            for w in &warnings {
                eprintln!("{} conf.json: {w}", pmr_core::personality::warn());
            }
            out.info(format!("All logs reloaded ({files} files reopened)"));
            Ok(0)
        }
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}
