//! `pmr describe`: PM2's two-column process sheet (`lib/API/UX/pm2-describe.js`), with the
//! @pm2/io sections (actions, code metrics) in `code_metrics.rs`.

use super::style::{self, paint};
use super::table::{render_box, Cell};
use super::{app_version, display_width, now_ms, status_colors, uptime_cell, watching};
use pmr_core::protocol::ProcInfo;

/// `pmr describe <id>` for one process. Ends with a newline.
pub fn describe(p: &ProcInfo, color: bool) -> String {
    describe_at(p, color, now_ms())
}

/// [`describe`] with the clock given, for reproducible output.
pub fn describe_at(p: &ProcInfo, color: bool, now: i64) -> String {
    let s = &p.spec;
    let na = |v: Option<String>| v.filter(|v| !v.is_empty()).unwrap_or_else(|| "N/A".into());
    let mut rows: Vec<(&str, Cell)> = vec![
        (
            "status",
            Cell::styled(p.status.as_str(), status_colors(p.status)),
        ),
        ("name", Cell::plain(&s.name)),
        ("namespace", Cell::plain(s.namespace_shown())),
        ("version", Cell::plain(app_version(&s.script))),
        ("restarts", Cell::plain(p.restart_time.to_string())),
        ("uptime", Cell::plain(uptime_cell(p, now))),
        ("script path", Cell::plain(&s.script)),
        ("script args", Cell::plain(na(Some(s.args.join(" "))))),
        ("error log path", Cell::plain(&*p.err_log_path)),
        ("out log path", Cell::plain(&*p.out_log_path)),
        ("pid path", Cell::plain(&*p.pid_path)),
        ("interpreter", Cell::plain(s.interpreter_display())),
        (
            "interpreter args",
            Cell::plain(na(Some(s.interpreter_args.join(" ")))),
        ),
        ("script id", Cell::plain(p.pm_id.to_string())),
        ("exec cwd", Cell::plain(&s.cwd)),
        ("exec mode", Cell::plain(s.exec_mode.pm2_name())),
        // The daemon does not report the interpreter's version (PM2 shows its own Node's).
        ("node.js version", Cell::plain("N/A")),
        ("node env", Cell::plain(na(p.env.get("NODE_ENV").cloned()))),
        (
            "watch & reload",
            Cell::plain(if watching(p) { "✔" } else { "✘" }),
        ),
        (
            "unstable restarts",
            Cell::plain(p.unstable_restarts.to_string()),
        ),
        ("created at", Cell::plain(iso_time(p.created_at))),
    ];
    // Same positions as PM2's `table.splice` calls, applied in the same order.
    if let Some(l) = &p.log_path {
        rows.insert(6, ("entire log path", Cell::plain(&**l)));
    }
    if let Some(c) = &s.cron_restart {
        let cell = super::history::cron_cell(c, p.cron_next);
        rows.insert(5, ("cron restart", Cell::plain(cell)));
    }
    if let Some(m) = s.max_memory_restart.filter(|&m| m > 0) {
        rows.insert(5, ("max memory restart", Cell::plain(m.to_string())));
    }
    if let Some(w) = &p.watching {
        rows.push(("watching", Cell::plain(w)));
        let last = p.watch_last.clone().unwrap_or_else(|| "none yet".into());
        rows.push(("last watch restart", Cell::plain(last)));
    }
    if let Some(c) = p.exit_code {
        rows.push(("exit code", Cell::plain(c.to_string())));
    }
    if let Some(e) = &p.last_error {
        rows.push(("last error", Cell::styled(e, &[style::RED])));
    }
    if p.log_lines_dropped > 0 {
        let n = p.log_lines_dropped.to_string();
        rows.push(("dropped log lines", Cell::styled(n, &[style::RED])));
    }

    let key_w = rows
        .iter()
        .map(|(k, _)| display_width(k))
        .max()
        .unwrap_or(0)
        + 2;
    let val_w = rows
        .iter()
        .map(|(_, v)| display_width(&v.text))
        .max()
        .unwrap_or(0)
        + 2;
    let body: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|(k, v)| vec![Cell::styled(k, &[style::CYAN, style::BOLD]), v])
        .collect();

    let title = format!(" Describing process with id {} - name {} ", p.pm_id, s.name);
    let mut out = paint(color, &[style::BOLD, style::INVERSE], &title);
    out.push('\n');
    out += &render_box(&[key_w, val_w], None, &body, color);
    out.push('\n');
    out += &super::code_metrics::sections(p, color);
    out += &super::history::section(p, color);
    for hint in [
        format!(" Use `pmr logs {} [--lines 1000]` to display logs", s.name),
        format!(
            " Use `pmr env {}` to display environment variables",
            p.pm_id
        ),
        " Use `pmr monit` to monitor CPU and Memory usage".to_string(),
    ] {
        out += &paint(color, &[style::ITALIC], &hint);
        out.push('\n');
    }
    out
}

/// `new Date(ms).toISOString()`.
fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "N/A".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc_info;
    use pmr_core::protocol::Status;

    #[test]
    fn sheet_like_pm2_show() {
        let p = proc_info(0, "api", Status::Online);
        let out = describe_at(&p, false, p.pm_uptime + 2_000);
        let expected = " Describing process with id 0 - name api \n\
┌───────────────────┬───────────────────────────────────┐
│ status            │ online                            │
│ name              │ api                               │
│ namespace         │ default                           │
│ version           │ N/A                               │
│ restarts          │ 0                                 │
│ uptime            │ 2s                                │
│ script path       │ /nonexistent-pmr-test/app/http.js │
│ script args       │ N/A                               │
│ error log path    │ /h/.pmr/logs/api-error.log        │
│ out log path      │ /h/.pmr/logs/api-out.log          │
│ pid path          │ /h/.pmr/pids/api-0.pid            │
│ interpreter       │ node                              │
│ interpreter args  │ N/A                               │
│ script id         │ 0                                 │
│ exec cwd          │ /nonexistent-pmr-test/app         │
│ exec mode         │ fork_mode                         │
│ node.js version   │ N/A                               │
│ node env          │ N/A                               │
│ watch & reload    │ ✘                                 │
│ unstable restarts │ 0                                 │
│ created at        │ 2026-11-24T16:49:18.597Z          │
└───────────────────┴───────────────────────────────────┘

 Use `pmr logs api [--lines 1000]` to display logs
 Use `pmr env 0` to display environment variables
 Use `pmr monit` to monitor CPU and Memory usage
";
        assert_eq!(out, expected);
    }

    #[test]
    fn optional_rows_in_pm2_positions() {
        let mut p = proc_info(4, "job", Status::Errored);
        p.log_path = Some("/h/.pmr/logs/job.log".into());
        std::sync::Arc::make_mut(&mut p.spec).args = vec!["--a".into(), "1".into()];
        std::sync::Arc::make_mut(&mut p.spec).cron_restart = Some("0 * * * *".into());
        std::sync::Arc::make_mut(&mut p.spec).max_memory_restart = Some(104857600);
        std::sync::Arc::make_mut(&mut p.spec).watch = pmr_core::spec::Watch::Cwd;
        p.env.insert("NODE_ENV".into(), "production".into());
        p.exit_code = Some(2);
        p.last_error = Some("spawn ENOENT".into());
        p.log_lines_dropped = 7;
        let out = describe_at(&p, false, 0);
        let keys: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with('│'))
            .map(|l| l.split('│').nth(1).unwrap().trim().to_string())
            .collect();
        assert_eq!(
            keys[..9],
            [
                "status",
                "name",
                "namespace",
                "version",
                "restarts",
                "max memory restart",
                "cron restart",
                "uptime",
                "entire log path"
            ]
        );
        assert_eq!(
            keys[keys.len() - 4..],
            ["created at", "exit code", "last error", "dropped log lines"]
        );
        assert!(out.contains("│ dropped log lines  │ 7 "));
        assert!(out.contains("│ 104857600 "));
        assert!(!out.contains("104857600 (not supported yet)"));
        assert!(out.contains("│ 0 * * * * "));
        assert!(!out.contains("0 * * * * (not supported yet)"));
        // `watch` set but not (yet) watched by the daemon: not shown as on.
        assert!(out.contains("│ ✘ "));
        assert!(!out.contains('✔'));
        p.watching = Some("/app (inotify, 3 directories)".into());
        p.watch_last = Some("/app/index.js".into());
        let out = describe_at(&p, false, 0);
        assert!(out.contains("│ ✔ "));
        assert!(out.contains("│ watching           │ /app (inotify, 3 directories) "));
        assert!(out.contains("│ last watch restart │ /app/index.js "));
        assert!(out.contains("│ --a 1 "));
        assert!(out.contains("│ production "));
        assert!(out.contains("│ spawn ENOENT "));
        assert!(out.contains("│ uptime             │ 0 "));
        let coloured = describe_at(&p, true, 0);
        assert!(coloured.contains("\x1b[31;1merrored\x1b[0m"));
        assert_eq!(crate::testutil::strip_ansi(&coloured), out);
    }
}
