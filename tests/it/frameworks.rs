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
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
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
    let out = pmr.cmd().arg("start").arg(&file).current_dir(dir).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "start failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cpus_online() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as usize }
}

fn online_pids(pmr: &Pmr) -> HashSet<u64> {
    pmr.jlist()
        .iter()
        .filter(|p| p["pm2_env"]["status"] == "online")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

/// The daemon logs a line naming SIGKILL whenever a stop needs it (see `daemon/instance.rs`).
fn assert_no_sigkill(pmr: &Pmr) {
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap_or_default();
    let killed: Vec<&str> = log.lines().filter(|l| l.contains("SIGKILL")).collect();
    assert!(killed.is_empty(), "workers needed SIGKILL:\n{}", killed.join("\n"));
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
        pmr.run(&["reload", name]).ok();
        let after = online_pids(pmr);
        assert_eq!(after.len(), n, "round {round}");
        assert!(before.is_disjoint(&after), "round {round}: every worker replaced");
        for p in before {
            wait_until(&format!("old worker {p} gone"), || !alive(p as u32));
        }
    }
    let seen = keep.ok_so_far();
    wait_until("traffic after the reloads", || keep.ok_so_far() > seen + 100);
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
        assert!(pmr.jlist().iter().all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
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
    assert_eq!(now, online_pids(&pmr));
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
    assert!(list.iter().all(|p| p["pm2_env"]["exec_mode"] == "cluster_mode"));
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
    let logs = pmr.run(&["logs", "frontend", "--nostream", "--lines", "50"]).ok();
    assert!(
        logs.stdout.contains(why) || logs.stderr.contains(why),
        "{}{}",
        logs.stdout,
        logs.stderr
    );
}
