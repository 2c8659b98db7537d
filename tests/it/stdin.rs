//! Apps' stdin and output without a newline: a partial line reaches the log files at once,
//! lines stay whole under load, `send` and `attach` reach a fork-mode app's stdin (held open by
//! the daemon, as PM2), PM2's errors, no fd left behind by restarts.

use crate::support::*;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_partial_line_reaches_the_files_at_once_and_its_rest_follows_as_pm2_writes_it() {
    let pmr = Pmr::new();
    let script = fixture("prompt.js");
    pmr.run(&["start", &script, "--name", "raw"]).ok();
    pmr.run(&["start", &script, "--name", "dated", "--time"])
        .ok();
    // No newline ever comes until we answer, and the app keeps running.
    wait_until("the prompt in raw-out.log", || {
        pmr.log_of("raw-out.log") == "name? "
    });
    wait_until("the partial line in raw-error.log", || {
        pmr.log_of("raw-error.log") == "x"
    });
    let date = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}: ";
    let prompt = regex::Regex::new(&format!("^{date}name\\? \n$")).unwrap();
    wait_until("the dated prompt, as a line of its own", || {
        prompt.is_match(&pmr.log_of("dated-out.log"))
    });
    assert_eq!(pmr.status(0), "online");

    // The rest of the line: the same line in a raw file, a line of its own with a prefix.
    pmr.run(&["send", "raw", "bob"]).ok();
    pmr.run(&["send", "dated", "bob"]).ok();
    wait_until("the raw line completed", || {
        pmr.log_of("raw-out.log") == "name? hello bob\n" && pmr.log_of("raw-error.log") == "xy\n"
    });
    let out = regex::Regex::new(&format!("^{date}name\\? \n{date}hello bob\n$")).unwrap();
    let err = regex::Regex::new(&format!("^{date}x\n{date}y\n$")).unwrap();
    wait_until("the dated lines", || {
        out.is_match(&pmr.log_of("dated-out.log")) && err.is_match(&pmr.log_of("dated-error.log"))
    });
}

#[test]
fn whole_lines_stay_whole_in_a_merged_dated_file_under_a_burst() {
    let pmr = Pmr::new();
    const N: usize = 40_000;
    pmr.run_env(
        &[
            "start",
            &fixture("burst.js"),
            "--name",
            "b",
            "-i",
            "2",
            "--merge-logs",
            "--time",
        ],
        &[("LINES", &N.to_string())],
    )
    .ok();
    let last = format!("{:08}", N - 1);
    wait_until("both instances' last lines", || {
        pmr.log_of("b-out.log").matches(&last).count() == 2
    });
    let log = pmr.log_of("b-out.log");
    let line = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}: (\d{8})x{91}$").unwrap();
    let mut seen = vec![0u8; N];
    let mut count = 0;
    let lines: Vec<&str> = log.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let c = line.captures(l).unwrap_or_else(|| {
            let around = &lines[i.saturating_sub(3)..(i + 4).min(lines.len())];
            panic!("line {count} was split or mixed: {l:?}; around it: {around:#?}")
        });
        seen[c[1].parse::<usize>().unwrap()] += 1;
        count += 1;
    }
    assert_eq!(count, 2 * N);
    assert!(
        seen.iter().all(|&n| n == 2),
        "every number once per instance"
    );
}

#[test]
fn send_reaches_an_app_reading_stdin_which_never_sees_eof() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("stdin_echo.js"), "--name", "echo"])
        .ok();
    wait_until("the app reads", || {
        pmr.log_of("echo-out.log").contains("reading stdin")
    });
    let r = pmr.run(&["send", "0", "hello", "world"]).ok();
    assert!(
        r.stdout.contains("│ echo"),
        "the list, as PM2: {}",
        r.stdout
    );
    pmr.run(&["send", "echo", "again"]).ok();
    wait_until("both lines echoed", || {
        pmr.log_of("echo-out.log")
            .ends_with("got:hello world\ngot:again\n")
    });
    // Its stdin stays open (PM2: a pipe the daemon holds), so the app is still reading.
    assert!(!pmr.log_of("echo-out.log").contains("stdin ended"));
    assert_eq!(pmr.status(0), "online");

    // A restart gives the new process a new pipe; the old ones are closed, not kept.
    let daemon = pmr.daemon_pid().unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .count()
    };
    let before = fds();
    for i in 1..=5u64 {
        pmr.run(&["restart", "echo"]).ok();
        pmr.wait_proc(0, "restarted", |p| p["pm2_env"]["restart_time"] == i);
        pmr.wait_status(0, "online");
        wait_until("the new process reads", || {
            pmr.log_of("echo-out.log").matches("reading stdin").count() == i as usize + 1
        });
    }
    wait_until("the daemon's fds back to their number", || fds() <= before);
    pmr.run(&["send", "echo", "after restarts"]).ok();
    wait_until("the new process got it", || {
        pmr.log_of("echo-out.log").ends_with("got:after restarts\n")
    });
}

#[test]
fn send_errors_are_pm2s() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("stdin_echo.js"), "--name", "echo"])
        .ok();
    pmr.run(&[
        "start",
        &fixture("stdin_echo.js"),
        "--name",
        "cl",
        "-i",
        "1",
    ])
    .ok();
    pmr.wait_status(1, "online");
    let r = pmr.run(&["send", "nope", "x"]).fails();
    assert!(
        r.stderr.contains("Process with ID <nope> unknown."),
        "{}",
        r.stderr
    );
    let r = pmr.run(&["send", "7", "x"]).fails();
    assert!(
        r.stderr.contains("Process with ID <7> unknown."),
        "{}",
        r.stderr
    );
    let r = pmr.run(&["send", "cl", "x"]).fails();
    assert!(
        r.stderr
            .contains("Cannot send line to processes in cluster mode"),
        "{}",
        r.stderr
    );
    pmr.run(&["stop", "echo"]).ok();
    let r = pmr.run(&["send", "echo", "x"]).fails();
    assert!(
        r.stderr.contains("Process with ID <0> offline."),
        "{}",
        r.stderr
    );
    assert_ne!(pmr.run(&["send", "echo"]).code, 0, "a line is required");
    let r = pmr.run(&["attach", "nope"]).fails();
    assert!(
        r.stderr.contains("Process with ID <nope> unknown."),
        "{}",
        r.stderr
    );
}

#[test]
fn attach_forwards_lines_and_shows_the_output_until_stdin_ends() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("stdin_echo.js"), "--name", "echo"])
        .ok();
    wait_until("the app reads", || {
        pmr.log_of("echo-out.log").contains("reading stdin")
    });
    let mut child = pmr
        .cmd()
        .args(["attach", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = line_channel(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + DEADLINE;
    // The subscription may start after the first line is sent: send until one comes back.
    let mut got = false;
    'outer: for i in 0.. {
        writeln!(stdin, "ping {i}").unwrap();
        let round = Instant::now() + Duration::from_secs(2);
        while Instant::now() < round {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with("got:ping ") => {
                    got = true;
                    break 'outer;
                }
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "no echo through attach");
    }
    assert!(got);
    drop(stdin);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < deadline,
            "attach did not end with its stdin"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(pmr.log_of("echo-out.log").contains("got:ping 0\n"));
}
