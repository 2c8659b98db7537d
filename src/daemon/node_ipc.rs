//! Node's IPC channel (fork mode): newline-delimited JSON over a Unix socketpair
//! (`../shared/node-cluster-protocol.md` §2). Lets apps call `process.send('ready')` and receive
//! `'shutdown'`.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// A message longer than this is garbage; it is dropped so the daemon's memory stays bounded.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug)]
pub enum IpcEvent {
    /// `process.send('ready')`.
    Ready,
    Message(Value),
    Garbage(String),
}

pub struct IpcWriter(OwnedWriteHalf);

impl IpcWriter {
    pub async fn send(&mut self, msg: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        self.0.write_all(&line).await
    }
}

/// Take over our end of the socketpair: a task reads it and reports events until EOF.
pub fn start(
    stream: std::os::unix::net::UnixStream,
) -> std::io::Result<(IpcWriter, mpsc::Receiver<IpcEvent>)> {
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut skipping = false;
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                if b != b'\n' {
                    if !skipping {
                        pending.push(b);
                        if pending.len() > MAX_MESSAGE {
                            pending = Vec::new();
                            skipping = true;
                            let _ = tx.send(IpcEvent::Garbage("message too long".into())).await;
                        }
                    }
                    continue;
                }
                if std::mem::take(&mut skipping) {
                    continue;
                }
                let line = std::mem::take(&mut pending);
                let ev = match serde_json::from_slice::<Value>(&line) {
                    Ok(Value::String(s)) if s == "ready" => IpcEvent::Ready,
                    Ok(v) => IpcEvent::Message(v),
                    Err(_) => IpcEvent::Garbage(
                        String::from_utf8_lossy(&line).chars().take(200).collect(),
                    ),
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok((IpcWriter(wr), rx))
}
