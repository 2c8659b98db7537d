//! The one contract between the CLI and the daemon: request/response types and their framing.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. Frames larger than
//! [`MAX_FRAME`] are refused on both sides, so a garbage or hostile peer cannot make the daemon
//! allocate without bound.

pub mod amp;
mod patch;
mod request;

pub use patch::{SpecFields, SpecPatch};
pub use request::*;

use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::Arc;

/// The pmr version, which the daemon reports in `Pong`; the CLI warns when they differ.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Bumped whenever a type below changes incompatibly; the CLI warns on a mismatch.
pub const PROTOCOL_VERSION: u32 = 2;
pub const MAX_FRAME: usize = 16 << 20;

/// The most instances one app may have unless `PMR_MAX_INSTANCES` says otherwise.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// The most instances one app may have: `$PMR_MAX_INSTANCES` if it is a positive integer,
/// else [`DEFAULT_MAX_INSTANCES`]. The CLI checks it before sending a request and the daemon
/// again on `start`, `apply` and `scale` (it must survive any client); the daemon inherits the
/// environment of the CLI that started it, so both usually agree.
pub fn max_instances() -> u32 {
    parse_max_instances(std::env::var("PMR_MAX_INSTANCES").ok().as_deref())
}

fn parse_max_instances(v: Option<&str>) -> u32 {
    v.and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_INSTANCES)
}

/// The one wording of "too many instances", for the CLI and the daemon.
pub fn too_many_instances(app: &str, count: impl std::fmt::Display, max: u32) -> String {
    format!(
        "app \"{app}\": {count} instances is more than the maximum of {max} per app (set PMR_MAX_INSTANCES to change it)"
    )
}

/// One process of a dump (`pmr save`), as written to `dump.json` and sent by `resurrect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpProc {
    /// The id it had; kept on resurrect when free.
    pub pm_id: u32,
    /// Its instance number (`NODE_APP_INSTANCE`); kept when free.
    pub instance: u32,
    /// `online` (started again), `stopped` (registered stopped) or `errored` (not started).
    pub status: Status,
    pub spec: AppSpec,
    /// Why it cannot start (its script is gone): it is registered `errored` with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: String,
        protocol: u32,
        pid: u32,
    },
    Started {
        ids: Vec<u32>,
    },
    List {
        procs: Vec<ProcInfo>,
    },
    Ids {
        ids: Vec<u32>,
    },
    Done {
        results: Vec<ActionResult>,
    },
    Error {
        message: String,
    },
    Subscribed,
    /// Whole lines (each ending with `\n`) read at once from one stream of one app.
    Log {
        /// `None`: the daemon's own log.
        id: Option<u32>,
        name: String,
        /// `out`, `err` or `pmr`.
        stream: String,
        /// When the daemon read them, ms since the epoch.
        time: i64,
        lines: String,
    },
    /// This many lines were not sent to this subscriber (it read too slowly).
    Skipped {
        count: u64,
    },
    Flushed {
        paths: Vec<String>,
    },
    LogsReloaded {
        files: usize,
        /// What was wrong in `conf.json`.
        warnings: Vec<String>,
    },
    /// `resurrect`: the processes registered (with `error` when they failed to start or were
    /// registered `errored`), and the app names skipped because they were already managed.
    Resurrected {
        results: Vec<ActionResult>,
        skipped: Vec<String>,
    },
    /// `update`: every app was stopped and the table written; the daemon (same pid) now
    /// re-executes itself and restores the table, starting the apps again.
    Updating {
        /// How many instances the table holds (online ones are started again).
        instances: u32,
    },
    /// `trigger`: one reply per instance, in id order.
    Triggered {
        replies: Vec<TriggerReply>,
    },
    /// The HTTP API server's state after a `Web` request: the address it is bound to (`None`:
    /// off) and the token file.
    Web {
        listen: Option<String>,
        token_file: String,
    },
    /// `render`: `len` bytes of text follow this frame as they are (no JSON escaping of a
    /// megabyte of JSON); the CLI copies them to its stdout. Bounded like a frame.
    Rendered {
        len: usize,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionResult {
    pub id: u32,
    pub name: String,
    /// `None` on success.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "launching")]
    Launching,
    #[serde(rename = "online")]
    Online,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "stopped")]
    Stopped,
    #[serde(rename = "errored")]
    Errored,
    #[serde(rename = "waiting restart")]
    WaitingRestart,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Errored => "errored",
            Status::WaitingRestart => "waiting restart",
        }
    }
}

/// Everything `jlist`, `ls`, `describe` and `env` show about one managed process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcInfo {
    pub pm_id: u32,
    /// The instance number (`NODE_APP_INSTANCE`), distinct from `pm_id`.
    pub instance: u32,
    /// Shared with the daemon's instance: a `list` of a thousand apps copies no spec.
    #[serde(serialize_with = "ser_spec", deserialize_with = "de_spec")]
    pub spec: std::sync::Arc<AppSpec>,
    pub status: Status,
    /// 0 when not running.
    pub pid: u32,
    /// Start of the current run, ms since the epoch.
    pub pm_uptime: i64,
    pub created_at: i64,
    pub restart_time: u32,
    pub unstable_restarts: u32,
    pub exit_code: Option<i32>,
    pub prev_restart_delay: u64,
    // Shared with the daemon's own copies (`Arc`): a `jlist` of 1,000 apps made 5,000 string
    // copies for these alone.
    pub out_log_path: Arc<str>,
    pub err_log_path: Arc<str>,
    pub log_path: Option<Arc<str>>,
    pub pid_path: Arc<str>,
    /// The environment the child got (or will get) on its next start.
    pub env: crate::env_map::Env,
    pub username: Arc<str>,
    pub monit: Monit,
    /// Why the last start failed or the process errored, for `describe`.
    pub last_error: Option<String>,
    /// The instance's last restarts, oldest first (bounded by the daemon).
    #[serde(default)]
    pub restart_history: Vec<RestartRecord>,
    /// Next `cron_restart` run, ms since the epoch, in the daemon's time zone's reckoning.
    #[serde(default)]
    pub cron_next: Option<i64>,
    /// What `watch` watches, while it does (how, and how many directories).
    #[serde(default)]
    pub watching: Option<String>,
    /// The file whose change last restarted the app.
    #[serde(default)]
    pub watch_last: Option<String>,
    /// What the running process said through @pm2/io.
    #[serde(default)]
    pub axm: AxmInfo,
    /// Lines of its open log files dropped because they could not be written (disk full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_lines_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn ser_spec<S: serde::Serializer>(spec: &std::sync::Arc<AppSpec>, s: S) -> Result<S::Ok, S::Error> {
    spec.as_ref().serialize(s)
}

fn de_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::sync::Arc<AppSpec>, D::Error> {
    AppSpec::deserialize(d).map(std::sync::Arc::new)
}

/// What made an instance restart (or, for `cron`, start a stopped one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartCause {
    /// The process exited on its own and the restart policy started it again.
    Crash,
    Cron,
    Memory,
    /// A user's `restart` (or an option patch applied by one).
    Restart,
    /// A user's `reload`.
    Reload,
    Watch,
}

impl RestartCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartCause::Crash => "crash",
            RestartCause::Cron => "cron",
            RestartCause::Memory => "memory",
            RestartCause::Restart => "restart",
            RestartCause::Reload => "reload",
            RestartCause::Watch => "watch",
        }
    }
}

/// One restart of an instance: `describe`'s restart history, `pmr_restart_history` in jlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// When, ms since the epoch.
    pub at: i64,
    pub cause: RestartCause,
    /// The figures: `exited with code 1`, `memory 512.3 MB > 500 MB`, the cron pattern.
    pub detail: String,
    /// How long the process that was replaced had run, ms (0: none was running).
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Monit {
    /// Resident memory of the whole process tree, bytes.
    pub memory: u64,
    /// CPU of the whole process tree, percent of one core, one decimal.
    pub cpu: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    }
}

pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    // Serialized straight after a header placeholder: one buffer, not a body and a copy (a
    // `list` of 1,000 apps is megabytes).
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// The [`Response::Rendered`] frame for `len` bytes of text, which are written after it.
pub fn encode_rendered(len: usize) -> Result<Vec<u8>, FrameError> {
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    encode(&Response::Rendered { len })
}

/// Blocking: copies the `len` bytes after a [`Response::Rendered`] frame to `out` as they
/// arrive (megabytes for a thousand apps: the reader of `out` starts on the first ones). An
/// error writing `out` (a closed pipe) stops the copy and is returned as it is.
pub fn copy_rendered(r: &mut impl Read, len: usize, out: &mut impl Write) -> Result<(), CopyError> {
    if len > MAX_FRAME {
        return Err(CopyError::Read(FrameError::TooLarge(len)));
    }
    let mut buf = vec![0u8; len.min(256 * 1024)];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len());
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(CopyError::Read(FrameError::Io(
                    std::io::ErrorKind::UnexpectedEof.into(),
                )))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(FrameError::Io(e))),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n;
    }
    out.flush().map_err(CopyError::Write)
}

/// Why [`copy_rendered`] stopped.
#[derive(Debug)]
pub enum CopyError {
    Read(FrameError),
    Write(std::io::Error),
}

/// Blocking write, for the CLI.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Blocking read, for the CLI.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let mut body = vec![0u8; check_len(header)?];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

pub async fn write_frame_async<T: Serialize>(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    use tokio::io::AsyncWriteExt;
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}

pub async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<T, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 4];
    r.read_exact(&mut header).await?;
    let mut body = vec![0u8; check_len(header)?];
    r.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_instances_from_the_environment() {
        assert_eq!(parse_max_instances(None), DEFAULT_MAX_INSTANCES);
        assert_eq!(parse_max_instances(Some("4")), 4);
        assert_eq!(parse_max_instances(Some(" 4 ")), 4);
        for bad in ["0", "-1", "lots", "", "99999999999"] {
            assert_eq!(
                parse_max_instances(Some(bad)),
                DEFAULT_MAX_INSTANCES,
                "{bad}"
            );
        }
    }

    #[test]
    fn roundtrip_and_limits() {
        let bytes = encode(&Request::Ping).unwrap();
        let back: Request = read_frame(&mut &bytes[..]).unwrap();
        assert!(matches!(back, Request::Ping));

        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let err = read_frame::<Request>(&mut &huge[..]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)));

        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"nope!");
        let err = read_frame::<Request>(&mut &garbage[..]).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)));
    }
}

/// A process's @pm2/io state (empty for processes that do not use it, and once they exit).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AxmInfo {
    /// `pm2_env.axm_monitor`: metric name → `{historic, unit, type, value}` as the app sent it.
    #[serde(default)]
    pub monitor: serde_json::Map<String, serde_json::Value>,
    /// `pm2_env.axm_actions`: `{action_name, action_type, arity, opts}`, in registration order.
    #[serde(default)]
    pub actions: Vec<serde_json::Value>,
    /// `axm:option:configuration` the app sent, merged over `pm2_env.axm_options`.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// `process:exception` messages received, and the last one's message.
    #[serde(default)]
    pub exceptions: u64,
    #[serde(default)]
    pub last_exception: Option<String>,
    /// `human:event` and messages of other types received (PM2 publishes them on its bus).
    #[serde(default)]
    pub events: u64,
}

/// One instance's answer to a `trigger`: `data` when it replied, `error` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerReply {
    pub pm_id: u32,
    pub name: String,
    pub namespace: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
