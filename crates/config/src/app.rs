//! Canonical app options (see `options.rs`) → a complete [`AppSpec`]: defaults, paths,
//! interpreter, instances, environment. Everything that depends on the user's machine (files,
//! PATH, CPUs) is resolved here, in the CLI, so the daemon gets nothing to guess.

use super::app_env::{new_unique_id, AppEnv};
use super::{node_detect, pkg_script};
use pmr_core::spec::{AppSpec, ExecMode, ListenAddr, LogRotate, Watch};
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
    /// `--env <name>`: selects `env_<name>` (and the file's `deploy.<name>.env`).
    pub env_name: Option<String>,
    pub cpus: u32,
    /// The module settings (`$PMR_HOME/conf.json`, PM2's `module_conf.json`): the section
    /// named after an app becomes variables of that app, as in PM2.
    pub module_conf: Map<String, Value>,
    /// The apps come from a config file (PM2 shows some values differently then).
    pub from_file: bool,
    /// The file's top-level `deploy` block, whose `<env_name>.env` applies with `--env`.
    pub deploy: Option<Value>,
}

impl BuildCtx {
    pub fn from_process(env_name: Option<String>) -> BuildCtx {
        BuildCtx {
            base_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env: std::env::vars().collect(),
            env_name,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            // A conf.json that does not parse is reported by `pmr set|get`; apps start without it.
            module_conf: pmr_core::conf::read_conf(
                &pmr_core::paths::Home::from_env().root.join("conf.json"),
            )
            .unwrap_or_default(),
            from_file: false,
            deploy: None,
        }
    }

    /// `deploy.<env_name>.env`, checked as an `env` block.
    fn deploy_env(&self) -> Result<Option<Map<String, Value>>, String> {
        let (Some(name), Some(deploy)) = (&self.env_name, &self.deploy) else {
            return Ok(None);
        };
        let Some(env) = deploy.get(name).and_then(|d| d.get("env")) else {
            return Ok(None);
        };
        if env.is_null() {
            return Ok(None);
        }
        let key = format!("deploy.{name}.env");
        match super::options::normalize_env(&key, env)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Ok(None),
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

/// The interpreter of a file without a known extension, by its content: node for a node
/// shebang (with the shebang's flags), and for a `node_modules/.bin` shim of a Node package (with
/// the package's JS file to run instead); none for another executable (whose `#!` interpreter
/// must exist); node for a plain file, as in PM2.
#[allow(clippy::type_complexity)]
fn by_content(
    file: &Path,
    path_var: &str,
) -> Result<(Option<String>, Vec<String>, Option<PathBuf>), String> {
    if let Some(flags) = node_detect::node_args_of(file) {
        if which("node", path_var).is_none() {
            let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
            let line = node_detect::shebang(&real)
                .map(|s| s.line)
                .unwrap_or_default();
            return Err(format!(
                "{}: its first line `{line}` names the interpreter `node`, which is not installed",
                file.display()
            ));
        }
        return Ok((Some("node".into()), flags, None));
    }
    if node_detect::is_in_bin_dir(file) {
        if let Some(t) = node_detect::bin_target(file) {
            let flags = node_detect::node_args_of(&t).unwrap_or_default();
            return Ok((Some("node".into()), flags, Some(t)));
        }
    }
    if !is_executable(file) {
        return Ok((Some("node".into()), vec![], None));
    }
    // pmr decision: an executable without a known extension (a binary, or a script with a
    // non-node shebang) runs directly; its interpreter is checked now so that a missing one is
    // a clear error instead of a crash loop of ENOENT.
    if let Some(sb) = node_detect::shebang(file) {
        if which(&sb.program, path_var).is_none() {
            return Err(format!(
                "{}: its first line `{}` names the interpreter `{}`, which is not installed",
                file.display(),
                sb.line,
                sb.program
            ));
        }
    }
    Ok((None, vec![], None))
}

/// Build the spec of one app. `opts` uses canonical option names and types.
pub fn build_spec(opts: &Map<String, Value>, ctx: &BuildCtx) -> Result<AppSpec, String> {
    let mut m = opts.clone();
    let script = take_str(&mut m, "script").ok_or("missing \"script\"")?;
    let mut cwd = match take_str(&mut m, "cwd") {
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
    // Environment: the CLI's (minus filter_env), then `env`, then `deploy.<name>.env`, then
    // `env_<name>` (measured with PM2 7.0.4: the deploy block wins over `env`); the module
    // settings go between `env` and the deploy block once the name is known (below).
    let mut base = ctx.env.clone();
    match m.remove("filter_env") {
        Some(Value::Bool(true)) => base.clear(),
        Some(Value::Array(list)) => {
            let pats: Vec<String> = list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            base.retain(|k, _| !pats.iter().any(|p| k.contains(p.as_str())));
        }
        _ => {}
    }
    let mut env = AppEnv::new(base);
    if let Some(Value::Object(block)) = m.get("env") {
        env.layer(block);
    }
    let mut over_settings = Vec::new();
    if let Some(block) = ctx.deploy_env()? {
        over_settings.push(block);
    }
    if let Some(Value::Object(block)) = ctx
        .env_name
        .as_ref()
        .and_then(|e| m.get(&format!("env_{e}")))
    {
        over_settings.push(block.clone());
    }
    for block in &over_settings {
        env.layer(block);
    }
    // `port` is applied last (below); package scripts' `$PORT` already sees it.
    // A number in `jlist`, as PM2's `app.env.PORT = app.port`.
    let port = m.remove("port").filter(Value::is_u64);
    if let Some(port) = &port {
        env.set("PORT", port);
    }

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
            // `$VAR` in the script expands from the environment the app runs with.
            let r = pkg_script::resolve(&words[0], &words[1..], &cwd, &env.env)
                .map_err(|e| format!("cannot run `{}` in cluster mode: {e}", words.join(" ")))?;
            args = r.args.clone();
            interpreter_args.splice(0..0, r.node_args.iter().cloned());
            pm_env = r.env.clone();
            let bin = cwd.join("node_modules/.bin");
            let path = ctx.env.get("PATH").cloned().unwrap_or_default();
            pm_env.insert("PATH".into(), format!("{}:{path}", bin.display()));
            if let Some(d) = &r.cwd {
                cwd = d.clone();
            }
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
        let mut resolved = if local.is_file() {
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
                None => {
                    let (interp, node_args, target) = by_content(&resolved, &path_var)?;
                    // The shebang's flags (`env -S node --flags`) come before the user's.
                    interpreter_args.splice(0..0, node_args);
                    if let Some(t) = target {
                        resolved = t;
                    }
                    interp
                }
            },
        };
        if wants_cluster
            && node_detect::is_in_bin_dir(&resolved)
            && !interp.as_deref().is_some_and(node_detect::is_node_program)
            && !m.contains_key("listen")
        {
            // A package bin asked to be clustered is a framework CLI: running it as N fork
            // instances (PM2's fallback) only makes them fight for the port.
            return Err(format!(
                "cannot run {} in cluster mode: {}",
                resolved.display(),
                pkg_script::not_node(&resolved)
            ));
        }
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
    let listen = take_strings(&mut m, "listen")
        .iter()
        .map(|a| ListenAddr::parse(a).map_err(|e| format!("\"listen\": {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let exec_mode = if exec_mode == ExecMode::Cluster && !is_node_interp && listen.is_empty() {
        // As PM2 does: N fork instances, which will not share a port unless the app does.
        eprintln!(
            "{} cluster mode needs a Node.js script or `listen` addresses; {script_path} runs as {instances} fork instance(s)",
            pmr_core::personality::warn()
        );
        ExecMode::Fork
    } else {
        exec_mode
    };

    env.module_conf(
        &name,
        ctx.module_conf.get(&name).and_then(Value::as_object),
        ctx.from_file,
    );
    for block in &over_settings {
        env.layer(block);
    }
    env.extend(pm_env);
    if let Some(port) = &port {
        env.set("PORT", port);
    }
    // PM2's `God.prepare`: a new id for every start, over any inherited one.
    env.set("unique_id", &Value::String(new_unique_id()));

    let path_opt = |m: &mut Map<String, Value>, k: &str| -> Option<String> {
        take_str(m, k).map(|p| {
            if pmr_core::paths::is_null_device(&p) {
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
        env: env.env.into(),
        env_json: env.json,
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
        listen,
        drain_keepalive: take_bool(&mut m, "drain_keepalive", true),
        catch_unhandled_rejections: take_bool(&mut m, "catch_unhandled_rejections", true),
        log_rotate: m.remove("log_rotate").map(|v| log_rotate(&v)),
        watch: match m.remove("watch") {
            Some(Value::Bool(true)) => Watch::Cwd,
            Some(Value::Array(a)) => Watch::Paths(
                a.into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => Watch::Off,
        },
        ignore_watch: m
            .contains_key("ignore_watch")
            .then(|| take_strings(&mut m, "ignore_watch")),
        watch_delay: take_u64(&mut m, "watch_delay"),
        watch_options: match m.remove("watch_options") {
            Some(Value::Object(o)) => Some(o),
            _ => None,
        },
        cron_restart: take_str(&mut m, "cron_restart"),
        max_memory_restart: take_u64(&mut m, "max_memory_restart"),
        extra: {
            m.remove("env");
            if time {
                m.insert("time".into(), Value::Bool(true));
            }
            m
        },
        removed: Vec::new(),
    };
    check_watch(&spec)?;
    for key in spec.unsupported() {
        eprintln!(
            "{} app {:?}: {key} is not supported yet: accepted and ignored",
            pmr_core::personality::warn(),
            spec.name
        );
    }
    Ok(spec)
}

/// Each watched path must exist and be readable (root reads anything: nothing to say
/// then); `ignore_watch` patterns must be valid globs or regexes.
fn check_watch(spec: &AppSpec) -> Result<(), String> {
    for p in spec.watch_paths() {
        match std::fs::metadata(&p) {
            Err(_) => return Err(format!("watch path {} does not exist", p.display())),
            Ok(m) if m.is_dir() => {
                if let Err(e) = std::fs::read_dir(&p) {
                    return Err(format!("watch path {} cannot be read: {e}", p.display()));
                }
            }
            Ok(_) => {}
        }
    }
    if spec.watch != Watch::Off {
        crate::watch_ignore::Ignore::new(Path::new(&spec.cwd), spec.ignore_watch.as_deref())?;
    }
    Ok(())
}

/// A `log_rotate` block as `options::normalize_app` left it (canonical keys, checked values).
fn log_rotate(v: &Value) -> LogRotate {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    LogRotate {
        max_size: v.get("max_size").and_then(Value::as_u64),
        retain: v
            .get("retain")
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        compress: v.get("compress").and_then(Value::as_bool),
        interval: text("interval"),
        cron: text("cron"),
    }
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
            module_conf: Map::new(),
            from_file: false,
            deploy: None,
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
    fn env_layers_types_module_settings_and_unique_id() {
        let d = fixture_dir();
        let mut c = ctx(&d);
        c.from_file = true;
        c.deploy = Some(json!({
            "production": {"env": {"D": "deploy", "E": "deploy", "B": "deploy"}},
            "staging": {"env": {"S": 1}}
        }));
        c.module_conf = obj(json!({"api": {"M": "5", "E": "module"}, "other": {"X": "1"}}));
        let app = obj(json!({
            "script": "app.js", "name": "api", "port": 4000,
            "env": {"E": "env", "B": "env", "N": 3000, "F": true, "ONLY": "env"},
            "env_production": {"E": "production", "P": 1, "O": {"a": 1}}
        }));
        let s = build_spec(&app, &c).unwrap();
        // env < module settings < deploy.<name>.env < env_<name>, as PM2 7.0.4.
        assert_eq!(s.env["E"], "production");
        assert_eq!(s.env["B"], "deploy");
        assert_eq!(s.env["D"], "deploy");
        assert_eq!(s.env["ONLY"], "env");
        assert_eq!(s.env["M"], "5");
        assert!(!s.env.contains_key("S") && !s.env.contains_key("X"));
        assert_eq!(s.env["api"], r#"{"M":"5","E":"module"}"#);
        // The child gets strings; jlist's types are kept beside them.
        assert_eq!((s.env["N"].as_str(), s.env["F"].as_str()), ("3000", "true"));
        assert_eq!((s.env["P"].as_str(), s.env["PORT"].as_str()), ("1", "4000"));
        assert!(!s.env.contains_key("O"), "objects are not the child's");
        let typed = s.env_typed();
        assert_eq!(typed["N"], 3000);
        assert_eq!(typed["F"], true);
        assert_eq!(typed["P"], 1);
        assert_eq!(typed["PORT"], 4000);
        assert_eq!(typed["O"], json!({"a": 1}));
        assert_eq!(typed["E"], "production");
        let id = &s.env["unique_id"];
        assert_eq!(id.len(), 36, "{id}");
        assert_ne!(build_spec(&app, &c).unwrap().env["unique_id"], *id);

        // Without --env, no deploy block; without settings, `{}` under the name.
        c.env_name = None;
        let s = build_spec(&app, &c).unwrap();
        assert_eq!(
            (s.env["E"].as_str(), s.env["B"].as_str()),
            ("module", "env")
        );
        assert!(!s.env.contains_key("D"));
        c.module_conf = Map::new();
        let s = build_spec(&app, &c).unwrap();
        assert_eq!(s.env["api"], "{}");
        // From the command line the `{}` is an object, which only jlist shows.
        c.from_file = false;
        let s = build_spec(&app, &c).unwrap();
        assert!(!s.env.contains_key("api"));
        assert_eq!(s.env_typed()["api"], json!({}));

        // A bad deploy env is an error naming it.
        c.env_name = Some("production".into());
        c.deploy = Some(json!({"production": {"env": "X=1"}}));
        let e = build_spec(&app, &c).unwrap_err();
        assert!(e.contains("\"deploy.production.env\""), "{e}");
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

    #[test]
    fn a_watch_path_must_exist() {
        let d = fixture_dir();
        let e = build_spec(
            &obj(json!({"script": "app.js", "watch": ["app.js", "nope"]})),
            &ctx(&d),
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!("watch path {} does not exist", d.join("nope").display())
        );
    }

    #[test]
    fn options_the_daemon_reads_are_typed_fields_not_extra() {
        let d = fixture_dir();
        for sub in ["src", "lib"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let s = build_spec(
            &obj(json!({
                "script": "app.js",
                "listen": ["127.0.0.1:8000", "/tmp/a.sock"],
                "drain_keepalive": false,
                "log_rotate": {"max_size": 1024, "retain": 3, "cron": "0 0 * * *"},
                "watch": ["src", "lib"],
                "ignore_watch": ["node_modules"],
                "watch_delay": 500,
                "watch_options": {"usePolling": true},
                "cron_restart": "0 3 * * *",
                "max_memory_restart": 209715200,
                "time": true,
            })),
            &ctx(&d),
        )
        .unwrap();
        let listen: Vec<String> = s.listen.iter().map(ToString::to_string).collect();
        assert_eq!(listen, ["127.0.0.1:8000", "/tmp/a.sock"]);
        assert!(!s.drain_keepalive);
        assert_eq!(
            s.log_rotate,
            Some(LogRotate {
                max_size: Some(1024),
                retain: Some(3),
                compress: None,
                interval: None,
                cron: Some("0 0 * * *".into()),
            })
        );
        assert_eq!(s.watch, Watch::Paths(vec!["src".into(), "lib".into()]));
        assert_eq!(s.ignore_watch, Some(vec!["node_modules".to_string()]));
        assert_eq!(s.watch_delay, Some(500));
        assert_eq!(
            s.watch_options.map(Value::Object),
            Some(json!({"usePolling": true}))
        );
        assert_eq!(s.cron_restart.as_deref(), Some("0 3 * * *"));
        assert_eq!(s.max_memory_restart, Some(209715200));
        let extra: Vec<&str> = s.extra.keys().map(String::as_str).collect();
        assert_eq!(extra, ["time"], "typed options must not stay in extra");

        let s = build_spec(&obj(json!({"script": "app.js", "watch": true})), &ctx(&d)).unwrap();
        assert_eq!(
            (s.watch, s.drain_keepalive, s.log_rotate),
            (Watch::Cwd, true, None)
        );
        let e = build_spec(
            &obj(json!({"script": "app.js", "listen": ["localhost"]})),
            &ctx(&d),
        )
        .unwrap_err();
        assert!(
            e.starts_with("\"listen\": listen address \"localhost\""),
            "{e}"
        );
    }

    /// A project with a `next`-like bin: shebang, no extension, executable, linked from .bin.
    fn bin_project(tag: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("pmr-app-bin-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let w = |rel: &str, text: &str| {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        w("node_modules/next/dist/bin/next", "#!/usr/bin/env node\n");
        w(
            "node_modules/next/package.json",
            r#"{"name":"next","bin":{"next":"dist/bin/next"}}"#,
        );
        w("node_modules/sh/run", "#!/bin/sh\n");
        w("node_modules/.bin/pnpmshim", "#!/bin/sh\nexec node x\n");
        w(
            "node_modules/pnpmshim/package.json",
            r#"{"name":"pnpmshim","bin":"cli.js"}"#,
        );
        w("node_modules/pnpmshim/cli.js", "");
        w("flagged", "#!/usr/bin/env -S node --enable-source-maps\n");
        w("ghost", "#!/usr/bin/env no-such-interpreter-here\n");
        w("ghost2", "#!/opt/nowhere/bin/ruby\n");
        w("tool.sh.bin", "#!/bin/sh\necho\n");
        w(
            "package.json",
            r#"{"scripts":{"start":"next start -p ${PORT:-3100}","sh":"shtool"}}"#,
        );
        std::os::unix::fs::symlink("../next/dist/bin/next", d.join("node_modules/.bin/next"))
            .unwrap();
        std::os::unix::fs::symlink("../sh/run", d.join("node_modules/.bin/shtool")).unwrap();
        d
    }

    #[test]
    fn node_is_recognised_by_content() {
        let d = bin_project("content");
        let c = ctx(&d);
        let next = "node_modules/next/dist/bin/next";
        // Fork mode: node runs it, so IPC works.
        let s = build_spec(&obj(json!({ "script": next, "args": "start" })), &c).unwrap();
        assert_eq!(
            (s.interpreter.as_deref(), s.exec_mode),
            (Some("node"), ExecMode::Fork)
        );
        assert!(s.is_node());
        // Cluster mode, both PM2-guide forms.
        for script in [next, "node_modules/.bin/next"] {
            let s = build_spec(
                &obj(json!({ "script": script, "args": "start", "instances": 2, "exec_mode": "cluster" })),
                &c,
            )
            .unwrap();
            assert_eq!(
                (s.exec_mode, s.instances),
                (ExecMode::Cluster, 2),
                "{script}"
            );
            assert_eq!(s.args, ["start"]);
        }
        // `instances` alone picks cluster for node, as for a .js file.
        let s = build_spec(&obj(json!({ "script": next, "instances": 0 })), &c).unwrap();
        assert_eq!(s.exec_mode, ExecMode::Cluster);
        // `env -S node --flags`: the flags are node args, before the user's.
        let s = build_spec(
            &obj(json!({ "script": "flagged", "interpreter_args": ["--x"] })),
            &c,
        )
        .unwrap();
        assert_eq!(s.interpreter_args, ["--enable-source-maps", "--x"]);
        // A pnpm shell shim in .bin runs the package's JS file.
        let s = build_spec(&obj(json!({ "script": "node_modules/.bin/pnpmshim" })), &c).unwrap();
        assert!(s.script.ends_with("pnpmshim/cli.js"), "{}", s.script);
        assert_eq!(s.interpreter.as_deref(), Some("node"));
        // Other executables still run directly, and fall back to fork in cluster mode.
        let s = build_spec(
            &obj(json!({ "script": "tool.sh.bin", "instances": 2, "exec_mode": "cluster" })),
            &c,
        )
        .unwrap();
        assert_eq!((s.interpreter, s.exec_mode), (None, ExecMode::Fork));
    }

    #[test]
    fn bad_bins_and_shebangs_are_errors() {
        let d = bin_project("errors");
        let c = ctx(&d);
        let e = build_spec(&obj(json!({ "script": "ghost" })), &c).unwrap_err();
        assert_eq!(
            e,
            format!(
                "{}: its first line `#!/usr/bin/env no-such-interpreter-here` names the interpreter `no-such-interpreter-here`, which is not installed",
                d.join("ghost").display()
            )
        );
        let mut no_node = c.clone();
        no_node.env.insert("PATH".into(), "/nonexistent".into());
        let e = build_spec(
            &obj(json!({ "script": "node_modules/.bin/next" })),
            &no_node,
        )
        .unwrap_err();
        assert!(
            e.ends_with("node_modules/.bin/next: its first line `#!/usr/bin/env node` names the interpreter `node`, which is not installed"),
            "{e}"
        );
        let e = build_spec(&obj(json!({ "script": "ghost2" })), &c).unwrap_err();
        assert!(
            e.contains("`/opt/nowhere/bin/ruby`, which is not installed"),
            "{e}"
        );
        let e = build_spec(
            &obj(json!({ "script": "node_modules/.bin/shtool", "exec_mode": "cluster", "instances": 2 })),
            &c,
        )
        .unwrap_err();
        assert!(
            e.contains("cannot run ")
                && e.contains("sh/run is not a Node.js program (its first line is `#!/bin/sh`"),
            "{e}"
        );
        let e =
            build_spec(&obj(json!({ "script": "npm run sh", "instances": 2 })), &c).unwrap_err();
        assert!(
            e.contains("cannot run `npm run sh` in cluster mode:") && e.contains("#!/bin/sh"),
            "{e}"
        );
    }

    #[test]
    fn package_scripts_expand_the_apps_env() {
        let d = bin_project("expand");
        let c = ctx(&d);
        let cluster = |extra: Value| {
            let mut o = obj(json!({ "script": "yarn start", "instances": 2 }));
            o.extend(obj(extra));
            build_spec(&o, &c).unwrap()
        };
        let s = cluster(json!({}));
        assert_eq!(
            (s.exec_mode, s.args.clone()),
            (
                ExecMode::Cluster,
                vec!["start".to_string(), "-p".into(), "3100".into()]
            )
        );
        assert!(s.script.ends_with("next/dist/bin/next"));
        let s = cluster(json!({ "env": { "PORT": 4000 } }));
        assert_eq!(s.args[2], "4000");
        let s = cluster(json!({ "env_production": { "PORT": 4001 } }));
        assert_eq!(s.args[2], "4001", "--env blocks count");
        let s = cluster(json!({ "port": 4002 }));
        assert_eq!(s.args[2], "4002");
        let mut c2 = c.clone();
        c2.env.insert("PORT".into(), "4003".into());
        let s = build_spec(
            &obj(json!({ "script": "npm", "args": ["start"], "instances": 2 })),
            &c2,
        )
        .unwrap();
        assert_eq!(s.args[2], "4003", "the shell's env counts");
    }
}
