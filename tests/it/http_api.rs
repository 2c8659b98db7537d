//! The HTTP API (`pmr web`): auth, bad input, every route against real apps, Server-Sent
//! Events, Prometheus `/metrics` read back by a text-format parser, the Unix socket.
//! Requests go through a minimal HTTP/1.0 client over std sockets (one request per connection).

use crate::support::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn exchange(mut s: impl Read + Write, raw: &[u8]) -> Resp {
    // The server may answer (413) and close before the whole body is written.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

fn parse(out: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        r += &format!("Authorization: Bearer {t}\r\n");
    }
    if let Some(b) = body {
        r += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
    } else {
        r += "\r\n";
    }
    r.into_bytes()
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

struct Api {
    port: u16,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        exchange(
            connect(self.port),
            &request(method, path, Some(&self.token), body),
        )
    }
    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None)
    }
    fn post(&self, path: &str, body: &str) -> Resp {
        self.call("POST", path, Some(body))
    }
    fn apps(&self) -> Vec<Value> {
        let r = self.get("/api/apps");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json().as_array().unwrap().clone()
    }
}

/// `pmr web` on a free port (the first command, so the daemon gets `env`).
fn web(pmr: &Pmr, env: &[(&str, &str)]) -> Api {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let r = pmr.run_env(&["web", &addr], env).ok();
    assert!(
        r.stdout.contains(&format!("http://{addr}/")),
        "{}",
        r.stdout
    );
    let token = std::fs::read_to_string(pmr.home.join("http.token")).unwrap();
    Api {
        port,
        token: token.trim().to_string(),
    }
}

fn ticker_body(name: &str) -> String {
    json!({
        "name": name,
        "script": "ticker.js",
        "cwd": fixtures(),
        "env": {"TICK_MS": "100"},
    })
    .to_string()
}

#[test]
fn off_by_default_then_on_with_a_private_token_and_persisted() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("ticker.js"), "--name", "t"])
        .ok();
    let conf = pmr.home.join("conf.json");
    assert!(!pmr.home.join("http.sock").exists());
    assert!(!pmr.home.join("http.token").exists());
    let api = web(&pmr, &[]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(pmr.home.join("http.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(api.token.len(), 64);
    assert!(api.token.bytes().all(|b| b.is_ascii_hexdigit()));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    assert_eq!(saved["pmr"]["http"], format!("127.0.0.1:{}", api.port));

    // Health needs no token; the dashboard page neither.
    let h = exchange(connect(api.port), &request("GET", "/health", None, None));
    assert_eq!(h.status, 200);
    let pid = pmr.daemon_pid().unwrap();
    assert_eq!(h.json()["pid"], pid);
    let page = exchange(connect(api.port), &request("GET", "/", None, None));
    assert_eq!(page.status, 200);
    assert!(page.head.to_ascii_lowercase().contains("text/html"));

    // `--open` prints the URL with the token in the fragment.
    let r = pmr.run(&["web", "--open"]).ok();
    assert!(
        r.stdout.contains(&format!(
            "http://127.0.0.1:{}/#token={}",
            api.port, api.token
        )),
        "{}",
        r.stdout
    );

    // A new daemon serves again from conf.json, with the same token.
    pmr.run(&["kill"]).ok();
    pmr.run(&["ping"]).ok();
    wait_until("the API back after a daemon restart", || {
        TcpStream::connect(("127.0.0.1", api.port)).is_ok()
    });
    assert_eq!(api.get("/api/apps").status, 200);

    // A rotated token replaces the old one at once.
    pmr.run(&["web", "--rotate-token"]).ok();
    let old = api.get("/api/apps");
    assert_eq!((old.status, old.error().as_str()), (401, "bad token"));
    let new = Api {
        port: api.port,
        token: std::fs::read_to_string(pmr.home.join("http.token"))
            .unwrap()
            .trim()
            .to_string(),
    };
    assert_eq!(new.get("/api/apps").status, 200);

    // Off: the port and the socket are gone, and it stays off for the next daemon.
    pmr.run(&["set", "pmr:http", "false"]).ok();
    assert!(TcpStream::connect(("127.0.0.1", api.port)).is_err());
    assert!(!pmr.home.join("http.sock").exists());
    pmr.run(&["kill"]).ok();
    pmr.run(&["ping"]).ok();
    assert!(TcpStream::connect(("127.0.0.1", api.port)).is_err());
    // And on again through the setting.
    pmr.run(&["set", "pmr:http", &format!("127.0.0.1:{}", api.port)])
        .ok();
    assert_eq!(new.get("/api/apps").status, 200);
}

#[test]
fn a_taken_port_is_said_and_changes_nothing() {
    let pmr = Pmr::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let r = pmr.run(&["web", &format!("127.0.0.1:{port}")]).fails();
    assert!(
        r.stderr.contains(&format!("port {port} is already in use")),
        "{}",
        r.stderr
    );
    assert!(!pmr.home.join("conf.json").exists());
    let r = pmr
        .run(&["set", "pmr:http", &format!("127.0.0.1:{port}")])
        .fails();
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    assert!(!pmr.home.join("conf.json").exists());
    // A bad address is refused before anything.
    let r = pmr.run(&["web", "localhost"]).fails();
    assert!(r.stderr.contains("bad address"), "{}", r.stderr);
    pmr.run(&["ping"]).ok();
}

#[test]
fn bad_requests_get_a_json_error_and_the_daemon_lives() {
    let pmr = Pmr::new();
    let api = web(&pmr, &[("PMR_HTTP_BODY_TIMEOUT_MS", "500")]);
    let no = exchange(connect(api.port), &request("GET", "/api/apps", None, None));
    assert_eq!(
        (no.status, no.error().as_str()),
        (401, "missing bearer token")
    );
    let wrong = exchange(
        connect(api.port),
        &request("GET", "/metrics", Some(&"0".repeat(64)), None),
    );
    assert_eq!((wrong.status, wrong.error().as_str()), (401, "bad token"));
    let wrong = exchange(
        connect(api.port),
        &request("GET", "/openapi.json", Some("short"), None),
    );
    assert_eq!(wrong.status, 401);

    // Huge body: declared, and streamed without a length.
    let huge = format!(
        "POST /api/apps HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        api.token,
        4 << 20
    );
    let r = exchange(connect(api.port), huge.as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    let mut chunked = format!(
        "POST /api/apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        api.token
    )
    .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(connect(api.port), &chunked);
    assert_eq!(r.status, 413, "{}", r.body);

    // Slow body: 408 once the (test's short) deadline has passed.
    let mut s = connect(api.port);
    let t0 = Instant::now();
    s.write_all(
        format!(
            "POST /api/apps HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"na",
            api.token
        )
        .as_bytes(),
    )
    .unwrap();
    let r = exchange(s, b"");
    assert_eq!(r.status, 408, "{}", r.body);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    let r = api.post("/api/apps", "{\"name\": ");
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("bad JSON"), "{}", r.body);
    let r = api.get("/api/nothing");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no such route"), "{}", r.body);
    let r = api.call("DELETE", "/api/apps", None);
    assert_eq!(r.status, 405, "{}", r.body);
    let r = api.get("/api/apps/nope");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("nope"), "{}", r.body);
    let r = api.post("/api/apps/nope/restart", "");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api.post("/api/apps/all/explode", "");
    assert_eq!(r.status, 404, "{}", r.body);

    // A start with a bad option: the config file's error, nothing started.
    let bad = json!({"name": "b", "script": "ticker.js", "cwd": fixtures(), "instances": "lots"});
    let r = api.post("/api/apps", &bad.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("instances"), "{}", r.body);
    let typo = json!({"name": "b", "script": "ticker.js", "cwd": fixtures(), "instance": 2});
    let r = api.post("/api/apps", &typo.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("instances"), "did you mean: {}", r.body);
    let rel = json!({"name": "b", "script": "ticker.js", "cwd": "fixtures"});
    let r = api.post("/api/apps", &rel.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error().contains("absolute"), "{}", r.body);
    let missing = json!({"name": "b", "script": "no-such.js", "cwd": fixtures()});
    let r = api.post("/api/apps", &missing.to_string());
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.post("/api/apps", "[1]");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.post("/api/apps/b/scale", "{\"instances\": \"many\"}");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.get("/api/apps/all/logs?lines=5000");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(api.apps().is_empty());

    // Not HTTP at all.
    let r = exchange(connect(api.port), b"\x00\x01garbage\r\n\r\n");
    assert_eq!(r.status, 400);

    // After all that: the daemon answers, on both sides.
    let h = exchange(connect(api.port), &request("GET", "/health", None, None));
    assert_eq!(h.status, 200);
    pmr.run(&["ping"]).ok();
}

#[test]
fn every_operation_through_the_api() {
    let pmr = Pmr::new();
    let api = web(&pmr, &[]);
    let r = api.post("/api/apps", &ticker_body("tick"));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json(), json!({"ok": true, "ids": [0]}));
    let p = pmr.wait_status(0, "online");
    let pid = p["pid"].as_u64().unwrap();

    let list = api.apps();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "tick");
    assert_eq!(list[0]["pm2_env"]["status"], "online");
    // The same array as `pmr jlist`.
    assert_eq!(
        list[0]["pm2_env"]["pm_exec_path"],
        pmr.jlist()[0]["pm2_env"]["pm_exec_path"]
    );
    let one = api.get("/api/apps/tick").json();
    assert_eq!(one[0]["pm_id"], 0);
    let by_id = api.get("/api/apps/0").json();
    assert_eq!(by_id[0]["name"], "tick");

    let r = api.post("/api/apps/tick/restart", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"ok": true, "ids": [0]}));
    let p = pmr.wait_proc(0, "a new pid", |p| {
        p["pm2_env"]["status"] == "online" && p["pid"].as_u64() != Some(pid)
    });
    assert_eq!(p["pm2_env"]["restart_time"], 1);

    let r = api.post("/api/apps/tick/stop", "");
    assert_eq!(r.status, 200, "{}", r.body);
    pmr.wait_status(0, "stopped");
    let r = api.post("/api/apps/tick/start", "");
    assert_eq!(r.status, 200, "{}", r.body);
    pmr.wait_status(0, "online");

    let r = api.post("/api/apps/tick/scale", "{\"instances\": \"+1\"}");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("two instances", || api.apps().len() == 2);
    let r = api.post("/api/apps/tick/scale", "{\"instances\": 1}");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("one instance", || api.apps().len() == 1);

    let mut lines = Value::Null;
    wait_until("log lines", || {
        lines = api.get("/api/apps/tick/logs?lines=3&stream=out").json();
        lines["lines"].as_array().unwrap().len() == 3
    });
    let first = &lines["lines"][0];
    assert_eq!(
        (first["pm_id"].clone(), first["stream"].clone()),
        (json!(0), json!("out"))
    );
    assert!(
        first["text"].as_str().unwrap().starts_with("tick "),
        "{lines}"
    );

    let r = api.post("/api/apps/tick/reset", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.post("/api/apps/tick/delete", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(api.apps().is_empty());
    assert_eq!(api.get("/api/apps/tick").status, 404);

    // Same routes on the Unix socket.
    let s = std::os::unix::net::UnixStream::connect(pmr.home.join("http.sock")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let r = exchange(s, &request("GET", "/api/apps", Some(&api.token), None));
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    let s = std::os::unix::net::UnixStream::connect(pmr.home.join("http.sock")).unwrap();
    let r = exchange(s, &request("GET", "/api/apps", None, None));
    assert_eq!(r.status, 401);

    let doc = api.get("/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    for (method, path) in [
        ("get", "/health"),
        ("get", "/api/apps"),
        ("post", "/api/apps"),
        ("get", "/api/apps/{sel}"),
        ("post", "/api/apps/{sel}/{action}"),
        ("post", "/api/apps/{name}/scale"),
        ("get", "/api/apps/{sel}/logs"),
        ("get", "/api/events"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

/// Read an event stream until `want` has been seen in it.
fn read_events_until(s: &mut TcpStream, seen: &mut String, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 8192];
    while !want(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out; stream so far:\n{seen}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("stream closed; so far:\n{seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("{e}; so far:\n{seen}"),
        }
    }
}

#[test]
fn events_stream_state_changes_monit_and_log_lines() {
    let pmr = Pmr::new();
    let api = web(&pmr, &[]);
    assert_eq!(api.post("/api/apps", &ticker_body("tick")).status, 201);
    pmr.wait_status(0, "online");
    let mut s = connect(api.port);
    s.write_all(&request(
        "GET",
        "/api/events?logs=tick",
        Some(&api.token),
        None,
    ))
    .unwrap();
    let mut seen = String::new();
    read_events_until(&mut s, &mut seen, |t| t.contains(": pmr events"));
    assert!(
        seen.to_ascii_lowercase().contains("text/event-stream"),
        "{seen}"
    );
    read_events_until(&mut s, &mut seen, |t| t.contains("event: log\ndata: "));
    let log = seen
        .split("event: log\ndata: ")
        .nth(1)
        .and_then(|r| r.split('\n').next())
        .unwrap();
    let log: Value = serde_json::from_str(log).unwrap();
    assert_eq!(
        (log["pm_id"].clone(), log["name"].clone()),
        (json!(0), json!("tick"))
    );
    assert!(log["text"].as_str().unwrap().starts_with("tick "), "{log}");

    let r = api.post("/api/apps/tick/restart", "");
    assert_eq!(r.status, 200);
    read_events_until(&mut s, &mut seen, |t| {
        t.contains("event: state\ndata: {\"pm_id\":0,\"name\":\"tick\",\"status\":\"online\"")
    });
    let online = seen
        .split("event: state\ndata: ")
        .filter_map(|r| serde_json::from_str::<Value>(r.split('\n').next()?).ok())
        .find(|e| e["status"] == "online")
        .unwrap();
    assert_eq!(online["restart_time"], 1);
    assert!(online["pid"].as_u64().unwrap() > 0);
    assert!(online["at"].as_i64().unwrap() > 0);
    assert!(seen.contains("\"status\":\"stopping\""), "{seen}");
    read_events_until(&mut s, &mut seen, |t| {
        t.contains("event: monit\ndata: [{\"pm_id\":0")
    });
    drop(s);
    // The daemon lives on after the reader left.
    assert_eq!(api.get("/api/apps").status, 200);
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let pmr = Pmr::new();
    let api = web(&pmr, &[]);
    assert_eq!(api.post("/api/apps", &ticker_body("tick")).status, 201);
    let name_odd = json!({"name": "odd \"name\"\\", "script": "ticker.js", "cwd": fixtures()});
    assert_eq!(api.post("/api/apps", &name_odd.to_string()).status, 201);
    pmr.wait_status(0, "online");
    pmr.wait_status(1, "online");
    assert_eq!(api.post("/api/apps/1/stop", "").status, 200);
    pmr.wait_status(1, "stopped");
    let r = api.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("text/plain; version=0.0.4"), "{}", r.head);
    let lines: Vec<String> = r.body.lines().map(str::to_string).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.iter().cloned().map(Ok)).unwrap();
    // The parser skips lines it cannot read: every sample line must have become a sample.
    let sample_lines = lines
        .iter()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{}", r.body);
    let value = |metric: &str, id: &str| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("id") == Some(id))
            .unwrap_or_else(|| panic!("no {metric} for {id}:\n{}", r.body));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    assert_eq!(value("pm2_up", "0"), 1.0);
    assert_eq!(value("pm2_up", "1"), 0.0);
    assert!(value("pm2_memory", "0") > 1e6);
    assert_eq!(value("pm2_restarts", "0"), 0.0);
    assert_eq!(value("pm2_instances", "0"), 1.0);
    let tick = scrape
        .samples
        .iter()
        .find(|s| s.metric == "pm2_cpu" && s.labels.get("id") == Some("0"))
        .unwrap();
    assert_eq!(tick.labels.get("name"), Some("tick"));
    assert_eq!(tick.labels.get("instance"), Some("0"));
    assert_eq!(tick.labels.get("interpreter"), Some("node"));
    let odd = scrape
        .samples
        .iter()
        .find(|s| s.metric == "pm2_cpu" && s.labels.get("id") == Some("1"))
        .unwrap();
    // Escaped as the format says (this parser leaves label values as written).
    assert_eq!(odd.labels.get("name"), Some(r#"odd \"name\"\\"#));
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "pm2_restarts"
            && matches!(s.value, prometheus_parse::Value::Counter(_))));
    for own in [
        "pmr_daemon_rss_bytes",
        "pmr_daemon_threads",
        "pmr_daemon_fds",
        "pmr_daemon_uptime_seconds",
        "pmr_daemon_apps",
        "pmr_daemon_processes",
    ] {
        assert!(scrape.samples.iter().any(|s| s.metric == own), "{own}");
    }
    let apps = scrape
        .samples
        .iter()
        .find(|s| s.metric == "pmr_daemon_apps")
        .unwrap();
    assert!(matches!(apps.value, prometheus_parse::Value::Gauge(v) if v == 2.0));
}
