//! Reload: the new process is ready before the old one is retired; a new one that dies
//! leaves the old one serving; a stop aborts the reload.

use super::*;

#[tokio::test(start_paused = true)]
async fn reload_starts_the_new_process_before_it_retires_the_old_one() {
    let mut h = Harness::new(cluster());
    let mut old = h.online().await;
    let mut a = h.reload();
    let new = h.launched().await;
    settle().await;
    assert!(
        old.no_signal_yet(),
        "the old one serves until the new one is ready"
    );
    assert!(pending(&mut a));
    assert_eq!((h.status(), h.shared().pid), (Status::Online, old.pid));
    new.listening().await;
    assert_eq!(old.signal().await, Signal::SIGINT);
    ok(a).await;
    let s = h.shared();
    assert_eq!(
        (s.status, s.pid, s.restart_time),
        (Status::Online, new.pid, 1)
    );
    assert_eq!(h.causes(), [RestartCause::Reload]);
}

#[tokio::test(start_paused = true)]
async fn a_reload_answers_once_the_old_process_is_gone() {
    let mut s = cluster();
    s.kill_timeout = 900;
    let mut h = Harness::new(s);
    let mut old = h.online().await;
    old.ignore_stop_signals();
    let a = h.reload();
    let new = h.launched().await;
    new.listening().await;
    let t0 = Instant::now();
    assert_eq!(old.signal().await, Signal::SIGINT);
    assert_eq!(old.signal().await, Signal::SIGKILL);
    ok(a).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(900));
    assert_eq!(h.shared().pid, new.pid);
}

#[tokio::test(start_paused = true)]
async fn a_new_process_that_dies_before_it_is_ready_leaves_the_old_one_serving() {
    let mut h = Harness::new(cluster());
    let mut old = h.online().await;
    let a = h.reload();
    let new = h.launched().await;
    new.exit(1);
    let e = err(a).await;
    assert!(
        e.contains(
            "the new process exited with code 1 before it was ready; the old one keeps serving"
        ),
        "{e}"
    );
    assert!(old.no_signal_yet());
    let s = h.shared();
    assert_eq!(
        (s.status, s.pid, s.restart_time),
        (Status::Online, old.pid, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_reload_aborts_it_and_stops_both_in_one_kill_timeout() {
    let mut s = cluster();
    s.kill_timeout = 600;
    let mut h = Harness::new(s);
    let mut old = h.online().await;
    old.ignore_stop_signals();
    let a = h.reload();
    let mut new = h.launched().await;
    new.ignore_stop_signals();
    let t0 = Instant::now();
    let b = h.stop();
    assert_eq!(old.signal().await, Signal::SIGINT);
    assert_eq!(new.signal().await, Signal::SIGINT);
    assert_eq!(old.signal().await, Signal::SIGKILL);
    assert_eq!(new.signal().await, Signal::SIGKILL);
    assert_eq!(err(a).await, "reload aborted by a stop");
    ok(b).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(600));
    assert_eq!(h.status(), Status::Stopped);
}

#[tokio::test(start_paused = true)]
async fn other_messages_wait_until_the_reload_is_done() {
    let mut h = Harness::new(cluster());
    let _old = h.online().await;
    let a = h.reload();
    let new = h.launched().await;
    let mut b = h.send(Ctl::Reset);
    settle().await;
    assert!(pending(&mut b), "a reset waits for the swap");
    new.listening().await;
    ok(a).await;
    ok(b).await;
}

#[tokio::test(start_paused = true)]
async fn reload_in_fork_mode_is_a_restart() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    let a = h.reload();
    assert_eq!(p.signal().await, Signal::SIGINT);
    h.reaches(Status::Stopped).await;
    let q = h.launched().await;
    ok(a).await;
    assert_eq!(h.shared().pid, q.pid);
}
