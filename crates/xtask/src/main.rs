//! Build-time generators of pmr's packages, run by `dist/build` (`cargo run -p xtask -- ...`).
//! They read the CLI's own definitions, so what the packages ship cannot drift from the binary:
//! - `man <dir>`: a man page per command (`pmr.1`, `pmr-start.1`, ...) from the clap
//!   definitions that `--help` and `pmr completion` use;
//! - `systemd-unit <file>`: `pmr@.service`, the unit `pmr startup systemd` writes, as a
//!   template whose instance is the user.
//!
//! A crate of its own rather than hidden `pmr` commands: the shipped binary carries none of
//! this, and `cargo test` does not build it (not a default member).

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use pmr::cli::startup_templates::{self as tpl, Vars};
use pmr_core::personality::Personality;
use std::path::Path;

const USAGE: &str = "usage: cargo run -p xtask -- man <dir> | systemd-unit <file>";

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["man", dir] => man(Path::new(dir)),
        ["systemd-unit", file] => systemd_unit(Path::new(file)),
        _ => bail!("{USAGE}"),
    }
}

/// One page per visible command, named as `man` looks them up (`man pmr-start` is
/// `pmr-start.1`); hidden commands (the daemon's entry point, internal ones) get none.
/// clap_mangen's `generate_to`, with the version in every page's footer (its default only
/// gives it to `pmr.1`; setting it on the subcommands would give each a `--version` flag that
/// the binary does not have).
fn man(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // No `help` subcommand page: `pmr help <cmd>` is `--help`, which every page is.
    let mut cmd = pmr::cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    fn pages(cmd: &clap::Command, dir: &Path, source: &str) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages(sub, dir, source)?;
        }
        clap_mangen::Man::new(cmd.clone())
            .source(source)
            .generate_to(dir)
            .with_context(|| format!("cannot write a man page in {}", dir.display()))?;
        Ok(())
    }
    pages(&cmd, dir, &source)
}

/// Where the packages install the binary.
const EXE: &str = "/usr/bin/pmr";
/// The PATH of the packaged unit: Debian's default for services (apps find a `node` installed
/// in /usr/bin or /usr/local/bin).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `pmr@.service`: `pmr startup systemd -u <user>`'s unit, filled for every user at once.
fn systemd_unit(file: &Path) -> Result<()> {
    let p = Personality::Pmr;
    let vars = Vars {
        tag: p.arg0(),
        exe: EXE.into(),
        user: "%i".into(),
        // Empty: pmr then takes `$HOME/.pmr`, and systemd sets HOME from `User=` (the home of
        // each instance's user cannot be written here; `%h` is root's in a system unit).
        home: String::new(),
        home_var: p.home_var(),
        path: SYSTEM_PATH.into(),
        node: None,
        service: format!("{}@", p.arg0()),
        wait_ip: false,
    };
    let unit = tpl::systemd(&vars, false);
    // The template's comments are about the PATH `pmr startup` ran with, which this file does
    // not have: the header below says what its PATH is instead.
    let body: String = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    if !body.contains("User=%i\n") || !body.contains(&format!("ExecStart={EXE} ")) {
        bail!("startup_templates::systemd no longer takes the user and binary from Vars:\n{body}");
    }
    let tag = p.arg0();
    let home_var = p.home_var();
    let header = format!(
        "# {tag}@.service: the unit `{tag} startup systemd -u <user>` writes, as a template whose\n\
         # instance is the user. Installing the package enables nothing; to run a user's daemon\n\
         # at boot with the apps that user saved (`{tag} save`):\n\
         #     systemctl enable --now {tag}@<user>\n\
         # {home_var} is empty: the daemon's home is ~/.{tag} of <user> (systemd sets HOME from\n\
         # User=). PATH is the system's: apps find a node in /usr/bin or /usr/local/bin. For an\n\
         # nvm or fnm node, add its PATH with `systemctl edit {tag}@<user>`, or run\n\
         # `{tag} startup` instead, which writes a unit with the PATH it runs with.\n"
    );
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(file, header + &body)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}
