//! The instance state machine against fake processes (as watchexec's `job/test.rs`): every
//! transition of the state table in ARCHITECTURE ("The instance state machine"), the restart
//! policy, reload ordering and the stop sequence, on tokio's paused clock, so timers fire at
//! once and durations are exact. No process is started.

use super::*;
use crate::instances::events::StateEvent;
use crate::processes::handle::BoxFuture;
use pmr_core::spec::ExecMode;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::AtomicU32;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, oneshot};

/// Long enough never to fire while the state machine has something to do: a test that waits
/// for what does not happen fails at once (the paused clock jumps there).
const NEVER: Duration = Duration::from_secs(3600);

/// The test's side of one fake process.
struct FakeProc {
    pid: u32,
    /// Makes it exit.
    exit: mpsc::UnboundedSender<ExitStatus>,
    /// What it "says" on its IPC channel.
    events: mpsc::Sender<IpcEvent>,
    /// The signals it got, in order.
    signals: mpsc::UnboundedReceiver<Signal>,
    /// Whether SIGINT and SIGTERM end it (SIGKILL always does).
    obeys: Arc<AtomicBool>,
}

impl FakeProc {
    fn exit(&self, code: i32) {
        self.exit.send(ExitStatus::from_raw(code << 8)).unwrap();
    }

    fn ignore_stop_signals(&self) {
        self.obeys.store(false, Ordering::SeqCst);
    }

    async fn say(&self, ev: IpcEvent) {
        self.events.send(ev).await.unwrap();
    }

    async fn listening(&self) {
        self.say(IpcEvent::Listening { port: 3000 }).await;
    }

    async fn signal(&mut self) -> Signal {
        within(self.signals.recv())
            .await
            .expect("the process is gone")
    }

    fn no_signal_yet(&mut self) -> bool {
        self.signals.try_recv().is_err()
    }
}

/// The instance's side of one fake process.
struct FakeChild {
    pid: u32,
    exits: mpsc::UnboundedReceiver<ExitStatus>,
    /// Its own way to die of a signal.
    die: mpsc::UnboundedSender<ExitStatus>,
    status: Option<ExitStatus>,
    signals: mpsc::UnboundedSender<Signal>,
    obeys: Arc<AtomicBool>,
}

impl Process for FakeChild {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<ExitStatus>> {
        if let Some(st) = self.status {
            return Poll::Ready(Ok(st));
        }
        match self.exits.poll_recv(cx) {
            Poll::Ready(Some(st)) => {
                self.status = Some(st);
                Poll::Ready(Ok(st))
            }
            // It holds a sender itself: the channel never ends.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    fn signal(&self, sig: Signal) -> nix::Result<()> {
        let _ = self.signals.send(sig);
        let stops = matches!(sig, Signal::SIGINT | Signal::SIGTERM);
        if sig == Signal::SIGKILL || (stops && self.obeys.load(Ordering::SeqCst)) {
            let _ = self.die.send(ExitStatus::from_raw(sig as i32));
        }
        Ok(())
    }

    fn signal_tree(&mut self, sig: Option<Signal>, _treekill: bool) -> BoxFuture<'_, ()> {
        if let Some(sig) = sig {
            let _ = Process::signal(self, sig);
        }
        Box::pin(async {})
    }

    fn tree_alive(&self) -> BoxFuture<'static, bool> {
        Box::pin(async { false })
    }
}

/// Launches fake processes and hands the test its side of each.
struct Fake {
    launched: mpsc::UnboundedSender<FakeProc>,
    next_pid: AtomicU32,
    /// The next launches fail with these errors.
    failures: Mutex<VecDeque<String>>,
}

impl Launcher for Fake {
    fn launch<'a>(
        &'a self,
        _ctx: &'a Ctx,
        _app: App<'a>,
    ) -> BoxFuture<'a, Result<Started, String>> {
        Box::pin(async move {
            if let Some(e) = self.failures.lock().unwrap().pop_front() {
                return Err(e);
            }
            let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
            let (exit, exits) = mpsc::unbounded_channel();
            let (events_tx, events) = mpsc::channel(8);
            let (signals_tx, signals) = mpsc::unbounded_channel();
            let obeys = Arc::new(AtomicBool::new(true));
            let _ = self.launched.send(FakeProc {
                pid,
                exit: exit.clone(),
                events: events_tx,
                signals,
                obeys: obeys.clone(),
            });
            Ok(Started {
                process: Box::new(FakeChild {
                    pid,
                    exits,
                    die: exit,
                    status: None,
                    signals: signals_tx,
                    obeys,
                }),
                ipc: None,
                events: Some(events),
                axm: None,
                held: Held::default(),
            })
        })
    }
}

type Answer = oneshot::Receiver<Result<(), String>>;

/// One instance task on the fake launcher, with its state events.
struct Harness {
    ctl: CtlSender,
    shared: Arc<Mutex<Shared>>,
    ctx: Arc<Ctx>,
    fake: Arc<Fake>,
    launched: mpsc::UnboundedReceiver<FakeProc>,
    events: broadcast::Receiver<StateEvent>,
    task: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spec() -> AppSpec {
    pmr_core::spec::test_spec("app")
}

fn cluster() -> AppSpec {
    let mut s = spec();
    s.exec_mode = ExecMode::Cluster;
    s
}

impl Harness {
    fn new(spec: AppSpec) -> Harness {
        static DIRS: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pmr-instance-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let home = pmr_core::paths::Home::named(dir.clone(), pmr_core::personality::current());
        let (launched_tx, launched) = mpsc::unbounded_channel();
        let fake = Arc::new(Fake {
            launched: launched_tx,
            next_pid: AtomicU32::new(1000),
            failures: Mutex::default(),
        });
        let ctx = Arc::new(Ctx {
            own: crate::watch::OwnFiles::new(&home),
            sinks: Arc::default(),
            shutting_down: AtomicBool::new(false),
            listeners: Arc::default(),
            next_worker: AtomicU64::new(1),
            preload: None,
            notify: Arc::default(),
            notify_path: None,
            table: Arc::new(crate::instances::table_file::TableWriter::new(
                dir.join("table.json"),
            )),
            launcher: fake.clone(),
            ended: AtomicU64::new(0),
            sigkills: AtomicU64::new(0),
            limits: Arc::default(),
            events: Arc::default(),
            stdin: Arc::default(),
            home,
        });
        let file = |n: &str| -> Arc<str> { dir.join(n).to_string_lossy().into() };
        let paths = Paths {
            out: file("out.log"),
            err: file("err.log"),
            combined: None,
            pid: file("app.pid"),
        };
        let shared = Arc::new(Mutex::new(Shared::new(
            Arc::new(spec),
            0,
            Status::Stopped,
            Default::default(),
            paths,
        )));
        // Before the task runs: events are only made while someone listens.
        let events = ctx.events.subscribe();
        let (ctl, rx) = channel();
        let instance = Instance {
            id: 0,
            shared: shared.clone(),
            ctx: ctx.clone(),
        };
        let task = tokio::spawn(instance.run(rx));
        Harness {
            ctl,
            shared,
            ctx,
            fake,
            launched,
            events,
            task,
            dir,
        }
    }

    fn send(&self, make: impl FnOnce(Reply) -> Ctl) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(make(tx)).unwrap();
        rx
    }

    fn start(&self) -> Answer {
        self.send(Ctl::Start)
    }

    fn stop(&self) -> Answer {
        self.send(Ctl::Stop)
    }

    fn restart(&self) -> Answer {
        self.send(|reply| Ctl::Restart {
            update: Update::default(),
            reply,
        })
    }

    fn reload(&self) -> Answer {
        self.send(|reply| Ctl::Reload {
            update: Update::default(),
            reply,
        })
    }

    /// A restart pmr makes on its own (cron, watch and memory send this or act alike).
    fn auto(&self, cause: RestartCause) -> Answer {
        self.send(|reply| Ctl::Auto(Why::new(cause, "test"), reply))
    }

    async fn launched(&mut self) -> FakeProc {
        within(self.launched.recv()).await.unwrap()
    }

    fn nothing_launched(&mut self) -> bool {
        self.launched.try_recv().is_err()
    }

    /// Wait for the instance to enter `status` (a state event).
    async fn reaches(&mut self, status: Status) {
        within(async {
            loop {
                let ev = self.events.recv().await.unwrap();
                if ev.status == status.as_str() {
                    return;
                }
            }
        })
        .await
    }

    /// Start the app and see it online (a cluster worker once it listens).
    async fn online(&mut self) -> FakeProc {
        let a = self.start();
        let p = self.launched().await;
        if self.shared().spec.exec_mode == ExecMode::Cluster {
            p.listening().await;
        }
        self.reaches(Status::Online).await;
        ok(a).await;
        p
    }

    fn shared(&self) -> Shared {
        self.shared.lock().unwrap().clone()
    }

    fn status(&self) -> Status {
        self.shared().status
    }

    fn causes(&self) -> Vec<RestartCause> {
        self.shared()
            .history
            .records()
            .iter()
            .map(|r| r.cause)
            .collect()
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(NEVER, f)
        .await
        .expect("nothing happened within the hour")
}

async fn answer(a: Answer) -> Result<(), String> {
    within(a).await.expect("dropped without an answer")
}

async fn ok(a: Answer) {
    if let Err(e) = answer(a).await {
        panic!("answered with an error: {e}");
    }
}

async fn err(a: Answer) -> String {
    answer(a).await.expect_err("answered Ok")
}

fn pending(a: &mut Answer) -> bool {
    matches!(a.try_recv(), Err(oneshot::error::TryRecvError::Empty))
}

/// Let every task run until all wait: the paused clock moves (by 1 ms) only once nothing is
/// left to do, work on the blocking pool included.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

// ---- start: stopped, errored → launching → online ----

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
    p.say(IpcEvent::ListenError("EADDRINUSE :3000".into()))
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

// ---- stop: online, launching, waiting restart → stopping → stopped ----

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

// ---- exits nobody asked for: the restart policy ----

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

// ---- restarts ----

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
    p.say(IpcEvent::Garbage("{not json".into())).await;
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

// ---- reload ----

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
