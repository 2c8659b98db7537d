//! The router: method and path → the same daemon request the CLI would send (`ask.rs`,
//! in-process), its reply → JSON with the API's status codes.

use super::ask::{call, decode, list, resolve, unexpected};
use super::{assets, auth, Api};
use crate::http::body::{self, Out};
use crate::http::reply::{self, ApiError};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH};
use hyper::{Method, Request, Response};
use pmr_core::protocol::{
    Action, ActionRequest, ApplyRequest, ProcInfo, Request as Req, Response as Resp, ScaleRequest,
    TriggerRequest,
};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;

pub async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let t0 = std::time::Instant::now();
    let mut r = route(&api, req).await.unwrap_or_else(reply::error);
    crate::text::note_request();
    // The daemon's own time for the answer (a stream: until its headers), for clients and
    // the benchmark: the standard `Server-Timing` header.
    let dur = format!("daemon;dur={:.3}", t0.elapsed().as_secs_f64() * 1000.0);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&dur) {
        r.headers_mut().insert("server-timing", v);
    }
    Ok(r)
}

/// Every route, for 405 (a known path with another method) and the OpenAPI test.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/api/apps"),
    ("POST", "/api/apps"),
    ("GET", "/api/apps/{sel}"),
    ("POST", "/api/apps/{sel}/{action}"),
    ("POST", "/api/apps/{name}/scale"),
    ("POST", "/api/apps/{sel}/trigger"),
    ("GET", "/api/apps/{sel}/logs"),
    ("GET", "/api/events"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

const ACTIONS: &[(&str, Action)] = &[
    ("start", Action::Restart),
    ("stop", Action::Stop),
    ("restart", Action::Restart),
    ("reload", Action::Reload),
    ("delete", Action::Delete),
    ("reset", Action::Reset),
];

async fn route(api: &Arc<Api>, req: Request<Incoming>) -> Result<Response<Out>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path == "/health" {
        only(&method, Method::GET)?;
        return Ok(reply::json(
            200,
            &json!({"ok": true, "version": pmr_core::protocol::VERSION, "pid": std::process::id()}),
        ));
    }
    if path == "/" || path == "/index.html" || path.starts_with("/assets/") {
        only(&method, Method::GET)?;
        return match assets::get(&path) {
            Some((ct, bytes)) => {
                let mut r = reply::bytes(200, ct, bytes);
                for (k, v) in assets::HEADERS {
                    r.headers_mut()
                        .insert(*k, hyper::header::HeaderValue::from_static(v));
                }
                Ok(r)
            }
            None => Err(ApiError::new(404, format!("no such file: {path}"))),
        };
    }
    {
        let token = api.token.read().unwrap();
        let header = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        auth::check(header, &token).map_err(|m| ApiError::new(401, m))?;
    }
    let segs = path
        .strip_prefix('/')
        .unwrap_or(&path)
        .split('/')
        .map(decode)
        .collect::<Result<Vec<String>, ApiError>>()?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query = req.uri().query().unwrap_or("").to_string();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(not_found(&method, &path));
    }
    let d = &api.d;
    match (&method, segs.as_slice()) {
        (&Method::GET, ["api", "apps"]) => {
            let procs = list(d).await?;
            apps_json(d, procs).await
        }
        (&Method::POST, ["api", "apps"]) => {
            let bytes = read_body(api, req).await?;
            start(api, &bytes).await
        }
        (&Method::GET, ["api", "apps", sel]) => {
            let ids = resolve(d, sel).await?;
            let procs = list(d).await?;
            let mine: Vec<ProcInfo> = procs
                .into_iter()
                .filter(|p| ids.contains(&p.pm_id))
                .collect();
            apps_json(d, mine).await
        }
        (&Method::GET, ["api", "apps", sel, "logs"]) => {
            let params = crate::http::logs::params(&query)?;
            let ids = resolve(d, sel).await?;
            let procs = list(d).await?;
            crate::http::logs::tail(procs, &ids, params).await
        }
        (&Method::POST, ["api", "apps", name, "scale"]) => {
            let bytes = read_body(api, req).await?;
            scale(api, name, &bytes).await
        }
        (&Method::POST, ["api", "apps", sel, "trigger"]) => {
            let bytes = read_body(api, req).await?;
            trigger(api, sel, &bytes).await
        }
        (&Method::POST, ["api", "apps", sel, action]) => {
            let Some(&(_, act)) = ACTIONS.iter().find(|(n, _)| n == action) else {
                return Err(ApiError::new(
                    404,
                    format!(
                        "unknown action {action:?} (actions: start, stop, restart, reload, delete, reset, scale)"
                    ),
                ));
            };
            // An empty or absent body; anything sent is read (bounded) and ignored.
            let _ = read_body(api, req).await?;
            let ids = resolve(d, sel).await?;
            let r = call(
                d,
                Req::Action(ActionRequest {
                    action: act,
                    ids,
                    update_env: None,
                    parallel: None,
                    patch: None,
                }),
            )
            .await;
            done(r, 200)
        }
        (&Method::GET, ["api", "events"]) => crate::http::sse::open(api.clone(), &query).await,
        (&Method::GET, ["metrics"]) => {
            let procs = list(d).await?;
            let started = d.http.started.get().copied();
            let text = tokio::task::spawn_blocking(move || {
                let own = crate::http::prometheus::self_stats(started);
                let now = chrono::Utc::now().timestamp_millis();
                crate::http::prometheus::render(&procs, &own, now)
            })
            .await
            .map_err(|e| ApiError::new(500, e.to_string()))?;
            Ok(reply::bytes(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            ))
        }
        (&Method::GET, ["openapi.json"]) => Ok(reply::bytes(
            200,
            "application/json",
            crate::http::openapi::DOC,
        )),
        _ => Err(not_found(&method, &path)),
    }
}

fn only(method: &Method, want: Method) -> Result<(), ApiError> {
    if *method == want {
        Ok(())
    } else {
        Err(ApiError::new(
            405,
            format!("method {method} not allowed here (only {want})"),
        ))
    }
}

/// 405 when the path is a route with another method, else 404.
fn not_found(method: &Method, path: &str) -> ApiError {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let known = ROUTES.iter().any(|(m, p)| {
        let pat: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        *m != method.as_str()
            && pat.len() == segs.len()
            && pat
                .iter()
                .zip(&segs)
                .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()))
    });
    if known {
        ApiError::new(405, format!("method {method} not allowed on {path}"))
    } else {
        ApiError::new(404, format!("no such route: {method} {path}"))
    }
}

pub async fn read_body(api: &Api, req: Request<Incoming>) -> Result<hyper::body::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    body::read(req.into_body(), declared, api.body_timeout).await
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(400, format!("bad JSON in the request body: {e}")))
}

/// PM2's jlist array (~6 KB per process: built on the blocking pool, off the runtime's workers).
async fn apps_json(
    d: &crate::daemon::Daemon,
    procs: Vec<ProcInfo>,
) -> Result<Response<Out>, ApiError> {
    let home = d.ctx.home.root.to_string_lossy().into_owned();
    let text = tokio::task::spawn_blocking(move || pmr_render::jlist(&procs, &home))
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?;
    Ok(reply::bytes(200, "application/json", text))
}

/// `Done` → `{"ok":true,"ids":[...]}`; any instance's error → 409 with every result.
fn done(r: Resp, ok_status: u16) -> Result<Response<Out>, ApiError> {
    match r {
        Resp::Done { results } | Resp::Resurrected { results, .. } => {
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| Some(format!("[{}]({}) {}", r.name, r.id, r.error.as_ref()?)))
                .collect();
            let ids: Vec<u32> = results.iter().map(|r| r.id).collect();
            if failed.is_empty() {
                Ok(reply::json(ok_status, &json!({"ok": true, "ids": ids})))
            } else {
                let results: Vec<Value> = results
                    .iter()
                    .map(|r| json!({"pm_id": r.id, "name": r.name, "error": r.error}))
                    .collect();
                Ok(reply::json(
                    409,
                    &json!({"error": failed.join("; "), "ids": ids, "results": results}),
                ))
            }
        }
        Resp::Started { ids } => Ok(reply::json(ok_status, &json!({"ok": true, "ids": ids}))),
        other => Err(unexpected(other)),
    }
}

async fn start(api: &Arc<Api>, bytes: &[u8]) -> Result<Response<Out>, ApiError> {
    let value = parse_json(bytes)?;
    let specs = tokio::task::spawn_blocking(move || crate::http::start_body::specs(&value))
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?
        .map_err(|m| ApiError::new(400, m))?;
    let r = call(
        &api.d,
        Req::Apply(ApplyRequest {
            apps: specs,
            reload: false,
        }),
    )
    .await;
    done(r, 201)
}

async fn scale(api: &Arc<Api>, name: &str, bytes: &[u8]) -> Result<Response<Out>, ApiError> {
    let value = parse_json(bytes)?;
    let bad = || {
        ApiError::new(
            400,
            "scale takes {\"instances\": N} or {\"instances\": \"+N\"|\"-N\"}",
        )
    };
    let (relative, count) = match value.get("instances") {
        Some(Value::Number(n)) => (false, n.as_i64().ok_or_else(bad)?),
        Some(Value::String(s)) => {
            let relative = s.starts_with('+') || s.starts_with('-');
            let n: i64 = s.trim_start_matches('+').parse().map_err(|_| bad())?;
            (relative, n)
        }
        _ => return Err(bad()),
    };
    if !relative && count < 0 {
        return Err(bad());
    }
    let max = pmr_core::protocol::max_instances();
    if count > i64::from(max) {
        return Err(ApiError::new(
            400,
            pmr_core::protocol::too_many_instances(name, count, max),
        ));
    }
    let r = call(
        &api.d,
        Req::Scale(ScaleRequest {
            name: name.to_string(),
            relative,
            count,
        }),
    )
    .await;
    match r {
        Resp::Error { message } if message.ends_with("not found") => {
            Err(ApiError::new(404, message))
        }
        Resp::Error { message } => Err(ApiError::new(409, message)),
        other => done(other, 200),
    }
}

/// Longest wait a request may ask for: a connection is not held longer than a CLI would wait.
const TRIGGER_MAX_MS: u64 = 120_000;

/// `{action, param?, timeout_ms?}` → the same `Trigger` request as `pmr trigger`; one entry per
/// instance (`ok: false` with the error for one that did not answer in time).
async fn trigger(api: &Arc<Api>, sel: &str, bytes: &[u8]) -> Result<Response<Out>, ApiError> {
    let value = parse_json(bytes)?;
    let bad = |m: &str| ApiError::new(400, m.to_string());
    let action = match value.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        _ => {
            return Err(bad(
                "trigger takes {\"action\": \"name\", \"param\": any, \"timeout_ms\": N}",
            ))
        }
    };
    let timeout_ms = match value.get("timeout_ms") {
        None | Some(Value::Null) => 10_000,
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=TRIGGER_MAX_MS).contains(&ms) => ms,
            _ => return Err(bad(&format!("timeout_ms must be 1 to {TRIGGER_MAX_MS}"))),
        },
    };
    let param = value.get("param").filter(|v| !v.is_null()).cloned();
    let ids = resolve(&api.d, sel).await?;
    let r = call(
        &api.d,
        Req::Trigger(TriggerRequest {
            ids,
            action,
            param,
            timeout_ms,
        }),
    )
    .await;
    match r {
        Resp::Triggered { replies } => Ok(reply::json(200, &json!({ "replies": replies }))),
        Resp::Error { message } => Err(ApiError::new(409, message)),
        other => Err(unexpected(other)),
    }
}
