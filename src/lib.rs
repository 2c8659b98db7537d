//! pmr: a PM2-compatible process manager. The binary (`main.rs`) is a thin entry point; the CLI
//! and the daemon both live in this library so integration tests and benches can share types.

pub mod atomic_file;
pub mod cli;
pub mod client;
pub mod conf;
pub mod config;
pub mod cron;
pub mod daemon;
pub mod dayjs;
pub mod dump;
pub mod env_map;
pub mod foreign;
pub mod knobs;
pub mod monit;
pub mod paths;
pub mod personality;
pub mod procfs;
pub mod protocol;
pub mod render;
pub mod serve;
pub mod spec;
pub mod tail;
