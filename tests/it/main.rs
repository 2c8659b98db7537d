//! Integration tests: the real `pmr` binary, a temporary `PMR_HOME` per test, real apps from
//! `tests/fixtures/`, loopback only.

mod support;

mod cluster;
mod daemon;
mod ecosystem;
mod apps;
mod errors;
mod frameworks;
mod fork;
mod load;
mod logs;
mod node_apps;
mod restart_policy;
mod sockets;
mod stop;
