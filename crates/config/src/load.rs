//! Loading ecosystem files into a `serde_json::Value`, exactly as the file exports it.
//!
//! Formats (PM2's, plus `.toml`): `.json` (JSON5-tolerant; as a last resort, like PM2, evaluated
//! as a JavaScript expression), `.yaml`/`.yml`, `.toml`, `.js`/`.cjs` (CommonJS) and `.mjs` (ES
//! module) in an embedded engine (see `load/js.rs`). A JS config that needs a module the engine
//! lacks (`dotenv`, `child_process`, ...) is handed to `node` when it is on `PATH`.
//!
//! This module only loads; validating and normalising app options happens elsewhere.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

mod error;
mod js;
mod node;

use error::io_reason;
pub use error::LoadError;
use js::{JsKind, JsLimits, Names};

/// The format of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `.json` / `.json5`, and stdin: JSON5.
    Json,
    /// `.yaml` / `.yml`.
    Yaml,
    /// `.toml`.
    Toml,
    /// `.js` / `.cjs`: CommonJS (or an ES module, when the source uses `import`/`export`).
    Js,
    /// `.mjs`: ES module.
    Mjs,
}

impl ConfigKind {
    /// The format, from the file name: by extension, else by PM2's substring rule.
    pub fn from_path(path: &Path) -> Option<ConfigKind> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let by_ext = match ext.to_ascii_lowercase().as_str() {
            "json" | "json5" => Some(ConfigKind::Json),
            "yaml" | "yml" => Some(ConfigKind::Yaml),
            "toml" => Some(ConfigKind::Toml),
            "js" | "cjs" => Some(ConfigKind::Js),
            "mjs" => Some(ConfigKind::Mjs),
            _ => None,
        };
        if by_ext.is_some() {
            return by_ext;
        }
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.contains(".json") {
            Some(ConfigKind::Json)
        } else if name.contains(".yml") || name.contains(".yaml") {
            Some(ConfigKind::Yaml)
        } else if name.contains(".toml") {
            Some(ConfigKind::Toml)
        } else if name.contains(".config.mjs") {
            Some(ConfigKind::Mjs)
        } else if name.contains(".config.js") || name.contains(".config.cjs") {
            Some(ConfigKind::Js)
        } else {
            None
        }
    }
}

/// Knobs for one load. `Default` reads `PATH` from the environment.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where to look for `node` for the fallback (a `PATH`-style list); `None`: nowhere.
    pub path_env: Option<OsString>,
    /// Wall-clock limit for evaluating a JS config in the embedded engine.
    pub timeout: Duration,
    /// Memory limit of the embedded engine, in bytes.
    pub memory_limit: usize,
    /// Wall-clock limit for the `node` fallback.
    pub node_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            path_env: std::env::var_os("PATH"),
            timeout: Duration::from_secs(3),
            memory_limit: 256 * 1024 * 1024,
            node_timeout: Duration::from_secs(10),
        }
    }
}

/// PM2's rule (`Common.isConfigFile`): the argument names a config file if it contains one of
/// `.json`, `.yml`, `.yaml`, `.config.js`, `.config.cjs`, `.config.mjs`; pmr adds `.toml`.
pub fn is_config_file(arg: &str) -> bool {
    [
        ".json",
        ".yml",
        ".yaml",
        ".config.js",
        ".config.cjs",
        ".config.mjs",
        ".toml",
    ]
    .iter()
    .any(|s| arg.contains(s))
}

/// Load a config file and return what it exports, unvalidated.
pub fn load_file(path: &Path) -> Result<Value, LoadError> {
    load_file_with(path, &LoadOptions::default())
}

/// [`load_file`] with explicit options.
pub fn load_file_with(path: &Path, opts: &LoadOptions) -> Result<Value, LoadError> {
    let display = path.display().to_string();
    let read_err = |e: std::io::Error| LoadError::Read {
        path: display.clone(),
        reason: io_reason(&e),
    };
    let bytes = std::fs::read(path).map_err(read_err)?;
    let kind = ConfigKind::from_path(path).ok_or_else(|| LoadError::UnknownFormat {
        file: display.clone(),
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            return Err(LoadError::Read {
                path: display,
                reason: "not valid UTF-8".into(),
            })
        }
    };
    // Node resolves symlinks for __filename; so do we.
    let abs = std::fs::canonicalize(path).map_err(read_err)?;
    load_text(&text, kind, &abs, display, opts, true)
}

/// Load config text that has no file of its own (stdin: `pmr start -`). `virtual_path` names
/// it in errors and, for JS, gives `__filename`/`__dirname`.
pub fn load_str(text: &str, kind: ConfigKind, virtual_path: &Path) -> Result<Value, LoadError> {
    load_str_with(text, kind, virtual_path, &LoadOptions::default())
}

/// [`load_str`] with explicit options. No `node` fallback: there is no file to give it.
pub fn load_str_with(
    text: &str,
    kind: ConfigKind,
    virtual_path: &Path,
    opts: &LoadOptions,
) -> Result<Value, LoadError> {
    let abs = std::path::absolute(virtual_path).unwrap_or_else(|_| virtual_path.to_path_buf());
    load_text(
        text,
        kind,
        &abs,
        virtual_path.display().to_string(),
        opts,
        false,
    )
}

fn load_text(
    text: &str,
    kind: ConfigKind,
    abs: &Path,
    display: String,
    opts: &LoadOptions,
    real_file: bool,
) -> Result<Value, LoadError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let names = Names {
        top_abs: abs.to_path_buf(),
        top_display: display.clone(),
    };
    match kind {
        ConfigKind::Json => parse_json(text, abs, &names, opts),
        ConfigKind::Yaml => parse_yaml(text, &display),
        ConfigKind::Toml => parse_toml(text, &display),
        ConfigKind::Js | ConfigKind::Mjs => {
            let js_kind = if kind == ConfigKind::Mjs || js::looks_like_esm(text) {
                JsKind::Module
            } else {
                JsKind::CommonJs
            };
            let result = js::eval(text, abs, js_kind, &names, limits(opts));
            let missing = match &result {
                Ok(outcome) => outcome.missing.first().cloned(),
                Err(failure) => failure.missing.first().cloned(),
            };
            let Some(module) = missing else {
                return result.map(|o| o.value).map_err(|f| f.error);
            };
            // The config asked for something only Node has. Node's answer is the faithful one,
            // even when the config caught the failed require and carried on.
            let node = if real_file {
                node::find_node(opts.path_env.as_deref())
            } else {
                None
            };
            match (node, result) {
                (Some(node), _) => node::eval_with_node(&node, abs, &display, opts.node_timeout),
                (None, Ok(outcome)) => Ok(outcome.value),
                (None, Err(_)) => Err(LoadError::NeedsNode {
                    file: display,
                    module,
                }),
            }
        }
    }
}

fn limits(opts: &LoadOptions) -> JsLimits {
    JsLimits {
        timeout: opts.timeout,
        memory_limit: opts.memory_limit,
    }
}

/// `"expected comma at line 3 column 5"` → `"expected comma"` (the position is given apart).
fn strip_position(msg: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r" at line \d+ column \d+").expect("valid regex"))
        .replace_all(msg, "")
        .into_owned()
}

fn parse_json(
    text: &str,
    abs: &Path,
    names: &Names,
    opts: &LoadOptions,
) -> Result<Value, LoadError> {
    let err = match json5::from_str::<Value>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // PM2 evaluates `.json` as a JavaScript expression, so `"port": process.env.PORT || 3000`
    // works there. Try that before reporting the JSON5 error.
    if let Ok(outcome) = js::eval(text, abs, JsKind::Expression, names, limits(opts)) {
        if outcome.missing.is_empty() {
            return Ok(outcome.value);
        }
    }
    let message = match err.code() {
        Some(code) => code.to_string(),
        None => strip_position(&err.to_string()),
    };
    let (line, column) = err
        .position()
        .map(|p| (p.line as u32 + 1, p.column as u32 + 1))
        .unwrap_or((1, 1));
    Err(LoadError::Syntax {
        file: names.top_display.clone(),
        line,
        column,
        message: format!("JSON5: {message}"),
    })
}

fn parse_yaml(text: &str, display: &str) -> Result<Value, LoadError> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| {
        let message = format!("YAML: {}", strip_position(&e.to_string()));
        match e.location() {
            Some(loc) => LoadError::Syntax {
                file: display.to_string(),
                line: loc.line() as u32,
                column: loc.column() as u32,
                message,
            },
            None => LoadError::Runtime {
                file: display.to_string(),
                line: None,
                column: None,
                message,
            },
        }
    })
}

fn parse_toml(text: &str, display: &str) -> Result<Value, LoadError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        LoadError::Syntax {
            file: display.to_string(),
            line,
            column,
            message: format!("TOML: {}", e.message().trim_end()),
        }
    })?;
    Ok(toml_to_json(toml::Value::Table(table)))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let col_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[col_start..].chars().count() as u32 + 1;
    (line, column)
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// The app list of a loaded config: `apps` (a list, or one app object), legacy `pm2`, a bare
/// app object (one with `script`, or its aliases `cmd`/`command`/`exec`), or a top-level array.
pub fn apps_of(value: &Value) -> Result<Vec<Map<String, Value>>, LoadError> {
    let shape = |message: String| LoadError::Shape {
        file: None,
        message,
    };
    let list = |v: &Value, key: &str| -> Result<Vec<Map<String, Value>>, LoadError> {
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(m) => Ok(m.clone()),
                    other => Err(shape(format!(
                        "{key}[{i}] must be an object, not {}",
                        type_name(other)
                    ))),
                })
                .collect(),
            Value::Object(m) => Ok(vec![m.clone()]),
            other => Err(shape(format!(
                "`{key}` must be a list of apps or an app object, not {}",
                type_name(other)
            ))),
        }
    };
    match value {
        Value::Object(m) => {
            if let Some(apps) = m.get("apps") {
                list(apps, "apps")
            } else if let Some(apps) = m.get("pm2") {
                list(apps, "pm2")
            } else if ["script", "cmd", "command", "exec"]
                .iter()
                .any(|k| m.contains_key(*k))
            {
                Ok(vec![m.clone()])
            } else {
                let mut msg = String::from("no `apps` in the config (expected `apps: [...]`");
                let _ = write!(msg, ", an app object with `script`, or a list of apps)");
                Err(shape(msg))
            }
        }
        Value::Array(_) => list(value, "apps"),
        other => Err(shape(format!(
            "the config exports {}, not an object with `apps`",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
