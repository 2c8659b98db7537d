//! One axon `req` client on `rpc.sock`: each message `[j:{type:'call', method, args}, id]` is
//! answered `[j:{args:[…]} | j:{error, stack}, id]` (pm2-axon-rpc's server). Calls run side
//! by side, as in PM2 (its client restarts several apps at once on one connection), at most
//! [`IN_FLIGHT`] at a time; the client matches the answers by id.
//!
//! A message that cannot be read (another AMP version, no arguments, a length over
//! [`MAX_MESSAGE`], a `j:` argument that is not JSON, no id) closes the connection: PM2 would
//! throw there. The next client is served as before.

use super::methods;
use crate::daemon::Daemon;
use pmr_core::protocol::amp::{self, Arg};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Semaphore};

/// Concurrent PM2 clients at most; one more is closed at once (a client that connects in a
/// loop without closing cannot take the daemon's descriptors).
pub const MAX_CLIENTS: usize = 256;
/// Calls of one client running at once; the next waits (its bytes wait in the socket).
const IN_FLIGHT: usize = 16;
/// The longest message taken from a client: a `prepare` with a large environment is tens of KB.
const MAX_MESSAGE: usize = 1 << 20;

pub async fn serve(d: Arc<Daemon>, stream: UnixStream) {
    let (mut r, mut w) = stream.into_split();
    let (tx, mut replies) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(out) = replies.recv().await {
            if w.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let n = match amp::frame_len_within(&buf, MAX_MESSAGE) {
            Err(e) => {
                tracing::warn!("PM2 protocol: {e}; closing that client's connection");
                break;
            }
            Ok(Some(n)) => n,
            Ok(None) => match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    buf.extend_from_slice(&chunk[..k]);
                    continue;
                }
            },
        };
        let frame: Vec<u8> = buf.drain(..n).collect();
        if buf.capacity() > 64 << 10 && buf.len() < 64 << 10 {
            buf.shrink_to(64 << 10);
        }
        let Some((msg, id)) = call_of(&frame) else {
            break;
        };
        if msg["method"] == "killMe" {
            // Not answered (PM2's client waits for our SIGQUIT): the daemon leaves after it.
            let pid = msg["args"][0]["pid"].as_u64().map(|p| p as u32);
            drop(tx);
            let _ = writer.await;
            return methods::kill_me(&d, pid, &mut r).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (d, tx) = (d.clone(), tx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(reply) = answer(&d, msg).await {
                let _ = tx.send(amp::encode_raw(&[&reply, &id])).await;
            }
        });
    }
    // The writer ends once the calls still running have answered.
}

/// A call's message and its id (as it goes back), or `None` (logged) for one that cannot be read.
fn call_of(frame: &[u8]) -> Option<(Value, Vec<u8>)> {
    let mut args = match amp::decode(frame) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("PM2 protocol: {e}; closing that client's connection");
            return None;
        }
    };
    if args.len() < 2 {
        tracing::warn!("PM2 protocol: a message without an id; closing that connection");
        return None;
    }
    let id = match args.pop().expect("two arguments") {
        Arg::Str(s) => amp::str_arg(&s),
        Arg::Json(v) => amp::json_arg(&v),
        Arg::Raw(b) => b,
    };
    let msg = match args.swap_remove(0) {
        Arg::Json(v) => v,
        Arg::Str(s) => Value::String(s),
        Arg::Raw(_) => Value::Null,
    };
    Some((msg, id))
}

/// The reply's first argument (`j:…`), or `None` for what PM2 leaves unanswered.
async fn answer(d: &Arc<Daemon>, mut msg: Value) -> Option<Vec<u8>> {
    if msg["type"] == "methods" {
        return Some(amp::json_arg(
            &json!({ "methods": methods::descriptions() }),
        ));
    }
    let Some(method) = msg["method"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
    else {
        return Some(error(".method required"));
    };
    let Value::Array(args) = msg["args"].take() else {
        return Some(error(".args required"));
    };
    match methods::call(d, &method, args).await {
        methods::Reply::Args(a) => Some(amp::json_arg(&json!({ "args": a }))),
        methods::Reply::Raw(bytes) => Some(bytes),
        methods::Reply::Error(e) => Some(error(&e)),
        methods::Reply::None => None,
    }
}

/// PM2's error reply (an `Error`'s message and stack).
pub fn error(message: &str) -> Vec<u8> {
    amp::json_arg(&json!({ "error": message, "stack": format!("Error: {message}") }))
}
