//! Everything the CLI prints about processes: pure functions from the daemon's `ProcInfo` list to
//! text. Nothing here talks to the daemon; the only I/O is reading an app's `package.json` for its
//! version, which PM2 shows too.

pub mod axm;
pub mod bufs;
pub mod code_metrics;
pub mod describe;
pub mod env;
mod env_write;
pub mod history;
pub mod jlist;
pub mod jlist_write;
pub mod prettylist;
pub mod table;

pub use describe::{describe, describe_at};
pub use env::env_listing;
pub use jlist::jlist_value;
pub use jlist_write::jlist;
pub use prettylist::inspect;
pub use table::{ls, ls_at};

use pmr_core::protocol::{ProcInfo, Status};
use std::path::Path;
use unicode_width::UnicodeWidthStr;

/// Whether to emit ANSI colours: `NO_COLOR` (any non-empty value) always wins, then
/// `FORCE_COLOR` (non-empty and not `0`/`false`) turns colours on even in a pipe.
pub fn color_enabled(is_tty: bool) -> bool {
    color_from(
        std::env::var("NO_COLOR").ok().as_deref(),
        std::env::var("FORCE_COLOR").ok().as_deref(),
        is_tty,
    )
}

fn color_from(no_color: Option<&str>, force_color: Option<&str>, is_tty: bool) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match force_color {
        // `FORCE_COLOR=0` is the conventional way to force colours *off* (chalk, supports-color).
        Some("0") | Some("false") => false,
        Some(_) => true,
        None => is_tty,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// PM2's `bytesToSize(bytes, 1)`: `512b`, `1.5kb`, `51.1mb`, `2.0gb`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kb", "mb", "gb", "tb"];
    if bytes < 1024 {
        return format!("{bytes}b");
    }
    let mut div: u128 = 1024;
    let mut unit = 0;
    while unit < UNITS.len() - 1 && bytes as u128 >= div * 1024 {
        div *= 1024;
        unit += 1;
    }
    // JS `toFixed(1)` rounds ties up; integer arithmetic keeps that exact.
    let tenths = (bytes as u128 * 20 + div) / (2 * div);
    format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[unit])
}

/// PM2's `timeSince`: the largest unit of which at least two have elapsed (`90s`, `2m`, `5h`,
/// `3D`, `2M`, `4Y`).
pub fn human_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    for (len, unit) in [
        (31_536_000, "Y"),
        (2_592_000, "M"),
        (86_400, "D"),
        (3_600, "h"),
        (60, "m"),
    ] {
        let n = seconds / len;
        if n > 1 {
            return format!("{n}{unit}");
        }
    }
    format!("{seconds}s")
}

/// A number as JavaScript's `String(n)` writes it (`0`, `0.3`, `1795538958597`, `1e+21`).
pub fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as JS; only the layout differs.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    let sign = if x < 0.0 { "-" } else { "" };
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let esign = if e < 0 { '-' } else { '+' };
        let mant = if k == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{mant}e{esign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// A float as a JSON number that `JSON.stringify` would write the same way (`0`, not `0.0`).
pub(crate) fn json_number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::from(0))
    }
}

/// Columns a string takes in a terminal.
pub(crate) fn display_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// PM2 only reports resources of a running process: `{0, 0}` otherwise.
pub fn live_monit(p: &ProcInfo) -> (u64, f64) {
    if p.status == Status::Online {
        (p.monit.memory, p.monit.cpu)
    } else {
        (0, 0.0)
    }
}

thread_local! {
    /// Versions found, by script folder: instances of one app share a script, so its folder is
    /// looked up once per CLI run (or per rendering, in the daemon: see `forget_versions`).
    static SEEN: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
}

/// Forget the versions found on this thread: the daemon renders on threads that outlive one
/// request, and a `package.json` may change between two `jlist`s.
pub fn forget_versions() {
    SEEN.with(|c| c.borrow_mut().clear());
}

/// The `version` PM2 shows: that of the `package.json` nearest to the script, else `N/A`.
pub fn app_version(script: &str) -> String {
    let dir = Path::new(script)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = SEEN.with(|c| c.borrow().get(&dir).cloned()) {
        return v;
    }
    let v = find_version(script);
    SEEN.with(|c| c.borrow_mut().insert(dir, v.clone()));
    v
}

fn find_version(script: &str) -> String {
    let mut dir = Path::new(script).parent();
    while let Some(d) = dir {
        let pkg = d.join("package.json");
        if let Ok(text) = std::fs::read_to_string(&pkg) {
            return serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("version").and_then(|v| v.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "N/A".into());
        }
        dir = d.parent();
    }
    "N/A".into()
}

/// The uptime cell of `ls`/`describe`: PM2 prints `0` unless the process is online.
pub fn uptime_cell(p: &ProcInfo, now: i64) -> String {
    if p.status == Status::Online && p.pm_uptime > 0 {
        human_duration(now - p.pm_uptime)
    } else {
        "0".into()
    }
}

/// Whether files are being watched (`ls` and `describe`): only while the daemon's watcher is
/// set up, so `ls` never shows `enabled` for an app whose watch could not be (see the daemon
/// log).
pub(crate) fn watching(p: &ProcInfo) -> bool {
    p.watching.is_some()
}

/// ANSI styling, so each renderer states *what* it highlights, not escape codes.
pub mod style {
    pub const BOLD: &str = "1";
    pub const ITALIC: &str = "3";
    pub const INVERSE: &str = "7";
    pub const RED: &str = "31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    pub const BLUE: &str = "34";
    pub const CYAN: &str = "36";
    pub const GREY: &str = "90";

    pub fn paint(on: bool, codes: &[&str], s: &str) -> String {
        if !on || codes.is_empty() || s.is_empty() {
            return s.to_string();
        }
        format!("\x1b[{}m{s}\x1b[0m", codes.join(";"))
    }
}

/// The colour PM2's `colorStatus` gives each status.
pub(crate) fn status_colors(s: Status) -> &'static [&'static str] {
    use style::*;
    match s {
        Status::Online => &[GREEN, BOLD],
        Status::Launching => &[BLUE, BOLD],
        Status::WaitingRestart => &[YELLOW, BOLD],
        Status::Stopping | Status::Stopped | Status::Errored => &[RED, BOLD],
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_like_pm2() {
        assert_eq!(human_bytes(0), "0b");
        assert_eq!(human_bytes(1023), "1023b");
        assert_eq!(human_bytes(1024), "1.0kb");
        assert_eq!(human_bytes(1280), "1.3kb"); // a tie: toFixed rounds up
        assert_eq!(human_bytes(53_587_968), "51.1mb");
        assert_eq!(human_bytes(3 << 30), "3.0gb");
        assert_eq!(human_bytes(5 << 40), "5.0tb");
    }

    #[test]
    fn durations_like_pm2() {
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(2_400), "2s");
        assert_eq!(human_duration(119_000), "119s");
        assert_eq!(human_duration(120_000), "2m");
        assert_eq!(human_duration(3 * 3_600_000), "3h");
        assert_eq!(human_duration(47 * 3_600_000), "47h");
        assert_eq!(human_duration(2 * 86_400_000), "2D");
        assert_eq!(human_duration(400 * 86_400_000), "13M");
        assert_eq!(human_duration(800 * 86_400_000), "2Y");
    }

    #[test]
    fn numbers_like_js() {
        for (x, s) in [
            (0.0, "0"),
            (0.3, "0.3"),
            (1.3, "1.3"),
            (75.9, "75.9"),
            (1795538958597.0, "1795538958597"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(js_number(x), s, "{x}");
        }
    }

    #[test]
    fn colour_switches() {
        assert!(!color_from(Some("1"), Some("1"), true));
        assert!(color_from(Some(""), None, true));
        assert!(color_from(None, Some("1"), false));
        assert!(!color_from(None, Some("0"), true));
        assert!(!color_from(None, None, false));
        assert!(color_from(None, None, true));
    }
}
