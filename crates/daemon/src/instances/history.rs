//! Each instance's restart history: the last [`MAX`] restarts with their cause, figures and
//! the uptime of the process they replaced ("why did my app restart at 3 a.m.?").
//! Kept in the instance's `Shared` state; bounded, so an app in a crash loop costs nothing more.

use pmr_core::protocol::{RestartCause, RestartRecord};
use std::collections::VecDeque;

/// How many restarts each instance remembers.
pub const MAX: usize = 10;

/// Why a restart happens, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub cause: RestartCause,
    pub detail: String,
}

impl Why {
    pub fn new(cause: RestartCause, detail: impl Into<String>) -> Why {
        Why {
            cause,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.cause.as_str())
        } else {
            write!(f, "{} ({})", self.cause.as_str(), self.detail)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct History(VecDeque<RestartRecord>);

impl History {
    pub fn push(&mut self, at: i64, why: Why, uptime_ms: u64) {
        if self.0.len() == MAX {
            self.0.pop_front();
        }
        self.0.push_back(RestartRecord {
            at,
            cause: why.cause,
            detail: why.detail,
            uptime_ms,
        });
    }

    /// Oldest first.
    pub fn records(&self) -> Vec<RestartRecord> {
        self.0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_max_restarts() {
        let mut h = History::default();
        for i in 0..(MAX as i64 + 5) {
            h.push(i, Why::new(RestartCause::Crash, format!("#{i}")), 7);
        }
        let r = h.records();
        assert_eq!(r.len(), MAX);
        assert_eq!(r[0].at, 5);
        assert_eq!(r[MAX - 1].detail, format!("#{}", MAX + 4));
        assert_eq!(
            Why::new(RestartCause::Memory, "memory 1 MB > 0.5 MB").to_string(),
            "memory (memory 1 MB > 0.5 MB)"
        );
    }
}
