//! State changes of instances for live watchers (the HTTP API's `/api/events`): a tokio
//! broadcast with a bounded buffer, created by the first event stream, so a daemon without one
//! pays one atomic load per status change and allocates nothing.
//!
//! A receiver that falls more than [`BUFFER`] events behind sees `Lagged` and is disconnected
//! by its reader (the SSE stream ends; the page reconnects and reloads the list).

use pmr_core::protocol::Status;
use serde::Serialize;
use std::sync::OnceLock;
use tokio::sync::broadcast;

pub const BUFFER: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct StateEvent {
    pub pm_id: u32,
    pub name: String,
    /// PM2's status words, or `deleted` once the instance left the table.
    pub status: &'static str,
    pub pid: u32,
    pub restart_time: u32,
    /// ms since the epoch.
    pub at: i64,
}

/// The daemon's state events: a channel created by the first event stream.
#[derive(Default)]
pub struct Events {
    channel: OnceLock<broadcast::Sender<StateEvent>>,
}

impl Events {
    /// A new receiver (creating the channel on first use).
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.channel
            .get_or_init(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Whether anyone could receive: callers skip building the event otherwise.
    pub fn wanted(&self) -> bool {
        self.channel.get().is_some_and(|tx| tx.receiver_count() > 0)
    }

    fn send(&self, ev: StateEvent) {
        if let Some(tx) = self.channel.get() {
            // No receiver: nothing to do.
            let _ = tx.send(ev);
        }
    }

    pub fn state(&self, pm_id: u32, name: &str, status: Status, pid: u32, restart_time: u32) {
        if !self.wanted() {
            return;
        }
        self.send(StateEvent {
            pm_id,
            name: name.to_string(),
            status: status.as_str(),
            pid,
            restart_time,
            at: chrono::Utc::now().timestamp_millis(),
        });
    }

    pub fn deleted(&self, pm_id: u32, name: &str, restart_time: u32) {
        if !self.wanted() {
            return;
        }
        self.send(StateEvent {
            pm_id,
            name: name.to_string(),
            status: "deleted",
            pid: 0,
            restart_time,
            at: chrono::Utc::now().timestamp_millis(),
        });
    }
}
