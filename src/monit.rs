//! `pmr monit` (alias `dashboard`): the terminal UI. `data` talks to the daemon and the
//! terminal on threads, `app` holds the state and the keys' effects, `ui` draws, `input` maps
//! keys. This loop draws only when something shown changed: a list differing from the one
//! on screen, a log line (at most ten draws a second), a key, a resize.

mod app;
mod data;
mod input;
mod ui;

use crate::client::Client;
use anyhow::{bail, Result};
use app::{App, Effect};
use data::Event;
use pmr_core::paths::Home;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Log lines arriving in bursts are drawn at most this often.
const LOG_DRAW_EVERY: Duration = Duration::from_millis(100);

/// Leaves raw mode and the alternate screen whatever way `run` ends (the panic hook that
/// `ratatui::try_init` installs covers panics).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(home: &Home, color: bool) -> Result<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("monit needs a terminal (stdin and stdout must be a tty): use `pmr ls` or `pmr jlist` in scripts");
    }
    // Before the UI: a daemon that cannot be started is a plain error on a plain terminal.
    let client = Client::connect(home)?;
    let (tx, rx) = mpsc::channel();
    // First, so that every thread spawned after inherits the blocked signals.
    data::spawn_signals(tx.clone());
    let _restore = Restore;
    let mut terminal = ratatui::try_init()?;
    // ratatui's hook restores the terminal and prints the panic; a panic on a data thread
    // must then end monit too, not leave the loop drawing on a restored terminal.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        hook(info);
        std::process::exit(101);
    }));
    data::spawn_input(tx.clone());
    let poke = data::spawn_poller(home.clone(), client, tx.clone());
    let theme = ui::Theme { color };
    let mut app = App::new(home.root.to_string_lossy().into_owned());
    let mut feed: Option<data::LogFeed> = None;
    let mut gen = 0u64;
    let mut list_state = ratatui::widgets::TableState::default();
    let mut dirty = true;
    let mut last_draw = Instant::now();
    let mut due = last_draw;
    let outcome = loop {
        if dirty && Instant::now() >= due {
            terminal.draw(|f| ui::draw(f, &app, &theme, &mut list_state))?;
            dirty = false;
            last_draw = Instant::now();
        }
        let ev = if dirty {
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            }
        } else {
            match rx.recv() {
                Ok(ev) => ev,
                Err(_) => break None,
            }
        };
        let now = pmr_render::now_ms();
        let (changed, urgent, effects) = match ev {
            Event::Key(k) => {
                let mut cmd = input::map(app.mode, k);
                // The too-small message hides the selection: keys other than quit would act
                // on a process the user cannot see.
                let small = terminal
                    .size()
                    .is_ok_and(|s| s.width < ui::MIN_W || s.height < ui::MIN_H);
                if small && cmd != input::Cmd::Quit {
                    cmd = input::Cmd::Nothing;
                }
                (true, true, app.on_key(cmd, now))
            }
            Event::Resize => (true, true, Vec::new()),
            Event::List(procs) => {
                let (changed, effects) = app.on_list(procs, now);
                (changed, true, effects)
            }
            Event::Log { gen: g, err, lines } => {
                (g == gen && app.on_log(err, &lines), false, vec![])
            }
            Event::Skipped { gen: g, count } => (g == gen && app.on_skipped(count), false, vec![]),
            Event::Done(msg) => {
                app.status = msg;
                (true, true, Vec::new())
            }
            Event::DaemonGone(why) => break Some(why),
            Event::Signal => break None,
        };
        if changed && !dirty {
            dirty = true;
            due = if urgent {
                Instant::now()
            } else {
                last_draw + LOG_DRAW_EVERY
            };
        } else if changed && urgent {
            due = Instant::now();
        }
        for e in effects {
            match e {
                Effect::Quit => {
                    drop(terminal);
                    return Ok(0);
                }
                Effect::Request { req, what } => {
                    app.status = format!("{what}...");
                    data::spawn_request(home.clone(), req, what, tx.clone(), poke.clone());
                }
                Effect::Follow(id) => {
                    // The old stream is hung up before the new one starts.
                    drop(feed.take());
                    gen += 1;
                    feed = id.and_then(|id| data::subscribe(home, vec![id], gen, tx.clone()));
                }
            }
        }
    };
    drop(feed);
    drop(terminal);
    match outcome {
        None => Ok(0),
        Some(why) => {
            drop(_restore);
            // Printed by main after the screen is back.
            bail!("the pmr daemon is gone ({why}): monit stopped")
        }
    }
}
