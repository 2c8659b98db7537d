//! `pmr ls`: PM2's process table (cli-tableau, `compact` style), plus the box drawing that
//! `describe` shares.
//!
//! PM2 picks between two fixed layouts from the terminal width and lets the table wrap when it
//! is still too wide; pmr goes on dropping columns (and finally shortening names) so the table
//! always fits the width it is given.

use super::style::{self, paint};
use super::{
    app_version, display_width, human_bytes, js_number, live_monit, now_ms, status_colors,
    uptime_cell,
};
use pmr_core::protocol::ProcInfo;
use pmr_core::spec::ExecMode;
use std::collections::HashMap;

/// One table cell: its text and the ANSI codes it is painted with when colours are on.
pub(crate) struct Cell {
    pub text: String,
    pub style: &'static [&'static str],
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            style: &[],
        }
    }
    pub fn styled(text: impl Into<String>, style: &'static [&'static str]) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

const HEAD_STYLE: &[&str] = &[style::CYAN, style::BOLD];

/// cli-tableau's rendering with `padding-left`/`padding-right` 1 and compact rows: `widths`
/// include the padding; the header (if any) is followed by a rule, rows are not.
pub(crate) fn render_box(
    widths: &[usize],
    head: Option<&[&str]>,
    rows: &[Vec<Cell>],
    color: bool,
) -> String {
    let rule = |l: &str, m: &str, r: &str| {
        let inner: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        paint(color, &[style::GREY], &format!("{l}{}{r}", inner.join(m)))
    };
    let bar = paint(color, &[style::GREY], "│");
    let row = |cells: Vec<String>| format!("{bar}{}{bar}", cells.join(&bar));
    let mut lines = vec![rule("┌", "┬", "┐")];
    if let Some(head) = head {
        let cells = head
            .iter()
            .zip(widths)
            .map(|(h, w)| paint(color, HEAD_STYLE, &fit(h, w - 2, 1)))
            .collect();
        lines.push(row(cells));
        // cli-tableau draws this rule before the first row, so an empty table has none.
        if !rows.is_empty() {
            lines.push(rule("├", "┼", "┤"));
        }
    }
    for r in rows {
        let cells = r
            .iter()
            .zip(widths)
            .map(|(c, w)| {
                let text = truncate(&c.text, w - 2);
                let pad = (w - 2).saturating_sub(display_width(&text));
                format!(" {}{} ", paint(color, c.style, &text), " ".repeat(pad))
            })
            .collect();
        lines.push(row(cells));
    }
    lines.push(rule("└", "┴", "┘"));
    lines.join("\n") + "\n"
}

/// Pads or truncates to exactly `width` columns, with `pad` spaces either side.
fn fit(s: &str, width: usize, pad: usize) -> String {
    let t = truncate(s, width);
    let fill = width.saturating_sub(display_width(&t));
    format!("{p}{t}{}{p}", " ".repeat(fill), p = " ".repeat(pad))
}

/// cli-tableau's truncation: too long a cell keeps `width - 1` columns and ends with `…`.
pub(crate) fn truncate(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Col {
    Id,
    Name,
    Namespace,
    Version,
    Mode,
    Pid,
    Uptime,
    Restarts,
    Status,
    Cpu,
    Mem,
    User,
    Watching,
}

/// The layouts tried in turn, widest first. The first two are PM2's; widths include padding.
const FULL: &[(Col, &str, usize)] = &[
    (Col::Id, "id", 0),
    (Col::Name, "name", 0),
    (Col::Namespace, "namespace", 13),
    (Col::Version, "version", 9),
    (Col::Mode, "mode", 9),
    (Col::Pid, "pid", 10),
    (Col::Uptime, "uptime", 8),
    (Col::Restarts, "↺", 6),
    (Col::Status, "status", 11),
    (Col::Cpu, "cpu", 10),
    (Col::Mem, "mem", 10),
    (Col::User, "user", 10),
    (Col::Watching, "watching", 10),
];
const CONDENSED: &[(Col, &str, usize)] = &[
    (Col::Id, "id", 0),
    (Col::Name, "name", 0),
    (Col::Mode, "mode", 10),
    (Col::Restarts, "↺", 6),
    (Col::Status, "status", 11),
    (Col::Cpu, "cpu", 10),
    (Col::Mem, "memory", 10),
];
const NARROW: &[&[(Col, &str, usize)]] = &[
    &[
        (Col::Id, "id", 0),
        (Col::Name, "name", 0),
        (Col::Restarts, "↺", 6),
        (Col::Status, "status", 11),
        (Col::Cpu, "cpu", 10),
        (Col::Mem, "mem", 10),
    ],
    &[
        (Col::Id, "id", 0),
        (Col::Name, "name", 0),
        (Col::Status, "status", 11),
        (Col::Mem, "mem", 10),
    ],
    &[
        (Col::Id, "id", 0),
        (Col::Name, "name", 0),
        (Col::Status, "status", 11),
    ],
];
/// PM2's condensed layout gives names 20 columns.
const CONDENSED_NAME_WIDTH: usize = 20;

/// `pmr ls`. `width` is the terminal's (None for a pipe: the full table). Ends with a newline.
pub fn ls(procs: &[ProcInfo], width: Option<usize>, color: bool) -> String {
    ls_at(procs, width, color, now_ms())
}

/// [`ls`] with the clock given, for reproducible output. PM2 modules (`pmr install`) get their
/// own table under the apps', headed "Module"/"Modules", as PM2's.
pub fn ls_at(procs: &[ProcInfo], width: Option<usize>, color: bool, now: i64) -> String {
    // PM2 sorts by name; the sort is stable, so instances of one app stay in id order.
    let mut sorted: Vec<&ProcInfo> = procs.iter().collect();
    sorted.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let (modules, apps): (Vec<&ProcInfo>, Vec<&ProcInfo>) =
        sorted.into_iter().partition(|p| p.spec.pmx_module);
    let (mut text, full) = apps_table(apps, width, color, now);
    if !modules.is_empty() {
        let head = if modules.len() > 1 {
            "Modules"
        } else {
            "Module"
        };
        text.push_str(&paint(color, &[style::BOLD], head));
        text.push('\n');
        text.push_str(&modules_table(&modules, full, width, color, now));
    }
    text
}

/// PM2's module table: fixed widths, the full layout when the apps' table has it, else its
/// condensed one (id, name, status, cpu, mem).
fn modules_table(
    mods: &[&ProcInfo],
    full: bool,
    width: Option<usize>,
    color: bool,
    now: i64,
) -> String {
    let id_w = 4.max(
        2 + mods
            .iter()
            .map(|p| p.pm_id.to_string().len())
            .max()
            .unwrap_or(0),
    );
    let longest = mods
        .iter()
        .map(|p| display_width(&p.spec.name))
        .max()
        .unwrap_or(0);
    let cols: Vec<(Col, &str, usize)> = if full {
        vec![
            (Col::Id, "id", id_w),
            (Col::Name, "module", 30),
            (Col::Version, "version", 15),
            (Col::Pid, "pid", 10),
            (Col::Status, "status", 10),
            (Col::Restarts, "↺", 6),
            (Col::Cpu, "cpu", 10),
            (Col::Mem, "mem", 10),
            (Col::User, "user", 10),
        ]
    } else {
        vec![
            (Col::Id, "id", id_w),
            (Col::Name, "name", (longest + 5).min(20)),
            (Col::Status, "status", 10),
            (Col::Cpu, "cpu", 10),
            (Col::Mem, "mem", 10),
        ]
    };
    let widths: Vec<usize> = cols.iter().map(|c| c.2).collect();
    let head: Vec<&str> = cols.iter().map(|c| c.1).collect();
    let mut versions: HashMap<&str, String> = HashMap::new();
    let rows: Vec<Vec<Cell>> = mods
        .iter()
        .map(|p| {
            cols.iter()
                .map(|(c, _, _)| cell(p, *c, now, &mut versions))
                .collect()
        })
        .collect();
    let plain = render_box(&widths, Some(&head), &rows, false);
    match width {
        Some(w) if plain.lines().any(|l| display_width(l) > w) => {
            plain.lines().map(|l| truncate_hard(l, w) + "\n").collect()
        }
        _ if color => render_box(&widths, Some(&head), &rows, true),
        _ => plain,
    }
}

/// The apps' table, and whether it has PM2's full layout.
fn apps_table(
    sorted: Vec<&ProcInfo>,
    width: Option<usize>,
    color: bool,
    now: i64,
) -> (String, bool) {
    let id_w = 4.max(
        2 + sorted
            .iter()
            .map(|p| p.pm_id.to_string().len())
            .max()
            .unwrap_or(0),
    );
    let longest = sorted.iter().map(|p| display_width(&p.spec.name)).max();
    let full_name_w = longest.map_or(11, |l| l + 5);
    let wanted_name_w = (longest.unwrap_or(0) + 2).max(6);
    // PM2 truncates "waiting restart" to "waiting …"; the extra columns are worth it.
    let status_w = 11.max(
        2 + sorted
            .iter()
            .map(|p| p.status.as_str().len())
            .max()
            .unwrap_or(0),
    );

    let total = |cols: &[(Col, &str, usize)], name_w: usize| {
        cols.iter()
            .map(|(c, _, w)| match c {
                Col::Id => id_w,
                Col::Name => name_w,
                Col::Status => status_w,
                _ => *w,
            })
            .sum::<usize>()
            + cols.len()
            + 1
    };

    let (cols, name_w) = match width {
        None => (FULL, full_name_w),
        Some(w) if total(FULL, full_name_w) <= w => (FULL, full_name_w),
        Some(w) => {
            let mut pick = None;
            let layouts = std::iter::once(CONDENSED).chain(NARROW.iter().copied());
            for (i, cols) in layouts.enumerate() {
                let avail = w.saturating_sub(total(cols, 0));
                if avail >= wanted_name_w {
                    let target = if i == 0 {
                        wanted_name_w.max(CONDENSED_NAME_WIDTH)
                    } else {
                        wanted_name_w
                    };
                    pick = Some((cols, target.min(avail)));
                    break;
                }
            }
            // Nothing fits whole names: the narrowest layout, names truncated.
            pick.unwrap_or_else(|| {
                let last = NARROW[NARROW.len() - 1];
                (last, w.saturating_sub(total(last, 0)).max(3))
            })
        }
    };

    let widths: Vec<usize> = cols
        .iter()
        .map(|(c, _, w)| match c {
            Col::Id => id_w,
            Col::Name => name_w,
            Col::Status => status_w,
            _ => *w,
        })
        .collect();
    let head: Vec<&str> = cols.iter().map(|(_, h, _)| *h).collect();
    let mut versions: HashMap<&str, String> = HashMap::new();
    let rows: Vec<Vec<Cell>> = sorted
        .iter()
        .map(|p| {
            cols.iter()
                .map(|(c, _, _)| cell(p, *c, now, &mut versions))
                .collect()
        })
        .collect();

    let plain = render_box(&widths, Some(&head), &rows, false);
    let full = std::ptr::eq(cols, FULL);
    let text = match width {
        // Only for terminals too narrow even for id, a short name and status.
        Some(w) if plain.lines().any(|l| display_width(l) > w) => {
            plain.lines().map(|l| truncate_hard(l, w) + "\n").collect()
        }
        _ if color => render_box(&widths, Some(&head), &rows, true),
        _ => plain,
    };
    (text, full)
}

fn truncate_hard(s: &str, width: usize) -> String {
    let mut used = 0;
    s.chars()
        .take_while(|c| {
            used += unicode_width::UnicodeWidthChar::width(*c).unwrap_or(0);
            used <= width
        })
        .collect()
}

fn cell<'a>(p: &'a ProcInfo, col: Col, now: i64, versions: &mut HashMap<&'a str, String>) -> Cell {
    let (memory, cpu) = live_monit(p);
    match col {
        Col::Id => Cell::styled(p.pm_id.to_string(), &[style::CYAN, style::BOLD]),
        Col::Name => Cell::plain(&p.spec.name),
        Col::Namespace => Cell::plain(p.spec.namespace_shown()),
        Col::Version => Cell::plain(
            versions
                .entry(p.spec.script.as_str())
                .or_insert_with(|| app_version(&p.spec.script))
                .clone(),
        ),
        Col::Mode => match p.spec.exec_mode {
            ExecMode::Fork => Cell::styled("fork", &[style::INVERSE, style::BOLD]),
            ExecMode::Cluster => Cell::styled("cluster", &[style::BLUE, style::BOLD]),
        },
        Col::Pid => Cell::plain(p.pid.to_string()),
        Col::Uptime => Cell::plain(uptime_cell(p, now)),
        Col::Restarts => Cell::plain(p.restart_time.to_string()),
        Col::Status => Cell::styled(p.status.as_str(), status_colors(p.status)),
        Col::Cpu => Cell::plain(format!("{}%", js_number(cpu))),
        Col::Mem => Cell::plain(human_bytes(memory)),
        Col::User => Cell::styled(&*p.username, &[style::BOLD]),
        Col::Watching => {
            if super::watching(p) {
                Cell::styled("enabled", &[style::GREEN, style::BOLD])
            } else {
                Cell::styled("disabled", &[style::GREY])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{proc_info, strip_ansi};
    use pmr_core::protocol::Status;

    /// The three processes of samples/ls.txt, 2 s after they started.
    fn sample_procs() -> (Vec<ProcInfo>, i64) {
        let mut api = proc_info(0, "api", Status::Online);
        api.pid = 20831;
        api.monit.memory = 53_582_000; // 51.1mb
        api.monit.cpu = 0.0;
        let mut web1 = proc_info(1, "web", Status::Online);
        std::sync::Arc::make_mut(&mut web1.spec).exec_mode = ExecMode::Cluster;
        std::sync::Arc::make_mut(&mut web1.spec).merge_logs = false;
        web1.pid = 20853;
        web1.monit.memory = 54_630_000; // 52.1mb
        web1.monit.cpu = 0.0;
        let mut web2 = proc_info(2, "web", Status::Online);
        std::sync::Arc::make_mut(&mut web2.spec).exec_mode = ExecMode::Cluster;
        web2.pid = 20860;
        web2.monit.memory = 53_372_000; // 50.9mb
        web2.monit.cpu = 0.0;
        let now = api.pm_uptime + 2_500;
        // Out of name order on purpose: PM2 sorts by name.
        (vec![web1, api, web2], now)
    }

    #[test]
    fn modules_have_their_own_table_under_the_apps() {
        let (mut procs, now) = sample_procs();
        let mut m = proc_info(3, "pm2-mod", Status::Online);
        std::sync::Arc::make_mut(&mut m.spec).pmx_module = true;
        m.pid = 20900;
        procs.push(m);
        let text = ls_at(&procs, None, false, now);
        let (apps, mods) = text.split_once("Module\n").expect(&text);
        assert!(!apps.contains("pm2-mod"), "{text}");
        let lines: Vec<&str> = mods.lines().collect();
        let head: Vec<&str> = lines[1].split('│').map(str::trim).collect();
        assert_eq!(
            head,
            ["", "id", "module", "version", "pid", "status", "↺", "cpu", "mem", "user", ""]
        );
        assert!(
            lines[3].contains("pm2-mod") && lines[3].contains("20900"),
            "{text}"
        );
        // PM2's fixed widths: 30 for the name, 15 for the version.
        assert_eq!(
            lines[0].chars().count(),
            4 + 30 + 15 + 10 + 10 + 6 + 10 + 10 + 10 + 10
        );
        // Narrow: the condensed layout.
        let narrow = ls_at(&procs, Some(80), false, now);
        let mods = narrow.split_once("Module\n").expect(&narrow).1;
        let head: Vec<&str> = mods
            .lines()
            .nth(1)
            .unwrap()
            .split('│')
            .map(str::trim)
            .collect();
        assert_eq!(head, ["", "id", "name", "status", "cpu", "mem", ""]);
        assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
        // Two modules: "Modules".
        let mut m2 = proc_info(4, "pm2-other", Status::Online);
        std::sync::Arc::make_mut(&mut m2.spec).pmx_module = true;
        procs.push(m2);
        assert!(ls_at(&procs, None, false, now).contains("Modules\n"));
    }

    /// A copy of a pm2-reference sample without the lines pmr does not print (PM2's actions
    /// and its "host metrics" line).
    fn table_lines(text: &str) -> String {
        text.lines()
            .filter(|l| l.starts_with(['┌', '│', '├', '└']))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn matches_pm2_ls_sample() {
        let expected = table_lines(include_str!("testdata/ls.txt"));
        let (procs, now) = sample_procs();
        assert_eq!(ls_at(&procs, None, false, now), expected);
        // A terminal wide enough for the full table prints the same.
        assert_eq!(ls_at(&procs, Some(200), false, now), expected);
    }

    #[test]
    fn watch_that_does_nothing_is_never_shown_enabled() {
        let (mut procs, now) = sample_procs();
        std::sync::Arc::make_mut(&mut procs[0].spec).watch = pmr_core::spec::Watch::Cwd;
        let out = ls_at(&procs, None, false, now);
        assert!(out.contains("disabled"), "{out}");
        assert!(!out.contains("enabled"), "{out}");
    }

    #[test]
    fn empty_list_is_header_only() {
        let expected = table_lines(include_str!("testdata/delete-all.txt"));
        assert_eq!(ls_at(&[], None, false, 0), expected);
    }

    #[test]
    fn narrow_terminals_never_overflow() {
        let (mut procs, now) = sample_procs();
        let mut long = proc_info(12, "a-rather-long-application-name", Status::Errored);
        long.restart_time = 15;
        procs.push(long);
        let mut wide = proc_info(13, "日本語アプリ", Status::Stopped);
        std::sync::Arc::make_mut(&mut wide.spec).namespace = "production".into();
        procs.push(wide);
        procs.push(proc_info(14, "retry", Status::WaitingRestart));
        for w in [200, 132, 120, 100, 80, 72, 60, 50, 40, 30, 20, 10] {
            for color in [false, true] {
                let out = ls_at(&procs, Some(w), color, now);
                let plain = strip_ansi(&out);
                for line in plain.lines() {
                    assert!(
                        display_width(line) <= w,
                        "width {w}: {line:?} is {} wide",
                        display_width(line)
                    );
                }
                assert_eq!(plain.lines().count(), procs.len() + 4);
            }
        }
        // Long names are kept whole by dropping the mode column rather than truncating.
        let at80 = ls_at(&procs, Some(80), false, now);
        assert!(
            !at80.contains("namespace") && !at80.contains("mode"),
            "{at80}"
        );
        assert!(at80.contains("a-rather-long-application-name"), "{at80}");
        // Short names get PM2's condensed layout, 79 columns wide.
        let (short, _) = sample_procs();
        let condensed = ls_at(&short, Some(80), false, now);
        assert!(
            condensed.contains("│ mode     │ ↺    │ status    │ cpu      │ memory   │"),
            "{condensed}"
        );
        assert_eq!(condensed.lines().next().map(display_width), Some(79));
        let at60 = ls_at(&procs, Some(60), false, now);
        assert!(at60.contains("status") && !at60.contains("mode"), "{at60}");
        assert!(at60.contains("日本語アプリ"));
        assert!(at60.contains("│ waiting restart │"), "{at60}");
    }

    #[test]
    fn stopped_rows_and_colours() {
        let mut p = proc_info(0, "api", Status::Stopped);
        p.pid = 0;
        let out = ls_at(std::slice::from_ref(&p), None, false, p.pm_uptime + 10_000);
        let row = out.lines().nth(3).unwrap();
        let cells: Vec<&str> = row.split('│').map(str::trim).collect();
        assert_eq!(cells[6], "0", "uptime of a stopped process");
        assert_eq!(cells[9], "stopped");
        assert_eq!(cells[10], "0%");
        assert_eq!(cells[11], "0b");
        assert!(!out.contains('\x1b'));
        assert!(ls_at(std::slice::from_ref(&p), Some(80), true, 0).contains("\x1b[31;1mstopped"));
        let coloured = ls_at(&[p], None, true, 0);
        assert!(coloured.contains("\x1b[31;1mstopped\x1b[0m"));
        assert_eq!(strip_ansi(&coloured), out);
    }
}
