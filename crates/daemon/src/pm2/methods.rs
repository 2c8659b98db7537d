//! The methods PM2's daemon exposes (`lib/Daemon.js`), each acting on pmr's own state through
//! the handlers pmr's CLI uses, with PM2's arguments, replies and error messages.
//!
//! Calls without a counterpart here are refused with a reply that says so (never silence):
//! `profileCPU`/`profileMEM` (profiling PM2's Node daemon), and `startWatch`/`toggleWatch`
//! (pmr changes watching with `restart --watch`). `stopWatch` is answered for the calls PM2's
//! client makes before a stop or a delete, which end watching themselves.

use super::{events, payload};
use crate::daemon::Daemon;
use pmr_core::protocol::{
    Action, ActionRequest, Request, ResolveRequest, Response, ScaleRequest, SendLineRequest,
    SignalRequest, StartRequest, VERSION,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub enum Reply {
    /// `{args: […]}`: the callback's arguments after `err`.
    Args(Vec<Value>),
    /// The whole `j:` argument, already written in pieces (`getMonitorData`'s list: the
    /// rendered `jlist` between `j:{"args":[` and `]}`, never copied into one buffer).
    Parts(Vec<Vec<u8>>),
    Error(String),
    /// PM2 never calls back (`notifyKillPM2`).
    None,
}

/// Every method, with its parameter names as pm2-axon-rpc describes them (`{type:'methods'}`).
const METHODS: &[(&str, &[&str])] = &[
    ("killMe", &["opts", "cb"]),
    ("profileCPU", &["msg", "cb"]),
    ("profileMEM", &["msg", "cb"]),
    ("prepare", &["env", "cb"]),
    ("getMonitorData", &["env", "cb"]),
    ("getSystemData", &["env", "cb"]),
    ("startProcessId", &["id", "cb"]),
    ("stopProcessId", &["id", "cb"]),
    ("restartProcessId", &["opts", "cb"]),
    ("deleteProcessId", &["id", "cb"]),
    ("sendLineToStdin", &["packet", "cb"]),
    ("softReloadProcessId", &["opts", "cb"]),
    ("reloadProcessId", &["opts", "cb"]),
    ("duplicateProcessId", &["id", "cb"]),
    ("resetMetaProcessId", &["id", "cb"]),
    ("stopWatch", &["method", "value", "fn"]),
    ("startWatch", &["method", "value", "fn"]),
    ("toggleWatch", &["method", "value", "fn"]),
    ("notifyByProcessId", &["opts", "cb"]),
    ("notifyKillPM2", &[]),
    ("monitor", &["pm_id", "cb"]),
    ("unmonitor", &["pm_id", "cb"]),
    ("msgProcess", &["cmd", "cb"]),
    ("sendDataToProcessId", &["packet", "cb"]),
    ("sendSignalToProcessId", &["opts", "cb"]),
    ("sendSignalToProcessName", &["opts", "cb"]),
    ("ping", &["env", "cb"]),
    ("getVersion", &["env", "cb"]),
    ("getReport", &["arg", "cb"]),
    ("reloadLogs", &["opts", "cb"]),
];

/// What `getVersion` answers: the PM2 release whose protocol and behaviour pmr follows. PM2's
/// clients read it as the running PM2's version and compare it with PM2's releases
/// (pm2-intercom quits below 0.15.11, PM2's CLI says "out-of-date" when it differs from its
/// own): pmr's own version (0.x) reads as an ancient PM2. `getReport` still names pmr's.
const PM2_VERSION: &str = "7.0.4";

pub fn descriptions() -> Value {
    let mut m = Map::new();
    for (name, params) in METHODS {
        m.insert(name.to_string(), json!({ "name": name, "params": params }));
    }
    Value::Object(m)
}

async fn ask(d: &Arc<Daemon>, req: Request) -> Response {
    (d.http.handler)(d, req).await
}

/// Off the runtime's threads (reads /proc and renders).
async fn blocking<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&Daemon) -> T + Send + 'static,
) -> Option<T> {
    let d = d.clone();
    tokio::task::spawn_blocking(move || f(&d)).await.ok()
}

async fn formatted(d: &Arc<Daemon>, ids: Vec<u32>) -> Vec<Value> {
    blocking(d, move |d| payload::formatted(d, &ids))
        .await
        .unwrap_or_default()
}

async fn everything(d: &Arc<Daemon>) -> Vec<Value> {
    blocking(d, payload::all).await.unwrap_or_default()
}

/// A pm_id as PM2's clients send it: a number, a numeric string, or `{id}`.
fn pm_id(v: &Value) -> Option<u32> {
    let v = match v {
        Value::Object(m) if m.contains_key("id") => &m["id"],
        other => other,
    };
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn exists(d: &Daemon, id: u32) -> bool {
    d.registry.lock().unwrap().entries.contains_key(&id)
}

pub async fn call(d: &Arc<Daemon>, method: &str, args: Vec<Value>) -> Reply {
    let arg = args.first().cloned().unwrap_or(Value::Null);
    match method {
        "ping" => Reply::Args(vec![json!({ "msg": "pong" })]),
        "getVersion" => Reply::Args(vec![json!(PM2_VERSION)]),
        "getReport" => Reply::Args(vec![report(d)]),
        "getSystemData" => Reply::Args(vec![json!({})]),
        "getMonitorData" => monitor_data(d).await,
        "prepare" => prepare(d, arg).await,
        "startProcessId" => start_id(d, &arg).await,
        "stopProcessId" => act(d, Action::Stop, &arg, None).await,
        "deleteProcessId" => act(d, Action::Delete, &arg, None).await,
        "restartProcessId" => act(d, Action::Restart, &arg, update_env(&arg)).await,
        "reloadProcessId" | "softReloadProcessId" => {
            act(d, Action::Reload, &arg, update_env(&arg)).await
        }
        "resetMetaProcessId" => match pm_id(&arg) {
            Some(id) if exists(d, id) => {
                let r = action(d, Action::Reset, vec![id], None).await;
                match r {
                    Err(e) => Reply::Error(e),
                    Ok(()) => Reply::Args(vec![Value::Array(everything(d).await)]),
                }
            }
            _ => Reply::Error(format!("{} id unknown", show(&arg))),
        },
        "duplicateProcessId" => duplicate(d, &arg).await,
        "sendSignalToProcessId" => {
            let id = pm_id(&arg["process_id"]);
            match id.filter(|&id| exists(d, id)) {
                None => Reply::Error(format!("{} id unknown", show(&arg["process_id"]))),
                Some(id) => signal(d, &arg["signal"], vec![id]).await,
            }
        }
        "sendSignalToProcessName" => {
            let name = arg["process_name"].as_str().unwrap_or_default().to_string();
            match resolve(d, &name).await {
                Some(ids) if !ids.is_empty() => signal(d, &arg["signal"], ids).await,
                _ => Reply::Error("Unknown process name".into()),
            }
        }
        "sendLineToStdin" => send_line(d, arg).await,
        "sendDataToProcessId" => send_data(d, arg),
        "msgProcess" => msg_process(d, arg).await,
        "notifyByProcessId" => {
            let Some(id) = pm_id(&arg) else {
                return Reply::Error("process id missing".into());
            };
            let name = arg["action_name"].as_str().unwrap_or_default().to_string();
            let manually = arg.get("manually").is_some_and(|v| !v.is_null());
            match formatted(d, vec![id]).await.pop() {
                None => Reply::Error("process id doesnt exists".into()),
                Some(p) => {
                    events::process_event(d, &name, manually, &p);
                    Reply::Args(vec![])
                }
            }
        }
        "stopWatch" => {
            let what = arg.as_str().unwrap_or_default();
            if ["stop", "delete", "kill"].iter().any(|w| what.contains(w)) {
                Reply::Args(vec![json!({ "success": true })])
            } else {
                Reply::Error(format!(
                    "stopWatch for {what:?} is not supported by pmr: use `pmr restart <app> --watch` to change watching"
                ))
            }
        }
        "startWatch" | "toggleWatch" => Reply::Error(format!(
            "{method} is not supported by pmr: use `pmr restart <app> --watch` to change watching"
        )),
        "monitor" | "unmonitor" => match pm_id(&arg).filter(|&id| exists(d, id)) {
            Some(id) => Reply::Args(vec![json!({ "success": true, "pm_id": id })]),
            None => Reply::Error("Unknown pm_id".into()),
        },
        "reloadLogs" => {
            ask(d, Request::ReloadLogs).await;
            Reply::Args(vec![json!({})])
        }
        "notifyKillPM2" => {
            events::notify_kill(d);
            Reply::None
        }
        // Handled by the connection (`rpc.rs`): the daemon leaves after it.
        "killMe" => Reply::None,
        "profileCPU" | "profileMEM" => Reply::Error(format!(
            "{method} profiles PM2's Node.js daemon: pmr's daemon is not a Node.js process"
        )),
        _ => Reply::Error(format!("method \"{method}\" does not exist")),
    }
}

/// `killMe`: stop every app, as `pmr kill`, then SIGQUIT the client, which closes its sockets
/// when it gets it. The daemon leaves once the client has closed `stream` (or after PM2's
/// client's own 3 s): connections closed under it before the signal would make it reconnect
/// for ever instead of exiting.
pub async fn kill_me(
    d: &Arc<Daemon>,
    pid: Option<u32>,
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) {
    use tokio::io::AsyncReadExt;
    events::killed(d, "pm2 has been killed via CLI");
    ask(d, Request::Kill).await;
    if let Some(pid) = pid.filter(|&p| p > 1) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGQUIT,
        );
        let mut sink = [0u8; 256];
        let closed = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), closed).await;
    }
    d.exit.notify_one();
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".into(),
        other => other.to_string(),
    }
}

/// `restartProcessId`'s `env`: PM2's client sends `{current_conf}` alone, or with
/// `--update-env` its whole environment beside it; only the latter changes the app's.
fn update_env(opts: &Value) -> Option<BTreeMap<String, String>> {
    let env = opts.get("env")?.as_object()?;
    let vars: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| *k != "current_conf")
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    (!vars.is_empty()).then_some(vars)
}

async fn action(
    d: &Arc<Daemon>,
    action: Action,
    ids: Vec<u32>,
    update_env: Option<BTreeMap<String, String>>,
) -> Result<(), String> {
    let req = Request::Action(ActionRequest {
        action,
        ids,
        update_env,
        parallel: None,
        patch: None,
    });
    match ask(d, req).await {
        Response::Done { results } => match results.into_iter().find_map(|r| r.error) {
            Some(e) => Err(e),
            None => Ok(()),
        },
        Response::Error { message } => Err(message),
        other => Err(format!("unexpected reply: {other:?}")),
    }
}

/// Stop, delete, restart, reload of one id, answered with the process (as it was before a
/// delete, as PM2 does).
async fn act(
    d: &Arc<Daemon>,
    what: Action,
    arg: &Value,
    update_env: Option<BTreeMap<String, String>>,
) -> Reply {
    let Some(id) = pm_id(arg).filter(|&id| exists(d, id)) else {
        let shown = match what {
            Action::Restart | Action::Reload => {
                return Reply::Error("God db process id unknown".into())
            }
            _ => show(arg.get("id").unwrap_or(arg)),
        };
        return Reply::Error(format!("{shown} : id unknown"));
    };
    let before = if what == Action::Delete {
        formatted(d, vec![id]).await.pop()
    } else {
        None
    };
    if let Err(e) = action(d, what, vec![id], update_env).await {
        return Reply::Error(e);
    }
    let after = match before {
        Some(b) => Some(b),
        None => formatted(d, vec![id]).await.pop(),
    };
    Reply::Args(vec![after.unwrap_or_else(|| json!({}))])
}

async fn start_id(d: &Arc<Daemon>, arg: &Value) -> Reply {
    let Some(id) = pm_id(arg).filter(|&id| exists(d, id)) else {
        return Reply::Error(format!("{} id unknown", show(arg)));
    };
    let status = d
        .registry
        .lock()
        .unwrap()
        .entries
        .get(&id)
        .map(|e| e.shared.lock().unwrap().status);
    match status {
        Some(pmr_core::protocol::Status::Online) => {
            return Reply::Error("process already online".into())
        }
        Some(pmr_core::protocol::Status::Launching) => {
            return Reply::Error("process already started".into())
        }
        _ => {}
    }
    match action(d, Action::Restart, vec![id], None).await {
        Err(e) => Reply::Error(e),
        Ok(()) => Reply::Args(vec![formatted(d, vec![id])
            .await
            .pop()
            .unwrap_or(json!({}))]),
    }
}

async fn monitor_data(d: &Arc<Daemon>) -> Reply {
    let _permit = d.whole_table.acquire().await.ok();
    let parts = blocking(d, |d| {
        let procs = crate::requests::list::procs_now(d, true);
        pmr_render::forget_versions();
        let mut parts = vec![b"j:{\"args\":[".to_vec()];
        parts.extend(pmr_render::jlist_write::jlist_parts(
            &procs,
            &payload::home(d),
        ));
        parts.push(b"]}".to_vec());
        parts
    })
    .await;
    // The process trees' scan the sample deferred, off the reply's path (as after `jlist`).
    crate::requests::list::rescan_if_due(d);
    match parts {
        Some(p) => Reply::Parts(p),
        None => Reply::Error("the process list could not be read".into()),
    }
}

async fn resolve(d: &Arc<Daemon>, sel: &str) -> Option<Vec<u32>> {
    let req = Request::Resolve(ResolveRequest {
        selectors: vec![sel.to_string()],
        cwd: None,
    });
    match ask(d, req).await {
        Response::Ids { ids } => Some(ids),
        _ => None,
    }
}

async fn signal(d: &Arc<Daemon>, sig: &Value, ids: Vec<u32>) -> Reply {
    let text = match sig {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let Some(sig) = pmr_core::knobs::parse_signal(&text) else {
        return Reply::Error("Error when sending signal (signal unknown)".into());
    };
    let req = Request::Signal(SignalRequest {
        signal: sig as i32,
        ids,
    });
    match ask(d, req).await {
        Response::Error { message } => Reply::Error(message),
        _ => Reply::Args(vec![Value::Array(everything(d).await)]),
    }
}

async fn send_line(d: &Arc<Daemon>, packet: Value) -> Reply {
    let (Some(id), Some(line)) = (pm_id(&packet["pm_id"]), packet["line"].as_str()) else {
        return Reply::Error("pm_id or line field missing".into());
    };
    if line.is_empty() {
        return Reply::Error("pm_id or line field missing".into());
    }
    if !exists(d, id) {
        return Reply::Error(format!("Process with ID <{id}> unknown."));
    }
    let req = Request::SendLine(SendLineRequest {
        ids: vec![id],
        line: line.to_string(),
    });
    match ask(d, req).await {
        Response::Error { message } => Reply::Error(message),
        Response::Done { results } if results.iter().any(|r| r.error.is_some()) => Reply::Error(
            results
                .into_iter()
                .find_map(|r| r.error)
                .unwrap_or_default(),
        ),
        _ => Reply::Args(vec![json!({ "pm_id": id, "line": line })]),
    }
}

/// The running process's @pm2/io agent (its IPC channel), if it has one.
fn agent(d: &Daemon, id: u32) -> Result<Arc<crate::node::axm::Agent>, String> {
    let reg = d.registry.lock().unwrap();
    let Some(e) = reg.entries.get(&id) else {
        return Err(format!("Process with ID <{id}> unknown."));
    };
    let s = e.shared.lock().unwrap();
    match (&s.axm, s.status) {
        (Some(a), pmr_core::protocol::Status::Online | pmr_core::protocol::Status::Launching) => {
            Ok(a.clone())
        }
        _ => Err(format!("Process with ID <{id}> offline.")),
    }
}

fn send_data(d: &Arc<Daemon>, packet: Value) -> Reply {
    let id = pm_id(&packet["id"]);
    let topic_ok = packet["topic"].as_str().is_some_and(|t| !t.is_empty())
        || packet["topic"].as_bool() == Some(true);
    let (Some(id), true, false) = (id, topic_ok, packet.get("data").is_none()) else {
        return Reply::Error("ID, DATA or TOPIC field is missing".into());
    };
    match agent(d, id) {
        Err(e) => Reply::Error(e),
        Ok(a) if a.send(packet.clone()) => {
            Reply::Args(vec![json!({ "success": true, "data": packet })])
        }
        Ok(_) => Reply::Error(format!(
            "Process with ID <{id}> has no IPC channel (not a Node.js app started by pmr)"
        )),
    }
}

/// `msgProcess` (`pm2 trigger`): the action is sent and answered at once; the app's reply goes
/// out on the bus (`axm:reply`).
async fn msg_process(d: &Arc<Daemon>, cmd: Value) -> Reply {
    let Some(action) = cmd["msg"].as_str().map(str::to_string) else {
        return Reply::Error("method requires name or id field".into());
    };
    let opts = cmd.get("opts").filter(|o| !o.is_null()).cloned();
    let ids = if let Some(id) = cmd.get("id") {
        let Some(id) = pm_id(id).filter(|&id| exists(d, id)) else {
            return Reply::Error(format!("{} id unknown", show(id)));
        };
        vec![id]
    } else if let Some(name) = cmd["name"].as_str() {
        resolve(d, name).await.unwrap_or_default()
    } else {
        return Reply::Error("method requires name or id field".into());
    };
    let single = cmd.get("id").is_some();
    let mut sent = 0;
    for id in ids {
        let a = match agent(d, id) {
            Ok(a) => a,
            Err(_) if !single => continue,
            Err(_) => return Reply::Error(format!("{id} : id offline")),
        };
        match a.trigger(&action, opts.clone()) {
            Ok(_) => sent += 1,
            Err(_) if !single => {}
            Err(_) => {
                return Reply::Error(format!("Action doesn't exist {action} for {}", a.label()))
            }
        }
    }
    Reply::Args(vec![json!({ "process_count": sent, "success": true })])
}

async fn duplicate(d: &Arc<Daemon>, arg: &Value) -> Reply {
    // One look at the table: the id may go between two.
    let found = pm_id(arg).and_then(|id| {
        let reg = d.registry.lock().unwrap();
        let name = reg
            .entries
            .get(&id)?
            .shared
            .lock()
            .unwrap()
            .spec
            .name
            .clone();
        Some((name, reg.entries.keys().copied().collect::<Vec<u32>>()))
    });
    let Some((name, before)) = found else {
        return Reply::Error(format!("{} id unknown", show(arg)));
    };
    let req = Request::Scale(ScaleRequest {
        name,
        relative: true,
        count: 1,
    });
    match ask(d, req).await {
        Response::Error { message } => Reply::Error(message),
        _ => {
            let new: Vec<u32> = d
                .registry
                .lock()
                .unwrap()
                .entries
                .keys()
                .copied()
                .filter(|k| !before.contains(k))
                .collect();
            Reply::Args(vec![formatted(d, new).await.pop().unwrap_or(json!({}))])
        }
    }
}

/// `prepare`: the app as PM2's client resolved it (whatever its version: unknown keys are
/// ignored, as an ecosystem file's), started as new instances.
async fn prepare(d: &Arc<Daemon>, conf: Value) -> Reply {
    let Value::Object(mut app) = conf else {
        return Reply::Error("prepare: an app object is expected".into());
    };
    // The client resolves the script to `pm_exec_path`; its `cwd` is where it ran.
    if let Some(p) = app.get("pm_exec_path").and_then(Value::as_str) {
        app.insert("script".into(), json!(p));
    }
    let cwd = ["cwd", "pm_cwd"]
        .iter()
        .find_map(|k| app.get(*k).and_then(Value::as_str))
        .filter(|c| std::path::Path::new(c).is_absolute())
        .map(std::path::PathBuf::from);
    // The client puts the app's module settings under its name in `env` (`getAdditionalConf`):
    // an object for a script (`pm2.start(path)`), a string for an app object, whose `env` it
    // stringifies as for a config file. pmr builds that variable itself, the same way.
    let from_file = app
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| app.get("env")?.get(n))
        .is_none_or(Value::is_string);
    // PM2's client sends `watch` only when it is given, and PM2 shows it only then.
    let watch_given = app.contains_key("watch");
    strip_internal(&mut app);
    let built = tokio::task::spawn_blocking(move || {
        let ctx = pmr_config::app::BuildCtx {
            base_dir: cwd.unwrap_or_else(|| std::path::PathBuf::from("/")),
            env: BTreeMap::new(),
            from_file,
            ..pmr_config::app::BuildCtx::from_process(None)
        };
        pmr_config::specs::build_all(&Value::Object(app), "prepare", &ctx, false, |_| {})
    })
    .await;
    let mut specs = match built {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Reply::Error(e),
        Err(e) => return Reply::Error(e.to_string()),
    };
    if !watch_given {
        for s in &mut specs {
            s.removed.push("watch".into());
        }
    }
    let req = Request::Start(StartRequest {
        apps: specs,
        force: true,
        patch: None,
    });
    match ask(d, req).await {
        Response::Started { ids } => Reply::Args(vec![Value::Array(formatted(d, ids).await)]),
        Response::Error { message } => Reply::Error(message),
        other => Reply::Error(format!("unexpected reply: {other:?}")),
    }
}

/// Keys PM2's client adds for its daemon's own bookkeeping, which are not options.
fn strip_internal(app: &mut Map<String, Value>) {
    for k in [
        "pm_exec_path",
        "pm_cwd",
        "exec_interpreter",
        "exec_mode",
        "pm_out_log_path",
        "pm_err_log_path",
        "pm_pid_path",
        "vizion_running",
        "km_link",
        "unique_id",
        "status",
        "pm_id",
        "username",
        "windowsHide",
    ] {
        if let (Some(v), true) = (app.get(k), k == "exec_interpreter" || k == "exec_mode") {
            // Both are options too, under the names PM2's own files use.
            let name = if k == "exec_interpreter" {
                "interpreter"
            } else {
                "exec_mode"
            };
            let v = v.clone();
            app.remove(k);
            if name == "interpreter" && v == "none" {
                continue;
            }
            app.entry(name.to_string()).or_insert(v);
            continue;
        }
        app.remove(k);
    }
}

fn report(d: &Daemon) -> Value {
    let env: Map<String, Value> = std::env::vars().map(|(k, v)| (k, json!(v))).collect();
    let apps = d.registry.lock().unwrap().entries.len();
    let started = d
        .http
        .started
        .get()
        .map(|t| payload::now_ms() - t.elapsed().as_millis() as i64);
    json!({
        "pm2_version": VERSION,
        "node_version": "N/A",
        "node_path": std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        "argv0": std::env::args().next().unwrap_or_default(),
        "argv": std::env::args().collect::<Vec<_>>(),
        "user": std::env::var("USER").ok(),
        "uid": nix::unistd::geteuid().as_raw(),
        "gid": nix::unistd::getegid().as_raw(),
        "env": env,
        "managed_apps": apps,
        "started_at": started,
    })
}
