//! PM2's own daemon protocol, served beside pmr's, so that what is built on PM2 works unchanged:
//! `require('pm2')` scripts, PM2 modules, bus notifiers and exporters.
//!
//! - `rpc`: an axon `req`/`rep` connection on `rpc.sock` (the server tells it from a pmr CLI by
//!   its first byte), its calls answered by `methods` with the daemon's own handlers.
//! - `events`: feeds PM2's bus (`pub.sock`, `crate::bus`) with PM2's messages.
//! - `payload`: processes as PM2's replies and messages show them.

pub mod events;
mod methods;
pub mod payload;
pub mod rpc;
