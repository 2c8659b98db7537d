//! The app option table (names, aliases, kinds, defaults, meanings: the one description of
//! every option, which the README's table and the CLI's `--help` are made from) and its
//! validation.
//!
//! [`normalize_app`] turns one raw app object from an ecosystem file into a *canonical* map:
//! every key renamed to its canonical snake_case name (aliases and camelCase forms accepted, as
//! PM2 does), every value converted to one canonical type (sizes to bytes, durations to
//! milliseconds, string argument lists shell-split, env values checked), or a precise
//! [`OptionError`]. Defaults are *not* filled in here; [`option_table_markdown`] documents them.
//!
//! Where pmr is stricter or looser than PM2 the row's `meaning` says so. Unknown keys, which PM2
//! drops silently, are warnings with a did-you-mean ([`normalize_app_lenient`]), or errors where
//! asked for ([`normalize_app`]: `pmr start --strict`, `pmr config-check`).

mod normalize;

pub use normalize::{normalize_app, normalize_app_lenient, normalize_env};

use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// Which app an [`OptionError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRef {
    /// The app's `name`, when it had a usable one.
    Name(String),
    /// The app's position in the file's app list (set by the caller with [`OptionError::with_index`]).
    Index(usize),
    /// Neither known.
    Unknown,
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppRef::Name(n) => write!(f, "app {}", quote(n)),
            AppRef::Index(i) => write!(f, "app at index {i}"),
            AppRef::Unknown => f.write_str("app"),
        }
    }
}

/// A validation error for one app: which app, which key (as the user wrote it), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{app}: {message}")]
pub struct OptionError {
    pub app: AppRef,
    /// The key as written in the file (`"script"` for a missing script).
    pub key: String,
    /// The full message, which already names the key, e.g.
    /// `"kill_timeout" must be a non-negative number of milliseconds; got -5`.
    pub message: String,
}

impl OptionError {
    /// Identify the app by its index when it has no name (a name, when known, is kept).
    pub fn with_index(mut self, index: usize) -> Self {
        if !matches!(self.app, AppRef::Name(_)) {
            self.app = AppRef::Index(index);
        }
        self
    }
}

/// How a value is validated and converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Required non-empty string.
    Script,
    /// String; an empty string means "not set" (dropped), as PM2's truthiness checks do.
    Str,
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// `fork` / `cluster` (also `fork_mode` / `cluster_mode`) → `fork` / `cluster`.
    ExecMode,
    /// Array of strings; a string is shell-split; numbers and bools in the array are stringified.
    StrList,
    /// Bool; `"true"` / `"false"` accepted.
    Bool,
    /// Milliseconds ≥ 0 from a number, numeric string or `"500ms"`/`"5s"`/`"2m"`/`"1h"`.
    Duration,
    /// Like `Duration` but 0 means "disabled" and the key is dropped.
    DurationOrOff,
    /// Bytes > 0 from a number or `"512K"`/`"200M"`/`"1G"` (K = 1024).
    Bytes,
    /// Integer; `"max"` → 0; negative allowed.
    Instances,
    /// Integer ≥ 0 (fits in u32).
    Count,
    /// Integer 1..=65535.
    Port,
    /// Array of integers (a single integer → one-element array).
    ExitCodes,
    /// Object of variables: JSON scalars kept (the child gets strings), see `normalize_env`.
    Env,
    /// String path, or `true` (default path); `false` → dropped.
    LogFile,
    /// Bool or array of paths (a string → one-element array; `[]` → `true`).
    Watch,
    /// Bool or array of names (a string → one-element array).
    FilterEnv,
    /// User/group name (string) or numeric id (integer ≥ 0), kept as given.
    UidGid,
    /// Cron expression; `0` / `"0"` / `""` → dropped (disabled).
    Cron,
    /// Any JSON object, passed through.
    Object,
    /// pmr's log rotation block.
    LogRotate,
    /// Known to PM2, no effect in pmr: passed through unchanged, not validated.
    Passthrough,
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Script => "string (required)".into(),
            Kind::Str => "string".into(),
            Kind::OneOf(vals) => vals
                .iter()
                .map(|v| format!("`\"{v}\"`"))
                .collect::<Vec<_>>()
                .join(" or "),
            Kind::ExecMode => "`\"fork\"` or `\"cluster\"` (`_mode` suffix allowed)".into(),
            Kind::StrList => "array of strings, or a string (shell-split)".into(),
            Kind::Bool => "bool".into(),
            Kind::Duration => "ms: number, or `\"500ms\"`, `\"5s\"`, `\"2m\"`, `\"1h\"`".into(),
            Kind::DurationOrOff => {
                "ms: number, or `\"500ms\"`, `\"5s\"`, `\"2m\"`, `\"1h\"`; 0 = off".into()
            }
            Kind::Bytes => "bytes: number, or `\"512K\"`, `\"200M\"`, `\"1G\"`".into(),
            Kind::Instances => "integer, or `\"max\"` (= 0)".into(),
            Kind::Count => "integer ≥ 0".into(),
            Kind::Port => "integer 1–65535".into(),
            Kind::ExitCodes => "array of integers, or one integer".into(),
            Kind::Env => "object (JSON types kept in `jlist`; the process gets strings)".into(),
            Kind::LogFile => "string, or bool".into(),
            Kind::Watch => "bool, or array of paths, or one path".into(),
            Kind::FilterEnv => "bool, or array of names, or one name".into(),
            Kind::UidGid => "string (name) or integer (id)".into(),
            Kind::Cron => "string (cron expression); `0` = off".into(),
            Kind::Object => "object".into(),
            Kind::LogRotate => {
                "object: `max_size` (bytes/`\"10M\"`), `retain` (int), `compress` (bool), `interval`, `cron` (strings)".into()
            }
            Kind::Passthrough => "any".into(),
        }
    }
}

/// One row of the option table.
struct Opt {
    name: &'static str,
    /// Explicit aliases (camelCase forms of the name and of these are added automatically).
    aliases: &'static [&'static str],
    kind: Kind,
    default: &'static str,
    meaning: &'static str,
}

const fn opt(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    default: &'static str,
    meaning: &'static str,
) -> Opt {
    Opt {
        name,
        aliases,
        kind,
        default,
        meaning,
    }
}

#[rustfmt::skip]
static OPTIONS: &[Opt] = &[
    opt("script", &["exec", "cmd", "command"], Kind::Script, "required",
        "Script or program to run; a path is resolved against `cwd`, else looked up in `$PATH`."),
    opt("name", &[], Kind::Str, "script file name without its extension",
        "Name shown in the process list and used as a selector."),
    opt("namespace", &[], Kind::Str, "`default`", "Group of apps; every selector accepts a namespace."),
    opt("cwd", &[], Kind::Str, "the CLI's working directory",
        "Working directory of the app; relative script and log paths resolve against it."),
    opt("args", &[], Kind::StrList, "—", "Arguments passed to the script."),
    opt("interpreter", &["exec_interpreter"], Kind::Str, "by extension (`.js` → `node`, `.py` → `python`, …), else none",
        "Program that runs the script; `none` executes the script directly."),
    opt("interpreter_args", &["node_args"], Kind::StrList, "—",
        "Arguments placed between the interpreter and the script."),
    opt("instances", &[], Kind::Instances, "1",
        "Number of instances: 0 or `\"max\"` = one per CPU, -N = CPUs minus N."),
    opt("exec_mode", &[], Kind::ExecMode, "`fork` (`cluster` when `instances` is given for a Node app)",
        "`cluster` shares listening ports between instances."),
    opt("env", &[], Kind::Env, "{}", "Environment variables for the app (over the CLI's environment)."),
    opt("filter_env", &[], Kind::FilterEnv, "false",
        "Drop inherited CLI environment: `true` = all, names = every variable whose name contains one of them."),
    opt("append_env_to_name", &[], Kind::Bool, "false", "With `--env X`, the app is named `name-X`."),
    opt("watch", &[], Kind::Watch, "false", "Restart on file changes (cluster mode: graceful reload); `true` watches `cwd`, else the given paths (relative to `cwd`; each must exist). inotify, no CPU at rest; `stop` turns it off, `restart --watch` toggles it."),
    opt("ignore_watch", &[], Kind::StrList, "dotfiles and `node_modules`",
        "Globs (`*.log`, `dist/**`; one without `/` matches any name in the path) or `/regex/` not watched; replaces the dotfiles default, but `node_modules` and `.git` stay ignored. Ignored directories get no watch."),
    opt("watch_delay", &[], Kind::Duration, "—",
        "The restart comes this many ms after the first change, later changes folded into it (PM2's meaning). Without it: once the tree has been quiet for 300 ms, at most 2 s after the first change. Changes made during the restart do not restart again."),
    opt("watch_options", &[], Kind::Object, "—", "`usePolling` (poll instead of inotify), `interval` (polling period, ms, default 100), `followSymlinks` (default true); other chokidar options are ignored."),
    opt("max_memory_restart", &[], Kind::Bytes, "—", "Restart (graceful reload in cluster mode) when the memory of the app's whole process tree stays over this for the grace (`PMR_MEMORY_GRACE_MS`, default 1000); checked every 0.5 s (K = 1024). `0` removes it."),
    opt("autorestart", &[], Kind::Bool, "true", "Restart the app when it exits."),
    opt("autostart", &[], Kind::Bool, "true", "Start the app when it is added; false registers it as stopped."),
    opt("restart_delay", &[], Kind::Duration, "0", "Fixed delay before an automatic restart."),
    opt("exp_backoff_restart_delay", &[], Kind::DurationOrOff, "— (off)",
        "Base of the exponential restart backoff (×1.5 per crash, capped at 15 s)."),
    opt("max_restarts", &[], Kind::Count, "16",
        "Consecutive unstable restarts (runs shorter than `min_uptime`) before the app is `errored`."),
    opt("min_uptime", &[], Kind::Duration, "1000", "A run shorter than this counts as unstable."),
    opt("stop_exit_codes", &[], Kind::ExitCodes, "—", "Exit codes after which the app is not restarted."),
    opt("kill_timeout", &[], Kind::Duration, "1600", "Grace period after the stop signal before SIGKILL."),
    opt("kill_retry_time", &[], Kind::Duration, "100", "Poll interval while waiting for a stopped process to die."),
    opt("listen_timeout", &[], Kind::Duration, "3000",
        "Longest wait for the app to listen / send `ready` on start and reload."),
    opt("wait_ready", &[], Kind::Bool, "false", "The app is online only once it sends `ready`."),
    opt("shutdown_with_message", &[], Kind::Bool, "false", "Stop with a `shutdown` IPC message instead of a signal."),
    opt("treekill", &[], Kind::Bool, "true", "Signal the whole process tree, not only the main process."),
    opt("instance_balancing", &[], Kind::OneOf(&["round_robin", "kernel"]), "`round_robin` (`kernel` when the app's env has `NODE_CLUSTER_SCHED_POLICY=none`)", "pmr: how cluster workers share a TCP port. `round_robin`: the daemon accepts each new connection and hands it to the next worker, as Node's own primary does (even spread; the daemon is on the path of new connections only). `kernel`: every worker accepts on the shared socket (the most new connections per second; the kernel and libuv spread them unevenly)."),
    opt("drain_keepalive", &[], Kind::Bool, "true", "pmr: cluster workers get a small preload so that, when a reload retires them, kept-alive HTTP connections end after their next response (`Connection: close`) instead of breaking."),
    opt("catch_unhandled_rejections", &[], Kind::Bool, "true", "pmr: Node apps get a small preload that, as PM2 does, writes an unhandled promise rejection to the error log and keeps the app running; `false` leaves Node's default (the app exits)."),
    opt("listen", &[], Kind::StrList, "—", "pmr: addresses the daemon listens on for a non-Node app (`127.0.0.1:8000`, `[::]:80`, `/run/app.sock`), passed systemd-style (`LISTEN_FDS`, fds from 3), so `-i N`, reload and scale share them."),
    opt("cron_restart", &["cron"], Kind::Cron, "—", "Restart on this cron schedule: 5 fields, or 6 with seconds first (no year), in the daemon's local time (`TZ` honoured); a stopped or errored app is started, as PM2 does. `describe` shows the next run. An invalid pattern is an error; `0` removes it."),
    opt("merge_logs", &["combine_logs"], Kind::Bool, "true in fork mode without `instances`, else false",
        "One log file for all instances instead of one per instance (`-<id>` suffix)."),
    opt("out_file", &["out", "output", "out_log"], Kind::Str, "`<home>/logs/<name>-out.log`",
        "File for the app's stdout; `/dev/null` disables."),
    opt("error_file", &["error", "err", "err_file", "err_log"], Kind::Str, "`<home>/logs/<name>-error.log`",
        "File for the app's stderr; `/dev/null` disables."),
    opt("log_file", &["log"], Kind::LogFile, "— (off)",
        "Combined stdout+stderr file; `true` = `<home>/logs/<name>.log`."),
    opt("disable_logs", &[], Kind::Bool, "false", "Write no log files."),
    opt("log_type", &[], Kind::OneOf(&["json", "raw"]), "`raw`", "`json` writes each chunk as a JSON line."),
    opt("log_date_format", &[], Kind::Str, "—", "Prefix each log line with the date in this (day.js) format."),
    opt("time", &[], Kind::Bool, "false", "Shortcut for `log_date_format: \"YYYY-MM-DDTHH:mm:ss\"`."),
    opt("pid_file", &["pid"], Kind::Str, "`<home>/pids/<name>-<id>.pid`", "Where the app's pid is written."),
    opt("instance_var", &[], Kind::Str, "`NODE_APP_INSTANCE`", "Name of the env variable holding the instance index."),
    opt("increment_var", &[], Kind::Str, "—",
        "Env variable incremented per instance, starting from its value in `env` (e.g. `PORT`)."),
    opt("port", &[], Kind::Port, "—", "Shortcut for `env.PORT`."),
    opt("uid", &["user"], Kind::UidGid, "the CLI's user", "Run the app as this user (needs root)."),
    opt("gid", &[], Kind::UidGid, "the user's group", "Run the app with this group (needs root)."),
    opt("log_rotate", &[], Kind::LogRotate, "—", "pmr's built-in log rotation settings for this app."),
    opt("vizion", &[], Kind::Bool, "true", "PM2: collect git metadata; accepted, no effect."),
    opt("pmx", &[], Kind::Bool, "true", "PM2: inject the monitoring agent; accepted, no effect."),
    opt("automation", &[], Kind::Bool, "true", "PM2: inject the monitoring agent; accepted, no effect."),
    opt("force", &[], Kind::Bool, "false", "Start the script even if it is already running."),
    opt("windowsHide", &[], Kind::Bool, "true", "PM2: hide console windows on Windows; accepted, no effect."),
    opt("source_map_support", &[], Kind::Bool, "true", "Enable source-map support in Node apps."),
    opt("disable_source_map_support", &[], Kind::Bool, "false", "Disable source-map support in Node apps."),
    opt("execute_command", &[], Kind::Bool, "false", "Force fork mode."),
    opt("trace", &[], Kind::Bool, "false", "PM2: APM transaction tracing; accepted, no effect."),
    opt("disable_trace", &[], Kind::Bool, "false", "PM2: APM transaction tracing; accepted, no effect."),
    opt("v8", &[], Kind::Passthrough, "—", "PM2 APM option; accepted, no effect."),
    opt("event_loop_inspector", &[], Kind::Passthrough, "—", "PM2 APM option; accepted, no effect."),
    opt("deep_monitoring", &[], Kind::Passthrough, "—", "PM2 APM option; accepted, no effect."),
    opt("io", &[], Kind::Passthrough, "—", "PM2 APM (`@pm2/io`) configuration; accepted, no effect."),
    opt("post_update", &[], Kind::Passthrough, "—", "PM2 Plus: commands after a pull; accepted, no effect."),
    opt("install_url", &[], Kind::Passthrough, "—", "PM2 internal; accepted, no effect."),
    opt("username", &[], Kind::Passthrough, "—", "PM2 internal (filled with the OS user); accepted, no effect."),
    opt("write", &[], Kind::Passthrough, "—", "PM2 CLI `--write`; accepted, no effect."),
    opt("name_prefix", &[], Kind::Passthrough, "—", "PM2 CLI option; accepted, no effect."),
    opt("static", &[], Kind::Passthrough, "—", "PM2 static file server; accepted, no effect."),
];

/// PM2's automatic camelCase alias of a snake_case key (`Config.js`): segments after the first
/// get an upper-case first letter, except one-letter segments.
fn camel(key: &str) -> String {
    key.split('_')
        .enumerate()
        .map(|(i, seg)| {
            if i != 0 && seg.len() > 1 {
                let mut c = seg.chars();
                let first = c.next().unwrap().to_ascii_uppercase();
                std::iter::once(first).chain(c).collect()
            } else {
                seg.to_string()
            }
        })
        .collect()
}

/// Every accepted spelling → index in `OPTIONS`, and the spellings in table order (for
/// suggestions: canonical names first).
struct Lookup {
    by_key: HashMap<String, usize>,
    spellings: Vec<String>,
}

fn lookup() -> &'static Lookup {
    static LOOKUP: OnceLock<Lookup> = OnceLock::new();
    LOOKUP.get_or_init(|| {
        let mut by_key = HashMap::new();
        let mut spellings = Vec::new();
        let mut add = |k: String, i: usize| {
            if let Some(prev) = by_key.insert(k.clone(), i) {
                assert_eq!(prev, i, "option spelling {k:?} is ambiguous");
            } else {
                spellings.push(k);
            }
        };
        for (i, o) in OPTIONS.iter().enumerate() {
            add(o.name.to_string(), i);
        }
        for (i, o) in OPTIONS.iter().enumerate() {
            for a in o.aliases {
                add(a.to_string(), i);
            }
            add(camel(o.name), i);
            for a in o.aliases {
                add(camel(a), i);
            }
        }
        Lookup { by_key, spellings }
    })
}

/// Canonical option names, in table order (for docs). `env_<name>` blocks are not listed.
pub fn option_names() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|o| o.name)
}

/// The canonical name of an option from any accepted spelling (`killTimeout`, `node_args`, ...).
pub fn canonical(spelling: &str) -> Option<&'static str> {
    row(spelling).map(|o| o.name)
}

/// What an option does (its row's meaning, markdown), by any accepted spelling.
pub fn describe(spelling: &str) -> Option<&'static str> {
    row(spelling).map(|o| o.meaning)
}

/// An option's default as the table words it (markdown; `—` when there is none).
pub fn default_of(spelling: &str) -> Option<&'static str> {
    row(spelling).map(|o| o.default)
}

fn row(spelling: &str) -> Option<&'static Opt> {
    lookup().by_key.get(spelling).map(|&i| &OPTIONS[i])
}

/// A value of the option's kind in one of PM2's loose forms, for tests that go over the table.
#[cfg(test)]
pub(crate) fn loose_sample(name: &str) -> Option<Value> {
    use serde_json::json;
    Some(match row(name)?.kind {
        Kind::Script => json!("app.js"),
        Kind::Str => json!("x"),
        Kind::OneOf(vals) => json!(vals[0]),
        Kind::ExecMode => json!("cluster_mode"),
        Kind::StrList => json!("a 'b c'"),
        Kind::Bool => json!("false"),
        Kind::Duration => json!("2s"),
        Kind::DurationOrOff => json!("1m"),
        Kind::Bytes => json!("100M"),
        Kind::Instances => json!("max"),
        Kind::Count => json!("3"),
        Kind::Port => json!("8080"),
        Kind::ExitCodes => json!(3),
        Kind::Env => json!({"A": 1}),
        Kind::LogFile => json!("true"),
        Kind::Watch | Kind::FilterEnv => json!("src"),
        Kind::UidGid => json!("nobody"),
        Kind::Cron => json!("0 3 * * *"),
        Kind::Object => json!({"usePolling": true}),
        Kind::LogRotate => json!({"maxSize": "10M", "retain": "3"}),
        Kind::Passthrough => json!({"any": [1]}),
    })
}

/// The option table as markdown: option | aliases | type | default | meaning.
pub fn option_table_markdown() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out =
        String::from("| option | aliases | type | default | meaning |\n|---|---|---|---|---|\n");
    for o in OPTIONS {
        let mut aliases: Vec<String> = o.aliases.iter().map(|a| format!("`{a}`")).collect();
        let c = camel(o.name);
        if c != o.name {
            aliases.push(format!("`{c}`"));
        }
        let aliases = if aliases.is_empty() {
            "—".to_string()
        } else {
            aliases.join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            o.name,
            cell(&aliases),
            cell(&o.kind.label()),
            cell(o.default),
            cell(o.meaning)
        ));
        if o.name == "env" {
            out.push_str(
                "| `env_<name>` | — | object (JSON types kept in `jlist`; the process gets strings) | — | Selected with `--env <name>`; merged over `env` and `deploy.<name>.env`. |\n",
            );
        }
    }
    out
}

/// `"text"` with JSON escaping.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
