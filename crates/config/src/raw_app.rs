//! One app's options, typed: what the option table's checks ([`crate::options::normalize_app`])
//! accepted, as the stages of [`crate::app::build`] read them. Grouped by the stage that reads
//! them, so each stage's input is its group.
//!
//! Every field is optional (defaults are the stages' business) and has the type of its option's
//! kind; the loose forms PM2 accepts (`"2s"`, `"100M"`, `"true"`, a string of arguments, ...)
//! deserialize through [`crate::loose`], the parsers the table's checks use, so a map the checks
//! left canonical and one as written read the same. Options the build does not read (PM2's
//! no-effect ones, `uid`/`gid`, `kill_retry_time`, the `env_<name>` blocks) stay in
//! [`RawApp::extra`], which becomes the spec's `extra`.

use crate::loose::{LogFile, Switch};
use pmr_core::spec::{ExecMode, LogRotate};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Default, Deserialize)]
pub struct RawApp {
    #[serde(flatten)]
    pub program: ProgramOpts,
    #[serde(flatten)]
    pub identity: IdentityOpts,
    #[serde(flatten)]
    pub scaling: ScalingOpts,
    #[serde(flatten)]
    pub environment: EnvOpts,
    #[serde(flatten)]
    pub logs: LogOpts,
    #[serde(flatten)]
    pub policy: PolicyOpts,
    #[serde(flatten)]
    pub watching: WatchOpts,
    #[serde(flatten)]
    pub runtime: RuntimeOpts,
    /// Every other key, in the order given. Declared last: serde hands a flattened map only
    /// the keys no flattened struct before it took.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What runs, and where.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProgramOpts {
    #[serde(deserialize_with = "de::text")]
    pub script: Option<String>,
    #[serde(deserialize_with = "de::text")]
    pub cwd: Option<String>,
    #[serde(deserialize_with = "de::words")]
    pub args: Option<Vec<String>>,
    #[serde(deserialize_with = "de::text")]
    pub interpreter: Option<String>,
    #[serde(deserialize_with = "de::words")]
    pub interpreter_args: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IdentityOpts {
    #[serde(deserialize_with = "de::text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "de::text")]
    pub namespace: Option<String>,
    #[serde(deserialize_with = "de::flag")]
    pub append_env_to_name: Option<bool>,
}

/// How many processes, and how they share ports.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScalingOpts {
    #[serde(deserialize_with = "de::instances")]
    pub instances: Option<i64>,
    #[serde(deserialize_with = "de::exec_mode")]
    pub exec_mode: Option<ExecMode>,
    #[serde(deserialize_with = "de::words")]
    pub listen: Option<Vec<String>>,
}

impl ScalingOpts {
    /// Cluster mode asked for: by `exec_mode`, else by `instances` (≥ -1), as PM2 decides
    /// before it knows whether the script runs on node.
    pub fn wants_cluster(&self) -> bool {
        match self.exec_mode {
            Some(mode) => mode == ExecMode::Cluster,
            None => matches!(self.instances, Some(n) if n >= -1),
        }
    }
}

/// The app's environment (`env_<name>` blocks are in [`RawApp::extra`]: see [`RawApp::env_block`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvOpts {
    pub env: Option<Map<String, Value>>,
    #[serde(deserialize_with = "de::filter_env")]
    pub filter_env: Option<Switch>,
    #[serde(deserialize_with = "de::port")]
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogOpts {
    #[serde(deserialize_with = "de::text")]
    pub out_file: Option<String>,
    #[serde(deserialize_with = "de::text")]
    pub error_file: Option<String>,
    #[serde(deserialize_with = "de::log_file")]
    pub log_file: Option<LogFile>,
    #[serde(deserialize_with = "de::text")]
    pub pid_file: Option<String>,
    #[serde(deserialize_with = "de::flag")]
    pub merge_logs: Option<bool>,
    #[serde(deserialize_with = "de::flag")]
    pub time: Option<bool>,
    #[serde(deserialize_with = "de::text")]
    pub log_date_format: Option<String>,
    #[serde(deserialize_with = "de::flag")]
    pub disable_logs: Option<bool>,
    #[serde(deserialize_with = "de::text")]
    pub log_type: Option<String>,
    /// As the table's checks leave it (canonical keys, sizes in bytes).
    pub log_rotate: Option<LogRotate>,
}

/// When the app is (re)started and stopped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PolicyOpts {
    #[serde(deserialize_with = "de::flag")]
    pub autorestart: Option<bool>,
    #[serde(deserialize_with = "de::flag")]
    pub autostart: Option<bool>,
    #[serde(deserialize_with = "de::millis")]
    pub restart_delay: Option<u64>,
    #[serde(deserialize_with = "de::millis")]
    pub exp_backoff_restart_delay: Option<u64>,
    #[serde(deserialize_with = "de::count")]
    pub max_restarts: Option<u32>,
    #[serde(deserialize_with = "de::millis")]
    pub min_uptime: Option<u64>,
    #[serde(deserialize_with = "de::exit_codes")]
    pub stop_exit_codes: Option<Vec<i32>>,
    #[serde(deserialize_with = "de::millis")]
    pub kill_timeout: Option<u64>,
    #[serde(deserialize_with = "de::millis")]
    pub listen_timeout: Option<u64>,
    #[serde(deserialize_with = "de::flag")]
    pub wait_ready: Option<bool>,
    #[serde(deserialize_with = "de::flag")]
    pub shutdown_with_message: Option<bool>,
    #[serde(deserialize_with = "de::flag")]
    pub treekill: Option<bool>,
    #[serde(deserialize_with = "de::cron")]
    pub cron_restart: Option<String>,
    #[serde(deserialize_with = "de::size")]
    pub max_memory_restart: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WatchOpts {
    #[serde(deserialize_with = "de::watch")]
    pub watch: Option<Switch>,
    #[serde(deserialize_with = "de::words")]
    pub ignore_watch: Option<Vec<String>>,
    #[serde(deserialize_with = "de::millis")]
    pub watch_delay: Option<u64>,
    pub watch_options: Option<Map<String, Value>>,
}

/// What the daemon gives each process beside its environment.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeOpts {
    #[serde(deserialize_with = "de::text")]
    pub instance_var: Option<String>,
    #[serde(deserialize_with = "de::text")]
    pub increment_var: Option<String>,
    #[serde(deserialize_with = "de::flag")]
    pub drain_keepalive: Option<bool>,
    #[serde(deserialize_with = "de::text")]
    pub instance_balancing: Option<String>,
    #[serde(deserialize_with = "de::flag")]
    pub catch_unhandled_rejections: Option<bool>,
}

impl RawApp {
    /// The typed form of an app's options (canonical, as the table's checks leave them, or as
    /// written). A value of the wrong kind is an error naming what was expected.
    pub fn from_options(opts: &Map<String, Value>) -> Result<RawApp, String> {
        serde_json::from_value(Value::Object(opts.clone())).map_err(|e| e.to_string())
    }

    /// The `env_<name>` block selected with `--env <name>`.
    pub fn env_block(&self, env_name: &str) -> Option<&Map<String, Value>> {
        self.extra
            .get(&format!("env_{env_name}"))
            .and_then(Value::as_object)
    }
}

/// `deserialize_with` adapters: each reads one option kind through its [`crate::loose`] parser.
/// `null` is absent, as in PM2.
mod de {
    use crate::loose::{self, LogFile, Switch, WrongKind};
    use pmr_core::spec::ExecMode;
    use serde::de::{Deserializer, Error};
    use serde::Deserialize;
    use serde_json::Value;

    /// `parse` answers `Ok(None)` for a value that means "not set" (`""`, `0` for a cron).
    fn read<'de, D: Deserializer<'de>, T>(
        d: D,
        expected: &str,
        parse: impl FnOnce(&Value) -> Result<Option<T>, WrongKind>,
    ) -> Result<Option<T>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None => Ok(None),
            Some(v) => parse(&v)
                .map_err(|WrongKind| D::Error::custom(format!("expected {expected}; got {v}"))),
        }
    }

    /// [`read`] for a parser with no "not set" form.
    fn always<T>(
        parse: impl FnOnce(&Value) -> Option<T>,
    ) -> impl FnOnce(&Value) -> Result<Option<T>, WrongKind> {
        move |v| parse(v).map(Some).ok_or(WrongKind)
    }

    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, "a string", loose::text)
    }

    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        read(d, "true or false", always(loose::flag))
    }

    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(
            d,
            "milliseconds, or a duration like \"5s\"",
            always(loose::millis),
        )
    }

    pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, "bytes, or a size like \"200M\"", always(loose::size))
    }

    pub fn instances<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        read(d, "a whole number or \"max\"", always(loose::instances))
    }

    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        read(d, "a non-negative integer", always(loose::count))
    }

    pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        read(d, "a port", always(loose::port))
    }

    pub fn exit_codes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i32>>, D::Error> {
        read(d, "exit codes", always(loose::exit_codes))
    }

    pub fn exec_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExecMode>, D::Error> {
        read(d, "\"fork\" or \"cluster\"", always(loose::exec_mode))
    }

    pub fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        read(d, "a string or an array of strings", |v| {
            loose::words(v).map(Some).map_err(|_| WrongKind)
        })
    }

    pub fn watch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Switch>, D::Error> {
        read(d, "true/false or paths", |v| loose::switch(v, true))
    }

    pub fn filter_env<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Switch>, D::Error> {
        read(d, "true/false or variable names", |v| {
            loose::switch(v, false)
        })
    }

    pub fn log_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LogFile>, D::Error> {
        read(d, "a file path or true/false", loose::log_file)
    }

    /// A cron expression (checked by the option table); `0` and `""` turn it off.
    pub fn cron<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, "a cron expression", |v| match v {
            Value::String(s) if s.trim().is_empty() || s.trim() == "0" => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(None),
            _ => Err(WrongKind),
        })
    }
}

#[cfg(test)]
#[path = "raw_app_tests.rs"]
mod tests;
