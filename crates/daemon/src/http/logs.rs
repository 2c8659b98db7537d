//! `GET /api/apps/{sel}/logs?lines=N&stream=out|err|both`: the last lines of each selected
//! instance's log files, read on the blocking pool without reading whole files (`tail.rs`).

use crate::http::body::Out;
use crate::http::reply::{self, ApiError};
use hyper::Response;
use pmr_core::protocol::ProcInfo;
use serde_json::json;
use std::path::Path;

pub const DEFAULT_LINES: usize = 100;
pub const MAX_LINES: usize = 1000;

/// `key=value&...` → the value of `key` (percent-decoding is not needed for these keys'
/// values: numbers, words, selectors without `%`).
pub fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// What to read: (lines, out, err); checked before the selector is.
pub struct Params {
    lines: usize,
    out: bool,
    err: bool,
}

pub fn params(query: &str) -> Result<Params, ApiError> {
    let lines = match query_param(query, "lines") {
        None => DEFAULT_LINES,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_LINES)
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    format!("lines must be a number from 0 to {MAX_LINES}; got {v:?}"),
                )
            })?,
    };
    let (out, err) = match query_param(query, "stream").unwrap_or("both") {
        "both" => (true, true),
        "out" => (true, false),
        "err" => (false, true),
        other => {
            return Err(ApiError::new(
                400,
                format!("stream must be out, err or both; got {other:?}"),
            ))
        }
    };
    Ok(Params { lines, out, err })
}

pub async fn tail(procs: Vec<ProcInfo>, ids: &[u32], p: Params) -> Result<Response<Out>, ApiError> {
    let Params { lines, out, err } = p;
    let wanted: Vec<ProcInfo> = procs
        .into_iter()
        .filter(|p| ids.contains(&p.pm_id))
        .collect();
    let body = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for p in &wanted {
            for (on, stream, path) in [(out, "out", &p.out_log_path), (err, "err", &p.err_log_path)] {
                if !on || pmr_core::paths::is_null_device(path) {
                    continue;
                }
                // A file not written yet is no error: no lines.
                for text in pmr_core::tail::tail_lines(Path::new(&**path), lines).unwrap_or_default() {
                    all.push(json!({"pm_id": p.pm_id, "name": p.spec.name, "stream": stream, "text": text}));
                }
            }
        }
        serde_json::to_vec(&json!({ "lines": all })).unwrap_or_default()
    })
    .await
    .map_err(|e| ApiError::new(500, e.to_string()))?;
    Ok(reply::bytes(200, "application/json", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param("lines=5&stream=out", "stream"), Some("out"));
        assert_eq!(query_param("lines=5&stream=out", "lines"), Some("5"));
        assert_eq!(query_param("logs", "logs"), Some(""));
        assert_eq!(query_param("", "lines"), None);
    }
}
