//! `sendSignal`: one signal to each selected instance's process.

use super::fan_out;
use crate::daemon::instance::Ctl;
use crate::daemon::state::Daemon;
use crate::protocol::Response;
use std::sync::Arc;

pub async fn signal(d: &Arc<Daemon>, signal: i32, ids: &[u32]) -> Response {
    let results = fan_out(d, ids, |reply| Ctl::Signal(signal, reply)).await;
    Response::Done { results }
}
