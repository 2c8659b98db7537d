//! `ping`: the daemon's version and pid (the CLI warns on a version mismatch).

use pmr_core::protocol::{Response, PROTOCOL_VERSION, VERSION};

pub fn ping() -> Response {
    Response::Pong {
        version: VERSION.into(),
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
    }
}
