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
            bus: Arc::default(),
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

mod policy;
mod reload;
mod restarts;
mod start;
mod stop;
