//! `describe`'s @pm2/io sections, as PM2's (`pm2-describe.js`): "Actions available" with the
//! hint to trigger them, then "Code metrics value"; pmr adds the exceptions the app reported
//! and how many events it sent.

use super::display_width;
use super::style::{self, paint};
use super::table::{render_box, Cell};
use pmr_core::protocol::ProcInfo;
use serde_json::Value;

/// The sections (empty when the process reported nothing).
pub fn sections(p: &ProcInfo, color: bool) -> String {
    let mut out = String::new();
    let names: Vec<&str> = p
        .axm
        .actions
        .iter()
        .filter_map(|a| a["action_name"].as_str())
        .collect();
    if !names.is_empty() {
        out += &paint(color, &[style::BOLD, style::INVERSE], " Actions available ");
        out.push('\n');
        let w = names.iter().map(|n| display_width(n)).max().unwrap_or(0) + 2;
        let rows: Vec<Vec<Cell>> = names.iter().map(|n| vec![Cell::plain(*n)]).collect();
        out += &render_box(&[w], None, &rows, color);
        let hint = format!(" Trigger via: pmr trigger {} <action_name>", p.spec.name);
        out += &paint(color, &[style::ITALIC], &hint);
        out += "\n\n";
    }
    if !p.axm.monitor.is_empty() {
        out += &paint(
            color,
            &[style::BOLD, style::INVERSE],
            " Code metrics value ",
        );
        out.push('\n');
        let rows: Vec<(String, String)> = p
            .axm
            .monitor
            .iter()
            .map(|(k, m)| (k.clone(), metric_cell(m)))
            .collect();
        let kw = rows
            .iter()
            .map(|(k, _)| display_width(k))
            .max()
            .unwrap_or(0)
            + 2;
        let vw = rows
            .iter()
            .map(|(_, v)| display_width(v))
            .max()
            .unwrap_or(0)
            + 2;
        let body: Vec<Vec<Cell>> = rows
            .into_iter()
            .map(|(k, v)| vec![Cell::styled(k, &[style::CYAN, style::BOLD]), Cell::plain(v)])
            .collect();
        out += &render_box(&[kw, vw], None, &body, color);
    }
    if p.axm.exceptions > 0 {
        let last = p.axm.last_exception.as_deref().unwrap_or("");
        let line = format!(
            " {} exception(s) reported by the app, the last: {last}",
            p.axm.exceptions
        );
        out += &paint(color, &[style::RED], &line);
        out.push('\n');
    }
    if p.axm.events > 0 {
        let line = format!(
            " {} event(s) sent by the app (io.emit and others)",
            p.axm.events
        );
        out += &paint(color, &[style::ITALIC], &line);
        out.push('\n');
    }
    out
}

/// PM2's `${value} ${unit}`: the metric's `value` (or the metric itself) as JavaScript
/// prints it.
fn metric_cell(m: &Value) -> String {
    let v = m.get("value").unwrap_or(m);
    let unit = m.get("unit").map(js_string).unwrap_or_default();
    format!("{} {unit}", js_string(v))
}

fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{proc_info, strip_ansi};
    use pmr_core::protocol::Status;
    use serde_json::json;

    #[test]
    fn actions_and_metrics_as_pm2() {
        let mut p = proc_info(0, "f", Status::Online);
        assert_eq!(sections(&p, false), "");
        p.axm.actions = vec![
            json!({"action_name": "hello", "action_type": "custom", "arity": 1}),
            json!({"action_name": "km:heapdump", "action_type": "internal", "arity": 2}),
        ];
        p.axm.monitor = json!({
            "Realtime users": {"historic": true, "unit": "users", "value": 42},
            "Jobs done": {"historic": true, "value": 2},
            "Heap Usage": {"unit": "%", "value": 68.4},
            "raw": "x",
        })
        .as_object()
        .unwrap()
        .clone();
        let out = strip_ansi(&sections(&p, true));
        let expected = " Actions available \n\
┌─────────────┐
│ hello       │
│ km:heapdump │
└─────────────┘
 Trigger via: pmr trigger f <action_name>

 Code metrics value \n\
┌────────────────┬──────────┐
│ Realtime users │ 42 users │
│ Jobs done      │ 2        │
│ Heap Usage     │ 68.4 %   │
│ raw            │ x        │
└────────────────┴──────────┘
";
        assert_eq!(out, expected);
    }
}
