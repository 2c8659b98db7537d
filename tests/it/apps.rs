//! Real apps from the npm registry (`tests/apps/<name>`, pinned by their package-lock.json),
//! installed once with `npm ci` (and `next build`) into a cache outside git that survives
//! between runs: `${PMR_TEST_APPS_CACHE:-$HOME/.cache/pmr-test-apps}/<name>-<hash>`, the hash
//! covering the lock file and the sources, so an edit installs afresh. A `OnceLock` per app
//! serialises the tests of one binary; an flock on the cache serialises test binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn sources(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name)
}

fn cache_root() -> PathBuf {
    match std::env::var_os("PMR_TEST_APPS_CACHE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/pmr-test-apps"),
    }
}

/// Source files of an app, relative, sorted (what the hash and the copy cover).
fn files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name == "node_modules" || name == ".next" {
            continue;
        }
        let r = rel.join(&name);
        if e.file_type().unwrap().is_dir() {
            files(root, &r, out);
        } else {
            out.push(r);
        }
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn hash(root: &Path, list: &[PathBuf]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for f in list {
        let bytes = [
            f.to_string_lossy().as_bytes(),
            &[0],
            &std::fs::read(root.join(f)).unwrap(),
            &[0],
        ]
        .concat();
        for b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env("npm_config_update_notifier", "false")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is node/npm installed?): {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed in {}:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn install(name: &str, src: &Path) -> PathBuf {
    let mut list = Vec::new();
    files(src, Path::new(""), &mut list);
    let root = cache_root();
    std::fs::create_dir_all(&root).unwrap();
    let dir = root.join(format!("{name}-{}", hash(src, &list)));
    let ready = dir.join(".pmr-ready");
    if ready.exists() {
        return dir;
    }
    let lock = std::fs::File::create(root.join(format!("{name}.lock"))).unwrap();
    // Held until this function returns.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if ready.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    for f in &list {
        let to = dir.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), to).unwrap();
    }
    eprintln!("installing test app {name} into {}", dir.display());
    run(
        &dir,
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
    );
    if name == "nextjs" {
        run(&dir, "node", &["node_modules/next/dist/bin/next", "build"]);
    }
    std::fs::write(&ready, "").unwrap();
    dir
}

/// The installed (and built) copy of `tests/apps/<name>`.
pub fn app(name: &str) -> PathBuf {
    installed(name, &sources(name))
}

/// The installed copy of the npm project in `src` (a package.json and its package-lock.json),
/// cached as `<name>-<hash>`: how the PM2 harness gets its pinned PM2.
pub fn installed(name: &str, src: &Path) -> PathBuf {
    static APPS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut apps = APPS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    apps.entry(name.to_string())
        .or_insert_with(|| install(name, src))
        .clone()
}
