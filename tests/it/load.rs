//! A small HTTP/1.1 load generator for the reload tests: bounded in time, loopback only,
//! errors counted by kind (as wrk does), so a reload's effect on clients is measured.
//! `PMR_LOAD_DEBUG=1` prints every failed or slow (> 500 ms) request with the pid that last
//! answered on that client thread: how the blocking-accept bug of the cluster sockets was found.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    static LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stats {
    pub ok: u64,
    pub non_2xx: u64,
    /// Connection refused (or any connect failure).
    pub connect: u64,
    /// A fresh connection that broke before its response.
    pub fresh_broken: u64,
    /// A reused keep-alive connection that broke (reset or closed) before its response.
    pub kept_alive_broken: u64,
}

impl Stats {
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.connect + self.fresh_broken + self.kept_alive_broken
    }
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    non_2xx: AtomicU64,
    connect: AtomicU64,
    fresh_broken: AtomicU64,
    kept_alive_broken: AtomicU64,
}

/// Runs `conns` client threads against 127.0.0.1:`port` until `stop` is set (or `max` passes).
pub struct Load {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, conns: usize, keep_alive: bool, max: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let deadline = Instant::now() + max;
        let threads = (0..conns)
            .map(|_| {
                let stop = stop.clone();
                let c = counters.clone();
                std::thread::spawn(move || client(port, keep_alive, &stop, deadline, &c))
            })
            .collect();
        Load {
            stop,
            counters,
            threads,
        }
    }

    pub fn ok_so_far(&self) -> u64 {
        self.counters.ok.load(Ordering::Relaxed)
    }

    pub fn finish(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let c = &self.counters;
        Stats {
            ok: c.ok.load(Ordering::SeqCst),
            non_2xx: c.non_2xx.load(Ordering::SeqCst),
            connect: c.connect.load(Ordering::SeqCst),
            fresh_broken: c.fresh_broken.load(Ordering::SeqCst),
            kept_alive_broken: c.kept_alive_broken.load(Ordering::SeqCst),
        }
    }
}

fn client(port: u16, keep_alive: bool, stop: &AtomicBool, deadline: Instant, c: &Counters) {
    let req: &[u8] = if keep_alive {
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    };
    let mut conn: Option<(BufReader<TcpStream>, u64)> = None;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if conn.is_none() {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    // Generous: a slow answer on a busy 2-core machine is not a failure; a broken one is.
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = s.set_nodelay(true);
                    conn = Some((BufReader::new(s), 0));
                }
                Err(_) => {
                    c.connect.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let (reader, used) = conn.as_mut().unwrap();
        let reused = *used > 0;
        let t0 = Instant::now();
        let res = exchange(reader, req);
        if std::env::var_os("PMR_LOAD_DEBUG").is_some() && t0.elapsed() > Duration::from_millis(500)
        {
            let last = LAST.with(|l| l.borrow().clone());
            eprintln!(
                "load: slow answer {:?} after {} uses ({last}) {:?}",
                t0.elapsed(),
                *used,
                res.as_ref().err()
            );
        }
        match res {
            Ok((status, close)) => {
                if (200..300).contains(&status) {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.non_2xx.fetch_add(1, Ordering::Relaxed);
                }
                *used += 1;
                if close || !keep_alive {
                    conn = None;
                }
            }
            Err(e) => {
                if std::env::var_os("PMR_LOAD_DEBUG").is_some() {
                    let last = LAST.with(|l| l.borrow().clone());
                    eprintln!(
                        "load: {:?} on a connection used {} times (last answer {last}): {e}",
                        std::time::SystemTime::now(),
                        *used
                    );
                }
                if reused {
                    c.kept_alive_broken.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.fresh_broken.fetch_add(1, Ordering::Relaxed);
                }
                conn = None;
            }
        }
    }
}

/// One request and its response: (status, whether the server closes the connection).
fn exchange(r: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<(u16, bool)> {
    r.get_mut().write_all(req)?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if l == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0u8; len];
    std::io::Read::read_exact(r, &mut body)?;
    if std::env::var_os("PMR_LOAD_DEBUG").is_some() {
        LAST.with(|l| *l.borrow_mut() = String::from_utf8_lossy(&body).into_owned());
    }
    Ok((status, close))
}
