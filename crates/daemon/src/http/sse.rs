//! `GET /api/events`: Server-Sent Events. `state` on every status change (`instances/events.rs`),
//! `monit` every 2 s (CPU and memory of every process, as jlist), `log` for the lines of the
//! apps matching `?logs=<selector>` (the hub `pmr logs` subscribes to), a comment every 15 s.
//!
//! Each stream has one task and a channel of [`QUEUE`] chunks to its connection: a client that
//! reads too slowly (the channel full, or more than `events::BUFFER` state events behind) is
//! disconnected rather than buffered without bound; the page reconnects and reloads the list.

use crate::http::body::Out;
use crate::http::error::ApiError;
use crate::http::logs::query_param;
use crate::http::Api;
use crate::instances::events;
use crate::logs::hub::{Filter, Queued, SUB_QUEUE};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const QUEUE: usize = 64;
const MONIT_EVERY: Duration = Duration::from_secs(2);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

pub async fn open(api: Arc<Api>, query: &str) -> Result<Response<Out>, ApiError> {
    let logs = match query_param(query, "logs") {
        None | Some("") => None,
        Some(sel) => Some(crate::http::ask::decode(sel)?),
    };
    let filter = match logs.as_deref() {
        None => None,
        // Also the apps started later.
        Some("all") => Some(Filter {
            ids: None,
            out: true,
            err: true,
            daemon: false,
        }),
        Some(sel) => Some(Filter {
            ids: Some(crate::http::ask::resolve(&api.d, sel).await?),
            out: true,
            err: true,
            daemon: false,
        }),
    };
    let log_rx =
        match filter {
            None => None,
            Some(f) => Some(api.d.ctx.sinks.hub.subscribe(f, SUB_QUEUE).ok_or_else(|| {
                ApiError::new(503, "too many live log readers at once; retry later")
            })?),
        };
    let states = api.d.ctx.events.subscribe();
    let (tx, rx) = mpsc::channel(QUEUE);
    // Sent at once: the client knows the stream is open before the first event.
    let _ = tx.try_send(Bytes::from_static(b": pmr events\n\n"));
    tokio::spawn(pump(api, states, log_rx, tx));
    let mut r = Response::new(Out::Stream(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

async fn next_log(rx: &mut Option<mpsc::Receiver<Queued>>) -> Option<Queued> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn pump(
    api: Arc<Api>,
    mut states: broadcast::Receiver<events::StateEvent>,
    mut log_rx: Option<mpsc::Receiver<Queued>>,
    tx: mpsc::Sender<Bytes>,
) {
    let start = tokio::time::Instant::now();
    let mut monit = tokio::time::interval_at(start + MONIT_EVERY, MONIT_EVERY);
    let mut keepalive = tokio::time::interval_at(start + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
    monit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |b: Bytes| tx.try_send(b).is_ok();
    loop {
        let ok = tokio::select! {
            _ = tx.closed() => return,
            ev = states.recv() => match ev {
                Ok(e) => send(event("state", &json!(e))),
                // Lagged: too slow; closed: the daemon is going.
                Err(_) => return,
            },
            block = next_log(&mut log_rx) => match block {
                Some((skipped, b)) => {
                    let mut ok = true;
                    if skipped > 0 {
                        ok = send(event("skipped", &json!({ "lines": skipped })));
                    }
                    let text = String::from_utf8_lossy(&b.lines);
                    for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
                        if !ok {
                            break;
                        }
                        ok = send(event("log", &json!({
                            "pm_id": b.id,
                            "name": &*b.name,
                            "stream": b.stream.as_str(),
                            "text": line,
                            "at": b.time,
                        })));
                    }
                    ok
                }
                None => return,
            },
            _ = monit.tick() => match crate::http::ask::list(&api.d).await {
                Ok(procs) => {
                    let m: Vec<serde_json::Value> = procs
                        .iter()
                        .map(|p| json!({"pm_id": p.pm_id, "cpu": p.monit.cpu, "memory": p.monit.memory}))
                        .collect();
                    send(event("monit", &json!(m)))
                }
                Err(_) => true,
            },
            _ = keepalive.tick() => send(Bytes::from_static(b": keep-alive\n\n")),
        };
        if !ok {
            tracing::info!("HTTP API: an event stream's reader is too slow; disconnected");
            return;
        }
    }
}
