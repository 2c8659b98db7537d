//! Ecosystem files on the command line: load, validate every app, narrow with `--only`, and
//! build the specs, all before anything is sent to the daemon (a bad app stops the whole file).

use anyhow::{anyhow, bail, Context, Result};
use pmr_config::app::BuildCtx;
use pmr_config::load::{is_config_file, load_file, load_str, ConfigKind};
use pmr_core::spec::AppSpec;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Whether a command-line target names an ecosystem file (or `-` for JSON on stdin).
pub fn is_ecosystem(target: &str) -> bool {
    target == "-" || is_config_file(target)
}

/// The specs of the apps in `target` (a file, or `-`), narrowed to `only` (comma separated).
/// An unknown option is a warning (PM2 ignores it), or with `strict` an error.
pub fn load_specs(
    target: &str,
    only: Option<&str>,
    env_name: Option<&str>,
    strict: bool,
) -> Result<Vec<AppSpec>> {
    let cwd = std::env::current_dir().context("no current directory")?;
    let (value, shown, base_dir) = if target == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read stdin")?;
        let v =
            load_str(&text, ConfigKind::Json, Path::new("<stdin>")).map_err(|e| anyhow!("{e}"))?;
        (v, "<stdin>".to_string(), cwd.clone())
    } else {
        let path = cwd.join(target);
        if !path.exists() {
            bail!("File {target} not found");
        }
        let v = load_file(Path::new(target)).map_err(|e| anyhow!("{e}"))?;
        // pmr decision: relative paths in a config resolve against the file's directory, so
        // `pmr start /srv/app/ecosystem.config.js` works from anywhere.
        let dir = path.parent().map(Path::to_path_buf).unwrap_or(cwd.clone());
        (v, target.to_string(), dir)
    };
    let ctx = BuildCtx {
        base_dir: base_dir.clone(),
        from_file: true,
        deploy: value.get("deploy").cloned(),
        ..BuildCtx::from_process(env_name.map(str::to_string))
    };
    let mut specs = pmr_config::specs::build_all(&value, &shown, &ctx, strict, |w| {
        eprintln!("{} {w}", pmr_core::personality::warn())
    })
    .map_err(|e| anyhow!("{e}"))?;
    let names: HashSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    if let Some(only) = only {
        let wanted: Vec<&str> = only.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        for w in &wanted {
            if !names.contains(*w) {
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "{shown}: --only names no app \"{w}\" (apps: {})",
                    known.join(", ")
                );
            }
        }
        specs.retain(|s| wanted.contains(&s.name.as_str()));
    }
    if specs.is_empty() {
        bail!("{shown}: no app to start");
    }
    Ok(specs)
}

/// The sample written by `pmr init`.
pub const SAMPLE: &str = r#"// pmr ecosystem file (PM2-compatible): `pmr start ecosystem.config.js`.
// Every PM2 app option works here; run `pmr start --help` for the flags.
module.exports = {
  apps: [
    {
      name: 'api',
      script: './server.js',
      // 'max' or 0: one instance per CPU; cluster mode shares one port between them.
      instances: 'max',
      exec_mode: 'cluster',
      // Environment for every start; `pmr start ecosystem.config.js --env production`
      // adds env_production on top.
      env: { NODE_ENV: 'development', PORT: 3000 },
      env_production: { NODE_ENV: 'production' },
      // Stop: SIGINT, then SIGKILL after kill_timeout ms.
      kill_timeout: 1600,
      // Crash loops end in `errored` after max_restarts runs shorter than min_uptime.
      max_restarts: 16,
      min_uptime: '1s',
    },
    {
      name: 'worker',
      script: './worker.py',
      // Wait longer between restarts after each crash (x1.5, up to 15 s).
      exp_backoff_restart_delay: 100,
    },
  ],
};
"#;

/// `pmr init`: write the sample unless the file exists.
pub fn init(path: Option<&str>) -> Result<PathBuf> {
    let path = PathBuf::from(path.unwrap_or("ecosystem.config.js"));
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    std::fs::write(&path, SAMPLE).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
