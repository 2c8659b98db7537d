//! The restart policy stage: when the app is (re)started and how it is stopped, with PM2's
//! defaults (the option table words the same ones).

use crate::raw_app::PolicyOpts;

pub(super) struct Policy {
    pub autorestart: bool,
    pub autostart: bool,
    pub restart_delay: u64,
    pub exp_backoff_restart_delay: Option<u64>,
    pub max_restarts: u32,
    pub min_uptime: u64,
    pub stop_exit_codes: Vec<i32>,
    pub kill_timeout: u64,
    pub listen_timeout: u64,
    pub wait_ready: bool,
    pub shutdown_with_message: bool,
    pub treekill: bool,
    pub cron_restart: Option<String>,
    pub max_memory_restart: Option<u64>,
}

pub(super) fn resolve(opts: PolicyOpts) -> Policy {
    Policy {
        autorestart: opts.autorestart.unwrap_or(true),
        autostart: opts.autostart.unwrap_or(true),
        restart_delay: opts.restart_delay.unwrap_or(0),
        // 0 is off.
        exp_backoff_restart_delay: opts.exp_backoff_restart_delay.filter(|&d| d > 0),
        max_restarts: opts.max_restarts.unwrap_or(16),
        min_uptime: opts.min_uptime.unwrap_or(1000),
        stop_exit_codes: opts.stop_exit_codes.unwrap_or_default(),
        kill_timeout: opts.kill_timeout.unwrap_or(1600),
        listen_timeout: opts.listen_timeout.unwrap_or(3000),
        wait_ready: opts.wait_ready.unwrap_or(false),
        shutdown_with_message: opts.shutdown_with_message.unwrap_or(false),
        treekill: opts.treekill.unwrap_or(true),
        cron_restart: opts.cron_restart,
        max_memory_restart: opts.max_memory_restart,
    }
}
