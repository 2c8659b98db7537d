//! Is a file a Node.js program? By its extension, or by its first line (`#!/usr/bin/env node`),
//! so that framework CLIs such as `node_modules/next/dist/bin/next` (no extension) or
//! `node_modules/.bin/next` run under node — with IPC in fork mode, as workers in cluster mode.

use std::io::Read;
use std::path::{Path, PathBuf};

/// What the first line of a file asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Shebang {
    /// The program as written (`/usr/bin/node`, or `node` after `/usr/bin/env`).
    pub program: String,
    /// Its arguments: `#!/usr/bin/env -S node --max-old-space-size=100` → `["--max-old-space-size=100"]`.
    pub args: Vec<String>,
    /// The line itself, for messages.
    pub line: String,
}

impl Shebang {
    pub fn is_node(&self) -> bool {
        is_node_program(&self.program)
    }
}

/// `node`, `/usr/bin/node`, `node20`, `nodejs`.
pub fn is_node_program(p: &str) -> bool {
    let base = Path::new(p)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(p);
    base == "nodejs"
        || base
            .strip_prefix("node")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The `#!` line of `path`, if it has one (only the first 512 bytes are read).
pub fn shebang(path: &Path) -> Option<Shebang> {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_string();
    let mut words = line.split_whitespace().map(str::to_string);
    let mut program = words.next()?;
    let mut args: Vec<String> = words.collect();
    if Path::new(&program).file_name().is_some_and(|f| f == "env") {
        // `env [-S] [VAR=value..] program args..`: the kernel gives env one argument, which `-S`
        // splits; without `-S` only a lone program name works, and that is what we accept.
        let mut it = args.into_iter().peekable();
        while it
            .peek()
            .is_some_and(|a| a.starts_with('-') || a.contains('='))
        {
            it.next();
        }
        program = it.next()?;
        args = it.collect();
    }
    Some(Shebang {
        program,
        args,
        line: format!("#!{line}"),
    })
}

pub fn has_js_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "js" | "cjs" | "mjs"))
}

/// The node arguments of a Node program (`Some(vec![])` for a `.js` file, the shebang's flags
/// for a script with a node `#!`), or `None` when the file is not recognisably Node.
pub fn node_args_of(path: &Path) -> Option<Vec<String>> {
    if has_js_extension(path) {
        return Some(vec![]);
    }
    let real = std::fs::canonicalize(path).ok()?;
    if has_js_extension(&real) {
        return Some(vec![]);
    }
    shebang(&real).filter(Shebang::is_node).map(|s| s.args)
}

/// The JS file of `node_modules/.bin/<tool>`: the link's target, or — when the entry is a
/// shell shim (pnpm writes those) — the file the owning package's `bin` field names; `None`
/// when that is not a Node program.
pub fn bin_target(bin: &Path) -> Option<PathBuf> {
    if node_args_of(bin).is_some() {
        return std::fs::canonicalize(bin).ok();
    }
    let tool = bin.file_name()?.to_str()?;
    let modules = bin.parent()?.parent()?;
    package_bin(modules, tool).filter(|f| node_args_of(f).is_some())
}

/// Search `node_modules` (one level, and `@scope/` packages) for the package whose `bin`
/// field defines `tool`. The tool's own package is tried first, so this is usually one read.
pub fn package_bin(modules: &Path, tool: &str) -> Option<PathBuf> {
    let mut dirs = vec![modules.join(tool)];
    if let Ok(rd) = std::fs::read_dir(modules) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('@') {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    dirs.extend(rd.flatten().map(|e| e.path()));
                }
            } else {
                dirs.push(p);
            }
        }
    }
    dirs.into_iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
        let pkg: serde_json::Value = serde_json::from_str(&text).ok()?;
        let rel = match &pkg["bin"] {
            serde_json::Value::String(s) => {
                let name = pkg["name"].as_str()?;
                (name.rsplit('/').next() == Some(tool)).then(|| s.clone())?
            }
            serde_json::Value::Object(o) => o.get(tool)?.as_str()?.to_string(),
            _ => return None,
        };
        let f = dir.join(rel);
        f.is_file().then(|| std::fs::canonicalize(&f).unwrap_or(f))
    })
}

/// Whether `path` is inside a `node_modules/.bin` folder.
pub fn is_in_bin_dir(path: &Path) -> bool {
    let mut c = path.components().rev().skip(1);
    c.next().is_some_and(|d| d.as_os_str() == ".bin")
        && c.next().is_some_and(|d| d.as_os_str() == "node_modules")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pmr-nd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn shebang_forms() {
        let d = tmp("shebang");
        let w = |n: &str, s: &str| {
            let p = d.join(n);
            std::fs::write(&p, s).unwrap();
            p
        };
        let a = w("a", "#!/usr/bin/env node\nconsole.log(1)\n");
        assert_eq!(node_args_of(&a), Some(vec![]));
        let b = w("b", "#!/usr/bin/node\n");
        assert_eq!(node_args_of(&b), Some(vec![]));
        let c = w(
            "c",
            "#!/usr/bin/env -S node --max-old-space-size=100 --enable-source-maps\r\n",
        );
        assert_eq!(
            node_args_of(&c),
            Some(vec![
                "--max-old-space-size=100".to_string(),
                "--enable-source-maps".into()
            ])
        );
        let py = w("py", "#!/usr/bin/env python3\n");
        assert_eq!(node_args_of(&py), None);
        assert_eq!(shebang(&py).unwrap().program, "python3");
        let none = w("none", "console.log(1)\n");
        assert_eq!(node_args_of(&none), None);
        assert!(shebang(&none).is_none());
        let js = w("x.mjs", "");
        assert_eq!(node_args_of(&js), Some(vec![]));
        assert!(is_node_program("/usr/local/bin/node") && is_node_program("node20"));
        assert!(!is_node_program("nodemon"));
    }

    #[test]
    fn bin_links_and_shims() {
        let d = tmp("bin");
        let pkg = d.join("node_modules/tool");
        std::fs::create_dir_all(pkg.join("dist")).unwrap();
        std::fs::create_dir_all(d.join("node_modules/.bin")).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            r#"{"name":"tool","bin":{"tool":"dist/cli"}}"#,
        )
        .unwrap();
        std::fs::write(pkg.join("dist/cli"), "#!/usr/bin/env node\n").unwrap();
        let link = d.join("node_modules/.bin/tool");
        std::os::unix::fs::symlink("../tool/dist/cli", &link).unwrap();
        assert!(is_in_bin_dir(&link));
        assert_eq!(node_args_of(&link), Some(vec![]));
        let real = std::fs::canonicalize(pkg.join("dist/cli")).unwrap();
        assert_eq!(bin_target(&link), Some(real.clone()));
        // A pnpm-style shell shim: followed through the package's `bin` field.
        std::fs::remove_file(&link).unwrap();
        std::fs::write(
            &link,
            "#!/bin/sh\nexec node \"$basedir/../tool/dist/cli\" \"$@\"\n",
        )
        .unwrap();
        assert_eq!(node_args_of(&link), None);
        assert_eq!(bin_target(&link), Some(real));
    }
}
