//! `watch`: a change to a watched file restarts the app (cluster: reloads), ignored paths
//! and `watch_delay` bursts do not multiply restarts, `stop` and `restart --watch` turn it
//! off, and a watched path that does not exist is refused.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

fn restarts(p: &Value) -> u64 {
    p["pm2_env"]["restart_time"].as_u64().unwrap()
}

fn history(p: &Value) -> Vec<Value> {
    p["pm2_env"]["pmr_restart_history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the daemon's watcher of `pm_id` is set up (inotify watches in place).
fn wait_watching(pmr: &Pmr, pm_id: u64) -> Value {
    pmr.wait_proc(pm_id, "watcher set up", |p| {
        p["pm2_env"]["status"] == "online"
            && p["pm2_env"]["pmr_watching"]
                .as_str()
                .is_some_and(|w| !w.ends_with("(starting)"))
    })
}

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn ls_watching(pmr: &Pmr) -> String {
    pmr.run(&["ls"]).ok().stdout
}

#[test]
fn write_restarts_the_app_and_ignored_paths_do_not() {
    let pmr = Pmr::new();
    write(&pmr.dir.join("index.js"), "1");
    pmr.run(&[
        "start",
        &fixture("ticker.js"),
        "--name",
        "w",
        "--watch",
        "--ignore-watch",
        "*.tmp build/**",
    ])
    .ok();
    let p = wait_watching(&pmr, 0);
    assert!(
        p["pm2_env"]["pmr_watching"]
            .as_str()
            .unwrap()
            .contains("inotify"),
        "{p:#}"
    );
    assert_eq!(p["pm2_env"]["watch"], true);
    assert!(ls_watching(&pmr).contains("enabled"));
    let pid = p["pid"].as_u64().unwrap();

    // Ignored: node_modules (made after start), an ignore_watch glob, a dir glob.
    write(&pmr.dir.join("node_modules/dep/index.js"), "x");
    write(&pmr.dir.join("scratch.tmp"), "x");
    write(&pmr.dir.join("build/out.js"), "x");
    // Counted: the next write. Events come in order, so had an ignored write counted, the
    // restart would name it.
    write(&pmr.dir.join("index.js"), "2");
    let p = pmr.wait_proc(0, "a watch restart", |p| {
        restarts(p) >= 1 && p["pm2_env"]["status"] == "online"
    });
    assert_eq!(restarts(&p), 1, "{p:#}");
    assert_ne!(p["pid"].as_u64().unwrap(), pid);
    let h = history(&p);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["cause"], "watch");
    let file = pmr.dir.join("index.js").display().to_string();
    assert_eq!(h[0]["detail"], file.as_str());
    assert_eq!(p["pm2_env"]["pmr_watch_last"], file.as_str());

    let d = pmr.run(&["describe", "w"]).ok().stdout;
    assert!(d.contains("│ watch & reload     │ ✔"), "{d}");
    assert!(d.contains(&file), "{d}");
    assert!(!d.contains("not supported yet"), "{d}");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains(&format!("Change detected on path {file} for app [w:0]")),
        "{log}"
    );

    // Still watching after its restart: a second write gives a second restart.
    wait_watching(&pmr, 0);
    write(&pmr.dir.join("index.js"), "3");
    pmr.wait_proc(0, "a second watch restart", |p| restarts(p) == 2);
}

#[test]
fn a_burst_of_writes_gives_one_restart_per_watch_delay() {
    let pmr = Pmr::new();
    let conf = pmr.dir.join("eco.config.json");
    write(
        &conf,
        &serde_json::json!({"apps": [{
            "name": "b", "script": fixture("ticker.js"),
            "watch": ["src"], "watch_delay": 500
        }]})
        .to_string(),
    );
    write(&pmr.dir.join("src/a.js"), "0");
    pmr.run(&["start", conf.to_str().unwrap()]).ok();
    wait_watching(&pmr, 0);
    let burst = std::time::Instant::now();
    for i in 0..1000 {
        write(&pmr.dir.join(format!("src/f{}.js", i % 50)), &i.to_string());
    }
    // On a loaded machine the burst itself can outlast several watch_delays; each of those
    // may end in a restart, but never more.
    let allowed = 2 + burst.elapsed().as_millis() as u64 / 500;
    let p = pmr.wait_proc(0, "the burst's restart", |p| restarts(p) >= 1);
    let started = p["pm2_env"]["pm_uptime"].as_i64().unwrap();
    // Three watch_delays after it, no more restarts come.
    wait_until("1.5 s of uptime", || {
        chrono::Utc::now().timestamp_millis() - started > 1_500
    });
    let p = pmr.proc(0).unwrap();
    assert!(restarts(&p) <= allowed, "allowed {allowed}: {p:#}");
    assert!(history(&p).iter().all(|r| r["cause"] == "watch"), "{p:#}");
}

#[test]
fn a_cluster_app_reloads_on_a_change() {
    let pmr = Pmr::new();
    let port = free_port();
    pmr.run_env(
        &[
            "start",
            &fixture("http.js"),
            "-i",
            "2",
            "--name",
            "web",
            "--watch",
        ],
        &[("PORT", &port.to_string())],
    )
    .ok();
    wait_watching(&pmr, 0);
    wait_watching(&pmr, 1);
    let before = online_pids(&pmr);
    write(&pmr.dir.join("changed.js"), "x");
    for id in [0, 1] {
        let p = pmr.wait_proc(id, "a watch reload", |p| {
            restarts(p) >= 1 && p["pm2_env"]["status"] == "online"
        });
        let h = history(&p);
        assert_eq!(h.last().unwrap()["cause"], "watch", "{h:?}");
    }
    let after = online_pids(&pmr);
    assert!(before.is_disjoint(&after), "{before:?} {after:?}");
    // Served all along by the reload: the port still answers.
    assert_eq!(pids_answering(port, 2), after);
}

#[test]
fn restart_watch_toggles_off_and_stop_turns_it_off() {
    let pmr = Pmr::new();
    // `witness` watches the same directory: once it restarted for a write, an app still
    // watching would have too.
    for name in ["a", "witness"] {
        pmr.run(&["start", &fixture("ticker.js"), "--name", name, "--watch"])
            .ok();
    }
    wait_watching(&pmr, 0);
    wait_watching(&pmr, 1);
    pmr.run(&["restart", "a", "--watch"]).ok();
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["pm2_env"]["watch"], false, "{p:#}");
    assert!(p["pm2_env"].get("pmr_watching").is_none(), "{p:#}");
    let a_restarts = restarts(&p);
    write(&pmr.dir.join("one.js"), "1");
    pmr.wait_proc(1, "the witness restarted", |p| restarts(p) == 1);
    wait_watching(&pmr, 1);
    assert_eq!(restarts(&pmr.proc(0).unwrap()), a_restarts);

    // Toggled on again, then stopped: stop turns watching off.
    pmr.run(&["restart", "a", "--watch"]).ok();
    wait_watching(&pmr, 0);
    pmr.run(&["stop", "a"]).ok();
    let p = pmr.wait_status(0, "stopped");
    assert_eq!(p["pm2_env"]["watch"], false, "{p:#}");
    assert!(p["pm2_env"].get("pmr_watching").is_none(), "{p:#}");
    write(&pmr.dir.join("two.js"), "2");
    pmr.wait_proc(1, "the witness restarted again", |p| restarts(p) == 2);
    assert_eq!(pmr.status(0), "stopped");
}

#[test]
fn a_watch_path_that_does_not_exist_is_refused() {
    let pmr = Pmr::new();
    let r = pmr
        .run(&["start", &fixture("ticker.js"), "--watch", "nope"])
        .fails();
    let missing = pmr.dir.join("nope").display().to_string();
    assert!(r.stderr.contains(&missing), "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(pmr.jlist().is_empty());
}

#[test]
fn use_polling_watches_by_polling() {
    let pmr = Pmr::new();
    let conf = pmr.dir.join("eco.config.json");
    write(
        &conf,
        &serde_json::json!({"apps": [{
            "name": "p", "script": fixture("ticker.js"), "watch": true,
            "watch_options": {"usePolling": true, "interval": 50}
        }]})
        .to_string(),
    );
    pmr.run(&["start", conf.to_str().unwrap()]).ok();
    let p = wait_watching(&pmr, 0);
    let w = p["pm2_env"]["pmr_watching"].as_str().unwrap();
    assert!(w.contains("polling every 50 ms"), "{w}");
    write(&pmr.dir.join("node_modules/x.js"), "ignored");
    write(&pmr.dir.join("app.js"), "1");
    let p = pmr.wait_proc(0, "a polled restart", |p| restarts(p) >= 1);
    let file = pmr.dir.join("app.js").display().to_string();
    assert_eq!(history(&p)[0]["detail"], file.as_str(), "{p:#}");
}

#[test]
fn a_watched_file_replaced_by_a_rename_restarts_and_its_neighbours_do_not() {
    let pmr = Pmr::new();
    write(&pmr.dir.join("conf.json"), "{}");
    pmr.run(&[
        "start",
        &fixture("ticker.js"),
        "--name",
        "f",
        "--watch",
        "conf.json",
    ])
    .ok();
    let p = wait_watching(&pmr, 0);
    assert_eq!(p["pm2_env"]["watch"], serde_json::json!(["conf.json"]));
    // A neighbour in the same directory does not count.
    write(&pmr.dir.join("other.json"), "x");
    // An editor's save: write a temp file, rename it over the watched one.
    write(&pmr.dir.join("conf.json.swp"), "{\"a\": 1}");
    std::fs::rename(pmr.dir.join("conf.json.swp"), pmr.dir.join("conf.json")).unwrap();
    let p = pmr.wait_proc(0, "a watch restart", |p| restarts(p) >= 1);
    let file = pmr.dir.join("conf.json").display().to_string();
    assert_eq!(history(&p)[0]["detail"], file.as_str(), "{p:#}");
    // The watch survives the rename (the directory is watched, filtered to the name).
    wait_watching(&pmr, 0);
    write(&pmr.dir.join("conf.json"), "{\"a\": 2}");
    pmr.wait_proc(0, "a second watch restart", |p| restarts(p) == 2);
}

/// The daemon's own writes never restart a watched app (issue 22): its home inside the watched
/// folder (the table, its log, pid files), and the app's own log and pid files there, which
/// are written, closed and reopened at each of its restarts.
#[test]
fn the_daemons_own_files_never_restart_a_watched_app() {
    let pmr = Pmr::new();
    // Both the home and the work directory are under the watched folder.
    let base = pmr.home.parent().unwrap().to_path_buf();
    assert!(pmr.dir.starts_with(&base));
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--name",
            "c",
            "--watch",
            base.to_str().unwrap(),
            "-o",
            "./out.log",
            "-e",
            "./err.log",
            "-p",
            "./c.pid",
        ],
        // Longer than min_uptime: a crash loop that never ends in `errored`.
        &[("CRASH_AFTER_MS", "1200")],
    )
    .ok();
    wait_watching(&pmr, 0);
    let p = pmr.wait_proc(0, "three crash restarts", |p| restarts(p) >= 3);
    let h = history(&p);
    assert!(h.iter().all(|r| r["cause"] == "crash"), "{h:#?}");
    // Still watching: a file of the user's restarts it, and that restart names the file.
    let file = pmr.dir.join("index.js");
    write(&file, "1");
    let p = pmr.wait_proc(0, "a watch restart", |p| {
        history(p).iter().any(|r| r["cause"] == "watch")
    });
    let watch: Vec<Value> = history(&p)
        .into_iter()
        .filter(|r| r["cause"] == "watch")
        .collect();
    assert_eq!(watch.len(), 1, "{watch:#?}");
    assert_eq!(watch[0]["detail"], file.display().to_string().as_str());
}

/// Without `watch_delay`, a burst of writes (a `git checkout`, a build) is one restart, once
/// the tree has been quiet for 300 ms.
#[test]
fn a_burst_without_watch_delay_is_one_restart_once_quiet() {
    let pmr = Pmr::new();
    write(&pmr.dir.join("src/index.js"), "0");
    pmr.run(&[
        "start",
        &fixture("ticker.js"),
        "--name",
        "b",
        "--watch",
        "src",
    ])
    .ok();
    wait_watching(&pmr, 0);
    // A pause of 300 ms within the burst (a busy machine) may end it early: one more allowed.
    let mut last = std::time::Instant::now();
    let mut allowed = 1;
    for i in 0..200 {
        write(&pmr.dir.join(format!("src/f{i}.js")), &i.to_string());
        if last.elapsed() >= std::time::Duration::from_millis(300) {
            allowed += 1;
        }
        last = std::time::Instant::now();
    }
    let p = pmr.wait_proc(0, "the burst's restart", |p| {
        restarts(p) >= 1 && p["pm2_env"]["status"] == "online"
    });
    let started = p["pm2_env"]["pm_uptime"].as_i64().unwrap();
    // Longer than the 2 s limit of a burst after the restart: no more restarts come.
    wait_until("2.5 s of uptime", || {
        chrono::Utc::now().timestamp_millis() - started > 2_500
    });
    let p = pmr.proc(0).unwrap();
    assert!(restarts(&p) <= allowed, "allowed {allowed}: {p:#}");
}

/// Without `watch_delay`, a file written for ever still restarts the app: at most 2 s after
/// its first change, while it is still being written.
#[test]
fn a_file_written_for_ever_restarts_the_app_within_two_seconds() {
    let pmr = Pmr::new();
    write(&pmr.dir.join("src/index.js"), "0");
    pmr.run(&[
        "start",
        &fixture("ticker.js"),
        "--name",
        "f",
        "--watch",
        "src",
    ])
    .ok();
    wait_watching(&pmr, 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let file = pmr.dir.join("src/growing.log.js");
    let writer = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut i = 0;
            // Never quiet for 300 ms; bounded in time all the same.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && started.elapsed() < DEADLINE {
                i += 1;
                write(&file, &i.to_string());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            started.elapsed() < DEADLINE
        })
    };
    pmr.wait_proc(0, "a restart while the file is written", |p| {
        restarts(p) >= 1
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        writer.join().unwrap(),
        "the restart came only once the writes stopped"
    );
}
