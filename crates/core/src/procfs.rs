//! `/proc/<pid>/stat`, parsed once for everyone who needs a process's state, parent, group or
//! usage. Blocking (a file read): call from `spawn_blocking` on the daemon.

/// The fields of `/proc/<pid>/stat` pmr uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// `R`, `S`, `Z`...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    pub rss_pages: u64,
}

impl Stat {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Parse the text of a stat file. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    // f[0] is field 3 (state); field N is f[N - 3]. Fields 3 to 24 only, without allocating
    // (the daemon reads a thousand of these for one `jlist`); a missing one stays "" and fails.
    let mut f = [""; 22];
    for (slot, w) in f.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = w;
    }
    let num = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: num(4)? as u32,
        pgrp: num(5)? as u32,
        ticks: num(14)? + num(15)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

pub fn read_stat(pid: u32) -> Option<Stat> {
    let f = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    read_stat_of(&f)
}

/// The stat line of an open `/proc/<pid>/stat`, read again from its start: the kernel makes
/// the line anew for each read at offset 0. `None` once the process is gone (the file stays
/// bound to the process it was opened for, never to a later one given the same pid).
pub fn read_stat_of(f: &std::fs::File) -> Option<Stat> {
    use std::os::unix::fs::FileExt;
    // Into a stack buffer, without the size probe and the read of EOF `read_to_string` makes:
    // the kernel writes the line (a few hundred bytes: the command name is at most 15) in one
    // read, and it ends with a newline. Fields up to 24, all we parse, fit in 1 KiB whatever
    // their values; a longer line is cut after them.
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() && (n == 0 || buf[n - 1] != b'\n') {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_stat(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Resident pages from an open `/proc/<pid>/statm` (its second field), read again from its
/// start; `None` once the process is gone. Half the kernel's work of a stat line: the daemon
/// reads one per app for each `jlist`.
pub fn read_rss_pages_of(f: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    // Seven numbers of at most 20 digits.
    let mut buf = [0u8; 192];
    let n = loop {
        match f.read_at(&mut buf, 0) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    };
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time of the process `pid` (all its threads, user and system, those ended included:
/// what `utime + stime` of its stat line counts, in nanoseconds), from its CPU clock: no text
/// for the kernel to format. `None` if there is no such process.
pub fn cpu_time_ns(pid: u32) -> Option<u64> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?);
    let t = nix::time::clock_gettime(nix::time::clock_getcpuclockid(pid).ok()?).ok()?;
    Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(t.tv_nsec()).ok()?)
}

/// The process exists and is not a zombie awaiting its parent.
pub fn alive(pid: u32) -> bool {
    read_stat(pid).is_some_and(|s| !s.is_zombie())
}

/// A child that spins on a CPU until dropped (also when a test fails: it must not be left
/// behind to slow everything else down).
#[cfg(any(test, feature = "testing"))]
pub struct Spinner(pub std::process::Child);

#[cfg(any(test, feature = "testing"))]
impl Spinner {
    pub fn start() -> Spinner {
        Spinner(
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap(),
        )
    }

    /// Killed and reaped.
    pub fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(any(test, feature = "testing"))]
impl Drop for Spinner {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "S 1 4242 7 0 -1 4194560 100 0 0 0 30 12 0 0 20 0 1 0 5000 1000000 250 18446744073709551615";

    #[test]
    fn parses_a_plain_line() {
        let s = parse_stat(&format!("4243 (node) {LINE}")).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!((s.ppid, s.pgrp), (1, 4242));
        assert_eq!(s.ticks, 42);
        assert_eq!(s.start_ticks, 5000);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        let odd = format!("99 (a) b (c) ) d) {}", LINE.replacen('S', "Z", 1));
        let s = parse_stat(&odd).unwrap();
        assert!(s.is_zombie());
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.rss_pages, 250);
    }

    #[test]
    fn truncated_or_garbage_is_none() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
        assert_eq!(parse_stat("1 (x)"), None);
    }

    #[test]
    fn statm_and_cpu_clock_of_a_child() {
        let mut busy = Spinner::start();
        let pid = busy.0.id();
        let statm = std::fs::File::open(format!("/proc/{pid}/statm")).unwrap();
        let t0 = cpu_time_ns(pid).unwrap();
        // It spins: its clock moves, by as much as its stat line's ticks say.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while cpu_time_ns(pid).unwrap() < t0 + 200_000_000 {
            assert!(std::time::Instant::now() < deadline, "the CPU clock stays");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Settled in its loop, its memory no longer grows: the same count as its stat line's,
        // summed exactly (the stat line's may lag by the kernel's per-CPU batches).
        let rss = read_rss_pages_of(&statm).unwrap();
        let stat_rss = read_stat(pid).unwrap().rss_pages;
        assert!(
            rss > 0 && rss.abs_diff(stat_rss) < 256,
            "statm {rss}, stat {stat_rss}"
        );
        let ns = cpu_time_ns(pid).unwrap();
        let ticks = read_stat(pid).unwrap().ticks;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        let from_ticks = ticks * 1_000_000_000 / hz;
        assert!(
            from_ticks.abs_diff(ns) < 100_000_000,
            "clock {ns} ns, stat {from_ticks} ns"
        );
        busy.end();
        assert_eq!(
            read_rss_pages_of(&statm),
            None,
            "a reaped process reads as gone"
        );
        assert_eq!(cpu_time_ns(pid), None);
    }

    #[test]
    fn reads_this_process() {
        let me = read_stat(std::process::id()).unwrap();
        assert!(!me.is_zombie());
        assert_eq!(me.pgrp as i32, nix::unistd::getpgrp().as_raw());
        assert!(alive(std::process::id()));
    }
}
