//! Exits nobody asked for: the restart policy (immediate restart, `restart_delay`, backoff,
//! `stop_exit_codes`, `autorestart: false`, the crash loop that ends in errored).

use super::*;

#[tokio::test(start_paused = true)]
async fn an_exit_restarts_at_once_by_default() {
    let mut h = Harness::new(spec());
    let p = h.online().await;
    p.exit(1);
    let q = h.launched().await;
    h.reaches(Status::Online).await;
    let s = h.shared();
    assert_eq!((s.pid, s.restart_time, s.exit_code), (q.pid, 1, Some(1)));
    assert_eq!(
        s.counters.unstable_restarts, 1,
        "a run shorter than min_uptime"
    );
    assert_eq!(h.causes(), [RestartCause::Crash]);
}

#[tokio::test(start_paused = true)]
async fn autorestart_off_and_stop_exit_codes_stop() {
    let mut s = spec();
    s.stop_exit_codes = vec![3];
    let mut h = Harness::new(s);
    let p = h.online().await;
    p.exit(3);
    h.reaches(Status::Stopped).await;
    settle().await;
    assert!(h.nothing_launched());

    let mut s = spec();
    s.autorestart = false;
    let mut h = Harness::new(s);
    let p = h.online().await;
    p.exit(1);
    h.reaches(Status::Stopped).await;
    settle().await;
    assert!(h.nothing_launched());
    assert_eq!(h.shared().exit_code, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_ends_in_errored_after_max_restarts_short_runs() {
    let mut s = spec();
    s.max_restarts = 3;
    let mut h = Harness::new(s);
    let mut p = h.online().await;
    for run in 1..3 {
        p.exit(1);
        p = h.launched().await;
        h.reaches(Status::Online).await;
        assert_eq!(h.shared().counters.unstable_restarts, run);
    }
    p.exit(1);
    h.reaches(Status::Errored).await;
    let s = h.shared();
    assert_eq!(s.restart_time, 2);
    assert!(s
        .last_error
        .unwrap()
        .starts_with("3 consecutive runs shorter than min_uptime (1000 ms)"),);
    settle().await;
    assert!(h.nothing_launched());
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_min_uptime_resets_the_unstable_count() {
    let mut s = spec();
    s.max_restarts = 2;
    let mut h = Harness::new(s);
    let p = h.online().await;
    p.exit(1);
    let p = h.launched().await;
    h.reaches(Status::Online).await;
    assert_eq!(h.shared().counters.unstable_restarts, 1);
    tokio::time::advance(Duration::from_millis(1000)).await;
    p.exit(1);
    let _p = h.launched().await;
    h.reaches(Status::Online).await;
    assert_eq!(h.shared().counters.unstable_restarts, 0);
}

#[tokio::test(start_paused = true)]
async fn restart_delay_waits_then_launches_with_restart_time_plus_one() {
    let mut s = spec();
    s.restart_delay = 500;
    let mut h = Harness::new(s);
    let p = h.online().await;
    let t0 = Instant::now();
    p.exit(1);
    h.reaches(Status::WaitingRestart).await;
    let _q = h.launched().await;
    assert_eq!(t0.elapsed(), Duration::from_millis(500));
    h.reaches(Status::Online).await;
    assert_eq!(h.shared().restart_time, 1);
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_grows_by_half_each_short_run() {
    let mut s = spec();
    s.exp_backoff_restart_delay = Some(100);
    let mut h = Harness::new(s);
    let mut p = h.online().await;
    let mut delays = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        p.exit(1);
        p = h.launched().await;
        delays.push(t0.elapsed().as_millis());
        h.reaches(Status::Online).await;
    }
    assert_eq!(delays, [100, 150, 225]);
    assert_eq!(h.shared().counters.prev_restart_delay, 225);
    // 30 s up: the backoff starts again from its base.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let t0 = Instant::now();
    p.exit(1);
    let _p = h.launched().await;
    assert_eq!(t0.elapsed(), Duration::from_millis(100));
    h.reaches(Status::Online).await;
}

#[tokio::test(start_paused = true)]
async fn reset_of_a_waiting_restart_restarts_at_once() {
    let mut s = spec();
    s.restart_delay = 60_000;
    let mut h = Harness::new(s);
    let p = h.online().await;
    p.exit(1);
    h.reaches(Status::WaitingRestart).await;
    let t0 = Instant::now();
    ok(h.send(Ctl::Reset)).await;
    let _q = h.launched().await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    h.reaches(Status::Online).await;
    // The counters of `pmr reset` went, and this start counts again.
    assert_eq!(h.shared().restart_time, 1);
}

#[tokio::test(start_paused = true)]
async fn an_exit_while_the_daemon_shuts_down_is_not_restarted() {
    let mut h = Harness::new(spec());
    let p = h.online().await;
    h.ctx.shutting_down.store(true, Ordering::SeqCst);
    p.exit(1);
    h.reaches(Status::Stopped).await;
    settle().await;
    assert!(h.nothing_launched());
}
