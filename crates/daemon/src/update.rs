//! `pmr update`: the daemon replaces its binary in place (the request), handing its processes'
//! fds over the exec (the handoff file, `instances/handoff.rs`).

pub mod request;
