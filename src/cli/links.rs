//! `setup-links`: the names the binary answers to, as links beside it (or in a directory given):
//! `pmr-runtime` (containers), and with `--pm2` the `pm2` and `pm2-runtime` of PM2's users. The
//! npm package and the .deb make `pmr-runtime` themselves; `cargo install` cannot, hence this.

use super::Out;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// The links for `pm2` too (`--pm2`): pmr then runs with PM2's home and names when called so.
pub fn setup_links(out: &Out, dir: Option<&Path>, pm2: bool) -> Result<i32> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir: PathBuf = match dir {
        Some(d) => d.to_path_buf(),
        None => exe
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?
            .to_path_buf(),
    };
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let mut names = vec!["pmr-runtime"];
    if pm2 {
        names.extend(["pm2", "pm2-runtime"]);
    }
    // Checked before anything is made: a name taken by something else changes nothing.
    for n in &names {
        let link = dir.join(n);
        if let Some(other) = taken(&link, &exe) {
            bail!(
                "{} exists and is {other}, not a link to {}: remove it first",
                link.display(),
                exe.display()
            );
        }
    }
    for n in &names {
        let link = dir.join(n);
        if link.symlink_metadata().is_ok() {
            out.info(format!(
                "{} already links to {}",
                link.display(),
                exe.display()
            ));
            continue;
        }
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
        out.info(format!("{} -> {}", link.display(), exe.display()));
    }
    Ok(0)
}

/// What `link` is when it is something other than a link to `exe` (`None`: free, or ours).
fn taken(link: &Path, exe: &Path) -> Option<String> {
    let meta = link.symlink_metadata().ok()?;
    if !meta.file_type().is_symlink() {
        return Some("a file".into());
    }
    match link.canonicalize() {
        Ok(target) if target == exe => None,
        Ok(target) => Some(format!("a link to {}", target.display())),
        Err(_) => Some("a dangling link".into()),
    }
}
