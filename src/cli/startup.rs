//! `startup [platform]` and `unstartup`: write (or remove) the boot configuration that runs the
//! daemon with the saved apps, enable it when root, otherwise print what to run (as PM2).
//! `PMR_STARTUP_ROOT=<dir>` writes every file under that directory instead of `/` and runs no
//! command (for tests and packaging).

use super::startup_templates::{self as tpl, Vars};
use super::Out;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Default)]
pub struct StartupArgs {
    /// systemd, launchd, openrc, upstart (a System V script) or rcd; default: what PID 1 is.
    pub platform: Option<String>,
    /// The user the daemon runs as (default: the current one).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// That user's home (the daemon's home is <hp>/.pmr).
    #[arg(long = "hp")]
    pub hp: Option<String>,
    /// The service's name (default pmr-<user>).
    #[arg(long = "service-name")]
    pub service_name: Option<String>,
    /// systemd: start once the network is online (network-online.target).
    #[arg(long = "wait-ip")]
    pub wait_ip: bool,
    /// systemd without root: a `systemctl --user` unit (kept running after logout by
    /// `loginctl enable-linger`).
    #[arg(long = "user-unit")]
    pub user_unit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Systemd,
    Launchd,
    Openrc,
    Upstart,
    Rcd,
}

impl Platform {
    fn parse(s: &str) -> Result<Platform> {
        Ok(match s {
            "systemd" | "ubuntu" | "centos" | "arch" | "oracle" => Platform::Systemd,
            "launchd" | "macos" | "darwin" => Platform::Launchd,
            "openrc" | "gentoo" => Platform::Openrc,
            "upstart" | "ubuntu14" | "ubuntu12" | "systemv" | "amazon" | "centos6" => {
                Platform::Upstart
            }
            "rcd" | "freebsd" => Platform::Rcd,
            other => {
                bail!("unknown init system {other:?}: use systemd, launchd, openrc, upstart or rcd")
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Platform::Systemd => "systemd",
            Platform::Launchd => "launchd",
            Platform::Openrc => "openrc",
            Platform::Upstart => "upstart",
            Platform::Rcd => "rcd",
        }
    }

    /// Whether this machine runs it; `Err` says what is missing.
    fn present(self) -> Result<(), String> {
        let on_path = |t: &str| {
            pmr_config::app::which(t, &std::env::var("PATH").unwrap_or_default()).is_some()
        };
        let ok = match self {
            // sd_booted(): systemd is PID 1 exactly when this directory exists.
            Platform::Systemd => Path::new("/run/systemd/system").is_dir(),
            Platform::Launchd => on_path("launchctl"),
            Platform::Openrc => Path::new("/sbin/openrc-run").exists() || on_path("rc-update"),
            Platform::Upstart => on_path("update-rc.d") || on_path("chkconfig"),
            Platform::Rcd => on_path("sysrc"),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Platform::Systemd => {
                "systemd is not running on this machine (no /run/systemd/system)".into()
            }
            Platform::Launchd => "launchd is not on this machine (no launchctl)".into(),
            Platform::Openrc => {
                "OpenRC is not on this machine (no /sbin/openrc-run, no rc-update)".into()
            }
            Platform::Upstart => {
                "System V init is not on this machine (no update-rc.d, no chkconfig)".into()
            }
            Platform::Rcd => "rc.d is not on this machine (no sysrc)".into(),
        })
    }
}

/// The init system, from what PID 1 is (PM2 only looks for tools on PATH, and picks systemd
/// in containers whose PID 1 is a shell).
fn detect() -> Result<Platform> {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let comm = comm.trim();
    let found = match comm {
        "systemd" => Some(Platform::Systemd),
        "launchd" => Some(Platform::Launchd),
        "init" | "openrc-init" => [Platform::Openrc, Platform::Upstart]
            .into_iter()
            .find(|p| p.present().is_ok()),
        "" => [Platform::Launchd, Platform::Rcd]
            .into_iter()
            .find(|p| p.present().is_ok()),
        _ => None,
    };
    match found {
        Some(p) => Ok(p),
        None => bail!(
            "Init system not found (PID 1 is {}): name one: {} startup systemd|launchd|openrc|upstart|rcd",
            if comm.is_empty() { "unknown".to_string() } else { format!("`{comm}`") },
            pmr_core::personality::current().arg0()
        ),
    }
}

/// What a command writes and runs.
struct Plan {
    platform: Platform,
    dest: PathBuf,
    text: String,
    mode: u32,
    enable: Vec<Vec<String>>,
    disable: Vec<Vec<String>>,
    /// Needs root (a system location).
    system: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

fn plan(a: &StartupArgs, platform: Platform) -> Result<Plan> {
    let p = pmr_core::personality::current();
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten();
    let user = a
        .user
        .clone()
        .or_else(|| me.as_ref().map(|u| u.name.clone()))
        .or_else(|| std::env::var("USER").ok())
        .context("cannot tell the current user: give -u <user>")?;
    let user_home = match &a.hp {
        Some(h) => PathBuf::from(h),
        None => nix::unistd::User::from_name(&user)
            .ok()
            .flatten()
            .map(|u| u.dir)
            .with_context(|| format!("unknown user {user:?}: give --hp <home>"))?,
    };
    let home = if a.hp.is_none() && a.user.is_none() {
        pmr_core::paths::Home::from_env().root
    } else {
        user_home.join(p.home_dir_name())
    };
    let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let node = pmr_config::app::which("node", &path_var);
    let tag = p.arg0();
    let service = a.service_name.clone().unwrap_or_else(|| match platform {
        Platform::Launchd => format!("{tag}.{user}"),
        Platform::Openrc => tag.to_string(),
        Platform::Rcd => format!("{tag}_{user}"),
        _ if a.user_unit => tag.to_string(),
        _ => format!("{tag}-{user}"),
    });
    let vars = Vars {
        tag,
        exe: own_path()?,
        user: user.clone(),
        home: home.to_string_lossy().into_owned(),
        home_var: p.home_var(),
        path: path_var,
        node: node.map(|n| n.to_string_lossy().into_owned()),
        service: service.clone(),
        wait_ip: a.wait_ip,
    };
    let s = |x: &str| words(x);
    Ok(match platform {
        Platform::Systemd if a.user_unit => Plan {
            platform,
            dest: user_home.join(format!(".config/systemd/user/{service}.service")),
            text: tpl::systemd(&vars, true),
            mode: 0o644,
            enable: vec![
                s("systemctl --user daemon-reload"),
                s(&format!("systemctl --user enable {service}")),
            ],
            disable: vec![
                s(&format!("systemctl --user disable {service}")),
                s("systemctl --user daemon-reload"),
            ],
            system: false,
        },
        Platform::Systemd => Plan {
            platform,
            dest: PathBuf::from(format!("/etc/systemd/system/{service}.service")),
            text: tpl::systemd(&vars, false),
            mode: 0o644,
            enable: vec![
                s("systemctl daemon-reload"),
                s(&format!("systemctl enable {service}")),
            ],
            disable: vec![
                s(&format!("systemctl disable {service}")),
                s("systemctl daemon-reload"),
            ],
            system: true,
        },
        Platform::Launchd => {
            let dest = user_home.join(format!("Library/LaunchAgents/{service}.plist"));
            let d = dest.to_string_lossy().into_owned();
            Plan {
                platform,
                text: tpl::launchd(&vars),
                mode: 0o644,
                enable: vec![vec![
                    "launchctl".into(),
                    "load".into(),
                    "-w".into(),
                    d.clone(),
                ]],
                disable: vec![vec!["launchctl".into(), "unload".into(), "-w".into(), d]],
                dest,
                system: false,
            }
        }
        Platform::Openrc => Plan {
            platform,
            dest: PathBuf::from(format!("/etc/init.d/{service}")),
            text: tpl::openrc(&vars),
            mode: 0o755,
            enable: vec![s(&format!("rc-update add {service} default"))],
            disable: vec![s(&format!("rc-update del {service} default"))],
            system: true,
        },
        Platform::Upstart => Plan {
            platform,
            dest: PathBuf::from(format!("/etc/init.d/{service}")),
            text: tpl::sysv(&vars),
            mode: 0o755,
            enable: vec![s(&format!("update-rc.d {service} defaults"))],
            disable: vec![s(&format!("update-rc.d -f {service} remove"))],
            system: true,
        },
        Platform::Rcd => Plan {
            platform,
            dest: PathBuf::from(format!("/usr/local/etc/rc.d/{service}")),
            text: tpl::rcd(&vars),
            mode: 0o755,
            enable: vec![s(&format!("sysrc {service}_enable=YES"))],
            disable: vec![s(&format!("sysrc -x {service}_enable"))],
            system: true,
        },
    })
}

/// This binary as the user ran it: a `pm2` symlink stays `pm2` (the personality comes from
/// argv[0]), a name found on PATH becomes its absolute path.
fn own_path() -> Result<String> {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let a = Path::new(&arg0);
    let p = if a.components().count() > 1 {
        std::env::current_dir()?.join(a)
    } else {
        pmr_config::app::which(
            &a.to_string_lossy(),
            &std::env::var("PATH").unwrap_or_default(),
        )
        .map_or_else(std::env::current_exe, Ok)?
    };
    Ok(p.to_string_lossy().into_owned())
}

/// `PMR_STARTUP_ROOT`: files go under it, no command runs, the host is not checked.
fn test_root() -> Option<PathBuf> {
    std::env::var_os("PMR_STARTUP_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn under(root: &Option<PathBuf>, p: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    }
}

fn platform_of(a: &StartupArgs, root: &Option<PathBuf>) -> Result<Platform> {
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => detect()?,
    };
    if root.is_none() {
        platform.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if a.user_unit && platform != Platform::Systemd {
        bail!("--user-unit is for systemd only");
    }
    if a.wait_ip && platform != Platform::Systemd {
        bail!("--wait-ip is for systemd only");
    }
    Ok(platform)
}

/// PM2's advice to a user who is not root: the same command under sudo.
fn not_root(out: &Out, verb: &str, plan: &Plan, a: &StartupArgs) -> Result<i32> {
    let user = a
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let hp =
        a.hp.clone()
            .or_else(|| std::env::var("HOME").ok())
            .unwrap_or_default();
    let exe = own_path()?;
    out.info(format!(
        "To {verb} the Startup Script, copy/paste the following command:"
    ));
    println!(
        "sudo env PATH=$PATH:{} {exe} {} {} -u {user} --hp {hp}",
        std::env::current_exe()?
            .parent()
            .unwrap_or(Path::new("/"))
            .display(),
        if verb == "setup" {
            "startup"
        } else {
            "unstartup"
        },
        plan.platform.name()
    );
    if plan.platform == Platform::Systemd {
        out.info(format!(
            "Or without root, a systemd user unit: {exe} {} systemd --user-unit{}",
            if verb == "setup" {
                "startup"
            } else {
                "unstartup"
            },
            if verb == "setup" {
                format!(
                    " (then `loginctl enable-linger {user}` keeps it running after you log out)"
                )
            } else {
                String::new()
            }
        ));
    }
    bail!("You have to run this with elevated rights")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run_commands(out: &Out, cmds: &[Vec<String>], root: &Option<PathBuf>) -> Result<()> {
    for c in cmds {
        let shown = c.join(" ");
        if root.is_some() {
            out.info(format!(
                "[-] Not executed (PMR_STARTUP_ROOT is set): {shown}"
            ));
            continue;
        }
        out.info(format!("[-] Executing: {shown}..."));
        let st = std::process::Command::new(&c[0])
            .args(&c[1..])
            .status()
            .with_context(|| format!("cannot run {shown}"))?;
        if !st.success() {
            bail!("{shown} failed ({st}), see the error above");
        }
        out.info("[v] Command successfully executed.");
    }
    Ok(())
}

pub fn startup(out: &Out, a: StartupArgs) -> Result<i32> {
    let root = test_root();
    let platform = platform_of(&a, &root)?;
    let plan = plan(&a, platform)?;
    if plan.system && root.is_none() && !is_root() {
        return not_root(out, "setup", &plan, &a);
    }
    let dest = under(&root, &plan.dest);
    let tag = pmr_core::personality::current().arg0();
    if !out.silent {
        println!("Platform {}", platform.name());
        println!("Template\n{}", plan.text);
        println!("Target path\n{}", dest.display());
        let list: Vec<String> = plan.enable.iter().map(|c| c.join(" ")).collect();
        println!("Command list\n{list:?}");
    }
    out.info(format!("Writing init configuration in {}", dest.display()));
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&dest, &plan.text)
        .and_then(|_| std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(plan.mode)))
        .with_context(|| {
            format!(
                "Failure when trying to write startup script {}",
                dest.display()
            )
        })?;
    out.info("Making script booting at startup...");
    run_commands(out, &plan.enable, &root)?;
    if !out.silent {
        println!("+---------------------------------------+");
        out.info("Freeze a process list on reboot via:");
        println!("$ {tag} save\n");
        out.info("Remove init script via:");
        println!("$ {tag} unstartup {}", platform.name());
        if a.user_unit {
            out.info("Keep it running after you log out (needs root or polkit's consent):");
            println!(
                "$ loginctl enable-linger {}",
                a.user
                    .clone()
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_default()
            );
        }
    }
    Ok(0)
}

pub fn unstartup(out: &Out, a: StartupArgs) -> Result<i32> {
    let root = test_root();
    let platform = platform_of(&a, &root)?;
    let plan = plan(&a, platform)?;
    if plan.system && root.is_none() && !is_root() {
        return not_root(out, "unsetup", &plan, &a);
    }
    let dest = under(&root, &plan.dest);
    if !dest.exists() {
        bail!(
            "{} does not exist: no {} startup to remove",
            dest.display(),
            platform.name()
        );
    }
    run_commands(out, &plan.disable, &root)?;
    std::fs::remove_file(&dest).with_context(|| format!("cannot remove {}", dest.display()))?;
    out.info(format!("Init file disabled: removed {}", dest.display()));
    Ok(0)
}
