//! `GET /openapi.json`: the OpenAPI 3.0 description of the API, written by hand next to the
//! router (`routes::ROUTES`; a test checks that every route is described).

pub const DOC: &str = include_str!("openapi.json");
