//! The web dashboard in a real headless Chromium (Debian's chromium + chromedriver): the page
//! served by the daemon lists the apps, streams a log line written a moment before, restarts an
//! app on a click, and says 401 without (or with a wrong) token. Screenshots go to
//! `target/test-artifacts/dashboard/*.png`.

use crate::support::*;
use crate::webdriver::Browser;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Instant;

/// What the test reads from the page, in one round trip.
const PAGE_STATE: &str = r#"
const q = (s, root) => (root || document).querySelector(s);
const text = (s, root) => q(s, root)?.textContent ?? null;
const auth = q('[data-testid=auth-error]');
return {
  rows: [...document.querySelectorAll('[data-testid=app-row]')].map((r) => ({
    id: Number(r.dataset.id),
    name: text('[data-testid=name]', r),
    status: text('[data-testid=status]', r),
    pid: Number(text('[data-testid=pid]', r)),
    restarts: Number(text('[data-testid=restarts]', r)),
    cpu_points: q('[data-testid=cpu] polyline', r)?.getAttribute('points') || '',
  })),
  logs: [...document.querySelectorAll('[data-testid=log-line]')].map((l) => l.textContent),
  elements_in_logs: q('[data-testid=logs]')?.querySelectorAll('*:not([data-testid=log-line]):not(.tag)').length ?? null,
  stream: document.body.dataset.stream || '',
  state_events: Number(document.body.dataset.stateEvents || 0),
  hash: location.hash,
  auth: !auth || auth.hidden ? null : auth.textContent.replace(/\s+/g, ' '),
  title: document.title,
};
"#;

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls the page until `f` holds; panics with the last page state.
fn wait_page(b: &Browser, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = b.eval(PAGE_STATE);
        if f(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for the page to show {what}; page state: {s:#}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn row<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["rows"].as_array()?.iter().find(|r| r["name"] == name)
}

/// The daemon's HTTP server on a free loopback port; its token.
fn serve_http(pmr: &Pmr) -> (u16, String) {
    let port = free_port();
    pmr.run(&["web", &format!("127.0.0.1:{port}")]).ok();
    let token = wait_file(&pmr.home.join("http.token")).trim().to_string();
    assert_eq!(token.len(), 64, "token: {token:?}");
    (port, token)
}

#[test]
fn dashboard_in_chromium() {
    let pmr = Pmr::new();
    let app = fixture("dash_app.js");
    pmr.run(&["start", &app, "--name", "web"]).ok();
    pmr.run(&["start", &app, "--name", "worker"]).ok();
    let web = pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
    let (port, token) = serve_http(&pmr);
    let shots = artifacts();

    let b = Browser::start(&pmr.dir);
    b.goto(&format!("http://127.0.0.1:{port}/#token={token}"));
    let s = wait_page(&b, "both apps online", |s| {
        ["web", "worker"]
            .iter()
            .all(|n| row(s, n).is_some_and(|r| r["status"] == "online"))
    });
    assert_eq!(s["hash"], "", "the token stays in the address bar");
    assert_eq!(row(&s, "web").unwrap()["pid"], web["pid"]);

    // web's logs: the tail (its start line), then live lines once the stream is open.
    b.click("tr[data-id='0'] [data-testid=name] button");
    let started = format!("dash-app up pid {}", web["pid"]);
    wait_page(&b, "web's start line and the live stream", |s| {
        s["stream"] == "live:0"
            && s["logs"]
                .as_array()
                .unwrap()
                .contains(&started.clone().into())
    });
    pmr.run(&["sendSignal", "SIGUSR2", "web"]).ok();
    let said = format!("dash-app says <i>hello</i> & bye 1 pid {}", web["pid"]);
    let s = wait_page(&b, "the line web just wrote", |s| {
        let logs = s["logs"].as_array().unwrap();
        logs.contains(&said.clone().into()) && logs.contains(&"err dash-app err 1".into())
    });
    assert_eq!(s["elements_in_logs"], 0, "app text became markup: {s:#}");
    b.screenshot(&shots.join("list-and-logs.png"));

    // Restart with a click: the page and jlist both show the new pid and one more restart.
    let before = row(&s, "web").unwrap().clone();
    b.click("tr[data-id='0'] [data-testid=act-restart]");
    let s = wait_page(&b, "web restarted", |s| {
        row(s, "web").is_some_and(|r| {
            r["restarts"] == before["restarts"].as_u64().unwrap() + 1
                && r["pid"] != before["pid"]
                && r["pid"] != 0
                && r["status"] == "online"
        })
    });
    assert!(
        s["state_events"].as_u64().unwrap() >= 2,
        "no state event: {s:#}"
    );
    let after = pmr.proc(0).unwrap();
    assert_eq!(
        after["pm2_env"]["restart_time"],
        row(&s, "web").unwrap()["restarts"]
    );
    assert_eq!(after["pid"], row(&s, "web").unwrap()["pid"]);
    assert_eq!(pmr.proc(1).unwrap()["pm2_env"]["restart_time"], 0);
    // The sparklines have points once `monit` events came (every 2 s).
    wait_page(&b, "a CPU sparkline", |s| {
        row(s, "worker").is_some_and(|r| r["cpu_points"].as_str().unwrap().contains(' '))
    });
    b.screenshot(&shots.join("after-restart.png"));

    // Delete asks first; once accepted the row goes.
    b.click("tr[data-id='1'] [data-testid=act-delete]");
    b.accept_dialog();
    wait_page(&b, "worker gone", |s| row(s, "worker").is_none());
    assert_eq!(
        summary(&pmr.jlist()),
        vec![(0, "web".into(), 1, "online".into())]
    );

    // +1 / −1: `scale` of the row's app.
    let webs = |s: &Value| {
        s["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"] == "web" && r["status"] == "online")
            .count()
    };
    b.click("tr[data-id='0'] [data-testid=act-scale-up]");
    wait_page(&b, "two web instances", |s| webs(s) == 2);
    assert_eq!(pmr.jlist().len(), 2);
    b.click("tr[data-id='0'] [data-testid=act-scale-down]");
    wait_page(&b, "one web instance", |s| {
        webs(s) == 1 && s["rows"].as_array().unwrap().len() == 1
    });
    assert_eq!(pmr.jlist().len(), 1);
    let errors = b.console_errors();
    assert!(
        errors.is_empty(),
        "errors in the browser console: {errors:#?}"
    );

    // No token, then a wrong one: the 401 message, no list.
    b.eval("sessionStorage.clear(); return null;");
    b.goto(&format!("http://127.0.0.1:{port}/"));
    let s = wait_page(&b, "the 401 message", |s| s["auth"].is_string());
    let msg = s["auth"].as_str().unwrap();
    assert!(
        msg.contains("401") && msg.contains("missing bearer token"),
        "{msg}"
    );
    assert_eq!(s["rows"].as_array().unwrap().len(), 0);
    b.screenshot(&shots.join("no-token.png"));
    b.goto(&format!(
        "http://127.0.0.1:{port}/#token={}",
        "0".repeat(64)
    ));
    let s = wait_page(&b, "the 401 message for a wrong token", |s| {
        s["auth"].as_str().is_some_and(|m| m.contains("bad token"))
    });
    assert_eq!(s["hash"], "");
}

/// App-provided strings must never become markup: the page has no HTML-parsing sink at all.
#[test]
fn dashboard_script_has_no_html_sinks() {
    let js = include_str!("../../crates/daemon/src/http/assets/app.js");
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
}
