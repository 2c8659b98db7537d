//! PM2 modules (`pmr install`): which modules a home has (`conf.json`'s `module-db-v2`, PM2's
//! list), where each one's package lies, what makes a package a module pmr can run, and its
//! apps as specs (PM2's `StartModule`: the package's `apps`/`pm2`, else its first `bin`, else
//! its `main`; named after the package, `cwd` its folder, its settings as environment).
//! Shared by the CLI (`install`, `set`) and the daemon (which starts the modules when it
//! starts); blocking (reads files).

use crate::app::{build_spec, BuildCtx};
use crate::load::apps_of;
use crate::options::normalize_app_lenient;
use pmr_core::spec::AppSpec;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// PM2's key in `module_conf.json` listing the installed npm modules (`cst.MODULE_CONF_PREFIX`).
pub const MODULE_DB: &str = "module-db-v2";

/// The installed modules' names, as `conf.json` lists them.
pub fn installed(conf: &Map<String, Value>) -> Vec<String> {
    conf.get(MODULE_DB)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A package name npm accepts as a folder name under `modules/` (`name` or `@scope/name`),
/// so it can never climb out of that folder.
pub fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    };
    match name.strip_prefix('@') {
        Some(scoped) => matches!(scoped.split_once('/'), Some((s, n)) if part(s) && part(n)),
        None => part(name),
    }
}

/// The npm prefix a module is installed in: `<home>/modules/<name>`, as PM2.
pub fn prefix(modules_dir: &Path, name: &str) -> PathBuf {
    modules_dir.join(name)
}

/// The module's package inside its prefix (`node_modules/<name>`), its cwd when it runs.
pub fn package_dir(prefix: &Path, name: &str) -> PathBuf {
    prefix.join("node_modules").join(name)
}

/// `package.json` of `dir` as an object.
pub fn read_package(dir: &Path) -> Result<Map<String, Value>, String> {
    let path = dir.join("package.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{}: not a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Why the package cannot run as a module under pmr, if it cannot: nothing to start. (A module
/// that drives PM2 with `require('pm2')`, as pm2-logrotate does, talks to pmr's daemon, which
/// speaks PM2's protocol.)
pub fn unfit(pkg: &Map<String, Value>) -> Option<String> {
    if apps_value(pkg).is_none() {
        return Some(
            "it is not a PM2 module: its package.json has no `apps`, `pm2`, `bin` or `main` to \
             start"
                .into(),
        );
    }
    None
}

/// What PM2 starts of a package: its `apps` (or `pm2`) section, else an app whose script is
/// its first `bin` entry, else its `main`.
fn apps_value(pkg: &Map<String, Value>) -> Option<Value> {
    if let Some(v) = pkg.get("apps").or_else(|| pkg.get("pm2")) {
        return Some(serde_json::json!({ "apps": v }));
    }
    let script = match pkg.get("bin") {
        Some(Value::Object(b)) => b.values().next().and_then(Value::as_str),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
    .or_else(|| pkg.get("main").and_then(Value::as_str))?;
    Some(serde_json::json!({ "apps": { "script": script } }))
}

/// The specs of module `name` whose package lies in `dir`: every app named after the module
/// (PM2's `force_name`), run in `dir`, marked `pmx_module`. `ctx.module_conf` supplies its
/// settings as environment. Unknown options in the package go to `warn`, as in a file.
pub fn specs(
    dir: &Path,
    name: &str,
    ctx: &BuildCtx,
    mut warn: impl FnMut(String),
) -> Result<Vec<AppSpec>, String> {
    let pkg = read_package(dir)?;
    if let Some(why) = unfit(&pkg) {
        return Err(format!("cannot run module {name}: {why}"));
    }
    let shown = dir.join("package.json").display().to_string();
    let value = apps_value(&pkg).unwrap_or_default();
    let apps = apps_of(&value).map_err(|e| format!("{shown}: {e}"))?;
    let ctx = BuildCtx {
        base_dir: dir.to_path_buf(),
        from_file: true,
        ..ctx.clone()
    };
    let mut specs = Vec::new();
    for (i, mut raw) in apps.into_iter().enumerate() {
        raw.insert("name".into(), Value::String(name.into()));
        raw.insert(
            "cwd".into(),
            Value::String(dir.to_string_lossy().into_owned()),
        );
        let opts = normalize_app_lenient(&raw)
            .map(|(opts, unknown)| {
                for u in unknown {
                    warn(format!("{shown}: {}, ignored", u.with_index(i)));
                }
                opts
            })
            .map_err(|e| format!("{shown}: {}", e.with_index(i)))?;
        let mut spec = build_spec(&opts, &ctx).map_err(|e| format!("{shown}: {e}"))?;
        spec.pmx_module = true;
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_stay_inside_the_modules_folder() {
        for ok in ["pm2-logrotate", "@scope/mod", "a.b_c~d"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "@scope", "@/x", "@s/../x", ".hidden", "a b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn what_pm2_starts_of_a_package() {
        let apps = json!({"apps": [{"name": "x", "script": "app.js"}]});
        assert_eq!(
            apps_value(&obj(json!({"apps": apps["apps"], "main": "m.js"}))),
            Some(apps)
        );
        assert_eq!(
            apps_value(&obj(
                json!({"bin": {"a": "bin/a.js", "b": "b.js"}, "main": "m.js"})
            )),
            Some(json!({"apps": {"script": "bin/a.js"}}))
        );
        assert_eq!(
            apps_value(&obj(json!({"main": "m.js"}))),
            Some(json!({"apps": {"script": "m.js"}}))
        );
        assert!(unfit(&obj(json!({"name": "lib"}))).is_some());
        assert!(unfit(&obj(
            json!({"main": "a.js", "dependencies": {"pm2": "latest"}})
        ))
        .is_none());
        assert!(unfit(&obj(
            json!({"main": "a.js", "dependencies": {"pmx": "latest"}})
        ))
        .is_none());
    }
}
