//! The dashboard's static files, compiled into the binary (`assets/`): `GET /` and
//! `GET /assets/<file>`. They hold no data, so they need no token (the page reads it from the
//! URL fragment and sends it with each API call).

/// (path under `/assets/`, content type, bytes). `index.html` is also `/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
];

/// Sent with every file: the page runs only its own script and style and talks only to this
/// server, so an app's text that slipped into markup still could not run or load anything; no
/// other site may frame it (its buttons act) or learn its address.
pub const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// The file for a request path (`/` or `/assets/...`), if there is one.
pub fn get(path: &str) -> Option<(&'static str, &'static [u8])> {
    let name = match path {
        "/" | "/index.html" => "index.html",
        p => p.strip_prefix("/assets/")?,
    };
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, b)| (*ct, *b))
}
