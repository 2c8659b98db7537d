//! `save` (alias `dump`), `resurrect [file]`, `cleardump`: the process list written to the
//! dump file and started again from it (pmr's dump, or PM2's `dump.pm2`).

use super::{call, list, Out};
use crate::client::Client;
use anyhow::{bail, Result};
use pmr_core::dump::{self, Contents};
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response, ResurrectRequest};
use std::path::Path;

pub fn save(home: &Home, out: &Out, force: bool) -> Result<i32> {
    let mut client = Client::connect(home)?;
    out.info("Saving current process list...");
    // Modules are not the user's apps: a daemon starts them from `conf.json` (as PM2's dump
    // leaves them out).
    let mut procs: Vec<_> = list(&mut client)?
        .iter()
        .filter(|p| !p.spec.pmx_module)
        .map(dump::proc_of)
        .collect();
    let path = home.dump_file();
    if procs.is_empty() && !force {
        // As PM2 (#3485): an empty list never replaces a dump by accident (a daemon that
        // restarted empty, then `save` run by a script).
        let w = pmr_core::personality::warn();
        let arg0 = pmr_core::personality::current().arg0();
        println!("{w} {arg0} is not managing any process, skipping save...");
        println!("{w} To force saving use: {arg0} save --force");
        return Ok(0);
    }
    procs.sort_by_key(|p| p.pm_id);
    dump::write_atomic(&path, &dump::encode(procs), true)
        .map_err(|e| anyhow::anyhow!("Failed to save dump file in {}: {e}", path.display()))?;
    out.info(format!("Successfully saved in {}", path.display()));
    Ok(0)
}

pub fn cleardump(home: &Home, out: &Out) -> Result<i32> {
    let path = home.dump_file();
    // An empty list, as PM2 writes; the previous dump stays as `.bak`.
    dump::write_atomic(&path, b"[]", true).map_err(|e| anyhow::anyhow!("{e}"))?;
    out.info(format!("Successfully created {}", path.display()));
    Ok(0)
}

pub fn resurrect(home: &Home, out: &Out, file: Option<&str>) -> Result<i32> {
    let path = match file {
        Some(f) => {
            let p = std::env::current_dir()?.join(f);
            if !p.exists() && !dump::backup_path(&p).exists() {
                bail!("File {f} not found");
            }
            p
        }
        None => home.dump_file(),
    };
    out.info("Resurrecting");
    out.info(format!("Restoring processes located in {}", path.display()));
    let loaded = match dump::load(&path).map_err(|e| anyhow::anyhow!("{e}"))? {
        Some(l) => l,
        None => bail!("No processes saved; DUMP file doesn't exist"),
    };
    for w in &loaded.warnings {
        eprintln!("{} {w}", pmr_core::personality::warn());
    }
    let mut procs = match &loaded.contents {
        Contents::Pmr(p) => p.clone(),
        Contents::Pm2(list) => {
            let dir = loaded.from.parent().unwrap_or(Path::new("/"));
            super::pm2_dump::convert(list, dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}; nothing started", loaded.from.display()))?
        }
    };
    dump::check_files(&mut procs);
    let mut client = Client::connect(home)?;
    let resp = call(
        &mut client,
        &Request::Resurrect(ResurrectRequest {
            procs: procs.clone(),
        }),
    )?;
    let Response::Resurrected { results, skipped } = resp else {
        bail!("unexpected reply from the daemon: {resp:?}");
    };
    for name in &skipped {
        out.info(format!("App [{name}] already managed, not restored again"));
    }
    let mut failed = 0;
    for r in &results {
        match &r.error {
            None => {
                let script = procs
                    .iter()
                    .find(|p| p.spec.name == r.name)
                    .map_or(r.name.as_str(), |p| p.spec.script.as_str());
                out.info(format!("Process {script} restored"));
            }
            Some(e) => {
                failed += 1;
                eprintln!(
                    "{} [{}]({}) {e}",
                    pmr_core::personality::err(),
                    r.name,
                    r.id
                );
            }
        }
    }
    super::show::print_table(&mut client, out)?;
    Ok(if failed > 0 { 1 } else { 0 })
}
