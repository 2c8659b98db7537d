//! The app option table and its validation.
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

use serde_json::{Map, Value};
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

/// Normalize one raw app object: canonical keys, canonical types, units converted. An unknown
/// key is an error (`pmr start --strict`, `pmr config-check`, and the CLI's own flags).
///
/// `null` values are treated as absent (as PM2 does). The output keeps the order in which keys
/// first appeared. Defaults are not filled in.
pub fn normalize_app(raw: &Map<String, Value>) -> Result<Map<String, Value>, OptionError> {
    normalize(raw, None)
}

/// [`normalize_app`], except that unknown keys (of the app, and of its `log_rotate` block) are
/// left out and returned, one [`OptionError`] each with its did-you-mean, for the caller to
/// print as warnings: PM2 ignores them, and real config files carry such junk.
pub fn normalize_app_lenient(
    raw: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<OptionError>), OptionError> {
    let mut unknown = Vec::new();
    let out = normalize(raw, Some(&mut unknown))?;
    Ok((out, unknown))
}

/// `unknown`: where unknown keys go; `None` makes the first one the error.
fn normalize(
    raw: &Map<String, Value>,
    mut unknown: Option<&mut Vec<OptionError>>,
) -> Result<Map<String, Value>, OptionError> {
    let app = match raw.get("name") {
        Some(Value::String(s)) if !s.is_empty() => AppRef::Name(s.clone()),
        _ => AppRef::Unknown,
    };
    let err = |key: &str, message: String| OptionError {
        app: app.clone(),
        key: key.to_string(),
        message,
    };

    let lk = lookup();
    let mut out = Map::new();
    // canonical name → (key as written, raw value, normalized value)
    let mut seen: HashMap<&'static str, (&str, &Value, Option<Value>)> = HashMap::new();

    for (key, value) in raw {
        if let Some(&i) = lk.by_key.get(key.as_str()) {
            let o = &OPTIONS[i];
            if value.is_null() {
                continue;
            }
            let mut unknown_sub = Vec::new();
            let norm =
                normalize_value(o.kind, key, value, &mut unknown_sub).map_err(|m| err(key, m))?;
            for m in unknown_sub {
                match unknown.as_deref_mut() {
                    Some(u) => u.push(err(key, m)),
                    None => return Err(err(key, m)),
                }
            }
            if let Some((prev_key, prev_raw, prev_norm)) = seen.get(o.name) {
                if *prev_norm != norm {
                    return Err(err(
                        key,
                        format!(
                            "{} and {} both set {} but differ: {} vs {}",
                            quote(prev_key),
                            quote(key),
                            quote(o.name),
                            show(prev_raw),
                            show(value)
                        ),
                    ));
                }
                continue;
            }
            seen.insert(o.name, (key.as_str(), value, norm.clone()));
            if let Some(v) = norm {
                out.insert(o.name.to_string(), v);
            }
        } else if is_env_block(key) {
            if value.is_null() {
                continue;
            }
            let env = normalize_env(key, value).map_err(|m| err(key, m))?;
            out.insert(key.clone(), env);
        } else {
            let mut message = format!("unknown option {}", quote(key));
            if let Some(s) = suggest(key, lk.spellings.iter().map(String::as_str)) {
                message.push_str(&format!(" (did you mean {}?)", quote(s)));
            }
            match unknown.as_deref_mut() {
                Some(u) => u.push(err(key, message)),
                None => return Err(err(key, message)),
            }
        }
    }

    if !seen.contains_key("script") {
        return Err(err("script", "missing \"script\"".to_string()));
    }
    Ok(out)
}

/// `env_<name>`: PM2's `^env_\S*$`, with a non-empty name.
fn is_env_block(key: &str) -> bool {
    key.strip_prefix("env_")
        .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
}

/// The closest known spelling, if it is close enough to be a likely typo.
fn suggest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let t = norm(typed);
    let limit = (t.chars().count() / 4).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = strsim::osa_distance(&t, &norm(c));
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `"text"` with JSON escaping.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A value as compact JSON, truncated for error messages.
fn show(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

type Norm = Result<Option<Value>, String>;

/// `unknown`: messages for unknown keys inside the value (`log_rotate`'s), which the caller
/// makes errors or warnings.
fn normalize_value(kind: Kind, key: &str, v: &Value, unknown: &mut Vec<String>) -> Norm {
    let k = quote(key);
    let bad = |expected: &str| Err(format!("{k} must be {expected}; got {}", show(v)));
    match kind {
        Kind::Script => match v {
            Value::String(s) if !s.trim().is_empty() => Ok(Some(v.clone())),
            _ => bad("a non-empty string"),
        },
        Kind::Str => match v {
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(_) => Ok(Some(v.clone())),
            _ => bad("a string"),
        },
        Kind::OneOf(vals) => match v {
            Value::String(s) if vals.contains(&s.as_str()) => Ok(Some(v.clone())),
            _ => bad(&vals.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" or ")),
        },
        Kind::ExecMode => match v.as_str() {
            Some("fork" | "fork_mode") => Ok(Some("fork".into())),
            Some("cluster" | "cluster_mode") => Ok(Some("cluster".into())),
            _ => bad("\"fork\" or \"cluster\""),
        },
        Kind::StrList => str_list(&k, v).map(|l| Some(l.into())),
        Kind::Bool => match as_bool(v) {
            Some(b) => Ok(Some(b.into())),
            None => bad("true or false"),
        },
        Kind::Duration | Kind::DurationOrOff => match duration_ms(v) {
            Some(0) if kind == Kind::DurationOrOff => Ok(None),
            Some(ms) => Ok(Some(ms.into())),
            None if v.is_string() => bad(
                "a non-negative number of milliseconds or a duration like \"500ms\", \"5s\", \"2m\", \"1h\"",
            ),
            None => bad("a non-negative number of milliseconds"),
        },
        Kind::Bytes => match bytes(v) {
            Some(b) if b > 0 => Ok(Some(b.into())),
            _ => bad("a positive number of bytes or a size like \"512K\", \"200M\", \"1G\""),
        },
        Kind::Instances => {
            if v.as_str().map(str::trim) == Some("max") {
                return Ok(Some(0.into()));
            }
            let max = pmr_core::protocol::max_instances();
            match integer(v) {
                Some(n) if n > i64::from(max) => bad(&format!(
                    "at most {max}, the maximum per app (set PMR_MAX_INSTANCES to change it)"
                )),
                Some(n) => Ok(Some(n.into())),
                None => bad("a whole number (0 or \"max\" = one per CPU, -N = CPUs minus N)"),
            }
        }
        Kind::Count => match integer(v) {
            Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n.into())),
            _ => bad("a non-negative integer"),
        },
        Kind::Port => match integer(v) {
            Some(n) if (1..=65535).contains(&n) => Ok(Some(n.into())),
            _ => bad("an integer from 1 to 65535"),
        },
        Kind::ExitCodes => {
            let expected = "an integer or an array of integers";
            let code = |x: &Value| integer(x).filter(|n| i32::try_from(*n).is_ok());
            match v {
                Value::Array(items) => {
                    let mut codes = Vec::with_capacity(items.len());
                    for x in items {
                        match code(x) {
                            Some(n) => codes.push(Value::from(n)),
                            None => return bad(expected),
                        }
                    }
                    Ok(Some(codes.into()))
                }
                _ => match code(v) {
                    Some(n) => Ok(Some(vec![Value::from(n)].into())),
                    None => bad(expected),
                },
            }
        }
        Kind::Env => normalize_env(key, v).map(Some),
        Kind::LogFile => match v {
            Value::Bool(true) => Ok(Some(true.into())),
            Value::Bool(false) => Ok(None),
            Value::String(s) => match s.as_str() {
                "" | "false" => Ok(None),
                "true" => Ok(Some(true.into())),
                _ => Ok(Some(v.clone())),
            },
            _ => bad("a file path or true/false"),
        },
        Kind::Watch | Kind::FilterEnv => {
            let expected = if kind == Kind::Watch {
                "true/false, a path or an array of paths"
            } else {
                "true/false, a variable name or an array of names"
            };
            if let Some(b) = as_bool(v) {
                return Ok(Some(b.into()));
            }
            match v {
                // Falsy in PM2: not set.
                Value::String(s) if s.is_empty() => Ok(None),
                Value::String(_) => Ok(Some(vec![v.clone()].into())),
                Value::Array(items) if items.iter().all(|x| matches!(x, Value::String(s) if !s.is_empty())) => {
                    if items.is_empty() && kind == Kind::Watch {
                        // PM2 watches cwd for an empty list, exactly as for `true`.
                        Ok(Some(true.into()))
                    } else {
                        Ok(Some(v.clone()))
                    }
                }
                _ => bad(expected),
            }
        }
        Kind::UidGid => match v {
            Value::String(s) if !s.trim().is_empty() => Ok(Some(v.clone())),
            Value::Number(n) if n.as_u64().is_some() => Ok(Some(v.clone())),
            _ if key.starts_with('g') => bad("a group name or a numeric group id"),
            _ => bad("a user name or a numeric user id"),
        },
        Kind::Cron => match v {
            Value::String(s) if s.trim().is_empty() || s.trim() == "0" => Ok(None),
            Value::String(s) => match pmr_core::cron::parse(s) {
                Ok(_) => Ok(Some(v.clone())),
                Err(e) => Err(format!("{k} is not a valid cron expression; got {}: {e}", show(v))),
            },
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(None),
            _ => bad("a cron expression string (0 disables)"),
        },
        Kind::Object => match v {
            Value::Object(_) => Ok(Some(v.clone())),
            _ => bad("an object"),
        },
        Kind::LogRotate => log_rotate(key, v, unknown).map(Some),
        Kind::Passthrough => Ok(Some(v.clone())),
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A finite number from a JSON number or a numeric string (as PM2's `parseFloat` auto-parse).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A whole number from a JSON number or a numeric string (`4`, `4.0`, `"4"`).
fn integer(v: &Value) -> Option<i64> {
    if let Value::Number(n) = v {
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
    }
    if let Value::String(s) = v {
        if let Ok(i) = s.trim().parse::<i64>() {
            return Some(i);
        }
    }
    let f = number(v)?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Split `"12.5ms"` into (12.5, "ms"); the unit is lower-cased and trimmed.
fn split_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    Some((num.parse().ok()?, unit.trim().to_ascii_lowercase()))
}

/// Milliseconds from a number (ms), a numeric string, or `"500ms"`, `"5s"`, `"2m"`, `"1h"`.
fn duration_ms(v: &Value) -> Option<u64> {
    let ms = match v {
        Value::Number(_) => number(v)?,
        Value::String(s) => {
            let (n, unit) = split_unit(s)?;
            let mult = match unit.as_str() {
                "" | "ms" => 1.0,
                "s" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return None,
            };
            n * mult
        }
        _ => return None,
    };
    (0.0..9.0e15).contains(&ms).then(|| ms.round() as u64)
}

/// Bytes from a number or `"512K"`, `"200M"`, `"1G"` (K = 1024; case-insensitive; a trailing
/// `B` allowed: `"200MB"`).
fn bytes(v: &Value) -> Option<u64> {
    let b = match v {
        Value::Number(_) => number(v)?,
        Value::String(s) => {
            let (n, unit) = split_unit(s)?;
            let mult = match unit.strip_suffix('b').unwrap_or(&unit) {
                "" => 1.0,
                "k" => 1024.0,
                "m" => 1024.0 * 1024.0,
                "g" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            n * mult
        }
        _ => return None,
    };
    (0.0..9.0e15).contains(&b).then(|| b.floor() as u64)
}

/// An array of strings; a string is shell-split (quotes respected); numbers and bools in an
/// array are turned into their string form.
fn str_list(k: &str, v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::String(s) => shell_words::split(s)
            .map(|w| w.into_iter().map(Value::String).collect())
            .map_err(|_| format!("{k} has an unterminated quote; got {}", show(v))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(_) => Ok(x.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(Value::String(scalar_string(x))),
                _ => Err(format!("{k}[{i}] must be a string; got {}", show(x))),
            })
            .collect(),
        _ => Err(format!(
            "{k} must be a string or an array of strings; got {}",
            show(v)
        )),
    }
}

/// The string a scalar becomes in a child's environment, as JavaScript would print it.
fn scalar_string(v: &Value) -> String {
    pmr_core::spec::env_string(v).unwrap_or_else(|| v.to_string())
}

/// `env` / `env_<name>` / `deploy.<name>.env`: an object of variables. Values keep their JSON
/// type (jlist shows `PORT: 3000` as PM2 does; the child gets strings, see
/// [`pmr_core::spec::env_string`]), except that `env`'s objects, arrays and `null` become JSON
/// strings, as PM2's `mergeEnvironmentVariables` does to `env` only.
pub fn normalize_env(key: &str, v: &Value) -> Result<Value, String> {
    let k = quote(key);
    let Value::Object(map) = v else {
        return Err(format!(
            "{k} must be an object of environment variables ({{\"NAME\": \"value\"}}); got {}",
            show(v)
        ));
    };
    let mut out = Map::new();
    for (name, val) in map {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!(
                "{k} has an invalid variable name {} (it must be non-empty, without \"=\" or NUL)",
                quote(name)
            ));
        }
        let val = match val {
            Value::Object(_) | Value::Array(_) | Value::Null if key == "env" => {
                Value::String(val.to_string())
            }
            // `1e3` is the number 1000 in JavaScript, shown as such.
            Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    Value::from(f as i64)
                }
                _ => val.clone(),
            },
            _ => val.clone(),
        };
        if pmr_core::spec::env_string(&val).is_some_and(|s| s.contains('\0')) {
            return Err(format!(
                "{k}: the value of {} contains a NUL character",
                quote(name)
            ));
        }
        out.insert(name.clone(), val);
    }
    Ok(Value::Object(out))
}

const LOG_ROTATE_KEYS: &[&str] = &["max_size", "retain", "compress", "interval", "cron"];

/// `log_rotate`: validate the known keys (camelCase accepted), convert `max_size` to bytes.
/// Unknown keys are left out and named in `unknown`.
fn log_rotate(key: &str, v: &Value, unknown: &mut Vec<String>) -> Result<Value, String> {
    let k = quote(key);
    let Value::Object(map) = v else {
        return Err(format!("{k} must be an object; got {}", show(v)));
    };
    let mut out = Map::new();
    for (sub, val) in map {
        let canon = LOG_ROTATE_KEYS
            .iter()
            .find(|c| **c == sub || camel(c) == *sub)
            .copied();
        let Some(canon) = canon else {
            let mut m = format!("{k} has an unknown key {}", quote(sub));
            if let Some(s) = suggest(sub, LOG_ROTATE_KEYS.iter().copied()) {
                m.push_str(&format!(" (did you mean {}?)", quote(s)));
            }
            unknown.push(m);
            continue;
        };
        if val.is_null() {
            continue;
        }
        let field = quote(&format!("{key}.{sub}"));
        let bad = |expected: &str| Err(format!("{field} must be {expected}; got {}", show(val)));
        let norm = match canon {
            "max_size" => match bytes(val) {
                Some(b) if b > 0 => Value::from(b),
                _ => return bad("a positive number of bytes or a size like \"10M\""),
            },
            "retain" => match integer(val) {
                Some(n) if (0..=u32::MAX as i64).contains(&n) => Value::from(n),
                _ => return bad("a non-negative integer"),
            },
            "compress" => match as_bool(val) {
                Some(b) => Value::from(b),
                None => return bad("true or false"),
            },
            // Checked with the parsers the daemon applies, so a bad value is an error here
            // rather than a warning in the daemon log.
            _ => match val {
                Value::String(s) if !s.trim().is_empty() => {
                    let mut probe = pmr_core::conf::RotateConf::default();
                    if let Err(e) = probe.set(canon, val) {
                        return Err(format!("{field}: {e}"));
                    }
                    val.clone()
                }
                _ => return bad("a non-empty string"),
            },
        };
        if out.insert(canon.to_string(), norm).is_some() {
            return Err(format!("{k} sets {} twice", quote(canon)));
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
