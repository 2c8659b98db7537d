//! PM2's event bus: `pub.sock`, where PM2's clients (`launchBus`, modules, notifiers) connect
//! an axon `sub-emitter` and receive every message as `[s:topic, j:data]`.
//!
//! Publishing never waits and never grows the daemon: a message is encoded once and offered to
//! each subscriber, whose queue holds at most [`QUEUE_BYTES`]; a message that does not fit is
//! lost for that subscriber alone (PM2 queues without bound: 1 GB for a stalled reader, #2188).
//! A subscriber that leaves mid-write is simply forgotten (#4627). At most [`MAX_SUBSCRIBERS`];
//! one more is accepted and closed at once, so a client connecting in a loop costs no memory
//! and holds no descriptor (#2013, #2319).

use pmr_core::protocol::amp;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

pub const QUEUE_BYTES: usize = 1 << 20;
pub const MAX_SUBSCRIBERS: usize = 64;
/// Queued messages written together, up to this many bytes.
const BATCH: usize = 64 << 10;

struct Sub {
    tx: mpsc::UnboundedSender<Arc<[u8]>>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    lost: AtomicU64,
}

/// A subscriber's end: its messages, and the bytes of them not yet written.
type Subscription = (mpsc::UnboundedReceiver<Arc<[u8]>>, Arc<AtomicUsize>);

/// Who sent a message, as the bus names it.
#[derive(Debug, Clone)]
pub struct AppId {
    pub pm_id: u32,
    pub name: String,
    pub namespace: String,
}

#[derive(Default)]
pub struct Bus {
    count: AtomicUsize,
    subs: Mutex<Vec<Sub>>,
    /// Told of each new subscriber (the log feed waits for the first).
    pub joined: tokio::sync::Notify,
}

impl Bus {
    /// Whether anyone listens: publishers skip building the message otherwise.
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    pub fn publish(&self, topic: &str, data: &Value) {
        if !self.active() {
            return;
        }
        let frame = amp::encode_raw(&[&amp::str_arg(topic), &amp::json_arg(data)]);
        self.offer(frame.into());
    }

    /// A message from an app (`process.send`), as PM2's `ForkMode.js` puts it on the bus:
    /// `{type, data}` under its type, anything else as `process:msg` with the message as `raw`.
    pub fn from_app(&self, app: &AppId, ty: Option<&str>, msg: &Value) {
        if !self.active() {
            return;
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        match ty {
            Some(ty) => self.publish(
                ty,
                &serde_json::json!({
                    "at": at,
                    "data": msg,
                    "process": {
                        "pm_id": app.pm_id,
                        "name": app.name,
                        "versioning": null,
                        "namespace": app.namespace,
                    },
                }),
            ),
            None => self.publish(
                "process:msg",
                &serde_json::json!({
                    "at": at,
                    "raw": msg,
                    "process": {
                        "pm_id": app.pm_id,
                        "name": app.name,
                        "namespace": app.namespace,
                    },
                }),
            ),
        }
    }

    /// A message already encoded (a log block's JSON written without a `Value`).
    pub fn offer(&self, frame: Arc<[u8]>) {
        let mut subs = self.subs.lock().unwrap();
        let mut closed = false;
        for s in subs.iter() {
            if s.queued.load(Ordering::Relaxed) + frame.len() > QUEUE_BYTES {
                s.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            s.queued.fetch_add(frame.len(), Ordering::Relaxed);
            if s.tx.send(frame.clone()).is_err() {
                closed = true;
            }
        }
        if closed {
            subs.retain(|s| !s.tx.is_closed());
            self.count.store(subs.len(), Ordering::Relaxed);
        }
    }

    /// Accept subscribers of our uid on `listener` for ever.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        let my_uid = nix::unistd::getuid().as_raw();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("pub.sock: accept failed: {e}");
                    // EMFILE and the like: give the descriptors a moment to come back.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !stream.peer_cred().is_ok_and(|c| c.uid() == my_uid) {
                tracing::warn!("pub.sock: refused a client of another user");
                continue;
            }
            if let Some(rx) = self.add() {
                tokio::spawn(feed(stream, rx));
            }
        }
    }

    fn add(&self) -> Option<Subscription> {
        let mut subs = self.subs.lock().unwrap();
        subs.retain(|s| !s.tx.is_closed());
        if subs.len() >= MAX_SUBSCRIBERS {
            self.count.store(subs.len(), Ordering::Relaxed);
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        subs.push(Sub {
            tx,
            queued: queued.clone(),
            lost: AtomicU64::new(0),
        });
        self.count.store(subs.len(), Ordering::Relaxed);
        self.joined.notify_one();
        Some((rx, queued))
    }
}

/// Write the subscriber's messages until it leaves; whatever it sends is read and dropped (an
/// axon subscriber sends nothing).
async fn feed(stream: UnixStream, (mut rx, queued): Subscription) {
    let (mut r, mut w) = stream.into_split();
    let mut sink = [0u8; 512];
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(frame) = m else { return };
                // What else is queued goes in the same write (a burst of log blocks).
                batch.extend_from_slice(&frame);
                while batch.len() < BATCH {
                    let Ok(more) = rx.try_recv() else { break };
                    batch.extend_from_slice(&more);
                }
                let ok = w.write_all(&batch).await.is_ok();
                queued.fetch_sub(batch.len(), Ordering::Relaxed);
                batch.clear();
                batch.shrink_to(BATCH);
                if !ok {
                    return;
                }
            }
            n = r.read(&mut sink) => {
                if !matches!(n, Ok(n) if n > 0) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_slow_subscriber_loses_messages_instead_of_growing_the_daemon() {
        let bus = Bus::default();
        assert!(!bus.active());
        let (mut rx, queued) = bus.add().unwrap();
        assert!(bus.active());
        let big = "x".repeat(100_000);
        for _ in 0..20 {
            bus.publish("log:out", &json!({ "data": big }));
        }
        assert!(queued.load(Ordering::Relaxed) <= QUEUE_BYTES);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 10);
        assert_eq!(bus.subs.lock().unwrap()[0].lost.load(Ordering::Relaxed), 10);
        drop(rx);
        bus.publish("x", &json!(1));
        assert!(!bus.active());
    }

    #[test]
    fn subscribers_are_bounded() {
        let bus = Bus::default();
        let held: Vec<_> = (0..MAX_SUBSCRIBERS).map(|_| bus.add().unwrap()).collect();
        assert!(bus.add().is_none());
        drop(held);
        assert!(bus.add().is_some());
    }
}
