//! `resolve`: selectors (names, script paths, namespaces, ids, `all`, `/regex/`) → ids.

use crate::daemon::Daemon;
use pmr_core::protocol::Response;
use std::path::Path;
use std::sync::Arc;

pub fn resolve(d: &Arc<Daemon>, selectors: &[String], cwd: Option<&str>) -> Response {
    match d
        .registry
        .lock()
        .unwrap()
        .resolve(selectors, cwd.map(Path::new))
    {
        Ok(ids) => Response::Ids { ids },
        Err(message) => Response::Error { message },
    }
}
