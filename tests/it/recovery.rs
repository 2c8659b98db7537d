//! The daemon's table survives the daemon: a daemon killed with SIGKILL is replaced (by the
//! next CLI call) by one that restores the same ids, names and restart counts, stops what the
//! dead one left running, and runs every online app exactly once. `kill` forgets everything.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The table is written shortly after each change: wait until it says what `jlist` says
/// (ids, restart counts, wanted status), so that a test crashes a daemon whose last change is
/// on disk.
fn wait_table_settled(pmr: &Pmr) {
    let wanted = |status: &str| {
        match status {
            "online" | "launching" | "waiting restart" => "online",
            "stopping" | "stopped" => "stopped",
            other => other,
        }
        .to_string()
    };
    wait_until("the table on disk to match jlist", || {
        let Ok(text) = std::fs::read_to_string(pmr.home.join("state.json")) else {
            return false;
        };
        let t: Value = serde_json::from_str(&text).unwrap();
        let on_disk: Vec<(u64, u64, String)> = t["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["id"].as_u64().unwrap(),
                    a["restart_time"].as_u64().unwrap(),
                    a["wanted"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let listed: Vec<(u64, u64, String)> = summary(&pmr.jlist())
            .into_iter()
            .map(|(id, _, restarts, status)| (id, restarts, wanted(&status)))
            .collect();
        on_disk == listed
    });
}

/// SIGKILL the daemon once its table is on disk, and wait until it is gone.
fn crash_settled_daemon(pmr: &Pmr) {
    wait_table_settled(pmr);
    crash_daemon(pmr);
}

/// SIGKILL the daemon and wait until it is gone (its lock with it).
fn crash_daemon(pmr: &Pmr) {
    let pid = pmr.daemon_pid().expect("a daemon pid");
    kill9(pid);
    // Its main thread is a zombie before its other threads have closed the socket: a CLI
    // connecting then would reach the dying listener (and get EPIPE).
    let sock = pmr.home.join("rpc.sock");
    wait_until("the daemon to die", || {
        !alive(pid) && std::os::unix::net::UnixStream::connect(&sock).is_err()
    });
}

/// A marker app named `name` that ignores SIGINT, with a 20 s kill_timeout (a stop of it lasts
/// until the SIGKILL); its marker file and first pid.
fn start_stubborn(pmr: &Pmr, name: &str) -> (std::path::PathBuf, u32) {
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &[
            "start",
            &fixture("marker.js"),
            "--name",
            name,
            "--kill-timeout",
            "20000",
        ],
        &[("MARKER", marker.to_str().unwrap()), ("IGNORE_SIGINT", "1")],
    )
    .ok();
    let first = wait_started(&marker, 1)[0];
    pmr.track(first);
    (marker, first)
}

/// Every pid the fixture wrote to its marker file (one line per start).
fn started(marker: &Path) -> Vec<u32> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The marker's pids once it has `n` (a fork app is online before its first line ran).
fn wait_started(marker: &Path, n: usize) -> Vec<u32> {
    wait_until(&format!("{n} starts in {}", marker.display()), || {
        started(marker).len() >= n
    });
    started(marker)
}

fn live(pids: &[u32]) -> BTreeSet<u32> {
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

fn pids_of(list: &[Value], name: &str) -> BTreeSet<u32> {
    list.iter()
        .filter(|p| p["name"] == name)
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect()
}

fn table(pmr: &Pmr) -> Value {
    serde_json::from_str(&std::fs::read_to_string(pmr.home.join("state.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_daemon_is_replaced_by_one_that_restores_every_app_once() {
    let pmr = Pmr::new();
    let (web, solo) = (pmr.dir.join("web.pids"), pmr.dir.join("solo.pids"));
    let port = free_port().to_string();
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "web", "-i", "2"],
        &[("MARKER", web.to_str().unwrap()), ("PORT", &port)],
    )
    .ok();
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "solo"],
        &[("MARKER", solo.to_str().unwrap())],
    )
    .ok();
    wait_started(&solo, 1);
    pmr.run(&["restart", "solo"]).ok();
    wait_started(&solo, 2);
    let before = pmr.jlist();
    let old_fork = pids_of(&before, "solo");
    let old_workers = pids_of(&before, "web");
    assert_eq!(
        summary(&before),
        [
            (0, "web".into(), 0, "online".into()),
            (1, "web".into(), 0, "online".into()),
            (2, "solo".into(), 1, "online".into())
        ]
    );

    crash_settled_daemon(&pmr);
    // The fork app outlives its daemon (it writes nothing, so no EPIPE ends it): the new
    // daemon has to find and stop it.
    assert!(old_fork.iter().all(|&p| alive(p)), "{old_fork:?}");

    // The very first answer of the new daemon has everything back.
    let after = pmr.jlist();
    assert_eq!(summary(&after), summary(&before));
    assert!(
        old_fork.iter().all(|&p| !alive(p)),
        "orphan left: {old_fork:?}"
    );
    assert!(old_workers.iter().all(|&p| !alive(p)), "{old_workers:?}");
    // Exactly once: the live processes that ever started are the ones listed.
    assert_eq!(live(&wait_started(&web, 4)), pids_of(&after, "web"));
    // start, restart, restore
    assert_eq!(live(&wait_started(&solo, 3)), pids_of(&after, "solo"));
    let answering = pids_answering(port.parse().unwrap(), 2);
    let answering: BTreeSet<u32> = answering.iter().map(|&p| p as u32).collect();
    assert_eq!(answering, pids_of(&after, "web"));
    // New apps get ids after the restored ones.
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "late"],
        &[("MARKER", pmr.dir.join("late.pids").to_str().unwrap())],
    )
    .ok();
    assert_eq!(pmr.proc(3).unwrap()["name"], "late");
}

#[test]
fn stopped_and_errored_apps_come_back_as_they_were() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "idle"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    wait_started(&marker, 1);
    pmr.run(&["stop", "idle"]).ok();
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--name",
            "broken",
            "--max-restarts",
            "2",
        ],
        &[("CRASH_AFTER_MS", "10")],
    )
    .ok();
    pmr.wait_status(1, "errored");
    let before = summary(&pmr.jlist());
    crash_settled_daemon(&pmr);
    assert_eq!(summary(&pmr.jlist()), before);
    assert_eq!(started(&marker).len(), 1, "a stopped app is not started");
}

#[test]
fn kill_forgets_the_table_and_the_next_daemon_starts_empty() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &["start", &fixture("marker.js")],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    // Written by the daemon's writer thread shortly after the change.
    wait_until("the table on disk", || {
        std::fs::read_to_string(pmr.home.join("state.json")).is_ok_and(|s| s.contains("marker.js"))
    });
    assert_eq!(table(&pmr)["apps"].as_array().unwrap().len(), 1);
    let pid = wait_started(&marker, 1)[0];
    pmr.run(&["kill"]).ok();
    assert!(!alive(pid));
    assert!(!pmr.home.join("state.json").exists());
    assert!(pmr.jlist().is_empty());
    assert_eq!(started(&marker).len(), 1);
}

#[test]
fn a_pid_reused_by_another_process_is_not_touched() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "app"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    let orphan = wait_started(&marker, 1)[0];
    pmr.track(orphan);
    crash_settled_daemon(&pmr);
    // An unrelated process now holds the pid the table names (it recorded it at another
    // time: another start time), and the app's own process is not in the table.
    let mut unrelated = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let ticks = pmr_core::procfs::read_stat(unrelated.id())
        .unwrap()
        .start_ticks;
    let mut t = table(&pmr);
    let procs = t["processes"].as_array_mut().unwrap();
    assert_eq!(procs.len(), 1, "{t:#}");
    assert_eq!(procs[0]["pid"], orphan);
    procs[0]["pid"] = unrelated.id().into();
    procs[0]["start_ticks"] = (ticks + 1).into();
    std::fs::write(pmr.home.join("state.json"), t.to_string()).unwrap();

    let after = pmr.jlist();
    assert_eq!(after[0]["pm2_env"]["status"], "online");
    let untouched = alive(unrelated.id());
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    assert!(
        untouched,
        "a process whose start time differs was signalled"
    );
    // The app's own process was still found (environment) and stopped.
    assert!(!alive(orphan), "orphan {orphan} left running");
    assert_eq!(live(&wait_started(&marker, 2)), pids_of(&after, "app"));
}

#[test]
fn a_corrupt_table_is_kept_aside_and_the_daemon_starts_empty() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &["start", &fixture("marker.js")],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    let orphan = wait_started(&marker, 1)[0];
    pmr.track(orphan);
    crash_settled_daemon(&pmr);
    std::fs::write(pmr.home.join("state.json"), "{\"format\": 1, \"apps\": [tr").unwrap();
    assert!(pmr.jlist().is_empty());
    // Its app is forgotten, but its process was found by its environment and stopped.
    assert!(!alive(orphan), "orphan {orphan} left running");
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains("process table of the previous daemon is unreadable"),
        "{log}"
    );
    let kept: Vec<_> = std::fs::read_dir(&pmr.home)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.bad-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(kept[0].path()).unwrap(),
        "{\"format\": 1, \"apps\": [tr"
    );
    // The new daemon writes its own table again.
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "again"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    wait_until("a new table", || {
        std::fs::read_to_string(pmr.home.join("state.json")).is_ok_and(|s| s.contains("\"again\""))
    });
}

#[test]
fn a_crash_loop_carries_on_where_it_was() {
    let pmr = Pmr::new();
    let starts = pmr.dir.join("starts.txt");
    pmr.run_env(
        &[
            "start",
            &fixture("crash.js"),
            "--name",
            "crasher",
            "--restart-delay",
            "100",
        ],
        &[
            ("CRASH_AFTER_MS", "150"),
            ("STARTS_FILE", starts.to_str().unwrap()),
        ],
    )
    .ok();
    let at_crash = pmr.wait_proc(0, "3 restarts", |p| {
        p["pm2_env"]["restart_time"].as_u64() >= Some(3)
    })["pm2_env"]["restart_time"]
        .as_u64()
        .unwrap();
    crash_daemon(&pmr);
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["name"], "crasher");
    // The table may be one change behind the loop (it is written just after each change).
    let restored = p["pm2_env"]["restart_time"].as_u64().unwrap();
    assert!(restored + 1 >= at_crash, "{at_crash} before, {p:#}");
    // The counts went on: it ends as an uninterrupted loop does (15 restarts, see
    // restart_policy.rs; one more if the table was a change behind), not after 16 more runs
    // (which would be 18 or more here).
    let p = pmr.wait_status(0, "errored");
    assert_eq!(p["pm2_env"]["unstable_restarts"], 16, "{p:#}");
    let total = p["pm2_env"]["restart_time"].as_u64().unwrap();
    assert!((15..=16).contains(&total), "{p:#}");
}

#[test]
fn a_daemon_killed_during_a_slow_reload_leaves_one_process() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("first");
    let new_pid = pmr.dir.join("new.pid");
    pmr.run_env(
        &[
            "start",
            &fixture("slow_reload_ready.js"),
            "--name",
            "slow",
            "-i",
            "1",
            "--wait-ready",
            "--listen-timeout",
            "30000",
            "--kill-timeout",
            "500",
        ],
        &[
            ("MARKER", marker.to_str().unwrap()),
            ("NEW_PID_FILE", new_pid.to_str().unwrap()),
        ],
    )
    .ok();
    let old: u32 = wait_file(&marker).trim().parse().unwrap();
    // The reload waits 20 s for the new worker to be ready; the daemon dies meanwhile.
    let mut reload = pmr.cmd().args(["reload", "slow"]).spawn().unwrap();
    let new: u32 = wait_file(&new_pid).trim().parse().unwrap();
    pmr.track(new);
    assert!(alive(old) && alive(new));
    crash_settled_daemon(&pmr);
    let _ = reload.wait();
    // The restored worker is a first one again (ready at once).
    std::fs::remove_file(&marker).unwrap();
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pm2_env"]["status"], "online", "{p:#}");
    let pid = p["pid"].as_u64().unwrap() as u32;
    wait_until("both old processes gone", || !alive(old) && !alive(new));
    assert!(alive(pid) && pid != old && pid != new);
    assert_eq!(wait_file(&marker).trim(), pid.to_string());
}

#[test]
fn a_process_the_table_had_not_recorded_yet_is_found_and_stopped() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "app"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    let orphan = wait_started(&marker, 1)[0];
    pmr.track(orphan);
    crash_settled_daemon(&pmr);
    // As if the daemon died between starting the process and writing the table.
    let mut t = table(&pmr);
    t["processes"] = serde_json::json!([]);
    std::fs::write(pmr.home.join("state.json"), t.to_string()).unwrap();

    let after = pmr.jlist();
    assert_eq!(after[0]["pm2_env"]["status"], "online");
    assert!(!alive(orphan), "orphan {orphan} left running");
    assert_eq!(live(&wait_started(&marker, 2)), pids_of(&after, "app"));
    let log = std::fs::read_to_string(pmr.home.join("pmr.log")).unwrap();
    assert!(
        log.contains(&format!("pid {orphan} (instance 0) is not in the table")),
        "{log}"
    );
}

#[test]
fn a_daemon_killed_while_an_app_is_launching_leaves_one_process() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("m.pids");
    // Never sends 'ready': launching until listen_timeout.
    let mut start = pmr
        .cmd()
        .args([
            "start",
            &fixture("marker.js"),
            "--name",
            "slowpoke",
            "--wait-ready",
            "--listen-timeout",
            "3000",
            "--kill-timeout",
            "300",
        ])
        .env("MARKER", marker.to_str().unwrap())
        .env("IGNORE_SIGINT", "1")
        .spawn()
        .unwrap();
    let first = wait_started(&marker, 1)[0];
    pmr.track(first);
    assert_eq!(pmr.status(0), "launching");
    crash_settled_daemon(&pmr);
    let _ = start.wait();
    // Ignores SIGINT: SIGKILLed after its kill_timeout; the restored one comes online when
    // its listen_timeout passes.
    let p = pmr.wait_status(0, "online");
    assert!(!alive(first), "the first process is still running");
    assert_eq!(live(&wait_started(&marker, 2)), pids_of(&[p], "slowpoke"));
}

#[test]
fn changes_made_after_the_start_survive_too() {
    let pmr = Pmr::new();
    let (web, solo) = (pmr.dir.join("web.pids"), pmr.dir.join("solo.pids"));
    let port = free_port().to_string();
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "web", "-i", "1"],
        &[("MARKER", web.to_str().unwrap()), ("PORT", &port)],
    )
    .ok();
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "solo"],
        &[("MARKER", solo.to_str().unwrap())],
    )
    .ok();
    pmr.run(&["scale", "web", "3"]).ok();
    pmr.run(&["delete", "2"]).ok();
    pmr.run_env(
        &["restart", "solo", "--name", "renamed", "--update-env"],
        &[("MARKER", solo.to_str().unwrap()), ("FLAVOUR", "mint")],
    )
    .ok();
    pmr.run(&["reset", "renamed"]).ok();
    let before = pmr.jlist();
    crash_settled_daemon(&pmr);
    let after = pmr.jlist();
    assert_eq!(summary(&after), summary(&before));
    let names: Vec<_> = after
        .iter()
        .map(|p| (p["pm_id"].clone(), p["name"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (0.into(), "web".into()),
            (1.into(), "renamed".into()),
            (3.into(), "web".into())
        ]
    );
    let renamed = after.iter().find(|p| p["name"] == "renamed").unwrap();
    assert_eq!(env_of(renamed)["FLAVOUR"], "mint");
    assert_eq!(renamed["pm2_env"]["restart_time"], 0, "reset survives");
    assert_eq!(
        renamed["pm2_env"]["created_at"],
        before.iter().find(|p| p["name"] == "renamed").unwrap()["pm2_env"]["created_at"]
    );
    // The instance numbers of web are kept (0 and 2: 1 was deleted).
    let instances: Vec<_> = after
        .iter()
        .filter(|p| p["name"] == "web")
        .map(|p| p["pm2_env"]["NODE_APP_INSTANCE"].clone())
        .collect();
    assert_eq!(instances, [Value::from(0), Value::from(2)]);
}

#[test]
fn a_daemon_killed_in_the_middle_of_a_restart_brings_the_app_back_online() {
    let pmr = Pmr::new();
    let (marker, first) = start_stubborn(&pmr, "stubborn");
    // It ignores SIGINT: the restart's stop half lasts its 20 s kill_timeout.
    let mut restart = pmr.cmd().args(["restart", "stubborn"]).spawn().unwrap();
    pmr.wait_status(0, "stopping");
    crash_daemon(&pmr);
    let _ = restart.wait();
    // Lower the kill_timeout the next daemon waits (it reads the table's spec).
    let mut t = table(&pmr);
    assert_eq!(t["apps"][0]["wanted"], "online", "{t:#}");
    t["apps"][0]["spec"]["kill_timeout"] = 300.into();
    std::fs::write(pmr.home.join("state.json"), t.to_string()).unwrap();
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pm2_env"]["status"], "online", "{p:#}");
    assert!(!alive(first), "SIGKILLed after kill_timeout");
    assert_eq!(live(&wait_started(&marker, 2)), pids_of(&[p], "stubborn"));
}

#[test]
fn the_children_of_a_left_process_go_with_it() {
    let pmr = Pmr::new();
    let gc = pmr.dir.join("gc.pid");
    pmr.run_env(
        &["start", &fixture("grandchild.sh"), "--kill-timeout", "600"],
        &[("GRANDCHILD_PID_FILE", gc.to_str().unwrap())],
    )
    .ok();
    // In the app's process group, ignoring SIGINT.
    let g1: u32 = wait_file(&gc).trim().parse().unwrap();
    pmr.track(g1);
    let leader = pmr.jlist()[0]["pid"].as_u64().unwrap() as u32;
    std::fs::remove_file(&gc).unwrap();
    crash_settled_daemon(&pmr);
    assert!(alive(leader) && alive(g1));
    let after = pmr.jlist();
    assert_eq!(after[0]["pm2_env"]["status"], "online");
    assert!(!alive(leader), "the app's process is left");
    assert!(!alive(g1), "its child is left");
    let g2: u32 = wait_file(&gc).trim().parse().unwrap();
    pmr.track(g2);
    assert_ne!(g1, g2);
}

#[test]
fn an_app_deleted_when_the_daemon_died_stays_deleted() {
    let pmr = Pmr::new();
    let (marker, first) = start_stubborn(&pmr, "doomed");
    // It ignores SIGINT: the delete's stop lasts its 20 s kill_timeout.
    let mut delete = pmr.cmd().args(["delete", "doomed"]).spawn().unwrap();
    pmr.wait_status(0, "stopping");
    wait_until("the app out of the table, its process still in it", || {
        let t = table(&pmr);
        t["apps"].as_array().unwrap().is_empty() && t["processes"][0]["pid"] == first
    });
    crash_daemon(&pmr);
    let _ = delete.wait();
    assert!(pmr.jlist().is_empty());
    assert!(!alive(first), "the process being deleted is left");
    assert_eq!(started(&marker).len(), 1);
}

#[test]
fn a_daemon_killed_while_cluster_workers_start_leaves_each_once() {
    let pmr = Pmr::new();
    // Workers that never listen: launching until their listen_timeout.
    let mut start = pmr
        .cmd()
        .args([
            "start",
            &fixture("no_listen.js"),
            "--name",
            "workers",
            "-i",
            "2",
            "--listen-timeout",
            "2500",
        ])
        .spawn()
        .unwrap();
    let mut old = BTreeSet::new();
    wait_until("two workers launching", || {
        let list = pmr.jlist();
        old = pids_of(&list, "workers");
        list.len() == 2
            && list.iter().all(|p| p["pm2_env"]["status"] == "launching")
            && !old.contains(&0)
    });
    crash_settled_daemon(&pmr);
    let _ = start.wait();
    let after = pmr.jlist();
    assert_eq!(
        summary(&after),
        [
            (0, "workers".into(), 0, "online".into()),
            (1, "workers".into(), 0, "online".into())
        ]
    );
    assert!(old.iter().all(|&p| !alive(p)), "{old:?}");
    let new = pids_of(&after, "workers");
    assert!(new.is_disjoint(&old) && new.iter().all(|&p| alive(p)));
}

/// A script that runs a command right after the daemon was SIGKILLed gets its answer: the
/// dying daemon's socket, which still accepts for a moment, is waited out (not a broken pipe).
#[test]
fn a_command_right_after_a_sigkill_is_answered_by_a_new_daemon() {
    let pmr = Pmr::new();
    let marker = pmr.dir.join("solo.pids");
    pmr.run_env(
        &["start", &fixture("marker.js"), "--name", "solo"],
        &[("MARKER", marker.to_str().unwrap())],
    )
    .ok();
    wait_started(&marker, 1);
    for round in 0..3 {
        wait_table_settled(&pmr);
        let old = pmr.daemon_pid().expect("a daemon pid");
        kill9(old);
        let list = pmr.jlist();
        assert_eq!(summary(&list).len(), 1, "round {round}: {list:?}");
        assert_ne!(pmr.daemon_pid(), Some(old), "round {round}");
    }
}
