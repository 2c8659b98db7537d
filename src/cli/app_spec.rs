//! App options given on the command line (or made up by a command) → a complete [`AppSpec`],
//! with the rules and errors of `pmr start` for a new app.

use super::flags::AppArgs;
use anyhow::{anyhow, Result};
use pmr_config::app::{build_spec, BuildCtx};
use pmr_config::options::normalize_app;
use pmr_core::spec::AppSpec;
use serde_json::{Map, Value};

/// PM2's command-line flags as raw app options (see `flags.rs`).
pub fn flags_to_options(f: &AppArgs) -> Map<String, Value> {
    f.options.clone()
}

/// Raw options → a complete spec, with errors that name the app and the option.
pub fn spec_from_options(raw: &Map<String, Value>, ctx: &BuildCtx) -> Result<AppSpec> {
    let opts = normalize_app(raw).map_err(|e| anyhow!("{e}"))?;
    build_spec(&opts, ctx).map_err(|e| anyhow!("{e}"))
}
