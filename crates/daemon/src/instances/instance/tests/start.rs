//! Starting: stopped and errored → launching → online (at once, on readiness, or after
//! `listen_timeout`), and launches that fail.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_fork_app_is_online_as_soon_as_it_is_started() {
    let mut h = Harness::new(spec());
    let a = h.start();
    h.reaches(Status::Launching).await;
    let p = h.launched().await;
    h.reaches(Status::Online).await;
    ok(a).await;
    let s = h.shared();
    assert_eq!((s.pid, s.restart_time), (p.pid, 0));
    // Another start of a running app is answered at once and starts nothing.
    ok(h.start()).await;
    assert!(h.nothing_launched());
}

#[tokio::test(start_paused = true)]
async fn wait_ready_launches_until_ready_and_then_answers_the_start() {
    let mut s = spec();
    s.wait_ready = true;
    let mut h = Harness::new(s);
    let mut a = h.start();
    let p = h.launched().await;
    h.reaches(Status::Launching).await;
    settle().await;
    assert!(pending(&mut a));
    // Listening is not readiness with wait_ready.
    p.listening().await;
    settle().await;
    assert_eq!(h.status(), Status::Launching);
    // A second start waits with the first.
    let b = h.start();
    p.say(IpcEvent::Ready).await;
    h.reaches(Status::Online).await;
    ok(a).await;
    ok(b).await;
}

#[tokio::test(start_paused = true)]
async fn a_launch_never_ready_is_online_after_listen_timeout() {
    let mut s = spec();
    s.wait_ready = true;
    s.listen_timeout = 700;
    let mut h = Harness::new(s);
    let a = h.start();
    let _p = h.launched().await;
    let t0 = Instant::now();
    h.reaches(Status::Online).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(700));
    ok(a).await;
}

#[tokio::test(start_paused = true)]
async fn a_cluster_worker_is_online_once_it_listens() {
    let mut h = Harness::new(cluster());
    let mut a = h.start();
    let p = h.launched().await;
    p.say(IpcEvent::Ready).await;
    settle().await;
    assert!(
        pending(&mut a),
        "'ready' is not readiness without wait_ready"
    );
    p.listening().await;
    h.reaches(Status::Online).await;
    ok(a).await;
}

#[tokio::test(start_paused = true)]
async fn a_launch_that_fails_is_errored_with_its_reason() {
    let mut h = Harness::new(spec());
    h.fake
        .failures
        .lock()
        .unwrap()
        .push_back("cannot start /bin/nope: No such file".into());
    let e = err(h.start()).await;
    assert!(e.contains("No such file"), "{e}");
    assert_eq!(h.status(), Status::Errored);
    assert!(h.shared().last_error.unwrap().contains("No such file"));
    // errored → start → online.
    let p = h.online().await;
    assert_eq!(h.shared().pid, p.pid);
    assert_eq!(h.shared().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn a_process_that_dies_while_launching_fails_the_start_and_follows_the_policy() {
    let mut s = cluster();
    s.autorestart = false;
    let mut h = Harness::new(s);
    let a = h.start();
    let p = h.launched().await;
    p.say(IpcEvent::ListenError(Box::new("EADDRINUSE :3000".into())))
        .await;
    // Read before the exit is seen.
    settle().await;
    p.exit(1);
    let e = err(a).await;
    assert!(
        e.contains("exited with code 1 after EADDRINUSE :3000 before it was ready"),
        "{e}"
    );
    h.reaches(Status::Stopped).await;
    assert_eq!(h.shared().exit_code, Some(1));
}
