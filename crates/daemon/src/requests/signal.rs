//! `sendSignal`: one signal to each selected instance's process.

use super::fan_out;
use crate::instance::Ctl;
use crate::state::Daemon;
use pmr_core::protocol::Response;
use std::sync::Arc;

pub async fn signal(d: &Arc<Daemon>, signal: i32, ids: &[u32]) -> Response {
    let results = fan_out(d, ids, |reply| Ctl::Signal(signal, reply)).await;
    Response::Done { results }
}
