//! Evaluating JavaScript ecosystem files in an embedded QuickJS engine (rquickjs), so pmr needs no
//! Node.js for the usual `module.exports = { apps: [...] }` / `export default {...}` configs.
//!
//! One runtime per load, with a memory limit and an interrupt deadline. The JavaScript side (a
//! CommonJS module system and the Node built-ins configs use) is in `js/prelude.rs`; this file
//! provides its native helpers, the ES-module resolver/loader, and turns engine exceptions into
//! [`LoadError`]s that name the file, line and column.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;
use rquickjs::context::EvalOptions;
use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::promise::PromiseState;
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Function, Module, Object, Promise, Runtime, Value,
};

mod prelude;

use super::error::{io_reason, LoadError};
use prelude::{CJS_HEADER, PRELUDE, PRELUDE_NAME};

/// How a piece of JavaScript is to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsKind {
    /// CommonJS file (`.js`, `.cjs`): the value of `module.exports`.
    CommonJs,
    /// ES module (`.mjs`, or `.js` written with `import`/`export`): the default export.
    Module,
    /// A JSON-ish file evaluated as one expression, as PM2 does for `.json` (`(text)`).
    Expression,
}

/// Limits on one evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsLimits {
    pub timeout: Duration,
    pub memory_limit: usize,
}

/// Turns absolute file names (what the engine sees) back into the names the user knows: the
/// top-level file as given on the command line, other files relative to its directory.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub top_abs: PathBuf,
    pub top_display: String,
}

impl Names {
    pub(crate) fn display(&self, abs: &str) -> String {
        let p = Path::new(abs);
        if p == self.top_abs {
            return self.top_display.clone();
        }
        if let Some(dir) = self.top_abs.parent() {
            if let Ok(rel) = p.strip_prefix(dir) {
                let shown = Path::new(&self.top_display)
                    .parent()
                    .unwrap_or(Path::new(""));
                return shown.join(rel).display().to_string();
            }
        }
        abs.to_string()
    }
}

/// Why an evaluation failed, plus the bare module names the config asked for that this engine
/// does not provide (e.g. `dotenv`): with those, the caller may retry with Node.js.
#[derive(Debug)]
pub(crate) struct JsFailure {
    pub error: LoadError,
    pub missing: Vec<String>,
}

/// A successful evaluation: the exported value, and any missing modules the config asked for
/// but survived without (a `try { require('dotenv') } catch {}`).
#[derive(Debug)]
pub(crate) struct JsOutcome {
    pub value: serde_json::Value,
    pub missing: Vec<String>,
}

/// Does this `.js` source use ES-module syntax (`import x from`, `export default`, ...)?
pub(crate) fn looks_like_esm(source: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?m)^[ \t]*(export[ \t]+(default\b|const\b|let\b|var\b|function\b|async\b|class\b)|export[ \t]*\{|import[ \t]*[\w*{'"])"#,
        )
        .expect("valid regex")
    })
    .is_match(source)
}

/// Bare names served from the prelude (with or without `node:`).
const BUILTINS: &[&str] = &["path", "os", "fs", "url", "process", "path/posix"];
const BUILTIN_PREFIX: &str = "pmr:builtin:";

/// Evaluate `source` (the file `abs`) and return its export as JSON.
pub(crate) fn eval(
    source: &str,
    abs: &Path,
    kind: JsKind,
    names: &Names,
    limits: JsLimits,
) -> Result<JsOutcome, JsFailure> {
    let fail = |error: LoadError| JsFailure {
        error,
        missing: Vec::new(),
    };
    let engine_error = |e: rquickjs::Error| {
        fail(LoadError::Runtime {
            file: names.top_display.clone(),
            line: None,
            column: None,
            message: format!("JavaScript engine error: {e}"),
        })
    };

    let rt = Runtime::new().map_err(engine_error)?;
    rt.set_memory_limit(limits.memory_limit);
    rt.set_max_stack_size(512 * 1024);
    let deadline = Instant::now() + limits.timeout;
    let timed_out = Rc::new(Cell::new(false));
    {
        let timed_out = timed_out.clone();
        rt.set_interrupt_handler(Some(Box::new(move || {
            if Instant::now() >= deadline {
                timed_out.set(true);
                true
            } else {
                false
            }
        })));
    }
    let esm_missing = Rc::new(RefCell::new(Vec::new()));
    let shifted: Rc<RefCell<HashSet<String>>> = Rc::default();
    rt.set_loader(
        PmrResolver {
            missing: esm_missing.clone(),
        },
        PmrLoader {
            shifted: shifted.clone(),
        },
    );
    let ctx = Context::full(&rt).map_err(engine_error)?;
    let abs_str = abs.to_string_lossy().into_owned();

    ctx.with(|ctx| {
        let result = run(&ctx, source, &abs_str, kind, shifted.clone()).catch(&ctx);
        let mut missing: Vec<String> = ctx
            .globals()
            .get::<_, Object>("__pmr")
            .and_then(|api| api.get::<_, Vec<String>>("missing"))
            .unwrap_or_default();
        missing.extend(esm_missing.borrow().iter().cloned());
        match result {
            Ok(json) => match serde_json::from_str(&json) {
                Ok(value) => Ok(JsOutcome { value, missing }),
                Err(e) => Err(JsFailure {
                    error: LoadError::Runtime {
                        file: names.top_display.clone(),
                        line: None,
                        column: None,
                        message: format!("the export is not valid JSON: {e}"),
                    },
                    missing,
                }),
            },
            Err(caught) => {
                let error = if timed_out.get() {
                    LoadError::Timeout {
                        file: names.top_display.clone(),
                        seconds: limits.timeout.as_secs_f64(),
                    }
                } else {
                    convert_error(caught, names, &shifted.borrow(), limits)
                };
                Err(JsFailure { error, missing })
            }
        }
    })
}

/// Install the prelude and run the file; returns the JSON text of the export.
fn run<'js>(
    ctx: &Ctx<'js>,
    source: &str,
    abs: &str,
    kind: JsKind,
    shifted: Rc<RefCell<HashSet<String>>>,
) -> rquickjs::Result<String> {
    let natives = natives(ctx, shifted.clone())?;
    let prelude: Function = ctx.eval_with_options(PRELUDE, eval_options(PRELUDE_NAME, true))?;
    let api: Object = prelude.call((natives, static_facts()))?;
    ctx.globals().set("__pmr", api.clone())?;
    let source = strip_shebang(source);
    match kind {
        JsKind::CommonJs => api
            .get::<_, Function>("runMain")?
            .call((source.into_owned(), abs)),
        JsKind::Expression => {
            let v: Value =
                ctx.eval_with_options(format!("({source}\n)"), eval_options(abs, false))?;
            api.get::<_, Function>("toJSON")?.call((v,))
        }
        JsKind::Module => {
            api.get::<_, Function>("setupModuleGlobals")?
                .call::<_, ()>((abs,))?;
            let module = declare_module(ctx, abs, &source, &shifted)?;
            let (module, promise) = module.eval()?;
            let v: Value = settle(ctx, promise)?;
            drop(v);
            let export: Value = match module.get::<_, Value>("default") {
                Ok(v) if !v.is_undefined() => v,
                _ => {
                    let cjs: Value = api.get::<_, Function>("mainExports")?.call(())?;
                    if cjs.is_undefined() {
                        module.namespace()?.into_value()
                    } else {
                        cjs
                    }
                }
            };
            api.get::<_, Function>("toJSON")?.call((export,))
        }
    }
}

/// Declare an ES module from a file. The source gets one leading newline: QuickJS-ng counts
/// columns from 0 on a source's first line for some positions and from 1 elsewhere, so no user
/// code is left on line 1; errors are shifted back by one line.
fn declare_module<'js>(
    ctx: &Ctx<'js>,
    abs: &str,
    source: &str,
    shifted: &RefCell<HashSet<String>>,
) -> rquickjs::Result<Module<'js, Declared>> {
    shifted.borrow_mut().insert(abs.to_string());
    let module = Module::declare(ctx.clone(), abs, format!("\n{source}"))?;
    module.meta()?.set("url", file_url(abs))?;
    Ok(module)
}

/// Run pending jobs until the promise is settled (top-level `await` in a module).
fn settle<'js>(ctx: &Ctx<'js>, promise: Promise<'js>) -> rquickjs::Result<Value<'js>> {
    loop {
        match promise.state() {
            PromiseState::Pending => {
                if !ctx.execute_pending_job() {
                    return Err(rquickjs::Exception::throw_message(
                        ctx,
                        "the module never finished evaluating (top-level await on a promise that never settles)",
                    ));
                }
            }
            _ => return promise.result::<Value>().expect("settled"),
        }
    }
}

fn eval_options(filename: &str, strict: bool) -> EvalOptions {
    let mut o = EvalOptions::default();
    o.global = true;
    o.strict = strict;
    o.filename = Some(filename.to_string());
    o
}

fn strip_shebang(source: &str) -> std::borrow::Cow<'_, str> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    match source.strip_prefix("#!") {
        // Same length, so columns stay right.
        Some(rest) => format!("//{rest}").into(),
        None => source.into(),
    }
}

fn file_url(abs: &str) -> String {
    let mut out = String::from("file://");
    for b in abs.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The native helpers the prelude calls as `N.*`. Results that can fail are arrays:
/// `['ok', ...]` or `['err', CODE, message]`, so no JS lifetimes cross this boundary.
fn natives<'js>(
    ctx: &Ctx<'js>,
    shifted: Rc<RefCell<HashSet<String>>>,
) -> rquickjs::Result<Object<'js>> {
    let n = Object::new(ctx.clone())?;
    n.set(
        "readFile",
        Function::new(ctx.clone(), |p: String| -> Vec<String> {
            match std::fs::read(&p) {
                Ok(bytes) => vec!["ok".into(), String::from_utf8_lossy(&bytes).into_owned()],
                Err(e) => io_failure(&e),
            }
        })?,
    )?;
    n.set(
        "exists",
        Function::new(ctx.clone(), |p: String| Path::new(&p).exists())?,
    )?;
    n.set(
        "readdir",
        Function::new(ctx.clone(), |p: String| -> Vec<String> {
            match std::fs::read_dir(&p) {
                Ok(entries) => {
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    let mut out = vec!["ok".to_string()];
                    out.extend(names);
                    out
                }
                Err(e) => io_failure(&e),
            }
        })?,
    )?;
    n.set(
        "stat",
        Function::new(ctx.clone(), |p: String| -> Vec<String> {
            match std::fs::metadata(&p) {
                Ok(m) => {
                    let kind = if m.is_dir() {
                        "dir"
                    } else if m.is_file() {
                        "file"
                    } else {
                        "other"
                    };
                    let mtime = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    vec![
                        "ok".into(),
                        kind.into(),
                        m.len().to_string(),
                        mtime.to_string(),
                    ]
                }
                Err(e) => io_failure(&e),
            }
        })?,
    )?;
    n.set(
        "log",
        Function::new(ctx.clone(), |s: String| {
            let _ = std::io::stderr().write_all(s.as_bytes());
        })?,
    )?;
    n.set(
        "compile",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  source: String,
                  filename: String|
                  -> rquickjs::Result<Function<'js>> {
                compile_cjs(&ctx, &source, &filename, &shifted)
            },
        )?,
    )?;
    Ok(n)
}

/// Compile a CommonJS file into its wrapper function.
fn compile_cjs<'js>(
    ctx: &Ctx<'js>,
    source: &str,
    filename: &str,
    shifted: &RefCell<HashSet<String>>,
) -> rquickjs::Result<Function<'js>> {
    let source = strip_shebang(source);
    shifted.borrow_mut().insert(filename.to_string());
    let result = ctx.eval_with_options(
        format!("{CJS_HEADER}\n{source}\n}})"),
        eval_options(filename, false),
    );
    let Err(e) = result else { return result };
    let caught = CaughtError::from_error(ctx, e);
    // A stray `}` closes the wrapper early, and the error then points past the end of the file.
    // Compiling the bare source (as a module: compile only, nothing runs) finds the real spot.
    if let CaughtError::Exception(ex) = &caught {
        let lines = source.matches('\n').count() as u32 + 2;
        let past_end = ex
            .stack()
            .and_then(|s| frame_location(&s))
            .is_some_and(|loc| loc.line > lines);
        if past_end {
            let probe = format!("\n{source}");
            Module::declare(ctx.clone(), filename, probe)?;
        }
    }
    Err(caught.throw(ctx))
}

fn io_failure(e: &std::io::Error) -> Vec<String> {
    let code = match e.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EISDIR) => "EISDIR",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::ELOOP) => "ELOOP",
        Some(libc::EMFILE) => "EMFILE",
        _ => "EIO",
    };
    let mut msg = io_reason(e);
    if let Some(first) = msg.get(..1) {
        msg = first.to_lowercase() + &msg[1..];
    }
    vec!["err".into(), code.into(), msg]
}

/// The facts the prelude needs, as one JSON string (cheaper than building JS objects from Rust).
fn static_facts() -> String {
    let env: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                serde_json::Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "pmr".into());
    // Node's shape: [interpreter, script, ...user args], so `process.argv.slice(2)` is the
    // command line after the program name.
    let mut argv = vec![exe.clone(), exe];
    argv.extend(std::env::args().skip(1));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let tmp = std::env::var("TMPDIR")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.len() > 1 {
                t.trim_end_matches('/').to_string()
            } else {
                t
            }
        })
        .unwrap_or_else(|| "/tmp".into());
    let sys = sysinfo();
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let (platform, os_type) = match std::env::consts::OS {
        "linux" => ("linux", "Linux"),
        "macos" => ("darwin", "Darwin"),
        "freebsd" => ("freebsd", "FreeBSD"),
        other => (other, other),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "arm" => "arm",
        other => other,
    };
    serde_json::json!({
        "env": env,
        "cwd": cwd,
        "argv": argv,
        "pid": std::process::id(),
        "ppid": nix::unistd::getppid().as_raw(),
        "platform": platform,
        "arch": arch,
        "pmrVersion": env!("CARGO_PKG_VERSION"),
        "os": {
            "cpus": cpu_count(),
            "cpuModel": "",
            "hostname": hostname(),
            "homedir": home,
            "tmpdir": tmp,
            "type": os_type,
            "release": sys.release,
            "totalmem": sys.totalmem,
            "freemem": sys.freemem,
            "uptime": sys.uptime,
            "loadavg": sys.loadavg,
            "user": {
                "uid": uid,
                "gid": gid,
                "username": std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default(),
                "homedir": std::env::var("HOME").unwrap_or_default(),
                "shell": std::env::var("SHELL").ok(),
            },
        },
    })
    .to_string()
}

/// Online CPUs, as Node's `os.cpus().length` (not limited by affinity or cgroup quotas).
pub(crate) fn cpu_count() -> usize {
    #[cfg(target_os = "linux")]
    if let Ok(Some(n)) = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        if n > 0 {
            return n as usize;
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `os.hostname()`: the node name `uname` reports (what `gethostname` returns).
fn hostname() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => u.nodename().to_string_lossy().into_owned(),
        Err(_) => "localhost".into(),
    }
}

struct SysInfo {
    release: String,
    totalmem: u64,
    freemem: u64,
    uptime: u64,
    loadavg: [f64; 3],
}

fn sysinfo() -> SysInfo {
    let mut out = SysInfo {
        release: String::new(),
        totalmem: 0,
        freemem: 0,
        uptime: 0,
        loadavg: [0.0; 3],
    };
    if let Ok(u) = nix::sys::utsname::uname() {
        out.release = u.release().to_string_lossy().into_owned();
    }
    #[cfg(target_os = "linux")]
    if let Ok(si) = nix::sys::sysinfo::sysinfo() {
        out.totalmem = si.ram_total();
        // Node's freemem() is MemAvailable; fall back to free RAM.
        out.freemem = mem_available().unwrap_or(si.ram_unused());
        out.uptime = si.uptime().as_secs();
        let (a, b, c) = si.load_average();
        out.loadavg = [a, b, c];
    }
    out
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ------------------------------------------------------------------------------ ES modules

struct PmrResolver {
    missing: Rc<RefCell<Vec<String>>>,
}

impl Resolver for PmrResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        let bare = name.strip_prefix("node:").unwrap_or(name);
        if BUILTINS.contains(&bare) {
            return Ok(format!("{BUILTIN_PREFIX}{bare}"));
        }
        let target = if let Some(rest) = name.strip_prefix("file://") {
            Some(PathBuf::from(percent_decode(rest)))
        } else if name.starts_with("./") || name.starts_with("../") || name.starts_with('/') {
            let dir = Path::new(base).parent().unwrap_or(Path::new("/"));
            Some(normalize(&dir.join(name)))
        } else {
            None
        };
        match target {
            Some(t) if t.is_file() => Ok(t.to_string_lossy().into_owned()),
            Some(_) => Err(rquickjs::Error::new_resolving_message(
                base,
                name,
                "no such file",
            )),
            None => {
                self.missing.borrow_mut().push(name.to_string());
                Err(rquickjs::Error::new_resolving(base, name))
            }
        }
    }
}

struct PmrLoader {
    shifted: Rc<RefCell<HashSet<String>>>,
}

impl Loader for PmrLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        if let Some(b) = name.strip_prefix(BUILTIN_PREFIX) {
            let quoted = serde_json::to_string(b).expect("string");
            let keys: Vec<String> = ctx.eval(format!("__pmr.builtinKeys({quoted})"))?;
            let src = format!(
                "const m = __pmr.builtin({quoted});\nexport default m;\nexport const {{ {} }} = m;\n",
                keys.join(", ")
            );
            return Module::declare(ctx.clone(), name, src);
        }
        let text = std::fs::read_to_string(name)
            .map_err(|e| rquickjs::Error::new_loading_message(name, e.to_string()))?;
        let quoted = serde_json::to_string(name).expect("string");
        if name.ends_with(".json") {
            let src = format!("export default {text}\n;");
            Module::declare(ctx.clone(), name, src)
        } else if name.ends_with(".cjs") || (name.ends_with(".js") && !looks_like_esm(&text)) {
            let src = format!("export default __pmr.requireAbs({quoted});\n");
            Module::declare(ctx.clone(), name, src)
        } else {
            declare_module(ctx, name, &strip_shebang(&text), &self.shifted)
        }
    }
}

/// Lexical normalisation (`a/./b/../c` → `a/c`), for paths that may not exist.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ------------------------------------------------------------------------------ errors

/// Where an exception points: the first stack frame in a user file.
struct Location {
    file: String,
    line: u32,
    column: u32,
}

fn frame_location(stack: &str) -> Option<Location> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^\s*at (?:.*? \()?(.+?):(\d+):(\d+)\)?\s*$").expect("valid regex")
    });
    stack.lines().find_map(|line| {
        let c = re.captures(line)?;
        let file = c.get(1)?.as_str();
        if file == PRELUDE_NAME || file.starts_with(BUILTIN_PREFIX) || file == "<native>" {
            return None;
        }
        Some(Location {
            file: file.to_string(),
            line: c[2].parse().ok()?,
            column: c[3].parse().ok()?,
        })
    })
}

fn convert_error(
    caught: CaughtError<'_>,
    names: &Names,
    shifted: &HashSet<String>,
    limits: JsLimits,
) -> LoadError {
    let top = names.top_display.clone();
    let oom = || LoadError::OutOfMemory {
        file: top.clone(),
        limit_mb: limits.memory_limit / (1024 * 1024),
    };
    match caught {
        CaughtError::Exception(ex) => {
            let message = ex.message().unwrap_or_default();
            let name: String = ex
                .get::<_, Option<String>>("name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Error".into());
            if message == "out of memory" {
                return oom();
            }
            let stack = ex.stack().unwrap_or_default();
            let text = format!("{name}: {message}");
            match frame_location(&stack) {
                Some(loc) => {
                    let column = loc.column;
                    let mut line = loc.line;
                    if shifted.contains(&loc.file) {
                        line = line.saturating_sub(1).max(1);
                    }
                    let file = names.display(&loc.file);
                    if name == "SyntaxError" {
                        LoadError::Syntax {
                            file,
                            line,
                            column,
                            message: text,
                        }
                    } else {
                        LoadError::Runtime {
                            file,
                            line: Some(line),
                            column: Some(column),
                            message: text,
                        }
                    }
                }
                None => LoadError::Runtime {
                    file: top,
                    line: None,
                    column: None,
                    message: text,
                },
            }
        }
        CaughtError::Value(v) => {
            let shown = v
                .as_string()
                .and_then(|s| s.to_string().ok())
                .map(|s| format!("'{s}'"))
                .or_else(|| {
                    v.ctx()
                        .json_stringify(v.clone())
                        .ok()
                        .flatten()
                        .and_then(|s| s.to_string().ok())
                })
                .unwrap_or_else(|| format!("{:?}", v.type_of()));
            LoadError::Runtime {
                file: top,
                line: None,
                column: None,
                message: format!("Uncaught {shown}"),
            }
        }
        CaughtError::Error(rquickjs::Error::Allocation) => oom(),
        CaughtError::Error(e) => LoadError::Runtime {
            file: top,
            line: None,
            column: None,
            message: e.to_string(),
        },
    }
}
