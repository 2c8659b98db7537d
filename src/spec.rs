//! The normalized description of one app, as the daemon receives it.
//!
//! The CLI turns command-line flags and ecosystem files into `AppSpec` values; the daemon never
//! parses user configuration itself. Every default lives in `config` (one place), so an `AppSpec`
//! is always complete.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    pub env: BTreeMap<String, String>,
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
    /// Every other option given by the user, already validated, kept so `jlist` and
    /// `describe` show it (watch, cron_restart, max_memory_restart, env_* blocks, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AppSpec {
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

    /// The interpreter as PM2 shows it in `exec_interpreter`.
    pub fn interpreter_display(&self) -> &str {
        self.interpreter.as_deref().unwrap_or("none")
    }
}

/// An app with PM2's defaults, for unit tests.
#[cfg(test)]
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
        env: BTreeMap::new(),
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
        extra: Default::default(),
    }
}
