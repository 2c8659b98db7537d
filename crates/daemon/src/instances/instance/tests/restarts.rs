//! Restarts: a user's, and those pmr makes on its own (cron, watch, memory), also while a
//! launch is under way.

use super::*;

#[tokio::test(start_paused = true)]
async fn restart_of_a_stopped_app_starts_it() {
    let mut h = Harness::new(spec());
    let mut p = h.online().await;
    let a = h.stop();
    assert_eq!(p.signal().await, Signal::SIGINT);
    ok(a).await;
    let a = h.restart();
    let q = h.launched().await;
    ok(a).await;
    let s = h.shared();
    assert_eq!(
        (s.status, s.pid, s.restart_time),
        (Status::Online, q.pid, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn restart_stops_then_starts_and_forgets_earlier_crashes() {
    let mut h = Harness::new(spec());
    let p = h.online().await;
    p.exit(1);
    let mut p = h.launched().await;
    h.reaches(Status::Online).await;
    assert_eq!(h.shared().counters.unstable_restarts, 1);
    let a = h.restart();
    assert_eq!(p.signal().await, Signal::SIGINT);
    h.reaches(Status::Stopped).await;
    let q = h.launched().await;
    ok(a).await;
    let s = h.shared();
    assert_eq!((s.pid, s.restart_time), (q.pid, 2));
    assert_eq!(s.counters.unstable_restarts, 0);
    assert_eq!(h.causes(), [RestartCause::Crash, RestartCause::Restart]);
}

#[tokio::test(start_paused = true)]
async fn automatic_restarts_are_refused_when_nothing_runs() {
    let h = Harness::new(spec());
    assert_eq!(
        err(h.auto(RestartCause::Memory)).await,
        "process is not running"
    );
    assert_eq!(h.status(), Status::Stopped);
}

/// A restart pmr makes on its own cuts a launch short: the `start` waiting for that launch is
/// answered at once (the app was started), not handed to the next launch.
#[tokio::test(start_paused = true)]
async fn an_automatic_restart_during_a_launch_answers_the_waiting_start() {
    for cause in [
        RestartCause::Cron,
        RestartCause::Watch,
        RestartCause::Memory,
    ] {
        let mut h = Harness::new(cluster());
        let a = h.start();
        let mut p = h.launched().await;
        let mut b = h.auto(cause);
        assert_eq!(p.signal().await, Signal::SIGINT);
        ok(a).await;
        let q = h.launched().await;
        settle().await;
        assert!(pending(&mut b), "answered once the new process is ready");
        q.listening().await;
        ok(b).await;
        assert_eq!(h.causes(), [cause]);
    }
}

/// A user's restart or reload cuts a launch short: the waiting `start` is answered by the next
/// launch, when it is ready.
#[tokio::test(start_paused = true)]
async fn a_users_restart_during_a_launch_hands_the_waiting_start_to_the_next_launch() {
    for reload in [false, true] {
        let mut h = Harness::new(cluster());
        let mut a = h.start();
        let mut p = h.launched().await;
        let mut b = if reload { h.reload() } else { h.restart() };
        assert_eq!(p.signal().await, Signal::SIGINT);
        let q = h.launched().await;
        settle().await;
        assert!(pending(&mut a) && pending(&mut b));
        q.listening().await;
        ok(a).await;
        ok(b).await;
        assert_eq!(h.shared().pid, q.pid);
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_breaks_the_cluster_protocol_is_restarted() {
    let mut h = Harness::new(cluster());
    let a = h.start();
    let mut p = h.launched().await;
    p.say(IpcEvent::Garbage(Box::new("{not json".into()))).await;
    assert_eq!(p.signal().await, Signal::SIGINT);
    assert_eq!(
        err(a).await,
        "broke the cluster protocol before it was ready"
    );
    let q = h.launched().await;
    q.listening().await;
    h.reaches(Status::Online).await;
    assert_eq!(h.causes(), [RestartCause::Crash]);
}
