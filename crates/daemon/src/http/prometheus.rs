//! `GET /metrics`: the Prometheus text exposition format (0.0.4).
//!
//! Built from the same process list as `pmr jlist` (what pm2-prometheus-exporter reads from
//! PM2), straight from the typed values (building jlist's JSON first would cost more than the
//! whole scrape's budget), with the exporter's names and labels so its dashboards keep working: `pm2_up`, `pm2_cpu`,
//! `pm2_memory`, `pm2_uptime`, `pm2_instances`, `pm2_restarts`, `pm2_prev_restart_delay`,
//! labels `id`, `name`, `instance`, `interpreter`. Added by pmr: `pm2_unstable_restarts`,
//! `pm2_status` (one series per process, label `status`, value 1); restarts are counters.
//! Custom metrics (`pm2_env.axm_monitor`) are named as the exporter names them:
//! `pm2_` + the name with every run of characters other than `[A-Za-z0-9]` turned into `_`,
//! lowercased; the value is read as JavaScript's `parseFloat` reads it (`"12.5ms"` → 12.5) and
//! a metric without a number is left out, as one whose name is taken by a built-in one.
//! The daemon's own figures: `pmr_daemon_rss_bytes`, `pmr_daemon_threads`, `pmr_daemon_fds`,
//! `pmr_daemon_uptime_seconds`, `pmr_daemon_apps`, `pmr_daemon_processes`.

use pmr_core::protocol::ProcInfo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

const BUILTIN: &[(&str, &str, &str)] = &[
    ("pm2_up", "gauge", "Is the process running"),
    ("pm2_cpu", "gauge", "Process cpu usage"),
    ("pm2_memory", "gauge", "Process memory usage"),
    ("pm2_uptime", "gauge", "Process uptime"),
    ("pm2_instances", "gauge", "Process instances"),
    ("pm2_restarts", "counter", "Process restarts"),
    (
        "pm2_unstable_restarts",
        "counter",
        "Process unstable restarts",
    ),
    ("pm2_prev_restart_delay", "gauge", "Previous restart delay"),
    (
        "pm2_status",
        "gauge",
        "Process status (1 for the current one)",
    ),
];

/// One family: its help and type, then `labels value` lines.
struct Family {
    help: String,
    kind: &'static str,
    samples: String,
}

/// The exporter's metric name for a custom metric.
pub fn custom_name(name: &str) -> String {
    let mut out = String::from("pm2_");
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap {
                out.push('_');
                gap = false;
            }
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    if gap {
        out.push('_');
    }
    out
}

/// JavaScript's `parseFloat`: the longest numeric prefix after leading spaces.
pub fn parse_float(v: &Value) -> Option<f64> {
    let s = match v {
        Value::Number(n) => return n.as_f64().filter(|f| f.is_finite()),
        Value::String(s) => s.trim_start(),
        Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    let b = s.as_bytes();
    let mut end = 0;
    let mut best = None;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let mut digits = false;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
        digits = true;
    }
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
            digits = true;
        }
    }
    if digits {
        best = Some(end);
        if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
            let mut e = end + 1;
            if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
                e += 1;
            }
            let start = e;
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            if e > start {
                best = Some(e);
            }
        }
    }
    s[..best?].parse::<f64>().ok().filter(|f| f.is_finite())
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn num(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

/// The whole scrape. `now_ms`: the wall clock (uptimes).
pub fn render(procs: &[ProcInfo], daemon: &SelfStats, now_ms: i64) -> String {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (name, kind, help) in BUILTIN {
        fams.insert(
            name.to_string(),
            Family {
                help: help.to_string(),
                kind,
                samples: String::new(),
            },
        );
        order.push(name.to_string());
    }
    let mut custom: Vec<String> = Vec::new();
    for p in procs {
        let labels = format!(
            "id=\"{}\",name=\"{}\",instance=\"{}\",interpreter=\"{}\"",
            p.pm_id,
            escape_label(&p.spec.name),
            p.instance,
            escape_label(p.spec.interpreter_display()),
        );
        let online = p.status == pmr_core::protocol::Status::Online;
        let uptime = if online && p.pm_uptime > 0 {
            ((now_ms - p.pm_uptime).max(0) as f64 / 1000.0).round()
        } else {
            0.0
        };
        let values = [
            ("pm2_up", if online { 1.0 } else { 0.0 }),
            ("pm2_cpu", p.monit.cpu),
            ("pm2_memory", p.monit.memory as f64),
            ("pm2_uptime", uptime),
            ("pm2_instances", f64::from(p.spec.instances.max(1))),
            ("pm2_restarts", f64::from(p.restart_time)),
            ("pm2_unstable_restarts", f64::from(p.unstable_restarts)),
            ("pm2_prev_restart_delay", p.prev_restart_delay as f64),
        ];
        for (name, v) in values {
            let f = fams.get_mut(name).unwrap();
            let _ = writeln!(f.samples, "{name}{{{labels}}} {}", num(v));
        }
        let f = fams.get_mut("pm2_status").unwrap();
        let _ = writeln!(
            f.samples,
            "pm2_status{{{labels},status=\"{}\"}} 1",
            p.status.as_str()
        );
        if let Some(monitor) = monitor(p) {
            add_custom(&mut fams, &mut custom, monitor, &labels);
        }
    }
    order.extend(custom);
    let mut out = String::with_capacity(256 + procs.len() * 1024);
    for name in &order {
        let f = &fams[name];
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {name} {}", f.kind);
        out.push_str(&f.samples);
    }
    let mut apps: Vec<&str> = procs.iter().map(|p| p.spec.name.as_str()).collect();
    apps.sort_unstable();
    apps.dedup();
    let own = [
        (
            "pmr_daemon_rss_bytes",
            "Resident memory of the pmr daemon",
            daemon.rss_bytes as f64,
        ),
        (
            "pmr_daemon_threads",
            "Threads of the pmr daemon",
            daemon.threads as f64,
        ),
        (
            "pmr_daemon_fds",
            "Open file descriptors of the pmr daemon",
            daemon.fds as f64,
        ),
        (
            "pmr_daemon_uptime_seconds",
            "Seconds since the pmr daemon started",
            daemon.uptime_s,
        ),
        (
            "pmr_daemon_apps",
            "Apps (names) the daemon manages",
            apps.len() as f64,
        ),
        (
            "pmr_daemon_processes",
            "Processes (instances) the daemon manages",
            procs.len() as f64,
        ),
    ];
    for (name, help, v) in own {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
            num(v)
        );
    }
    out
}

/// The custom metrics of a process, as `jlist` shows them in `pm2_env.axm_monitor`
/// (`{name: {value, unit, ...}}`, what its @pm2/io agent reported).
fn monitor(p: &ProcInfo) -> Option<&serde_json::Map<String, Value>> {
    (!p.axm.monitor.is_empty()).then_some(&p.axm.monitor)
}

/// One process's custom metrics into their families (created on first sight, in that order).
fn add_custom(
    fams: &mut BTreeMap<String, Family>,
    custom: &mut Vec<String>,
    monitor: &serde_json::Map<String, Value>,
    labels: &str,
) {
    for (mname, m) in monitor {
        let raw = m.get("value").unwrap_or(m);
        let Some(v) = parse_float(raw) else { continue };
        let metric = custom_name(mname);
        if BUILTIN.iter().any(|(b, _, _)| *b == metric) {
            continue;
        }
        let f = fams.entry(metric.clone()).or_insert_with(|| {
            custom.push(metric.clone());
            Family {
                help: mname.clone(),
                kind: "gauge",
                samples: String::new(),
            }
        });
        let _ = writeln!(f.samples, "{metric}{{{labels}}} {}", num(v));
    }
}

#[derive(Debug, Default, Clone)]
pub struct SelfStats {
    pub rss_bytes: u64,
    pub threads: u64,
    pub fds: u64,
    pub uptime_s: f64,
}

/// The daemon's own figures from `/proc/self` (blocking: call on the blocking pool);
/// `started`: when it started serving.
pub fn self_stats(started: Option<Instant>) -> SelfStats {
    let mut s = SelfStats::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let value = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                s.rss_bytes = value(line) * 1024;
            } else if line.starts_with("Threads:") {
                s.threads = value(line);
            }
        }
    }
    s.fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    s.uptime_s = started.map_or(0.0, |t| t.elapsed().as_secs_f64().floor());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_names_as_the_exporter() {
        assert_eq!(custom_name("Event Loop Latency"), "pm2_event_loop_latency");
        assert_eq!(custom_name("req/sec"), "pm2_req_sec");
        assert_eq!(custom_name("Heap Size"), "pm2_heap_size");
        assert_eq!(custom_name("a--b  c"), "pm2_a_b_c");
        assert_eq!(custom_name("été!"), "pm2__t_");
    }

    #[test]
    fn custom_metrics_as_the_exporter() {
        let monitor = json!({
            "req/sec": {"value": 12.5, "unit": "req/s"},
            "Heap Size": {"value": "33.1 MiB"},
            "status": {"value": "ready"},
            "cpu": {"value": 99},
        });
        let mut fams = BTreeMap::new();
        let mut custom = Vec::new();
        let labels = "id=\"0\"";
        add_custom(&mut fams, &mut custom, monitor.as_object().unwrap(), labels);
        add_custom(
            &mut fams,
            &mut custom,
            monitor.as_object().unwrap(),
            "id=\"1\"",
        );
        assert_eq!(custom, ["pm2_req_sec", "pm2_heap_size"]);
        assert_eq!(
            fams["pm2_req_sec"].samples,
            "pm2_req_sec{id=\"0\"} 12.5\npm2_req_sec{id=\"1\"} 12.5\n"
        );
        assert_eq!(fams["pm2_heap_size"].help, "Heap Size");
        assert!(fams["pm2_heap_size"].samples.contains("} 33.1\n"));
    }

    #[test]
    fn values_as_parse_float() {
        assert_eq!(parse_float(&json!(3)), Some(3.0));
        assert_eq!(parse_float(&json!("12.5ms")), Some(12.5));
        assert_eq!(parse_float(&json!(" -1e3x")), Some(-1000.0));
        assert_eq!(parse_float(&json!("1e")), Some(1.0));
        assert_eq!(parse_float(&json!(".5")), Some(0.5));
        assert_eq!(parse_float(&json!("N/A")), None);
        assert_eq!(parse_float(&json!(".")), None);
        assert_eq!(parse_float(&json!(true)), None);
        assert_eq!(parse_float(&json!(null)), None);
    }
}
