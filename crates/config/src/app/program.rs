//! The program stage: what runs (a file, a program on PATH, a command string, or the Node file a
//! package script runs), with which interpreter and arguments.

use super::interpreter::{self, which};
use super::paths::abs;
use super::BuildCtx;
use crate::raw_app::ProgramOpts;
use crate::{node_detect, pkg_script};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) struct Program {
    /// The file to run, or a command string for the shell.
    pub script: String,
    pub args: Vec<String>,
    /// Checked to be installed.
    pub interpreter: Option<String>,
    pub interpreter_args: Vec<String>,
    /// The given `cwd`, or the package's directory when a package script runs in it.
    pub cwd: PathBuf,
    /// The app's name unless one is given.
    pub default_name: String,
    /// What a package script needs in its environment (`node_modules/.bin` on `PATH`, ...).
    pub env: BTreeMap<String, String>,
}

/// What the program stage needs to know of the scaling options.
#[derive(Clone, Copy)]
pub(super) struct Cluster {
    pub wanted: bool,
    /// `listen` was given: a package bin may then be clustered by the daemon's sockets.
    pub listen: bool,
}

/// `script` and `opts` (whose `script` the caller took), from `cwd`; `vars`: the app's
/// environment so far, which a package script's `$VAR`s expand from.
pub(super) fn resolve(
    script: String,
    opts: ProgramOpts,
    cwd: PathBuf,
    cluster: Cluster,
    vars: &BTreeMap<String, String>,
    ctx: &BuildCtx,
) -> Result<Program, String> {
    let mut p = Program {
        script,
        args: opts.args.unwrap_or_default(),
        interpreter: opts.interpreter,
        interpreter_args: opts.interpreter_args.unwrap_or_default(),
        cwd,
        default_name: String::new(),
        env: BTreeMap::new(),
    };
    let path_var = ctx.path_var();
    let local = abs(&p.cwd, &p.script);
    let given_interpreter = p.interpreter.is_some();
    let words = package_manager_words(&p.script, &local, &p.args);
    match words {
        Some(words) if cluster.wanted && !given_interpreter => {
            package_script(&mut p, &words, vars, ctx)?;
        }
        _ if p.script.contains(' ') && !local.exists() && !given_interpreter => {
            shell_command(&mut p, path_var)?;
        }
        _ => file(&mut p, local, cluster, path_var)?,
    }
    p.interpreter = p
        .interpreter
        .map(|i| interpreter::available(i, path_var))
        .transpose()?;
    Ok(p)
}

/// `npm start`, `yarn start`... (one string, or the program and `args`): the words of a
/// package manager's command line, when no file of that name exists.
fn package_manager_words(script: &str, local: &Path, args: &[String]) -> Option<Vec<String>> {
    if script.contains(' ') && !local.exists() {
        shell_words::split(script)
            .ok()
            .filter(|w| w.first().is_some_and(|p| pkg_script::is_package_manager(p)))
            .map(|mut w| {
                w.extend(args.iter().cloned());
                w
            })
    } else if pkg_script::is_package_manager(script) && !local.is_file() {
        Some(
            std::iter::once(script.to_string())
                .chain(args.iter().cloned())
                .collect(),
        )
    } else {
        None
    }
}

/// A package script in cluster mode: run the Node file it runs, so the instances share ports.
fn package_script(
    p: &mut Program,
    words: &[String],
    vars: &BTreeMap<String, String>,
    ctx: &BuildCtx,
) -> Result<(), String> {
    let r = pkg_script::resolve(&words[0], &words[1..], &p.cwd, vars)
        .map_err(|e| format!("cannot run `{}` in cluster mode: {e}", words.join(" ")))?;
    p.args = r.args;
    p.interpreter_args.splice(0..0, r.node_args);
    p.env = r.env;
    let bin = p.cwd.join("node_modules/.bin");
    let path = ctx.env.get("PATH").cloned().unwrap_or_default();
    p.env
        .insert("PATH".into(), format!("{}:{path}", bin.display()));
    if let Some(d) = r.cwd {
        p.cwd = d;
    }
    p.default_name = if p.script.contains(' ') {
        p.script.clone()
    } else {
        Path::new(&p.script)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(p.script.clone())
    };
    p.script = r.script.to_string_lossy().into_owned();
    p.interpreter = Some("node".to_string());
    Ok(())
}

/// A script string with spaces that names no file runs through bash, as in PM2.
fn shell_command(p: &mut Program, path_var: &str) -> Result<(), String> {
    let shell = which("bash", path_var)
        .or_else(|| which("sh", path_var))
        .ok_or("neither bash nor sh is available in PATH")?;
    p.interpreter_args.insert(0, "-c".into());
    p.interpreter = Some(
        shell
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    );
    p.default_name = p.script.clone();
    Ok(())
}

/// A file (relative to `cwd`, or a program on PATH), run by the given interpreter, else the one
/// its extension or content names.
fn file(p: &mut Program, local: PathBuf, cluster: Cluster, path_var: &str) -> Result<(), String> {
    let script = &p.script;
    let mut resolved = if local.is_file() {
        local
    } else if !script.contains('/') {
        which(script, path_var).ok_or_else(|| format!("Script not found: {}", local.display()))?
    } else {
        return Err(format!("Script not found: {}", local.display()));
    };
    let stem = Path::new(script)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| script.clone());
    let interp = match p.interpreter.take() {
        Some(i) if i == "none" => None,
        Some(i) => Some(i),
        None => match resolved
            .extension()
            .and_then(|e| e.to_str())
            .and_then(interpreter::for_extension)
        {
            Some(i) => Some(i.to_string()),
            None => {
                let found = interpreter::by_content(&resolved, path_var)?;
                // The shebang's flags (`env -S node --flags`) come before the user's.
                p.interpreter_args.splice(0..0, found.node_args);
                if let Some(t) = found.target {
                    resolved = t;
                }
                found.interpreter
            }
        },
    };
    if cluster.wanted
        && node_detect::is_in_bin_dir(&resolved)
        && !interp.as_deref().is_some_and(node_detect::is_node_program)
        && !cluster.listen
    {
        // A package bin asked to be clustered is a framework CLI: running it as N fork
        // instances (PM2's fallback) only makes them fight for the port.
        return Err(format!(
            "cannot run {} in cluster mode: {}",
            resolved.display(),
            pkg_script::not_node(&resolved)
        ));
    }
    p.script = resolved.to_string_lossy().into_owned();
    p.interpreter = interp;
    p.default_name = stem;
    Ok(())
}
