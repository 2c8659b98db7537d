//! A request path → what to answer, with every file system access of a request (blocking: the
//! caller runs it on the blocking pool). PM2's `serveFile`/`serveStaticFile` order is kept:
//! the URL's dot segments are resolved as a URL parser does (clamped at `/`), then the path is
//! percent-decoded, and a decoded path that climbs out of the root (`..%2f`) is refused (403).
//!
//! Where pmr differs, on purpose:
//! - a file reached through a symlink that leads outside the root is refused (403), where PM2
//!   follows it;
//! - a malformed escape (`%E0%A4%A`) or a NUL is a 400, where it crashes PM2's server;
//! - a directory other than the root serves its `index.html` (after a redirect to the path with
//!   a trailing `/`, so relative links work), where PM2 answers 500 EISDIR;
//! - devices, FIFOs and sockets are never opened (403): reading them could block forever.

use super::listing;
use super::mime::content_type;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Site {
    /// Canonical (symlinks resolved), so containment is a prefix test.
    pub root: PathBuf,
    /// Unknown paths serve `/<basename>` if that exists, else the homepage.
    pub spa: bool,
    /// Directories without `index.html` get a listing.
    pub ftp: bool,
    /// What `/` serves (`PM2_SERVE_HOMEPAGE`, default `/index.html`).
    pub homepage: String,
}

#[derive(Debug)]
pub enum Reply {
    File {
        file: File,
        len: u64,
        content_type: &'static str,
    },
    Listing(String),
    /// The path names a directory but lacks the trailing `/`.
    AddSlash,
    /// With the site's `404.html` when there is one.
    NotFound(Option<(File, u64)>),
    Forbidden,
    BadRequest,
    /// 500, with the errno name PM2 shows (`EACCES`, `EISDIR`, ...).
    Error(String),
}

enum Fail {
    NotFound,
    Forbidden,
    Other(String),
}

/// `raw` is the request's path as sent (percent-encoded, no query).
pub fn resolve(site: &Site, raw: &str) -> Reply {
    let Some(mut file) = url_path(raw) else {
        return Reply::BadRequest;
    };
    let mut want_homepage = false;
    // PM2's SPA retries: the path, then `/<basename>`, then the homepage. Bounded, in case the
    // homepage itself is a directory.
    for pass in 0..3 {
        let Some(rel) = contained(&file) else {
            return Reply::Forbidden;
        };
        let path = rel.iter().fold(site.root.clone(), |p, c| p.join(c));
        let is_root = rel.is_empty();
        let (target, target_file) = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                if !inside(site, &path) {
                    return Reply::Forbidden;
                }
                if pass == 0 && !is_root && !file.ends_with('/') {
                    return Reply::AddSlash;
                }
                let index = path.join("index.html");
                if site.ftp {
                    if !index.is_file() {
                        return match listing::render(&path, &file) {
                            Ok(html) => Reply::Listing(html),
                            Err(e) => Reply::Error(errno_name(&e)),
                        };
                    }
                    (index, format!("{}/index.html", file.trim_end_matches('/')))
                } else if is_root {
                    (homepage_path(site), site.homepage.clone())
                } else {
                    (index, format!("{}/index.html", file.trim_end_matches('/')))
                }
            }
            _ if is_root => (homepage_path(site), site.homepage.clone()),
            _ => (path, file.clone()),
        };
        if target_file == site.homepage {
            want_homepage = true;
        }
        match open_inside(site, &target) {
            Ok((f, len)) => {
                return Reply::File {
                    file: f,
                    len,
                    content_type: content_type(&target),
                }
            }
            Err(Fail::Forbidden) => return Reply::Forbidden,
            Err(Fail::Other(code)) => {
                log_error(&target, &code);
                return Reply::Error(code);
            }
            Err(Fail::NotFound) => {
                if !site.spa || target_file == site.homepage {
                    log_error(&target, "ENOENT");
                }
                if site.spa && !want_homepage {
                    want_homepage = true;
                    let base = Path::new(&target_file)
                        .file_name()
                        .map(|b| b.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    file = format!("/{base}");
                } else if site.spa && target_file != site.homepage {
                    file = site.homepage.clone();
                } else {
                    break;
                }
            }
        }
    }
    Reply::NotFound(open_inside(site, &site.root.join("404.html")).ok())
}

fn log_error(path: &Path, code: &str) {
    // PM2's line (to the app's error log).
    eprintln!(
        "[{}] Error while serving {} with content-type {} : {code}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        path.display(),
        content_type(path)
    );
}

fn homepage_path(site: &Site) -> PathBuf {
    match contained(&site.homepage) {
        Some(rel) => rel.iter().fold(site.root.clone(), |p, c| p.join(c)),
        None => site.root.join("index.html"),
    }
}

/// Is `path`, symlinks resolved, still under the root?
fn inside(site: &Site, path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|c| c.starts_with(&site.root))
}

/// Open a regular file that lies, symlinks resolved, under the root.
fn open_inside(site: &Site, path: &Path) -> Result<(File, u64), Fail> {
    let canon = std::fs::canonicalize(path).map_err(|e| classify(&e))?;
    if !canon.starts_with(&site.root) {
        return Err(Fail::Forbidden);
    }
    let meta = std::fs::metadata(&canon).map_err(|e| classify(&e))?;
    if meta.is_dir() {
        return Err(Fail::Other("EISDIR".into()));
    }
    if !meta.is_file() {
        return Err(Fail::Forbidden);
    }
    // O_NONBLOCK: should a FIFO be swapped in after the check, opening it must not hang.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&canon)
        .map_err(|e| classify(&e))?;
    let len = f.metadata().map_err(|e| classify(&e))?.len();
    Ok((f, len))
}

fn classify(e: &std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) {
        Fail::NotFound
    } else {
        Fail::Other(errno_name(e))
    }
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => "EIO".into(),
    }
}

/// The request path as Node's `decodeURIComponent(new URL(path).pathname)`: dot segments (also
/// as `%2e`) resolved and clamped at `/`, `\` taken as `/`, then percent-decoded. `None` for a
/// malformed escape, bytes that are not UTF-8, a NUL, or a path that is not absolute.
pub fn url_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = raw.split(['/', '\\']).skip(1).collect();
    let mut segs: Vec<&str> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let lower = p.to_ascii_lowercase();
        let single = matches!(lower.as_str(), "." | "%2e");
        let double = matches!(lower.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e");
        if double {
            segs.pop();
        }
        if single || double {
            if last {
                segs.push("");
            }
        } else {
            segs.push(p);
        }
    }
    let joined = format!("/{}", segs.join("/"));
    let bytes = percent_decode(joined.as_bytes())?;
    let s = String::from_utf8(bytes).ok()?;
    (!s.contains('\0')).then_some(s)
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The decoded path's components under the root, as `path.resolve(root + file)` would make
/// them; `None` when it climbs above the root.
fn contained(file: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for c in file.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
