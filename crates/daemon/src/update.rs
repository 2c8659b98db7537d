//! `pmr update`: the daemon replaces its binary in place (the request) and hands its processes'
//! fds over the exec (the handoff file).

pub mod handoff;
pub mod request;
