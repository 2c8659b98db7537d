//! pmr: a PM2-compatible process manager. This package is the CLI and the binary (`main.rs` is
//! a thin entry point); the layers below it are crates of their own: `pmr-core` (what the CLI
//! and the daemon share), `pmr-config`, `pmr-render` and `pmr-daemon`.

pub mod cli;
pub mod client;
pub mod monit;
pub mod serve;
