//! `$PMR_HOME/conf.json` (PM2's `module_conf.json`) as the CLI reads and writes it, for
//! `pmr set|unset|get` and the `pmr:http` setting of `pmr web`, and telling a running daemon to
//! apply it (after `set`, and after pm2-logrotate is installed or removed).

use crate::client::Client;
use anyhow::{Context, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response};
use serde_json::{Map, Value};

fn conf_path(home: &Home) -> std::path::PathBuf {
    home.conf_file()
}

pub fn read(home: &Home) -> Result<Map<String, Value>> {
    pmr_core::conf::read_conf(&conf_path(home)).map_err(anyhow::Error::msg)
}

pub fn write(home: &Home, conf: &Map<String, Value>) -> Result<()> {
    let path = conf_path(home);
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {}", home.root.display()))?;
    let text = serde_json::to_string_pretty(conf)? + "\n";
    // Crash-safe: the list of installed modules lives here too.
    pmr_core::atomic_file::replace_private(&path, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Tell a running daemon to apply the new settings (a stopped one reads them when it starts).
pub fn apply(home: &Home) -> Result<()> {
    if let Some(mut c) = Client::connect_existing(home) {
        if let Response::LogsReloaded { warnings, .. } = c.call(&Request::ReloadLogs)? {
            for w in warnings {
                eprintln!("{} conf.json: {w}", pmr_core::personality::warn());
            }
        }
    }
    Ok(())
}
