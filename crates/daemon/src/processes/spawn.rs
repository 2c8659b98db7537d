//! Building and starting one child: argv, environment, cwd, its own process group, stdio pipes
//! (stdin too in fork mode, see [`crate::processes::stdin`]) and, for Node apps, the IPC channel
//! on fd 3.

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::dup2;
use pmr_core::spec::AppSpec;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The fd number Node expects its IPC channel on (what `child_process.fork` uses).
pub const IPC_FD: i32 = 3;

pub struct Spawned {
    pub child: crate::processes::child::ChildHandle,
    /// Our ends of its stdio pipes (stdin in fork mode only).
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Our end of the Node IPC socketpair, when the app is a Node script.
    pub ipc: Option<std::os::unix::net::UnixStream>,
}

/// The full argv: `[interpreter, interpreter_args.., script, args..]` or `[script, args..]`;
/// a Node preload goes first among the interpreter's arguments.
pub fn argv(spec: &AppSpec, preload: Option<&str>) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(i) = &spec.interpreter {
        v.push(i.clone());
        if let Some(p) = preload {
            v.push("--require".into());
            v.push(p.to_string());
        }
        v.extend(spec.interpreter_args.iter().cloned());
    }
    v.push(spec.script.clone());
    v.extend(spec.args.iter().cloned());
    v
}

/// The environment of instance `instance` with id `pm_id`: the app's env plus PM2's variables.
pub fn child_env(spec: &AppSpec, pm_id: u32, instance: u32, home: &str) -> pmr_core::env_map::Env {
    let mut env = spec.env.clone();
    env.insert("pm_id".into(), pm_id.to_string());
    env.insert("name".into(), spec.name.clone());
    env.insert("namespace".into(), spec.namespace.clone());
    env.insert(spec.instance_var.clone(), instance.to_string());
    // `PM2_HOME` as `pm2`: a `pm2` command run by the app finds this daemon.
    let home_var = pmr_core::personality::current().home_var();
    env.insert(home_var.into(), home.to_string());
    if spec.pmx_module {
        // A module is PM2's client by nature (pm2-logrotate, pm2-metrics, pm2-intercom
        // `require('pm2')`): PM2's library must find this daemon, which speaks PM2's protocol,
        // whatever the personality; without it, it starts a PM2 daemon of its own in ~/.pm2.
        env.insert("PM2_HOME".into(), home.to_string());
    }
    env.insert("exec_mode".into(), spec.exec_mode.pm2_name().into());
    if let Some(var) = &spec.increment_var {
        // PM2: starts from the value given in env (or 0) and adds the instance number.
        let base: i64 = spec.env.get(var).and_then(|v| v.parse().ok()).unwrap_or(0);
        env.insert(var.clone(), (base + instance as i64).to_string());
    }
    if spec
        .interpreter
        .as_deref()
        .is_some_and(|i| i.rsplit('/').next().unwrap_or(i).starts_with("python"))
        && !env.contains_key("PYTHONUNBUFFERED")
    {
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
    }
    env
}

/// Sockets passed the systemd way (`LISTEN_FDS`), with their names for `LISTEN_FDNAMES`.
pub struct ListenFds<'a> {
    pub fds: Vec<RawFd>,
    pub names: Vec<String>,
    _borrow: std::marker::PhantomData<&'a ()>,
}

impl<'a> ListenFds<'a> {
    pub fn new(fds: &'a [std::sync::Arc<OwnedFd>], names: Vec<String>) -> ListenFds<'a> {
        ListenFds {
            fds: fds.iter().map(|f| f.as_raw_fd()).collect(),
            names,
            _borrow: std::marker::PhantomData,
        }
    }
}

/// Start the child. `worker` is the cluster worker id (NODE_UNIQUE_ID) in cluster mode.
/// Node apps get the IPC channel on fd 3; apps with `listen` sockets get them from fd 3 instead
/// (and no IPC channel: the systemd convention owns those fds).
pub fn spawn(
    spec: &AppSpec,
    env: &pmr_core::env_map::Env,
    worker: Option<u64>,
    preload: Option<&str>,
    listen: Option<ListenFds<'_>>,
) -> std::io::Result<Spawned> {
    let mut argv = argv(spec, preload);
    if listen.is_some() {
        // LISTEN_PID must be the pid of the process that reads LISTEN_FDS: set it in a shell
        // that then execs the app (same pid). The app's argv goes through "$@", never parsed.
        let mut wrapped: Vec<String> = [
            "/bin/sh",
            "-c",
            "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"",
            "pmr-listen",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        wrapped.append(&mut argv);
        argv = wrapped;
    }
    // Fork mode: a stdin pipe held open by the daemon, as PM2's `stdio: ['pipe', ...]`.
    // Cluster workers read EOF at once under PM2 (they inherit its daemon's spent stdin).
    let stdin = if spec.exec_mode == pmr_core::spec::ExecMode::Cluster {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(&spec.cwd)
        .stdin(stdin)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let mut ipc = None;
    let mut child_end: Option<OwnedFd> = None;
    let mut pass: Vec<RawFd> = Vec::new();
    if let Some(l) = &listen {
        cmd.env("LISTEN_FDS", l.fds.len().to_string())
            .env("LISTEN_FDNAMES", l.names.join(":"));
        pass = l.fds.clone();
    } else if spec.is_node() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        cmd.env("NODE_CHANNEL_FD", IPC_FD.to_string())
            .env("NODE_CHANNEL_SERIALIZATION_MODE", "json");
        if let Some(w) = worker {
            cmd.env("NODE_UNIQUE_ID", w.to_string());
        }
        ipc = Some(ours);
        pass.push(theirs.as_raw_fd());
        child_end = Some(theirs.into());
    }
    let nofile = ORIGINAL_NOFILE.get().copied();
    if !pass.is_empty() || nofile.is_some() {
        // SAFETY: pre_exec runs in the forked child, where only async-signal-safe work is
        // allowed: place_fds makes fcntl and dup2 calls on a stack array, setrlimit is one
        // syscall on values copied in, nothing else.
        unsafe {
            cmd.pre_exec(move || {
                if let Some((soft, hard)) = nofile {
                    let _ = setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
                }
                place_fds(&pass)
            });
        }
    }
    // std's Command: nothing reaps its children behind our back (see `child.rs`).
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // Before anything can wait: the zombie reaper must never take this child's exit status.
    crate::processes::reaper::track(pid);
    // Our copy of the child's end must go, or we would never see EOF when the child exits.
    drop(child_end);
    let handle = match crate::processes::child::ChildHandle::new(pid) {
        Ok(h) => h,
        Err(e) => {
            // Without a handle it could never be waited for: it goes at once.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Spawned {
        child: handle,
        stdin: child.stdin.take().map(OwnedFd::from),
        stdout: child.stdout.take().map(OwnedFd::from),
        stderr: child.stderr.take().map(OwnedFd::from),
        ipc,
    })
}

/// The fd limit the daemon was started with, when it raised its own (see [`raise_nofile`]):
/// its apps get this one back (soft, hard). Process-wide: an rlimit of the process, saved at
/// its start.
static ORIGINAL_NOFILE: std::sync::OnceLock<(libc::rlim_t, libc::rlim_t)> =
    std::sync::OnceLock::new();

/// Raise the daemon's soft fd limit to its hard limit: each running process costs it up to
/// nine fds (pipes, IPC channel, pidfd, and the copies kept for `update`, see `handoff.rs`),
/// and a 1024 soft limit would stop a hundred apps. The apps get the original limit back.
pub fn raise_nofile() {
    // A daemon replaced by `update` raised it already: the original comes with the exec.
    let handed = std::env::var(NOFILE_VAR).ok();
    std::env::remove_var(NOFILE_VAR);
    if let Some((cur, max)) = handed.as_deref().and_then(|v| v.split_once(' ')) {
        if let (Ok(cur), Ok(max)) = (cur.parse(), max.parse()) {
            let _ = ORIGINAL_NOFILE.set((cur, max));
            return;
        }
    }
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // The kernel's default `nr_open`: an unlimited hard limit cannot be the soft one.
    let target = hard.min(1 << 20);
    if soft >= target {
        return;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        let _ = ORIGINAL_NOFILE.set((soft, hard));
    }
}

/// How [`raise_nofile`]'s original limit crosses `update`'s exec ("soft hard").
pub const NOFILE_VAR: &str = "PMR_UPDATE_NOFILE";

/// For `update`'s exec: the original limit, if the daemon raised its own.
pub fn original_nofile() -> Option<String> {
    ORIGINAL_NOFILE
        .get()
        .map(|(soft, hard)| format!("{soft} {hard}"))
}

/// In the child: put `fds` at 3, 4, ... without one overwriting another. First move each
/// above the target range (close-on-exec copies), then dup2 into place (dup2 clears the flag).
/// Runs between fork and exec: nix's wrappers are plain syscalls (no allocation, no locks).
fn place_fds(fds: &[RawFd]) -> std::io::Result<()> {
    const MAX: usize = 64;
    if fds.len() > MAX {
        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
    }
    let mut tmp = [0 as RawFd; MAX];
    let floor = IPC_FD + fds.len() as RawFd;
    for (i, &fd) in fds.iter().enumerate() {
        tmp[i] = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(floor))?;
    }
    for (i, &t) in tmp[..fds.len()].iter().enumerate() {
        dup2(t, IPC_FD + i as RawFd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::policy::tests::spec;

    #[test]
    fn argv_and_env() {
        let mut s = spec();
        s.interpreter = Some("/usr/bin/node".into());
        s.interpreter_args = vec!["--max-old-space-size=100".into()];
        s.script = "/app/a.js".into();
        s.args = vec!["x".into()];
        assert_eq!(
            argv(&s, None),
            [
                "/usr/bin/node",
                "--max-old-space-size=100",
                "/app/a.js",
                "x"
            ]
        );
        s.increment_var = Some("PORT".into());
        s.env.insert("PORT".into(), "3000".into());
        let env = child_env(&s, 7, 2, "/h");
        assert_eq!(env["PORT"], "3002");
        assert_eq!(env["NODE_APP_INSTANCE"], "2");
        assert_eq!(env["pm_id"], "7");
        assert_eq!(env["PMR_HOME"], "/h");
        assert!(!env.contains_key("PM2_HOME"));
        // A module's PM2 library finds this daemon, even when the user's PM2_HOME is another.
        s.pmx_module = true;
        s.env.insert("PM2_HOME".into(), "/home/u/.pm2".into());
        let env = child_env(&s, 7, 2, "/h");
        assert_eq!(env["PM2_HOME"], "/h");
    }
}
