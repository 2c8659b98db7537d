//! The watch stage: restart on file changes.

use crate::loose::Switch;
use crate::raw_app::WatchOpts;
use pmr_core::spec::{AppSpec, Watch};
use serde_json::{Map, Value};
use std::path::Path;

pub(super) struct Watching {
    pub watch: Watch,
    pub ignore_watch: Option<Vec<String>>,
    pub watch_delay: Option<u64>,
    pub watch_options: Option<Map<String, Value>>,
}

pub(super) fn resolve(opts: WatchOpts) -> Watching {
    Watching {
        watch: match opts.watch {
            Some(Switch::Bool(true)) => Watch::Cwd,
            Some(Switch::List(paths)) => Watch::Paths(paths),
            Some(Switch::Bool(false)) | None => Watch::Off,
        },
        ignore_watch: opts.ignore_watch,
        watch_delay: opts.watch_delay,
        watch_options: opts.watch_options,
    }
}

/// Each watched path must exist and be readable (root reads anything: nothing to say
/// then); `ignore_watch` patterns must be valid globs or regexes. On the built spec, whose
/// paths are resolved.
pub(super) fn check(spec: &AppSpec) -> Result<(), String> {
    for p in spec.watch_paths() {
        match std::fs::metadata(&p) {
            Err(_) => return Err(format!("watch path {} does not exist", p.display())),
            Ok(m) if m.is_dir() => {
                if let Err(e) = std::fs::read_dir(&p) {
                    return Err(format!("watch path {} cannot be read: {e}", p.display()));
                }
            }
            Ok(_) => {}
        }
    }
    if spec.watch != Watch::Off {
        crate::watch_ignore::Ignore::new(Path::new(&spec.cwd), spec.ignore_watch.as_deref())?;
    }
    Ok(())
}
