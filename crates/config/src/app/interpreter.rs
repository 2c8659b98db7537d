//! Which program runs a script: by its extension, else by its content, and whether that
//! program is installed.

use crate::node_detect;
use std::path::{Path, PathBuf};

/// Interpreter chosen by the script's extension (PM2's `interpreter.json`).
pub(super) fn for_extension(ext: &str) -> Option<&'static str> {
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

/// The interpreter of a file without a known extension, by its content.
pub(super) struct ByContent {
    pub interpreter: Option<String>,
    /// A node shebang's flags (`env -S node --flags`).
    pub node_args: Vec<String>,
    /// The package's JS file a `node_modules/.bin` shim stands for, to run instead.
    pub target: Option<PathBuf>,
}

/// Node for a node shebang (with the shebang's flags), and for a `node_modules/.bin` shim of a
/// Node package (with the package's JS file to run instead); none for another executable (whose
/// `#!` interpreter must exist); node for a plain file, as in PM2.
pub(super) fn by_content(file: &Path, path_var: &str) -> Result<ByContent, String> {
    let node = |node_args, target| ByContent {
        interpreter: Some("node".into()),
        node_args,
        target,
    };
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
        return Ok(node(flags, None));
    }
    if node_detect::is_in_bin_dir(file) {
        if let Some(t) = node_detect::bin_target(file) {
            let flags = node_detect::node_args_of(&t).unwrap_or_default();
            return Ok(node(flags, Some(t)));
        }
    }
    if !is_executable(file) {
        return Ok(node(vec![], None));
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
    Ok(ByContent {
        interpreter: None,
        node_args: vec![],
        target: None,
    })
}

/// The interpreter as the spec names it, checked now so that a missing one is an error before
/// anything starts; the name is kept as written (`node`, as PM2 shows it) and found again on
/// the child's PATH at spawn.
pub(super) fn available(interpreter: String, path_var: &str) -> Result<String, String> {
    if which(&interpreter, path_var).is_some() {
        Ok(interpreter)
    } else if interpreter == "python" && which("python3", path_var).is_some() {
        // PM2 falls back from python to python3.
        Ok("python3".to_string())
    } else {
        Err(format!(
            "Interpreter {interpreter} is not available in PATH"
        ))
    }
}

/// Node (or bun, which runs Node programs): what PM2's cluster mode needs.
pub(super) fn is_node(interpreter: Option<&str>) -> bool {
    interpreter.is_some_and(|i| {
        matches!(
            Path::new(i).file_name().and_then(|f| f.to_str()),
            Some("node" | "bun")
        )
    })
}
