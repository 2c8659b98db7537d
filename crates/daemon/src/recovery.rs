//! Surviving the daemon: a new daemon restoring the table a dead one left on disk
//! (`instances/table_file.rs`), and the processes the dead one left.

pub mod leftovers;
pub mod recover;
