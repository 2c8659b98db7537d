//! `pmr-runtime` (also `pmr runtime`), PM2's `pm2-runtime` for containers, and `pmr start
//! --no-daemon`: the daemon runs in this process (`daemon::foreground`), the apps' output goes
//! to our stdout/stderr, and the exit status says how it ended.

use super::ecosystem::{is_ecosystem, load_specs};
use super::flags::AppArgs;
use super::start::spec_from_options;
use super::Out;
use crate::config::app::BuildCtx;
use crate::daemon::foreground::{self, Block, Console, Options, Outcome, Stream};
use crate::paths::Home;
use crate::spec::AppSpec;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::io::Write;

/// Names of the binary (argv[0]) that mean `pmr runtime`: `ln -s pmr pmr-runtime`.
pub fn is_runtime_name(arg0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(arg0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "pmr-runtime" || n == "pm2-runtime")
}

#[derive(Args, Debug, Default)]
pub struct RuntimeArgs {
    /// Ecosystem file(s) or script(s) to run.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Print the apps' output as JSON, one object per line (pm2-runtime's `--json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Print the apps' output as `timestamp=… app=… id=… type=… message=…` lines.
    #[arg(long)]
    pub format: bool,
    /// The apps' output as they wrote it (the default; pm2-runtime's `--raw`).
    #[arg(long, conflicts_with_all = ["json", "format"])]
    pub raw: bool,
    /// Keep running when every app has ended (by default: exit with the last one's code).
    #[arg(long = "no-auto-exit")]
    pub no_auto_exit: bool,
    /// An unknown option in a config file is an error (by default a warning, and ignored).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub app: AppArgs,
    /// Arguments for the script, after `--`.
    #[arg(last = true)]
    pub script_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Raw,
    Json,
    Format,
}

/// `pmr-runtime …`: runs until a signal, `pmr kill`, or (unless `--no-auto-exit`) the end of
/// every app.
pub fn runtime(home: &Home, a: RuntimeArgs) -> Result<i32> {
    // pm2-runtime writes no log files for apps given on its command line (its `--output` and
    // `--error` default to /dev/null): the container's log is the output.
    let mut app = a.app.clone();
    for key in ["out_file", "error_file"] {
        app.options.entry(key).or_insert_with(|| json!("/dev/null"));
    }
    let specs = build_specs(&a.targets, &app, &a.script_args, a.strict)?;
    let mode = if a.json {
        Mode::Json
    } else if a.format {
        Mode::Format
    } else {
        Mode::Raw
    };
    run(home, specs, !a.no_auto_exit, mode)
}

/// `pmr start … --no-daemon`: the same foreground daemon with the apps started, their output
/// printed as it comes, until SIGINT/SIGTERM or `pmr kill` (never on its own, as PM2).
pub fn no_daemon(home: &Home, out: &Out, a: super::StartArgs) -> Result<i32> {
    let targets = if a.targets.is_empty() {
        vec!["ecosystem.config.js".to_string()]
    } else {
        a.targets.clone()
    };
    let specs = build_specs(&targets, &a.app, &a.script_args, a.strict)?;
    out.info(format!(
        "launched in no-daemon mode (home {}): Ctrl-C stops every app",
        home.root.display()
    ));
    run(home, specs, false, Mode::Raw)
}

/// Every spec before anything starts: bad input starts nothing.
fn build_specs(
    targets: &[String],
    app: &AppArgs,
    script_args: &[String],
    strict: bool,
) -> Result<Vec<AppSpec>> {
    let ctx = BuildCtx::from_process(app.env.clone());
    let mut specs = Vec::new();
    for t in targets {
        if is_ecosystem(t) {
            specs.extend(load_specs(
                t,
                app.only.as_deref(),
                app.env.as_deref(),
                strict,
            )?);
            continue;
        }
        let mut opts = super::start::flags_to_options(app);
        opts.insert("script".into(), json!(t));
        if !script_args.is_empty() {
            opts.insert("args".into(), json!(script_args));
        }
        specs.push(spec_from_options(&opts, &ctx)?);
    }
    if specs.is_empty() {
        bail!(
            "0 application to start (no apps to run in {})",
            targets.join(" ")
        );
    }
    Ok(specs)
}

fn run(home: &Home, apps: Vec<AppSpec>, auto_exit: bool, mode: Mode) -> Result<i32> {
    let outcome = foreground::run(
        home.clone(),
        Options {
            apps,
            auto_exit,
            console: Box::new(move |c| print_output(c, mode)),
        },
    )?;
    Ok(exit_code(outcome))
}

/// 0 after a graceful stop; 128 + SIGKILL when an app had to be killed (as a shell reports a
/// SIGKILLed command); the last app's code when all ended on their own; 1 if they could not
/// start.
fn exit_code(o: Outcome) -> i32 {
    match o {
        Outcome::Signal { sigkilled: false } | Outcome::Killed => 0,
        Outcome::Signal { sigkilled: true } => 128 + libc::SIGKILL,
        Outcome::AppsEnded { code } => code & 0xff,
        Outcome::StartFailed => 1,
    }
}

/// The console thread: every block of output, in order, until the daemon ends.
fn print_output(mut c: Console, mode: Mode) {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    while let Some((skipped, block)) = c.recv() {
        if skipped > 0 {
            let _ = writeln!(
                stderr.lock(),
                "{} {skipped} line(s) of output skipped (the console was too slow)",
                crate::personality::warn()
            );
        }
        // Errors (a closed stdout) are ignored: the apps must keep running regardless.
        let _ = match (mode, block.stream) {
            (Mode::Raw, Stream::Err) => write_block(&mut stderr.lock(), &block, mode),
            _ => write_block(&mut stdout.lock(), &block, mode),
        };
    }
}

fn write_block(w: &mut impl Write, b: &Block, mode: Mode) -> std::io::Result<()> {
    if mode == Mode::Raw {
        w.write_all(&b.lines)?;
        return w.flush();
    }
    let text = String::from_utf8_lossy(&b.lines);
    let id = b.id.map(|i| i as i64).unwrap_or(-1);
    let kind = if b.stream == Stream::Err {
        "err"
    } else {
        "out"
    };
    for line in text.lines() {
        match mode {
            Mode::Json => {
                let obj = json!({
                    "message": line,
                    "timestamp": iso_time(b.time),
                    "type": kind,
                    "process_id": id,
                    "app_name": &*b.name,
                });
                writeln!(w, "{obj}")?;
            }
            _ => {
                if line.is_empty() {
                    continue;
                }
                writeln!(
                    w,
                    "timestamp={} app={} id={id} type={} message={line}",
                    crate::dayjs::dayjs("YYYY-MM-DD-HH:mm:ssZZ", b.time),
                    b.name,
                    if kind == "err" { "error" } else { "out" }
                )?;
            }
        }
    }
    w.flush()
}

/// day.js's `toJSON`: UTC, milliseconds, `Z`.
fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn block(stream: Stream, lines: &str) -> Block {
        Block {
            id: Some(3),
            name: Arc::from("web"),
            stream,
            time: 1_700_000_000_123,
            lines: Arc::new(lines.as_bytes().to_vec()),
        }
    }

    #[test]
    fn json_lines_as_pm2_runtime() {
        let mut out = Vec::new();
        write_block(&mut out, &block(Stream::Err, "a\nb \"q\"\n"), Mode::Json).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["message"], "b \"q\"");
        assert_eq!(lines[0]["type"], "err");
        assert_eq!(lines[0]["process_id"], 3);
        assert_eq!(lines[0]["app_name"], "web");
        assert_eq!(lines[0]["timestamp"], "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn format_lines_as_pm2_runtime() {
        let mut out = Vec::new();
        write_block(&mut out, &block(Stream::Out, "hello\n\n"), Mode::Format).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("timestamp="), "{text}");
        assert!(
            text.ends_with(" app=web id=3 type=out message=hello\n"),
            "{text}"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(Outcome::Signal { sigkilled: false }), 0);
        assert_eq!(exit_code(Outcome::Signal { sigkilled: true }), 137);
        assert_eq!(exit_code(Outcome::AppsEnded { code: 3 }), 3);
        assert_eq!(exit_code(Outcome::StartFailed), 1);
    }

    #[test]
    fn runtime_names() {
        assert!(is_runtime_name(std::ffi::OsStr::new(
            "/usr/bin/pmr-runtime"
        )));
        assert!(is_runtime_name(std::ffi::OsStr::new("pm2-runtime")));
        assert!(!is_runtime_name(std::ffi::OsStr::new("pmr")));
    }
}
