//! The instance's side of a Node IPC channel (`ipc.rs` runs the channel itself): what it sends
//! to the app (messages, cluster `disconnect`, `update`'s freeze). Apart from the channel, so
//! that the app's @pm2/io agent (`axm.rs`), which the channel feeds, can send on it too.

use serde_json::Value;
use tokio::sync::mpsc;

pub(super) enum Out {
    User(Value),
    Disconnect,
    /// `update`: stop here, keeping the worker's membership, and hand back what was read.
    Freeze(tokio::sync::oneshot::Sender<Frozen>),
}

/// A channel as `update` carries it across the exec: the socket's fd goes separately; this is
/// what was read of a message not yet complete, and the next sequence number.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Frozen {
    pub partial: Vec<u8>,
    pub seq: u64,
}

/// The instance's handle on the channel.
#[derive(Clone)]
pub struct IpcHandle(pub(super) mpsc::UnboundedSender<Out>);

impl IpcHandle {
    /// A handle whose messages come out of the receiver, for tests.
    #[cfg(test)]
    pub fn detached() -> (IpcHandle, mpsc::UnboundedReceiver<Value>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (vtx, vrx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(o) = rx.recv().await {
                if let Out::User(v) = o {
                    let _ = vtx.send(v);
                }
            }
        });
        (IpcHandle(tx), vrx)
    }
    /// A message the app receives with `process.on('message')` (e.g. `'shutdown'`).
    pub fn send(&self, msg: Value) {
        let _ = self.0.send(Out::User(msg));
    }
    /// Cluster `disconnect`: the worker closes its servers and leaves once they drain.
    pub fn disconnect(&self) {
        let _ = self.0.send(Out::Disconnect);
    }
    /// See [`Out::Freeze`]; `None` if the channel had already ended.
    pub async fn freeze(&self) -> Option<Frozen> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.send(Out::Freeze(tx)).ok()?;
        rx.await.ok()
    }
}
