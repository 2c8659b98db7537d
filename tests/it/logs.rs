//! Logs: live streaming, formats, per-instance vs merged files, rotation (size, retention,
//! compression), reopen, flush, an app exiting mid-line, bad input, files that cannot be
//! written.

use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// A running `pmr logs ...` whose stdout lines arrive on a channel.
struct Follower {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Follower {
    fn start(pmr: &Pmr, args: &[&str]) -> Follower {
        let mut child = pmr
            .cmd()
            .arg("logs")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = line_channel(child.stdout.take().unwrap());
        Follower { child, rx }
    }

    /// The next line for which `f` holds (earlier lines are consumed).
    fn wait_line(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for a line: {what}"),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The rotated files of `logs/<live>` (`<stem>__<date>...`), oldest first.
fn rotated(pmr: &Pmr, live: &str) -> Vec<PathBuf> {
    let stem = live.strip_suffix(".log").unwrap();
    let mut v: Vec<PathBuf> = std::fs::read_dir(pmr.home.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{stem}__"))
        })
        .collect();
    // Names sort by date then `_N`; compare numerically on N.
    v.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        let n = n
            .trim_end_matches(".gz")
            .trim_end_matches(".log")
            .to_string();
        let (date, seq) = n.split_at(stem.len() + 2 + 19);
        (
            date.to_string(),
            seq.trim_start_matches('_').parse::<u64>().unwrap_or(0),
        )
    });
    v
}

fn gunzip(path: &Path) -> String {
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "gzip -dc {}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

fn tick_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.split("tick ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn streaming_follows_new_lines_across_restart_and_rotation() {
    let pmr = Pmr::new();
    // Global rotation settings, read by the daemon when it starts.
    pmr.run(&["set", "pmr-logrotate:max_size", "2K"]).ok();
    pmr.run_env(
        &["start", &fixture("ticker.js"), "--name", "tick"],
        &[("TICK_MS", "10")],
    )
    .ok();
    let f = Follower::start(&pmr, &["tick", "--lines", "0"]);
    let l = f.wait_line("a streamed out line", |l| l.contains(" | tick "));
    assert!(l.starts_with("0|tick  | tick "), "{l:?}");
    let l = f.wait_line("a streamed err line", |l| l.contains(" | err "));
    assert!(l.starts_with("0|tick  | err "), "{l:?}");

    // A restart: the same stream carries the new process's lines.
    let old = pmr.wait_status(0, "online")["pid"].as_u64().unwrap();
    pmr.run(&["restart", "tick"]).ok();
    let new = pmr.wait_proc(0, "a new pid", |p| {
        p["pid"].as_u64().is_some_and(|p| p != 0 && p != old)
    })["pid"]
        .as_u64()
        .unwrap();
    f.wait_line("a line of the new process", |l| {
        l.ends_with(&format!("pid {new}"))
    });

    // Rotation at 2 KiB happens every few ticks; lines keep coming after it.
    wait_until("a rotated tick-out file", || {
        !rotated(&pmr, "tick-out.log").is_empty()
    });
    let before = rotated(&pmr, "tick-out.log").len();
    wait_until("another rotation", || {
        rotated(&pmr, "tick-out.log").len() > before
    });
    f.wait_line("a line after the rotation", |l| {
        l.ends_with(&format!("pid {new}"))
    });
    for r in rotated(&pmr, "tick-out.log") {
        let len = std::fs::metadata(&r).unwrap().len();
        assert!(len <= 2048 && len > 0, "{} is {len} bytes", r.display());
    }
}

#[test]
fn logs_without_an_app_includes_the_daemon_log_and_bad_input_fails() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    let r = pmr.run(&["logs", "--nostream"]).ok().stdout;
    assert!(
        r.contains("[TAILING] Tailing last 15 lines for [all] processes"),
        "{r}"
    );
    assert!(r.contains("pmr.log last 15 lines:"), "{r}");
    assert!(
        r.lines()
            .any(|l| l.starts_with("PMR        | ") && l.contains("daemon")),
        "{r}"
    );

    // The daemon's own lines are streamed too.
    let f = Follower::start(&pmr, &["--lines", "0"]);
    // Wait until the follower is subscribed: its header is printed after subscribing.
    f.wait_line("the header", |l| l.starts_with("[TAILING]"));
    pmr.run(&["start", &fixture("run.sh"), "--name", "sh"]).ok();
    // The app's line and the daemon's line about it come in either order.
    let (mut daemon_line, mut app_line) = (false, false);
    while !(daemon_line && app_line) {
        let l = f.wait_line("the daemon's online line and the app's line", |l| {
            l.starts_with("PMR") || l.starts_with("0|sh")
        });
        // Streamed lines pad names to the longest seen so far, as PM2 does.
        daemon_line |= l.starts_with("PMR") && l.contains(" | ") && l.contains("App [sh:0] online");
        app_line |= l.starts_with("0|sh  | shell");
    }

    let r = pmr.run(&["logs", "nope", "--nostream"]).fails();
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let r = pmr
        .run(&["logs", "sh", "--lines", "-3", "--nostream"])
        .fails();
    assert!(r.stderr.contains("--lines"), "{}", r.stderr);
    pmr.run(&["logs", "sh", "--lines", "x"]).fails();
}

#[test]
fn file_formats_json_and_dates_and_an_app_exiting_mid_line() {
    let pmr = Pmr::new();
    let script = fixture("lines.js");
    let start = |name: &str, extra: &[&str]| {
        let mut args = vec!["start", &script, "--name", name, "--no-autorestart"];
        args.extend_from_slice(extra);
        pmr.run_env(&args, &[("LINES", "3")]).ok();
    };
    start("j", &["--log-type", "json"]);
    start("t", &["--log-date-format", "YYYY/MM/DD HH:mm [h]"]);
    start("tm", &["--time"]);
    start("plain", &[]);
    for id in 0..4 {
        pmr.wait_status(id, "stopped");
    }
    // The partial last line is written whole, with a newline, in each format.
    wait_until("plain log complete", || {
        pmr.log_of("plain-out.log").ends_with("partial-end\n")
    });
    assert_eq!(
        pmr.log_of("plain-out.log"),
        "line 1\nline 2\nline 3\npartial-end\n"
    );

    wait_until("json log complete", || {
        pmr.log_of("j-out.log").lines().count() == 4
    });
    let lines: Vec<Value> = pmr
        .log_of("j-out.log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["message"], "line 1");
    assert_eq!(lines[3]["message"], "partial-end");
    for v in &lines {
        assert_eq!(v["type"], "out");
        assert_eq!(v["app_name"], "j");
        assert_eq!(v["process_id"], 0);
        let ts = v["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts:?}");
    }

    wait_until("dated log complete", || {
        pmr.log_of("t-out.log").lines().count() == 4
    });
    let re =
        regex::Regex::new(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2} h: (line \d|partial-end)$").unwrap();
    for l in pmr.log_of("t-out.log").lines() {
        assert!(re.is_match(l), "{l:?}");
    }
    wait_until("time log complete", || {
        pmr.log_of("tm-out.log").lines().count() == 4
    });
    let re =
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}: (line \d|partial-end)$").unwrap();
    for l in pmr.log_of("tm-out.log").lines() {
        assert!(re.is_match(l), "{l:?}");
    }

    // `logs --json` prints one object per line, tails included, and nothing else.
    let out = pmr
        .run(&["logs", "plain", "--json", "--nostream", "--lines", "2"])
        .ok()
        .stdout;
    let objs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(objs.len(), 2, "{out}");
    assert_eq!(objs[1]["message"], "partial-end");
    assert_eq!(objs[1]["app"], "plain");
    assert_eq!(objs[1]["id"], 3);
    assert_eq!(objs[1]["stream"], "out");
    assert!(objs[1].get("time").is_some());
}

#[test]
fn streamed_json_timestamps_raw_and_stream_filters() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    let json = Follower::start(&pmr, &["tick", "--json", "--lines", "0"]);
    let ts = Follower::start(&pmr, &["tick", "--timestamp", "--lines", "0"]);
    let custom = Follower::start(&pmr, &["0", "--timestamp", "[at] HH:mm", "--lines", "0"]);
    let raw = Follower::start(&pmr, &["tick", "--raw", "--lines", "0", "--out"]);
    let errs = Follower::start(&pmr, &["tick", "--err", "--lines", "0"]);

    let l = json.wait_line("a JSON line", |l| l.contains("\"out\""));
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["app"], "tick");
    assert_eq!(v["id"], 0);
    assert!(v["message"].as_str().unwrap().starts_with("tick "), "{l}");
    let t = v["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["app", "id", "stream", "time", "message"]
    );

    let l = ts.wait_line("a timestamped line", |l| l.contains("| tick "));
    let re =
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2} 0\|tick  \| tick \d+").unwrap();
    assert!(re.is_match(&l), "{l:?}");
    let l = custom.wait_line("a custom timestamp", |l| l.contains("| tick "));
    let re = regex::Regex::new(r"^at \d{2}:\d{2} 0\|tick  \| tick \d+").unwrap();
    assert!(re.is_match(&l), "{l:?}");

    let l = raw.wait_line("a raw line", |l| l.starts_with("tick "));
    assert!(
        regex::Regex::new(r"^tick \d+ pid \d+$")
            .unwrap()
            .is_match(&l),
        "{l:?}"
    );
    let l = errs.wait_line("an err line", |l| l.contains('|'));
    assert!(
        l.starts_with("0|tick  | err "),
        "--err shows only errors: {l:?}"
    );
}

#[test]
fn per_instance_files_unless_merged() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "sep", "-i", "2"])
        .ok();
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "mrg",
        "-i",
        "2",
        "--merge-logs",
    ])
    .ok();
    for f in ["sep-out-0.log", "sep-out-1.log"] {
        wait_until(f, || pmr.log_of(f).contains("shell out"));
        assert_eq!(pmr.log_of(f).lines().count(), 1);
    }
    wait_until("both instances in mrg-out.log", || {
        pmr.log_of("mrg-out.log").lines().count() == 2
    });
    let merged = pmr.log_of("mrg-out.log");
    let pids: Vec<&str> = merged
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_ne!(pids[0], pids[1], "{merged}");
    assert!(!pmr.home.join("logs/mrg-out-2.log").exists());
    assert!(!pmr.home.join("logs/sep-out.log").exists());
}

/// All 100-byte burst lines of the rotated files then the live file, in order.
fn burst_lines(pmr: &Pmr, live: &str) -> Vec<String> {
    let mut all = String::new();
    for r in rotated(pmr, live) {
        if r.extension().is_some_and(|e| e == "gz") {
            all.push_str(&gunzip(&r));
        } else {
            all.push_str(&read(&r));
        }
    }
    all.push_str(&pmr.log_of(live));
    all.lines().map(str::to_string).collect()
}

fn check_burst(lines: &[String], first: usize, n: usize) {
    assert_eq!(lines.len(), n - first, "line count");
    for (i, l) in lines.iter().enumerate() {
        let want = format!("{:08}", first + i);
        assert!(
            l.len() == 99 && l.starts_with(&want),
            "line {i} is {l:?}, expected {want}…"
        );
    }
}

#[test]
fn size_rotation_under_a_burst_keeps_every_line_in_order() {
    let pmr = Pmr::new();
    pmr.run(&["set", "pmr-logrotate:max_size", "1M"]).ok();
    pmr.run(&["set", "pmr-logrotate:retain", "1000"]).ok();
    const N: usize = 50_000;
    pmr.run_env(
        &["start", &fixture("burst.js"), "--name", "burst"],
        &[("LINES", &N.to_string())],
    )
    .ok();
    let last = format!("{:08}", N - 1);
    wait_until("the last line", || {
        pmr.log_of("burst-out.log")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last))
    });
    let files = rotated(&pmr, "burst-out.log");
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 1 << 20, "{} has {len} bytes", f.display());
        assert_eq!(len % 100, 0, "{} holds whole lines", f.display());
    }
    check_burst(&burst_lines(&pmr, "burst-out.log"), 0, N);
}

#[test]
fn retention_and_compression() {
    let pmr = Pmr::new();
    pmr.run(&["set", "pmr-logrotate:max_size", "10K"]).ok();
    pmr.run(&["set", "pm2-logrotate:retain", "3"]).ok();
    pmr.run(&["set", "pmr-logrotate:compress", "true"]).ok();
    let r = pmr.run(&["get", "pmr-logrotate:retain"]).ok();
    assert_eq!(r.stdout.trim(), "3");
    pmr.run(&["set", "pmr-logrotate:max_size", "huge"]).fails();
    pmr.run(&["set", "pmr-logrotate:colour", "blue"]).fails();

    const N: usize = 2000; // 200 KB: 20 rotations of 10 KB
    pmr.run_env(
        &["start", &fixture("burst.js"), "--name", "b"],
        &[("LINES", &N.to_string())],
    )
    .ok();
    let last = format!("{:08}", N - 1);
    wait_until("3 compressed files kept, the rest deleted", || {
        let files = rotated(&pmr, "b-out.log");
        let done = pmr
            .log_of("b-out.log")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last));
        done && files.len() == 3
            && files
                .iter()
                .all(|f| f.to_string_lossy().ends_with(".log.gz"))
    });
    assert!(!std::fs::read_dir(pmr.home.join("logs")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    // What is kept is the newest part, contiguous up to the live file.
    let lines = burst_lines(&pmr, "b-out.log");
    let first: usize = lines[0][..8].parse().unwrap();
    assert!(first > 0);
    check_burst(&lines, first, N);
}

#[test]
fn reload_logs_and_sigusr2_reopen_moved_files_without_loss() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "tick"])
        .ok();
    let live = pmr.home.join("logs/tick-out.log");
    wait_until("some ticks", || tick_numbers(&read(&live)).len() > 3);
    // What the system's logrotate does without copytruncate: move the file, then signal.
    let moved1 = pmr.dir.join("tick-out.log.1");
    std::fs::rename(&live, &moved1).unwrap();
    wait_until("lines still go to the moved file", || {
        tick_numbers(&read(&moved1)).len() > 6
    });
    assert!(!live.exists());
    let r = pmr.run(&["reloadLogs"]).ok();
    assert!(r.stdout.contains("reloaded"), "{}", r.stdout);
    wait_until("a new file at the path", || {
        !tick_numbers(&read(&live)).is_empty()
    });

    let moved2 = pmr.dir.join("tick-out.log.2");
    std::fs::rename(&live, &moved2).unwrap();
    let daemon = pmr.daemon_pid().unwrap();
    signal(daemon, Signal::SIGUSR2);
    wait_until("a new file after SIGUSR2", || {
        tick_numbers(&read(&live)).len() > 2
    });
    pmr.run(&["stop", "tick"]).ok();
    pmr.wait_status(0, "stopped");
    let all = [read(&moved1), read(&moved2), read(&live)].concat();
    let n = tick_numbers(&all);
    let expected: Vec<u64> = (1..=*n.last().unwrap()).collect();
    assert_eq!(n, expected, "every tick once, in order");
}

#[test]
fn flush_empties_app_logs_and_the_daemon_log() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "sh"]).ok();
    wait_until("output", || {
        pmr.log_of("sh-out.log").contains("shell out")
            && pmr.log_of("sh-error.log").contains("shell err")
    });
    pmr.run(&["flush", "sh"]).ok();
    assert_eq!(pmr.log_of("sh-out.log"), "");
    assert_eq!(pmr.log_of("sh-error.log"), "");
    assert!(!read(&pmr.home.join("pmr.log")).is_empty());
    // After a flush the writer goes on at the start of the file (no hole of zeros).
    pmr.run(&["restart", "sh"]).ok();
    wait_until("output again", || {
        pmr.log_of("sh-out.log").contains("shell out")
    });
    assert!(pmr.log_of("sh-out.log").starts_with("shell out"));
    pmr.run(&["flush"]).ok();
    assert_eq!(pmr.log_of("sh-out.log"), "");
    assert!(!read(&pmr.home.join("pmr.log")).contains("online"));
    pmr.run(&["flush", "nope"]).fails();
}

#[test]
fn a_slow_reader_gets_a_skip_marker_and_does_not_slow_the_app() {
    let pmr = Pmr::new();
    pmr.run(&["ping"]).ok();
    // A follower of every app (also those started later) that stops reading once subscribed.
    let mut child = pmr
        .cmd()
        .args(["logs", "--lines", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut header = String::new();
    out.read_line(&mut header).unwrap();
    assert!(header.starts_with("[TAILING]"), "{header}");
    const N: usize = 100_000;
    pmr.run_env(
        &["start", &fixture("burst.js"), "--name", "burst"],
        &[("LINES", &N.to_string())],
    )
    .ok();
    let last = format!("{:08}", N - 1);
    wait_until("the whole burst in the file", || {
        pmr.log_of("burst-out.log")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last))
    });
    assert_eq!(pmr.log_of("burst-out.log").lines().count(), N);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if line.contains("lines skipped") {
                let _ = tx.send(line);
                break;
            }
        }
    });
    let l = rx.recv_timeout(DEADLINE).expect("a skip marker");
    let n: u64 = regex::Regex::new(r"(\d+) lines skipped")
        .unwrap()
        .captures(&l)
        .unwrap()[1]
        .parse()
        .unwrap();
    assert!(n > 0 && n < N as u64, "{l}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn unwritable_log_path_fails_the_start_naming_it_and_disabled_logs_write_nothing() {
    let pmr = Pmr::new();
    std::fs::write(pmr.dir.join("blocker"), "a file, not a directory").unwrap();
    let r = pmr
        .run(&["start", &fixture("run.sh"), "-o", "blocker/out.log"])
        .fails();
    assert!(
        r.stderr
            .contains(&*pmr.dir.join("blocker/out.log").to_string_lossy()),
        "{}",
        r.stderr
    );

    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "quiet",
        "--disable-logs",
    ])
    .ok();
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "null",
        "-o",
        "/dev/null",
    ])
    .ok();
    wait_until("stderr of null", || {
        pmr.log_of("null-error.log").contains("shell err")
    });
    assert!(!pmr.home.join("logs/null-out.log").exists());
    assert!(!pmr.home.join("logs/quiet-out.log").exists());
    assert!(!pmr.home.join("logs/quiet-error.log").exists());
}

#[test]
fn an_apps_log_rotate_block_overrides_the_global_settings() {
    let pmr = Pmr::new();
    pmr.run(&["set", "pmr-logrotate:max_size", "1M"]).ok();
    pmr.run(&["set", "pmr-logrotate:retain", "1000"]).ok();
    let eco = pmr.dir.join("ecosystem.json");
    let apps = serde_json::json!({"apps": [
        {"name": "small", "script": fixture("burst.js"), "env": {"LINES": "1000"},
         "log_rotate": {"max_size": "20K"}},
        {"name": "timed", "script": fixture("ticker.js"), "env": {"TICK_MS": "20"},
         "log_rotate": {"interval": "1s", "max_size": "10M"}},
    ]});
    std::fs::write(&eco, apps.to_string()).unwrap();
    pmr.run(&["start", eco.to_str().unwrap()]).ok();
    let last = format!("{:08}", 999);
    wait_until("the small app's last line", || {
        pmr.log_of("small-out.log")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last))
    });
    // 100 KB at 20 KB per file: 4 full rotated files (the global 1M would give none).
    let files = rotated(&pmr, "small-out.log");
    assert_eq!(files.len(), 4, "{files:?}");
    check_burst(&burst_lines(&pmr, "small-out.log"), 0, 1000);

    // The interval rotates the ticker's non-empty file every second.
    wait_until("two timed rotations", || {
        rotated(&pmr, "timed-out.log").len() >= 2
    });
    pmr.run(&["stop", "timed"]).ok();
    pmr.wait_status(1, "stopped");
    let mut all = String::new();
    for f in rotated(&pmr, "timed-out.log") {
        all.push_str(&read(&f));
    }
    all.push_str(&pmr.log_of("timed-out.log"));
    let n = tick_numbers(&all);
    let expected: Vec<u64> = (1..=*n.last().unwrap()).collect();
    assert_eq!(n, expected);
}

/// The daemon's threads.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

#[test]
fn fifty_apps_share_a_few_writer_threads_and_keep_their_lines_in_order() {
    let pmr = Pmr::new();
    const APPS: usize = 50;
    const N: usize = 2000;
    let eco = pmr.dir.join("ecosystem.json");
    let apps: Vec<Value> = (0..APPS)
        .map(|i| {
            serde_json::json!({"name": format!("n{i}"), "script": fixture("numbered.sh"),
                               "env": {"TAG": format!("n{i}"), "LINES": N.to_string()}})
        })
        .collect();
    std::fs::write(&eco, serde_json::json!({ "apps": apps }).to_string()).unwrap();
    pmr.run(&["start", eco.to_str().unwrap()]).ok();
    let daemon = pmr.daemon_pid().unwrap();
    let last = |i: usize| format!("n{i} {}", N - 1);
    wait_until("every app's last line", || {
        (0..APPS).all(|i| {
            pmr.log_of(&format!("n{i}-out.log"))
                .lines()
                .last()
                .is_some_and(|l| l == last(i))
        })
    });
    // 100 open log files (out and err of each app): a thread per file would make 100 more.
    let n = threads(daemon);
    assert!(n <= 16, "the daemon has {n} threads");
    for i in 0..APPS {
        let text = pmr.log_of(&format!("n{i}-out.log"));
        let expected: String = (0..N).map(|k| format!("n{i} {k}\n")).collect();
        assert!(
            text == expected,
            "n{i}-out.log is not its {N} lines in order"
        );
    }
}

/// The capacity of the pipe on `fd` of process `pid`.
fn pipe_size(pid: u32, fd: u32) -> i32 {
    let f = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap()
}

#[test]
fn console_log_per_line_burst_keeps_every_line_whole_and_in_order() {
    let pmr = Pmr::new();
    const N: usize = 100_000;
    pmr.run_env(
        &["start", &fixture("console_lines.js"), "--name", "lines"],
        &[("LINES", &N.to_string())],
    )
    .ok();
    let last = format!("{:08}", N - 1);
    wait_until("the last line", || {
        pmr.log_of("lines-out.log")
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last))
    });
    check_burst(&burst_lines(&pmr, "lines-out.log"), 0, N);
    // The stream was busy: its pipe was grown so the app does not block while the daemon
    // gathers lines.
    let pid = pmr.proc(0).unwrap()["pid"].as_u64().unwrap() as u32;
    assert_eq!(pipe_size(pid, 1), 1 << 20);
}

#[test]
fn a_single_line_from_an_idle_app_reaches_the_file_and_the_stream() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("stdin_echo.js"), "--name", "echo"])
        .ok();
    wait_until("the app's first line", || {
        pmr.log_of("echo-out.log").contains("reading stdin")
    });
    let follower = Follower::start(&pmr, &["echo", "--raw", "--lines", "0"]);
    // Lines sent before the follower subscribed are not streamed: send until one is.
    let mut k = 0;
    let t0 = loop {
        let t0 = Instant::now();
        pmr.run(&["send", "echo", &format!("ping{k}")]).ok();
        if follower
            .rx
            .recv_timeout(std::time::Duration::from_secs(2))
            .is_ok_and(|l| l.contains(&format!("got:ping{k}")))
        {
            break t0;
        }
        k += 1;
        assert!(k < 10, "no line reached `pmr logs`");
    };
    eprintln!("one line: `pmr send` to `pmr logs` in {:?}", t0.elapsed());
    wait_until("the line in the file", || {
        pmr.log_of("echo-out.log")
            .contains(&format!("got:ping{k}\n"))
    });
    eprintln!("one line: `pmr send` to the file in {:?}", t0.elapsed());
}

#[test]
fn files_that_cannot_be_written_drop_their_lines_and_never_hold_up_the_others() {
    let pmr = Pmr::new();
    // Two log files on a full disk (writes fail with ENOSPC): more than the writer threads.
    let full: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            let p = pmr.dir.join(format!("{n}.log"));
            std::os::unix::fs::symlink("/dev/full", &p).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    for (name, path) in ["full_a", "full_b"].iter().zip(&full) {
        pmr.run_env(
            &[
                "start",
                &fixture("ticker.js"),
                "--name",
                name,
                "-o",
                path,
                "-e",
                path,
            ],
            &[("TICK_MS", "2")],
        )
        .ok();
    }
    pmr.run_env(
        &["start", &fixture("ticker.js"), "--name", "steady"],
        &[("TICK_MS", "50")],
    )
    .ok();
    let dropped = |p: &Value| p["pm2_env"]["pmr_log_lines_dropped"].as_u64().unwrap_or(0);
    for id in [0, 1] {
        pmr.wait_proc(id, "dropped log lines", |p| dropped(p) > 0);
    }

    // While both keep failing, the steady app's lines keep reaching its file: a run of
    // consecutive ticks, each seen well within the second a writer thread used to sleep on a
    // failed write (on a full disk that never empties, it slept for good). A hiccup of the
    // loaded machine only restarts the run.
    const RUN: usize = 10;
    let gap = std::time::Duration::from_millis(700);
    let last_tick = || tick_numbers(&pmr.log_of("steady-out.log")).last().copied();
    let (mut last, mut seen_at, mut run) = (last_tick(), Instant::now(), 0);
    wait_until(
        &format!("{RUN} ticks in a row, each within {gap:?}"),
        || {
            let now = last_tick();
            if now != last {
                run = if seen_at.elapsed() < gap { run + 1 } else { 1 };
                (last, seen_at) = (now, Instant::now());
            }
            run >= RUN
        },
    );
    // The failing apps run on, their drops counted.
    let list = pmr.jlist();
    assert!(dropped(&list[0]) > 0 && dropped(&list[1]) > 0);
    assert!(
        list[2]["pm2_env"].get("pmr_log_lines_dropped").is_none(),
        "{:#}",
        list[2]["pm2_env"]
    );
    assert_eq!(pmr.status(0), "online");
    let d = pmr.run(&["describe", "full_a"]).ok().stdout;
    let row = d
        .lines()
        .find(|l| l.contains("dropped log lines"))
        .unwrap_or_else(|| panic!("no dropped count in\n{d}"));
    let n: u64 = row.split('│').nth(2).unwrap().trim().parse().unwrap();
    assert!(n > 0, "{row}");
    let d = pmr.run(&["describe", "steady"]).ok().stdout;
    assert!(!d.contains("dropped log lines"), "{d}");
    // Said once per file in pmr.log, not once per failed batch.
    let log = read(&pmr.home.join("pmr.log"));
    for path in &full {
        let said = log.matches(&format!("cannot write {path}: ")).count();
        assert_eq!(said, 1, "{log}");
    }
}
