//! Why a config could not be loaded: every message names the file.

use std::path::Path;

/// Why a config could not be loaded. Every message names the file; syntax errors also give
/// `line:column` (1-based).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (`cannot read ecosystem.json: No such file or directory`).
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    /// The file name does not say which format it is in.
    #[error(
        "{file}: unknown config format (expected .json, .yaml, .yml, .toml, .js, .cjs or .mjs)"
    )]
    UnknownFormat { file: String },

    /// A syntax error in JSON5, YAML, TOML or JavaScript.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },

    /// An exception thrown while running a JavaScript config (location when the engine has one).
    #[error("{file}{}: {message}", location(*.line, *.column))]
    Runtime {
        file: String,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },

    /// The config requires a module only Node.js provides, and `node` is not on `PATH`.
    #[error(
        "{file}: require('{module}') is not available without Node.js (install node, or remove it)"
    )]
    NeedsNode { file: String, module: String },

    /// Evaluation with Node.js (the fallback) failed.
    #[error("{file}: evaluating with node failed: {message}")]
    Node { file: String, message: String },

    /// The config ran longer than the time limit (an endless loop?).
    #[error("{file}: evaluation stopped after {seconds} s (endless loop?)")]
    Timeout { file: String, seconds: f64 },

    /// The config used more memory than allowed.
    #[error("{file}: evaluation stopped: out of memory (limit {limit_mb} MB)")]
    OutOfMemory { file: String, limit_mb: usize },

    /// The loaded value has no usable app list (see [`apps_of`]).
    #[error("{}{message}", file_prefix(.file))]
    Shape {
        file: Option<String>,
        message: String,
    },
}

fn location(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn file_prefix(file: &Option<String>) -> String {
    file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

impl LoadError {
    /// Name the file in a [`LoadError::Shape`] error from [`apps_of`].
    pub fn with_file(self, path: &Path) -> Self {
        match self {
            LoadError::Shape {
                file: None,
                message,
            } => LoadError::Shape {
                file: Some(path.display().to_string()),
                message,
            },
            other => other,
        }
    }
}

/// An io::Error's text without Rust's ` (os error N)` suffix.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
