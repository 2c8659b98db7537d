//! Real frameworks from the npm registry (see `apps.rs`), started with the configs the README
//! gives for them: the seed's Next.js scene end to end, and every other framework in cluster
//! mode (a reload under load) and in fork mode (start, answer, restart).

use crate::apps::app;
use crate::load::Load;
use crate::support::*;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// One heavy test at a time: real frameworks under load on 2 cores.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The ecosystem file the README gives under the heading line `// <title>`.
pub fn readme_config(title: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let head = format!("```js\n// {title}\n");
    let start = readme
        .find(&head)
        .unwrap_or_else(|| panic!("README.md has no ```js block starting `// {title}`"))
        + "```js\n".len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

/// Write `config` (with the README's port 3000 made `port`) into `dir` and start it from there,
/// as a user runs `pmr start ecosystem.config.js` in the app's folder.
fn start_config(pmr: &Pmr, dir: &Path, config: &str, port: u16) {
    let text = config.replace("PORT: 3000", &format!("PORT: {port}"));
    assert_ne!(text, config, "the config sets PORT: 3000");
    let file = dir.join(format!("pmr-test-{}-{port}.config.js", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let out = pmr
        .cmd()
        .arg("start")
        .arg(&file)
        .current_dir(dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "start failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `pid` is `ancestor` or one of its descendants.
fn descends_from(mut pid: u64, ancestor: u64) -> bool {
    while pid > 1 {
        if pid == ancestor {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
        pid = after
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
    }
    false
}

fn cpus_online() -> usize {
    use nix::unistd::{sysconf, SysconfVar};
    let n = sysconf(SysconfVar::_NPROCESSORS_ONLN).ok().flatten();
    n.map_or(1, |n| n as usize)
}

/// The daemon logs a line naming SIGKILL whenever a stop needs it (see `daemon/instance.rs`).
fn assert_no_sigkill(pmr: &Pmr) {
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap_or_default();
    let killed: Vec<&str> = log.lines().filter(|l| l.contains("SIGKILL")).collect();
    assert!(
        killed.is_empty(),
        "workers needed SIGKILL:\n{}",
        killed.join("\n")
    );
}

/// A connection that made one keep-alive request and then stays idle, as a browser's does.
fn idle_keepalive(port: u16) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// Reload `name` under keep-alive load and under new-connection load: nothing refused, no
/// non-2xx, no error on kept-alive connections, every old worker gone without SIGKILL.
fn reload_under_load(pmr: &Pmr, name: &str, port: u16, rounds: usize) {
    let n = online_pids(pmr).len();
    let close = Load::start(port, 4, false, Duration::from_secs(120));
    let keep = Load::start(port, 8, true, Duration::from_secs(120));
    for round in 0..rounds {
        let before = online_pids(pmr);
        let seen = (keep.ok_so_far(), close.ok_so_far());
        wait_until("traffic flowing", || {
            keep.ok_so_far() > seen.0 + 100 && close.ok_so_far() > seen.1 + 20
        });
        // A browser's idle kept-alive connection to an old worker must not hold it past
        // kill_timeout (Next.js waits for open connections before it exits).
        // Several, so that every old worker likely holds one.
        let idle: Vec<_> = (0..2 * n).map(|_| idle_keepalive(port)).collect();
        pmr.run(&["reload", name]).ok();
        let after = online_pids(pmr);
        assert_eq!(after.len(), n, "round {round}");
        assert!(
            before.is_disjoint(&after),
            "round {round}: every worker replaced"
        );
        for p in before {
            wait_until(&format!("old worker {p} gone"), || !alive(p as u32));
        }
        for mut c in idle {
            let mut buf = [0u8; 64];
            let r = std::io::Read::read(&mut c, &mut buf);
            assert!(
                matches!(r, Ok(0))
                    || r.as_ref()
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
                "round {round}: an idle connection was left open: {r:?}"
            );
        }
    }
    let seen = keep.ok_so_far();
    wait_until("traffic after the reloads", || {
        keep.ok_so_far() > seen + 100
    });
    let (close, keep) = (close.finish(), keep.finish());
    eprintln!("{name}: Connection: close: {close:?}\nkeep-alive: {keep:?}");
    assert_eq!(close.errors(), 0, "new connection per request: {close:?}");
    assert_eq!(keep.errors(), 0, "keep-alive: {keep:?}");
    assert_no_sigkill(pmr);
}

/// Cluster mode as the README configures it: one worker per CPU, all answering, a reload under
/// load; then fork mode: one process that answers and restarts.
fn cluster_then_fork(app_name: &str, title: &str, name: &str) {
    let _g = heavy();
    let dir = app(app_name);
    let config = readme_config(title);
    {
        let pmr = Pmr::new();
        let port = free_port();
        start_config(&pmr, &dir, &config, port);
        let n = cpus_online();
        assert_eq!(pmr.jlist().len(), n);
        assert!(pmr
            .jlist()
            .iter()
            .all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
        assert_eq!(pids_answering(port, n), online_pids(&pmr));
        reload_under_load(&pmr, name, port, 1);
    }
    let fork = config
        .replace("exec_mode: 'cluster'", "exec_mode: 'fork'")
        .replace("instances: 'max'", "instances: 1")
        .replace("instances: 0", "instances: 1");
    let pmr = Pmr::new();
    let port = free_port();
    start_config(&pmr, &dir, &fork, port);
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["pm2_env"]["exec_mode"], "fork_mode");
    let pid = pids_answering(port, 1);
    pmr.run(&["restart", name]).ok();
    let mut now = HashSet::new();
    wait_until("the restarted process answers", || {
        now = pids_answering(port, 1);
        !now.is_empty() && now.is_disjoint(&pid)
    });
    // `npm start` in fork mode runs npm itself, as PM2 does: node is its descendant.
    let top = online_pids(&pmr);
    let served = *now.iter().next().unwrap();
    assert!(
        top.iter().any(|&t| descends_from(served, t)),
        "{served} is not (under) the managed process {top:?}"
    );
    assert_no_sigkill(&pmr);
}

#[test]
fn express_cluster_and_fork() {
    cluster_then_fork("express", "Express", "api");
}

#[test]
fn fastify_cluster_and_fork() {
    cluster_then_fork("fastify", "Fastify", "api");
}

#[test]
fn koa_cluster_and_fork() {
    cluster_then_fork("koa", "Koa", "api");
}

#[test]
fn nestjs_cluster_and_fork() {
    cluster_then_fork("nest", "NestJS", "api");
}

#[test]
fn nuxt_nitro_output_cluster_and_fork() {
    cluster_then_fork("nitro", "Nuxt (Nitro output)", "web");
}

/// A copy of the built Next.js app whose `start` script is `script` (the rest is symlinked
/// to the installed app).
fn next_app_with_start(pmr: &Pmr, script: &str) -> std::path::PathBuf {
    let src = app("nextjs");
    let dir = pmr.dir.join("next");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "package.json" {
            std::os::unix::fs::symlink(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let pkg = std::fs::read_to_string(src.join("package.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&pkg).unwrap();
    v["scripts"]["start"] = script.into();
    std::fs::write(dir.join("package.json"), v.to_string()).unwrap();
    dir
}

/// The seed's scene: start one worker per CPU, scale +4, scale 4, reload under load.
fn next_scene(pmr: &Pmr, dir: &Path, title: &str) {
    let port = free_port();
    start_config(pmr, dir, &readme_config(title), port);
    let n = cpus_online();
    let list = pmr.jlist();
    assert_eq!(list.len(), n, "one worker per CPU online");
    assert!(list
        .iter()
        .all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
    assert_eq!(pids_answering(port, n), online_pids(pmr));

    pmr.run(&["scale", "frontend", "+4"]).ok();
    assert_eq!(pmr.jlist().len(), n + 4);
    assert_eq!(pids_answering(port, n + 4), online_pids(pmr));

    let before = online_pids(pmr);
    pmr.run(&["scale", "frontend", "4"]).ok();
    let now = online_pids(pmr);
    assert_eq!(now.len(), 4);
    assert!(now.is_subset(&before));
    for p in before.difference(&now) {
        wait_until("scaled-down worker gone", || !alive(*p as u32));
    }
    // Only the 4 left answer (a stale worker would add a pid).
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let body = http_get(port).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen.insert(v["pid"].as_u64().unwrap());
    }
    assert!(seen.is_subset(&now), "{seen:?} vs {now:?}");

    reload_under_load(pmr, "frontend", port, 2);
}

#[test]
fn nextjs_seed_scene_next_start() {
    let _g = heavy();
    let pmr = Pmr::new();
    let dir = next_app_with_start(&pmr, "next start");
    next_scene(&pmr, &dir, "Next.js");
}

#[test]
fn nextjs_seed_scene_next_start_with_port_expansion() {
    let _g = heavy();
    let pmr = Pmr::new();
    let dir = next_app_with_start(&pmr, "next start -p ${PORT:-3000}");
    next_scene(&pmr, &dir, "Next.js");
}

#[test]
fn nextjs_seed_scene_bin_script() {
    let _g = heavy();
    let pmr = Pmr::new();
    next_scene(&pmr, &app("nextjs"), "Next.js (the form PM2 guides give)");
}

#[test]
fn nextjs_fork_mode() {
    let _g = heavy();
    let config = readme_config("Next.js (the form PM2 guides give)")
        .replace("exec_mode: 'cluster'", "exec_mode: 'fork'")
        .replace("instances: 0", "instances: 1");
    let pmr = Pmr::new();
    let port = free_port();
    start_config(&pmr, &app("nextjs"), &config, port);
    let pid = pids_answering(port, 1);
    pmr.run(&["restart", "frontend"]).ok();
    wait_until("the restarted process answers", || {
        pids_answering(port, 1).is_disjoint(&pid)
    });
    assert_no_sigkill(&pmr);
}

#[test]
fn a_nextjs_app_never_built_says_why_and_ends_errored() {
    let _g = heavy();
    let pmr = Pmr::new();
    let src = app("nextjs");
    let dir = pmr.dir.join("unbuilt");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_name() != ".next" {
            std::os::unix::fs::symlink(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let config = readme_config("Next.js").replace("instances: 0", "instances: 1, max_restarts: 3");
    let port = free_port();
    // `start` itself may report the crash loop; what matters is what follows.
    let text = config.replace("PORT: 3000", &format!("PORT: {port}"));
    std::fs::write(dir.join("ecosystem.config.js"), text).unwrap();
    let _ = pmr.cmd().arg("start").current_dir(&dir).output().unwrap();
    pmr.wait_status(0, "errored");
    let why = "Could not find a production build";
    let d = pmr.run(&["describe", "frontend"]).ok().stdout;
    assert!(d.contains(why), "{d}");
    let logs = pmr
        .run(&["logs", "frontend", "--nostream", "--lines", "50"])
        .ok();
    assert!(
        logs.stdout.contains(why) || logs.stderr.contains(why),
        "{}{}",
        logs.stdout,
        logs.stderr
    );
}

/// Node's https client as load on the HTTPS port and on the Unix socket (bounded to 90 s).
struct TlsLoad {
    child: std::process::Child,
    stats: std::path::PathBuf,
    stop: std::path::PathBuf,
}

impl TlsLoad {
    fn start(pmr: &Pmr, port: u16, sock: &Path, until_pids: usize) -> TlsLoad {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stats = pmr.dir.join(format!("stats-{n}.json"));
        let stop = pmr.dir.join(format!("stop-{n}"));
        let cert = app("https").join("test-cert.pem");
        let child = std::process::Command::new("node")
            .arg(fixture("https_unix_client.js"))
            .args([
                &port.to_string(),
                sock.to_str().unwrap(),
                cert.to_str().unwrap(),
            ])
            .args([&stats, &stop])
            .args(["90000", &until_pids.to_string()])
            .spawn()
            .unwrap();
        pmr.track(child.id());
        TlsLoad { child, stats, stop }
    }

    fn now(&self) -> serde_json::Value {
        std::fs::read(&self.stats)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::json!({"https": {"ok": 0}, "unix": {"ok": 0}}))
    }

    fn ok(&self) -> (u64, u64) {
        let v = self.now();
        (
            v["https"]["ok"].as_u64().unwrap(),
            v["unix"]["ok"].as_u64().unwrap(),
        )
    }

    fn finish(mut self) -> serde_json::Value {
        std::fs::write(&self.stop, "").unwrap();
        assert!(self.child.wait().unwrap().success());
        self.now()
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[test]
fn https_and_unix_socket_cluster_and_fork() {
    let _g = heavy();
    let dir = app("https");
    let config = readme_config("HTTPS and a Unix socket");
    for mode in ["cluster", "fork"] {
        let pmr = Pmr::new();
        let port = free_port();
        let sock = pmr.dir.join("app.sock");
        let mut cfg = config.replace("/run/app/app.sock", sock.to_str().unwrap());
        if mode == "fork" {
            cfg = cfg
                .replace("exec_mode: 'cluster'", "exec_mode: 'fork'")
                .replace("instances: 'max'", "instances: 1");
        }
        start_config(&pmr, &dir, &cfg, port);
        let n = if mode == "fork" { 1 } else { cpus_online() };
        let top = online_pids(&pmr);
        assert_eq!(top.len(), n);
        wait_until("the socket exists", || sock.exists());

        // Every worker answers on both listeners.
        let load = TlsLoad::start(&pmr, port, &sock, n);
        let pids_on = |v: &serde_json::Value, k: &str| -> HashSet<u64> {
            v[k]["pids"].as_array().map_or(HashSet::new(), |a| {
                a.iter().map(|p| p.as_u64().unwrap()).collect()
            })
        };
        wait_until("every worker answers on both listeners", || {
            let v = load.now();
            pids_on(&v, "https").len() >= n && pids_on(&v, "unix").len() >= n
        });
        let v = load.finish();
        for k in ["https", "unix"] {
            assert_eq!(pids_on(&v, k), top, "{mode} {k}: {v}");
        }

        // A reload (cluster) or a restart (fork) under load on both listeners.
        let load = TlsLoad::start(&pmr, port, &sock, 0);
        wait_until("traffic on both", || {
            let (a, b) = load.ok();
            a > 50 && b > 50
        });
        let cmd = if mode == "fork" { "restart" } else { "reload" };
        pmr.run(&[cmd, "secure"]).ok();
        assert!(
            online_pids(&pmr).is_disjoint(&top),
            "{mode}: every process replaced"
        );
        let seen = load.ok();
        wait_until("traffic after", || {
            let (a, b) = load.ok();
            a > seen.0 + 50 && b > seen.1 + 50
        });
        let v = load.finish();
        eprintln!("https/unix {mode}: {v}");
        if mode == "cluster" {
            for k in ["https", "unix"] {
                assert_eq!(
                    (v[k]["errors"].as_u64(), v[k]["non2xx"].as_u64()),
                    (Some(0), Some(0)),
                    "{k}: {v}"
                );
            }
        }
        assert_no_sigkill(&pmr);
    }
}

/// Every config in the README's framework section is one a test above starts.
#[test]
fn every_framework_config_in_the_readme_is_tested() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("\n## Next.js, Express, Fastify, NestJS, Nuxt\n")
        .expect("the section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let titles: Vec<&str> = section
        .split("```js\n// ")
        .skip(1)
        .map(|b| b.lines().next().unwrap())
        .collect();
    let tested = [
        "Next.js",
        "Next.js (the form PM2 guides give)",
        "Express",
        "Fastify",
        "Koa",
        "NestJS",
        "Nuxt (Nitro output)",
        "HTTPS and a Unix socket",
    ];
    assert_eq!(titles, tested);
    assert_eq!(
        section.matches("```js").count(),
        tested.len(),
        "a js block without a title"
    );
}
