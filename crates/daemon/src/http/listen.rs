//! Where the API listens: the TCP address (loopback unless given otherwise) and
//! `$PMR_HOME/http.sock` (0600, same uid only), accept loops, and one hyper connection per
//! client, bounded in number, closed when the server stops.

use crate::http::Api;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};

/// Connections at once (each SSE stream holds one): more are closed at once, so a flood of
/// clients costs the daemon a bounded amount of memory.
const MAX_CONNECTIONS: usize = 64;
/// A client gets this long to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `HOST:PORT` (IPv4, `[IPv6]`, `localhost`) or a bare port (on 127.0.0.1).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    let bad = || format!("bad address {s:?}: expected HOST:PORT such as 127.0.0.1:9615");
    if let Ok(port) = t.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = t.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| bad());
    }
    t.parse::<SocketAddr>().map_err(|_| bad())
}

pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("port {} is already in use ({addr}: {e})", addr.port())
        } else {
            format!("cannot listen on {addr}: {e}")
        }
    })
}

pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    // Other uids are refused at accept too; this keeps them from connecting at all.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub async fn serve_tcp(l: TcpListener, api: Arc<Api>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            conn = l.accept() => match conn {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    connection(s, api.clone(), stop.clone());
                }
                Err(e) => {
                    tracing::warn!("HTTP API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

pub async fn serve_unix(l: UnixListener, api: Arc<Api>, mut stop: watch::Receiver<bool>) {
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        tokio::select! {
            conn = l.accept() => match conn {
                Ok((s, _)) => match s.peer_cred() {
                    Ok(c) if c.uid() == my_uid => connection(s, api.clone(), stop.clone()),
                    _ => tracing::warn!("HTTP API: refused a client of another uid on http.sock"),
                },
                Err(e) => {
                    tracing::warn!("HTTP API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

fn connection<S>(stream: S, api: Arc<Api>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connections = api
        .d
        .http
        .connections
        .get_or_init(|| Arc::new(Semaphore::new(MAX_CONNECTIONS)));
    let Ok(permit) = connections.clone().try_acquire_owned() else {
        tracing::warn!("HTTP API: {MAX_CONNECTIONS} connections open, one more refused");
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let service =
            hyper::service::service_fn(move |req| crate::http::routes::handle(api.clone(), req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            _ = stop.changed() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("9615").unwrap().to_string(), "127.0.0.1:9615");
        assert_eq!(
            parse_addr("localhost:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(parse_addr("0.0.0.0:1").unwrap().to_string(), "0.0.0.0:1");
        assert_eq!(parse_addr("[::1]:9615").unwrap().to_string(), "[::1]:9615");
        for bad in ["", "host", "1.2.3.4", "1.2.3.4:99999", "localhost:x"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }
}
