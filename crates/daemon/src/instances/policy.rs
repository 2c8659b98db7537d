//! The restart policy: what happens when a child exits that nobody asked to stop.
//!
//! Pure functions, so the rules of the instance state machine (docs/ARCHITECTURE.md) are
//! unit-tested apart from processes and timers. The instance task (`instance.rs`) applies the
//! decisions.

use pmr_core::spec::AppSpec;

/// PM2's cap for exponential backoff.
pub const BACKOFF_CAP_MS: u64 = 15_000;
/// A run this long resets the backoff delay (PM2's `EXP_BACKOFF_RESET_TIMER`).
pub const BACKOFF_RESET_MS: u64 = 30_000;

/// Counters the policy reads and updates; they live in the instance's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Consecutive runs shorter than `min_uptime`.
    pub unstable_restarts: u32,
    /// The last backoff delay used (0 when backoff is reset).
    pub prev_restart_delay: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitDecision {
    /// `autorestart` off or an exit code listed in `stop_exit_codes`.
    Stop,
    /// Too many consecutive short runs: give up.
    Errored,
    /// Start again after this many milliseconds (0 = at once).
    Restart { delay_ms: u64 },
}

/// Decide what an unrequested exit leads to, updating the counters.
///
/// Unlike PM2, which only counts short runs within `min_uptime × max_restarts` of the app's
/// creation, every run shorter than `min_uptime` counts and a long run resets the count: a crash
/// loop therefore always ends in `errored`, whenever it starts.
pub fn on_unrequested_exit(
    spec: &AppSpec,
    counters: &mut Counters,
    run_ms: u64,
    exit_code: Option<i32>,
) -> ExitDecision {
    if !spec.autorestart {
        return ExitDecision::Stop;
    }
    if let Some(code) = exit_code {
        if spec.stop_exit_codes.contains(&code) {
            return ExitDecision::Stop;
        }
    }
    if run_ms < spec.min_uptime {
        counters.unstable_restarts += 1;
    } else {
        counters.unstable_restarts = 0;
    }
    if counters.unstable_restarts >= spec.max_restarts.max(1) {
        return ExitDecision::Errored;
    }
    if run_ms >= BACKOFF_RESET_MS {
        counters.prev_restart_delay = 0;
    }
    let delay_ms = match spec.exp_backoff_restart_delay {
        Some(base) if base > 0 => {
            let next = if counters.prev_restart_delay == 0 {
                base
            } else {
                ((counters.prev_restart_delay as f64) * 1.5).floor() as u64
            };
            let next = next.min(BACKOFF_CAP_MS.max(base));
            counters.prev_restart_delay = next;
            next
        }
        _ => spec.restart_delay,
    };
    ExitDecision::Restart { delay_ms }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn spec() -> AppSpec {
        pmr_core::spec::test_spec("t")
    }

    #[test]
    fn crash_loop_ends_in_errored_after_max_restarts() {
        let s = spec();
        let mut c = Counters::default();
        for i in 1..16 {
            assert_eq!(
                on_unrequested_exit(&s, &mut c, 100, Some(1)),
                ExitDecision::Restart { delay_ms: 0 },
                "run {i}"
            );
        }
        assert_eq!(
            on_unrequested_exit(&s, &mut c, 100, Some(1)),
            ExitDecision::Errored
        );
    }

    #[test]
    fn a_long_run_resets_the_unstable_count_at_any_age() {
        let s = spec();
        let mut c = Counters::default();
        for _ in 0..10 {
            on_unrequested_exit(&s, &mut c, 100, Some(1));
        }
        assert_eq!(c.unstable_restarts, 10);
        on_unrequested_exit(&s, &mut c, 5_000, Some(1));
        assert_eq!(c.unstable_restarts, 0);
        // A loop that starts late still ends (PM2 would restart forever).
        let mut d = ExitDecision::Stop;
        for _ in 0..16 {
            d = on_unrequested_exit(&s, &mut c, 10, Some(1));
        }
        assert_eq!(d, ExitDecision::Errored);
    }

    #[test]
    fn stop_exit_codes_and_autorestart_off_stop() {
        let mut s = spec();
        s.stop_exit_codes = vec![0, 3];
        let mut c = Counters::default();
        assert_eq!(
            on_unrequested_exit(&s, &mut c, 10, Some(3)),
            ExitDecision::Stop
        );
        assert_eq!(c.unstable_restarts, 0);
        s.autorestart = false;
        assert_eq!(
            on_unrequested_exit(&s, &mut c, 10, Some(1)),
            ExitDecision::Stop
        );
    }

    #[test]
    fn fixed_restart_delay() {
        let mut s = spec();
        s.restart_delay = 250;
        let mut c = Counters::default();
        assert_eq!(
            on_unrequested_exit(&s, &mut c, 5000, Some(1)),
            ExitDecision::Restart { delay_ms: 250 }
        );
    }

    #[test]
    fn backoff_grows_by_one_and_a_half_caps_and_resets() {
        let mut s = spec();
        s.exp_backoff_restart_delay = Some(100);
        s.restart_delay = 999; // backoff wins, as in PM2
        s.max_restarts = 1000;
        let mut c = Counters::default();
        let mut delays = vec![];
        for _ in 0..14 {
            match on_unrequested_exit(&s, &mut c, 10, Some(1)) {
                ExitDecision::Restart { delay_ms } => delays.push(delay_ms),
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(&delays[..5], &[100, 150, 225, 337, 505]);
        assert_eq!(*delays.last().unwrap(), BACKOFF_CAP_MS);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            on_unrequested_exit(&s, &mut c, BACKOFF_RESET_MS, Some(1)),
            ExitDecision::Restart { delay_ms: 100 }
        );
    }
}
