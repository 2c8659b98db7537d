//! `$PMR_HOME/conf.json` and the log rotation settings it holds (global, overridden per app by
//! `log_rotate`). Shared by the CLI (`pmr set|get`, validation of `log_rotate`) and the daemon
//! (which applies them), so it lives outside both.

use crate::spec::LogRotate;
use serde_json::{Map, Value};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The `conf.json` section holding the global settings (`pmr set pmr-logrotate:max_size 10M`).
pub const CONF_SECTION: &str = "pmr-logrotate";
/// pm2-logrotate's section name, accepted as an alias.
pub const PM2_SECTION: &str = "pm2-logrotate";
pub const KEYS: &[&str] = &["max_size", "retain", "compress", "interval", "cron"];
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_RETAIN: u32 = 30;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

#[derive(Debug, Clone)]
pub struct RotateConf {
    /// `None`: never by size (`max_size 0` in the global settings).
    pub max_size: Option<u64>,
    /// Rotated files kept per log file (0: none kept).
    pub retain: u32,
    pub compress: bool,
    pub schedule: Option<Schedule>,
    /// The real pm2-logrotate module is installed and rotates instead ([`module_rotates`]).
    pub by_module: bool,
}

/// Whether the real pm2-logrotate module is installed (`pmr install pm2-logrotate`, listed in
/// `module-db-v2`): it then rotates every log file, and pmr's built-in rotation steps aside.
pub fn module_rotates(conf: &Map<String, Value>) -> bool {
    conf.get("module-db-v2")
        .and_then(Value::as_object)
        .is_some_and(|db| db.contains_key(PM2_SECTION))
}

impl Default for RotateConf {
    fn default() -> Self {
        RotateConf {
            max_size: Some(DEFAULT_MAX_SIZE),
            retain: DEFAULT_RETAIN,
            compress: false,
            schedule: None,
            by_module: false,
        }
    }
}

/// `10M`, `512K`, `1G`, `1048576` (K = 1024, as PM2); `0` is allowed (off).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1024u64),
        'm' => (&t[..t.len() - 1], 1024 * 1024),
        'g' => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

/// `30s`, `10m`, `12h`, `1d`, `1w`, or plain seconds.
pub fn parse_interval(s: &str) -> Option<Duration> {
    let t = s.trim();
    let unit = t.chars().last()?;
    let (num, mult) = match unit {
        's' => (&t[..t.len() - 1], 1),
        'm' => (&t[..t.len() - 1], 60),
        'h' => (&t[..t.len() - 1], 3600),
        'd' => (&t[..t.len() - 1], 86400),
        'w' => (&t[..t.len() - 1], 7 * 86400),
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().ok()?;
    (n > 0).then(|| Duration::from_secs(n * mult))
}

pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(s.trim()).map_err(|e| format!("bad cron expression {s:?}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl RotateConf {
    /// Apply one setting (from `conf.json`, where values are strings, or from an app's
    /// already validated `log_rotate` block, where they are typed).
    pub fn set(&mut self, key: &str, v: &Value) -> Result<(), String> {
        let t = text(v);
        match key {
            "max_size" => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    _ => parse_size(&t),
                }
                .ok_or_else(|| format!("max_size must be a size like 10M (0: off); got {t:?}"))?;
                self.max_size = (n > 0).then_some(n);
            }
            "retain" => {
                self.retain = match v {
                    Value::Number(n) => n.as_u64(),
                    _ => t.trim().parse().ok(),
                }
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("retain must be a non-negative integer; got {t:?}"))?;
            }
            "compress" => {
                self.compress = match (v, t.as_str()) {
                    (Value::Bool(b), _) => *b,
                    (_, "true") => true,
                    (_, "false") => false,
                    _ => return Err(format!("compress must be true or false; got {t:?}")),
                }
            }
            "interval" => {
                self.schedule = match t.as_str() {
                    "" | "0" | "off" | "false" => None,
                    _ => Some(Schedule::Every(parse_interval(&t).ok_or_else(|| {
                        format!("interval must be like 30s, 10m, 12h, 1d or 1w; got {t:?}")
                    })?)),
                }
            }
            "cron" | "rotateInterval" => {
                self.schedule = match t.as_str() {
                    "" | "0" | "off" | "false" => None,
                    _ => Some(Schedule::Cron(Box::new(parse_cron(&t)?))),
                }
            }
            other => {
                return Err(format!(
                    "unknown log rotation setting {other:?} (known: {})",
                    KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Global settings from `conf.json` (missing file: defaults; bad values are reported).
    pub fn global(conf: &Map<String, Value>) -> (RotateConf, Vec<String>) {
        let mut c = RotateConf::default();
        let mut errors = Vec::new();
        if module_rotates(conf) {
            // The real module rotates every file, the built-in rotation none (never both), and
            // `pm2-logrotate`'s settings are the module's.
            c.max_size = None;
            c.schedule = None;
            c.by_module = true;
            return (c, errors);
        }
        for section in [PM2_SECTION, CONF_SECTION] {
            if let Some(Value::Object(m)) = conf.get(section) {
                for (k, v) in m {
                    if let Err(e) = c.set(k, v) {
                        errors.push(format!("{section}:{k}: {e}"));
                    }
                }
            }
        }
        (c, errors)
    }

    /// These settings overridden by an app's `log_rotate` block.
    pub fn with_app(&self, block: Option<&LogRotate>) -> RotateConf {
        let mut c = self.clone();
        let Some(b) = block.filter(|_| !self.by_module) else {
            return c;
        };
        if let Some(n) = b.max_size {
            c.max_size = (n > 0).then_some(n);
        }
        if let Some(n) = b.retain {
            c.retain = n;
        }
        if let Some(z) = b.compress {
            c.compress = z;
        }
        // The CLI checked both texts with the parsers `set` uses, so these cannot fail.
        for (k, v) in [("interval", &b.interval), ("cron", &b.cron)] {
            if let Some(t) = v {
                if let Err(e) = c.set(k, &Value::String(t.clone())) {
                    tracing::warn!("log_rotate.{k}: {e}");
                }
            }
        }
        c
    }

    /// When the schedule next fires after `now` (ms since the epoch).
    pub fn next_due(&self, now_ms: i64) -> Option<i64> {
        match self.schedule.as_ref()? {
            Schedule::Every(d) => Some(now_ms + d.as_millis() as i64),
            Schedule::Cron(c) => {
                let now =
                    chrono::DateTime::from_timestamp_millis(now_ms)?.with_timezone(&chrono::Local);
                c.find_next_occurrence(&now, false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }
}

/// Read `$PMR_HOME/conf.json` (absent: empty).
pub fn read_conf(path: &Path) -> Result<Map<String, Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim().is_empty() => Ok(Map::new()),
        Ok(s) => match serde_json::from_str(&s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!("{}: not a JSON object", path.display())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_intervals_and_settings() {
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("big"), None);
        assert_eq!(parse_interval("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_interval("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_interval("0s"), None);

        let mut conf = Map::new();
        conf.insert(
            CONF_SECTION.into(),
            serde_json::json!({"max_size": "1M", "retain": "3", "compress": "true", "cron": "0 0 * * *"}),
        );
        let (g, errors) = RotateConf::global(&conf);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((g.max_size, g.retain, g.compress), (Some(1 << 20), 3, true));
        assert!(matches!(g.schedule, Some(Schedule::Cron(_))));
        let app = g.with_app(Some(&LogRotate {
            max_size: Some(2048),
            compress: Some(false),
            ..Default::default()
        }));
        assert_eq!(
            (app.max_size, app.retain, app.compress),
            (Some(2048), 3, false)
        );
        let now = chrono::Utc::now().timestamp_millis();
        let next = g.next_due(now).unwrap();
        assert!(next > now && next <= now + 86_400_000 + 3_600_000);

        conf.insert(
            CONF_SECTION.into(),
            serde_json::json!({"max_size": "0", "retain": "x"}),
        );
        let (g, errors) = RotateConf::global(&conf);
        assert_eq!(g.max_size, None);
        assert_eq!(errors.len(), 1);
    }
}
