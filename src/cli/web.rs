//! `pmr web [ADDR] [--open] [--stop] [--rotate-token]` and the `pmr:http` setting
//! (`pmr set pmr:http ADDR|false`): turn the daemon's HTTP API on, move it or off. The daemon
//! binds first; only once it has is `conf.json` written, so a taken port changes nothing.

use crate::client::Client;
use anyhow::{bail, Result};
use clap::Args;
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response, WebRequest};
use pmr_daemon::http::{is_off, parse_addr, CONF_KEY, CONF_SECTION, DEFAULT_ADDR};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct WebArgs {
    /// HOST:PORT to listen on (default: the address in conf.json, else 127.0.0.1:9615).
    /// An address other than loopback must be given here and is warned about.
    pub addr: Option<String>,
    /// Print the dashboard URL with the token (and open it in a browser if there is a display).
    #[arg(long)]
    pub open: bool,
    /// Turn the HTTP API off.
    #[arg(long, conflicts_with_all = ["addr", "open"])]
    pub stop: bool,
    /// Make a new token (the old one stops working at once).
    #[arg(long = "rotate-token")]
    pub rotate_token: bool,
}

fn saved(home: &Home) -> Option<String> {
    let conf = super::conf_file::read(home).ok()?;
    match conf.get(CONF_SECTION)?.get(CONF_KEY)? {
        Value::String(s) if !is_off(s) => Some(s.clone()),
        _ => None,
    }
}

fn save(home: &Home, value: &str) -> Result<()> {
    let mut conf = super::conf_file::read(home)?;
    let entry = conf
        .entry(CONF_SECTION.to_string())
        .or_insert_with(|| Value::Object(Default::default()));
    if !entry.is_object() {
        *entry = Value::Object(Default::default());
    }
    entry
        .as_object_mut()
        .unwrap()
        .insert(CONF_KEY.to_string(), Value::String(value.to_string()));
    super::conf_file::write(home, &conf)
}

fn ask(client: &mut Client, req: Request) -> Result<(Option<String>, String)> {
    match super::call(client, &req)? {
        Response::Web { listen, token_file } => Ok((listen, token_file)),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

fn warn_if_open(addr: &std::net::SocketAddr) {
    if !addr.ip().is_loopback() {
        eprintln!(
            "{} the HTTP API listens on {addr}, not a loopback address: anyone who can reach it can try the token",
            pmr_core::personality::warn()
        );
    }
}

pub fn web(home: &Home, out: &super::Out, a: WebArgs) -> Result<i32> {
    if a.stop {
        stop_running(home, a.rotate_token)?;
        save(home, "false")?;
        out.info("HTTP API stopped");
        return Ok(0);
    }
    let text = a
        .addr
        .clone()
        .or_else(|| saved(home))
        .unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let addr = parse_addr(&text).map_err(anyhow::Error::msg)?;
    if a.addr.is_some() {
        warn_if_open(&addr);
    }
    let mut client = Client::connect(home)?;
    let (listen, token_file) = ask(
        &mut client,
        Request::Web(WebRequest {
            listen: Some(addr.to_string()),
            stop: false,
            rotate_token: a.rotate_token,
        }),
    )?;
    let Some(listen) = listen else {
        bail!("the daemon did not start the HTTP API");
    };
    save(home, &listen)?;
    println!("http://{listen}/");
    out.info(format!(
        "HTTP API on http://{listen} (token in {token_file})"
    ));
    if a.rotate_token {
        out.info("new token written; the old one no longer works");
    }
    if a.open {
        let token = std::fs::read_to_string(&token_file)?;
        let url = format!("http://{listen}/#token={}", token.trim());
        println!("{url}");
        open_browser(&url);
    }
    Ok(0)
}

/// `xdg-open` only when there is a display to show a browser on; otherwise printing the URL is
/// all (a server over ssh has no browser, and xdg-open would pick a text one in this terminal).
fn open_browser(url: &str) {
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !display {
        return;
    }
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// `pmr set pmr:http VALUE`: an address (checked, bound by a running daemon first) or `false`.
pub fn set(home: &Home, out: &super::Out, value: &str) -> Result<i32> {
    if is_off(value) {
        return unset_running(home, out).and_then(|_| {
            save(home, "false")?;
            out.info(format!(
                "Module {CONF_SECTION} configured: {CONF_KEY} = false"
            ));
            Ok(0)
        });
    }
    let addr = parse_addr(value).map_err(anyhow::Error::msg)?;
    warn_if_open(&addr);
    let mut stored = addr.to_string();
    if let Some(mut c) = Client::connect_existing(home) {
        if let (Some(l), _) = ask(
            &mut c,
            Request::Web(WebRequest {
                listen: Some(stored.clone()),
                stop: false,
                rotate_token: false,
            }),
        )? {
            stored = l;
        }
    }
    save(home, &stored)?;
    out.info(format!(
        "Module {CONF_SECTION} configured: {CONF_KEY} = {stored}"
    ));
    Ok(0)
}

/// `pmr set pmr:http false` / `pmr unset pmr:http`: a running daemon stops serving.
pub fn unset_running(home: &Home, _out: &super::Out) -> Result<()> {
    stop_running(home, false)
}

/// A running daemon stops serving (none running: nothing to do).
fn stop_running(home: &Home, rotate_token: bool) -> Result<()> {
    if let Some(mut c) = Client::connect_existing(home) {
        ask(
            &mut c,
            Request::Web(WebRequest {
                listen: None,
                stop: true,
                rotate_token,
            }),
        )?;
    }
    Ok(())
}
