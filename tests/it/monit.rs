//! `pmr monit` in a real terminal: tmux (private server socket per test, killed at the end)
//! runs it at 80×24; `capture-pane` reads the screen, `send-keys` types.

use crate::support::*;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A tmux server of our own running `pmr monit` in a shell that says how monit exited.
struct Tmux {
    sock: String,
}

impl Tmux {
    fn monit(pmr: &Pmr, no_color: bool) -> Tmux {
        let sock = format!(
            "pmr-monit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let t = Tmux { sock };
        let colour = if no_color {
            "NO_COLOR=1"
        } else {
            "-u NO_COLOR"
        };
        let script = format!(
            "echo shell-before-monit; env {colour} PMR_HOME='{}' '{BIN}' monit; echo \"monit exited $?\"; exec sleep 300",
            pmr.home.display()
        );
        let ok = t
            .cmd()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "80",
                "-y",
                "24",
            ])
            .args(["sh", "-c", &script])
            .env_remove("TMUX")
            .status()
            .expect("tmux must be installed (.ci/run installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.sock]);
        c
    }

    fn out(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.out(&["capture-pane", "-p"])
    }

    fn screen_escapes(&self) -> String {
        self.out(&["capture-pane", "-p", "-e"])
    }

    fn keys(&self, keys: &[&str]) {
        assert!(self
            .cmd()
            .arg("send-keys")
            .args(keys)
            .status()
            .unwrap()
            .success());
    }

    fn resize(&self, w: u16, h: u16) {
        let (w, h) = (w.to_string(), h.to_string());
        assert!(self
            .cmd()
            .args(["resize-window", "-x", &w, "-y", &h])
            .status()
            .unwrap()
            .success());
    }

    /// Wait until the screen satisfies `f`; the screen is in the failure message.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let last = self.screen();
            if f(&last) {
                return last;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{last}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Wait until monit has exited with `code` and the terminal is restored; the screen.
    fn exited(&self, code: i32) -> String {
        let s = self.wait("monit exited", |s| s.contains("monit exited"));
        assert!(s.contains(&format!("monit exited {code}")), "{s}");
        assert!(!self.alternate_screen());
        s
    }

    /// The monit process: the child of the pane's shell.
    fn monit_pid(&self) -> u32 {
        let sh = self.out(&["display-message", "-p", "#{pane_pid}"]);
        let sh = sh.trim();
        let kids = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap();
        kids.split_whitespace().next().unwrap().parse().unwrap()
    }

    fn alternate_screen(&self) -> bool {
        self.out(&["display-message", "-p", "#{alternate_on}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let path = self.out(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.cmd().arg("kill-server").status();
        // The server leaves its socket file behind.
        if !path.trim().is_empty() {
            let _ = std::fs::remove_file(path.trim());
        }
    }
}

/// Whether ANSI text holds a colour (SGR 30–38, 40–48, 90–107), as opposed to bold, reverse
/// or 39/49 (back to the default colours, which tmux writes around any attribute).
fn has_colour(ansi: &str) -> bool {
    ansi.split("\x1b[").skip(1).any(|seq| {
        let Some(end) = seq.find(|c: char| c.is_ascii_alphabetic()) else {
            return false;
        };
        seq[end..].starts_with('m')
            && seq[..end].split(';').any(|p| {
                p.parse::<u32>()
                    .is_ok_and(|n| matches!(n, 30..=38 | 40..=48 | 90..=107))
            })
    })
}

/// A row of the process list: `<id> <name> ...`, inside the list's border.
fn row_of(screen: &str, id: u32, name: &str) -> bool {
    screen.lines().any(|l| {
        let mut w = l.trim_start_matches(['║', '│', ' ']).split_whitespace();
        w.next() == Some(&id.to_string()) && w.next() == Some(name)
    })
}

fn start_two(pmr: &Pmr) {
    pmr.run_env(
        &["start", &fixture("ticker.js"), "--name", "web"],
        &[("TICK_MS", "300")],
    )
    .ok();
    pmr.run_env(
        &["start", &fixture("ticker.js"), "--name", "worker"],
        &[("TICK_MS", "60000")],
    )
    .ok();
    pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
}

#[test]
fn monit_lists_logs_acts_filters_and_quits_cleanly() {
    let pmr = Pmr::new();
    start_two(&pmr);
    let web_pid = pmr.proc(0).unwrap()["pid"].as_u64().unwrap();
    let t = Tmux::monit(&pmr, true);

    let s = t.wait("both apps listed", |s| {
        row_of(s, 0, "web") && row_of(s, 1, "worker")
    });
    assert!(t.alternate_screen(), "monit runs on the alternate screen");
    assert!(s.contains("online"), "{s}");
    // The first process is selected: its live lines reach the log pane.
    t.wait("a log line of web", |s| {
        s.contains(&format!("pid {web_pid}")) && s.contains("Logs web (0)")
    });
    assert!(!has_colour(&t.screen_escapes()), "NO_COLOR: no colour");

    // r restarts the selected process.
    t.keys(&["r"]);
    pmr.wait_proc(0, "web restarted by monit", |p| {
        p["pid"].as_u64().is_some_and(|p| p != web_pid) && p["pm2_env"]["status"] == "online"
    });
    t.wait("the restart reported", |s| s.contains("restart web (0): ✓"));

    // Down selects worker; d asks, n keeps it.
    t.keys(&["Down"]);
    t.wait("worker selected", |s| s.contains("Logs worker (1)"));
    t.keys(&["d"]);
    t.wait("the delete question", |s| {
        s.contains("Delete worker (1)? y/n")
    });
    t.keys(&["n"]);
    t.wait("delete cancelled", |s| s.contains("cancelled"));
    assert_eq!(pmr.jlist().len(), 2, "n keeps the app");

    // The filter hides what does not match.
    t.keys(&["/", "w", "o", "r", "Enter"]);
    let s = t.wait("the filter applied", |s| {
        s.contains("Processes 1/2 filter: wor")
    });
    assert!(row_of(&s, 1, "worker") && !row_of(&s, 0, "web"), "{s}");
    t.keys(&["/", "Escape"]);
    t.wait("the filter cleared", |s| {
        row_of(s, 0, "web") && s.contains("Processes 2/2")
    });

    // d then y deletes the selected process (worker, still selected).
    t.keys(&["d"]);
    t.wait("the delete question", |s| {
        s.contains("Delete worker (1)? y/n")
    });
    t.keys(&["y"]);
    wait_until("worker deleted", || pmr.jlist().len() == 1);
    t.wait("worker gone from the list", |s| {
        !row_of(s, 1, "worker") && row_of(s, 0, "web")
    });

    // s stops, S starts again; + and - scale the selected app.
    t.keys(&["s"]);
    pmr.wait_status(0, "stopped");
    t.wait("stopped shown", |s| s.contains("stopped"));
    t.keys(&["S"]);
    pmr.wait_status(0, "online");
    t.keys(&["+"]);
    wait_until("web scaled to 2", || pmr.jlist().len() == 2);
    t.wait("the new instance listed", |s| s.contains("Processes 2/2"));
    t.keys(&["-"]);
    wait_until("web scaled back to 1", || pmr.jlist().len() == 1);

    // Too small: a message, not a broken layout; back to normal when it grows again.
    t.resize(40, 10);
    t.wait("the too-small message", |s| {
        s.contains("Terminal too small")
    });
    // Keys cannot act on the selection the message hides.
    let pid = pmr.proc(0).unwrap()["pid"].as_u64();
    t.keys(&["r", "s"]);
    t.resize(80, 24);
    t.wait("the panes again", |s| row_of(s, 0, "web"));
    t.resize(40, 10);
    t.wait("the too-small message", |s| {
        s.contains("Terminal too small")
    });
    let p = pmr.proc(0).unwrap();
    assert_eq!(p["pid"].as_u64(), pid, "no restart while too small");
    assert_eq!(p["pm2_env"]["status"], "online", "no stop while too small");
    t.resize(80, 24);
    t.wait("the panes again", |s| row_of(s, 0, "web"));

    // q leaves: the shell's screen is back and monit exited 0.
    t.keys(&["q"]);
    let s = t.exited(0);
    assert!(
        s.contains("shell-before-monit"),
        "primary screen restored: {s}"
    );
}

#[test]
fn monit_colours_ctrl_c_sigterm_and_a_vanished_daemon() {
    let pmr = Pmr::new();
    start_two(&pmr);
    let t = Tmux::monit(&pmr, false);
    t.wait("both apps listed", |s| {
        row_of(s, 0, "web") && row_of(s, 1, "worker")
    });
    assert!(has_colour(&t.screen_escapes()), "colours without NO_COLOR");
    // Ctrl-C quits (raw mode makes it a key) and restores the terminal.
    t.keys(&["C-c"]);
    t.exited(0);
    drop(t);

    // SIGTERM from outside: the same clean exit.
    let t = Tmux::monit(&pmr, true);
    t.wait("both apps listed", |s| row_of(s, 0, "web"));
    let pid = t.monit_pid();
    // The monit process this test started (the pane's child).
    signal(pid, Signal::SIGTERM);
    t.exited(0);
    drop(t);

    // The daemon killed under it: a message on the restored terminal, exit 1.
    let t = Tmux::monit(&pmr, true);
    t.wait("both apps listed", |s| row_of(s, 0, "web"));
    pmr.run(&["kill"]).ok();
    let s = t.exited(1);
    assert!(s.contains("the pmr daemon is gone"), "{s}");
}

#[test]
fn monit_needs_a_terminal() {
    let pmr = Pmr::new();
    let r = pmr.run(&["monit"]).fails();
    assert!(r.stderr.contains("monit needs a terminal"), "{}", r.stderr);
    let r = pmr.run(&["dashboard"]).fails();
    assert!(r.stderr.contains("monit needs a terminal"), "{}", r.stderr);
    assert!(!pmr.home.join("rpc.sock").exists(), "no daemon started");
}

/// `t` on an app that registered @pm2/io actions: type `action param`, Enter, and the reply is
/// on the status line (the real @pm2/io app of tests/apps/axm).
#[test]
fn monit_triggers_an_action_of_a_pm2_io_app() {
    let pmr = Pmr::new();
    let script = crate::apps::app("axm").join("metrics.js");
    pmr.run(&["start", script.to_str().unwrap(), "--name", "io"])
        .ok();
    pmr.wait_proc(0, "actions registered", |p| {
        p["pm2_env"]["axm_actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let t = Tmux::monit(&pmr, true);
    t.wait("the app listed", |s| row_of(s, 0, "io"));
    t.keys(&["t"]);
    t.wait("the action prompt", |s| s.contains("trigger io>"));
    t.keys(&["-l", "echo from-monit"]);
    t.keys(&["Enter"]);
    t.wait("the reply", |s| s.contains(r#"{"got":"from-monit"}"#));
    t.keys(&["q"]);
    t.exited(0);
}
