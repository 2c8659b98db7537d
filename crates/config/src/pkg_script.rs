//! `npm start` / `yarn start` / `pnpm run dev` in cluster mode: find the Node entry point that
//! the package script runs, so the workers are that file and really share the port (README,
//! "Cluster mode").
//!
//! PM2 runs the package manager itself: in cluster mode it loads `bash` or `npm` as JavaScript
//! and crash-loops, or one untracked grandchild serves everything. Here the script is resolved
//! as a shell would run it, without a shell (`shell_lite`): `package.json` `scripts.<name>` →
//! its words, with `$VAR`/`${VAR:-default}` expanded from the app's environment → leading
//! `VAR=value` (and `cross-env`/`env` assignments) become env → `node [flags] <file>`, a local
//! `node_modules/.bin/<tool>` (followed to its JS file, recognised by extension or shebang),
//! or another package script (`npm run x`, `yarn x`), followed up to [`MAX_DEPTH`] levels.
//! `cd dir && <command>` changes the workers' cwd. Anything else is refused in one line.

use super::node_detect;
use super::shell_lite::{self, Token};
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
    /// Set by `cd dir && …`: the workers' working directory.
    pub cwd: Option<PathBuf>,
}

pub const MANAGERS: [&str; 3] = ["npm", "yarn", "pnpm"];

/// Scripts calling scripts deeper than this are taken for a cycle.
pub const MAX_DEPTH: usize = 8;

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

/// Resolve `manager args..` run in `cwd`; `env` is the environment the app will run with, which
/// `$VAR` in the script expands from.
pub fn resolve(
    manager: &str,
    args: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Resolved, String> {
    let manager = Path::new(manager)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(manager);
    let (name, extra) = script_name(manager, args)?;
    let mut r = Walk {
        chain: vec![],
        base: cwd.to_path_buf(),
    };
    r.script(&name, extra, cwd, env, &BTreeMap::new())
}

struct Walk {
    /// The scripts followed so far, for the cycle message.
    chain: Vec<String>,
    /// Where `cd` is relative to at the top.
    base: PathBuf,
}

fn read_package(cwd: &Path) -> Result<(PathBuf, serde_json::Value), String> {
    let pkg_path = cwd.join("package.json");
    let text = std::fs::read_to_string(&pkg_path)
        .map_err(|e| format!("cannot read {}: {e}", pkg_path.display()))?;
    let pkg = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", pkg_path.display()))?;
    Ok((pkg_path, pkg))
}

impl Walk {
    /// Package script `name` with `extra` arguments; `set` holds the assignments of the
    /// commands that called it (they are in its environment, as in a shell).
    fn script(
        &mut self,
        name: &str,
        extra: Vec<String>,
        cwd: &Path,
        app_env: &BTreeMap<String, String>,
        set: &BTreeMap<String, String>,
    ) -> Result<Resolved, String> {
        self.chain.push(name.to_string());
        if self.chain.len() > MAX_DEPTH {
            return Err(format!(
                "package scripts call each other more than {MAX_DEPTH} deep ({}): is there a cycle?",
                self.chain.join(" → ")
            ));
        }
        let (pkg_path, pkg) = read_package(cwd)?;
        let command = pkg["scripts"][name]
            .as_str()
            .ok_or_else(|| format!("{} has no script \"{name}\"", pkg_path.display()))?
            .to_string();
        let mut env = set.clone();
        env.insert("npm_lifecycle_event".into(), name.into());
        env.insert("npm_lifecycle_script".into(), command.clone());
        if let Some(n) = pkg["name"].as_str() {
            env.insert("npm_package_name".into(), n.into());
        }
        if let Some(v) = pkg["version"].as_str() {
            env.insert("npm_package_version".into(), v.into());
        }
        let ctx = |e: String| format!("script \"{name}\" (`{command}`): {e}");
        let mut xenv = app_env.clone();
        xenv.extend(env.clone());
        let tokens = shell_lite::lex(&command, &xenv)
            .map_err(|construct| refuse(name, &command, &construct))?;
        let segments: Vec<Vec<String>> = tokens
            .split(|t| *t == Token::And)
            .map(|s| {
                s.iter()
                    .filter_map(|t| match t {
                        Token::Word(w) => Some(w.clone()),
                        Token::And => None,
                    })
                    .collect()
            })
            .collect();
        let (cd, words) = match segments.as_slice() {
            [one] => (None, one.clone()),
            [first, second] if first.len() == 2 && first[0] == "cd" => {
                (Some(cwd.join(&first[1])), second.clone())
            }
            _ => {
                return Err(refuse(
                    name,
                    &command,
                    "`&&` chaining more than one program",
                ))
            }
        };
        let run_cwd = cd.clone().unwrap_or_else(|| cwd.to_path_buf());
        if !run_cwd.is_dir() {
            return Err(ctx(format!("{} is not a directory", run_cwd.display())));
        }
        let mut r = self
            .command(words, &run_cwd, app_env, env, &command)
            .map_err(|e| {
                if e.starts_with("script \"") {
                    e
                } else {
                    ctx(e)
                }
            })?;
        r.args.extend(extra);
        if r.cwd.is_none() {
            r.cwd = cd.filter(|d| d != &self.base);
        }
        Ok(r)
    }

    /// One simple command: `[VAR=v..] [cross-env VAR=v..] program args..`.
    fn command(
        &mut self,
        words: Vec<String>,
        cwd: &Path,
        app_env: &BTreeMap<String, String>,
        mut env: BTreeMap<String, String>,
        command: &str,
    ) -> Result<Resolved, String> {
        let mut it = words.into_iter().peekable();
        loop {
            let Some(w) = it.peek().cloned() else {
                return Err("runs no program".into());
            };
            if let Some((k, v)) = assignment(&w) {
                env.insert(k.into(), v.into());
            } else if w == "cross-env-shell" {
                it.next();
                while let Some((k, v)) = it.peek().and_then(|w| assignment(w)) {
                    env.insert(k.into(), v.into());
                    it.next();
                }
                // The rest is a shell command line, expanded with the new variables.
                let line: Vec<String> = it.collect();
                let mut xenv = app_env.clone();
                xenv.extend(env.clone());
                let words = shell_lite::lex(&line.join(" "), &xenv)
                    .map_err(|c| format!("uses shell features ({c}) in cross-env-shell"))?
                    .into_iter()
                    .map(|t| match t {
                        Token::Word(w) => Ok(w),
                        Token::And => {
                            Err("uses shell features (`&&`) in cross-env-shell".to_string())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return self.command(words, cwd, app_env, env, command);
            } else if w != "exec" && w != "cross-env" && w != "env" {
                break;
            }
            it.next();
        }
        let tool = it.next().unwrap_or_default();
        let rest: Vec<String> = it.collect();
        let base = Path::new(&tool)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(&tool)
            .to_string();
        let done = |script: PathBuf, node_args: Vec<String>, args: Vec<String>, env| Resolved {
            script,
            node_args,
            args,
            env,
            command: command.to_string(),
            cwd: None,
        };
        if tool.contains('/') {
            // `./bin/www`, `dist/cli`: a file of the package, Node by extension or shebang.
            let p = cwd.join(tool.trim_start_matches("./"));
            let node_args = node_detect::node_args_of(&p).ok_or_else(|| {
                if p.is_file() {
                    not_node(&p)
                } else {
                    format!("{} does not exist", p.display())
                }
            })?;
            return Ok(done(p, node_args, rest, env));
        }
        if node_detect::is_node_program(&tool) {
            let (node_args, file, args) = node_command(rest)?;
            return Ok(done(node_file(cwd, &file)?, node_args, args, env));
        }
        if base == "npx"
            || (MANAGERS.contains(&base.as_str()) && rest.first().is_some_and(|a| a == "exec"))
        {
            let mut rest = rest.into_iter().skip_while(|a| a == "exec").peekable();
            while rest.peek().is_some_and(|a| a.starts_with('-')) {
                rest.next();
            }
            let tool = rest.next().ok_or("`npx` without a program")?;
            let (script, node_args) = bin_entry(cwd, &tool)?;
            return Ok(done(script, node_args, rest.collect(), env));
        }
        if MANAGERS.contains(&base.as_str()) {
            let (name, extra) = script_name(&base, &rest)?;
            // `yarn next start` / `pnpm next start` run a bin when there is no such script.
            let is_script = read_package(cwd)
                .map(|(_, p)| p["scripts"][&name].is_string())
                .unwrap_or(false);
            if base != "npm" && !is_script && rest[0] != "run" {
                let (script, node_args) = bin_entry(cwd, &name)?;
                return Ok(done(script, node_args, extra, env));
            }
            let mut r = self.script(&name, extra, cwd, app_env, &env)?;
            let mut merged = env;
            merged.extend(std::mem::take(&mut r.env));
            r.env = merged;
            return Ok(r);
        }
        let (script, node_args) = bin_entry(cwd, &tool)?;
        Ok(done(script, node_args, rest, env))
    }
}

/// `NAME=value`, as a shell sees an assignment.
fn assignment(w: &str) -> Option<(&str, &str)> {
    let (k, v) = w.split_once('=')?;
    (!k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some((k, v))
}

/// Node options that take the next word as their value.
const NODE_VALUE_FLAGS: [&str; 12] = [
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--env-file",
    "--title",
    "--inspect-port",
    "--input-type",
    "--openssl-config",
];

/// `node [flags] file [args]` → (flags, file, args).
fn node_command(rest: Vec<String>) -> Result<(Vec<String>, String, Vec<String>), String> {
    let mut node_args = Vec::new();
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => break,
            "-e" | "--eval" | "-p" | "--print" | "-i" | "--interactive" | "-c" | "--check"
            | "--test" | "--run" | "-" => {
                return Err(format!("runs `node {a}`, which starts no server file"))
            }
            f if NODE_VALUE_FLAGS.contains(&f) => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("`node {f}` needs a value"))?;
                node_args.push(a);
                node_args.push(v);
            }
            f if f.starts_with('-') => node_args.push(a),
            _ => return Ok((node_args, a, it.collect())),
        }
    }
    match it.next() {
        Some(f) => Ok((node_args, f, it.collect())),
        None => Err("runs node without a file".into()),
    }
}

/// The file `node <file>` loads: as written, with a JS extension added, or a folder's `main`.
fn node_file(cwd: &Path, file: &str) -> Result<PathBuf, String> {
    let p = cwd.join(file.trim_start_matches("./"));
    if p.is_file() {
        return Ok(p);
    }
    if p.is_dir() {
        let main = std::fs::read_to_string(p.join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["main"].as_str().map(str::to_string))
            .unwrap_or_else(|| "index.js".into());
        return node_file(&p, &main);
    }
    with_js_extension(&p)
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

/// The JS file behind `node_modules/.bin/<tool>` and its shebang's node flags, looking in
/// parent folders as npm does.
fn bin_entry(cwd: &Path, tool: &str) -> Result<(PathBuf, Vec<String>), String> {
    for dir in cwd.ancestors() {
        let bin = dir.join("node_modules/.bin").join(tool);
        let found = if bin.exists() {
            node_detect::bin_target(&bin).ok_or_else(|| not_node(&bin))?
        } else if let Some(f) = node_detect::package_bin(&dir.join("node_modules"), tool) {
            f
        } else {
            continue;
        };
        let node_args = node_detect::node_args_of(&found).ok_or_else(|| not_node(&found))?;
        return Ok((found, node_args));
    }
    Err(format!(
        "`{tool}` is not in node_modules/.bin (run `npm install`?)"
    ))
}

/// Why `file` cannot be a cluster worker.
pub fn not_node(file: &Path) -> String {
    let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let why = match node_detect::shebang(&real) {
        Some(s) => format!("its first line is `{}`", s.line),
        None => "it has no `#!` line naming node".into(),
    };
    format!(
        "{} is not a Node.js program ({why}, and no .js/.cjs/.mjs extension), so it cannot be a cluster worker",
        real.display()
    )
}

/// The one-line refusal: what needs a shell, and the form that works instead.
fn refuse(name: &str, command: &str, construct: &str) -> String {
    format!(
        "script \"{name}\" (`{command}`) uses shell features ({construct}) that pmr does not run without a shell; use the `script`/`args` form instead, e.g. {}",
        suggestion(command)
    )
}

/// Best effort: the server among the programs of the command line, as `script`/`args` (the
/// first one that is not a helper such as `cd`, `echo`, `tee` or a build step).
fn suggestion(command: &str) -> String {
    let last = command
        .split(['|', ';', '&', '>', '<', '(', ')', '`'])
        .map(str::trim)
        .find(|s| {
            let first = s.split_whitespace().find(|w| assignment(w).is_none());
            !s.contains("build")
                && first.is_some_and(|w| {
                    !["cd", "echo", "tee", "cat", "true", "exit", "$", "wait"].contains(&w)
                        && !MANAGERS.contains(&w)
                })
        })
        .unwrap_or("");
    let words = shell_words::split(last).unwrap_or_default();
    let mut it = words
        .iter()
        .skip_while(|w| assignment(w).is_some() || *w == "cross-env" || *w == "exec")
        .cloned();
    match it.next() {
        Some(n) if node_detect::is_node_program(&n) => match node_command(it.collect()) {
            Ok((_, file, args)) => format!("script: '{file}', args: '{}'", args.join(" ")),
            Err(_) => "script: 'server.js', args: '…'".into(),
        },
        Some(tool) if !MANAGERS.contains(&tool.as_str()) => format!(
            "script: 'node_modules/.bin/{tool}', args: '{}'",
            it.collect::<Vec<_>>().join(" ")
        ),
        _ => "script: 'server.js', args: '…'".into(),
    }
}

#[cfg(test)]
#[path = "pkg_script_tests.rs"]
mod tests;
