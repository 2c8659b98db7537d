//! What the CLI asks of the daemon.

use super::{DumpProc, SpecPatch};
use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Register and launch apps (each `AppSpec` becomes `instances` processes).
    Start {
        apps: Vec<AppSpec>,
        /// `-f`: start even if the same script is already running under the same name.
        #[serde(default)]
        force: bool,
        /// The command line's options, for the stopped apps this restarts.
        #[serde(default)]
        patch: Option<SpecPatch>,
    },
    /// The apps of an ecosystem file: restart those known by name (with the new spec), start
    /// the others.
    Apply {
        apps: Vec<AppSpec>,
        /// Reload (rather than restart) the apps that are known.
        #[serde(default)]
        reload: bool,
    },
    List,
    /// Turn selectors into ids (errors on a selector that matches nothing).
    Resolve {
        selectors: Vec<String>,
        /// The CLI's working directory: a selector also matches the apps whose script is that
        /// path resolved against it (PM2's `pm_exec_path == path.resolve(x)`).
        #[serde(default)]
        cwd: Option<String>,
    },
    Action {
        action: Action,
        ids: Vec<u32>,
        /// With `--update-env`: the CLI's current environment, merged over the stored one.
        #[serde(default)]
        update_env: Option<BTreeMap<String, String>>,
        /// Reload: how many instances at once (default 1).
        #[serde(default)]
        parallel: Option<u32>,
        /// Restart/reload: options given on the command line, applied to the stored spec first.
        #[serde(default)]
        patch: Option<SpecPatch>,
    },
    Signal {
        signal: i32,
        ids: Vec<u32>,
    },
    /// `send`/`attach`: write `line` (with its separator) to the stdin of each instance
    /// (fork mode). Answered with `Done`, PM2's wording in each failure.
    SendLine {
        ids: Vec<u32>,
        line: String,
    },
    /// Set an app's instance count: `+N`/`-N` relative, `N` absolute.
    Scale {
        name: String,
        relative: bool,
        count: i64,
    },
    /// Stop every app, then exit the daemon.
    Kill,
    /// Live log lines: the daemon answers `Subscribed`, then sends `Log` (and `Skipped`) frames
    /// until the client hangs up. `ids: None` means every app, including apps started later.
    Subscribe {
        ids: Option<Vec<u32>>,
        #[serde(default = "yes")]
        out: bool,
        #[serde(default = "yes")]
        err: bool,
        /// The daemon's own log (`pmr.log`) too.
        #[serde(default)]
        daemon: bool,
    },
    /// Empty the log files of these apps (`None`: every app and `pmr.log`).
    Flush {
        ids: Option<Vec<u32>>,
    },
    /// Reopen every log file (after an external rotation) and re-read `conf.json`.
    ReloadLogs,
    /// `resurrect`: register the processes of a dump in one go, skipping every app whose name
    /// is already managed. Answered with `Resurrected`.
    Resurrect {
        procs: Vec<DumpProc>,
    },
    /// `update`: replace the daemon by the binary at `binary` (checked by the CLI and again by
    /// the daemon). Answered with `Updating` just before the daemon re-executes itself.
    Update {
        binary: String,
    },
    /// `trigger`: send an @pm2/io action (with `param`) to each instance and wait up to
    /// `timeout_ms` for each reply. Answered with `Triggered`, or an error when no instance is
    /// running or none has the action.
    Trigger {
        ids: Vec<u32>,
        action: String,
        #[serde(default)]
        param: Option<serde_json::Value>,
        timeout_ms: u64,
    },
    /// `pmr web` / `pmr set pmr:http`: the HTTP API server. `listen`: serve there (rebinding if
    /// it serves elsewhere); `stop`: serve nowhere; neither: just report. Answered with `Web`,
    /// or `Error` (e.g. the port is taken: nothing changed then).
    Web {
        #[serde(default)]
        listen: Option<String>,
        #[serde(default)]
        stop: bool,
        /// Write a new `http.token` (the old one stops working at once).
        #[serde(default)]
        rotate_token: bool,
    },
    /// `jlist` and `ls` as the CLI prints them, rendered by the daemon: a thousand apps are
    /// megabytes of `ProcInfo` that the CLI would only parse to print again. Answered with
    /// [`Response::Rendered`] and the text after it. Sent only to a daemon of the same version.
    Render {
        view: View,
    },
}

/// What [`Request::Render`] renders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum View {
    /// `jlist`; `home` is the CLI's home as it shows it (`env.PMR_HOME`).
    Jlist { home: String },
    /// `ls`: the CLI's terminal width (none: not a terminal) and colours.
    Table { width: Option<usize>, color: bool },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Stop,
    Restart,
    Reload,
    Delete,
    Reset,
}

impl Action {
    /// PM2's RPC method name, printed in "Applying action ..." lines.
    pub fn pm2_method(self) -> &'static str {
        match self {
            Action::Stop => "stopProcessId",
            Action::Restart => "restartProcessId",
            Action::Reload => "reloadProcessId",
            Action::Delete => "deleteProcessId",
            Action::Reset => "resetMetaProcessId",
        }
    }
}
