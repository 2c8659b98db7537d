//! `resolve`: selectors (names, namespaces, ids, `all`, `/regex/`) → ids.

use crate::daemon::state::Daemon;
use crate::protocol::Response;
use std::sync::Arc;

pub fn resolve(d: &Arc<Daemon>, selectors: &[String]) -> Response {
    match d.registry.lock().unwrap().resolve(selectors) {
        Ok(ids) => Response::Ids { ids },
        Err(message) => Response::Error { message },
    }
}
