//! `$NOTIFY_SOCKET` (systemd's sd_notify): apps that are not Node can say `READY=1` on a unix
//! datagram socket the daemon offers to every app. The sender is identified by its credentials
//! (SO_PASSCRED), matched to the instance whose process group it belongs to.

use crate::node::ipc::IpcEvent;
use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

/// Where readiness goes: the instance (or reloading process) waiting on that process group.
#[derive(Default)]
pub struct Notify {
    waiting: Mutex<HashMap<u32, mpsc::Sender<IpcEvent>>>,
}

/// Removes the registration when the process it belongs to is dropped.
pub struct Registration {
    notify: Arc<Notify>,
    pgid: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.notify.waiting.lock().unwrap().remove(&self.pgid);
    }
}

impl Notify {
    pub fn register(self: &Arc<Self>, pgid: u32, tx: mpsc::Sender<IpcEvent>) -> Registration {
        self.waiting.lock().unwrap().insert(pgid, tx);
        Registration {
            notify: self.clone(),
            pgid,
        }
    }

    fn deliver(&self, pid: u32, text: &str) {
        let pgid = process_group(pid).unwrap_or(pid);
        let tx = self.waiting.lock().unwrap().get(&pgid).cloned();
        let Some(tx) = tx else { return };
        for line in text.lines() {
            if line.trim() == "READY=1" {
                let _ = tx.try_send(IpcEvent::Ready);
            }
        }
    }
}

fn process_group(pid: u32) -> Option<u32> {
    pmr_core::procfs::read_stat(pid).map(|s| s.pgrp)
}

/// Bind the socket (replacing a stale one) and serve it until the daemon exits.
pub fn start(path: &Path, notify: Arc<Notify>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let sock = UnixDatagram::bind(path)?;
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
        .map_err(std::io::Error::from)?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            if sock.readable().await.is_err() {
                return;
            }
            let fd = sock.as_raw_fd();
            match sock.try_io(Interest::READABLE, || recv_with_pid(fd, &mut buf)) {
                Ok((n, Some(pid))) => {
                    // Finding the sender's process group reads /proc: off the runtime's threads.
                    let (notify, text) = (
                        notify.clone(),
                        String::from_utf8_lossy(&buf[..n]).into_owned(),
                    );
                    tokio::task::spawn_blocking(move || notify.deliver(pid, &text));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::warn!("notify socket: {e}"),
            }
        }
    });
    Ok(())
}

fn recv_with_pid(fd: i32, buf: &mut [u8]) -> std::io::Result<(usize, Option<u32>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(UnixCredentials);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT)
        .map_err(std::io::Error::from)?;
    let mut pid = None;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmCredentials(cred) = c {
            pid = Some(cred.pid() as u32);
        }
    }
    Ok((msg.bytes, pid))
}
