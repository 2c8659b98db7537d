//! What the API asks of the daemon: the same requests as the CLI, answered by the same
//! handlers in-process, with the CLI's errors; and selectors taken from a path.

use crate::daemon::Daemon;
use crate::http::error::ApiError;
use pmr_core::protocol::{ProcInfo, Request as Req, ResolveRequest, Response as Resp};
use std::sync::Arc;

/// Any request, answered by the socket server's handlers ([`Daemon::http`]'s handler).
pub async fn call(d: &Arc<Daemon>, req: Req) -> Resp {
    // Announced on PM2's bus as PM2's CLI announces its actions.
    let manual = crate::pm2::events::before(d, &req).await;
    let resp = (d.http.handler)(d, req).await;
    crate::pm2::events::after(d, manual, &resp).await;
    resp
}

pub async fn list(d: &Arc<Daemon>) -> Result<Vec<ProcInfo>, ApiError> {
    match call(d, Req::List).await {
        Resp::List { procs } => Ok(procs),
        other => Err(unexpected(other)),
    }
}

/// A selector → ids, with the CLI's error (404) when it matches nothing.
pub async fn resolve(d: &Arc<Daemon>, sel: &str) -> Result<Vec<u32>, ApiError> {
    match call(
        d,
        Req::Resolve(ResolveRequest {
            selectors: vec![sel.to_string()],
            cwd: None,
        }),
    )
    .await
    {
        Resp::Ids { ids } if !ids.is_empty() => Ok(ids),
        Resp::Ids { .. } => Err(ApiError::new(
            404,
            format!("Process or Namespace {sel} not found"),
        )),
        Resp::Error { message } => Err(ApiError::new(404, message)),
        other => Err(unexpected(other)),
    }
}

pub fn unexpected(r: Resp) -> ApiError {
    match r {
        Resp::Error { message } => ApiError::new(400, message),
        other => ApiError::new(500, format!("unexpected reply from the daemon: {other:?}")),
    }
}

/// Percent-decoding of one path segment (app names may hold spaces and such).
pub fn decode(seg: &str) -> Result<String, ApiError> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::new(400, format!("bad percent-encoding in {seg:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::new(400, format!("{seg:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(decode("my%20app").unwrap(), "my app");
        assert_eq!(decode("a%2Fb").unwrap(), "a/b");
        assert!(decode("bad%zz").is_err());
        assert!(decode("cut%2").is_err());
    }
}
