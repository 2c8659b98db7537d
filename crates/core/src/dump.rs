//! The dump (`pmr save`/`resurrect`/`cleardump`): its file format, the atomic write that keeps
//! the previous dump as `.bak`, and the reading that sets a corrupt dump aside and falls back
//! to the `.bak`. Blocking I/O: the CLI calls it, the daemon only from a blocking thread.

use crate::protocol::{DumpProc, Status};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The format's version, written as `pmr_dump`.
pub const FORMAT: u32 = 1;

/// `dump.json` as pmr writes it. (PM2's `dump.pm2` is a bare array of `pm2_env` objects; an
/// empty array, which `cleardump` writes as PM2 does, is an empty dump in either format.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpFile {
    pub pmr_dump: u32,
    /// ms since the epoch.
    pub saved_at: i64,
    pub procs: Vec<DumpProc>,
}

/// What a dump file holds.
#[derive(Debug, Clone)]
pub enum Contents {
    Pmr(Vec<DumpProc>),
    /// PM2's `dump.pm2`: one `pm2_env` object per process, mapped to specs by the CLI.
    Pm2(Vec<serde_json::Map<String, serde_json::Value>>),
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        match self {
            Contents::Pmr(p) => p.is_empty(),
            Contents::Pm2(p) => p.is_empty(),
        }
    }
}

pub fn backup_path(path: &Path) -> PathBuf {
    suffixed(path, ".bak")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parse a dump's text; `Err` says what is wrong (not JSON, wrong types).
pub fn parse(text: &str) -> Result<Contents, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match v {
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    serde_json::Value::Object(m) => out.push(m),
                    other => {
                        return Err(format!(
                            "process {i} is {}, not an object",
                            json_kind(&other)
                        ))
                    }
                }
            }
            Ok(Contents::Pm2(out))
        }
        serde_json::Value::Object(ref m) if m.contains_key("pmr_dump") => {
            let f: DumpFile = serde_json::from_value(v).map_err(|e| format!("wrong types: {e}"))?;
            if f.pmr_dump > FORMAT {
                return Err(format!(
                    "written by a newer pmr (dump format {}, this pmr reads {FORMAT})",
                    f.pmr_dump
                ));
            }
            Ok(Contents::Pmr(f.procs))
        }
        other => Err(format!(
            "{} is neither a pmr dump nor PM2's list of processes",
            json_kind(&other)
        )),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A dump read for `resurrect`.
#[derive(Debug)]
pub struct Loaded {
    pub contents: Contents,
    /// The file it came from (the dump or its `.bak`).
    pub from: PathBuf,
    /// What went wrong on the way (a corrupt dump set aside), for the user.
    pub warnings: Vec<String>,
}

/// Read `path`; when it is corrupt, move it aside to `<path>.corrupt-<time>` (never lost,
/// never read again) and read `<path>.bak` instead. `Ok(None)`: neither exists.
pub fn load(path: &Path) -> Result<Option<Loaded>, String> {
    let mut warnings = Vec::new();
    match read(path) {
        Ok(Some(contents)) => {
            return Ok(Some(Loaded {
                contents,
                from: path.to_path_buf(),
                warnings,
            }))
        }
        Ok(None) => {}
        Err(why) if why.starts_with(UNREADABLE) => {
            return Err(format!("{}: {why}", path.display()));
        }
        Err(why) => {
            let aside = suffixed(
                path,
                &format!(
                    ".corrupt-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                ),
            );
            let moved = std::fs::rename(path, &aside)
                .map(|_| format!("kept as {}", aside.display()))
                .unwrap_or_else(|e| format!("could not move it aside: {e}"));
            warnings.push(format!(
                "{} is corrupt ({why}); {moved}; trying {}",
                path.display(),
                backup_path(path).display()
            ));
        }
    }
    let bak = backup_path(path);
    match read(&bak) {
        Ok(Some(contents)) => Ok(Some(Loaded {
            contents,
            from: bak,
            warnings,
        })),
        Ok(None) if warnings.is_empty() => Ok(None),
        Ok(None) => Err(format!("{}; {} does not exist", warnings[0], bak.display())),
        Err(why) => Err(format!(
            "{}{}{} is corrupt too ({why}); nothing started",
            warnings.join("; "),
            if warnings.is_empty() { "" } else { "; " },
            bak.display()
        )),
    }
}

/// `Ok(None)`: no such file. `Err`: what is wrong with its contents. A file that cannot be
/// read at all (permissions, I/O) is not corrupt: that is the caller's error, via `unreadable`.
fn read(path: &Path) -> Result<Option<Contents>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err("not UTF-8 text".into()),
        Err(e) => Err(format!("{UNREADABLE}{e}")),
    }
}

const UNREADABLE: &str = "cannot read it: ";

/// Mark the processes that cannot start any more: a script path or a `cwd` that is gone.
/// Programs found on PATH and command strings are left to the start itself.
pub fn check_files(procs: &mut [DumpProc]) {
    for p in procs.iter_mut().filter(|p| p.error.is_none()) {
        let s = &p.spec;
        if !Path::new(&s.cwd).is_dir() {
            p.error = Some(format!("cwd {} no longer exists", s.cwd));
        } else if s.script.starts_with('/') && !Path::new(&s.script).exists() {
            p.error = Some(format!("Script not found: {}", s.script));
        }
    }
}

/// The dump of a process list: `online` for everything that should run after a resurrect
/// (an errored app gets another chance), `stopped` for what the user stopped.
pub fn proc_of(info: &crate::protocol::ProcInfo) -> DumpProc {
    DumpProc {
        pm_id: info.pm_id,
        instance: info.instance,
        status: match info.status {
            Status::Stopped | Status::Stopping => Status::Stopped,
            _ => Status::Online,
        },
        spec: (*info.spec).clone(),
        error: None,
    }
}

pub fn encode(procs: Vec<DumpProc>) -> Vec<u8> {
    let f = DumpFile {
        pmr_dump: FORMAT,
        saved_at: chrono::Utc::now().timestamp_millis(),
        procs,
    };
    let mut v = serde_json::to_vec_pretty(&f).expect("a dump always serializes");
    v.push(b'\n');
    v
}

/// Replace `path` with `bytes` so that a crash or a full disk at any moment leaves either the
/// old file or the new one, never a mix: a temporary file beside it (mode 0600: a dump holds
/// every app's environment), fsync, rename, fsync of the directory. With `keep_backup`, a
/// readable previous dump is first copied to `<path>.bak` the same way (a corrupt one is not:
/// it would replace a good backup).
pub fn write_atomic(path: &Path, bytes: &[u8], keep_backup: bool) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if keep_backup {
        if let Ok(old) = std::fs::read(path) {
            let readable = std::str::from_utf8(&old).is_ok_and(|t| parse(t).is_ok());
            if readable {
                replace(&backup_path(path), &old)?;
            }
        }
    }
    replace(path, bytes)
}

fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::atomic_file::replace_private(path, |w| w.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch directory, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("pmr-dump-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn proc(name: &str, id: u32, status: Status) -> DumpProc {
        DumpProc {
            pm_id: id,
            instance: 0,
            status,
            spec: crate::spec::test_spec(name),
            error: None,
        }
    }

    #[test]
    fn a_dump_round_trips_and_pm2_lists_are_told_apart() {
        let procs = vec![proc("a", 0, Status::Online), proc("b", 3, Status::Stopped)];
        let text = String::from_utf8(encode(procs.clone())).unwrap();
        match parse(&text).unwrap() {
            Contents::Pmr(back) => assert_eq!(back, procs),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("[]").unwrap(), Contents::Pm2(v) if v.is_empty()));
        assert!(matches!(parse(r#"[{"name":"x"}]"#).unwrap(), Contents::Pm2(v) if v.len() == 1));
        for bad in [
            "{",
            "42",
            "[1]",
            r#"{"pmr_dump":1,"saved_at":0,"procs":[{"pm_id":"x"}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let newer = r#"{"pmr_dump":99,"saved_at":0,"procs":[]}"#;
        assert!(parse(newer).unwrap_err().contains("newer"));
    }

    #[test]
    fn writes_keep_a_backup_and_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new("write");
        let path = dir.path().join("dump.json");
        write_atomic(&path, &encode(vec![proc("a", 0, Status::Online)]), true).unwrap();
        assert!(!backup_path(&path).exists(), "nothing to back up yet");
        write_atomic(&path, &encode(vec![proc("b", 0, Status::Online)]), true).unwrap();
        let bak = std::fs::read_to_string(backup_path(&path)).unwrap();
        assert!(bak.contains("\"a\""), "{bak}");
        for p in [&path, &backup_path(&path)] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        // A corrupt dump is not copied over the good backup.
        std::fs::write(&path, "garbage").unwrap();
        write_atomic(&path, &encode(vec![]), true).unwrap();
        assert_eq!(std::fs::read_to_string(backup_path(&path)).unwrap(), bak);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left");
    }

    #[test]
    fn a_corrupt_dump_is_set_aside_and_the_backup_read() {
        let dir = Scratch::new("load");
        let path = dir.path().join("dump.json");
        assert!(load(&path).unwrap().is_none());
        write_atomic(&path, &encode(vec![proc("a", 0, Status::Online)]), true).unwrap();
        write_atomic(&path, &encode(vec![proc("b", 0, Status::Online)]), true).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        let l = load(&path).unwrap().unwrap();
        assert_eq!(l.from, backup_path(&path));
        assert!(l.warnings[0].contains("corrupt"), "{:?}", l.warnings);
        assert!(!path.exists());
        let aside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("dump.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        // Both bad: an error, nothing to start.
        std::fs::write(backup_path(&path), "[1]").unwrap();
        std::fs::write(&path, "nope").unwrap();
        assert!(load(&path).unwrap_err().contains("nothing started"));
    }
}
