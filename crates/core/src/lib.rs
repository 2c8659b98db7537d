//! What the CLI and the daemon share: the protocol between them, the app spec, the home's
//! layout, PM2's knobs, `/proc` readings and the small formats both sides read and write. It
//! imports nothing of the other pmr crates.

pub mod atomic_file;
pub mod conf;
pub mod cron;
pub mod dayjs;
pub mod dump;
pub mod env_map;
pub mod foreign;
pub mod knobs;
pub mod paths;
pub mod personality;
pub mod procfs;
pub mod protocol;
pub mod spec;
pub mod tail;
