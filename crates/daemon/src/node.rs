//! What pmr speaks with Node apps: the IPC channel and cluster protocol ([`ipc`]), the
//! sockets cluster workers share, @pm2/io messages, and the preloads (drain, rejections).

pub mod axm;
pub mod balance;
pub mod channel;
pub mod cluster;
pub mod drain;
pub mod ipc;
pub mod rejections;
