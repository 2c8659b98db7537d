//! Which changed paths of a watched app do not count (`ignore_watch`), decided before a
//! directory is watched so an ignored tree (`node_modules`) gets no inotify watch and costs
//! nothing. Here, not in the daemon, because the CLI checks the patterns when an app starts.
//!
//! As PM2 (chokidar/anymatch): each entry is a glob (`*`, `**`, `?`, `[...]`, `{a,b}`), or a
//! regex written `/.../`. A glob with a `/` is matched against the path relative to the app's
//! `cwd` and the absolute path; a glob without one (`node_modules`, `*.log`) against every
//! name in the path, so `logs` also ignores `sub/logs/x` (chokidar only matches `cwd/logs`).
//! Without `ignore_watch` the default is PM2's: dotfiles/dot-directories and `node_modules`;
//! with it, `node_modules` and `.git` stay ignored (PM2 would start watching them).

use regex::Regex;
use std::path::{Component, Path, PathBuf};

enum Rule {
    Name(Regex),
    Path(Regex),
    Regex(Regex),
}

pub struct Ignore {
    cwd: PathBuf,
    rules: Vec<Rule>,
    dotfiles: bool,
}

impl Ignore {
    /// Fails on a pattern that is not a valid glob or regex, naming it.
    pub fn new(cwd: &Path, user: Option<&[String]>) -> Result<Ignore, String> {
        let mut rules = vec![Rule::Name(glob("node_modules")?), Rule::Name(glob(".git")?)];
        for p in user.unwrap_or_default() {
            rules.push(rule(p)?);
        }
        Ok(Ignore {
            cwd: cwd.to_path_buf(),
            rules,
            dotfiles: user.is_none(),
        })
    }

    /// `path` is absolute; `root` is the watched root it is under (names above the root,
    /// e.g. a `/tmp/.tmpXYZ` cwd, do not make everything ignored).
    pub fn is_ignored(&self, root: &Path, path: &Path) -> bool {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let names: Vec<&str> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => n.to_str(),
                _ => None,
            })
            .collect();
        if self.dotfiles && names.iter().any(|n| n.starts_with('.')) {
            return true;
        }
        let abs = path.to_string_lossy();
        let from_cwd = path
            .strip_prefix(&self.cwd)
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        self.rules.iter().any(|r| match r {
            Rule::Name(re) => names.iter().any(|n| re.is_match(n)),
            // A directory matched ignores all under it: try the path and its ancestors.
            Rule::Path(re) => path.ancestors().any(|a| {
                re.is_match(&a.to_string_lossy())
                    || a.strip_prefix(&self.cwd)
                        .is_ok_and(|p| re.is_match(&p.to_string_lossy()))
            }),
            Rule::Regex(re) => {
                re.is_match(&abs) || from_cwd.as_deref().is_some_and(|p| re.is_match(p))
            }
        })
    }
}

fn rule(p: &str) -> Result<Rule, String> {
    if p.len() > 2 && p.starts_with('/') {
        // `/re/flags`, as a RegExp written in a JS config and shown by PM2.
        if let Some(end) = p.rfind('/').filter(|&e| e > 0) {
            let flags = &p[end + 1..];
            if flags.chars().all(|c| "gimsuy".contains(c)) && end > 1 {
                let body = &p[1..end];
                let ci = if flags.contains('i') { "(?i)" } else { "" };
                if let Ok(re) = Regex::new(&format!("{ci}{body}")) {
                    return Ok(Rule::Regex(re));
                }
            }
        }
    }
    let p = p.strip_prefix("./").unwrap_or(p).trim_end_matches('/');
    if p.contains('/') {
        Ok(Rule::Path(glob(p)?))
    } else {
        Ok(Rule::Name(glob(p)?))
    }
}

/// A glob as an anchored regex: `*` and `?` stay within one name, `**` crosses `/`.
fn glob(g: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = g.chars().collect();
    let mut i = 0;
    let mut braces = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars[i + 1..] == ['*', '*'] {
            // `dir/**` also matches `dir` itself (as picomatch).
            re.push_str("(?:/.*)?");
            break;
        }
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => match chars[i..].iter().position(|&c| c == ']') {
                Some(len) if len > 1 => {
                    let body: String = chars[i + 1..i + len].iter().collect();
                    let body = body
                        .strip_prefix('!')
                        .map_or(body.clone(), |b| format!("^{b}"));
                    re.push('[');
                    re.push_str(&body.replace('\\', "\\\\"));
                    re.push(']');
                    i += len;
                }
                _ => re.push_str("\\["),
            },
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("ignore_watch pattern {g:?} is not a valid glob: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(user: Option<&[&str]>) -> Ignore {
        let user: Option<Vec<String>> = user.map(|u| u.iter().map(|s| s.to_string()).collect());
        Ignore::new(Path::new("/app"), user.as_deref()).unwrap()
    }

    #[test]
    fn defaults_ignore_dotfiles_and_node_modules_below_the_root_only() {
        let i = ig(None);
        let root = Path::new("/tmp/.tmpX/app");
        assert!(!i.is_ignored(root, Path::new("/tmp/.tmpX/app/index.js")));
        assert!(i.is_ignored(root, Path::new("/tmp/.tmpX/app/node_modules/a/b.js")));
        assert!(i.is_ignored(root, Path::new("/tmp/.tmpX/app/.git/HEAD")));
        assert!(i.is_ignored(root, Path::new("/tmp/.tmpX/app/.env")));
    }

    #[test]
    fn globs_and_regexes_as_pm2() {
        let i = ig(Some(&[
            "*.log",
            "dist/**",
            "/\\.tmp$/",
            "src/gen",
            "{a,b}.txt",
        ]));
        let r = Path::new("/app");
        assert!(i.is_ignored(r, Path::new("/app/x.log")));
        assert!(i.is_ignored(r, Path::new("/app/sub/y.log")));
        assert!(i.is_ignored(r, Path::new("/app/dist/x/y.js")));
        assert!(i.is_ignored(r, Path::new("/app/dist")));
        assert!(!i.is_ignored(r, Path::new("/app/distant.js")));
        assert!(i.is_ignored(r, Path::new("/app/src/gen/z.js")));
        assert!(i.is_ignored(r, Path::new("/app/w.tmp")));
        assert!(i.is_ignored(r, Path::new("/app/b.txt")));
        assert!(!i.is_ignored(r, Path::new("/app/c.txt")));
        assert!(!i.is_ignored(r, Path::new("/app/src/main.js")));
        // With ignore_watch, dotfiles count (as PM2) but node_modules and .git never do.
        assert!(!i.is_ignored(r, Path::new("/app/.env")));
        assert!(i.is_ignored(r, Path::new("/app/node_modules/q.js")));
        assert!(i.is_ignored(r, Path::new("/app/.git/index")));
    }
}
