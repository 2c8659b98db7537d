//! One request → one response: basic auth first (as PM2), then `resolve` on the blocking pool,
//! then PM2's status lines, headers and bodies. Every method is answered alike, as PM2 does;
//! hyper leaves the body out for HEAD.

use super::auth::BasicAuth;
use super::body::Body;
use super::resolve::{resolve, Reply, Site};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;

pub struct State {
    pub site: Site,
    pub auth: Option<BasicAuth>,
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if let Some(auth) = &state.auth {
        if !auth.allows(req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes)) {
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                Some("text/html"),
                "401 Unauthorized",
            );
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Authentication service\""),
            );
            return Ok(r);
        }
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let st = state.clone();
    let raw = path.clone();
    let reply = match tokio::task::spawn_blocking(move || resolve(&st.site, &raw)).await {
        Ok(r) => r,
        Err(_) => Reply::Error("EIO".into()),
    };
    Ok(match reply {
        Reply::File {
            file,
            len,
            content_type,
        } => {
            let mut r = file_response(StatusCode::OK, content_type, file, len);
            cors(&mut r);
            r
        }
        Reply::Listing(html) => {
            let mut r = plain(StatusCode::OK, Some("text/html"), html);
            cors(&mut r);
            r
        }
        Reply::AddSlash => {
            // One leading `/` only: `//host/dir` would send the browser to another site.
            let local = path.trim_start_matches(['/', '\\']);
            let location = match query {
                Some(q) => format!("/{local}/?{q}"),
                None => format!("/{local}/"),
            };
            let mut r = plain(StatusCode::MOVED_PERMANENTLY, None, "");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        Reply::NotFound(Some((file, len))) => {
            file_response(StatusCode::NOT_FOUND, "text/html", file, len)
        }
        Reply::NotFound(None) => plain(StatusCode::NOT_FOUND, Some("text/html"), "404 Not Found"),
        Reply::Forbidden => plain(StatusCode::FORBIDDEN, Some("text/html"), "403 Forbidden"),
        Reply::BadRequest => plain(
            StatusCode::BAD_REQUEST,
            Some("text/html"),
            "400 Bad Request",
        ),
        Reply::Error(code) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("Sorry, check with the site admin for error: {code} ..\n"),
        ),
    })
}

fn plain(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: impl Into<hyper::body::Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Body::text(body));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

fn file_response(
    status: StatusCode,
    content_type: &'static str,
    file: std::fs::File,
    len: u64,
) -> Response<Body> {
    let mut r = Response::new(Body::file(file, len));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// PM2 lets browsers fetch the files from other origins.
fn cors(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
}
