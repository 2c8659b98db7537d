//! Drawing `pmr monit` from the [`App`]: four panes (processes, logs, metrics, metadata), the
//! footer (keys, status, filter, confirmation), the help, and a message instead of the
//! layout when the terminal is too small. With colours off (`NO_COLOR`, `--no-color`), only
//! bold and reverse video mark things.

use super::app::{App, Pane};
use super::input::Mode;
use pmr_core::protocol::Status;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

/// Below this the four panes cannot show anything useful.
pub const MIN_W: u16 = 60;
pub const MIN_H: u16 = 15;

pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn status(&self, s: Status) -> Style {
        match s {
            Status::Online => self.fg(Color::Green),
            Status::Errored => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Status::Stopped | Status::Stopping => self.fg(Color::DarkGray),
            Status::Launching | Status::WaitingRestart => self.fg(Color::Yellow),
        }
    }

    fn block<'a>(&self, title: String, focused: bool) -> Block<'a> {
        let b = Block::bordered().title(Span::styled(
            title,
            Style::new().add_modifier(Modifier::BOLD),
        ));
        if focused {
            b.border_type(BorderType::Double)
                .border_style(self.fg(Color::Cyan))
        } else {
            b
        }
    }
}

/// `list` keeps the process list's scroll position from one draw to the next.
pub fn draw(f: &mut Frame, app: &App, theme: &Theme, list_state: &mut TableState) {
    let area = f.area();
    if area.width < MIN_W || area.height < MIN_H {
        let msg = format!(
            "Terminal too small for pmr monit: {}x{} (needs {MIN_W}x{MIN_H}). Enlarge it, or press q.",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [main, footer] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(main);
    let list_w = (area.width * 45 / 100).max(48);
    let [list, logs] =
        Layout::horizontal([Constraint::Length(list_w), Constraint::Min(0)]).areas(top);
    let [metrics, meta] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(bottom);
    draw_list(f, app, theme, list, list_state);
    draw_logs(f, app, theme, logs);
    draw_metrics(f, app, theme, metrics);
    draw_meta(f, app, theme, meta);
    draw_footer(f, app, theme, footer);
    if app.mode == Mode::Help {
        draw_help(f, theme, main);
    }
}

fn draw_list(f: &mut Frame, app: &App, theme: &Theme, area: Rect, state: &mut TableState) {
    let v = &app.view;
    let mut title = format!(" Processes {}/{} ", v.rows.len(), v.total);
    if !app.filter.is_empty() || app.mode == Mode::Filter {
        title = format!(
            " Processes {}/{} filter: {} ",
            v.rows.len(),
            v.total,
            app.filter
        );
    }
    let block = theme.block(title, app.focus == Pane::List);
    if !app.received {
        f.render_widget(
            Paragraph::new("waiting for the daemon...").block(block),
            area,
        );
        return;
    }
    if v.rows.is_empty() {
        let msg = if v.total == 0 {
            "no process: start one with `pmr start <script>`"
        } else {
            "no process matches the filter"
        };
        f.render_widget(
            Paragraph::new(msg).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let header = Row::new(["id", "name", "status", "cpu", "mem", "↺", "uptime"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = v.rows.iter().map(|r| {
        Row::new(vec![
            Span::styled(r.id.to_string(), theme.fg(Color::Cyan)),
            Span::raw(r.name.clone()),
            Span::styled(r.status.as_str(), theme.status(r.status)),
            Span::raw(r.cpu.clone()),
            Span::raw(r.mem.clone()),
            Span::raw(r.restarts.clone()),
            Span::raw(r.uptime.clone()),
        ])
    });
    let widths = [
        Constraint::Length(3),
        Constraint::Min(6),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(3),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(block);
    let sel = app
        .selected
        .and_then(|id| v.rows.iter().position(|r| r.id == id));
    state.select(sel);
    f.render_stateful_widget(table, area, state);
}

fn draw_logs(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let title = match app.view.rows.iter().find(|r| Some(r.id) == app.selected) {
        Some(r) => format!(" Logs {} ({}) ", r.name, r.id),
        None => " Logs ".to_string(),
    };
    let title = if app.log_scroll > 0 {
        format!("{title}[-{}] ", app.log_scroll)
    } else {
        title
    };
    let block = theme.block(title, app.focus == Pane::Logs);
    let inner_h = area.height.saturating_sub(2) as usize;
    app.log_rows.set(inner_h.max(1));
    let end = app.logs.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(inner_h);
    let lines: Vec<Line> = app
        .logs
        .range(start..end)
        .map(|l| {
            let style = if l.err {
                theme.fg(Color::Red)
            } else {
                Style::new()
            };
            Line::styled(l.text.as_str(), style)
        })
        .collect();
    let body = if lines.is_empty() {
        Paragraph::new("no output yet (live lines only)")
    } else {
        Paragraph::new(lines)
    };
    f.render_widget(body.block(block), area);
}

fn draw_metrics(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let block = theme.block(" Metrics ".into(), app.focus == Pane::Metrics);
    let rows = area.height.saturating_sub(2) as usize;
    app.metrics_rows.set(rows.max(1));
    if app.view.metrics.is_empty() {
        f.render_widget(Paragraph::new("no metrics").block(block), area);
        return;
    }
    let lines: Vec<Line> = app
        .view
        .metrics
        .iter()
        .skip(
            app.metrics_scroll
                .min(app.view.metrics.len().saturating_sub(rows)),
        )
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k}: "), theme.fg(Color::Cyan)),
                Span::styled(v.as_str(), Style::new().add_modifier(Modifier::BOLD)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_meta(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let block = theme.block(" Metadata ".into(), app.focus == Pane::Meta);
    let rows = area.height.saturating_sub(2) as usize;
    app.meta_rows.set(rows.max(1));
    let key_w = app
        .view
        .meta
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = app
        .view
        .meta
        .iter()
        .skip(
            app.meta_scroll
                .min(app.view.meta.len().saturating_sub(rows)),
        )
        .map(|(k, v)| {
            if k.is_empty() {
                Line::raw(v.as_str())
            } else {
                Line::from(vec![
                    Span::styled(format!("{k:key_w$} "), theme.fg(Color::Cyan)),
                    Span::raw(v.as_str()),
                ])
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_footer(f: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let line = match app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(app.filter.as_str()),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::raw("  Enter: keep  Esc: clear"),
        ]),
        Mode::Trigger => match &app.trigger {
            Some(t) => Line::from(vec![
                Span::styled(
                    format!("trigger {}> ", t.name),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(t.typed.as_str()),
                Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
                Span::raw(format!(
                    "  Enter: send  Esc: cancel  [{}]",
                    t.actions.join(" ")
                )),
            ]),
            None => Line::raw(""),
        },
        Mode::Confirm => {
            let (id, name) = app.confirm.clone().unwrap_or_default();
            Line::styled(
                format!("Delete {name} ({id})? y/n"),
                theme
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            )
        }
        _ if !app.status.is_empty() => Line::styled(
            app.status.as_str(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        _ => Line::raw(
            "?:help q:quit Tab:pane r:restart l:reload s/S:stop/start d:del +/-:scale /:find",
        ),
    };
    f.render_widget(Paragraph::new(line), area);
}

const HELP: &[(&str, &str)] = &[
    ("Tab, ←/→", "switch panes"),
    ("↑/↓, j/k", "select a process / scroll the pane"),
    ("PgUp/PgDn, g/G", "page, top, end"),
    ("/", "filter by name, namespace or id"),
    ("r", "restart the selected process"),
    ("R, l", "reload it"),
    ("s / S", "stop / start it"),
    ("d", "delete it (asks y/n)"),
    ("+ / -", "one instance more / fewer of its app"),
    ("t", "trigger an @pm2/io action: type `action [param]`"),
    ("q, Esc, Ctrl-C", "quit"),
];

fn draw_help(f: &mut Frame, theme: &Theme, area: Rect) {
    let w = 58.min(area.width);
    let h = (HELP.len() as u16 + 4).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:16}"), theme.fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::raw("any key closes this help"));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(theme.block(" pmr monit keys ".into(), true)),
        r,
    );
}
