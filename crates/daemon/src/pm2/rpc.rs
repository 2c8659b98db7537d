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
    let (tx, mut replies) = mpsc::channel::<Vec<Vec<u8>>>(IN_FLIGHT);
    // The write half comes back when the replies end: dropping it would shut the client's
    // side down (a half-close PM2's client takes for the daemon's end, and reconnects).
    let writer = tokio::spawn(async move {
        while let Some(out) = replies.recv().await {
            for part in out {
                let ok = w.write_all(&part).await.is_ok();
                // The rendered list's buffers go back for the next render.
                pmr_render::bufs::give(part);
                if !ok {
                    return w;
                }
            }
        }
        w
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
            // Held open until the client closes it (see `kill_me`).
            let _w = writer.await;
            return methods::kill_me(&d, pid, &mut r).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (d, tx) = (d.clone(), tx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(reply) = answer(&d, msg).await {
                let _ = tx.send(message(reply, id)).await;
            }
            // As for pmr's own requests: their code leaves the resident set once calls stop.
            crate::text::note_request();
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

/// The AMP message `[reply, id]`, in pieces to write one after the other.
fn message(reply: Vec<Vec<u8>>, id: Vec<u8>) -> Vec<Vec<u8>> {
    let len: usize = reply.iter().map(Vec::len).sum();
    let mut head = vec![amp::VERSION << 4 | 2];
    head.extend_from_slice(&(len as u32).to_be_bytes());
    let mut tail = (id.len() as u32).to_be_bytes().to_vec();
    tail.extend_from_slice(&id);
    let mut out = Vec::with_capacity(reply.len() + 2);
    out.push(head);
    out.extend(reply);
    out.push(tail);
    out
}

/// The reply's first argument (`j:…`, in pieces), or `None` for what PM2 leaves unanswered.
async fn answer(d: &Arc<Daemon>, mut msg: Value) -> Option<Vec<Vec<u8>>> {
    if msg["type"] == "methods" {
        let all = json!({ "methods": methods::descriptions() });
        return Some(vec![amp::json_arg(&all)]);
    }
    let Some(method) = msg["method"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
    else {
        return Some(vec![error(".method required")]);
    };
    let Value::Array(args) = msg["args"].take() else {
        return Some(vec![error(".args required")]);
    };
    match methods::call(d, &method, args).await {
        methods::Reply::Args(a) => Some(vec![amp::json_arg(&json!({ "args": a }))]),
        methods::Reply::Parts(parts) => Some(parts),
        methods::Reply::Error(e) => Some(vec![error(&e)]),
        methods::Reply::None => None,
    }
}

/// PM2's error reply (an `Error`'s message and stack).
pub fn error(message: &str) -> Vec<u8> {
    amp::json_arg(&json!({ "error": message, "stack": format!("Error: {message}") }))
}

#[cfg(test)]
mod tests {
    use super::message;
    use pmr_core::protocol::amp::{decode, encode_raw, Arg};

    #[test]
    fn a_reply_in_pieces_is_one_amp_message() {
        let pieces = vec![b"j:{\"args\":[".to_vec(), b"1,2".to_vec(), b"]}".to_vec()];
        let out: Vec<u8> = message(pieces, b"s:c:1".to_vec()).concat();
        assert_eq!(out, encode_raw(&[b"j:{\"args\":[1,2]}", b"s:c:1"]));
        assert_eq!(decode(&out).unwrap()[1], Arg::Str("c:1".into()));
    }
}
