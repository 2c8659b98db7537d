//! An instance's `cron_restart` timer. It lives in the instance's task (so it follows option
//! patches and renames, and ends with a delete) and is polled beside its other events.
//!
//! The next run is kept as a wall-clock time: the task sleeps at most [`RECHECK`] at a time and
//! compares with the clock again, so a clock change (NTP, suspend) moves runs with it.

use chrono::{DateTime, Local};
use std::time::Duration;

/// The longest sleep before the wall clock is looked at again.
const RECHECK: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Timer {
    pattern: Option<String>,
    cron: Option<croner::Cron>,
    next: Option<DateTime<Local>>,
}

impl Timer {
    /// Resolves when `pattern` is due (never without one). Cancel-safe: the next run is kept
    /// when the future is dropped, and recomputed only after a run or a new pattern.
    pub async fn due(&mut self, pattern: Option<&str>) {
        if self.pattern.as_deref() != pattern {
            self.pattern = pattern.map(str::to_string);
            self.next = None;
            self.cron = match pattern.map(pmr_core::cron::parse) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    // The CLI checked it; a spec from elsewhere (an old dump) may not be.
                    tracing::error!("cron_restart {:?} ignored: {e}", pattern.unwrap_or(""));
                    None
                }
                None => None,
            };
        }
        let Some(cron) = &self.cron else {
            return std::future::pending().await;
        };
        loop {
            let next = match self.next {
                Some(n) => n,
                None => match pmr_core::cron::next_after(cron, &Local::now()) {
                    Some(n) => *self.next.insert(n),
                    None => return std::future::pending().await,
                },
            };
            let left = (next - Local::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(left.min(RECHECK)).await;
            if Local::now() >= next {
                self.next = None;
                return;
            }
        }
    }
}
