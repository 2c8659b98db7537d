//! The API's bearer token: `$PMR_HOME/http.token`, 64 hex characters (32 random bytes from the
//! kernel), mode 0600 from its creation, kept across restarts, replaced by `--rotate-token`.
//! Checked in constant time. Blocking file I/O: callers run it on the blocking pool.

use std::io::Read;
use std::path::{Path, PathBuf};

pub fn token_path(home: &pmr_core::paths::Home) -> PathBuf {
    home.root.join("http.token")
}

fn fresh() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn valid(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The stored token, or a new one written first (also when the file holds garbage).
pub fn load_or_create(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let t = text.trim();
        if valid(t) {
            return Ok(t.to_string());
        }
    }
    rotate(path)
}

/// A new token, written atomically (0600 temp file, fsync, rename).
pub fn rotate(path: &Path) -> std::io::Result<String> {
    let token = fresh()?;
    pmr_core::atomic_file::replace_private(path, |w| writeln!(w, "{token}"))?;
    Ok(token)
}

/// `Authorization` header value → whether it carries `token`; the error is the API's wording.
pub fn check(header: Option<&[u8]>, token: &str) -> Result<(), &'static str> {
    let Some(h) = header else {
        return Err("missing bearer token");
    };
    let given = match h.get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"bearer ") => h[7..].trim_ascii(),
        _ => return Err("missing bearer token"),
    };
    if constant_time_eq(given, token.as_bytes()) {
        Ok(())
    } else {
        Err("bad token")
    }
}

/// Time independent of where the first difference is (the length is not secret: always 64).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let t = "ab".repeat(32);
        assert_eq!(check(None, &t), Err("missing bearer token"));
        assert_eq!(check(Some(b"Basic xyz"), &t), Err("missing bearer token"));
        assert_eq!(check(Some(b"Bearer nope"), &t), Err("bad token"));
        let good = format!("Bearer {t}");
        assert_eq!(check(Some(good.as_bytes()), &t), Ok(()));
        let lower = format!("bearer  {t} ");
        assert_eq!(check(Some(lower.as_bytes()), &t), Ok(()));
    }

    #[test]
    fn token_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pmr-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("http.token");
        let a = load_or_create(&p).unwrap();
        assert!(valid(&a));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create(&p).unwrap(), a);
        let b = rotate(&p).unwrap();
        assert_ne!(a, b);
        assert_eq!(load_or_create(&p).unwrap(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
