//! `sendSignal`: one signal to each selected instance's process.

use crate::daemon::Daemon;
use crate::instances::instance::Ctl;
use crate::requests::fan_out;
use pmr_core::protocol::{Response, SignalRequest};
use std::sync::Arc;

pub async fn signal(d: &Arc<Daemon>, req: SignalRequest) -> Response {
    let SignalRequest { signal, ids } = req;
    let results = fan_out(d, &ids, |reply| Ctl::Signal(signal, reply)).await;
    Response::Done { results }
}
