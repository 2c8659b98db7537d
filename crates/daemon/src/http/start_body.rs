//! `POST /api/apps`: the body (one app object, or `{"apps": [...]}`) → specs through the same
//! validation as an ecosystem file (`config::specs`). Strict: with no terminal to print a
//! warning on, an unknown option is an error (with its did-you-mean). The daemon has no
//! working directory of the caller's: `cwd` must be absolute, and relative paths resolve
//! against it (`/` without one). Blocking (the script is looked at): run on the blocking pool.

use pmr_config::app::BuildCtx;
use pmr_core::spec::AppSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SHOWN: &str = "request body";

pub fn specs(value: &Value) -> Result<Vec<AppSpec>, String> {
    let apps: Vec<&Value> = match value {
        Value::Object(m) => match m.get("apps") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(other) => vec![other],
            None => vec![value],
        },
        Value::Array(a) => a.iter().collect(),
        _ => {
            return Err(format!(
                "{SHOWN}: an app object or {{\"apps\": [...]}} is expected"
            ))
        }
    };
    if apps.is_empty() {
        return Err(format!("{SHOWN}: no app to start"));
    }
    for (i, app) in apps.iter().enumerate() {
        match app.get("cwd") {
            None | Some(Value::Null) => {}
            Some(Value::String(c)) if Path::new(c).is_absolute() => {}
            Some(other) => {
                return Err(format!(
                    "{SHOWN}: app at index {i}: cwd must be an absolute path; got {other}"
                ))
            }
        }
    }
    // With every cwd absolute, the base only serves apps without one.
    let ctx = BuildCtx {
        base_dir: PathBuf::from("/"),
        from_file: true,
        ..BuildCtx::from_process(None)
    };
    pmr_config::specs::build_all(value, SHOWN, &ctx, true, |_| {})
}
