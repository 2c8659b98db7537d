//! What the CLI asks of the daemon: one [`Request`] per frame, each kind with a named struct of
//! its own, so a handler takes one typed value. On the wire a request is one JSON object, its
//! kind under `cmd` beside the struct's fields.

use super::{DumpProc, SpecPatch};
use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Start(StartRequest),
    Apply(ApplyRequest),
    List,
    Resolve(ResolveRequest),
    Action(ActionRequest),
    Signal(SignalRequest),
    SendLine(SendLineRequest),
    Scale(ScaleRequest),
    /// Stop every app, then exit the daemon.
    Kill,
    Subscribe(SubscribeRequest),
    Flush(FlushRequest),
    /// Reopen every log file (after an external rotation) and re-read `conf.json`.
    ReloadLogs,
    Resurrect(ResurrectRequest),
    Update(UpdateRequest),
    Trigger(TriggerRequest),
    Web(WebRequest),
    Render(RenderRequest),
}

/// Register and launch apps (each `AppSpec` becomes `instances` processes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    pub apps: Vec<AppSpec>,
    /// `-f`: start even if the same script is already running under the same name.
    #[serde(default)]
    pub force: bool,
    /// The command line's options, for the stopped apps this restarts.
    #[serde(default)]
    pub patch: Option<SpecPatch>,
}

/// The apps of an ecosystem file: restart those known by name (with the new spec), start the
/// others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub apps: Vec<AppSpec>,
    /// Reload (rather than restart) the apps that are known.
    #[serde(default)]
    pub reload: bool,
}

/// Turn selectors into ids (errors on a selector that matches nothing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub selectors: Vec<String>,
    /// The CLI's working directory: a selector also matches the apps whose script is that path
    /// resolved against it (PM2's `pm_exec_path == path.resolve(x)`).
    #[serde(default)]
    pub cwd: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionRequest {
    pub action: Action,
    pub ids: Vec<u32>,
    /// With `--update-env`: the CLI's current environment, merged over the stored one.
    #[serde(default)]
    pub update_env: Option<BTreeMap<String, String>>,
    /// Reload: how many instances at once (default 1).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Restart/reload: options given on the command line, applied to the stored spec first.
    #[serde(default)]
    pub patch: Option<SpecPatch>,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalRequest {
    pub signal: i32,
    pub ids: Vec<u32>,
}

/// `send`/`attach`: write `line` (with its separator) to the stdin of each instance (fork
/// mode). Answered with `Done`, PM2's wording in each failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendLineRequest {
    pub ids: Vec<u32>,
    pub line: String,
}

/// Set an app's instance count: `+N`/`-N` relative, `N` absolute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRequest {
    pub name: String,
    pub relative: bool,
    pub count: i64,
}

/// Live log lines: the daemon answers `Subscribed`, then sends `Log` (and `Skipped`) frames
/// until the client hangs up. `ids: None` means every app, including apps started later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeRequest {
    pub ids: Option<Vec<u32>>,
    #[serde(default = "yes")]
    pub out: bool,
    #[serde(default = "yes")]
    pub err: bool,
    /// The daemon's own log (`pmr.log`) too.
    #[serde(default)]
    pub daemon: bool,
}

fn yes() -> bool {
    true
}

/// Empty the log files of these apps (`None`: every app and `pmr.log`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlushRequest {
    pub ids: Option<Vec<u32>>,
}

/// `resurrect`: register the processes of a dump in one go, skipping every app whose name is
/// already managed. Answered with `Resurrected`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResurrectRequest {
    pub procs: Vec<DumpProc>,
}

/// `update`: replace the daemon by the binary at `binary` (checked by the CLI and again by the
/// daemon). Answered with `Updating` just before the daemon re-executes itself. Sent by a new
/// CLI to the old daemon it replaces: its wire format must not change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub binary: String,
}

/// `trigger`: send an @pm2/io action (with `param`) to each instance and wait up to
/// `timeout_ms` for each reply. Answered with `Triggered`, or an error when no instance is
/// running or none has the action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerRequest {
    pub ids: Vec<u32>,
    pub action: String,
    #[serde(default)]
    pub param: Option<serde_json::Value>,
    pub timeout_ms: u64,
}

/// `pmr web` / `pmr set pmr:http`: the HTTP API server. `listen`: serve there (rebinding if it
/// serves elsewhere); `stop`: serve nowhere; neither: just report. Answered with `Web`, or
/// `Error` (e.g. the port is taken: nothing changed then).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebRequest {
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub stop: bool,
    /// Write a new `http.token` (the old one stops working at once).
    #[serde(default)]
    pub rotate_token: bool,
}

/// `jlist` and `ls` as the CLI prints them, rendered by the daemon: a thousand apps are
/// megabytes of `ProcInfo` that the CLI would only parse to print again. Answered with
/// [`super::Response::Rendered`] and the text after it. Sent only to a daemon of the same
/// version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderRequest {
    pub view: View,
}

/// What [`RenderRequest`] renders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum View {
    /// `jlist`; `home` is the CLI's home as it shows it (`env.PMR_HOME`).
    Jlist { home: String },
    /// `ls`: the CLI's terminal width (none: not a terminal) and colours.
    Table { width: Option<usize>, color: bool },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each kind's fields beside `cmd`, as when the kinds were struct variants: a daemon and a
    /// CLI of the versions around this change understand each other (`update` above all).
    #[test]
    fn on_the_wire_one_object_per_request() {
        let update = Request::Update(UpdateRequest {
            binary: "/usr/bin/pmr".into(),
        });
        let wire = json!({"cmd": "update", "binary": "/usr/bin/pmr"});
        assert_eq!(serde_json::to_value(&update).unwrap(), wire);
        assert!(matches!(
            serde_json::from_value(wire).unwrap(),
            Request::Update(UpdateRequest { binary }) if binary == "/usr/bin/pmr"
        ));
        assert_eq!(
            serde_json::to_value(Request::Ping).unwrap(),
            json!({"cmd": "ping"})
        );
        let sub: Request =
            serde_json::from_value(json!({"cmd": "subscribe", "ids": null})).unwrap();
        assert!(matches!(
            sub,
            Request::Subscribe(SubscribeRequest {
                ids: None,
                out: true,
                err: true,
                daemon: false
            })
        ));
        let render = Request::Render(RenderRequest {
            view: View::Table {
                width: None,
                color: false,
            },
        });
        assert_eq!(
            serde_json::to_value(&render).unwrap(),
            json!({"cmd": "render", "view": {"view": "table", "width": null, "color": false}})
        );
    }
}
