//! One axon `req` client on `rpc.sock`: each message `[j:{type:'call', method, args}, id]` is
//! answered `[j:{args:[…]} | j:{error, stack}, id]` (pm2-axon-rpc's server), in order.
//!
//! A message that cannot be read (another AMP version, no arguments, a length over the limit,
//! a `j:` argument that is not JSON, no id) closes the connection: PM2 would throw there. The
//! next client is served as before.

use super::methods;
use crate::daemon::Daemon;
use pmr_core::protocol::amp::{self, Arg};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Concurrent PM2 clients at most; one more is closed at once (a client that connects in a
/// loop without closing cannot take the daemon's descriptors).
pub const MAX_CLIENTS: usize = 256;

pub async fn serve(d: Arc<Daemon>, mut stream: UnixStream) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let n = match amp::frame_len(&buf) {
            Err(e) => {
                tracing::warn!("PM2 protocol: {e}; closing that client's connection");
                return;
            }
            Ok(Some(n)) => n,
            Ok(None) => match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => {
                    buf.extend_from_slice(&chunk[..k]);
                    continue;
                }
            },
        };
        let frame: Vec<u8> = buf.drain(..n).collect();
        let mut args = match amp::decode(&frame) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("PM2 protocol: {e}; closing that client's connection");
                return;
            }
        };
        if args.len() < 2 {
            tracing::warn!("PM2 protocol: a message without an id; closing that connection");
            return;
        }
        let id = args.pop().expect("two arguments");
        let msg = match args.swap_remove(0) {
            Arg::Json(v) => v,
            Arg::Str(s) => Value::String(s),
            Arg::Raw(_) => Value::Null,
        };
        let reply = match answer(&d, msg).await {
            Answer::Reply(r) => r,
            // PM2 never answers it.
            Answer::None => continue,
            Answer::KillMe(pid) => return methods::kill_me(&d, pid, &mut stream).await,
        };
        let id = match &id {
            Arg::Str(s) => amp::str_arg(s),
            Arg::Json(v) => amp::json_arg(v),
            Arg::Raw(b) => b.clone(),
        };
        let out = amp::encode_raw(&[&reply, &id]);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

enum Answer {
    /// The reply's first argument (`j:…`).
    Reply(Vec<u8>),
    None,
    KillMe(Option<u32>),
}

async fn answer(d: &Arc<Daemon>, mut msg: Value) -> Answer {
    if msg["type"] == "methods" {
        return Answer::Reply(amp::json_arg(
            &json!({ "methods": methods::descriptions() }),
        ));
    }
    let Some(method) = msg["method"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
    else {
        return Answer::Reply(error(".method required"));
    };
    let Value::Array(args) = msg["args"].take() else {
        return Answer::Reply(error(".args required"));
    };
    match methods::call(d, &method, args).await {
        methods::Reply::Args(a) => Answer::Reply(amp::json_arg(&json!({ "args": a }))),
        methods::Reply::Raw(bytes) => Answer::Reply(bytes),
        methods::Reply::Error(e) => Answer::Reply(error(&e)),
        methods::Reply::None => Answer::None,
        methods::Reply::KillMe(pid) => Answer::KillMe(pid),
    }
}

/// PM2's error reply (an `Error`'s message and stack).
pub fn error(message: &str) -> Vec<u8> {
    amp::json_arg(&json!({ "error": message, "stack": format!("Error: {message}") }))
}
