//! `resolve`: selectors (names, script paths, namespaces, ids, `all`, `/regex/`) → ids.

use crate::daemon::Daemon;
use pmr_core::protocol::{ResolveRequest, Response};
use std::path::Path;
use std::sync::Arc;

pub fn resolve(d: &Arc<Daemon>, req: ResolveRequest) -> Response {
    let (selectors, cwd) = (&req.selectors[..], req.cwd.as_deref());
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
