//! Integration tests: the real `pmr` binary, a temporary `PMR_HOME` per test, real apps from
//! `tests/fixtures/`, loopback only.

mod support;

mod apps;
mod auto;
mod axm;
mod balancing;
mod cluster;
mod cluster_shared;
mod daemon;
mod dashboard;
mod ecosystem;
mod errors;
mod fork;
mod frameworks;
mod http_api;
mod knobs;
mod limits;
mod load;
mod logs;
mod modules;
mod monit;
mod node_apps;
mod persist;
mod pm2_cli;
mod pm2_diff;
mod pm2_env;
mod pm2_library;
mod pm2_modules;
mod recovery;
mod report;
mod restart_policy;
mod runtime;
mod scale;
mod select;
mod serve;
mod sockets;
mod stdin;
mod stop;
mod update;
mod watch;
mod webdriver;
