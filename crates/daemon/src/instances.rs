//! The managed instances: each one's task and state machine ([`instance`]), the table of all
//! of them ([`registry`]) and that table on disk ([`table_file`]), the restart policy and
//! history, what restarts an instance on its own (cron, memory), with the state events live
//! watchers follow, and how running instances cross `update`'s exec ([`handoff`]).

pub mod cron;
pub mod events;
pub mod handoff;
pub mod history;
pub mod instance;
pub mod limits;
pub mod memory_guard;
pub mod policy;
pub mod registry;
pub mod table_file;
