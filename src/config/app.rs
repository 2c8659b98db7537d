//! Canonical app options (see `options.rs`) → a complete [`AppSpec`]: defaults, paths,
//! interpreter, instances, environment. Everything that depends on the user's machine (files,
//! PATH, CPUs) is resolved here, in the CLI, so the daemon gets nothing to guess.

use super::pkg_script;
use crate::spec::{AppSpec, ExecMode};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the CLI knows when it builds specs.
#[derive(Debug, Clone)]
pub struct BuildCtx {
    /// Relative `cwd`, script and log paths resolve against this (the CLI's cwd, or the
    /// config file's directory).
    pub base_dir: PathBuf,
    /// The CLI's environment, which apps inherit (PM2 does the same).
    pub env: BTreeMap<String, String>,
    /// `--env <name>`: selects `env_<name>`.
    pub env_name: Option<String>,
    pub cpus: u32,
}

impl BuildCtx {
    pub fn from_process(env_name: Option<String>) -> BuildCtx {
        BuildCtx {
            base_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env: std::env::vars().collect(),
            env_name,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }

    fn path_var(&self) -> &str {
        self.env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin")
    }
}

/// Interpreter chosen by the script's extension (PM2's `interpreter.json`).
fn interpreter_for_extension(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "js" | "cjs" | "mjs" => "node",
        "sh" => "bash",
        "py" => "python",
        "rb" => "ruby",
        "php" => "php",
        "pl" => "perl",
        "coffee" => "coffee",
        "ls" => "lsc",
        "ts" | "tsx" => "bun",
        _ => return None,
    })
}

/// `name` on PATH (or as a path), like `which`.
pub fn which(name: &str, path_var: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn take_str(m: &mut Map<String, Value>, k: &str) -> Option<String> {
    match m.remove(k) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}
fn take_bool(m: &mut Map<String, Value>, k: &str, default: bool) -> bool {
    match m.remove(k) {
        Some(Value::Bool(b)) => b,
        _ => default,
    }
}
fn take_u64(m: &mut Map<String, Value>, k: &str) -> Option<u64> {
    m.remove(k).and_then(|v| v.as_u64())
}
fn take_strings(m: &mut Map<String, Value>, k: &str) -> Vec<String> {
    match m.remove(k) {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => shell_split(&s),
        _ => vec![],
    }
}

fn shell_split(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn env_object(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(o)) = v {
        for (k, v) in o {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k.clone(), s);
        }
    }
    out
}

fn abs(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    normalize(&joined)
}

/// Lexical `.`/`..` clean-up (no symlink resolution, so paths stay as the user wrote them).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Build the spec of one app. `opts` uses canonical option names and types.
pub fn build_spec(opts: &Map<String, Value>, ctx: &BuildCtx) -> Result<AppSpec, String> {
    let mut m = opts.clone();
    let script = take_str(&mut m, "script").ok_or("missing \"script\"")?;
    let cwd = match take_str(&mut m, "cwd") {
        Some(c) => abs(&ctx.base_dir, &c),
        None => ctx.base_dir.clone(),
    };
    if !cwd.is_dir() {
        return Err(format!("cwd {} is not a directory", cwd.display()));
    }
    let path_var = ctx.path_var().to_string();
    let given_interpreter = take_str(&mut m, "interpreter");
    let mut interpreter_args = take_strings(&mut m, "interpreter_args");

    let mut args = take_strings(&mut m, "args");
    let wants_cluster = match m.get("exec_mode").and_then(Value::as_str) {
        Some(mode) => mode.starts_with("cluster"),
        None => matches!(m.get("instances").and_then(Value::as_i64), Some(n) if n >= -1),
    };
    let local = abs(&cwd, &script);
    // `npm start`, `yarn start`... in cluster mode: run the Node file the package script runs.
    let pm_words: Option<Vec<String>> = if script.contains(' ') && !local.exists() {
        shell_words::split(&script)
            .ok()
            .filter(|w| w.first().is_some_and(|p| pkg_script::is_package_manager(p)))
            .map(|mut w| {
                w.extend(args.iter().cloned());
                w
            })
    } else if pkg_script::is_package_manager(&script) && !local.is_file() {
        Some(
            std::iter::once(script.clone())
                .chain(args.iter().cloned())
                .collect(),
        )
    } else {
        None
    };
    let mut pm_env = BTreeMap::new();
    let resolved_pm = match pm_words {
        Some(words) if wants_cluster && given_interpreter.is_none() => {
            let r = pkg_script::resolve(&words[0], &words[1..], &cwd)
                .map_err(|e| format!("cannot run `{}` in cluster mode: {e}", words.join(" ")))?;
            args = r.args.clone();
            interpreter_args.splice(0..0, r.node_args.iter().cloned());
            pm_env = r.env.clone();
            let bin = cwd.join("node_modules/.bin");
            let path = ctx.env.get("PATH").cloned().unwrap_or_default();
            pm_env.insert("PATH".into(), format!("{}:{path}", bin.display()));
            Some(r)
        }
        _ => None,
    };

    // A script string with spaces that names no file runs through bash, as in PM2.
    let (script_path, mut interpreter, default_name) = if let Some(r) = &resolved_pm {
        let name = if script.contains(' ') {
            script.clone()
        } else {
            Path::new(&script)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or(script.clone())
        };
        (
            r.script.to_string_lossy().into_owned(),
            Some("node".to_string()),
            name,
        )
    } else if script.contains(' ') && !local.exists() && given_interpreter.is_none() {
        let shell = which("bash", &path_var)
            .or_else(|| which("sh", &path_var))
            .ok_or("neither bash nor sh is available in PATH")?;
        interpreter_args.insert(0, "-c".into());
        let shell = shell
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        (script.clone(), Some(shell), script.clone())
    } else {
        let resolved = if local.is_file() {
            local
        } else if !script.contains('/') {
            which(&script, &path_var)
                .ok_or_else(|| format!("Script not found: {}", local.display()))?
        } else {
            return Err(format!("Script not found: {}", local.display()));
        };
        let stem = Path::new(&script)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| script.clone());
        let interp = match given_interpreter.as_deref() {
            Some("none") => None,
            Some(i) => Some(i.to_string()),
            None => match resolved
                .extension()
                .and_then(|e| e.to_str())
                .and_then(interpreter_for_extension)
            {
                Some(i) => Some(i.to_string()),
                // pmr decision: an executable without a known extension (a binary, or a
                // script with a shebang) runs directly; other files go to node, as in PM2.
                None if is_executable(&resolved) => None,
                None => Some("node".to_string()),
            },
        };
        (resolved.to_string_lossy().into_owned(), interp, stem)
    };
    // Checked here so a missing interpreter is an error before anything starts; the name is
    // kept as written (`node`, as PM2 shows it) and found again on the child's PATH at spawn.
    if let Some(i) = interpreter.take() {
        let name = if which(&i, &path_var).is_some() {
            i
        } else if i == "python" && which("python3", &path_var).is_some() {
            // PM2 falls back from python to python3.
            "python3".to_string()
        } else {
            return Err(format!("Interpreter {i} is not available in PATH"));
        };
        interpreter = Some(name);
    }

    let mut name = take_str(&mut m, "name").unwrap_or(default_name);
    if take_bool(&mut m, "append_env_to_name", false) {
        if let Some(e) = &ctx.env_name {
            name = format!("{name}-{e}");
        }
    }
    let namespace = take_str(&mut m, "namespace").unwrap_or_else(|| "default".into());

    let instances_given = m.get("instances").and_then(Value::as_i64);
    m.remove("instances");
    let instances = match instances_given {
        None => 1,
        Some(0) => ctx.cpus,
        Some(n) if n < 0 => (ctx.cpus as i64 + n).max(1) as u32,
        Some(n) => n as u32,
    };
    let is_node_interp = interpreter
        .as_deref()
        .map(|i| {
            matches!(
                Path::new(i).file_name().and_then(|f| f.to_str()),
                Some("node" | "bun")
            )
        })
        .unwrap_or(false);
    let exec_mode = match take_str(&mut m, "exec_mode").as_deref() {
        Some("cluster") | Some("cluster_mode") => ExecMode::Cluster,
        Some(_) => ExecMode::Fork,
        // PM2 wants cluster when instances is >= 1, 0 or -1 and the script runs on node.
        None if is_node_interp && matches!(instances_given, Some(n) if n >= -1) => {
            ExecMode::Cluster
        }
        None => ExecMode::Fork,
    };
    if let Some(Value::Array(addrs)) = m.get("listen") {
        for a in addrs.iter().filter_map(Value::as_str) {
            crate::daemon::cluster::Query::from_address(a)
                .map_err(|e| format!("\"listen\": {e}"))?;
        }
    }
    let exec_mode = if exec_mode == ExecMode::Cluster
        && !is_node_interp
        && !m.contains_key("listen")
    {
        // As PM2 does: N fork instances, which will not share a port unless the app does.
        eprintln!(
            "[PMR][WARN] cluster mode needs a Node.js script or `listen` addresses; {script_path} runs as {instances} fork instance(s)"
        );
        ExecMode::Fork
    } else {
        exec_mode
    };

    // Environment: the CLI's (minus filter_env), then `env`, then `env_<name>`.
    let mut env = ctx.env.clone();
    match m.remove("filter_env") {
        Some(Value::Bool(true)) => env.clear(),
        Some(Value::Array(list)) => {
            let pats: Vec<String> = list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            env.retain(|k, _| !pats.iter().any(|p| k.contains(p.as_str())));
        }
        _ => {}
    }
    env.extend(env_object(m.get("env")));
    if let Some(e) = &ctx.env_name {
        env.extend(env_object(m.get(&format!("env_{e}"))));
    }
    env.extend(pm_env);
    if let Some(port) = m.remove("port").and_then(|v| v.as_u64()) {
        env.insert("PORT".into(), port.to_string());
    }

    let path_opt = |m: &mut Map<String, Value>, k: &str| -> Option<String> {
        take_str(m, k).map(|p| {
            if crate::paths::is_null_device(&p) {
                p
            } else {
                abs(&cwd, &p).to_string_lossy().into_owned()
            }
        })
    };
    let out_file = path_opt(&mut m, "out_file");
    let error_file = path_opt(&mut m, "error_file");
    let log_file = match m.remove("log_file") {
        Some(Value::Bool(true)) => Some(String::new()),
        Some(Value::String(s)) => Some(abs(&cwd, &s).to_string_lossy().into_owned()),
        _ => None,
    };
    let pid_file = path_opt(&mut m, "pid_file");
    let merge_default = exec_mode == ExecMode::Fork && instances_given.is_none();
    let time = take_bool(&mut m, "time", false);
    let mut log_date_format = take_str(&mut m, "log_date_format");
    if time {
        log_date_format = Some("YYYY-MM-DDTHH:mm:ss".into());
    }

    let stop_exit_codes = match m.remove("stop_exit_codes") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_i64())
            .map(|v| v as i32)
            .collect(),
        Some(Value::Number(n)) => n.as_i64().map(|v| vec![v as i32]).unwrap_or_default(),
        _ => vec![],
    };

    let spec = AppSpec {
        name,
        namespace,
        script: script_path,
        args,
        interpreter,
        interpreter_args,
        cwd: cwd.to_string_lossy().into_owned(),
        exec_mode,
        instances,
        env,
        autorestart: take_bool(&mut m, "autorestart", true),
        autostart: take_bool(&mut m, "autostart", true),
        restart_delay: take_u64(&mut m, "restart_delay").unwrap_or(0),
        exp_backoff_restart_delay: take_u64(&mut m, "exp_backoff_restart_delay").filter(|&d| d > 0),
        max_restarts: take_u64(&mut m, "max_restarts").unwrap_or(16) as u32,
        min_uptime: take_u64(&mut m, "min_uptime").unwrap_or(1000),
        stop_exit_codes,
        kill_timeout: take_u64(&mut m, "kill_timeout").unwrap_or(1600),
        listen_timeout: take_u64(&mut m, "listen_timeout").unwrap_or(3000),
        wait_ready: take_bool(&mut m, "wait_ready", false),
        shutdown_with_message: take_bool(&mut m, "shutdown_with_message", false),
        treekill: take_bool(&mut m, "treekill", true),
        merge_logs: take_bool(&mut m, "merge_logs", merge_default),
        out_file,
        error_file,
        log_file,
        pid_file,
        instance_var: take_str(&mut m, "instance_var")
            .unwrap_or_else(|| "NODE_APP_INSTANCE".into()),
        increment_var: take_str(&mut m, "increment_var"),
        log_date_format,
        disable_logs: take_bool(&mut m, "disable_logs", false),
        log_type: take_str(&mut m, "log_type"),
        extra: {
            m.remove("env");
            if time {
                m.insert("time".into(), Value::Bool(true));
            }
            m
        },
    };
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(dir: &Path) -> BuildCtx {
        BuildCtx {
            base_dir: dir.to_path_buf(),
            env: [
                ("PATH".to_string(), std::env::var("PATH").unwrap()),
                ("SECRET_TOKEN".into(), "x".into()),
            ]
            .into_iter()
            .collect(),
            env_name: Some("production".into()),
            cpus: 4,
        }
    }

    fn fixture_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("pmr-app-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.js"), "").unwrap();
        std::fs::write(d.join("w.py"), "").unwrap();
        d
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_interpreters_and_env() {
        let d = fixture_dir();
        let s = build_spec(&obj(json!({"script": "app.js"})), &ctx(&d)).unwrap();
        assert_eq!(s.name, "app");
        assert_eq!(s.interpreter.as_deref(), Some("node"));
        assert_eq!(s.exec_mode, ExecMode::Fork);
        assert!(s.merge_logs);
        assert_eq!(
            (
                s.kill_timeout,
                s.listen_timeout,
                s.min_uptime,
                s.max_restarts
            ),
            (1600, 3000, 1000, 16)
        );

        let s = build_spec(
            &obj(json!({"script": "w.py", "env": {"A": 1}, "env_production": {"A": "prod"}, "filter_env": ["SECRET"], "instances": -1})),
            &ctx(&d),
        )
        .unwrap();
        assert!(s.interpreter.as_deref().unwrap().contains("python"));
        assert_eq!(s.env["A"], "prod");
        assert!(!s.env.contains_key("SECRET_TOKEN"));
        assert_eq!(
            (s.instances, s.exec_mode, s.merge_logs),
            (3, ExecMode::Fork, false)
        );

        let s = build_spec(&obj(json!({"script": "app.js", "instances": 0})), &ctx(&d)).unwrap();
        assert_eq!((s.instances, s.exec_mode), (4, ExecMode::Cluster));
    }

    #[test]
    fn strings_with_spaces_run_through_bash_and_missing_things_are_errors() {
        let d = fixture_dir();
        let s = build_spec(
            &obj(json!({"script": "python3 -m http.server 8000"})),
            &ctx(&d),
        )
        .unwrap();
        assert_eq!(s.name, "python3 -m http.server 8000");
        assert_eq!(s.interpreter_args, ["-c"]);
        let e = build_spec(&obj(json!({"script": "nope.js"})), &ctx(&d)).unwrap_err();
        assert!(e.starts_with("Script not found: "), "{e}");
        let e = build_spec(
            &obj(json!({"script": "app.js", "interpreter": "nosuchinterp"})),
            &ctx(&d),
        )
        .unwrap_err();
        assert_eq!(e, "Interpreter nosuchinterp is not available in PATH");
        let s = build_spec(&obj(json!({"script": "sh"})), &ctx(&d)).unwrap();
        assert_eq!(s.interpreter, None, "a binary on PATH runs directly");
    }
}
