//! PM2's environment knobs (`constants.js`, `paths.js`) and their `PMR_` twins: the one place
//! they are read. Each knob `X` is read as `PMR_X` and `PM2_X`; the personality's prefix wins
//! (`pmr`: `PMR_X`, `pm2`: `PM2_X`), an empty value counts as unset (as in PM2). The homes are
//! the exception: `PMR_HOME` for pmr, `PM2_HOME` for pm2, never the other (see
//! [`Personality::home_var`]).
//!
//! The daemon takes them from the environment of the CLI that starts it, at start-up, as PM2's
//! daemon does; the CLI checks them before it starts a daemon, so a bad value is one clear error
//! naming the variable and nothing starts. Where PM2 silently misbehaves (`parseInt` garbage
//! falling back to the default, `PM2_KILL_USE_MESSAGE=false` meaning true, an unknown signal
//! that turns every stop into a SIGKILL after the timeout), pmr refuses the value.

use crate::personality::{self, Personality};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An app's `kill_timeout` / `listen_timeout` when the app does not set one: the knobs
/// `KILL_TIMEOUT` / `GRACEFUL_LISTEN_TIMEOUT` replace these (PM2: `pm2_env.x || cst.X`).
pub const DEFAULT_KILL_TIMEOUT: u64 = 1600;
pub const DEFAULT_LISTEN_TIMEOUT: u64 = 3000;
/// How long the metrics sampler trusts a process-tree scan unless `WORKER_INTERVAL` says.
pub const DEFAULT_WORKER_INTERVAL_MS: u64 = 2000;
/// Reload's batch size unless `--parallel` or `CONCURRENT_ACTIONS` says (PM2: 2).
pub const DEFAULT_CONCURRENT_ACTIONS: u32 = 1;
/// Node's longest timer (2^31-1 ms): PM2 fires a longer one at once; pmr refuses it.
const MAX_MS: u64 = 2_147_483_647;

/// The behaviour knobs the daemon acts on. `None`: not set, pmr's default applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knobs {
    /// `KILL_SIGNAL`: the stop signal (default SIGINT).
    pub kill_signal: Option<Signal>,
    /// `KILL_USE_MESSAGE`: stop every app with the `'shutdown'` IPC message when it has a
    /// channel, as if each had `shutdown_with_message`.
    pub kill_use_message: bool,
    /// `KILL_TIMEOUT` (ms): `kill_timeout` of apps that do not set theirs.
    pub kill_timeout: Option<u64>,
    /// `GRACEFUL_LISTEN_TIMEOUT` (ms): `listen_timeout` of apps that do not set theirs.
    pub graceful_listen_timeout: Option<u64>,
    /// `GRACEFUL_TIMEOUT` (ms): how long a worker retired by a reload may drain its connections
    /// before the stop sequence (default: its `kill_timeout`).
    pub graceful_timeout: Option<u64>,
    /// `WORKER_INTERVAL` (ms): how long a scan of the app process trees is trusted by the
    /// metrics sampler (pmr samples on demand; PM2's worker runs every 30 s).
    pub worker_interval: Option<u64>,
    /// `CONCURRENT_ACTIONS`: how many instances `reload` replaces at once without `--parallel`.
    pub concurrent_actions: Option<u32>,
    /// `MEMORY_GRACE_MS` (pmr's own, `PMR_MEMORY_GRACE_MS`): how long an app must stay over
    /// `max_memory_restart` before it is restarted (`daemon/memory_guard.rs`).
    pub memory_grace: Option<u64>,
}

/// One knob's source: the variable that gave the value, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub var: String,
    pub value: String,
}

/// `PMR_<suffix>` / `PM2_<suffix>`, the personality's prefix first; empty values are unset.
fn pick(get: &dyn Fn(&str) -> Option<String>, p: Personality, suffix: &str) -> Option<Raw> {
    [p.prefix(), p.other_prefix()].iter().find_map(|pre| {
        let var = format!("{pre}{suffix}");
        get(&var)
            .filter(|v| !v.is_empty())
            .map(|value| Raw { var, value })
    })
}

fn env_get(var: &str) -> Option<String> {
    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
}

fn parse_ms(r: &Raw) -> Result<u64, String> {
    match r.value.trim().parse::<u64>() {
        Ok(n) if n <= MAX_MS => Ok(n),
        Ok(_) => Err(format!(
            "{}={:?}: at most {MAX_MS} milliseconds (Node's longest timer)",
            r.var, r.value
        )),
        Err(_) => Err(format!(
            "{}={:?}: expected a whole number of milliseconds, like 3000",
            r.var, r.value
        )),
    }
}

fn parse_bool(r: &Raw) -> Result<bool, String> {
    match r.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{}={:?}: expected true or false", r.var, r.value)),
    }
}

/// `SIGTERM`, `TERM`, `sigterm` or `15`; signal 0 and unknown names are refused.
pub fn parse_signal(text: &str) -> Option<Signal> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().ok()
}

impl Knobs {
    /// Read and check every behaviour knob; the error names the variable.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        p: Personality,
    ) -> Result<Knobs, String> {
        let ms = |suffix: &str| pick(get, p, suffix).map(|r| parse_ms(&r)).transpose();
        let kill_signal = match pick(get, p, "KILL_SIGNAL") {
            None => None,
            Some(r) => Some(parse_signal(&r.value).ok_or_else(|| {
                format!(
                    "{}={:?}: unknown signal (use a name like SIGTERM, or a number)",
                    r.var, r.value
                )
            })?),
        };
        let concurrent_actions = match pick(get, p, "CONCURRENT_ACTIONS") {
            None => None,
            Some(r) => Some(
                r.value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        format!("{}={:?}: expected a positive whole number", r.var, r.value)
                    })?,
            ),
        };
        Ok(Knobs {
            kill_signal,
            kill_use_message: pick(get, p, "KILL_USE_MESSAGE")
                .map(|r| parse_bool(&r))
                .transpose()?
                .unwrap_or(false),
            kill_timeout: ms("KILL_TIMEOUT")?,
            graceful_listen_timeout: ms("GRACEFUL_LISTEN_TIMEOUT")?,
            graceful_timeout: ms("GRACEFUL_TIMEOUT")?,
            worker_interval: ms("WORKER_INTERVAL")?,
            concurrent_actions,
            memory_grace: ms("MEMORY_GRACE_MS")?,
        })
    }

    pub fn from_env() -> Result<Knobs, String> {
        Knobs::from_lookup(&env_get, personality::current())
    }

    pub fn stop_signal(&self) -> Signal {
        self.kill_signal.unwrap_or(Signal::SIGINT)
    }

    /// The app's `kill_timeout`, or the knob's when the app has the default.
    pub fn kill_timeout(&self, app: u64) -> u64 {
        match self.kill_timeout {
            Some(k) if app == DEFAULT_KILL_TIMEOUT => k,
            _ => app,
        }
    }

    /// The app's `listen_timeout`, or the knob's when the app has the default.
    pub fn listen_timeout(&self, app: u64) -> u64 {
        match self.graceful_listen_timeout {
            Some(k) if app == DEFAULT_LISTEN_TIMEOUT => k,
            _ => app,
        }
    }

    /// How long a retired worker may drain, given its effective `kill_timeout`.
    pub fn drain_timeout(&self, kill_timeout: u64) -> u64 {
        self.graceful_timeout.unwrap_or(kill_timeout)
    }

    pub fn rescan(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.worker_interval.unwrap_or(DEFAULT_WORKER_INTERVAL_MS))
    }

    pub fn reload_parallel(&self, given: Option<u32>) -> u32 {
        given
            .or(self.concurrent_actions)
            .unwrap_or(DEFAULT_CONCURRENT_ACTIONS)
            .max(1)
    }

    /// The knobs that are set, for the daemon's start-up line in its log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.kill_signal {
            parts.push(format!("kill signal {s}"));
        }
        if self.kill_use_message {
            parts.push("kill by 'shutdown' message".into());
        }
        for (name, v) in [
            ("kill timeout", self.kill_timeout),
            ("listen timeout", self.graceful_listen_timeout),
            ("graceful timeout", self.graceful_timeout),
            ("worker interval", self.worker_interval),
            ("memory grace", self.memory_grace),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name} {v} ms"));
            }
        }
        if let Some(n) = self.concurrent_actions {
            parts.push(format!("concurrent actions {n}"));
        }
        if parts.is_empty() {
            "defaults".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `RUNTIME_DEBUG`: `pmr-runtime` hands its apps to the home's background daemon and exits
/// (PM2's switch in `Runtime4Docker.js`). The variable that turned it on, or `None`. PM2 takes
/// any non-empty value as on, `false` included; here `false`/`0`/`no` mean off, as for the other
/// switches, and anything but those and `true`/`1`/`yes` is refused rather than guessed at.
pub fn runtime_debug_from(
    get: &dyn Fn(&str) -> Option<String>,
    p: Personality,
) -> Result<Option<String>, String> {
    match pick(get, p, "RUNTIME_DEBUG") {
        None => Ok(None),
        Some(r) => Ok(parse_bool(&r)?.then_some(r.var)),
    }
}

pub fn runtime_debug() -> Result<Option<String>, String> {
    runtime_debug_from(&env_get, personality::current())
}

static DAEMON: OnceLock<Knobs> = OnceLock::new();

/// Fix the daemon's knobs at start-up (the first call wins).
pub fn init(k: Knobs) {
    let _ = DAEMON.set(k);
}

/// The daemon's knobs; pmr's defaults before [`init`] (unit tests).
pub fn get() -> &'static Knobs {
    DAEMON.get_or_init(Knobs::default)
}

/// The path overrides of PM2's `paths.js` that pmr has a file for. Each is `PM2_<suffix>` /
/// `PMR_<suffix>`; a relative path is taken from the CLI's working directory.
pub const PATH_KNOBS: &[&str] = &[
    "PID_FILE_PATH",
    "LOG_FILE_PATH",
    "DEFAULT_LOG_PATH",
    "DEFAULT_PID_PATH",
    "DUMP_FILE_PATH",
    "DAEMON_RPC_PORT",
    "DAEMON_PUB_PORT",
];

/// The file overrides that are set, resolved to absolute paths: `(suffix, path)`.
pub fn path_overrides_from(
    get: &dyn Fn(&str) -> Option<String>,
    p: Personality,
    cwd: &Path,
) -> Vec<(&'static str, PathBuf)> {
    PATH_KNOBS
        .iter()
        .filter_map(|&suffix| {
            pick(get, p, suffix).map(|r| {
                let path = PathBuf::from(&r.value);
                (
                    suffix,
                    if path.is_absolute() {
                        path
                    } else {
                        cwd.join(path)
                    },
                )
            })
        })
        .collect()
}

/// Values a path knob cannot take: PM2's `DAEMON_RPC_PORT` may be a TCP port, pmr's socket is a
/// unix socket path only.
pub fn check_paths(get: &dyn Fn(&str) -> Option<String>, p: Personality) -> Result<(), String> {
    for knob in ["DAEMON_RPC_PORT", "DAEMON_PUB_PORT"] {
        if let Some(r) = pick(get, p, knob) {
            if r.value.trim().parse::<u32>().is_ok() {
                return Err(format!(
                    "{}={:?}: pmr's daemon listens on a unix socket only; give a file path",
                    r.var, r.value
                ));
            }
        }
    }
    Ok(())
}

/// Every knob checked, for the CLI before it starts a daemon, and the daemon at start-up.
pub fn check_env() -> Result<Knobs, String> {
    check_paths(&env_get, personality::current())?;
    Knobs::from_env()
}

/// The home: `$PMR_HOME` or `~/.pmr` (pm2: `$PM2_HOME` or `~/.pm2`), made absolute.
pub fn home_root_from(get: &dyn Fn(&str) -> Option<String>, p: Personality, cwd: &Path) -> PathBuf {
    let root = match get(p.home_var()) {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc"))
            .join(p.home_dir_name()),
    };
    if root.is_absolute() {
        root
    } else {
        cwd.join(root)
    }
}

/// The environment a daemon started by this CLI gets: the home (`home_root`, `paths::Home`'s
/// root) and every set path knob, as absolute paths under the winning name (the daemon runs in
/// `/`), the losing names removed.
pub fn daemon_env(home_root: &Path) -> (Vec<String>, Vec<(String, PathBuf)>) {
    let p = personality::current();
    let mut remove = Vec::new();
    let mut set = vec![(p.home_var().to_string(), home_root.to_path_buf())];
    let cwd = std::env::current_dir().unwrap_or_default();
    let given = path_overrides_from(&env_get, p, &cwd);
    for suffix in PATH_KNOBS {
        remove.push(format!("{}{suffix}", p.other_prefix()));
        if let Some((_, path)) = given.iter().find(|(s, _)| s == suffix) {
            set.push((format!("{}{suffix}", p.prefix()), path.clone()));
        }
    }
    (remove, set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn the_personality_prefix_wins_and_empty_is_unset() {
        let env = lookup(&[
            ("PM2_KILL_SIGNAL", "SIGTERM"),
            ("PMR_KILL_SIGNAL", "SIGHUP"),
        ]);
        let pmr = Knobs::from_lookup(&env, Personality::Pmr).unwrap();
        assert_eq!(pmr.kill_signal, Some(Signal::SIGHUP));
        let pm2 = Knobs::from_lookup(&env, Personality::Pm2).unwrap();
        assert_eq!(pm2.kill_signal, Some(Signal::SIGTERM));
        let env = lookup(&[("PMR_KILL_SIGNAL", ""), ("PM2_KILL_SIGNAL", "term")]);
        let k = Knobs::from_lookup(&env, Personality::Pmr).unwrap();
        assert_eq!(k.stop_signal(), Signal::SIGTERM);
        assert_eq!(
            Knobs::from_lookup(&lookup(&[]), Personality::Pmr).unwrap(),
            Knobs::default()
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, val, want) in [
            ("PM2_KILL_SIGNAL", "SIGFOO", "unknown signal"),
            ("PM2_KILL_SIGNAL", "0", "unknown signal"),
            ("PM2_KILL_USE_MESSAGE", "maybe", "true or false"),
            ("PM2_GRACEFUL_TIMEOUT", "8s", "milliseconds"),
            ("PMR_GRACEFUL_LISTEN_TIMEOUT", "-1", "milliseconds"),
            ("PM2_WORKER_INTERVAL", "99999999999", "at most"),
            ("PM2_CONCURRENT_ACTIONS", "0", "positive"),
            ("PM2_KILL_TIMEOUT", "abc", "milliseconds"),
            ("PMR_MEMORY_GRACE_MS", "1s", "milliseconds"),
        ] {
            let e = Knobs::from_lookup(&lookup(&[(var, val)]), Personality::Pmr).unwrap_err();
            assert!(e.starts_with(var) && e.contains(want), "{var}={val}: {e}");
        }
        let e = check_paths(
            &lookup(&[("PM2_DAEMON_RPC_PORT", "6666")]),
            Personality::Pmr,
        )
        .unwrap_err();
        assert!(e.contains("PM2_DAEMON_RPC_PORT"), "{e}");
    }

    #[test]
    fn values_and_app_defaults() {
        let env = lookup(&[
            ("PM2_KILL_USE_MESSAGE", "true"),
            ("PM2_KILL_TIMEOUT", "5000"),
            ("PM2_GRACEFUL_LISTEN_TIMEOUT", "150"),
            ("PM2_GRACEFUL_TIMEOUT", "300"),
            ("PM2_WORKER_INTERVAL", "30000"),
            ("PM2_CONCURRENT_ACTIONS", "3"),
            ("PMR_MEMORY_GRACE_MS", "250"),
        ]);
        let k = Knobs::from_lookup(&env, Personality::Pmr).unwrap();
        assert_eq!(k.memory_grace, Some(250));
        assert!(k.kill_use_message);
        assert_eq!(k.kill_timeout(DEFAULT_KILL_TIMEOUT), 5000);
        assert_eq!(k.kill_timeout(200), 200, "an app's own value wins");
        assert_eq!(k.listen_timeout(DEFAULT_LISTEN_TIMEOUT), 150);
        assert_eq!(k.listen_timeout(9000), 9000);
        assert_eq!(k.drain_timeout(1600), 300);
        assert_eq!(Knobs::default().drain_timeout(1600), 1600);
        assert_eq!(k.rescan(), std::time::Duration::from_secs(30));
        assert_eq!(k.reload_parallel(None), 3);
        assert_eq!(k.reload_parallel(Some(1)), 1);
        assert_eq!(Knobs::default().reload_parallel(None), 1);
        let off = Knobs::from_lookup(
            &lookup(&[("PMR_KILL_USE_MESSAGE", "false")]),
            Personality::Pmr,
        );
        assert!(
            !off.unwrap().kill_use_message,
            "PM2 would take \"false\" as true"
        );
    }

    #[test]
    fn runtime_debug_names_and_values() {
        let on = |pairs: &[(&str, &str)], p| runtime_debug_from(&lookup(pairs), p);
        assert_eq!(on(&[], Personality::Pmr), Ok(None));
        assert_eq!(on(&[("PMR_RUNTIME_DEBUG", "")], Personality::Pmr), Ok(None));
        assert_eq!(
            on(&[("PM2_RUNTIME_DEBUG", "true")], Personality::Pmr),
            Ok(Some("PM2_RUNTIME_DEBUG".into()))
        );
        assert_eq!(
            on(&[("PMR_RUNTIME_DEBUG", "1")], Personality::Pmr),
            Ok(Some("PMR_RUNTIME_DEBUG".into()))
        );
        for off in ["false", "0", "no", " FALSE "] {
            assert_eq!(
                on(&[("PM2_RUNTIME_DEBUG", off)], Personality::Pmr),
                Ok(None),
                "{off}: PM2 would take it as on"
            );
        }
        // The personality's prefix wins, an empty value counts as unset.
        let both = [
            ("PMR_RUNTIME_DEBUG", "false"),
            ("PM2_RUNTIME_DEBUG", "true"),
        ];
        assert_eq!(on(&both, Personality::Pmr), Ok(None));
        assert_eq!(
            on(&both, Personality::Pm2),
            Ok(Some("PM2_RUNTIME_DEBUG".into()))
        );
        let empty = [("PMR_RUNTIME_DEBUG", ""), ("PM2_RUNTIME_DEBUG", "yes")];
        assert_eq!(
            on(&empty, Personality::Pmr),
            Ok(Some("PM2_RUNTIME_DEBUG".into()))
        );
        let e = on(&[("PMR_RUNTIME_DEBUG", "maybe")], Personality::Pmr).unwrap_err();
        assert!(
            e.starts_with("PMR_RUNTIME_DEBUG") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn homes_and_paths() {
        let cwd = Path::new("/w");
        let env = lookup(&[("HOME", "/u"), ("PM2_HOME", "/p"), ("PMR_HOME", "rel")]);
        assert_eq!(
            home_root_from(&env, Personality::Pmr, cwd),
            PathBuf::from("/w/rel")
        );
        assert_eq!(
            home_root_from(&env, Personality::Pm2, cwd),
            PathBuf::from("/p")
        );
        let env = lookup(&[("HOME", "/u")]);
        assert_eq!(
            home_root_from(&env, Personality::Pm2, cwd),
            PathBuf::from("/u/.pm2")
        );
        assert_eq!(
            home_root_from(&env, Personality::Pmr, cwd),
            PathBuf::from("/u/.pmr")
        );
        let env = lookup(&[
            ("PM2_PID_FILE_PATH", "/a/d.pid"),
            ("PMR_PID_FILE_PATH", "d2.pid"),
            ("PM2_DEFAULT_LOG_PATH", "/logs"),
        ]);
        let got = path_overrides_from(&env, Personality::Pmr, cwd);
        assert_eq!(
            got,
            vec![
                ("PID_FILE_PATH", PathBuf::from("/w/d2.pid")),
                ("DEFAULT_LOG_PATH", PathBuf::from("/logs"))
            ]
        );
        let got = path_overrides_from(&env, Personality::Pm2, cwd);
        assert_eq!(got[0], ("PID_FILE_PATH", PathBuf::from("/a/d.pid")));
    }
}
