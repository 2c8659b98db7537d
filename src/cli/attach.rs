//! `send` (a line to an app's stdin) and `attach` (its output on ours, our lines to its
//! stdin), as PM2's `sendLineToStdin` and `attach`. The daemon holds fork-mode apps' stdin
//! open (see `pmr_daemon::processes::stdin`).

use super::{call, Out};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::paths::Home;
use pmr_core::protocol::{ActionResult, Request, Response, SendLineRequest, SubscribeRequest};
use std::io::{BufRead, Write};

/// The ids `target` names; PM2's message when it names nothing.
fn target_ids(client: &mut Client, target: &str) -> Result<Vec<u32>> {
    // A selector that names nothing is an error reply; both get PM2's message.
    match super::resolve(client, &[target.to_string()]) {
        Ok(ids) if !ids.is_empty() => Ok(ids),
        _ => bail!("Process with ID <{target}> unknown."),
    }
}

fn send_line(client: &mut Client, ids: &[u32], line: String) -> Result<Vec<ActionResult>> {
    match call(
        client,
        &Request::SendLine(SendLineRequest {
            ids: ids.to_vec(),
            line,
        }),
    )? {
        Response::Done { results } => Ok(results),
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
}

/// Print each failure in PM2's words; returns how many failed.
fn report(results: &[ActionResult]) -> usize {
    let failed: Vec<_> = results.iter().filter_map(|r| r.error.as_ref()).collect();
    for e in &failed {
        eprintln!("[PMR][ERROR] {e}");
    }
    failed.len()
}

/// `pmr send <id|name> <line...>`: the words joined by spaces, then a newline. Prints the
/// process list on success, as PM2.
pub fn send(home: &Home, out: &Out, target: &str, words: &[String]) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let ids = target_ids(&mut client, target)?;
    let results = send_line(&mut client, &ids, format!("{}\n", words.join(" ")))?;
    if report(&results) > 0 {
        return Ok(1);
    }
    super::show::print_table(&mut client, out)?;
    Ok(0)
}

/// `pmr attach <id|name> [separator]`: the app's output (both streams, as written) on our
/// stdout; each line read from our stdin goes to its stdin, ended by `separator` (default a
/// newline). Ends at the end of our stdin, as PM2.
pub fn attach(home: &Home, target: &str, separator: Option<&str>) -> Result<i32> {
    let mut client = Client::connect(home)?;
    let ids = target_ids(&mut client, target)?;
    // Subscribe before reading anything, so the answer to the first line is not missed.
    let mut stream = Client::connect(home)?;
    stream.send(&Request::Subscribe(SubscribeRequest {
        ids: Some(ids.clone()),
        out: true,
        err: true,
        daemon: false,
    }))?;
    match stream.recv() {
        Ok(Response::Subscribed) => {}
        Ok(Response::Error { message }) => bail!("{message}"),
        Ok(other) => bail!("unexpected reply from the daemon: {other:?}"),
        Err(e) => bail!("log stream: {e}"),
    }
    std::thread::spawn(move || {
        let mut w = std::io::stdout();
        loop {
            match stream.recv() {
                Ok(Response::Log { lines, .. }) => {
                    // Our stdout closed: nothing more to show, nothing more to do.
                    if w.write_all(lines.as_bytes())
                        .and_then(|_| w.flush())
                        .is_err()
                    {
                        std::process::exit(0);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = w.flush();
                    eprintln!("[PMR] the pmr daemon is gone");
                    std::process::exit(1);
                }
            }
        }
    });
    let sep = separator.unwrap_or("\n");
    let mut input = std::io::stdin().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(0);
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        // A failure (stopped app, cluster mode) is said and attach goes on, as PM2.
        report(&send_line(&mut client, &ids, format!("{line}{sep}"))?);
    }
}
