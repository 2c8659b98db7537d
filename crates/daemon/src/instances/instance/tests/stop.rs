//! Stopping: from online, launching or a waiting restart → stopping → stopped; SIGKILL after
//! `kill_timeout`; a stop jumping the queue; delete, scale down, signals.

use super::*;

#[tokio::test(start_paused = true)]
async fn stop_sends_the_stop_signal_and_answers_once_the_process_is_gone() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    let a = h.stop();
    h.reaches(Status::Stopping).await;
    assert_eq!(p.signal().await, Signal::SIGINT);
    h.reaches(Status::Stopped).await;
    ok(a).await;
    let s = h.shared();
    assert_eq!((s.pid, s.exit_code), (0, None), "killed by SIGINT: no code");
    assert_eq!(h.ctx.sigkills.load(Ordering::SeqCst), 0);
    // Stopped, it stays so.
    settle().await;
    assert!(h.nothing_launched());
}

#[tokio::test(start_paused = true)]
async fn stop_escalates_to_sigkill_after_kill_timeout() {
    let mut s = spec();
    s.kill_timeout = 800;
    let mut h = Harness::new(s);
    let mut p = h.online().await;
    p.ignore_stop_signals();
    let t0 = Instant::now();
    let a = h.stop();
    assert_eq!(p.signal().await, Signal::SIGINT);
    assert_eq!(p.signal().await, Signal::SIGKILL);
    assert_eq!(t0.elapsed(), Duration::from_millis(800));
    ok(a).await;
    assert_eq!(h.status(), Status::Stopped);
    assert_eq!(h.ctx.sigkills.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_process_that_exits_at_the_stop_signal_gets_no_sigkill() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    p.ignore_stop_signals();
    let a = h.stop();
    assert_eq!(p.signal().await, Signal::SIGINT);
    tokio::time::advance(Duration::from_millis(100)).await;
    p.exit(0);
    ok(a).await;
    assert!(p.no_signal_yet(), "SIGKILL after it exited");
    assert_eq!(h.shared().exit_code, Some(0));
}

#[tokio::test(start_paused = true)]
async fn stop_while_launching_fails_the_waiting_start() {
    let mut h = Harness::new(cluster());
    let a = h.start();
    let mut p = h.launched().await;
    let b = h.stop();
    assert_eq!(p.signal().await, Signal::SIGINT);
    assert_eq!(err(a).await, "stopped before it was ready");
    ok(b).await;
    assert_eq!(h.status(), Status::Stopped);
}

#[tokio::test(start_paused = true)]
async fn stop_of_a_waiting_restart_cancels_it() {
    let mut s = spec();
    s.restart_delay = 1000;
    let mut h = Harness::new(s);
    let p = h.online().await;
    p.exit(1);
    h.reaches(Status::WaitingRestart).await;
    ok(h.stop()).await;
    assert_eq!(h.status(), Status::Stopped);
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert!(h.nothing_launched());
}

#[tokio::test(start_paused = true)]
async fn delete_stops_the_process_and_ends_the_task() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    let a = h.send(Ctl::Delete);
    assert_eq!(p.signal().await, Signal::SIGINT);
    ok(a).await;
    assert!(h.shared().leaving);
    within(&mut h.task).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_scale_down_retires_the_worker_and_ends_the_task() {
    let mut h = Harness::new(cluster());
    let mut p = h.online().await;
    let a = h.send(Ctl::Retire);
    assert_eq!(p.signal().await, Signal::SIGINT);
    ok(a).await;
    assert_eq!(h.status(), Status::Stopped);
    within(&mut h.task).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_signal_goes_to_the_process_and_is_refused_when_none_runs() {
    let mut h = Harness::new(spec());
    let e = err(h.send(|r| Ctl::Signal(libc::SIGUSR2, r))).await;
    assert_eq!(e, "process is not running");
    let mut p = h.online().await;
    ok(h.send(|r| Ctl::Signal(libc::SIGUSR2, r))).await;
    assert_eq!(p.signal().await, Signal::SIGUSR2);
    assert_eq!(h.status(), Status::Online);
}

#[tokio::test(start_paused = true)]
async fn a_stop_queued_behind_others_cancels_the_restarts_sent_before_it() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    // Queued while the task is busy with the first restart's stop.
    p.ignore_stop_signals();
    let first = h.restart();
    assert_eq!(p.signal().await, Signal::SIGINT);
    let second = h.restart();
    let stop = h.stop();
    p.exit(0);
    let q = h.launched().await;
    ok(first).await;
    let e = err(second).await;
    assert_eq!(e, "cancelled by a stop sent after it");
    ok(stop).await;
    assert_eq!(h.status(), Status::Stopped);
    drop(q);
}
