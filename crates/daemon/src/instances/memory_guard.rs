//! `max_memory_restart`: one daemon task checks, every [`CHECK_EVERY`], the memory of the
//! process tree of each online instance that has a limit (the tree as `jlist` measures it, so
//! an `npm start` app is judged by its real server, unlike PM2 which reads the main pid only),
//! and restarts one that stays over its limit for the grace period: a graceful reload in
//! cluster mode, a restart in fork mode (`Ctl::Auto`), with the figures in the history.
//!
//! Without an instance that has a limit, a tick looks at nothing: looking at each of 1,000
//! instances twice a second took 3-6 ms a time on a VM whose idle memory is slow to touch
//! again, most of the daemon's idle CPU. [`Limits::note_spec`] tells the guard a limit may have
//! come; until then it stays idle. The grace (`PMR_MEMORY_GRACE_MS`, a knob checked by the CLI
//! before the daemon starts; default [`DEFAULT_GRACE_MS`]) keeps one short spike from
//! restarting an app.

use crate::instances::history::Why;
use crate::instances::instance::{Ctl, CtlSender, Ctx};
#[cfg(doc)]
use crate::instances::limits::Limits;
use crate::instances::registry::Registry;
use crate::processes::metrics::Sampler;
use pmr_core::protocol::{RestartCause, Status};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often memory is looked at (PM2: every 30 s, `PM2_WORKER_INTERVAL`).
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
pub const DEFAULT_GRACE_MS: u64 = 1000;
const RETRY: Duration = Duration::from_secs(10);

/// An instance seen over its limit.
struct Over {
    pid: u32,
    since: Instant,
    /// When a restart was asked for this process: not again before [`RETRY`] (a cluster
    /// reload whose new worker fails leaves the old one serving, still over the limit).
    asked: Option<Instant>,
}

/// Whether a tick must look at the instances: not while no limit was given since a look that
/// found none.
#[derive(Default)]
struct Idle {
    /// [`Limits::given`] when a look found no instance with a limit.
    none_at: Option<u64>,
}

impl Idle {
    fn must_look(&self, given: u64) -> bool {
        self.none_at != Some(given)
    }

    /// After a look begun when the count was `given`.
    fn looked(&mut self, given: u64, any_limit: bool) {
        self.none_at = (!any_limit).then_some(given);
    }
}

struct Watched {
    id: u32,
    pid: u32,
    limit: u64,
    label: String,
    ctl: CtlSender,
}

/// Start the guard of the instances of `registry`.
pub fn spawn(ctx: Arc<Ctx>, registry: Arc<Mutex<Registry>>) {
    let grace = pmr_core::knobs::get()
        .memory_grace
        .unwrap_or(DEFAULT_GRACE_MS);
    tokio::spawn(run(ctx, registry, Duration::from_millis(grace)));
}

async fn run(ctx: Arc<Ctx>, registry: Arc<Mutex<Registry>>, grace: Duration) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Its own sampler: CPU figures of `jlist` are averages since the previous `jlist`.
    let mut sampler = Some(Sampler::default());
    let mut over: HashMap<u32, Over> = HashMap::new();
    let mut idle = Idle::default();
    loop {
        tick.tick().await;
        if ctx.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        // Read before the look: a limit given during it changes the count, and is looked for.
        let given = ctx.limits.given();
        if !idle.must_look(given) {
            continue;
        }
        let (watched, any_limit) = watched(&registry);
        idle.looked(given, any_limit);
        over.retain(|id, _| watched.iter().any(|w| w.id == *id));
        if watched.is_empty() {
            continue;
        }
        let roots: Vec<u32> = watched.iter().map(|w| w.pid).collect();
        let mut s = sampler.take().unwrap_or_default();
        let Ok((s, usage)) = tokio::task::spawn_blocking(move || {
            let u = s.sample(&roots, false);
            (s, u)
        })
        .await
        else {
            continue;
        };
        sampler = Some(s);
        let now = Instant::now();
        for w in watched {
            let Some(mem) = usage.get(&w.pid).map(|u| u.memory) else {
                continue;
            };
            if mem <= w.limit {
                over.remove(&w.id);
                continue;
            }
            let o = over.entry(w.id).or_insert(Over {
                pid: w.pid,
                since: now,
                asked: None,
            });
            if o.pid != w.pid {
                *o = Over {
                    pid: w.pid,
                    since: now,
                    asked: None,
                };
            }
            let asked_lately = o.asked.is_some_and(|t| now.duration_since(t) < RETRY);
            if asked_lately || now.duration_since(o.since) < grace {
                continue;
            }
            o.asked = Some(now);
            let why = Why::new(RestartCause::Memory, over_limit(mem, w.limit));
            tracing::warn!(
                "App {} is over max_memory_restart for {} ms: {}",
                w.label,
                now.duration_since(o.since).as_millis(),
                why.detail
            );
            let (tx, rx) = tokio::sync::oneshot::channel();
            if w.ctl.send(Ctl::Auto(why, tx)).is_ok() {
                let label = w.label;
                tokio::spawn(async move {
                    if let Ok(Err(e)) = rx.await {
                        tracing::warn!("App {label}: memory restart not done: {e}");
                    }
                });
            }
        }
    }
}

/// Online instances with a limit (in-memory work only, under the table's lock), and whether
/// any instance, online or not, has one.
fn watched(registry: &Mutex<Registry>) -> (Vec<Watched>, bool) {
    let reg = registry.lock().unwrap();
    let mut any_limit = false;
    let watched = reg
        .entries
        .iter()
        .filter_map(|(&id, e)| {
            let s = e.shared.lock().unwrap();
            let limit = s.spec.max_memory_restart.filter(|&l| l > 0)?;
            any_limit = true;
            (s.status == Status::Online && s.pid != 0).then(|| Watched {
                id,
                pid: s.pid,
                limit,
                label: format!("[{}:{id}]", s.spec.name),
                ctl: e.ctl.clone(),
            })
        })
        .collect();
    (watched, any_limit)
}

/// `memory 512.3 MB > 500 MB` (MB = 2^20 bytes, as PM2's `M`).
pub fn over_limit(mem: u64, limit: u64) -> String {
    format!("memory {} > {}", mb(mem, true), mb(limit, false))
}

fn mb(bytes: u64, always_decimal: bool) -> String {
    const MB: u64 = 1 << 20;
    if !always_decimal && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_without_limits_until_one_is_given() {
        let mut idle = Idle::default();
        let limits = crate::instances::limits::Limits::default();
        let given = limits.given();
        assert!(idle.must_look(given), "the first tick looks");
        idle.looked(given, false);
        assert!(!idle.must_look(given), "none found: idle");
        let mut spec = pmr_core::spec::test_spec("guarded");
        limits.note_spec(&spec);
        spec.max_memory_restart = Some(0);
        limits.note_spec(&spec);
        assert_eq!(limits.given(), given, "these two specs have no limit");
        assert!(!idle.must_look(limits.given()));
        spec.max_memory_restart = Some(1 << 20);
        limits.note_spec(&spec);
        let now = limits.given();
        assert!(now > given && idle.must_look(now), "a limit given: look");
        idle.looked(now, true);
        assert!(
            idle.must_look(now),
            "instances with limits: look at every tick"
        );
    }

    #[test]
    fn reason_names_both_figures() {
        assert_eq!(
            over_limit(537_186_713, 500 << 20),
            "memory 512.3 MB > 500 MB"
        );
        assert_eq!(over_limit(3 << 20, 2_500_000), "memory 3.0 MB > 2.4 MB");
    }
}
