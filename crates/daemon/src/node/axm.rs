//! What an app says through `@pm2/io` (or the older `pmx`) on its IPC channel: `{type, data}`
//! messages, kept per process as PM2's daemon keeps them (`Daemon.js` `startLogic`,
//! `God/ActionMethods.js` `msgProcess`).
//!
//! - `axm:monitor`: merged into the metrics (`Object.assign`, so a metric stays until the
//!   process ends), shown as `pm2_env.axm_monitor`.
//! - `axm:action`: an action registered once by name, shown as `pm2_env.axm_actions`.
//! - `axm:option:configuration`: merged over `pm2_env.axm_options` (PM2 also renames the app
//!   when it carries a `name`; pmr does not: an app renaming itself would break selectors).
//! - `axm:reply`, `axm:scoped_action:*`: answers to [`Agent::trigger`].
//! - `process:exception`: logged (warn, shortened) and counted, the last one kept.
//! - `human:event` and any other type: counted and logged at debug level.
//!
//! Every message but the agent's own bookkeeping (`axm:action`, `axm:monitor`,
//! `axm:option:*`) is also given to the [`Relay`], which puts it on PM2's bus (`pm2/events.rs`).
//!
//! Everything is bounded: [`MAX_METRICS`], [`MAX_ACTIONS`], names and values cut to a size; a
//! refused metric or action is logged once per process.
//!
//! One [`Agent`] per started Node process; the instance's snapshot points at the current
//! one, so `jlist` (and every reader of it) shows the metrics without knowing about IPC.

use crate::node::channel::IpcHandle;
use pmr_core::protocol::AxmInfo;
use serde_json::{json, Map, Value};
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

/// Metrics kept per process; later new names are refused (updates of known ones go on).
pub const MAX_METRICS: usize = 100;
/// Actions kept per process.
pub const MAX_ACTIONS: usize = 100;
/// A metric or action name longer than this (bytes) is refused.
pub const MAX_NAME: usize = 256;
/// A string field longer than this (chars) is cut, with `…` at the end.
pub const MAX_STRING: usize = 1024;
/// A field that is an object or an array and takes more than this as JSON is dropped.
pub const MAX_NESTED: usize = 4096;
/// A metric or action taking more than this as JSON keeps only the fields PM2's tools read.
pub const MAX_ENTRY: usize = 2048;
/// Those fields (@pm2/io's and pmx's).
const KNOWN_FIELDS: &[&str] = &[
    "action_name",
    "action_type",
    "arity",
    "opts",
    "historic",
    "unit",
    "type",
    "value",
    "agg_type",
    "alert",
];
/// Triggers waiting for a reply from one process.
pub const MAX_WAITERS: usize = 64;
/// Chunks, and bytes of JSON, kept of one scoped action's stream (the rest is dropped).
pub const MAX_STREAM: usize = 256;
pub const MAX_STREAM_BYTES: usize = 64 * 1024;

/// How a trigger ended for one process: the reply's data, or why there is none.
pub type Outcome = Result<Value, String>;

pub struct Agent {
    /// `[name:id]`, for the log.
    label: String,
    ipc: OnceLock<IpcHandle>,
    st: Mutex<State>,
    relay: OnceLock<Relay>,
}

/// Where the app's messages go besides the agent: `(type, data)` of a `{type, data}` message.
pub type Relay = Box<dyn Fn(&str, &Value) + Send + Sync>;

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.label)
    }
}

#[derive(Default)]
struct State {
    monitor: Map<String, Value>,
    actions: Vec<Value>,
    options: Map<String, Value>,
    exceptions: u64,
    last_exception: Option<String>,
    /// `human:event` and messages of other types.
    events: u64,
    refused_logged: bool,
    waiters: Vec<Waiter>,
    next_uuid: u64,
}

struct Waiter {
    action: String,
    /// Set for scoped actions: their messages carry it back.
    uuid: Option<String>,
    stream: Vec<Value>,
    stream_bytes: usize,
    tx: oneshot::Sender<Outcome>,
}

/// Why a trigger could not be sent to a process.
#[derive(Debug, PartialEq)]
pub enum TriggerError {
    /// The process registered no action of that name; these are the ones it has.
    Unknown(Vec<String>),
    /// Too many triggers already wait for this process.
    Busy,
    NoChannel,
}

impl Agent {
    pub fn new(label: String) -> Agent {
        Agent {
            label,
            ipc: OnceLock::new(),
            st: Mutex::new(State::default()),
            relay: OnceLock::new(),
        }
    }

    /// The agent of a process handed over by `update`: what the old daemon had received.
    pub fn restore(label: String, info: AxmInfo) -> Agent {
        let agent = Agent::new(label);
        {
            let mut s = agent.st.lock().unwrap();
            s.monitor = info.monitor;
            s.actions = info.actions;
            s.options = info.options;
            s.exceptions = info.exceptions;
            s.last_exception = info.last_exception;
            s.events = info.events;
        }
        agent
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The channel actions are sent on (set once the channel runs).
    pub fn attach(&self, ipc: IpcHandle) {
        let _ = self.ipc.set(ipc);
    }

    pub fn relay_to(&self, relay: Relay) {
        let _ = self.relay.set(relay);
    }

    /// A message the app receives with `process.on('message')`; false without a channel.
    pub fn send(&self, msg: Value) -> bool {
        self.ipc.get().map(|i| i.send(msg)).is_some()
    }

    /// What `jlist` shows of the process.
    pub fn snapshot(&self) -> AxmInfo {
        let s = self.st.lock().unwrap();
        AxmInfo {
            monitor: s.monitor.clone(),
            actions: s.actions.clone(),
            options: s.options.clone(),
            exceptions: s.exceptions,
            last_exception: s.last_exception.clone(),
            events: s.events,
        }
    }

    /// A `{type, data}` message from the app (PM2's test: both present, `data` truthy).
    pub fn on_message(&self, ty: &str, data: Value) {
        if let Some(relay) = self.relay.get() {
            if !matches!(
                ty,
                "axm:action" | "axm:monitor" | "axm:option:setPID" | "axm:option:configuration"
            ) {
                relay(ty, &data);
            }
        }
        match ty {
            "axm:monitor" => self.on_monitor(data),
            "axm:action" => self.on_action(data),
            "axm:option:configuration" => self.on_configuration(data),
            "axm:reply" => self.on_reply(data),
            "axm:scoped_action:stream" => self.on_scoped(data, Scoped::Stream),
            "axm:scoped_action:error" => self.on_scoped(data, Scoped::Error),
            "axm:scoped_action:end" => self.on_scoped(data, Scoped::End),
            "process:exception" => self.on_exception(data),
            // PM2 ignores this one too (the agent's own pid report).
            "axm:option:setPID" => {}
            other => {
                self.st.lock().unwrap().events += 1;
                tracing::debug!("App {} event {}", self.label, cut(other, 64));
            }
        }
    }

    fn refused(&self, s: &mut State, what: String) {
        if !std::mem::replace(&mut s.refused_logged, true) {
            tracing::warn!(
                "App {}: {what}: refused (further refusals for this process are silent)",
                self.label
            );
        }
    }

    fn on_monitor(&self, data: Value) {
        let Value::Object(m) = data else { return };
        let mut s = self.st.lock().unwrap();
        for (name, v) in m {
            if name.len() > MAX_NAME {
                self.refused(&mut s, format!("a metric name of {} bytes", name.len()));
                continue;
            }
            if !s.monitor.contains_key(&name) && s.monitor.len() >= MAX_METRICS {
                self.refused(&mut s, format!("more than {MAX_METRICS} metrics"));
                continue;
            }
            s.monitor.insert(name, bounded(v));
        }
    }

    fn on_action(&self, data: Value) {
        let Some(name) = data.get("action_name").and_then(Value::as_str) else {
            return;
        };
        let mut s = self.st.lock().unwrap();
        if name.len() > MAX_NAME {
            self.refused(&mut s, format!("an action name of {} bytes", name.len()));
            return;
        }
        if s.actions.iter().any(|a| a["action_name"] == name) {
            return;
        }
        if s.actions.len() >= MAX_ACTIONS {
            self.refused(&mut s, format!("more than {MAX_ACTIONS} actions"));
            return;
        }
        s.actions.push(bounded(data));
    }

    fn on_configuration(&self, data: Value) {
        let Value::Object(m) = data else { return };
        let mut s = self.st.lock().unwrap();
        for (k, v) in m {
            if k.len() <= MAX_NAME && (s.options.contains_key(&k) || s.options.len() < MAX_METRICS)
            {
                s.options.insert(k, bounded_field(v));
            }
        }
    }

    fn on_exception(&self, data: Value) {
        let msg = data
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| data.to_string());
        let msg = cut(&msg, MAX_STRING);
        tracing::warn!(
            "App {} reported an exception: {}",
            self.label,
            cut(&msg, 300)
        );
        let mut s = self.st.lock().unwrap();
        s.exceptions += 1;
        s.last_exception = Some(msg);
    }

    /// `axm:reply` answers the oldest trigger of that action (replies carry no id).
    fn on_reply(&self, data: Value) {
        let name = data["action_name"].as_str().unwrap_or("");
        let mut s = self.st.lock().unwrap();
        if let Some(i) = s
            .waiters
            .iter()
            .position(|w| w.action == name && w.uuid.is_none())
        {
            let w = s.waiters.remove(i);
            // Passed on whole: it is under the channel's 1 MiB and is not kept.
            let ret = data.get("return").cloned().unwrap_or(Value::Null);
            let _ = w.tx.send(Ok(ret));
        }
    }

    fn on_scoped(&self, data: Value, kind: Scoped) {
        let Some(uuid) = data["uuid"].as_str() else {
            return;
        };
        let mut s = self.st.lock().unwrap();
        let Some(i) = s
            .waiters
            .iter()
            .position(|w| w.uuid.as_deref() == Some(uuid))
        else {
            return;
        };
        let chunk = data.get("data").cloned().unwrap_or(Value::Null);
        match kind {
            Scoped::Stream => {
                let w = &mut s.waiters[i];
                let len = json_len(&chunk);
                if w.stream.len() < MAX_STREAM && w.stream_bytes + len <= MAX_STREAM_BYTES {
                    w.stream_bytes += len;
                    w.stream.push(chunk);
                }
            }
            Scoped::End => {
                let w = s.waiters.remove(i);
                let _ = w.tx.send(Ok(json!({"stream": w.stream, "end": chunk})));
            }
            Scoped::Error => {
                let w = s.waiters.remove(i);
                let text = match chunk {
                    Value::String(t) => t,
                    other => other.to_string(),
                };
                let _ = w.tx.send(Err(text));
            }
        }
    }

    /// Send `action` (with `param`) to the process, as PM2's `msgProcess`: the bare name
    /// without a parameter, `{msg, opts}` with one; a scoped action also gets a `uuid`. The
    /// receiver gets the reply; dropping it forgets the trigger.
    pub fn trigger(
        &self,
        action: &str,
        param: Option<Value>,
    ) -> Result<oneshot::Receiver<Outcome>, TriggerError> {
        let ipc = self.ipc.get().ok_or(TriggerError::NoChannel)?;
        let mut s = self.st.lock().unwrap();
        let Some(a) = s.actions.iter().find(|a| a["action_name"] == action) else {
            let known = s
                .actions
                .iter()
                .filter_map(|a| a["action_name"].as_str().map(str::to_string))
                .collect();
            return Err(TriggerError::Unknown(known));
        };
        let scoped = a["action_type"] == "scoped";
        // Triggers whose caller gave up (timed out) are dropped first.
        s.waiters.retain(|w| !w.tx.is_closed());
        if s.waiters.len() >= MAX_WAITERS {
            return Err(TriggerError::Busy);
        }
        let uuid = scoped.then(|| {
            s.next_uuid += 1;
            format!("pmr-{}-{}", std::process::id(), s.next_uuid)
        });
        let msg = match (&uuid, param) {
            (None, None) => json!(action),
            (None, Some(p)) => json!({"msg": action, "opts": p}),
            (Some(u), p) => json!({"msg": action, "uuid": u, "opts": p.unwrap_or(json!({}))}),
        };
        let (tx, rx) = oneshot::channel();
        s.waiters.push(Waiter {
            action: action.to_string(),
            uuid,
            stream: Vec::new(),
            stream_bytes: 0,
            tx,
        });
        ipc.send(msg);
        Ok(rx)
    }
}

enum Scoped {
    Stream,
    Error,
    End,
}

/// `s` cut to `max` chars, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// A metric or action as sent, each field bounded, and the whole too (see [`MAX_ENTRY`]).
fn bounded(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut m: Map<String, Value> = m
                .into_iter()
                .filter(|(k, _)| k.len() <= MAX_NAME)
                .map(|(k, v)| (k, bounded_field(v)))
                .collect();
            if json_len(&Value::Object(m.clone())) > MAX_ENTRY {
                m.retain(|k, _| KNOWN_FIELDS.contains(&k.as_str()));
            }
            Value::Object(m)
        }
        other => bounded_field(other),
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Strings cut to [`MAX_STRING`] chars; objects and arrays over [`MAX_NESTED`] bytes of JSON
/// become `null`.
fn bounded_field(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > MAX_STRING => Value::String(cut(&s, MAX_STRING)),
        Value::Object(_) | Value::Array(_) => {
            if json_len(&v) > MAX_NESTED {
                Value::Null
            } else {
                v
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent::new("[t:0]".into())
    }

    #[test]
    fn metrics_merge_as_object_assign_in_first_seen_order() {
        let a = agent();
        a.on_message(
            "axm:monitor",
            json!({"b": {"historic": true, "unit": "users", "value": 1}, "a": {"value": "x"}}),
        );
        a.on_message(
            "axm:monitor",
            json!({"a": {"value": "y"}, "c": {"value": 3}}),
        );
        let m = a.snapshot().monitor;
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(
            m["b"],
            json!({"historic": true, "unit": "users", "value": 1})
        );
        assert_eq!(m["a"]["value"], "y");
    }

    #[test]
    fn actions_register_once_by_name() {
        let a = agent();
        let act = json!({"action_name": "hello", "action_type": "custom", "arity": 1});
        a.on_message("axm:action", act.clone());
        a.on_message("axm:action", json!({"action_name": "hello", "arity": 2}));
        a.on_message("axm:action", json!({"no_name": 1}));
        assert_eq!(a.snapshot().actions, vec![act]);
    }

    #[test]
    fn sizes_and_counts_are_bounded() {
        let a = agent();
        let long = "x".repeat(5000);
        a.on_message(
            "axm:monitor",
            json!({ long.clone(): {"value": 1}, "big": {"value": long.clone(), "historic": [long.clone(), long.clone()]} }),
        );
        let m = a.snapshot().monitor;
        assert_eq!(m.len(), 1);
        let v = m["big"]["value"].as_str().unwrap();
        assert_eq!(v.chars().count(), MAX_STRING + 1);
        assert!(v.ends_with('…'));
        assert_eq!(m["big"]["historic"], Value::Null);

        // Many small fields: only the known ones stay.
        let mut wide = Map::new();
        wide.insert("value".into(), json!(1));
        for i in 0..500 {
            wide.insert(format!("f{i}"), json!("x".repeat(100)));
        }
        a.on_message("axm:monitor", json!({ "wide": wide }));
        assert_eq!(a.snapshot().monitor["wide"], json!({"value": 1}));

        for i in 0..MAX_METRICS + 10 {
            a.on_message("axm:monitor", json!({ format!("m{i}"): {"value": i} }));
        }
        assert_eq!(a.snapshot().monitor.len(), MAX_METRICS);
        // Known ones still update once the store is full.
        a.on_message("axm:monitor", json!({"m0": {"value": "new"}}));
        assert_eq!(a.snapshot().monitor["m0"]["value"], "new");

        for i in 0..MAX_ACTIONS + 10 {
            a.on_message("axm:action", json!({"action_name": format!("a{i}")}));
        }
        assert_eq!(a.snapshot().actions.len(), MAX_ACTIONS);
        assert_eq!(cut("héllo", 2), "hé…");
    }

    #[test]
    fn exceptions_and_other_events_are_counted() {
        let a = agent();
        a.on_message(
            "process:exception",
            json!({"message": "boom", "stack": "..."}),
        );
        a.on_message("process:exception", json!({"code": 1}));
        a.on_message("human:event", json!({"__name": "x"}));
        a.on_message("custom:thing", json!(1));
        let s = a.snapshot();
        assert_eq!(s.exceptions, 2);
        assert_eq!(s.last_exception.as_deref(), Some(r#"{"code":1}"#));
        assert_eq!(s.events, 2);
    }

    #[test]
    fn configuration_merges_into_options() {
        let a = agent();
        a.on_message(
            "axm:option:configuration",
            json!({"error": false, "name": "x"}),
        );
        assert_eq!(
            a.snapshot().options,
            json!({"error": false, "name": "x"})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[tokio::test]
    async fn replies_answer_triggers() {
        let (handle, mut sent) = IpcHandle::detached();
        let a = agent();
        a.attach(handle);
        assert_eq!(
            a.trigger("echo", None).err(),
            Some(TriggerError::Unknown(vec![]))
        );
        a.on_message(
            "axm:action",
            json!({"action_name": "echo", "action_type": "custom"}),
        );
        a.on_message(
            "axm:action",
            json!({"action_name": "s", "action_type": "scoped"}),
        );
        assert_eq!(
            a.trigger("nope", None).err(),
            Some(TriggerError::Unknown(vec!["echo".into(), "s".into()]))
        );

        let rx = a.trigger("echo", Some(json!("p"))).unwrap();
        assert_eq!(
            sent.recv().await.unwrap(),
            json!({"msg": "echo", "opts": "p"})
        );
        a.on_message("axm:reply", json!({"action_name": "other", "return": 0}));
        // A big reply is passed on whole (it is not kept).
        let big = json!({"got": "p".repeat(100_000)});
        a.on_message(
            "axm:reply",
            json!({"action_name": "echo", "return": big.clone()}),
        );
        assert_eq!(rx.await.unwrap(), Ok(big));

        let rx = a.trigger("echo", None).unwrap();
        assert_eq!(sent.recv().await.unwrap(), json!("echo"));
        drop(rx);

        let rx = a.trigger("s", None).unwrap();
        let m = sent.recv().await.unwrap();
        let uuid = m["uuid"].as_str().unwrap().to_string();
        a.on_message("axm:scoped_action:stream", json!({"uuid": uuid, "data": 1}));
        a.on_message(
            "axm:scoped_action:stream",
            json!({"uuid": "other", "data": 9}),
        );
        a.on_message(
            "axm:scoped_action:end",
            json!({"uuid": uuid, "data": "done"}),
        );
        assert_eq!(rx.await.unwrap(), Ok(json!({"stream": [1], "end": "done"})));

        let rx = a.trigger("s", None).unwrap();
        let uuid = sent.recv().await.unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        a.on_message(
            "axm:scoped_action:error",
            json!({"uuid": uuid, "data": "bad"}),
        );
        assert_eq!(rx.await.unwrap(), Err("bad".into()));

        let mut held = Vec::new();
        for _ in 0..MAX_WAITERS {
            held.push(a.trigger("echo", None).unwrap());
        }
        assert_eq!(a.trigger("echo", None).err(), Some(TriggerError::Busy));
        held.clear();
        assert!(a.trigger("echo", None).is_ok());
    }
}
