//! Surviving the daemon: the process table on disk, a new daemon restoring a dead one's
//! table, and the processes the dead one left.

pub mod leftovers;
pub mod recover;
pub mod table_file;
