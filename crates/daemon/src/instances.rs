//! The managed instances: each one's task and state machine ([`instance`]), the table of all
//! of them ([`registry`]), the restart policy and history, and what restarts an instance on
//! its own (cron, memory), with the state events live watchers follow.

pub mod cron;
pub mod events;
pub mod history;
pub mod instance;
pub mod limits;
pub mod memory_guard;
pub mod policy;
pub mod registry;
