//! The HTTP API (issue 15): JSON routes over the same request handlers as the CLI, Server-Sent
//! Events, Prometheus `/metrics`, the OpenAPI description and the dashboard's static files.
//!
//! Off by default: until `pmr web` / `pmr set pmr:http ADDR` (or that setting in `conf.json`
//! at start-up) nothing here exists: no socket, no task, no buffer. On, it is two accept tasks
//! (TCP and `$PMR_HOME/http.sock`) on the daemon's runtime and one task per connection.

mod ask;
mod assets;
mod auth;
mod body;
mod error;
mod listen;
mod logs;
mod openapi;
mod prometheus;
mod reply;
mod routes;
mod sse;
mod start_body;

pub use listen::parse_addr;

use crate::daemon::{Daemon, HttpServer};
use pmr_core::protocol::Response;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The `conf.json` key (`pmr set pmr:http ADDR`, `false` to turn off).
pub const CONF_SECTION: &str = "pmr";
pub const CONF_KEY: &str = "http";
pub const DEFAULT_ADDR: &str = "127.0.0.1:9615";

/// What every route shares.
pub struct Api {
    pub d: Arc<Daemon>,
    /// Replaced in place by `--rotate-token` (shared with the [`HttpServer`]).
    pub token: Arc<RwLock<String>>,
    /// How long a request body may take to arrive (`PMR_HTTP_BODY_TIMEOUT_MS`, for tests).
    pub body_timeout: Duration,
}

fn body_timeout() -> Duration {
    std::env::var("PMR_HTTP_BODY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The `Web` request: serve at `listen`, stop, rotate the token, or report.
pub async fn web(
    d: &Arc<Daemon>,
    listen: Option<String>,
    stop: bool,
    rotate_token: bool,
) -> Response {
    let _one = d.http.serial.lock().await;
    d.http
        .asked
        .store(true, std::sync::atomic::Ordering::SeqCst);
    match web_locked(d, listen, stop, rotate_token).await {
        Ok(()) => state(d),
        Err(message) => Response::Error { message },
    }
}

fn state(d: &Arc<Daemon>) -> Response {
    Response::Web {
        listen: d
            .http
            .running
            .lock()
            .unwrap()
            .as_ref()
            .map(|r| r.addr.to_string()),
        token_file: auth::token_path(&d.ctx.home).to_string_lossy().into_owned(),
    }
}

async fn web_locked(
    d: &Arc<Daemon>,
    listen: Option<String>,
    stop: bool,
    rotate_token: bool,
) -> Result<(), String> {
    let path = auth::token_path(&d.ctx.home);
    if rotate_token {
        let p = path.clone();
        let token = tokio::task::spawn_blocking(move || auth::rotate(&p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if let Some(r) = d.http.running.lock().unwrap().as_ref() {
            *r.token.write().unwrap() = token;
        }
    }
    if stop {
        stop_server(d).await;
        return Ok(());
    }
    let Some(listen) = listen else {
        return Ok(());
    };
    let addr = parse_addr(&listen)?;
    if d.http
        .running
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|r| r.addr == addr)
    {
        return Ok(());
    }
    // Bound before anything else changes: a taken port leaves the running server as it was.
    let tcp = listen::bind_tcp(addr).await?;
    let p = path.clone();
    let token = tokio::task::spawn_blocking(move || auth::load_or_create(&p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    stop_server(d).await;
    let token = Arc::new(RwLock::new(token));
    let api = Arc::new(Api {
        d: d.clone(),
        token: token.clone(),
        body_timeout: body_timeout(),
    });
    let bound = tcp.local_addr().unwrap_or(addr);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut loops = vec![tokio::spawn(listen::serve_tcp(
        tcp,
        api.clone(),
        rx.clone(),
    ))];
    match listen::bind_unix(&sock_path(d)) {
        Ok(unix) => loops.push(tokio::spawn(listen::serve_unix(unix, api.clone(), rx))),
        Err(e) => tracing::warn!("HTTP API: no {}: {e}", sock_path(d).display()),
    }
    if !addr.ip().is_loopback() {
        tracing::warn!("HTTP API listening on {bound}, which is not a loopback address");
    }
    tracing::info!(
        "HTTP API listening on http://{bound} and {}",
        sock_path(d).display()
    );
    *d.http.running.lock().unwrap() = Some(HttpServer {
        addr: bound,
        token,
        stop: tx,
        loops,
    });
    Ok(())
}

fn sock_path(d: &Daemon) -> std::path::PathBuf {
    d.ctx.home.root.join("http.sock")
}

async fn stop_server(d: &Daemon) {
    let running = d.http.running.lock().unwrap().take();
    if let Some(r) = running {
        let _ = r.stop.send(true);
        for l in r.loops {
            let _ = l.await;
        }
        let _ = std::fs::remove_file(sock_path(d));
        tracing::info!("HTTP API on {} stopped", r.addr);
    }
}

/// At start-up: serve where `conf.json` says (`pmr:http`), if it says so. A taken port is
/// logged; the daemon runs on without the API.
pub async fn boot(d: &Arc<Daemon>) {
    let _ = d.http.started.set(std::time::Instant::now());
    let conf = d.ctx.home.root.join("conf.json");
    let value = tokio::task::spawn_blocking(move || pmr_core::conf::read_conf(&conf))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|c| c.get(CONF_SECTION)?.get(CONF_KEY).cloned());
    let Some(v) = value else { return };
    let text = match &v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if is_off(&text) {
        return;
    }
    let _one = d.http.serial.lock().await;
    if d.http.asked.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    if let Err(message) = web_locked(d, Some(text), false, false).await {
        tracing::warn!("HTTP API not started ({CONF_SECTION}:{CONF_KEY} in conf.json): {message}");
    }
}

/// The values of `pmr:http` that mean off.
pub fn is_off(v: &str) -> bool {
    matches!(v.trim(), "" | "false" | "off" | "0")
}
