//! The `pmr` command line: PM2's commands, aliases and flags. Each command family lives in its
//! own file; this one parses and dispatches.

mod app_spec;
mod attach;
mod conf;
mod conf_file;
mod ecosystem;
mod flags;
mod launch;
mod links;
mod logs;
mod misc;
mod modules;
mod ops;
mod patch;
mod persist;
mod pm2_dump;
mod report;
mod runtime;
mod serve;
mod show;
mod start;
mod startup;
pub mod startup_templates;
mod trigger;
mod update;
mod web;

use crate::client::Client;
use anyhow::{bail, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, ResolveRequest, Response};

#[derive(Parser, Debug)]
#[command(
    name = "pmr",
    version,
    about = "A production process manager for Node.js apps and any other program (PM2-compatible)"
)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    /// Disable colours.
    #[arg(long = "no-color", global = true)]
    pub no_color: bool,
    #[command(flatten)]
    pub ignored: IgnoredFlags,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// PM2 flags for its monitoring agent (pmx, PM2 Plus, versioning, source maps): they mean
/// nothing here, but scripts pass them, so they are accepted on every command, as PM2's global
/// options are, with one note.
#[derive(Args, Debug, Default)]
pub struct IgnoredFlags {
    #[arg(long = "no-automation", global = true, hide = true)]
    no_automation: bool,
    #[arg(long = "no-pmx", global = true, hide = true)]
    no_pmx: bool,
    #[arg(long = "no-vizion", global = true, hide = true)]
    no_vizion: bool,
    #[arg(long, global = true, hide = true)]
    trace: bool,
    #[arg(long = "disable-trace", global = true, hide = true)]
    disable_trace: bool,
    #[arg(long, global = true, hide = true)]
    v8: bool,
    #[arg(long = "event-loop-inspector", global = true, hide = true)]
    event_loop_inspector: bool,
    #[arg(long = "deep-monitoring", global = true, hide = true)]
    deep_monitoring: bool,
    #[arg(long = "source-map-support", global = true, hide = true)]
    source_map_support: bool,
    #[arg(long = "disable-source-map-support", global = true, hide = true)]
    disable_source_map_support: bool,
}

impl IgnoredFlags {
    /// The flags given, as typed.
    fn given(&self) -> Vec<&'static str> {
        [
            (self.no_automation, "--no-automation"),
            (self.no_pmx, "--no-pmx"),
            (self.no_vizion, "--no-vizion"),
            (self.trace, "--trace"),
            (self.disable_trace, "--disable-trace"),
            (self.v8, "--v8"),
            (self.event_loop_inspector, "--event-loop-inspector"),
            (self.deep_monitoring, "--deep-monitoring"),
            (self.source_map_support, "--source-map-support"),
            (
                self.disable_source_map_support,
                "--disable-source-map-support",
            ),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect()
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Start a script, a binary or an ecosystem file (restarts it if it is already an app).
    Start(StartArgs),
    /// Start the apps of an ecosystem file, restarting those already running.
    #[command(name = "startOrRestart", alias = "startorrestart")]
    StartOrRestart(SelArgs),
    /// Start the apps of an ecosystem file, reloading those already running.
    #[command(
        name = "startOrReload",
        alias = "startorreload",
        alias = "startOrGracefulReload"
    )]
    StartOrReload(SelArgs),
    /// Write a sample ecosystem.config.js.
    #[command(visible_alias = "ecosystem")]
    Init { file: Option<String> },
    /// Stop processes (they stay in the list).
    Stop(SelArgs),
    /// Stop then start processes.
    Restart(SelArgs),
    /// Zero-downtime reload (cluster mode); a restart in fork mode.
    #[command(alias = "gracefulReload", alias = "gracefulreload")]
    Reload(SelArgs),
    /// Stop processes and remove them from the list.
    #[command(visible_alias = "del")]
    Delete(SelArgs),
    /// Set the number of instances of an app: N, +N or -N.
    Scale {
        name: String,
        #[arg(allow_hyphen_values = true)]
        count: String,
    },
    /// Reset restart counters.
    Reset(SelArgs),
    /// List processes.
    #[command(visible_aliases = ["ls", "l", "ps", "status"])]
    List {
        /// One block of `key : value` lines per process (PM2's format), for scripts.
        #[arg(short = 'm', long = "mini-list")]
        mini: bool,
    },
    /// The process list as JSON (PM2's format).
    Jlist,
    /// The process list in Node's inspect notation (PM2's format).
    Prettylist,
    /// Everything about a process.
    #[command(visible_aliases = ["desc", "info", "show"])]
    Describe { target: String },
    /// A process's environment.
    Env { id: String },
    /// Pids of an app (or of all apps).
    Pid { name: Option<String> },
    /// Ids of an app.
    Id { name: String },
    /// Ping the daemon (starting it if needed).
    Ping,
    /// Send a signal to processes.
    #[command(name = "sendSignal", alias = "sendsignal")]
    SendSignal {
        signal: String,
        targets: Vec<String>,
    },
    /// Write a line to the stdin of a process (fork mode): the words joined by spaces.
    Send {
        target: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Print a process's output and send it the lines read from stdin, until stdin ends.
    Attach {
        target: String,
        /// What ends each line sent (default: a newline).
        separator: Option<String>,
    },
    /// Stop every app and the daemon.
    Kill,
    /// Print log lines of apps.
    #[command(visible_alias = "log")]
    Logs(logs::LogsArgs),
    /// Empty log files (of these apps; without one, of every app and pmr.log).
    Flush { targets: Vec<String> },
    /// Reopen every log file (after the system's logrotate moved them); same as SIGUSR2.
    #[command(name = "reloadLogs", alias = "reloadlogs")]
    ReloadLogs,
    /// Set a module setting, e.g. `pmr set pmr-logrotate:max_size 10M`.
    Set { key: String, value: String },
    /// Remove a module setting.
    Unset { key: String },
    /// Print a module setting (or all of them).
    #[command(alias = "conf")]
    Get { key: Option<String> },
    /// Print the apps of an ecosystem file as pmr understands them (JSON), without starting them;
    /// an unknown option is an error here.
    #[command(name = "config-check", hide = true)]
    ConfigCheck {
        file: String,
        #[arg(long)]
        only: Option<String>,
        #[arg(long)]
        env: Option<String>,
    },
    /// Print usage examples.
    Examples,
    /// A diagnostic dump for an issue: versions, daemon state, system, list, pmr.log's end.
    Report,
    /// Print a completion script: `pmr completion bash > /etc/bash_completion.d/pmr`.
    Completion {
        /// bash, zsh, fish, elvish or powershell; default: that of $SHELL.
        #[arg(value_enum)]
        shell: Option<clap_complete::Shell>,
    },
    /// Install (or update) a PM2 module with npm and run it: an npm name, name@version, a
    /// tarball or a folder (`pmr install pmr-logrotate` explains the built-in log rotation).
    #[command(alias = "module:install")]
    Install {
        module: String,
        /// The argument is a local tarball.
        #[arg(long)]
        tarball: bool,
    },
    /// Update a PM2 module (install it again) and run it.
    #[command(name = "module:update")]
    ModuleUpdate {
        module: String,
        /// The argument is a local tarball.
        #[arg(long)]
        tarball: bool,
    },
    /// Stop and uninstall a PM2 module.
    #[command(alias = "module:uninstall")]
    Uninstall { module: String },
    /// Link `pmr-runtime` (with --pm2, also `pm2` and `pm2-runtime`) to this binary, beside it or
    /// in DIR; the npm package and the .deb make `pmr-runtime` themselves.
    #[command(name = "setup-links")]
    SetupLinks {
        /// Where the links go (default: the directory of this binary).
        dir: Option<std::path::PathBuf>,
        /// Also `pm2` and `pm2-runtime`: pmr with PM2's home and names when called so.
        #[arg(long)]
        pm2: bool,
    },
    /// PM2 Plus (PM2's hosted monitoring) is not offered: says so and exits 0.
    #[command(hide = true)]
    Link(SaasArgs),
    #[command(hide = true)]
    Unlink(SaasArgs),
    #[command(hide = true)]
    Plus(SaasArgs),
    /// Serve a directory over HTTP, as an app named static-page-server-<port>.
    #[command(visible_alias = "expose")]
    Serve(serve::ServeArgs),
    /// (internal) The static file server `serve` starts, configured by PM2_SERVE_* variables.
    #[command(name = "__serve", hide = true)]
    InternalServe(serve::InternalServeArgs),
    /// (internal) Run the daemon in the foreground.
    #[command(hide = true)]
    Daemon {
        /// Start what the dump holds once the socket is up (the boot unit of `startup`), then
        /// tell systemd READY=1.
        #[arg(long)]
        resurrect: bool,
    },
    /// Save the process list (options, environment, instances, stopped or online) to the dump.
    #[command(visible_alias = "dump")]
    Save {
        /// Save even an empty list.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Start the processes of the dump (or of FILE: a pmr dump or PM2's dump.pm2), skipping
    /// apps already managed.
    Resurrect { file: Option<String> },
    /// Empty the dump file.
    Cleardump,
    /// Write the boot configuration that starts the daemon with the saved apps.
    Startup(startup::StartupArgs),
    /// Remove the boot configuration `startup` wrote.
    Unstartup(startup::StartupArgs),
    /// Run apps in the foreground, for containers (PM2's pm2-runtime; also `pmr-runtime`).
    Runtime(runtime::RuntimeArgs),
    /// Replace the daemon by the installed binary in place: the apps keep running, with their
    /// pids, ids, names and counters.
    #[command(alias = "updatePM2", alias = "updatepm2")]
    Update,
    /// A terminal dashboard: processes, the selected one's logs, metrics and details; keys to
    /// restart, reload, stop, start, delete, scale (`?` lists them).
    #[command(visible_alias = "dashboard")]
    Monit,
    /// Run an @pm2/io action of an app's processes and print each reply.
    Trigger {
        /// id, name, namespace or `all`.
        target: String,
        /// The action's name, as `describe` lists them.
        action: String,
        /// Passed to the action (as a string, as PM2).
        param: Option<String>,
        /// Give up on a process that has not replied after this many milliseconds.
        #[arg(long, default_value_t = 10000)]
        timeout: u64,
        /// Print the replies as a JSON array of {pm_id, name, namespace, ok, data|error}.
        #[arg(long)]
        json: bool,
    },
    /// The HTTP API, metrics and web dashboard: on at ADDR (default 127.0.0.1:9615), or off.
    Web(web::WebArgs),
}

/// Whatever PM2's SaaS commands take (keys, machine name): accepted, unused.
#[derive(Args, Debug, Default)]
pub struct SaasArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct SelArgs {
    /// `all`, an id, a name, a namespace or /regex/.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Apply the CLI's current environment to the processes.
    #[arg(short = 'a', long = "update-env")]
    pub update_env: bool,
    /// Reload: how many instances are replaced at once (default 1).
    #[arg(long)]
    pub parallel: Option<u32>,
    #[command(flatten)]
    pub app: flags::AppArgs,
}

#[derive(Args, Debug, Default)]
pub struct StartArgs {
    /// Script, binary, command string, ecosystem file, or existing app (name, id, namespace, all).
    pub targets: Vec<String>,
    /// Start even if the same script already runs under the same name.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(short = 'a', long = "update-env")]
    pub update_env: bool,
    /// An unknown option in a config file is an error (by default a warning, and ignored).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub app: flags::AppArgs,
    /// Arguments for the script, after `--`.
    #[arg(last = true)]
    pub script_args: Vec<String>,
    /// Run the daemon in this process, print the apps' output, stop them on Ctrl-C.
    #[arg(long = "no-daemon")]
    pub no_daemon: bool,
}

/// PM2's app flags. Each flag's id is the app option it sets (see `flags.rs`, which reads the
/// given ones from clap's matches), so a new flag needs only its line here.
#[derive(Args, Debug, Default, Clone)]
pub struct AppFlags {
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long)]
    pub cwd: Option<String>,
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub instances: Option<String>,
    #[arg(long)]
    pub interpreter: Option<String>,
    #[arg(
        id = "interpreter_args",
        long = "node-args",
        alias = "interpreter-args",
        allow_hyphen_values = true
    )]
    pub node_args: Option<String>,
    #[arg(short = 'o', long = "output", id = "out_file")]
    pub output: Option<String>,
    #[arg(short = 'e', long = "error", id = "error_file")]
    pub error: Option<String>,
    #[arg(short = 'l', long = "log", id = "log_file", num_args = 0..=1, default_missing_value = "true")]
    pub log: Option<String>,
    #[arg(long = "merge-logs")]
    pub merge_logs: bool,
    #[arg(long)]
    pub time: bool,
    #[arg(long = "log-date-format")]
    pub log_date_format: Option<String>,
    #[arg(long = "log-type")]
    pub log_type: Option<String>,
    #[arg(long = "disable-logs")]
    pub disable_logs: bool,
    #[arg(short = 'p', long = "pid", id = "pid_file")]
    pub pid: Option<String>,
    #[arg(short = 'k', long = "kill-timeout", allow_hyphen_values = true)]
    pub kill_timeout: Option<String>,
    #[arg(long = "listen-timeout", allow_hyphen_values = true)]
    pub listen_timeout: Option<String>,
    #[arg(long = "restart-delay", allow_hyphen_values = true)]
    pub restart_delay: Option<String>,
    #[arg(long = "exp-backoff-restart-delay", allow_hyphen_values = true)]
    pub exp_backoff_restart_delay: Option<String>,
    #[arg(long = "max-restarts", allow_hyphen_values = true)]
    pub max_restarts: Option<String>,
    #[arg(long = "max-memory-restart")]
    pub max_memory_restart: Option<String>,
    #[arg(long = "min-uptime", allow_hyphen_values = true)]
    pub min_uptime: Option<String>,
    #[arg(long = "stop-exit-codes", num_args = 1.., allow_hyphen_values = true)]
    pub stop_exit_codes: Vec<String>,
    #[arg(long = "no-autorestart", action = clap::ArgAction::SetFalse)]
    pub autorestart: bool,
    #[arg(long = "no-autostart", action = clap::ArgAction::SetFalse)]
    pub autostart: bool,
    #[arg(long = "no-treekill", action = clap::ArgAction::SetFalse)]
    pub treekill: bool,
    #[arg(long = "wait-ready")]
    pub wait_ready: bool,
    #[arg(long = "shutdown-with-message")]
    pub shutdown_with_message: bool,
    #[arg(short = 'c', long = "cron-restart", alias = "cron")]
    pub cron_restart: Option<String>,
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub watch: Option<String>,
    #[arg(long = "ignore-watch")]
    pub ignore_watch: Option<String>,
    #[arg(long = "instance-var")]
    pub instance_var: Option<String>,
    #[arg(long = "filter-env")]
    pub filter_env: Vec<String>,
    /// Use the `env_<name>` block of an ecosystem file.
    #[arg(long = "env", id = "env_name")]
    pub env: Option<String>,
    /// With an ecosystem file: only these apps (comma separated).
    #[arg(long)]
    pub only: Option<String>,
    /// Force fork mode.
    #[arg(
        short = 'x',
        long = "execute-command",
        id = "exec_mode",
        num_args = 0,
        default_missing_value = "fork"
    )]
    pub execute_command: Option<String>,
}

/// The command line's definition with every help text: what `--help`, the completion scripts
/// and the man pages show.
pub fn command() -> clap::Command {
    flags::with_help(Cli::command())
}

/// Whether clap may show help texts for these arguments: `-h`, `--help`, `help`, or nothing.
fn shows_help(args: &[std::ffi::OsString]) -> bool {
    args.len() <= 1
        || args[1..]
            .iter()
            .any(|a| a == "-h" || a == "--help" || a == "help")
}

/// Run the CLI; the returned code is the process exit status.
pub fn main() -> i32 {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `pmr-runtime app.js` is `pmr runtime app.js`.
    if args.first().is_some_and(|a0| runtime::is_runtime_name(a0)) {
        args.insert(1, "runtime".into());
    }
    let cmd = if shows_help(&args) {
        command()
    } else {
        Cli::command()
    };
    let cli = match Cli::from_arg_matches(&cmd.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Cmd::Daemon { resurrect } = cli.cmd {
        return match pmr_daemon::run_with(Home::from_env(), resurrect) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pmr daemon: {e:#}");
                1
            }
        };
    }
    if let Cmd::InternalServe(a) = cli.cmd {
        return serve::run_internal(a);
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<Warning>() {
                Some(w) => eprintln!("{} {w}", pmr_core::personality::warn()),
                None => eprintln!("{} {e:#}", pmr_core::personality::err()),
            }
            1
        }
    }
}

/// A failure PM2 reports as a warning (`[PM2][WARN] No process found`), still exit status 1.
#[derive(Debug)]
pub struct Warning(pub &'static str);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Warning {}

pub struct Out {
    pub silent: bool,
    pub color: bool,
}

impl Out {
    pub fn info(&self, msg: impl std::fmt::Display) {
        if !self.silent {
            println!("{} {msg}", pmr_core::personality::msg());
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    use std::io::IsTerminal;
    let home = Home::from_env();
    let out = Out {
        silent: cli.silent,
        color: !cli.no_color && pmr_render::color_enabled(std::io::stdout().is_terminal()),
    };
    let ignored = cli.ignored.given();
    if !ignored.is_empty() && !out.silent {
        eprintln!(
            "{} {}: no effect in pmr (options of PM2's monitoring agent and source maps); ignored",
            pmr_core::personality::msg(),
            ignored.join(" ")
        );
    }
    // As `pm2`, PM2's home may hold a live PM2 daemon: no command may talk to it or start a
    // second daemon beside it.
    if !matches!(
        cli.cmd,
        Cmd::Init { .. }
            | Cmd::Examples
            | Cmd::Completion { .. }
            | Cmd::SetupLinks { .. }
            | Cmd::ConfigCheck { .. }
            | Cmd::Link(_)
            | Cmd::Unlink(_)
            | Cmd::Plus(_)
            | Cmd::Startup(_)
            | Cmd::Unstartup(_)
    ) {
        if let Some(f) = pmr_core::foreign::daemon_of(&home) {
            bail!("{}", pmr_core::foreign::refusal(&home, &f));
        }
    }
    match cli.cmd {
        Cmd::Start(a) => start::start(&home, &out, a),
        Cmd::StartOrRestart(a) => ops::action(&home, &out, pmr_core::protocol::Action::Restart, a),
        Cmd::StartOrReload(a) => ops::action(&home, &out, pmr_core::protocol::Action::Reload, a),
        Cmd::Init { file } => {
            let path = ecosystem::init(file.as_deref())?;
            out.info(format!("File {} generated", path.display()));
            Ok(0)
        }
        Cmd::Stop(a) => ops::action(&home, &out, pmr_core::protocol::Action::Stop, a),
        Cmd::Restart(a) => ops::action(&home, &out, pmr_core::protocol::Action::Restart, a),
        Cmd::Reload(a) => ops::action(&home, &out, pmr_core::protocol::Action::Reload, a),
        Cmd::Delete(a) => ops::action(&home, &out, pmr_core::protocol::Action::Delete, a),
        Cmd::Scale { name, count } => ops::scale(&home, &out, &name, &count),
        Cmd::Reset(a) => ops::action(&home, &out, pmr_core::protocol::Action::Reset, a),
        Cmd::List { mini: false } => show::ls(&home, &out),
        Cmd::List { mini: true } => show::mini_list(&home),
        Cmd::Examples => misc::examples(&out),
        Cmd::Report => report::report(&home, &out),
        Cmd::Completion { shell } => misc::completion(shell),
        Cmd::Install { module, tarball } | Cmd::ModuleUpdate { module, tarball } => {
            // `pmr-logrotate` is the built-in rotation; `pm2-logrotate` the real module.
            if module == pmr_core::conf::CONF_SECTION {
                misc::install(&out, &module)
            } else {
                modules::install(&home, &out, &module, tarball)
            }
        }
        Cmd::Uninstall { module } => modules::uninstall(&home, &out, &module),
        Cmd::SetupLinks { dir, pm2 } => links::setup_links(&out, dir.as_deref(), pm2),
        Cmd::Jlist => show::jlist(&home),
        Cmd::Prettylist => show::prettylist(&home),
        Cmd::Describe { target } => show::describe(&home, &out, &target),
        Cmd::Env { id } => show::env(&home, &id),
        Cmd::Pid { name } => show::pid(&home, name.as_deref()),
        Cmd::Id { name } => show::id(&home, &name),
        Cmd::Ping => ops::ping(&home),
        Cmd::SendSignal { signal, targets } => ops::send_signal(&home, &out, &signal, &targets),
        Cmd::Send { target, line } => attach::send(&home, &out, &target, &line),
        Cmd::Attach { target, separator } => attach::attach(&home, &target, separator.as_deref()),
        Cmd::Kill => ops::kill(&home, &out),
        Cmd::Logs(a) => logs::logs(&home, a, out.color),
        Cmd::Flush { targets } => logs::flush(&home, &out, &targets),
        Cmd::ReloadLogs => logs::reload_logs(&home, &out),
        Cmd::Set { key, value } => conf::set(&home, &out, &key, &value),
        Cmd::Unset { key } => conf::unset(&home, &out, &key),
        Cmd::Get { key } => conf::get(&home, key.as_deref()),
        Cmd::ConfigCheck { file, only, env } => {
            let specs = ecosystem::load_specs(&file, only.as_deref(), env.as_deref(), true)?;
            println!("{}", serde_json::to_string_pretty(&specs)?);
            Ok(0)
        }
        Cmd::Link(_) | Cmd::Unlink(_) | Cmd::Plus(_) => {
            out.info("PM2 Plus (PM2's hosted monitoring) is not offered by pmr: nothing to do");
            Ok(0)
        }
        Cmd::Serve(a) => serve::serve(&home, &out, a),
        Cmd::Save { force } => persist::save(&home, &out, force),
        Cmd::Resurrect { file } => persist::resurrect(&home, &out, file.as_deref()),
        Cmd::Cleardump => persist::cleardump(&home, &out),
        Cmd::Startup(a) => startup::startup(&out, a),
        Cmd::Unstartup(a) => startup::unstartup(&out, a),
        Cmd::Daemon { .. } | Cmd::InternalServe(_) => unreachable!(),
        Cmd::Runtime(a) => runtime::runtime(&home, &out, a),
        Cmd::Update => update::update(&home, &out),
        Cmd::Monit => crate::monit::run(&home, out.color),
        Cmd::Trigger {
            target,
            action,
            param,
            timeout,
            json,
        } => trigger::trigger(
            &home,
            &out,
            trigger::TriggerArgs {
                target: &target,
                action: &action,
                param: param.as_deref(),
                timeout_ms: timeout,
                json,
            },
        ),
        Cmd::Web(a) => web::web(&home, &out, a),
    }
}

/// Send one request; a daemon-side error becomes an `Err`.
pub fn call(client: &mut Client, req: &Request) -> Result<Response> {
    match client.call(req)? {
        Response::Error { message } => bail!("{message}"),
        other => Ok(other),
    }
}

pub fn list(client: &mut Client) -> Result<Vec<pmr_core::protocol::ProcInfo>> {
    match call(client, &Request::List)? {
        Response::List { procs } => Ok(procs),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

pub fn resolve(client: &mut Client, selectors: &[String]) -> Result<Vec<u32>> {
    match call(
        client,
        &Request::Resolve(ResolveRequest {
            selectors: selectors.to_vec(),
            // Script paths among the selectors are relative to here (as PM2's path.resolve).
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.to_string_lossy().into_owned()),
        }),
    )? {
        Response::Ids { ids } => Ok(ids),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}
