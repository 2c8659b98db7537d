//! `pmr-runtime` (also `pmr runtime`), PM2's `pm2-runtime` for containers, and `pmr start
//! --no-daemon`: the daemon runs in this process (`daemon::foreground`), the apps' output goes
//! to our stdout/stderr, and the exit status says how it ended. With `PMR_RUNTIME_DEBUG`/
//! `PM2_RUNTIME_DEBUG` on, `pmr-runtime` instead starts its apps through the home's background
//! daemon, as `pmr start` does, and exits.

use super::app_spec::{flags_to_options, spec_from_options};
use super::ecosystem::{is_ecosystem, load_specs};
use super::flags::AppArgs;
use super::Out;
use crate::client::Client;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use pmr_config::app::BuildCtx;
use pmr_core::paths::Home;
use pmr_core::spec::AppSpec;
use pmr_daemon::foreground::{self, Block, Console, Options, Outcome, Stream};
use serde_json::json;
use std::io::Write;

/// Names of the binary (argv[0]) that mean `pmr runtime`: `ln -s pmr pmr-runtime` (and PM2's
/// `pm2-runtime` and its older name `pm2-docker`, for images that call those).
pub fn is_runtime_name(arg0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(arg0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| matches!(n, "pmr-runtime" | "pm2-runtime" | "pm2-docker"))
}

#[derive(Args, Debug, Default)]
pub struct RuntimeArgs {
    /// Ecosystem file(s) or script(s) to run (`start <file>` too, as pm2-runtime).
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
    /// Each line after `<id>|<app> | ` (pm2-runtime's `--formatted`).
    #[arg(long, conflicts_with_all = ["json", "format", "raw"])]
    pub formatted: bool,
    /// Wait this many seconds before starting the apps.
    #[arg(long, default_value_t = 0.0)]
    pub delay: f64,
    /// PM2's process web API: not supported.
    #[arg(long, num_args = 0..=1, hide = true)]
    pub web: Option<Option<String>>,
    /// PM2 Plus keys and machine name: PM2's hosted monitoring is not offered (ignored).
    #[arg(long, num_args = 0..=1, hide = true)]
    pub secret: Option<Option<String>>,
    #[arg(long, num_args = 0..=1, hide = true)]
    pub public: Option<Option<String>>,
    #[arg(long = "machine-name", num_args = 0..=1, hide = true)]
    pub machine_name: Option<Option<String>>,
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
    /// `<id>|<name> | line`, both streams on stdout, optionally after a day.js timestamp.
    Formatted(Option<&'static str>),
}

/// `pmr-runtime …`: runs until a signal, `pmr kill`, or (unless `--no-auto-exit`) the end of
/// every app; with the debug switch, until the apps are started.
pub fn runtime(home: &Home, out: &Out, a: RuntimeArgs) -> Result<i32> {
    let debug = pmr_core::knobs::runtime_debug().map_err(|e| anyhow!("{e}"))?;
    if a.web.is_some() {
        bail!("--web (PM2's HTTP process API) is not supported yet: use `pmr jlist` inside the container");
    }
    if a.secret.is_some() || a.public.is_some() || a.machine_name.is_some() {
        eprintln!(
            "{} --secret/--public/--machine-name: PM2 Plus (PM2's hosted monitoring) is not offered by pmr; ignored",
            pmr_core::personality::warn()
        );
    }
    if !(a.delay.is_finite() && (0.0..=86_400.0).contains(&a.delay)) {
        bail!(
            "--delay must be a number of seconds from 0 to 86400, not {}",
            a.delay
        );
    }
    // pm2-runtime writes no log files for apps given on its command line (its `--output` and
    // `--error` default to /dev/null): the container's log is the output.
    let mut app = a.app.clone();
    for key in ["out_file", "error_file"] {
        app.options.entry(key).or_insert_with(|| json!("/dev/null"));
    }
    // `pm2-runtime start ecosystem.config.js`, as PM2's docs write it: `start` is its command.
    let targets = match a.targets.split_first() {
        Some((first, rest)) if first == "start" && !rest.is_empty() => rest,
        _ => &a.targets[..],
    };
    let apps = build_specs(targets, &app, &a.script_args, a.strict)?;
    let delay = std::time::Duration::from_secs_f64(a.delay);
    if let Some(var) = debug {
        return in_background(home, out, &a, &app, &var, apps, delay);
    }
    let specs = apps.into_iter().map(|p| p.spec).collect();
    let mode = if a.json {
        Mode::Json
    } else if a.format {
        Mode::Format
    } else if a.formatted {
        Mode::Formatted(None)
    } else {
        Mode::Raw
    };
    run(home, specs, !a.no_auto_exit, mode, delay, out.silent)
}

/// The debug switch: the apps go to the home's background daemon (started if absent), as
/// `pmr start` sends them, and stay there for `pmr ls`/`pmr kill` after we exit. 0 once the
/// daemon has answered that they are started, 1 (with the error) when one could not start.
fn in_background(
    home: &Home,
    out: &Out,
    a: &RuntimeArgs,
    app: &AppArgs,
    var: &str,
    apps: Vec<Planned>,
    delay: std::time::Duration,
) -> Result<i32> {
    let unused: Vec<&str> = [
        (a.json, "--json"),
        (a.format, "--format"),
        (a.formatted, "--formatted"),
        (a.raw, "--raw"),
        (a.no_auto_exit, "--no-auto-exit"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if !unused.is_empty() {
        eprintln!(
            "{} {}: no effect with {var} set (nothing is streamed and nothing waits for the apps: they run in the background daemon); ignored",
            pmr_core::personality::warn(),
            unused.join(" ")
        );
    }
    let mut client = Client::connect(home)?;
    std::thread::sleep(delay);
    let (files, scripts): (Vec<Planned>, Vec<Planned>) =
        apps.into_iter().partition(|p| p.from_file);
    let mut code = 0;
    if !files.is_empty() {
        code = super::launch::apply_files(
            &mut client,
            out,
            files.into_iter().map(|p| p.spec).collect(),
        )?;
    }
    if !scripts.is_empty() {
        let specs = scripts.into_iter().map(|p| p.spec).collect();
        // No `-f` here: a script already running as an app is refused, as by `pmr start`.
        super::launch::start_scripts(&mut client, out, specs, app, false)?;
    }
    super::show::print_table(&mut client, out)?;
    Ok(code)
}

/// `pmr start … --no-daemon`: the same foreground daemon with the apps started, their output
/// printed as it comes, until SIGINT/SIGTERM or `pmr kill` (never on its own, as PM2).
pub fn no_daemon(home: &Home, out: &Out, a: super::StartArgs) -> Result<i32> {
    let targets = if a.targets.is_empty() {
        vec!["ecosystem.config.js".to_string()]
    } else {
        a.targets.clone()
    };
    let specs = build_specs(&targets, &a.app, &a.script_args, a.strict)?
        .into_iter()
        .map(|p| p.spec)
        .collect();
    out.info(format!(
        "launched in no-daemon mode (home {}): Ctrl-C stops every app",
        home.root.display()
    ));
    // PM2 streams them as `pm2 logs` does, with an `HH:mm:ss` timestamp.
    run(
        home,
        specs,
        false,
        Mode::Formatted(Some("HH:mm:ss")),
        std::time::Duration::ZERO,
        out.silent,
    )
}

/// An app to run, and whether an ecosystem file gave it (a background daemon applies those as
/// `pmr start` does a file: an app of the same name restarts).
struct Planned {
    spec: AppSpec,
    from_file: bool,
}

/// Every spec before anything starts, in command-line order: bad input starts nothing.
fn build_specs(
    targets: &[String],
    app: &AppArgs,
    script_args: &[String],
    strict: bool,
) -> Result<Vec<Planned>> {
    let ctx = BuildCtx::from_process(app.env.clone());
    let mut specs = Vec::new();
    for t in targets {
        if is_ecosystem(t) {
            let file = load_specs(t, app.only.as_deref(), app.env.as_deref(), strict)?;
            specs.extend(file.into_iter().map(|spec| Planned {
                spec,
                from_file: true,
            }));
            continue;
        }
        let mut opts = flags_to_options(app);
        opts.insert("script".into(), json!(t));
        if !script_args.is_empty() {
            opts.insert("args".into(), json!(script_args));
        }
        specs.push(Planned {
            spec: spec_from_options(&opts, &ctx)?,
            from_file: false,
        });
    }
    if specs.is_empty() {
        bail!(
            "0 application to start (no apps to run in {})",
            targets.join(" ")
        );
    }
    Ok(specs)
}

fn run(
    home: &Home,
    apps: Vec<AppSpec>,
    auto_exit: bool,
    mode: Mode,
    delay: std::time::Duration,
    quiet: bool,
) -> Result<i32> {
    let outcome = foreground::run(
        home.clone(),
        Options {
            apps,
            auto_exit,
            quiet,
            delay,
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
    let mut p = Printer::new(mode);
    while let Some((skipped, block)) = c.recv() {
        if skipped > 0 {
            let _ = writeln!(
                stderr.lock(),
                "{} {skipped} line(s) of output skipped (the console was too slow)",
                pmr_core::personality::warn()
            );
        }
        // Errors (a closed stdout) are ignored: the apps must keep running regardless.
        let _ = match (mode, block.stream) {
            (Mode::Raw, Stream::Err) => p.write(&mut stderr.lock(), &block),
            _ => p.write(&mut stdout.lock(), &block),
        };
    }
}

/// pm2-runtime's output modes (`lib/API/Log.js`: `stream`, `jsonStream`, `formatStream`).
struct Printer {
    mode: Mode,
    /// `--formatted`: the width names are padded to, growing with the longest seen (PM2).
    pad: usize,
}

impl Printer {
    fn new(mode: Mode) -> Printer {
        Printer { mode, pad: 3 }
    }

    fn write(&mut self, w: &mut impl Write, b: &Block) -> std::io::Result<()> {
        if self.mode == Mode::Raw {
            // As the app wrote it, byte for byte (a partial line is continued by the next block).
            w.write_all(&b.lines)?;
            return w.flush();
        }
        let text = String::from_utf8_lossy(&b.lines);
        let id = b.id.map(|i| i as i64).unwrap_or(-1);
        let err = b.stream == Stream::Err;
        for line in text.lines() {
            match self.mode {
                Mode::Json => {
                    let obj = json!({
                        "message": line,
                        "timestamp": iso_time(b.time),
                        "type": if err { "err" } else { "out" },
                        "process_id": id,
                        "app_name": &*b.name,
                    });
                    writeln!(w, "{obj}")?;
                }
                _ if line.is_empty() => {}
                Mode::Format => writeln!(
                    w,
                    "timestamp={} app={} id={id} type={} message={line}",
                    pmr_core::dayjs::dayjs("YYYY-MM-DD-HH:mm:ssZZ", b.time),
                    b.name,
                    if err { "error" } else { "out" }
                )?,
                Mode::Formatted(ts) => {
                    if let Some(fmt) = ts {
                        write!(w, "{} ", pmr_core::dayjs::dayjs(fmt, b.time))?;
                    }
                    let name = format!("{id}|{}", b.name);
                    if name.len() > self.pad {
                        self.pad = name.len() + 1;
                    }
                    writeln!(w, "{name:<width$} | {line}", width = self.pad)?;
                }
                Mode::Raw => unreachable!(),
            }
        }
        w.flush()
    }
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
        Printer::new(Mode::Json)
            .write(&mut out, &block(Stream::Err, "a\nb \"q\"\n"))
            .unwrap();
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
        Printer::new(Mode::Format)
            .write(&mut out, &block(Stream::Out, "hello\n\n"))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("timestamp="), "{text}");
        assert!(
            text.ends_with(" app=web id=3 type=out message=hello\n"),
            "{text}"
        );
    }

    #[test]
    fn formatted_lines_as_pm2_logs() {
        let mut out = Vec::new();
        let mut p = Printer::new(Mode::Formatted(None));
        p.write(&mut out, &block(Stream::Err, "x\n")).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "3|web  | x\n");
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
