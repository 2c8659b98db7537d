//! The server's settings, from PM2's `PM2_SERVE_*` variables (the names `pm2 serve` sets, so an
//! app copied from PM2's dump keeps working), then the optional `[path] [port] [host]` arguments
//! of `Serve.js`, then PM2's defaults: the current directory, port 8080, all interfaces.

use super::auth::BasicAuth;
use super::resolve::Site;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Config {
    pub host: String,
    pub port: u16,
    pub site: Site,
    pub auth: Option<BasicAuth>,
}

pub const DEFAULT_PORT: u16 = 8080;
/// PM2 binds every interface: `pm2 serve` exists to expose a directory, and scripts rely on it
/// being reachable from outside (containers, LAN). `PM2_SERVE_HOST` narrows it.
pub const DEFAULT_HOST: &str = "0.0.0.0";

/// A port as typed: 1..=65535. PM2 falls back to 8080 on garbage; pmr says what is wrong.
pub fn parse_port(s: &str) -> Result<u16> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("invalid port {s:?}: expected a number from 1 to 65535"),
    }
}

/// A basic auth username basic auth can carry (the CLI checks it before starting anything).
pub fn check_basic_auth(user: &str) -> Result<()> {
    BasicAuth::new(user, "").map(|_| ()).map_err(|e| anyhow!(e))
}

impl Config {
    /// `env` is the process environment; `args` the positional `[path] [port] [host]`.
    pub fn from_env(env: &HashMap<String, String>, args: &[String]) -> Result<Config> {
        let get = |k: &str, i: usize| {
            env.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .or_else(|| args.get(i).cloned())
        };
        let port = match get("PM2_SERVE_PORT", 1) {
            Some(p) => parse_port(&p)?,
            None => DEFAULT_PORT,
        };
        let host = get("PM2_SERVE_HOST", 2).unwrap_or_else(|| DEFAULT_HOST.to_string());
        let path = PathBuf::from(get("PM2_SERVE_PATH", 0).unwrap_or_else(|| ".".into()));
        // Canonical once: every served path is checked against it (symlinks included).
        let root = std::fs::canonicalize(&path)
            .with_context(|| format!("cannot serve {}", path.display()))?;
        if !root.is_dir() {
            bail!("cannot serve {}: not a directory", path.display());
        }
        let flag = |k: &str| env.get(k).is_some_and(|v| v == "true");
        let homepage = env
            .get("PM2_SERVE_HOMEPAGE")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "/index.html".into());
        let auth = if flag("PM2_SERVE_BASIC_AUTH") {
            let user = env.get("PM2_SERVE_BASIC_AUTH_USERNAME");
            let pass = env.get("PM2_SERVE_BASIC_AUTH_PASSWORD");
            match (user, pass) {
                (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                    Some(BasicAuth::new(u, p).map_err(|e| anyhow!(e))?)
                }
                // Serving without the protection asked for would expose the files.
                _ => bail!(
                    "PM2_SERVE_BASIC_AUTH is true but PM2_SERVE_BASIC_AUTH_USERNAME or \
                     PM2_SERVE_BASIC_AUTH_PASSWORD is missing"
                ),
            }
        } else {
            None
        };
        Ok(Config {
            host,
            port,
            site: Site {
                root,
                spa: flag("PM2_SERVE_SPA"),
                ftp: flag("PM2_SERVE_FTP"),
                homepage,
            },
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_pm2s() {
        let c = Config::from_env(&env(&[]), &[]).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 8080));
        assert_eq!(
            c.site.root,
            std::env::current_dir().unwrap().canonicalize().unwrap()
        );
        assert_eq!(c.site.homepage, "/index.html");
        assert!(!c.site.spa && !c.site.ftp && c.auth.is_none());
    }

    #[test]
    fn env_wins_over_arguments() {
        let dir = std::env::temp_dir();
        let c = Config::from_env(
            &env(&[
                ("PM2_SERVE_PORT", "9001"),
                ("PM2_SERVE_PATH", dir.to_str().unwrap()),
                ("PM2_SERVE_SPA", "true"),
                ("PM2_SERVE_HOST", "127.0.0.1"),
            ]),
            &["/nonexistent".into(), "1234".into()],
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 9001));
        assert_eq!(c.site.root, dir.canonicalize().unwrap());
        assert!(c.site.spa);
    }

    #[test]
    fn bad_input_is_named() {
        let e = Config::from_env(&env(&[("PM2_SERVE_PORT", "80a")]), &[]);
        assert!(e
            .err()
            .unwrap()
            .to_string()
            .contains("invalid port \"80a\""));
        let e = Config::from_env(&env(&[("PM2_SERVE_PATH", "/no/such/dir")]), &[]);
        assert!(e.err().unwrap().to_string().contains("/no/such/dir"));
        let e = Config::from_env(
            &env(&[
                ("PM2_SERVE_BASIC_AUTH", "true"),
                ("PM2_SERVE_BASIC_AUTH_USERNAME", "u"),
            ]),
            &[],
        );
        assert!(e.err().unwrap().to_string().contains("PASSWORD"));
        assert!(parse_port("0").is_err() && parse_port("65536").is_err());
        assert_eq!(parse_port("65535").unwrap(), 65535);
    }
}
