//! What PM2's bus carries, made from pmr's own events:
//!
//! - `process:event`: from the instances' state changes (`start` at each launch, `online`,
//!   `exit` when a process ends, `restart overlimit` before the `exit` that leaves it errored,
//!   as `God.js` emits them), and for actions asked of pmr (`restart`, `stop`, `delete`,
//!   `reload`, `manually: true`), which PM2's own CLI announces with `notifyByProcessId`;
//! - `log:out`, `log:err` (a block of lines as read), `log:PM2` (the daemon's log);
//! - `process:msg` and every `{type, data}` an app sends (relayed by the app's agent, `axm.rs`);
//! - `pm2:kill`.
//!
//! Nothing is built while nobody subscribes: the log feed subscribes to the log hub only while
//! the bus has subscribers.

use super::payload;
use crate::bus::Bus;
use crate::daemon::Daemon;
use crate::logs::hub::{Filter, Stream};
use pmr_core::protocol::{Action, Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Blocks of log lines waiting to be published.
const LOG_QUEUE: usize = 64;

pub fn process_event(d: &Daemon, event: &str, manually: bool, formatted: &Value) {
    d.ctx.bus.publish(
        "process:event",
        &json!({
            "event": event,
            "manually": manually,
            "process": payload::clu(formatted),
            "at": payload::now_ms(),
        }),
    );
}

/// `notifyKillPM2`: PM2 stops restarting crashed apps from then on; pmr does so once the kill
/// itself begins (`Ctx::shutting_down`), which follows at once.
pub fn notify_kill(_d: &Daemon) {}

pub fn killed(d: &Daemon, msg: &str) {
    d.ctx
        .bus
        .publish("pm2:kill", &json!({ "status": "killed", "msg": msg }));
}

/// Start the feeds of the bus (once, when the daemon starts).
pub fn spawn(d: &Arc<Daemon>) {
    tokio::spawn(states(d.clone()));
    tokio::spawn(logs(d.clone()));
}

/// The PM2 events of a change from `prev` to `now` (status words and pids).
fn transitions(prev: Option<(&str, u32)>, now: (&str, u32)) -> &'static [&'static str] {
    let (now, pid) = now;
    if let (Some(("online", old)), "online") = (prev, now) {
        // A reload's new process (PM2 starts a new worker, which comes online).
        return if old != pid && pid != 0 {
            &["start", "online"]
        } else {
            &[]
        };
    }
    let prev = prev.map(|p| p.0);
    let was_running = matches!(prev, Some("online" | "launching" | "stopping"));
    match now {
        "launching" => &["start"],
        // A first launch is not announced as `launching`.
        "online" if prev == Some("launching") => &["online"],
        "online" => &["start", "online"],
        "errored" if was_running => &["restart overlimit", "exit"],
        "stopped" | "waiting restart" | "errored" if was_running => &["exit"],
        _ => &[],
    }
}

async fn states(d: Arc<Daemon>) {
    let mut rx = d.ctx.events.subscribe();
    let mut last: HashMap<u32, (&'static str, u32)> = HashMap::new();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let prev = if ev.status == "deleted" {
            last.remove(&ev.pm_id)
        } else {
            last.insert(ev.pm_id, (ev.status, ev.pid))
        };
        let events = transitions(prev, (ev.status, ev.pid));
        if events.is_empty() || !d.ctx.bus.active() {
            continue;
        }
        let id = ev.pm_id;
        let dd = d.clone();
        let Ok(Some(p)) =
            tokio::task::spawn_blocking(move || payload::formatted(&dd, &[id]).pop()).await
        else {
            continue;
        };
        for e in events {
            let manually = *e == "start";
            process_event(&d, e, manually, &p);
        }
    }
}

async fn logs(d: Arc<Daemon>) {
    let bus: &Bus = &d.ctx.bus;
    loop {
        while !bus.active() {
            bus.joined.notified().await;
        }
        let filter = Filter {
            ids: None,
            out: true,
            err: true,
            daemon: true,
        };
        let Some(mut rx) = d.ctx.sinks.hub.subscribe(filter, LOG_QUEUE) else {
            // The hub is full of `pmr logs` clients: try again when the next one joins.
            bus.joined.notified().await;
            continue;
        };
        while let Some((_, block)) = rx.recv().await {
            if !bus.active() {
                break;
            }
            let (topic, process) = match (block.stream, block.id) {
                (Stream::Daemon, _) | (_, None) => ("log:PM2", None),
                (stream, Some(id)) => {
                    let namespace = d
                        .registry
                        .lock()
                        .unwrap()
                        .entries
                        .get(&id)
                        .map(|e| e.shared.lock().unwrap().spec.namespace.clone())
                        .unwrap_or_else(|| "default".into());
                    let topic = if stream == Stream::Err {
                        "log:err"
                    } else {
                        "log:out"
                    };
                    (topic, Some((id, namespace)))
                }
            };
            bus.offer(log_frame(topic, process, &block.name, block.time, &block.lines).into());
        }
    }
}

/// `[s:log:…, j:{process, at, data}]`, written straight from the block (a log message is the
/// bus's most frequent: no JSON tree is built for it).
fn log_frame(
    topic: &str,
    process: Option<(u32, String)>,
    name: &str,
    at: i64,
    lines: &[u8],
) -> Vec<u8> {
    let text = String::from_utf8_lossy(lines);
    let mut j = Vec::with_capacity(lines.len() + 160);
    j.extend_from_slice(b"j:{\"process\":");
    match process {
        Some((id, namespace)) => {
            let _ = write!(j, "{{\"pm_id\":{id},\"name\":");
            let _ = serde_json::to_writer(&mut j, name);
            j.extend_from_slice(b",\"rev\":null,\"namespace\":");
            let _ = serde_json::to_writer(&mut j, &namespace);
            j.push(b'}');
        }
        None => j.extend_from_slice(b"{\"pm_id\":\"PM2\",\"name\":\"PM2\",\"rev\":null}"),
    }
    let _ = write!(j, ",\"at\":{at},\"data\":");
    let _ = serde_json::to_writer(&mut j, &*text);
    j.push(b'}');
    pmr_core::protocol::amp::encode_raw(&[&pmr_core::protocol::amp::str_arg(topic), &j])
}

/// An action asked of pmr (its CLI or HTTP API), to announce once done.
pub struct Manual {
    event: &'static str,
    ids: Vec<u32>,
    /// Deleted processes, as they were before.
    before: Vec<Value>,
}

pub async fn before(d: &Arc<Daemon>, req: &Request) -> Option<Manual> {
    let Request::Action(a) = req else { return None };
    if !d.ctx.bus.active() {
        return None;
    }
    let event = match a.action {
        Action::Stop => "stop",
        Action::Restart => "restart",
        Action::Reload => "reload",
        Action::Delete => "delete",
        Action::Reset => return None,
    };
    let ids = a.ids.clone();
    let before = if a.action == Action::Delete {
        let (dd, ids) = (d.clone(), ids.clone());
        tokio::task::spawn_blocking(move || payload::formatted(&dd, &ids))
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Some(Manual { event, ids, before })
}

pub async fn after(d: &Arc<Daemon>, m: Option<Manual>, resp: &Response) {
    let Some(Manual { event, ids, before }) = m else {
        return;
    };
    let Response::Done { results } = resp else {
        return;
    };
    let done: Vec<u32> = ids
        .into_iter()
        .filter(|id| results.iter().any(|r| r.id == *id && r.error.is_none()))
        .collect();
    let procs = if before.is_empty() {
        let dd = d.clone();
        tokio::task::spawn_blocking(move || payload::formatted(&dd, &done))
            .await
            .unwrap_or_default()
    } else {
        before
            .into_iter()
            .filter(|p| {
                p["pm_id"]
                    .as_u64()
                    .is_some_and(|id| done.contains(&(id as u32)))
            })
            .collect()
    };
    for p in &procs {
        process_event(d, event, true, p);
    }
}

#[cfg(test)]
mod tests {
    use super::{log_frame, transitions};
    use pmr_core::protocol::amp::{decode, Arg};
    use serde_json::json;

    #[test]
    fn log_messages_have_pm2s_payload() {
        let f = log_frame("log:out", Some((3, "ns".into())), "a\"b", 17, b"x\n\xff");
        let args = decode(&f).unwrap();
        assert_eq!(args[0], Arg::Str("log:out".into()));
        assert_eq!(
            args[1],
            Arg::Json(json!({
                "process": {"pm_id": 3, "name": "a\"b", "rev": null, "namespace": "ns"},
                "at": 17,
                "data": "x\n\u{fffd}",
            }))
        );
        let f = log_frame("log:PM2", None, "", 1, b"up");
        assert_eq!(
            decode(&f).unwrap()[1],
            Arg::Json(
                json!({"process": {"pm_id": "PM2", "name": "PM2", "rev": null}, "at": 1, "data": "up"})
            )
        );
    }

    #[test]
    fn state_changes_give_pm2_events() {
        let none: [&str; 0] = [];
        assert_eq!(transitions(None, ("launching", 0)), ["start"]);
        assert_eq!(
            transitions(Some(("launching", 0)), ("online", 7)),
            ["online"]
        );
        assert_eq!(transitions(None, ("online", 7)), ["start", "online"]);
        assert_eq!(transitions(Some(("online", 7)), ("stopping", 7)), none);
        assert_eq!(transitions(Some(("stopping", 7)), ("stopped", 0)), ["exit"]);
        assert_eq!(
            transitions(Some(("online", 7)), ("waiting restart", 0)),
            ["exit"]
        );
        assert_eq!(
            transitions(Some(("online", 7)), ("errored", 0)),
            ["restart overlimit", "exit"]
        );
        // A reload's new process; the same one again is nothing.
        assert_eq!(
            transitions(Some(("online", 7)), ("online", 8)),
            ["start", "online"]
        );
        assert_eq!(transitions(Some(("online", 7)), ("online", 7)), none);
        // Never ran: no exit.
        assert_eq!(transitions(Some(("stopped", 0)), ("stopped", 0)), none);
        assert_eq!(
            transitions(Some(("waiting restart", 0)), ("errored", 0)),
            none
        );
    }
}
