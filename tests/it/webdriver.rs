//! A tiny WebDriver client for the dashboard test: Debian's chromedriver driving headless
//! Chromium, spoken to over its HTTP JSON API with std's TcpStream (a handful of commands: no
//! crate needed). chromedriver runs in its own process group with Chromium under it; dropping
//! the `Browser` ends the session, then kills that whole group.

use crate::support::{free_port, wait_until};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The key under which WebDriver answers an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// Chromium's real binary (Debian's `/usr/bin/chromium` is a shell wrapper around it) and
/// chromedriver, if installed.
fn find() -> Option<(PathBuf, PathBuf)> {
    let lib = Path::new("/usr/lib/chromium/chromium");
    let browser = if lib.is_file() {
        Some(lib.to_path_buf())
    } else {
        on_path(&["chromium", "chromium-browser", "google-chrome"])
    }?;
    let lib_driver = Path::new("/usr/lib/chromium/chromedriver");
    let driver =
        on_path(&["chromedriver"]).or_else(|| lib_driver.is_file().then(|| lib_driver.into()))?;
    Some((browser, driver))
}

/// Chromium and chromedriver, installed with apt when missing and possible (root, apt-get
/// present); otherwise the test fails here with what to install: it never skips.
pub fn locate() -> (PathBuf, PathBuf) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    if find().is_none() && nix::unistd::geteuid().is_root() && on_path(&["apt-get"]).is_some() {
        INSTALL.call_once(|| {
            eprintln!("dashboard test: installing chromium and chromium-driver with apt-get");
            let apt = |args: &[&str]| {
                let _ = Command::new("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null())
                    .status();
            };
            apt(&["update", "-qq"]);
            apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
        });
    }
    find().unwrap_or_else(|| {
        panic!(
            "the dashboard test needs Chromium and chromedriver: none found (looked for \
             /usr/lib/chromium/chromium, chromium, chromium-browser, google-chrome and chromedriver \
             on PATH). Install Debian's packages: apt-get install chromium chromium-driver \
             (.ci/run does)"
        )
    })
}

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

/// Chromium's profile, removed with the browser.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// chromedriver on a free port, then a headless Chromium session.
    pub fn start(scratch: &Path) -> Browser {
        let (chromium, chromedriver) = locate();
        let port = free_port();
        let profile = scratch.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(scratch.join("chromedriver.log")).unwrap();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Its own group, which Chromium's processes join: one kill ends them all.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()))
        };
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: TempDir(profile.clone()),
        };
        wait_until("chromedriver ready", || {
            b.http("GET", "/status", None)
                .map(|v| v["value"]["ready"] == true)
                .unwrap_or(false)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Containers and root: Chromium's sandbox needs namespaces they lack.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {v}"))
            .to_string();
        b
    }

    /// One HTTP/1.1 request to chromedriver (connection closed after it); the JSON answer.
    fn http(&self, method: &str, path: &str, body: Option<Value>) -> std::io::Result<Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver keeps the connection open whatever the request says: read the header,
        // then exactly the body it announces.
        let mut raw = Vec::new();
        let mut buf = [0u8; 16384];
        let split = loop {
            if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::other(
                    "connection closed before the header end",
                ));
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut payload = raw[split + 4..].to_vec();
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        if let Some(len) = length {
            while payload.len() < len {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::other("connection closed in the body"));
                }
                payload.extend_from_slice(&buf[..n]);
            }
        } else {
            s.read_to_end(&mut payload)?;
            if head.contains("transfer-encoding: chunked") {
                payload = dechunk(&payload);
            }
        }
        serde_json::from_slice(&payload).map_err(std::io::Error::other)
    }

    /// A WebDriver command; panics with chromedriver's error if it fails.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self
            .http(method, path, body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        if let Some(err) = v["value"]["error"].as_str() {
            panic!(
                "chromedriver {method} {path}: {err}: {}",
                v["value"]["message"]
            );
        }
        v
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        self.call(method, &path, body)["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page; what it returns, as JSON.
    pub fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A real click (WebDriver scrolls to the element and clicks its centre) on the first
    /// element matching `css`.
    pub fn click(&self, css: &str) {
        let e = self.cmd(
            "POST",
            "element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {e}"))
            .to_string();
        self.cmd("POST", &format!("element/{id}/click"), Some(json!({})));
    }

    /// Accepts the `confirm()` dialog the page shows, once it is there.
    pub fn accept_dialog(&self) {
        let path = format!("/session/{}/alert/accept", self.session);
        wait_until("a confirmation dialog", || {
            self.http("POST", &path, Some(json!({})))
                .is_ok_and(|v| v["value"]["error"].is_null())
        });
    }

    /// The browser console's errors since the last call (script errors, CSP violations, failed
    /// requests).
    pub fn console_errors(&self) -> Vec<String> {
        let v = self.cmd("POST", "se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, to: &Path) {
        let b64 = self.cmd("GET", "screenshot", None);
        let png = base64_decode(b64.as_str().expect("screenshot is base64"));
        std::fs::write(to, png).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.http("DELETE", &path, None);
        }
        // The process group this test created (chromedriver's own pid).
        let group = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
