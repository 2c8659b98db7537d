//! Paths as the user wrote them, made absolute against a directory (`cwd`, or the CLI's).

use super::BuildCtx;
use std::path::{Component, Path, PathBuf};

/// The stage that places the app: `cwd` against the CLI's directory (or the config file's),
/// which must be a directory.
pub(super) fn cwd(given: Option<&str>, ctx: &BuildCtx) -> Result<PathBuf, String> {
    let cwd = match given {
        Some(c) => abs(&ctx.base_dir, c),
        None => ctx.base_dir.clone(),
    };
    if !cwd.is_dir() {
        return Err(format!("cwd {} is not a directory", cwd.display()));
    }
    Ok(cwd)
}

pub(super) fn abs(base: &Path, p: &str) -> PathBuf {
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
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
