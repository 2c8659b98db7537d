//! What is meaningless between two runs is replaced by a placeholder before comparing: pids,
//! times and uptimes, memory and cpu, `unique_id`s, Node and tool versions, the temporary paths
//! (each side's home, cwd and `HOME`), and what PM2's in-app agent reports whenever it likes
//! (`axm_monitor`, `axm_actions`). Everything else is compared as it is.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Each side's temporary paths and the placeholder they become.
pub struct Paths(pub Vec<(String, &'static str)>);

impl Paths {
    fn apply(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (from, to) in &self.0 {
            s = s.replace(from.as_str(), to);
        }
        s
    }
}

fn placeholder(s: &str) -> Value {
    Value::String(s.to_string())
}

/// Normalise a `jlist`/`prettylist` value in place.
pub fn value(v: &mut Value, paths: &Paths) {
    walk(v, "", paths);
}

fn walk(v: &mut Value, key: &str, paths: &Paths) {
    match key {
        // PM2's @pm2/io agent reports these from inside the app, on its own schedule.
        "axm_monitor" | "axm_actions" => {
            *v = placeholder("<axm>");
            return;
        }
        "unique_id" if v.is_string() => {
            *v = placeholder("<uuid>");
            return;
        }
        "node_version" | "module_version" if v.is_string() => {
            *v = placeholder("<version>");
            return;
        }
        "pid" | "pm_pid" if v.as_u64().is_some_and(|p| p != 0) => {
            *v = placeholder("<pid>");
            return;
        }
        "_tree_pids" => {
            *v = placeholder("<pids>");
            return;
        }
        "cpu" | "memory" if v.is_number() => {
            *v = placeholder("<n>");
            return;
        }
        _ => {}
    }
    match v {
        // Epoch milliseconds (pm_uptime, created_at, ...): any number that large is a time.
        Value::Number(n) if n.as_f64().is_some_and(|f| f >= 1e12) => *v = placeholder("<time>"),
        Value::String(s) => *s = paths.apply(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, "", paths)),
        Value::Object(o) => {
            // Keys may hold paths too (PM2 adds the module-conf entry under the app's name).
            let taken = std::mem::take(o);
            let mut out = Map::new();
            for (k, mut x) in taken {
                walk(&mut x, &k, paths);
                out.insert(paths.apply(&k), x);
            }
            *o = out;
        }
        _ => {}
    }
}

/// The apps in a stable order: by name, then instance, then id. Ids follow the order in which
/// the daemon finished starting apps, which PM2 does concurrently for an ecosystem file.
pub fn sort_list(v: &mut Value) {
    if let Value::Array(list) = v {
        list.sort_by_key(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["pm2_env"]["NODE_APP_INSTANCE"].as_u64().unwrap_or(0),
                p["pm_id"].as_u64().unwrap_or(0),
            )
        });
    }
}

/// Leaves of `v` by path (`a.b[0].c`). Arrays of scalars and empty containers are leaves, shown
/// whole, so `node_args` differs as one value.
pub fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, x) in o {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// The rows of an `ls` table (the cells between `│`, borders dropped), the header first, with
/// the columns that change between runs normalised.
pub fn ls(text: &str, paths: &Paths) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            let cells: Vec<&str> = l.split('│').collect();
            cells[1..cells.len().saturating_sub(1)]
                .iter()
                .map(|c| paths.apply(c.trim()))
                .collect()
        })
        .collect();
    let Some(header) = rows.first().cloned() else {
        return rows;
    };
    // The same order as `sort_list`: by name, then id.
    let col = |name: &str| header.iter().position(|c| c == name);
    if let (Some(n), Some(i)) = (col("name"), col("id")) {
        rows[1..].sort_by_key(|r| (r[n].clone(), r[i].parse::<u64>().unwrap_or(0)));
    }
    for row in rows.iter_mut().skip(1) {
        for (col, cell) in header.iter().zip(row.iter_mut()) {
            let moving = match col.as_str() {
                "pid" => cell != "0" && cell != "N/A",
                "uptime" => cell != "0",
                "cpu" | "mem" => true,
                _ => false,
            };
            if moving {
                *cell = format!("<{col}>");
            }
        }
    }
    rows
}

/// The row key of a difference: its location without the step and without array indices
/// (`s05 =: jlist[1].pm2_env.env.PORT` → `jlist.pm2_env.env.PORT`).
pub fn what(location: &str) -> String {
    let rest = location.split_once(": ").map_or(location, |(_, r)| r);
    let mut out = String::new();
    let mut in_index = false;
    for c in rest.chars() {
        match c {
            '[' => in_index = true,
            ']' if in_index => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// One value as the table and the reports show it: compact JSON (so `3000` and `"3000"` differ),
/// `<absent>` for a missing key.
pub fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "<absent>".to_string(), Value::to_string)
}
