//! `pmr monit`'s state: the list as last received, what is shown of it (the [`View`], compared
//! to decide whether anything needs drawing), the selection, the filter, the mode, the log
//! lines of the selected process; and what each key does to it.

use super::input::{Cmd, Mode};
use pmr_core::protocol::{
    Action, ActionRequest, ProcInfo, Request, ScaleRequest, Status, TriggerRequest,
};
use serde_json::Value;
use std::collections::VecDeque;

/// Log lines kept for the selected process (the pane shows the last ones; older ones scroll).
const LOG_KEEP: usize = 500;
/// Longest log line kept, in characters (the pane is narrower anyway).
const LOG_LINE_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    List,
    Logs,
    Metrics,
    Meta,
}

const PANES: [Pane; 4] = [Pane::List, Pane::Logs, Pane::Metrics, Pane::Meta];

/// One line of the process list, as shown (the same figures as `pmr ls`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: u32,
    pub name: String,
    pub status: Status,
    pub cpu: String,
    pub mem: String,
    pub restarts: String,
    pub uptime: String,
}

/// Everything drawn from the list: a new list that yields the same `View` draws nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// The rows that pass the filter.
    pub rows: Vec<Row>,
    pub total: usize,
    /// The selected process's custom metrics (`pm2_env.axm_monitor`): name, value with unit.
    pub metrics: Vec<(String, String)>,
    /// The selected process's `describe` sheet: key, value (empty key: a line of its own).
    pub meta: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub err: bool,
    pub text: String,
}

/// What the UI loop must do for the app.
#[derive(Debug)]
pub enum Effect {
    Quit,
    /// Send this request (on its own thread); `what` names it in the status line.
    Request {
        req: Request,
        what: String,
    },
    /// The selected process changed: follow this one's log lines (or none).
    Follow(Option<u32>),
}

/// What `t` is typing for: sent as `Request::Trigger` on Enter.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerPrompt {
    pub id: u32,
    pub name: String,
    pub actions: Vec<String>,
    pub typed: String,
}

/// How long monit waits for an action's reply (the CLI's `trigger` default).
const TRIGGER_TIMEOUT_MS: u64 = 10_000;

pub struct App {
    home: String,
    procs: Vec<ProcInfo>,
    pub view: View,
    pub selected: Option<u32>,
    pub filter: String,
    pub focus: Pane,
    pub mode: Mode,
    /// The process `d` asks about.
    pub confirm: Option<(u32, String)>,
    /// `t`: the process, its actions, and the `action [param]` typed so far.
    pub trigger: Option<TriggerPrompt>,
    pub logs: VecDeque<LogLine>,
    /// Lines scrolled back from the newest (0: following the end).
    pub log_scroll: usize,
    pub metrics_scroll: usize,
    pub meta_scroll: usize,
    /// Lines the metrics and metadata panes showed at the last draw (set by `ui`), so that
    /// scrolling stops at the last page.
    pub metrics_rows: std::cell::Cell<usize>,
    pub meta_rows: std::cell::Cell<usize>,
    pub log_rows: std::cell::Cell<usize>,
    /// The last action's outcome or a hint; cleared by the next key.
    pub status: String,
    /// The process whose log lines are followed.
    pub following: Option<u32>,
    pub received: bool,
}

impl App {
    pub fn new(home: String) -> App {
        App {
            home,
            procs: Vec::new(),
            view: View::default(),
            selected: None,
            filter: String::new(),
            focus: Pane::List,
            mode: Mode::Normal,
            confirm: None,
            trigger: None,
            logs: VecDeque::new(),
            log_scroll: 0,
            metrics_scroll: 0,
            meta_scroll: 0,
            metrics_rows: std::cell::Cell::new(1),
            meta_rows: std::cell::Cell::new(1),
            log_rows: std::cell::Cell::new(1),
            status: String::new(),
            following: None,
            received: false,
        }
    }

    /// A new list from the daemon. Returns whether anything shown changed, and what to do.
    pub fn on_list(&mut self, procs: Vec<ProcInfo>, now: i64) -> (bool, Vec<Effect>) {
        let first = !self.received;
        self.received = true;
        self.procs = procs;
        let before = std::mem::take(&mut self.view);
        let effects = self.refresh(now);
        (first || self.view != before, effects)
    }

    /// Rebuild the view after the list, the filter or the selection changed; keeps the
    /// selection on a visible row. Effects: follow the newly selected process's logs.
    fn refresh(&mut self, now: i64) -> Vec<Effect> {
        let visible: Vec<u32> = self.visible().map(|p| p.pm_id).collect();
        if !self.selected.is_some_and(|id| visible.contains(&id)) {
            self.selected = visible.first().copied();
        }
        self.view = self.build_view(now);
        if self.selected != self.following {
            self.following = self.selected;
            self.logs.clear();
            self.log_scroll = 0;
            self.metrics_scroll = 0;
            self.meta_scroll = 0;
            return vec![Effect::Follow(self.selected)];
        }
        Vec::new()
    }

    fn visible(&self) -> impl Iterator<Item = &ProcInfo> {
        let f = self.filter.to_lowercase();
        self.procs.iter().filter(move |p| {
            f.is_empty()
                || p.spec.name.to_lowercase().contains(&f)
                || p.spec.namespace.to_lowercase().contains(&f)
                || p.pm_id.to_string() == f
        })
    }

    fn selected_proc(&self) -> Option<&ProcInfo> {
        let id = self.selected?;
        self.procs.iter().find(|p| p.pm_id == id)
    }

    fn build_view(&self, now: i64) -> View {
        let rows = self.visible().map(|p| row(p, now)).collect();
        let (metrics, meta) = match self.selected_proc() {
            Some(p) => (metrics(p, &self.home), meta(p)),
            None => (Vec::new(), Vec::new()),
        };
        View {
            rows,
            total: self.procs.len(),
            metrics,
            meta,
        }
    }

    /// Lines read from the followed process. Returns whether the pane changed.
    pub fn on_log(&mut self, err: bool, lines: &str) -> bool {
        for l in lines.lines() {
            self.push_log(LogLine {
                err,
                text: clean(l),
            });
        }
        true
    }

    pub fn on_skipped(&mut self, count: u64) -> bool {
        self.push_log(LogLine {
            err: true,
            text: format!("[{count} lines skipped: monit read too slowly]"),
        });
        true
    }

    fn push_log(&mut self, line: LogLine) {
        if self.logs.len() == LOG_KEEP {
            self.logs.pop_front();
        }
        self.logs.push_back(line);
        // Scrolled back: stay on the same lines while new ones arrive.
        if self.log_scroll > 0 {
            let max = self.logs.len().saturating_sub(self.log_rows.get());
            self.log_scroll = (self.log_scroll + 1).min(max);
        }
    }

    /// A key. Keys always redraw (the status line is cleared, the mode may change).
    pub fn on_key(&mut self, cmd: Cmd, now: i64) -> Vec<Effect> {
        if !matches!(cmd, Cmd::Nothing) {
            self.status.clear();
        }
        match cmd {
            Cmd::Quit => return vec![Effect::Quit],
            Cmd::Nothing => {}
            Cmd::Help => self.mode = Mode::Help,
            Cmd::Close => self.mode = Mode::Normal,
            Cmd::NextPane | Cmd::PrevPane => {
                let i = PANES.iter().position(|&p| p == self.focus).unwrap_or(0);
                let step = if cmd == Cmd::NextPane {
                    1
                } else {
                    PANES.len() - 1
                };
                self.focus = PANES[(i + step) % PANES.len()];
            }
            Cmd::Up | Cmd::Down | Cmd::PageUp | Cmd::PageDown | Cmd::Top | Cmd::Bottom => {
                return self.move_by(&cmd, now);
            }
            Cmd::StartFilter => {
                self.mode = Mode::Filter;
                self.focus = Pane::List;
            }
            Cmd::FilterChar(c) if self.mode == Mode::Trigger => {
                if let Some(t) = self.trigger.as_mut() {
                    t.typed.push(c);
                }
            }
            Cmd::FilterBack if self.mode == Mode::Trigger => {
                if let Some(t) = self.trigger.as_mut() {
                    t.typed.pop();
                }
            }
            Cmd::FilterDone if self.mode == Mode::Trigger => {
                self.mode = Mode::Normal;
                return self.send_trigger();
            }
            Cmd::FilterCancel if self.mode == Mode::Trigger => {
                self.mode = Mode::Normal;
                self.trigger = None;
            }
            Cmd::FilterChar(c) => {
                self.filter.push(c);
                return self.refresh(now);
            }
            Cmd::FilterBack => {
                self.filter.pop();
                return self.refresh(now);
            }
            Cmd::FilterDone => self.mode = Mode::Normal,
            Cmd::FilterCancel => {
                self.mode = Mode::Normal;
                self.filter.clear();
                return self.refresh(now);
            }
            Cmd::Restart => return self.act(Action::Restart, "restart"),
            Cmd::Reload => return self.act(Action::Reload, "reload"),
            Cmd::Stop => return self.act(Action::Stop, "stop"),
            Cmd::Start => match self.selected_proc() {
                Some(p) if p.status == Status::Online => {
                    self.status = format!("{} ({}) is already online", p.spec.name, p.pm_id);
                }
                // PM2's `start <id>` of a stopped process restarts it.
                _ => return self.act(Action::Restart, "start"),
            },
            Cmd::Delete => {
                if let Some(p) = self.selected_proc() {
                    self.confirm = Some((p.pm_id, p.spec.name.clone()));
                    self.mode = Mode::Confirm;
                }
            }
            Cmd::Yes => {
                self.mode = Mode::Normal;
                if let Some((id, name)) = self.confirm.take() {
                    return vec![action(Action::Delete, id, &name, "delete")];
                }
            }
            Cmd::No => {
                self.mode = Mode::Normal;
                if let Some((id, name)) = self.confirm.take() {
                    self.status = format!("delete {name} ({id}): cancelled");
                }
            }
            Cmd::ScaleUp | Cmd::ScaleDown => {
                if let Some(p) = self.selected_proc() {
                    let count = if cmd == Cmd::ScaleUp { 1 } else { -1 };
                    let name = p.spec.name.clone();
                    return vec![Effect::Request {
                        what: format!("scale {name} {count:+}"),
                        req: Request::Scale(ScaleRequest {
                            name,
                            relative: true,
                            count,
                        }),
                    }];
                }
            }
            Cmd::Trigger => match self.selected_proc() {
                None => self.status = "no process selected".into(),
                Some(p) => {
                    let actions: Vec<String> = p
                        .axm
                        .actions
                        .iter()
                        .filter_map(|a| a["action_name"].as_str().map(str::to_string))
                        .collect();
                    if actions.is_empty() {
                        self.status = format!(
                            "{} ({}) has no actions (apps register them with @pm2/io)",
                            p.spec.name, p.pm_id
                        );
                    } else {
                        self.trigger = Some(TriggerPrompt {
                            id: p.pm_id,
                            name: p.spec.name.clone(),
                            actions,
                            typed: String::new(),
                        });
                        self.mode = Mode::Trigger;
                    }
                }
            },
        }
        Vec::new()
    }

    /// Enter after `t`: the first word is the action, the rest its parameter (a string, as
    /// `pmr trigger` sends it).
    fn send_trigger(&mut self) -> Vec<Effect> {
        let Some(t) = self.trigger.take() else {
            return Vec::new();
        };
        let typed = t.typed.trim();
        let (action, param) = match typed.split_once(' ') {
            Some((a, p)) => (a, Some(p.trim())),
            None => (typed, None),
        };
        if action.is_empty() {
            self.status = "trigger: no action typed".into();
            return Vec::new();
        }
        vec![Effect::Request {
            what: format!("trigger {} ({}) {action}", t.name, t.id),
            req: Request::Trigger(TriggerRequest {
                ids: vec![t.id],
                action: action.to_string(),
                param: param.map(|p| Value::String(p.to_string())),
                timeout_ms: TRIGGER_TIMEOUT_MS,
            }),
        }]
    }

    fn act(&mut self, a: Action, verb: &str) -> Vec<Effect> {
        match self.selected_proc() {
            Some(p) => vec![action(a, p.pm_id, &p.spec.name, verb)],
            None => {
                self.status = "no process selected".into();
                Vec::new()
            }
        }
    }

    fn move_by(&mut self, cmd: &Cmd, now: i64) -> Vec<Effect> {
        let page = 10;
        let scroll = |v: &mut usize, max: usize, back: bool| {
            // Scroll offsets count back from the end for logs, down from the top otherwise;
            // `back` is "towards older lines / the top".
            *v = match cmd {
                Cmd::Up if back => (*v + 1).min(max),
                Cmd::Down if back => v.saturating_sub(1),
                Cmd::PageUp if back => (*v + page).min(max),
                Cmd::PageDown if back => v.saturating_sub(page),
                Cmd::Top if back => max,
                Cmd::Bottom if back => 0,
                Cmd::Up => v.saturating_sub(1),
                Cmd::Down => (*v + 1).min(max),
                Cmd::PageUp => v.saturating_sub(page),
                Cmd::PageDown => (*v + page).min(max),
                Cmd::Top => 0,
                _ => max,
            };
        };
        match self.focus {
            Pane::Logs => {
                let max = self.logs.len().saturating_sub(self.log_rows.get());
                scroll(&mut self.log_scroll, max, true)
            }
            Pane::Metrics => {
                let max = self
                    .view
                    .metrics
                    .len()
                    .saturating_sub(self.metrics_rows.get());
                scroll(&mut self.metrics_scroll, max, false)
            }
            Pane::Meta => {
                let max = self.view.meta.len().saturating_sub(self.meta_rows.get());
                scroll(&mut self.meta_scroll, max, false)
            }
            Pane::List => {
                let ids: Vec<u32> = self.view.rows.iter().map(|r| r.id).collect();
                if ids.is_empty() {
                    return Vec::new();
                }
                let cur = self
                    .selected
                    .and_then(|s| ids.iter().position(|&i| i == s))
                    .unwrap_or(0);
                let mut i = cur;
                scroll(&mut i, ids.len() - 1, false);
                self.selected = Some(ids[i]);
                return self.refresh(now);
            }
        }
        Vec::new()
    }
}

fn action(action: Action, id: u32, name: &str, verb: &str) -> Effect {
    Effect::Request {
        req: Request::Action(ActionRequest {
            action,
            ids: vec![id],
            update_env: None,
            parallel: None,
            patch: None,
        }),
        what: format!("{verb} {name} ({id})"),
    }
}

fn row(p: &ProcInfo, now: i64) -> Row {
    let (memory, cpu) = pmr_render::live_monit(p);
    Row {
        id: p.pm_id,
        name: clean(&p.spec.name),
        status: p.status,
        cpu: format!("{}%", pmr_render::js_number(cpu)),
        mem: pmr_render::human_bytes(memory),
        restarts: p.restart_time.to_string(),
        uptime: pmr_render::uptime_cell(p, now),
    }
}

/// `pm2_env.axm_monitor` as jlist shows it: `{"<name>": {"value": v, "unit": u}}`.
fn metrics(p: &ProcInfo, home: &str) -> Vec<(String, String)> {
    metric_rows(&pmr_render::jlist::jlist_value(p, home)["pm2_env"]["axm_monitor"])
}

fn metric_rows(axm_monitor: &Value) -> Vec<(String, String)> {
    let Some(m) = axm_monitor.as_object() else {
        return Vec::new();
    };
    m.iter()
        .map(|(name, m)| {
            let value = match &m["value"] {
                Value::Number(n) => pmr_render::js_number(n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                Value::Null => "N/A".into(),
                other => other.to_string(),
            };
            let value = match m["unit"].as_str().filter(|u| !u.is_empty()) {
                Some(u) => format!("{value} {u}"),
                None => value,
            };
            (clean(name), clean(&value))
        })
        .collect()
}

/// `describe`'s sheet without its box: the rows of the table as key/value, then the lines
/// after it (restart history), without the closing hints about other commands.
fn meta(p: &ProcInfo) -> Vec<(String, String)> {
    let text = pmr_render::describe::describe(p, false);
    let mut out = Vec::new();
    let mut after_box = false;
    for line in text.lines() {
        if let Some(inner) = line.strip_prefix('│') {
            let mut cells = inner.split('│').map(str::trim);
            let k = cells.next().unwrap_or_default();
            let v = cells.next().unwrap_or_default();
            out.push((k.to_string(), v.to_string()));
        } else if line.starts_with('└') {
            after_box = true;
        } else if after_box && !line.trim().is_empty() && !line.starts_with(" Use `") {
            out.push((String::new(), line.trim_end().to_string()));
        }
    }
    out
}

/// A line from an app made safe to draw: escape sequences dropped, other control characters
/// (which would move the cursor) turned into spaces, and its length bounded.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(LOG_LINE_MAX));
    let mut chars = s.chars().peekable();
    let mut n = 0;
    while let Some(c) = chars.next() {
        if n >= LOG_LINE_MAX {
            break;
        }
        match c {
            '\x1b' => {
                // CSI: ESC [ params final(0x40..=0x7e); other escapes: ESC + one char.
                if chars.next_if_eq(&'[').is_some() {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => {
                out.push_str("    ");
                n += 4;
            }
            c if c.is_control() => {
                out.push(' ');
                n += 1;
            }
            c => {
                out.push(c);
                n += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmr_render::testutil::proc_info;

    fn app_with(names: &[&str]) -> App {
        let mut app = App::new("/tmp/h".into());
        let procs = names
            .iter()
            .enumerate()
            .map(|(i, n)| proc_info(i as u32, n, Status::Online))
            .collect();
        let now = 1_000_000_000_000;
        let (changed, effects) = app.on_list(procs, now);
        assert!(changed);
        assert!(matches!(&effects[..], [Effect::Follow(Some(0))]));
        app
    }

    #[test]
    fn the_same_list_again_draws_nothing() {
        let mut app = app_with(&["api", "web"]);
        let procs = app.procs.clone();
        let now = app.procs[0].pm_uptime + 3_600_000;
        let _ = app.on_list(procs.clone(), now);
        let (changed, effects) = app.on_list(procs.clone(), now + 1);
        assert!(!changed && effects.is_empty());
        let mut busier = procs;
        busier[1].restart_time += 1;
        let (changed, effects) = app.on_list(busier, now + 2);
        assert!(changed && effects.is_empty());
    }

    #[test]
    fn the_filter_keeps_the_selection_visible() {
        let mut app = app_with(&["api", "web", "worker"]);
        let now = 1;
        app.on_key(Cmd::StartFilter, now);
        let e = app.on_key(Cmd::FilterChar('w'), now);
        assert!(matches!(&e[..], [Effect::Follow(Some(1))]));
        assert_eq!(app.view.rows.len(), 2);
        app.on_key(Cmd::FilterChar('o'), now);
        assert_eq!(app.selected, Some(2));
        app.on_key(Cmd::FilterCancel, now);
        assert_eq!((app.view.rows.len(), app.selected), (3, Some(2)));
    }

    #[test]
    fn trigger_asks_for_an_action_and_sends_its_parameter() {
        let mut app = app_with(&["api"]);
        app.on_key(Cmd::Trigger, 1);
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.status.contains("has no actions"), "{}", app.status);
        app.procs[0].axm.actions = vec![serde_json::json!({"action_name": "echo"})];
        app.on_key(Cmd::Trigger, 1);
        assert_eq!(app.mode, Mode::Trigger);
        for c in "echo hi there".chars() {
            assert!(app.on_key(Cmd::FilterChar(c), 1).is_empty());
        }
        assert!(app.filter.is_empty());
        let e = app.on_key(Cmd::FilterDone, 1);
        assert!(
            matches!(
                &e[..],
                [Effect::Request { req: Request::Trigger(TriggerRequest { ids, action, param: Some(Value::String(p)), .. }), .. }]
                    if ids == &[0] && action == "echo" && p == "hi there"
            ),
            "{e:?}"
        );
        app.on_key(Cmd::Trigger, 1);
        app.on_key(Cmd::FilterChar('x'), 1);
        assert!(app.on_key(Cmd::FilterCancel, 1).is_empty());
        assert_eq!((app.mode, app.trigger.is_none()), (Mode::Normal, true));
    }

    #[test]
    fn delete_asks_first() {
        let mut app = app_with(&["api"]);
        assert!(app.on_key(Cmd::Delete, 1).is_empty());
        assert_eq!(app.mode, Mode::Confirm);
        assert!(app.on_key(Cmd::No, 1).is_empty());
        assert!(app.status.contains("cancelled"));
        app.on_key(Cmd::Delete, 1);
        let e = app.on_key(Cmd::Yes, 1);
        assert!(matches!(
            &e[..],
            [Effect::Request { req: Request::Action(ActionRequest { action: Action::Delete, ids, .. }), .. }] if ids == &[0]
        ));
    }

    #[test]
    fn app_output_cannot_drive_the_terminal() {
        assert_eq!(clean("\x1b[31mred\x1b[0m\tx\x07\r"), "red    x  ");
        assert_eq!(clean(&"x".repeat(5000)).len(), LOG_LINE_MAX);
    }

    #[test]
    fn metrics_in_pm2_shape() {
        let m = serde_json::json!({
            "Heap Size": {"value": 12.5, "unit": "MiB", "type": "metric", "historic": true},
            "req/min": {"value": 3},
            "state": {"value": "idle\u{1b}[2J", "unit": ""},
            "odd": {"value": null}
        });
        assert_eq!(
            metric_rows(&m),
            vec![
                ("Heap Size".to_string(), "12.5 MiB".to_string()),
                ("req/min".into(), "3".into()),
                ("state".into(), "idle".into()),
                ("odd".into(), "N/A".into()),
            ]
        );
        assert!(metric_rows(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn metadata_is_the_describe_sheet() {
        let app = app_with(&["api"]);
        assert!(app.view.meta.contains(&("name".into(), "api".into())));
        assert!(app.view.meta.contains(&("status".into(), "online".into())));
        assert!(app.view.metrics.is_empty());
    }
}
