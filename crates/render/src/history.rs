//! pmr's additions to `describe` for automatic restarts: the next `cron_restart` run and the
//! instance's restart history (a section PM2 does not have: it cannot say why an app
//! restarted).

use super::style::{self, paint};
use super::table::{render_box, Cell};
use super::{display_width, human_duration};
use chrono::{DateTime, Local};
use pmr_core::protocol::ProcInfo;

/// The `cron restart` cell: the pattern and when it runs next, in local time.
pub fn cron_cell(pattern: &str, next: Option<i64>) -> String {
    match next.and_then(DateTime::from_timestamp_millis) {
        Some(t) => format!(
            "{pattern} (next {})",
            t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S %:z")
        ),
        None => pattern.to_string(),
    }
}

/// The "restart history" section, newest first; empty when there was none.
pub fn section(p: &ProcInfo, color: bool) -> String {
    if p.restart_history.is_empty() {
        return String::new();
    }
    let head = ["time", "cause", "detail", "uptime before"];
    let rows: Vec<Vec<Cell>> = p
        .restart_history
        .iter()
        .rev()
        .map(|r| {
            let at = DateTime::from_timestamp_millis(r.at)
                .map(|t| {
                    t.with_timezone(&Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "N/A".into());
            vec![
                Cell::plain(at),
                Cell::plain(r.cause.as_str()),
                Cell::plain(if r.detail.is_empty() {
                    "-".to_string()
                } else {
                    r.detail.clone()
                }),
                Cell::plain(uptime(r.uptime_ms)),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| display_width(&r[i].text))
                .chain([display_width(head[i])])
                .max()
                .unwrap_or(0)
                + 2
        })
        .collect();
    let title = format!(" Restart history (last {}) ", p.restart_history.len());
    let mut out = paint(color, &[style::BOLD, style::INVERSE], &title);
    out.push('\n');
    out += &render_box(&widths, Some(&head), &rows, color);
    out.push('\n');
    out
}

/// Short runs are what a restart history is about: `459ms`, `1.8s`, then PM2's units.
fn uptime(ms: u64) -> String {
    match ms {
        0 => "-".into(),
        1..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => human_duration(ms as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc_info;
    use pmr_core::protocol::{RestartCause, RestartRecord, Status};

    #[test]
    fn history_newest_first_with_causes_and_figures() {
        let mut p = proc_info(0, "api", Status::Online);
        assert_eq!(section(&p, false), "");
        p.restart_history = vec![
            RestartRecord {
                at: 1_795_538_958_597,
                cause: RestartCause::Crash,
                detail: "exited with code 1".into(),
                uptime_ms: 90_000,
            },
            RestartRecord {
                at: 1_795_538_999_000,
                cause: RestartCause::Memory,
                detail: "memory 512.3 MB > 500 MB".into(),
                uptime_ms: 4_000,
            },
        ];
        let out = section(&p, false);
        assert!(out.starts_with(" Restart history (last 2) \n"), "{out}");
        let memory = out.find("│ memory ").unwrap();
        let crash = out.find("│ crash ").unwrap();
        assert!(memory < crash, "newest first:\n{out}");
        assert!(out.contains("│ memory 512.3 MB > 500 MB │ 4.0s "), "{out}");
        assert!(out.contains("│ exited with code 1       │ 90s "), "{out}");
        assert_eq!(uptime(0), "-");
        assert_eq!(uptime(459), "459ms");
        assert_eq!(uptime(1845), "1.8s");
    }

    #[test]
    fn cron_cell_says_when_it_runs_next() {
        assert_eq!(cron_cell("0 3 * * *", None), "0 3 * * *");
        let c = cron_cell("0 3 * * *", Some(1_795_538_958_597));
        assert!(c.starts_with("0 3 * * * (next 20"), "{c}");
    }
}
