//! Response helpers: JSON bodies, the one error shape `{"error": "..."}`.

use crate::http::body::Out;
pub use crate::http::error::ApiError;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub fn bytes(
    status: u16,
    content_type: &'static str,
    body: impl Into<hyper::body::Bytes>,
) -> Response<Out> {
    let mut r = Response::new(Out::Full(Some(body.into())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Live data: a browser or proxy must never show a stale copy.
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json(status: u16, v: &serde_json::Value) -> Response<Out> {
    bytes(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

pub fn error(e: ApiError) -> Response<Out> {
    json(e.status, &serde_json::json!({ "error": e.message }))
}
