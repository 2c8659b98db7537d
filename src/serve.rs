//! `pmr __serve`: the static file server that `pmr serve` runs as an ordinary managed app (so it
//! is listed, stopped, restarted and logged like any other), configured as PM2's `Serve.js` is:
//! by `PM2_SERVE_*` environment variables. No Node.js is involved.
//!
//! The files: `config` (the environment), `resolve` (a URL path → what to answer, all the file
//! system work, traversal and symlink checks), `http` (requests and responses), `body` (file
//! bodies streamed in bounded chunks), `auth` (basic auth), `listing` (`--ftp` directory pages),
//! `mime` (PM2's content types).

mod auth;
mod body;
pub mod config;
mod http;
mod listing;
mod mime;
mod resolve;

pub use config::Config;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// A client gets this long to send its request headers (slow-header clients would otherwise hold
/// a connection and its task forever).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the server until the process is signalled (the daemon stops apps with a signal; the
/// default disposition ends this process, and there is no state to save).
pub fn run(cfg: Config) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
    // PM2's start line, word for word.
    println!(
        "Exposing {} directory on {}:{}",
        cfg.site.root.display(),
        cfg.host,
        cfg.port
    );
    let state = Arc::new(http::State {
        site: cfg.site,
        auth: cfg.auth,
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends pass; spinning on them would burn a core.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| http::handle(state.clone(), req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
