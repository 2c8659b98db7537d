//! Small commands PM2 users type: `examples`, `completion`, `install pmr-logrotate`.

use super::Out;
use anyhow::{bail, Result};

/// PM2's `pm2 examples`, with pmr's commands.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Start and add a process to the pmr process list",
        &["pmr start app.js --name app"],
    ),
    ("Show the process list", &["pmr ls"]),
    (
        "Stop and delete a process from the pmr process list",
        &["pmr delete app"],
    ),
    (
        "Stop, start and restart a process from the process list",
        &["pmr stop app", "pmr start app", "pmr restart app"],
    ),
    (
        "Clusterize an app to all CPU cores available",
        &["pmr start app.js -i max"],
    ),
    (
        "Reload a cluster app with zero downtime",
        &["pmr reload app"],
    ),
    (
        "Start the apps of an ecosystem file with its production environment",
        &["pmr start ecosystem.config.js --env production"],
    ),
    ("Follow the logs of an app", &["pmr logs app"]),
    (
        "Install pmr auto completion",
        &["pmr completion bash > ~/.local/share/bash-completion/completions/pmr"],
    ),
];

pub fn examples(out: &Out) -> Result<i32> {
    out.info("pmr usage examples:\n");
    let mut s = String::new();
    for (what, cmds) in EXAMPLES {
        s.push_str(&format!("- {what}:\n\n"));
        for c in *cmds {
            s.push_str(&format!("  $ {c}\n"));
        }
        s.push('\n');
    }
    s.push_str("Check the full documentation in README.md\n");
    super::show::print(&s)?;
    Ok(0)
}

/// A completion script for `shell`, generated from the command definitions.
pub fn completion(shell: Option<clap_complete::Shell>) -> Result<i32> {
    let Some(shell) = shell.or_else(clap_complete::Shell::from_env) else {
        bail!("name the shell: pmr completion bash|zsh|fish ($SHELL is not one pmr knows)");
    };
    let mut cmd = super::command();
    // Named after the binary as invoked, so a `pm2` link completes as `pm2`.
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pmr".into());
    // Generated in memory: clap_complete panics when stdout is a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    super::show::print(&String::from_utf8_lossy(&script))?;
    Ok(0)
}

/// `pm2-logrotate` (any version) or `pmr-logrotate`: the settings of a log rotation.
pub fn is_logrotate(module: &str) -> bool {
    use pmr_core::conf::{CONF_SECTION, PM2_SECTION};
    let name = module
        .strip_prefix(PM2_SECTION)
        .filter(|rest| rest.is_empty() || rest.starts_with('@'));
    name.is_some() || module == CONF_SECTION
}

/// `pmr install pmr-logrotate`: the built-in rotation, configured by pm2-logrotate's keys,
/// needs no install; this says how to configure it.
pub fn install(out: &Out, module: &str) -> Result<i32> {
    use pmr_core::conf::{CONF_SECTION, KEYS, PM2_SECTION};
    if !is_logrotate(module) {
        bail!("{module} is not pmr-logrotate");
    }
    out.info("log rotation is built in and on by default: nothing to install");
    out.info(format!(
        "configure it with `pmr set {CONF_SECTION}:<key> <value>` ({PM2_SECTION}:<key> works too):"
    ));
    for key in KEYS {
        out.info(format!(
            "  {CONF_SECTION}:{key:<9} {}",
            rotate_key_help(key)
        ));
    }
    Ok(0)
}

fn rotate_key_help(key: &str) -> &'static str {
    match key {
        "max_size" => "rotate a file before it passes this size (10M; 0 turns it off)",
        "retain" => "rotated files kept per log (30)",
        "compress" => "gzip rotated files (false)",
        "interval" => "also rotate non-empty files every 30s, 10m, 12h, 1d or 1w",
        "cron" => "or on a cron schedule, local time (\"0 0 * * *\")",
        _ => "see README.md (Logs)",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rotation_key_is_explained() {
        for key in pmr_core::conf::KEYS {
            assert!(!super::rotate_key_help(key).starts_with("see "), "{key}");
        }
    }
}
