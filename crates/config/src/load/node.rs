//! The Node.js fallback: a config that requires what the embedded engine lacks (an npm package
//! such as `dotenv`, or `child_process`) is evaluated by `node` itself when it is installed.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::error::LoadError;

/// Marks the line with the result, so whatever the config prints to stdout cannot mix with it.
const MARKER: &str = "__PMR_CONFIG_JSON__";

/// Loads the file given as argv[1] the way PM2 would (`require`, or `import()` for ES modules),
/// and prints `JSON.stringify` of the export after the marker. console output goes to stderr.
const SCRIPT: &str = r#"
const f = process.argv[1];
console.log = console.info = console.debug = console.error;
const esm = async () => {
  const ns = await import(require('url').pathToFileURL(f).href);
  return ns.default !== undefined ? ns.default : ns;
};
(async () => {
  let v;
  if (f.endsWith('.mjs')) v = await esm();
  else {
    try { v = require(f); }
    catch (e) { if (e && e.code === 'ERR_REQUIRE_ESM') v = await esm(); else throw e; }
  }
  if (v && v.__esModule && v.default !== undefined) v = v.default;
  const s = typeof v === 'function' ? undefined
    : JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x));
  process.stdout.write('\n' + MARKER + (s === undefined ? 'null' : s) + '\n');
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + '\n');
  process.exit(1);
});
"#;

/// `node` in a `PATH`-style list of directories, if there is an executable one.
pub(crate) fn find_node(path_env: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_env?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("node"))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Run `node` on the config file and parse what it prints.
pub(crate) fn eval_with_node(
    node: &Path,
    file: &Path,
    display: &str,
    timeout: Duration,
) -> Result<Value, LoadError> {
    let fail = |message: String| LoadError::Node {
        file: display.to_string(),
        message,
    };
    let child = Command::new(node)
        .arg("-e")
        .arg(SCRIPT.replace("MARKER", &format!("'{MARKER}'")))
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", node.display())))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(out) => out.map_err(|e| fail(e.to_string()))?,
        Err(_) => {
            // The waiting thread has not reaped the child, so the pid is still ours.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = rx.recv();
            return Err(LoadError::Timeout {
                file: display.to_string(),
                seconds: timeout.as_secs_f64(),
            });
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let found = stdout.rfind(MARKER);
    // Pass the config's own output on, to stderr (never stdout: `jlist` owns that).
    let mut err = std::io::stderr().lock();
    let printed = found.map_or(&stdout[..], |i| stdout[..i].trim_end_matches('\n'));
    if !printed.is_empty() {
        let _ = writeln!(err, "{printed}");
    }
    let Some(at) = found.filter(|_| output.status.success()) else {
        // Node's error and the first frames of its stack are enough to find the problem.
        let text: Vec<&str> = stderr.trim().lines().take(8).collect();
        let text = if text.is_empty() {
            format!("node exited with {}", output.status)
        } else {
            text.join("\n")
        };
        return Err(fail(text));
    };
    let _ = err.write_all(stderr.as_bytes());
    let json = stdout[at + MARKER.len()..].trim();
    serde_json::from_str(json).map_err(|e| fail(format!("unexpected output from node: {e}")))
}
