//! The operating system's side of an app: spawning it, holding and reaping it, its stdin, its
//! `$NOTIFY_SOCKET` messages, and reading its tree's usage from /proc.

pub mod child;
pub mod handle;
pub mod metrics;
pub mod notify;
pub mod reaper;
pub mod scan;
pub mod spawn;
pub mod stdin;
pub mod tree;
