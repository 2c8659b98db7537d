//! The daemon's own readiness for its service manager (systemd's `Type=notify`): `READY=1`,
//! `WATCHDOG=1`, `STOPPING=1` as datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for an
//! abstract socket). No crate: it is one `sendto`. Not to be confused with `notify.rs`, the
//! socket the daemon offers its apps.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

struct Target {
    sock: UnixDatagram,
    addr: SocketAddr,
}

/// Process-wide: `$NOTIFY_SOCKET` is this process's, read once at start.
static TARGET: OnceLock<Option<Target>> = OnceLock::new();

fn address(spec: &str) -> std::io::Result<SocketAddr> {
    match spec.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => SocketAddr::from_pathname(spec),
    }
}

/// Read `$NOTIFY_SOCKET` once, at start-up.
pub fn init() {
    TARGET.get_or_init(|| {
        let spec = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())?;
        let target = address(&spec).and_then(|addr| {
            let sock = UnixDatagram::unbound()?;
            // A full receive queue must never block the daemon: the message is dropped.
            sock.set_nonblocking(true)?;
            Ok(Target { sock, addr })
        });
        match target {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={spec} cannot be used: {e}");
                None
            }
        }
    });
}

/// Send one state line (non-blocking; nothing when there is no service manager).
pub fn send(state: &str) {
    if let Some(Some(t)) = TARGET.get() {
        if let Err(e) = t.sock.send_to_addr(state.as_bytes(), &t.addr) {
            tracing::warn!("sd_notify {state:?}: {e}");
        }
    }
}

/// The watchdog period asked for by the unit (`WatchdogSec`): `WATCHDOG_USEC`, when
/// `WATCHDOG_PID` is unset or names us.
pub fn watchdog_interval() -> Option<Duration> {
    TARGET.get()?.as_ref()?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// `WATCHDOG=1` every half period, from the runtime: a stuck runtime stops the pings and
/// systemd restarts the service.
pub fn spawn_watchdog() {
    if let Some(every) = watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                send("WATCHDOG=1");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_and_path_addresses() {
        let a = address("@pmr-test").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(a.as_abstract_name(), Some(&b"pmr-test"[..]));
        let p = address("/run/systemd/notify").unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
    }
}
