//! What the CLI knows when it builds specs: the stages' context.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the CLI knows when it builds specs.
#[derive(Debug, Clone)]
pub struct BuildCtx {
    /// Relative `cwd`, script and log paths resolve against this (the CLI's cwd, or the
    /// config file's directory).
    pub base_dir: PathBuf,
    /// The CLI's environment, which apps inherit (PM2 does the same).
    pub env: BTreeMap<String, String>,
    /// `--env <name>`: selects `env_<name>` (and the file's `deploy.<name>.env`).
    pub env_name: Option<String>,
    pub cpus: u32,
    /// The module settings (`$PMR_HOME/conf.json`, PM2's `module_conf.json`): the section
    /// named after an app becomes variables of that app, as in PM2.
    pub module_conf: Map<String, Value>,
    /// The apps come from a config file (PM2 shows some values differently then).
    pub from_file: bool,
    /// The file's top-level `deploy` block, whose `<env_name>.env` applies with `--env`.
    pub deploy: Option<Value>,
}

impl BuildCtx {
    pub fn from_process(env_name: Option<String>) -> BuildCtx {
        BuildCtx {
            base_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env: std::env::vars().collect(),
            env_name,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            // A conf.json that does not parse is reported by `pmr set|get`; apps start without it.
            module_conf: pmr_core::conf::read_conf(
                &pmr_core::paths::Home::from_env().root.join("conf.json"),
            )
            .unwrap_or_default(),
            from_file: false,
            deploy: None,
        }
    }

    /// `deploy.<env_name>.env`, checked as an `env` block.
    pub(super) fn deploy_env(&self) -> Result<Option<Map<String, Value>>, String> {
        let (Some(name), Some(deploy)) = (&self.env_name, &self.deploy) else {
            return Ok(None);
        };
        let Some(env) = deploy.get(name).and_then(|d| d.get("env")) else {
            return Ok(None);
        };
        if env.is_null() {
            return Ok(None);
        }
        let key = format!("deploy.{name}.env");
        match crate::options::normalize_env(&key, env)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Ok(None),
        }
    }

    pub(super) fn path_var(&self) -> &str {
        self.env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin")
    }
}
