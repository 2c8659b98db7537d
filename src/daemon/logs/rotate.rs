//! Built-in log rotation: settings (global `conf.json` + an app's `log_rotate` block), rotated
//! file names, the schedule, and the housekeeping (gzip, retention) done off the writer thread.
//!
//! Rotation renames the live file to `<stem>__<YYYY-MM-DD_HH-mm-ss>[_N].<ext>` and reopens the
//! path; it never copies and truncates, so no line is lost or written twice.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The `conf.json` section holding the global settings (`pmr set pmr-logrotate:max_size 10M`).
pub const CONF_SECTION: &str = "pmr-logrotate";
/// pm2-logrotate's section name, accepted as an alias.
pub const PM2_SECTION: &str = "pm2-logrotate";
pub const KEYS: &[&str] = &["max_size", "retain", "compress", "interval", "cron"];
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const DEFAULT_RETAIN: u32 = 30;
/// pm2-logrotate's default `dateFormat`, used in rotated names.
pub const DATE_FORMAT: &str = "YYYY-MM-DD_HH-mm-ss";

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
}

impl Default for RotateConf {
    fn default() -> Self {
        RotateConf {
            max_size: Some(DEFAULT_MAX_SIZE),
            retain: DEFAULT_RETAIN,
            compress: false,
            schedule: None,
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
    pub fn with_app(&self, block: Option<&Value>) -> RotateConf {
        let mut c = self.clone();
        if let Some(Value::Object(m)) = block {
            for (k, v) in m {
                if let Err(e) = c.set(k, v) {
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

/// `<dir>/<stem>__` and `.<ext>` (or empty) of a live file: rotated names are
/// `<stem>__<date>[_N]<ext>[.gz]`.
fn name_parts(live: &Path) -> (String, String) {
    let stem = live
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = live
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (format!("{stem}__"), ext)
}

/// The date and sequence number of the last rotation of one file.
pub type Last = Option<(String, u64)>;

/// A free name for the file rotated at `ms`: the date to the second, then `_1`, `_2`, ... when
/// several rotations happen within one second. `last` (updated) makes the sequence go on even
/// when retention has already deleted the earlier files of this second.
pub fn rotated_name(live: &Path, ms: i64, last: &mut Last) -> PathBuf {
    let (prefix, ext) = name_parts(live);
    let date = super::format::dayjs(DATE_FORMAT, ms);
    let dir = live.parent().unwrap_or(Path::new("."));
    let mut n = match last {
        Some((d, seq)) if *d == date => *seq + 1,
        _ => 0,
    };
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("_{n}")
        };
        let name = format!("{prefix}{date}{suffix}{ext}");
        let p = dir.join(&name);
        if !p.exists() && !dir.join(format!("{name}.gz")).exists() {
            *last = Some((date, n));
            return p;
        }
        n += 1;
    }
}

/// Sort key of a rotated file of `live` (date, sequence), or `None` if `name` is not one.
fn rotated_key(live: &Path, name: &str) -> Option<(String, u64)> {
    let (prefix, ext) = name_parts(live);
    let rest = name.strip_prefix(&prefix)?;
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    let rest = rest.strip_suffix(ext.as_str())?;
    // The date has a fixed length (YYYY-MM-DD_HH-mm-ss).
    if rest.len() < DATE_FORMAT.len() || !rest.is_char_boundary(DATE_FORMAT.len()) {
        return None;
    }
    let (date, seq) = rest.split_at(DATE_FORMAT.len());
    if !date
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return None;
    }
    let seq = match seq {
        "" => 0,
        s => s.strip_prefix('_')?.parse().ok()?,
    };
    Some((date.to_string(), seq))
}

/// The rotated files of `live`, oldest first.
pub fn rotated_files(live: &Path) -> Vec<PathBuf> {
    let dir = live.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut found: Vec<((String, u64), PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            rotated_key(live, &name).map(|k| (k, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// Work done after a rotation, on the housekeeping thread.
pub struct Job {
    pub live: PathBuf,
    pub rotated: PathBuf,
    pub compress: bool,
    pub retain: u32,
}

/// gzip the rotated file (to `.gz.tmp`, renamed when complete), then delete the oldest
/// rotated files beyond `retain`.
pub fn housekeep(job: &Job) {
    if job.compress {
        if let Err(e) = gzip(&job.rotated) {
            tracing::error!("cannot compress {}: {e}", job.rotated.display());
        }
    }
    let files = rotated_files(&job.live);
    let excess = files.len().saturating_sub(job.retain as usize);
    for old in &files[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!("cannot remove old log {}: {e}", old.display());
        }
    }
}

fn gzip(path: &Path) -> std::io::Result<()> {
    use flate2::write::GzEncoder;
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    let mut tmp_name = gz.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut input = std::fs::File::open(path)?;
    let out = std::fs::File::create(&tmp)?;
    let mut enc = GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    let res = std::io::copy(&mut input, &mut enc)
        .and_then(|_| enc.finish())
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)
}

/// One thread per daemon does compression and retention, in rotation order, so a slow gzip
/// never holds up a log writer. Its queue is bounded ([`QUEUE`] jobs); when it is full the
/// writer does the job itself (slower, never lost).
#[derive(Default)]
pub struct Housekeeper {
    tx: std::sync::Mutex<Option<std::sync::mpsc::SyncSender<Job>>>,
}

const QUEUE: usize = 256;

impl Housekeeper {
    pub const fn new() -> Housekeeper {
        Housekeeper {
            tx: std::sync::Mutex::new(None),
        }
    }

    pub fn submit(&self, job: Job) {
        let mut tx = self.tx.lock().unwrap();
        if tx.is_none() {
            let (t, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
            let spawned = std::thread::Builder::new()
                .name("pmr-logrotate".into())
                // gzip needs a deep stack (zlib's state lives on it); 2 MiB of address space,
                // only what is touched becomes resident.
                .stack_size(2 << 20)
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        housekeep(&job);
                    }
                });
            if spawned.is_ok() {
                *tx = Some(t);
            }
        }
        let job = match tx.as_ref() {
            Some(t) => match t.try_send(job) {
                Ok(()) => return,
                Err(std::sync::mpsc::TrySendError::Full(j))
                | Err(std::sync::mpsc::TrySendError::Disconnected(j)) => j,
            },
            None => job,
        };
        drop(tx);
        housekeep(&job);
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
        let app = g.with_app(Some(
            &serde_json::json!({"max_size": 2048, "compress": false}),
        ));
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

    #[test]
    fn rotated_names_sort_and_match_only_their_file() {
        let dir = std::env::temp_dir().join(format!("pmr-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let live = dir.join("web-out-1.log");
        let mut last = None;
        let a = rotated_name(&live, 0, &mut last);
        std::fs::write(&a, "a").unwrap();
        let b = rotated_name(&live, 0, &mut None);
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("_1.log"), "{}", b.display());
        std::fs::write(&b, "b").unwrap();
        // Names of other files in the same directory are not taken for ours.
        std::fs::write(dir.join("web-out-10__2020-01-01_00-00-00.log"), "x").unwrap();
        std::fs::write(dir.join("web-out-1.log"), "live").unwrap();
        let c = rotated_name(&live, 1000, &mut last);
        // The sequence goes on within a second even when earlier names are free again.
        let mut l2 = Some((crate::daemon::logs::format::dayjs(DATE_FORMAT, 0), 7));
        assert!(rotated_name(&live, 0, &mut l2)
            .to_string_lossy()
            .ends_with("_8.log"));
        std::fs::write(&c, "c").unwrap();
        assert_eq!(rotated_files(&live), vec![a.clone(), b.clone(), c.clone()]);
        housekeep(&Job {
            live: live.clone(),
            rotated: c.clone(),
            compress: true,
            retain: 2,
        });
        let left = rotated_files(&live);
        assert_eq!(left.len(), 2);
        assert_eq!(left[0], b);
        assert!(left[1].to_string_lossy().ends_with(".log.gz"));
        let mut d = flate2::read::GzDecoder::new(std::fs::File::open(&left[1]).unwrap());
        let mut s = String::new();
        std::io::Read::read_to_string(&mut d, &mut s).unwrap();
        assert_eq!(s, "c");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
