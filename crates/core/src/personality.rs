//! Who we are: `pmr`, or `pm2` when installed or linked under that name (argv[0]). The PM2
//! personality uses PM2's home and file names and `[PM2]` message prefixes, so that
//! `ln -s $(command -v pmr) /usr/local/bin/pm2` switches scripts and tools that read `~/.pm2`.
//! Everything else (commands, behaviour, the daemon's own words) stays pmr.

use std::path::Path;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    Pmr,
    Pm2,
}

impl Personality {
    /// From the basename of argv[0]: `pm2` (and only that) is PM2's personality.
    pub fn from_arg0(arg0: &std::ffi::OsStr) -> Personality {
        match Path::new(arg0).file_name().and_then(|n| n.to_str()) {
            Some("pm2") => Personality::Pm2,
            _ => Personality::Pmr,
        }
    }

    /// The prefix of variables that win (`PMR_` or `PM2_`); the other one is read second.
    pub fn prefix(self) -> &'static str {
        match self {
            Personality::Pmr => "PMR_",
            Personality::Pm2 => "PM2_",
        }
    }

    pub fn other_prefix(self) -> &'static str {
        match self {
            Personality::Pmr => "PM2_",
            Personality::Pm2 => "PMR_",
        }
    }

    /// The variable naming the home. Never the other personality's: a pmr sharing a home with
    /// a live PM2 daemon (or the reverse) would fight it for `rpc.sock`.
    pub fn home_var(self) -> &'static str {
        match self {
            Personality::Pmr => "PMR_HOME",
            Personality::Pm2 => "PM2_HOME",
        }
    }

    /// `.pmr` or `.pm2`, under `$HOME`.
    pub fn home_dir_name(self) -> &'static str {
        match self {
            Personality::Pmr => ".pmr",
            Personality::Pm2 => ".pm2",
        }
    }

    /// `PMR` or `PM2`: the tag of CLI messages (`[PMR][WARN] ...`) and of home file names.
    pub fn tag(self) -> &'static str {
        match self {
            Personality::Pmr => "PMR",
            Personality::Pm2 => "PM2",
        }
    }

    /// The daemon's pid file, log and dump in the home (PM2: `pm2.pid`, `pm2.log`, `dump.pm2`).
    pub fn pid_file_name(self) -> &'static str {
        match self {
            Personality::Pmr => "pmr.pid",
            Personality::Pm2 => "pm2.pid",
        }
    }
    pub fn log_file_name(self) -> &'static str {
        match self {
            Personality::Pmr => "pmr.log",
            Personality::Pm2 => "pm2.log",
        }
    }
    pub fn dump_file_name(self) -> &'static str {
        match self {
            Personality::Pmr => "dump.json",
            Personality::Pm2 => "dump.pm2",
        }
    }

    /// The name the daemon is started under, so that it takes the CLI's personality.
    pub fn arg0(self) -> &'static str {
        match self {
            Personality::Pmr => "pmr",
            Personality::Pm2 => "pm2",
        }
    }
}

/// This process's personality, from argv[0] (the daemon is started under the CLI's: see
/// [`Personality::arg0`]).
pub fn current() -> Personality {
    static P: OnceLock<Personality> = OnceLock::new();
    *P.get_or_init(|| {
        std::env::args_os()
            .next()
            .map(|a| Personality::from_arg0(&a))
            .unwrap_or(Personality::Pmr)
    })
}

/// `[PMR]` / `[PM2]`: the prefix of CLI messages, as PM2's `PREFIX_MSG`.
pub fn msg() -> &'static str {
    match current() {
        Personality::Pmr => "[PMR]",
        Personality::Pm2 => "[PM2]",
    }
}

/// `[PMR][WARN]` / `[PM2][WARN]`.
pub fn warn() -> &'static str {
    match current() {
        Personality::Pmr => "[PMR][WARN]",
        Personality::Pm2 => "[PM2][WARN]",
    }
}

/// `[PMR][ERROR]` / `[PM2][ERROR]`.
pub fn err() -> &'static str {
    match current() {
        Personality::Pmr => "[PMR][ERROR]",
        Personality::Pm2 => "[PM2][ERROR]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn arg0_decides() {
        assert_eq!(
            Personality::from_arg0(OsStr::new("/usr/local/bin/pm2")),
            Personality::Pm2
        );
        assert_eq!(Personality::from_arg0(OsStr::new("pm2")), Personality::Pm2);
        assert_eq!(Personality::from_arg0(OsStr::new("pmr")), Personality::Pmr);
        assert_eq!(
            Personality::from_arg0(OsStr::new("/x/pm2-runtime")),
            Personality::Pmr
        );
        assert_eq!(current(), Personality::Pmr, "the test binary is not pm2");
    }
}
