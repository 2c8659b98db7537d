//! The daemon: one per `$PMR_HOME`. It owns every managed process, serves the CLI over
//! `rpc.sock`, and never runs user configuration.

pub mod cluster;
pub mod drain;
pub mod instance;
pub mod logs;
pub mod metrics;
pub mod node_ipc;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod rejections;
pub mod spawn;

use crate::paths::{sanitize_name, with_id_suffix, Home};
use crate::protocol::{self, Action, ActionResult, Monit, ProcInfo, Request, Response, Status};
use crate::spec::AppSpec;
use anyhow::{Context, Result};
use instance::{now_ms, Ctl, Ctx, Instance, Paths, Shared};
use registry::{Entry, Registry};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

struct Daemon {
    ctx: Arc<Ctx>,
    registry: Mutex<Registry>,
    sampler: Arc<Mutex<metrics::Sampler>>,
    username: String,
    /// Tells the accept loop to shut down (after `kill` has stopped every app).
    exit: tokio::sync::Notify,
}

/// Entry point of `pmr daemon` (started detached by the CLI, stdio on `pmr.log`).
pub fn run(home: Home) -> Result<()> {
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {}", home.root.display()))?;
    // The lock, not the pid file, says who owns this home: it dies with the process.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .with_context(|| format!("cannot open {}", home.lock_file().display()))?;
    let lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        // Another daemon owns this home (two CLIs raced to start one): let it serve.
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(()),
        Err((_, e)) => return Err(e).context("cannot lock the daemon lock file"),
    };
    logs::daemon_log::init(home.daemon_log());
    tracing_subscriber::fmt()
        .with_writer(logs::daemon_log::DaemonLog)
        .with_ansi(false)
        .with_target(false)
        .init();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()?;
    let res = rt.block_on(serve(home.clone()));
    let _ = std::fs::remove_file(home.socket());
    let _ = std::fs::remove_file(home.pid_file());
    tracing::info!("daemon exited");
    // Do not wait for log writer threads of apps that are already gone.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // Released last: `pmr kill` waits for this lock to know the daemon is gone.
    drop(lock);
    res
}

async fn serve(home: Home) -> Result<()> {
    let sock = home.socket();
    // We hold the lock, so any socket file here is stale.
    let _ = std::fs::remove_file(&sock);
    let listener = {
        // Created 0600 from the start: no window in which another user could connect.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let l = UnixListener::bind(&sock);
        nix::sys::stat::umask(old);
        l.with_context(|| format!("cannot bind {}", sock.display()))?
    };
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(home.pid_file(), std::process::id().to_string())?;
    std::fs::create_dir_all(home.logs_dir())?;
    std::fs::create_dir_all(home.pids_dir())?;
    tracing::info!(
        "pmr daemon {VERSION} started (pid {}, home {})",
        std::process::id(),
        home.root.display()
    );

    let sinks = Arc::new(logs::Sinks::new(&home));
    let notifier = Arc::new(notify::Notify::default());
    let notify_sock = home.root.join("notify.sock");
    // sd_notify paths must fit a sockaddr_un; apps simply get no NOTIFY_SOCKET otherwise.
    let notify_path = match notify::start(&notify_sock, notifier.clone()) {
        Ok(()) => Some(notify_sock.to_string_lossy().into_owned()),
        Err(e) => {
            tracing::warn!("no $NOTIFY_SOCKET for apps: {}: {e}", notify_sock.display());
            None
        }
    };
    let d = Arc::new(Daemon {
        ctx: Arc::new(Ctx {
            preload: match drain::install(&home.root) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(
                        "cannot write the drain preload, cluster workers run without it: {e}"
                    );
                    None
                }
            },
            home,
            sinks,
            shutting_down: Default::default(),
            listeners: Default::default(),
            next_worker: std::sync::atomic::AtomicU64::new(1),
            notify: notifier,
            notify_path,
        }),
        registry: Mutex::new(Registry::default()),
        sampler: Default::default(),
        username: current_username(),
        exit: tokio::sync::Notify::new(),
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // SIGHUP is ignored (a closed terminal must not take the daemon down).
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // SIGUSR2 reopens the log files, as `pmr reloadLogs` (for the system's logrotate).
    let mut usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())?;
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let (stream, _) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == my_uid => {}
                    Ok(cred) => {
                        tracing::warn!("refused a client of uid {} (daemon uid {my_uid})", cred.uid());
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("refused a client whose credentials are unknown: {e}");
                        continue;
                    }
                }
                tokio::spawn(client(d.clone(), stream));
            }
            _ = d.exit.notified() => break,
            _ = term.recv() => { shutdown(&d).await; break; }
            _ = int.recv() => { shutdown(&d).await; break; }
            _ = hup.recv() => {}
            _ = usr2.recv() => {
                let sinks = d.ctx.sinks.clone();
                tokio::spawn(async move {
                    let (n, _) = sinks.reload().await;
                    tracing::info!("SIGUSR2: reopened {n} log file(s)");
                });
            }
        }
    }
    Ok(())
}

async fn client(d: Arc<Daemon>, mut stream: UnixStream) {
    loop {
        let req: Request = match protocol::read_frame_async(&mut stream).await {
            Ok(r) => r,
            Err(protocol::FrameError::Closed) => return,
            Err(e) => {
                tracing::warn!("bad frame from a client, closing its connection: {e}");
                let _ = protocol::write_frame_async(
                    &mut stream,
                    &Response::Error {
                        message: e.to_string(),
                    },
                )
                .await;
                return;
            }
        };
        if let Request::Subscribe {
            ids,
            out,
            err,
            daemon,
        } = req
        {
            let filter = logs::hub::Filter {
                ids,
                out,
                err,
                daemon,
            };
            let hub = d.ctx.sinks.hub.clone();
            return hub.serve(stream, filter).await;
        }
        let is_kill = matches!(req, Request::Kill);
        let resp = handle(&d, req).await;
        let _ = protocol::write_frame_async(&mut stream, &resp).await;
        if is_kill {
            d.exit.notify_one();
            return;
        }
    }
}

async fn handle(d: &Arc<Daemon>, req: Request) -> Response {
    match req {
        Request::Ping => Response::Pong {
            version: VERSION.into(),
            protocol: protocol::PROTOCOL_VERSION,
            pid: std::process::id(),
        },
        Request::Start { apps, force } => start(d, apps, force).await,
        Request::Apply { apps, reload } => Response::Done {
            results: apply(d, apps, reload).await,
        },
        Request::List => Response::List {
            procs: list(d).await,
        },
        Request::Resolve { selectors } => match d.registry.lock().unwrap().resolve(&selectors) {
            Ok(ids) => Response::Ids { ids },
            Err(message) => Response::Error { message },
        },
        Request::Action {
            action: Action::Reload,
            ids,
            update_env,
            parallel,
        } => Response::Done {
            results: reload(d, &ids, update_env, parallel).await,
        },
        Request::Action {
            action,
            ids,
            update_env,
            ..
        } => Response::Done {
            results: act(d, action, &ids, update_env).await,
        },
        Request::Signal { signal, ids } => {
            let results = fan_out(d, &ids, |reply| Ctl::Signal(signal, reply)).await;
            Response::Done { results }
        }
        Request::Scale {
            name,
            relative,
            count,
        } => scale(d, &name, relative, count).await,
        Request::Kill => {
            shutdown(d).await;
            Response::Done { results: vec![] }
        }
        Request::Flush { ids } => flush_logs(d, ids).await,
        Request::ReloadLogs => {
            let (files, warnings) = d.ctx.sinks.reload().await;
            Response::LogsReloaded { files, warnings }
        }
        // Handled in `client` (the connection becomes a stream).
        Request::Subscribe { .. } => Response::Error {
            message: "unexpected subscribe".into(),
        },
    }
}

/// `flush`: empty the log files of these apps (`None`: all, and `pmr.log`).
async fn flush_logs(d: &Arc<Daemon>, ids: Option<Vec<u32>>) -> Response {
    let paths: Vec<String> = {
        let reg = d.registry.lock().unwrap();
        reg.snapshot()
            .into_iter()
            .filter(|(id, _)| ids.as_ref().is_none_or(|ids| ids.contains(id)))
            .flat_map(|(_, s)| [Some(s.paths.out), Some(s.paths.err), s.paths.combined])
            .flatten()
            .collect()
    };
    Response::Flushed {
        paths: d.ctx.sinks.flush(paths, ids.is_none()).await,
    }
}

/// Stop every app (no restarts from here on) and forget them.
async fn shutdown(d: &Arc<Daemon>) {
    d.ctx.shutting_down.store(true, Ordering::SeqCst);
    let ids: Vec<u32> = d.registry.lock().unwrap().entries.keys().copied().collect();
    tracing::info!("stopping {} process(es) before exit", ids.len());
    act(d, Action::Delete, &ids, None).await;
}

fn default_paths(home: &Home, spec: &AppSpec, id: u32) -> Paths {
    let base = sanitize_name(&spec.name);
    let logs = home.logs_dir();
    let per_id = |p: String| {
        if spec.merge_logs {
            p
        } else {
            with_id_suffix(&p, id)
        }
    };
    let user_or = |user: &Option<String>, default: String| match user {
        Some(u) if u == "/dev/null" || u == "NULL" => u.clone(),
        Some(u) => per_id(u.clone()),
        None => per_id(default),
    };
    Paths {
        out: user_or(
            &spec.out_file,
            logs.join(format!("{base}-out.log"))
                .to_string_lossy()
                .into_owned(),
        ),
        err: user_or(
            &spec.error_file,
            logs.join(format!("{base}-error.log"))
                .to_string_lossy()
                .into_owned(),
        ),
        combined: spec.log_file.as_ref().map(|l| {
            if l.is_empty() {
                per_id(
                    logs.join(format!("{base}.log"))
                        .to_string_lossy()
                        .into_owned(),
                )
            } else {
                per_id(l.clone())
            }
        }),
        pid: spec
            .pid_file
            .clone()
            .map(|p| with_id_suffix(&p, id))
            .unwrap_or_else(|| {
                home.pids_dir()
                    .join(format!("{base}-{id}.pid"))
                    .to_string_lossy()
                    .into_owned()
            }),
    }
}

async fn start(d: &Arc<Daemon>, apps: Vec<AppSpec>, force: bool) -> Response {
    // Same name and script already managed: PM2 restarts stopped ones, refuses running ones.
    let mut restart_ids = Vec::new();
    let mut new_apps = Vec::new();
    {
        let reg = d.registry.lock().unwrap();
        for spec in apps {
            let existing: Vec<(u32, Status)> = reg
                .snapshot()
                .into_iter()
                .filter(|(_, s)| s.spec.name == spec.name && s.spec.script == spec.script)
                .map(|(id, s)| (id, s.status))
                .collect();
            if existing.is_empty() || force {
                new_apps.push(spec);
            } else if existing
                .iter()
                .all(|(_, st)| matches!(st, Status::Stopped | Status::Errored))
            {
                restart_ids.extend(existing.iter().map(|e| e.0));
            } else {
                return Response::Error {
                    message: format!(
                        "Script {} already launched as app \"{}\", add -f option to force re-execution",
                        spec.script, spec.name
                    ),
                };
            }
        }
    }

    let mut waits = Vec::new();
    let mut ids = Vec::new();
    for spec in new_apps {
        for (id, wait) in register(d, Arc::new(spec)) {
            ids.push(id);
            waits.extend(wait);
        }
    }
    let mut errors = Vec::new();
    for (id, name, rx) in waits {
        if let Ok(Err(e)) = rx.await {
            errors.push(format!("[{name}]({id}) {e}"));
        }
    }
    if !restart_ids.is_empty() {
        for r in act(d, Action::Restart, &restart_ids, None).await {
            if let Some(e) = r.error {
                errors.push(format!("[{}]({}) {e}", r.name, r.id));
            }
        }
        ids.extend(restart_ids);
    }
    if errors.is_empty() {
        Response::Started { ids }
    } else {
        Response::Error {
            message: errors.join("\n"),
        }
    }
}

type StartWait = (u32, String, oneshot::Receiver<Result<(), String>>);

/// Wait for newly started instances to be online (or to fail).
async fn collect(waits: Vec<StartWait>) -> Vec<ActionResult> {
    let mut out = Vec::new();
    for (id, name, rx) in waits {
        let error = match rx.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("the instance task ended".into()),
        };
        out.push(ActionResult { id, name, error });
    }
    out
}

/// Add `spec.instances` new processes to the table and launch them (unless `autostart` is
/// off); returns their ids with the replies that come when each is online.
fn register(d: &Arc<Daemon>, spec: Arc<AppSpec>) -> Vec<(u32, Option<StartWait>)> {
    let mut reg = d.registry.lock().unwrap();
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for _ in 0..spec.instances.max(1) {
        let id = reg.next_id();
        let instance = reg.free_instance_number(&spec.name, &taken);
        taken.push(instance);
        let now = now_ms();
        let shared = Arc::new(Mutex::new(Shared {
            spec: spec.clone(),
            instance,
            status: if spec.autostart {
                Status::Launching
            } else {
                Status::Stopped
            },
            pid: 0,
            pm_uptime: now,
            created_at: now,
            restart_time: 0,
            counters: Default::default(),
            exit_code: None,
            last_error: None,
            env: spawn::child_env(&spec, id, instance, &d.ctx.home.root.to_string_lossy()),
            paths: default_paths(&d.ctx.home, &spec, id),
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let inst = Instance {
            id,
            shared: shared.clone(),
            ctx: d.ctx.clone(),
        };
        tokio::spawn(inst.run(rx));
        let wait = spec.autostart.then(|| {
            let (rtx, rrx) = oneshot::channel();
            let _ = tx.send(Ctl::Start(rtx));
            (id, spec.name.clone(), rrx)
        });
        reg.insert(id, Entry { shared, ctl: tx });
        out.push((id, wait));
    }
    out
}

/// The apps of an ecosystem file: those already known by name restart with their new spec,
/// the others start (PM2's startOrRestart, which `start`/`restart` of a file also do).
async fn apply(d: &Arc<Daemon>, apps: Vec<AppSpec>, reload_known: bool) -> Vec<ActionResult> {
    let mut waits: Vec<StartWait> = Vec::new();
    let mut restarts = Vec::new();
    for spec in apps {
        let known: Vec<u32> = d
            .registry
            .lock()
            .unwrap()
            .snapshot()
            .into_iter()
            .filter(|(_, s)| s.spec.name == spec.name)
            .map(|(id, _)| id)
            .collect();
        let spec = Arc::new(spec);
        if known.is_empty() {
            waits.extend(register(d, spec).into_iter().filter_map(|(_, w)| w));
        } else {
            restarts.push((known, spec));
        }
    }
    let mut results = Vec::new();
    for (ids, spec) in restarts {
        let update = instance::Update {
            env: None,
            spec: Some(spec),
        };
        if reload_known {
            results.extend(reload_with(d, &ids, update, 1).await);
        } else {
            results.extend(
                fan_out(d, &ids, |reply| Ctl::Restart {
                    update: update.clone(),
                    reply,
                })
                .await,
            );
        }
    }
    results.extend(collect(waits).await);
    results.sort_by_key(|r| r.id);
    results
}

/// Scale an app: new instances take the next free instance numbers with the app's spec;
/// scaling down retires the highest instance numbers (PM2 stops the lowest, which kills
/// instance 0, where apps often run their once-per-cluster jobs).
async fn scale(d: &Arc<Daemon>, name: &str, relative: bool, count: i64) -> Response {
    let mut members: Vec<(u32, u32, Arc<AppSpec>)> = d
        .registry
        .lock()
        .unwrap()
        .snapshot()
        .into_iter()
        .filter(|(_, s)| s.spec.name == name)
        .map(|(id, s)| (s.instance, id, s.spec))
        .collect();
    if members.is_empty() {
        return Response::Error {
            message: format!("app {name} not found"),
        };
    }
    members.sort_by_key(|m| m.0);
    let current = members.len() as i64;
    let target = if relative { current + count } else { count };
    if target < 0 {
        return Response::Error {
            message: format!("cannot scale {name} to {target} instances (it has {current})"),
        };
    }
    let mut results = Vec::new();
    if target > current {
        let mut spec = (*members[0].2).clone();
        spec.instances = (target - current) as u32;
        let mut waits = Vec::new();
        for (id, wait) in register(d, Arc::new(spec)) {
            match wait {
                Some(w) => waits.push(w),
                None => results.push(ActionResult {
                    id,
                    name: name.to_string(),
                    error: None,
                }),
            }
        }
        results.extend(collect(waits).await);
    } else if target < current {
        let ids: Vec<u32> = members[target as usize..].iter().map(|m| m.1).collect();
        results = fan_out(d, &ids, Ctl::Retire).await;
        let mut reg = d.registry.lock().unwrap();
        for r in &results {
            if r.error.is_none() {
                reg.remove(r.id);
            }
        }
    }
    Response::Done { results }
}

/// Reload `ids` a few at a time (`parallel`, default 1), so capacity never drops by more than
/// that many workers; a failure stops the reload of that app's remaining instances.
async fn reload(
    d: &Arc<Daemon>,
    ids: &[u32],
    update_env: Option<std::collections::BTreeMap<String, String>>,
    parallel: Option<u32>,
) -> Vec<ActionResult> {
    let update = instance::Update {
        env: update_env,
        spec: None,
    };
    reload_with(d, ids, update, parallel.unwrap_or(1)).await
}

async fn reload_with(
    d: &Arc<Daemon>,
    ids: &[u32],
    update: instance::Update,
    parallel: u32,
) -> Vec<ActionResult> {
    let mut results: Vec<ActionResult> = Vec::new();
    let mut failed_apps: Vec<String> = Vec::new();
    for batch in ids.chunks(parallel.max(1) as usize) {
        let todo: Vec<u32> = {
            let reg = d.registry.lock().unwrap();
            batch
                .iter()
                .copied()
                .filter(|id| {
                    reg.entries
                        .get(id)
                        .map(|e| !failed_apps.contains(&e.shared.lock().unwrap().spec.name))
                        .unwrap_or(true)
                })
                .collect()
        };
        for &id in batch.iter().filter(|id| !todo.contains(id)) {
            let name = d
                .registry
                .lock()
                .unwrap()
                .entries
                .get(&id)
                .map(|e| e.shared.lock().unwrap().spec.name.clone());
            results.push(ActionResult {
                id,
                name: name.unwrap_or_default(),
                error: Some(
                    "not reloaded: an earlier instance of this app failed to reload".into(),
                ),
            });
        }
        for r in fan_out(d, &todo, |reply| Ctl::Reload {
            update: update.clone(),
            reply,
        })
        .await
        {
            if r.error.is_some() {
                failed_apps.push(r.name.clone());
            }
            results.push(r);
        }
    }
    results
}

async fn act(
    d: &Arc<Daemon>,
    action: Action,
    ids: &[u32],
    update_env: Option<std::collections::BTreeMap<String, String>>,
) -> Vec<ActionResult> {
    let results = fan_out(d, ids, |reply| match action {
        Action::Stop => Ctl::Stop(reply),
        Action::Restart | Action::Reload => Ctl::Restart {
            update: instance::Update {
                env: update_env.clone(),
                spec: None,
            },
            reply,
        },
        Action::Delete => Ctl::Delete(reply),
        Action::Reset => Ctl::Reset(reply),
    })
    .await;
    if action == Action::Delete {
        let mut reg = d.registry.lock().unwrap();
        for r in &results {
            if r.error.is_none() {
                reg.remove(r.id);
            }
        }
    }
    results
}

/// Send one control message to each instance at once and collect the answers in id order.
async fn fan_out(
    d: &Arc<Daemon>,
    ids: &[u32],
    make: impl Fn(instance::Reply) -> Ctl,
) -> Vec<ActionResult> {
    let mut pending = Vec::new();
    {
        let reg = d.registry.lock().unwrap();
        for &id in ids {
            let Some(e) = reg.entries.get(&id) else {
                pending.push((id, String::new(), None));
                continue;
            };
            let name = e.shared.lock().unwrap().spec.name.clone();
            let (tx, rx) = oneshot::channel();
            let sent = e.ctl.send(make(tx)).is_ok();
            pending.push((id, name, sent.then_some(rx)));
        }
    }
    let mut out = Vec::new();
    for (id, name, rx) in pending {
        let error = match rx {
            None => Some(format!("process {id} not found")),
            Some(rx) => match rx.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("the instance task ended".into()),
            },
        };
        out.push(ActionResult { id, name, error });
    }
    out
}

async fn list(d: &Arc<Daemon>) -> Vec<ProcInfo> {
    let snap = d.registry.lock().unwrap().snapshot();
    let roots: Vec<u32> = snap
        .iter()
        .map(|(_, s)| s.pid)
        .filter(|&p| p != 0)
        .collect();
    let sampler = d.sampler.clone();
    let usage = tokio::task::spawn_blocking(move || sampler.lock().unwrap().sample(&roots))
        .await
        .unwrap_or_default();
    snap.into_iter()
        .map(|(id, s)| {
            let monit = usage
                .get(&s.pid)
                .map(|u| Monit {
                    memory: u.memory,
                    cpu: u.cpu,
                })
                .unwrap_or_default();
            ProcInfo {
                pm_id: id,
                instance: s.instance,
                spec: (*s.spec).clone(),
                status: s.status,
                pid: s.pid,
                pm_uptime: s.pm_uptime,
                created_at: s.created_at,
                restart_time: s.restart_time,
                unstable_restarts: s.counters.unstable_restarts,
                exit_code: s.exit_code,
                prev_restart_delay: s.counters.prev_restart_delay,
                out_log_path: s.paths.out,
                err_log_path: s.paths.err,
                log_path: s.paths.combined,
                pid_path: s.paths.pid,
                env: s.env,
                username: d.username.clone(),
                monit,
                last_error: s.last_error,
            }
        })
        .collect()
}

fn current_username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}
