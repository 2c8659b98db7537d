//! The normalized description of one app, as the daemon receives it.
//!
//! The CLI turns command-line flags and ecosystem files into `AppSpec` values; the daemon never
//! parses user configuration itself. Every default lives in `config` (one place), so an `AppSpec`
//! is always complete.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    Fork,
    Cluster,
}

impl ExecMode {
    /// PM2's spelling in `jlist` (`fork_mode` / `cluster_mode`).
    pub fn pm2_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork_mode",
            ExecMode::Cluster => "cluster_mode",
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: String,
    pub namespace: String,
    /// Absolute path of the script, or the program name/path when it is a binary.
    pub script: String,
    pub args: Vec<String>,
    /// `None` means the script is executed directly (PM2's `interpreter: 'none'`).
    pub interpreter: Option<String>,
    /// Arguments placed between the interpreter and the script (`node_args`).
    pub interpreter_args: Vec<String>,
    pub cwd: String,
    pub exec_mode: ExecMode,
    /// Resolved number of instances (>= 1).
    pub instances: u32,
    /// The environment the child starts from: the CLI's (filtered) env plus the app's `env`.
    pub env: crate::env_map::Env,
    /// The JSON value of each `env` entry the config gave as a number, a boolean or `null`, so
    /// `jlist` shows `PORT: 3000` as PM2 does while the child gets `env`'s string; and entries
    /// that are objects (PM2's `{}` under the app's name for a CLI start, objects of an
    /// `env_<name>` block), which only `jlist` shows: the child does not get them (PM2 drops them
    /// too). Absent from specs written before pmr kept the types: everything is then a string.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_json: BTreeMap<String, serde_json::Value>,
    pub autorestart: bool,
    pub autostart: bool,
    pub restart_delay: u64,
    pub exp_backoff_restart_delay: Option<u64>,
    pub max_restarts: u32,
    pub min_uptime: u64,
    pub stop_exit_codes: Vec<i32>,
    pub kill_timeout: u64,
    pub listen_timeout: u64,
    pub wait_ready: bool,
    pub shutdown_with_message: bool,
    pub treekill: bool,
    pub merge_logs: bool,
    /// Explicit log/pid paths (absolute); `None` means the `$PMR_HOME` default.
    pub out_file: Option<String>,
    pub error_file: Option<String>,
    pub log_file: Option<String>,
    pub pid_file: Option<String>,
    pub instance_var: String,
    pub increment_var: Option<String>,
    pub log_date_format: Option<String>,
    pub disable_logs: bool,
    pub log_type: Option<String>,
    /// `listen`: sockets the daemon binds and passes systemd-style (`LISTEN_FDS`).
    pub listen: Vec<ListenAddr>,
    /// Cluster workers get the keep-alive draining preload (`drain_keepalive`, default true).
    pub drain_keepalive: bool,
    /// How cluster workers share a TCP port (`instance_balancing`): `round_robin` (the daemon
    /// hands each new connection to the next worker) or `kernel` (every worker accepts on the
    /// socket). `None`: the app's `NODE_CLUSTER_SCHED_POLICY` (`none` = kernel), else round-robin.
    pub instance_balancing: Option<String>,
    /// Node apps get PM2's unhandled-rejection handler (`catch_unhandled_rejections`, default
    /// true); false leaves Node's own default (exit).
    pub catch_unhandled_rejections: bool,
    /// The app's `log_rotate` block, over the global settings of `conf.json`.
    pub log_rotate: Option<LogRotate>,
    /// Not implemented yet (the CLI warns; see [`AppSpec::unsupported`]).
    pub watch: Watch,
    pub ignore_watch: Option<Vec<String>>,
    /// Milliseconds.
    pub watch_delay: Option<u64>,
    pub watch_options: Option<serde_json::Map<String, serde_json::Value>>,
    /// A cron pattern, already checked by the CLI; the instance task restarts on it
    /// (`daemon/cron.rs`).
    pub cron_restart: Option<String>,
    /// Bytes: over it (the whole process tree) for the grace period, the instance is
    /// restarted (`daemon/memory_guard.rs`).
    pub max_memory_restart: Option<u64>,
    /// Options the daemon never reads, already validated, kept only so `jlist` shows them
    /// (`time`, `env_*` blocks, PM2 options pmr accepts without effect, ...). The daemon must
    /// not read this: an option it acts on gets a typed field.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Fields given `null` on a restart (`--node-args null`): they act at their defaults, and
    /// `jlist` leaves their keys out, as PM2 deletes them from `pm2_env` ([`AppSpec::removed`]).
    /// Giving the option again brings the key back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// A PM2 module (`pmr install`): listed in its own `ls` table, left out of `save`'s dump,
    /// started again from `conf.json` whenever a daemon starts. Never a user option: only
    /// `pmr_config::module` sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pmx_module: bool,
}

/// An address of the `listen` option: `127.0.0.1:8000`, `[::]:80`, `:8000` or `8000` (all
/// interfaces, dual-stack), or a unix socket path (`/run/app.sock`). Kept as written too, since
/// the daemon names the socket after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddr {
    text: String,
    pub kind: ListenKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenKind {
    Unix(String),
    /// `ip: None`: all interfaces.
    Tcp {
        ip: Option<IpAddr>,
        port: u16,
    },
}

impl ListenAddr {
    pub fn parse(addr: &str) -> Result<ListenAddr, String> {
        let kind = if addr.starts_with('/') || addr.starts_with("./") {
            ListenKind::Unix(addr.to_string())
        } else if let Ok(port) = addr.trim_start_matches(':').parse::<u16>() {
            ListenKind::Tcp { ip: None, port }
        } else {
            let sa: SocketAddr = addr.parse().map_err(|_| {
                format!(
                    "listen address {addr:?} is not host:port, a port, or an absolute socket path"
                )
            })?;
            ListenKind::Tcp {
                ip: Some(sa.ip()),
                port: sa.port(),
            }
        };
        Ok(ListenAddr {
            text: addr.to_string(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ListenAddr::parse(&s)
    }
}

impl From<ListenAddr> for String {
    fn from(a: ListenAddr) -> String {
        a.text
    }
}

/// An app's `log_rotate` block: each setting given overrides the global one. `interval` and
/// `cron` are kept as written (checked by the CLI with [`crate::conf`]'s parsers) so `jlist`
/// shows them as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRotate {
    /// Bytes.
    pub max_size: Option<u64>,
    pub retain: Option<u32>,
    pub compress: Option<bool>,
    pub interval: Option<String>,
    pub cron: Option<String>,
}

/// `watch`: off, the app's `cwd` (`true`), or these paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Watch {
    #[default]
    Off,
    Cwd,
    Paths(Vec<String>),
}

impl Watch {
    /// As PM2 keeps it in `pm2_env.watch`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Watch::Off => false.into(),
            Watch::Cwd => true.into(),
            Watch::Paths(p) => p.clone().into(),
        }
    }
}

impl AppSpec {
    /// Cluster workers get their connections from the daemon, in turn (see
    /// [`AppSpec::instance_balancing`]).
    pub fn round_robin(&self) -> bool {
        match self.instance_balancing.as_deref() {
            Some(b) => b != "kernel",
            None => {
                self.env
                    .get("NODE_CLUSTER_SCHED_POLICY")
                    .map(String::as_str)
                    != Some("none")
            }
        }
    }

    /// The paths `watch` names, resolved against `cwd` (`true` or `[]`: `cwd` itself).
    pub fn watch_paths(&self) -> Vec<std::path::PathBuf> {
        let cwd = std::path::Path::new(&self.cwd);
        match &self.watch {
            Watch::Off => Vec::new(),
            Watch::Paths(p) if !p.is_empty() => p.iter().map(|p| cwd.join(p)).collect(),
            _ => vec![cwd.to_path_buf()],
        }
    }

    /// Whether `field` was removed with `null` (see the field `removed`): `jlist` leaves out
    /// the key PM2 would show for it.
    pub fn removed(&self, field: &str) -> bool {
        !self.removed.is_empty() && self.removed.iter().any(|f| f == field)
    }

    /// The namespace as `ls` and `describe` show it: `N/A` once removed with `null`, as PM2
    /// (the app is still selected by `default`).
    pub fn namespace_shown(&self) -> &str {
        if self.removed("namespace") {
            "N/A"
        } else {
            &self.namespace
        }
    }

    /// Whether Node's IPC channel is set up for this app (fork-mode `process.send`).
    pub fn is_node(&self) -> bool {
        match &self.interpreter {
            Some(i) => {
                let base = std::path::Path::new(i)
                    .file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or(i);
                base == "node"
                    || base.starts_with("node")
                        && base[4..].chars().all(|c| c.is_ascii_digit() || c == '.')
            }
            None => false,
        }
    }

    /// The options set on this app that pmr accepts but does not act on yet, by name.
    pub fn unsupported(&self) -> Vec<&'static str> {
        // Every option acts now; kept for the next one accepted before it is implemented.
        Vec::new()
    }

    /// `pm2_env.env` as PM2 shows it: `env` with the JSON types the config gave (a value
    /// changed since, e.g. by `--update-env`, shows as the string it now is), plus the
    /// object-valued entries the child does not get.
    pub fn env_typed(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out: serde_json::Map<String, serde_json::Value> = self
            .env
            .iter()
            .map(|(k, v)| {
                let typed = self
                    .env_json
                    .get(k)
                    .filter(|t| env_string(t).as_deref() == Some(v.as_str()));
                (
                    k.clone(),
                    typed.cloned().unwrap_or_else(|| v.clone().into()),
                )
            })
            .collect();
        for (k, v) in &self.env_json {
            if v.is_object() && !self.env.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// The interpreter as PM2 shows it in `exec_interpreter`.
    pub fn interpreter_display(&self) -> &str {
        self.interpreter.as_deref().unwrap_or("none")
    }
}

/// The string a child gets for an env value given as JSON, as Node's `child_process` makes it:
/// `3000` → `"3000"`, `true` → `"true"`, `null` → `"null"`; arrays as JSON (PM2 stringifies them
/// before). `None` for an object, which PM2 leaves out of the child's environment.
pub fn env_string(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                n.to_string()
            } else {
                // JavaScript's Number#toString for the integral doubles JSON gives as `3e3`.
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    format!("{f:.0}")
                } else {
                    f.to_string()
                }
            }
        }
        Value::Array(_) => v.to_string(),
        Value::Object(_) => return None,
    })
}

/// An app with PM2's defaults, for unit tests.
#[cfg(any(test, feature = "testing"))]
pub fn test_spec(name: &str) -> AppSpec {
    AppSpec {
        name: name.into(),
        namespace: "default".into(),
        script: "/bin/true".into(),
        args: vec![],
        interpreter: None,
        interpreter_args: vec![],
        cwd: "/".into(),
        exec_mode: ExecMode::Fork,
        instances: 1,
        env: Default::default(),
        env_json: BTreeMap::new(),
        autorestart: true,
        autostart: true,
        restart_delay: 0,
        exp_backoff_restart_delay: None,
        max_restarts: 16,
        min_uptime: 1000,
        stop_exit_codes: vec![],
        kill_timeout: 1600,
        listen_timeout: 3000,
        wait_ready: false,
        shutdown_with_message: false,
        treekill: true,
        merge_logs: true,
        out_file: None,
        error_file: None,
        log_file: None,
        pid_file: None,
        instance_var: "NODE_APP_INSTANCE".into(),
        increment_var: None,
        log_date_format: None,
        disable_logs: false,
        log_type: None,
        listen: vec![],
        drain_keepalive: true,
        instance_balancing: None,
        catch_unhandled_rejections: true,
        log_rotate: None,
        watch: Watch::Off,
        ignore_watch: None,
        watch_delay: None,
        watch_options: None,
        cron_restart: None,
        max_memory_restart: None,
        extra: Default::default(),
        removed: vec![],
        pmx_module: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancing_is_round_robin_unless_kernel_is_asked_for() {
        let mut s = test_spec("web");
        assert!(s.round_robin());
        s.env
            .insert("NODE_CLUSTER_SCHED_POLICY".into(), "none".into());
        assert!(
            !s.round_robin(),
            "Node's own variable, as its primary reads it"
        );
        s.instance_balancing = Some("round_robin".into());
        assert!(s.round_robin(), "the option wins over the variable");
        s.instance_balancing = Some("kernel".into());
        s.env
            .insert("NODE_CLUSTER_SCHED_POLICY".into(), "rr".into());
        assert!(!s.round_robin());
    }

    #[test]
    fn listen_addresses_parse_and_keep_their_text() {
        let a = ListenAddr::parse("127.0.0.1:8000").unwrap();
        assert_eq!(
            a.kind,
            ListenKind::Tcp {
                ip: Some("127.0.0.1".parse().unwrap()),
                port: 8000
            }
        );
        assert_eq!(a.to_string(), "127.0.0.1:8000");
        for any in ["8000", ":8000"] {
            assert_eq!(
                ListenAddr::parse(any).unwrap().kind,
                ListenKind::Tcp {
                    ip: None,
                    port: 8000
                }
            );
        }
        assert!(matches!(
            ListenAddr::parse("[::1]:80").unwrap().kind,
            ListenKind::Tcp {
                ip: Some(IpAddr::V6(_)),
                port: 80
            }
        ));
        assert_eq!(
            ListenAddr::parse("/run/a.sock").unwrap().kind,
            ListenKind::Unix("/run/a.sock".into())
        );
        let e = ListenAddr::parse("localhost").unwrap_err();
        assert!(e.contains("\"localhost\""), "{e}");
        // Over the wire as the plain string.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"127.0.0.1:8000\"");
        assert_eq!(serde_json::from_str::<ListenAddr>(&json).unwrap(), a);
    }

    #[test]
    fn specs_without_json_types_still_load_and_show_strings() {
        let mut s = test_spec("a");
        s.env.insert("PORT".into(), "3000".into());
        // As the previous version wrote it: no `env_json` at all.
        let mut old = serde_json::to_value(&s).unwrap();
        assert!(old.get("env_json").is_none(), "empty: not written");
        old.as_object_mut().unwrap().remove("env_json");
        let back: AppSpec = serde_json::from_value(old).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.env_typed()["PORT"], "3000");

        s.env_json.insert("PORT".into(), 3000.into());
        let back: AppSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.env_typed()["PORT"], 3000);
    }

    #[test]
    fn env_strings_as_node_makes_them() {
        use serde_json::json;
        let cases = [
            (json!("x"), Some("x")),
            (json!(3000), Some("3000")),
            (json!(-1), Some("-1")),
            (json!(0.5), Some("0.5")),
            (json!(1e3), Some("1000")),
            (json!(true), Some("true")),
            (json!(null), Some("null")),
            (json!([1, "a"]), Some("[1,\"a\"]")),
            (json!({"a": 1}), None),
        ];
        for (v, want) in cases {
            assert_eq!(env_string(&v).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn unsupported_options_are_named() {
        let mut s = test_spec("a");
        assert!(s.unsupported().is_empty());
        s.watch = Watch::Paths(vec!["src".into()]);
        s.cron_restart = Some("0 * * * *".into());
        s.max_memory_restart = Some(1 << 20);
        s.log_rotate = Some(LogRotate::default());
        assert!(s.unsupported().is_empty());
    }
}
