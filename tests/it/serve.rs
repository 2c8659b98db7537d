//! `pmr serve`: the static file server app (pmr itself running `__serve`), over real HTTP.
//! `PM2_SERVE_HOST=127.0.0.1` keeps it on loopback (the default is all interfaces, as PM2).

use crate::support::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// One HTTP/1.0 request with the path sent exactly as given (no client-side normalization).
fn get(port: u16, path: &str, extra: &[&str]) -> std::io::Result<Resp> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in extra {
        req.push_str(&format!("{h}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: body.to_string(),
    })
}

fn must_get(port: u16, path: &str, extra: &[&str]) -> Resp {
    get(port, path, extra).unwrap_or_else(|e| panic!("GET {path} on {port}: {e}"))
}

fn wait_serving(port: u16) {
    wait_until(&format!("the server on {port}"), || {
        get(port, "/", &[]).is_ok()
    });
}

fn site(pmr: &Pmr) -> std::path::PathBuf {
    let root = pmr.dir.join("site");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("style.css"), "body{}").unwrap();
    std::fs::write(root.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join("logo.PNG"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(root.join("README"), "plain").unwrap();
    std::fs::write(root.join("docs/index.html"), "docs home").unwrap();
    std::fs::write(root.join("files/notes.txt"), "n").unwrap();
    root
}

fn serve(pmr: &Pmr, args: &[&str]) -> Run {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    pmr.run_env(&all, &[("PM2_SERVE_HOST", "127.0.0.1")])
}

#[test]
fn serve_is_an_app_serving_files_with_their_content_types() {
    let pmr = Pmr::new();
    let root = site(&pmr);
    let port = free_port();
    let out = serve(&pmr, &["site", &port.to_string()]).ok();
    let name = format!("static-page-server-{port}");
    assert!(
        out.stdout
            .contains(&format!("Serving {} on port {port}", root.display())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&name), "the table shows the app");
    let p = pmr.wait_status(0, "online");
    assert_eq!(p["name"], name.as_str());
    let env = env_of(&p);
    assert_eq!(env["PM2_SERVE_PORT"], port.to_string().as_str());
    assert_eq!(env["PM2_SERVE_PATH"], root.to_str().unwrap());
    assert_eq!(env["PM2_SERVE_SPA"], "false");
    assert_eq!(p["pm2_env"]["pm_cwd"], root.to_str().unwrap());
    wait_serving(port);

    for (path, ct, body) in [
        ("/", "text/html", "<h1>home</h1>"),
        ("/index.html", "text/html", "<h1>home</h1>"),
        ("/style.css", "text/css", "body{}"),
        ("/app.js", "application/javascript", "console.log(1)"),
        ("/data.json?cache=1", "application/json", "{\"a\":1}"),
        ("/README", "text/plain", "plain"),
        ("/docs/", "text/html", "docs home"),
    ] {
        let r = must_get(port, path, &[]);
        assert_eq!((r.status, r.body.as_str()), (200, body), "GET {path}");
        assert_eq!(r.headers["content-type"], ct, "GET {path}");
        assert_eq!(r.headers["access-control-allow-origin"], "*");
    }
    let png = must_get(port, "/logo.PNG", &[]);
    assert_eq!(png.headers["content-type"], "image/png");
    assert_eq!(png.headers["content-length"], "4");

    // A directory without the slash is redirected, so its relative links work.
    let r = must_get(port, "/docs", &[]);
    assert_eq!((r.status, r.headers["location"].as_str()), (301, "/docs/"));
    // Never to another site: `//evil.example` is a protocol-relative URL.
    std::fs::create_dir(root.join("evil.example")).unwrap();
    for path in ["//evil.example", "/\\evil.example"] {
        let r = must_get(port, path, &[]);
        assert_eq!(r.status, 301, "{path}");
        assert_eq!(r.headers["location"], "/evil.example/", "{path}");
    }

    // 404: PM2's text, then the site's own 404.html.
    for path in ["/nope", "/deep/route", "/files/", "/style.css/x"] {
        let r = must_get(port, path, &[]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "404 Not Found"),
            "{path}"
        );
        assert_eq!(r.headers["content-type"], "text/html");
    }
    std::fs::write(root.join("404.html"), "<p>lost</p>").unwrap();
    let r = must_get(port, "/nope", &[]);
    assert_eq!((r.status, r.body.as_str()), (404, "<p>lost</p>"));

    // Managed like any app: stop closes the port, restart reopens it, delete removes it.
    pmr.run(&["stop", &name]).ok();
    assert_eq!(pmr.status(0), "stopped");
    assert!(get(port, "/", &[]).is_err(), "still serving after stop");
    pmr.run(&["restart", &name]).ok();
    pmr.wait_status(0, "online");
    wait_serving(port);
    // Serving the port again after a stop restarts the app with the new settings.
    assert_eq!(must_get(port, "/deep/route", &[]).status, 404);
    pmr.run(&["stop", &name]).ok();
    serve(&pmr, &["site", &port.to_string(), "--spa"]).ok();
    assert_eq!(pmr.jlist().len(), 1, "the same app, restarted");
    pmr.wait_status(0, "online");
    wait_serving(port);
    assert_eq!(must_get(port, "/deep/route", &[]).body, "<h1>home</h1>");
    pmr.run(&["delete", &name]).ok();
    assert!(pmr.jlist().is_empty());
    assert!(get(port, "/", &[]).is_err(), "still serving after delete");
}

#[test]
fn spa_ftp_and_basic_auth() {
    let pmr = Pmr::new();
    site(&pmr);
    let spa = free_port();
    let ftp = free_port();
    serve(
        &pmr,
        &["site", &spa.to_string(), "--spa", "--name", "front"],
    )
    .ok();
    serve(
        &pmr,
        &[
            "site",
            "--port",
            &ftp.to_string(),
            "--ftp",
            "--basic-auth-username",
            "admin",
            "--basic-auth-password",
            "s3:cret",
        ],
    )
    .ok();
    let names: Vec<String> = pmr
        .jlist()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["front", &format!("static-page-server-{ftp}")]);
    wait_serving(spa);
    wait_serving(ftp);

    // --spa: unknown paths serve index.html; `/<basename>` first, for nested routes' assets.
    let r = must_get(spa, "/users/42/edit", &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "<h1>home</h1>"));
    assert_eq!(r.headers["content-type"], "text/html");
    let r = must_get(spa, "/users/style.css", &[]);
    assert_eq!(
        (r.headers["content-type"].as_str(), r.body.as_str()),
        ("text/css", "body{}")
    );
    assert_eq!(must_get(spa, "/style.css", &[]).body, "body{}");

    // Basic auth: 401 with the challenge unless the credentials are right. "s3:cret" has a
    // colon, which PM2 gets wrong.
    let challenge = "Basic realm=\"Authentication service\"";
    for auth in [
        None,
        Some("Authorization: Basic YWRtaW46d3Jvbmc="), // admin:wrong
        Some("Authorization: Basic YWRtaW46czM="),     // admin:s3
        Some("Authorization: Bearer YWRtaW46czM6Y3JldA=="),
    ] {
        let r = must_get(ftp, "/", &auth.into_iter().collect::<Vec<_>>());
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, "401 Unauthorized"),
            "{auth:?}"
        );
        assert_eq!(r.headers["www-authenticate"], challenge);
    }
    let ok = ["Authorization: Basic YWRtaW46czM6Y3JldA=="]; // admin:s3:cret
    let r = must_get(ftp, "/", &ok);
    assert_eq!((r.status, r.body.as_str()), (200, "<h1>home</h1>"));
    // --ftp: a directory without index.html is listed; one with it serves it.
    let r = must_get(ftp, "/files/", &ok);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<title>Index of /files/</title>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<a href=\"notes.txt\">notes.txt</a>"),
        "{}",
        r.body
    );
    assert_eq!(must_get(ftp, "/docs/", &ok).body, "docs home");
}

#[test]
fn nothing_outside_the_root_is_served() {
    let pmr = Pmr::new();
    let root = site(&pmr);
    std::fs::write(pmr.dir.join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    std::os::unix::fs::symlink("style.css", root.join("alias.css")).unwrap();
    let port = free_port();
    serve(&pmr, &["site", &port.to_string()]).ok();
    wait_serving(port);

    // Dot segments resolve as in a URL, clamped at `/`: they name root/secret.txt, absent.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/secret.txt",
        "/docs/../../secret.txt",
    ] {
        let r = must_get(port, path, &[]);
        assert_eq!(r.status, 404, "{path}");
    }
    // Encoded slashes that climb out after decoding, and symlinks leading out: 403.
    for path in [
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/docs/..%2F..%2Fsecret.txt",
        "/link.txt",
        "/up/secret.txt",
        "/up/",
    ] {
        let r = must_get(port, path, &[]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "403 Forbidden"),
            "{path}"
        );
    }
    // A symlink inside the root is fine.
    assert_eq!(must_get(port, "/alias.css", &[]).body, "body{}");
    // A malformed escape is a 400 (it crashes PM2's server): the server keeps running.
    assert_eq!(must_get(port, "/%E0%A4%A", &[]).status, 400);
    assert_eq!(must_get(port, "/a%00b", &[]).status, 400);
    assert_eq!(must_get(port, "/", &[]).status, 200);
    assert_eq!(pmr.proc(0).unwrap()["pm2_env"]["restart_time"], 0);
}

#[test]
fn bad_serve_input_starts_nothing() {
    let pmr = Pmr::new();
    site(&pmr);
    std::fs::write(pmr.dir.join("file.txt"), "x").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["site", "80a"], "invalid port \"80a\""),
        (&["site", "70000"], "invalid port \"70000\""),
        (&["missing", "8123"], "cannot serve"),
        (&["file.txt", "8123"], "not a directory"),
        (
            &["site", "8123", "--basic-auth-username", "u"],
            "--basic-auth-password",
        ),
    ];
    for (args, msg) in cases {
        let r = serve(&pmr, args).fails();
        assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
    }
    assert!(pmr.jlist().is_empty());
    assert!(!Path::new(&pmr.home.join("logs/static-page-server-8123-out.log")).exists());
}

#[test]
fn large_files_are_streamed_not_loaded() {
    let pmr = Pmr::new();
    let root = site(&pmr);
    const SIZE: usize = 48 << 20;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let port = free_port();
    serve(&pmr, &["site", &port.to_string()]).ok();
    wait_serving(port);
    let pid = pmr.wait_status(0, "online")["pid"].as_u64().unwrap();

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
    assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(raw[at..] == data[..], "the body differs from the file");

    // Peak resident memory of the server stays far below the file's size.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        hwm_kb < (SIZE as u64 >> 10) / 2,
        "server peaked at {hwm_kb} kB serving a {} kB file",
        SIZE >> 10
    );
}
