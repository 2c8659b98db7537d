//! PM2's unhandled-rejection behaviour for every Node app (fork and cluster). Measured with PM2
//! 7.0.4: in cluster mode its process container (`lib/ProcessContainer.js`) installs an
//! `unhandledRejection` listener before the app's code runs, which writes `You have triggered
//! an unhandledRejection, you may have forgotten to catch a Promise rejection:` and the reason's
//! stack to the app's error log — and, being a listener, keeps Node (>= 15) from exiting. In
//! fork mode the listener of `@pm2/io` does the same without the first line. Apps moved from
//! PM2 rely on staying up, so pmr gives Node apps one such listener in a preload, with the
//! cluster-mode message in both modes (it says what happened); `catch_unhandled_rejections:
//! false` leaves Node's default (the app exits with code 1).
//!
//! The spawner takes one `--require` file, so a third file that requires the drain preload and
//! this one serves cluster workers that need both.

use pmr_core::spec::AppSpec;
use std::path::Path;

pub const PRELOAD: &str = r#"'use strict';
// pmr: log unhandled promise rejections and keep running, as PM2 does (crates/daemon/src/node/rejections.rs).
process.on('unhandledRejection', function pmrUnhandledRejection(reason) {
  const error = reason && reason.stack ? reason.stack : reason;
  process.stderr.write('You have triggered an unhandledRejection, you may have forgotten to catch a Promise rejection:\n' + error + '\n');
});
"#;

fn file(dir: &Path, what: &str) -> std::path::PathBuf {
    dir.join(format!("{what}-{}.cjs", env!("CARGO_PKG_VERSION")))
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Write this preload, and the one that loads the drain preload too, next to `drain`.
pub fn install(drain: &Path) -> std::io::Result<()> {
    let dir = drain.parent().unwrap_or(Path::new("."));
    let own = file(dir, "rejections");
    write_atomic(&own, PRELOAD)?;
    let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
    write_atomic(
        &file(dir, "drain-rejections"),
        &format!("require({});\nrequire({});\n", quote(drain), quote(&own)),
    )
}

/// The `--require` file for this app: `drain` is the drain preload when the app gets it (a
/// cluster worker), and tells where the preloads are.
pub fn preload(spec: &AppSpec, drain: Option<&str>, installed: Option<&str>) -> Option<String> {
    let catch = spec.is_node() && spec.catch_unhandled_rejections;
    let dir = Path::new(installed?).parent()?;
    match (drain, catch) {
        (Some(_), true) => Some(file(dir, "drain-rejections")),
        (Some(d), false) => return Some(d.to_string()),
        (None, true) => Some(file(dir, "rejections")),
        (None, false) => None,
    }
    .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_preload() {
        let dir = std::env::temp_dir().join(format!("pmr-rej-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let drain = crate::node::drain::install(&dir).unwrap();
        let mut spec = pmr_core::spec::test_spec("a");
        spec.interpreter = Some("node".into());
        let d = Some(drain.as_str());
        let both = preload(&spec, d, d).unwrap();
        let text = std::fs::read_to_string(&both).unwrap();
        assert!(
            text.contains(&drain) && text.contains("rejections-"),
            "{text}"
        );
        let own = preload(&spec, None, d).unwrap();
        assert_eq!(std::fs::read_to_string(own).unwrap(), PRELOAD);
        spec.catch_unhandled_rejections = false;
        assert_eq!(preload(&spec, d, d).as_deref(), d);
        assert_eq!(preload(&spec, None, d), None);
        spec.interpreter = Some("python3".into());
        spec.catch_unhandled_rejections = true;
        assert_eq!(preload(&spec, None, d), None, "only Node apps");
    }
}
