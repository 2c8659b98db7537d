//! `npm start` / `yarn start` / `pnpm run dev` in cluster mode: find the Node entry point that
//! the package script runs, so the workers are that file and really share the port (DESIGN §3).
//!
//! PM2 runs the package manager itself: in cluster mode it loads `bash` or `npm` as JavaScript
//! and crash-loops, or one untracked grandchild serves everything. Here the script is resolved:
//! `package.json` `scripts.<name>` → its command (`VAR=value` prefixes become env) → `node
//! <file>` or `node_modules/.bin/<tool>` → the tool's JS file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The JS file the workers run.
    pub script: PathBuf,
    pub node_args: Vec<String>,
    pub args: Vec<String>,
    /// `VAR=value` prefixes of the command, and what npm would set (`npm_lifecycle_event`...).
    pub env: BTreeMap<String, String>,
    /// For messages: `npm start` → `next start -p 3000`.
    pub command: String,
}

pub const MANAGERS: [&str; 3] = ["npm", "yarn", "pnpm"];

/// Whether `program` (a name or a path) is a package manager we resolve.
pub fn is_package_manager(program: &str) -> bool {
    let base = Path::new(program)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(program);
    MANAGERS.contains(&base)
}

/// Which package script `manager args..` runs, and the arguments passed on to it.
fn script_name(manager: &str, args: &[String]) -> Result<(String, Vec<String>), String> {
    let mut it = args.iter().cloned();
    let first = it
        .next()
        .ok_or_else(|| format!("`{manager}` needs a script name (e.g. `{manager} start`)"))?;
    let name = match first.as_str() {
        "run" | "run-script" => it
            .next()
            .ok_or_else(|| format!("`{manager} {first}` needs a script name"))?,
        "start" | "test" | "restart" | "stop" => first,
        other if manager != "npm" => other.to_string(),
        other => return Err(format!("`npm {other}` does not run a package script")),
    };
    let rest: Vec<String> = it.filter(|a| a != "--").collect();
    Ok((name, rest))
}

/// Resolve `manager args..` run in `cwd`.
pub fn resolve(manager: &str, args: &[String], cwd: &Path) -> Result<Resolved, String> {
    let manager = Path::new(manager)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(manager);
    let (name, extra) = script_name(manager, args)?;
    let pkg_path = cwd.join("package.json");
    let text = std::fs::read_to_string(&pkg_path)
        .map_err(|e| format!("cannot read {}: {e}", pkg_path.display()))?;
    let pkg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", pkg_path.display()))?;
    let command = pkg["scripts"][&name]
        .as_str()
        .ok_or_else(|| format!("{} has no script \"{name}\"", pkg_path.display()))?
        .to_string();
    if command.contains(['&', '|', ';', '>', '<', '`', '$', '(']) {
        return Err(format!(
            "script \"{name}\" (`{command}`) uses shell features; point `script` at the server file instead"
        ));
    }
    let words = shell_words::split(&command)
        .map_err(|e| format!("script \"{name}\" (`{command}`): {e}"))?;
    let mut env = BTreeMap::new();
    env.insert("npm_lifecycle_event".into(), name.clone());
    env.insert("npm_lifecycle_script".into(), command.clone());
    if let Some(n) = pkg["name"].as_str() {
        env.insert("npm_package_name".into(), n.into());
    }
    if let Some(v) = pkg["version"].as_str() {
        env.insert("npm_package_version".into(), v.into());
    }
    let mut words = words.into_iter().peekable();
    while let Some(w) = words.peek() {
        match w.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                env.insert(k.into(), v.into());
                words.next();
            }
            _ => break,
        }
    }
    let tool = words
        .next()
        .ok_or_else(|| format!("script \"{name}\" is empty"))?;
    let rest: Vec<String> = words.collect();
    let (script, node_args, mut args) = if tool == "node" {
        let mut node_args = Vec::new();
        let mut it = rest.into_iter();
        let file = loop {
            match it.next() {
                Some(a) if a.starts_with('-') => node_args.push(a),
                Some(a) => break a,
                None => {
                    return Err(format!(
                        "script \"{name}\" (`{command}`) runs node without a file"
                    ))
                }
            }
        };
        let script = cwd.join(&file);
        let script = if script.is_file() {
            script
        } else {
            with_js_extension(&script)?
        };
        (script, node_args, it.collect::<Vec<_>>())
    } else {
        (
            bin_entry(cwd, &tool).map_err(|e| format!("script \"{name}\" (`{command}`): {e}"))?,
            vec![],
            rest,
        )
    };
    args.extend(extra);
    Ok(Resolved {
        script,
        node_args,
        args,
        env,
        command,
    })
}

/// `node server` runs `server.js`.
fn with_js_extension(p: &Path) -> Result<PathBuf, String> {
    for ext in ["js", "cjs", "mjs"] {
        let c = p.with_extension(ext);
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(format!("{} does not exist", p.display()))
}

/// The JS file behind `node_modules/.bin/<tool>`, looking in parent folders as npm does.
fn bin_entry(cwd: &Path, tool: &str) -> Result<PathBuf, String> {
    for dir in cwd.ancestors() {
        let bin = dir.join("node_modules/.bin").join(tool);
        if bin.exists() {
            let real =
                std::fs::canonicalize(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
            let head = std::fs::read(&real).map_err(|e| format!("{}: {e}", real.display()))?;
            let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let is_node = real
                .extension()
                .is_some_and(|e| e == "js" || e == "cjs" || e == "mjs")
                || (first_line.starts_with(b"#!")
                    && String::from_utf8_lossy(first_line).contains("node"));
            if !is_node {
                return Err(format!("{} is not a Node.js program", real.display()));
            }
            return Ok(real);
        }
    }
    Err(format!(
        "`{tool}` is not in node_modules/.bin (run `npm install`?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn script_names() {
        assert_eq!(script_name("npm", &args(&["start"])).unwrap().0, "start");
        assert_eq!(
            script_name("npm", &args(&["run", "dev", "--", "-p", "1"])).unwrap(),
            ("dev".into(), args(&["-p", "1"]))
        );
        assert_eq!(script_name("yarn", &args(&["dev"])).unwrap().0, "dev");
        assert!(script_name("npm", &args(&["install"])).is_err());
        assert!(script_name("npm", &[]).is_err());
    }

    #[test]
    fn resolves_the_fixture_packages() {
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let r = resolve("npm", &args(&["start"]), &fx.join("npmapp")).unwrap();
        assert_eq!(r.script, fx.join("npmapp/server.js"));
        assert_eq!(r.env["npm_lifecycle_event"], "start");
        let r = resolve(
            "/usr/bin/yarn",
            &args(&["start", "--extra"]),
            &fx.join("pkgapp"),
        )
        .unwrap();
        assert!(
            r.script.ends_with("node_modules/fakeserve/bin/serve.js"),
            "{r:?}"
        );
        assert_eq!(r.args, args(&["--mode", "cluster", "--extra"]));
        assert_eq!(r.env["GREETING"], "hello");
        let e = resolve("npm", &args(&["run", "shelly"]), &fx.join("pkgapp")).unwrap_err();
        assert!(e.contains("shell features"), "{e}");
        let e = resolve("npm", &args(&["run", "nope"]), &fx.join("pkgapp")).unwrap_err();
        assert!(e.contains("no script \"nope\""), "{e}");
        let e = resolve("npm", &args(&["run", "missing-tool"]), &fx.join("pkgapp")).unwrap_err();
        assert!(e.contains("not in node_modules/.bin"), "{e}");
    }
}
