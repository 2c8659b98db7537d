//! An ecosystem value (one app object, a list, or `{"apps": [...]}`) → validated specs, all or
//! none: the one path shared by config files on the command line (`cli/ecosystem.rs`) and the
//! HTTP API's `POST /api/apps`, so both give the same errors.

use super::app::{build_spec, BuildCtx};
use super::load::apps_of;
use super::options::{normalize_app, normalize_app_lenient};
use pmr_core::spec::AppSpec;
use std::collections::HashSet;
use std::path::Path;

/// `shown` names the source in errors (a file name, `<stdin>`, `request body`). Unknown options
/// go to `warn` (PM2 ignores them), or with `strict` are errors.
pub fn build_all(
    value: &serde_json::Value,
    shown: &str,
    ctx: &BuildCtx,
    strict: bool,
    mut warn: impl FnMut(String),
) -> Result<Vec<AppSpec>, String> {
    let apps = apps_of(value).map_err(|e| e.with_file(Path::new(shown)).to_string())?;
    let mut specs = Vec::new();
    let mut names = HashSet::new();
    for (i, raw) in apps.iter().enumerate() {
        let opts = if strict {
            normalize_app(raw)
        } else {
            normalize_app_lenient(raw).map(|(opts, unknown)| {
                for u in unknown {
                    warn(format!("{shown}: {}, ignored", u.with_index(i)));
                }
                opts
            })
        }
        .map_err(|e| format!("{shown}: {}", e.with_index(i)))?;
        let spec =
            build_spec(&opts, ctx).map_err(|e| format!("{shown}: {}: {e}", app_label(raw, i)))?;
        if !names.insert(spec.name.clone()) {
            return Err(format!(
                "{shown}: two apps are named \"{}\"; names must be unique in a file",
                spec.name
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

pub fn app_label(raw: &serde_json::Map<String, serde_json::Value>, i: usize) -> String {
    match raw.get("name").and_then(|v| v.as_str()) {
        Some(n) => format!("app \"{n}\""),
        None => format!("app at index {i}"),
    }
}
