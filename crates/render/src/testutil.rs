//! `ProcInfo` values for the render tests.

use pmr_core::protocol::{Monit, ProcInfo, Status};
use pmr_core::spec::AppSpec;
use std::collections::BTreeMap;

/// Where the test apps live: a path with no `package.json` above it, so `version` is `N/A`.
pub const APP_DIR: &str = "/nonexistent-pmr-test/app";

pub fn spec(name: &str) -> AppSpec {
    AppSpec {
        script: format!("{APP_DIR}/http.js"),
        interpreter: Some("node".into()),
        cwd: APP_DIR.into(),
        env: BTreeMap::from([("PORT".into(), "3000".into())]).into(),
        ..pmr_core::spec::test_spec(name)
    }
}

pub fn proc_info(pm_id: u32, name: &str, status: Status) -> ProcInfo {
    let spec = spec(name);
    let mut env = spec.env.clone();
    env.insert("PATH".into(), "/usr/bin:/bin".into());
    env.insert("pm_id".into(), pm_id.to_string());
    env.insert("name".into(), name.into());
    env.insert("NODE_APP_INSTANCE".into(), "0".into());
    ProcInfo {
        pm_id,
        instance: 0,
        status,
        pid: 4242,
        pm_uptime: 1_795_538_958_597,
        created_at: 1_795_538_958_597,
        restart_time: 0,
        unstable_restarts: 0,
        exit_code: None,
        prev_restart_delay: 0,
        out_log_path: format!("/h/.pmr/logs/{name}-out.log").into(),
        err_log_path: format!("/h/.pmr/logs/{name}-error.log").into(),
        log_path: None,
        pid_path: format!("/h/.pmr/pids/{name}-{pm_id}.pid").into(),
        env,
        username: "root".into(),
        monit: Monit {
            memory: 53_587_968,
            cpu: 0.3,
        },
        last_error: None,
        restart_history: Vec::new(),
        cron_next: None,
        watching: None,
        watch_last: None,
        axm: Default::default(),
        log_lines_dropped: 0,
        spec: std::sync::Arc::new(spec),
    }
}

/// The text without its ANSI colour sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
