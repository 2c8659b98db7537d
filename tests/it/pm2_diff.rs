//! The differential harness (issue 11): the same command sequences under PM2 (7.0.4, pinned by
//! `tests/pm2/npm/`, installed with `npm ci` into the apps cache) and under pmr, each side in its
//! own homes and cwd, compared after normalisation (`normalise.rs`): exit codes, `jlist` (keys
//! and values, `pm2_env` included), `prettylist` (as the same data as `jlist`) and the cells of
//! `ls`. A difference must be listed in `tests/pm2_differences.toml` (`table.rs`), and a listed
//! row that no longer occurs fails the test too.
//!
//! Knobs: `PMR_PM2_DIFF_ONLY=<scenario>`, `PMR_PM2_DIFF_VERBOSE=1` (every command's output, every
//! difference), `PMR_PM2_DIFF_ROWS=<file>` (candidate rows for the unlisted differences).

mod normalise;
mod scenario;
mod table;
mod tool;

use normalise::Paths;
use scenario::Scenario;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use table::Diff;
use tool::{Kind, Side};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn verbose() -> bool {
    std::env::var_os("PMR_PM2_DIFF_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The step as a command line: leading `KEY=value` words are its environment.
fn parse_step(step: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let words = shell_words::split(step).unwrap_or_else(|e| panic!("step `{step}`: {e}"));
    let mut words = words.into_iter().peekable();
    while let Some(w) = words.peek() {
        match w.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
            {
                env.push((k.to_string(), v.to_string()));
                words.next();
            }
            _ => break,
        }
    }
    (env, words.collect())
}

/// Run a scenario on one side: every observation by location (`sNN <step>: <item>`).
fn run_side(side: &Side, sc: &Scenario) -> BTreeMap<String, Value> {
    let paths = Paths(vec![
        (side.home.to_string_lossy().into_owned(), "$HOME_DIR"),
        (side.cwd.to_string_lossy().into_owned(), "$CWD"),
        (side.user_home.to_string_lossy().into_owned(), "$USER_HOME"),
    ]);
    let label = side.kind.label();
    let mut obs = BTreeMap::new();
    // (tag, jlist, prettylist text, ls text) of each `=`/`=p`, compared once the steps are done
    // (one `node` run reads all the prettylists back).
    let mut snaps = Vec::new();
    for (i, step) in sc.steps.iter().enumerate() {
        let tag = format!("s{i:02} {step}");
        if let Some(rest) = step.strip_prefix('?') {
            let (n, file) = rest.split_once(' ').expect("`?<lines> <file>`");
            side.wait_lines(file, n.parse().expect("`?<lines> <file>`"));
            continue;
        }
        if let Some(cmd) = step.strip_prefix("! ") {
            let (_, args) = parse_step(cmd);
            let out = side.run_helper(&args);
            obs.insert(format!("{tag}: exit {step}"), Value::from(out.code));
            continue;
        }
        if *step != "=" && *step != "=p" {
            let (env, args) = parse_step(step);
            let out = side.run(&args, &env);
            if verbose() {
                eprintln!(
                    "[{}/{label}] {step} → {}\n{}{}",
                    sc.name, out.code, out.stdout, out.stderr
                );
            }
            obs.insert(format!("{tag}: exit {step}"), Value::from(out.code));
            continue;
        }
        let jlist = side.settle();
        let pretty = (*step == "=p").then(|| side.prettylist());
        let ls = side.ls();
        if verbose() {
            eprintln!("[{}/{label}] ls\n{ls}", sc.name);
        }
        snaps.push((tag, jlist, pretty, ls));
    }
    let texts: Vec<String> = snaps.iter().filter_map(|s| s.2.clone()).collect();
    let mut pretties = tool::eval_literals(label, &texts).into_iter();
    for (tag, mut jlist, pretty_text, ls) in snaps {
        normalise::sort_list(&mut jlist);
        normalise::value(&mut jlist, &paths);
        let mut flat_j = BTreeMap::new();
        normalise::flatten("jlist", &jlist, &mut flat_j);
        if pretty_text.is_some() {
            let mut pretty = pretties.next().unwrap();
            normalise::sort_list(&mut pretty);
            normalise::value(&mut pretty, &paths);
            let mut flat_p = BTreeMap::new();
            normalise::flatten("jlist", &pretty, &mut flat_p);
            // prettylist must show what jlist shows: only where it does not is there an item,
            // so a difference between the tools in jlist is not reported twice.
            for k in flat_j.keys().chain(flat_p.keys()) {
                let (j, p) = (flat_j.get(k), flat_p.get(k));
                if j != p {
                    let item = format!("prettylist≠{}", &k["jlist".len()..]);
                    obs.insert(
                        format!("{tag}: {item}"),
                        Value::String(normalise::show(p) + " vs jlist " + &normalise::show(j)),
                    );
                }
            }
        }
        for (k, v) in flat_j {
            obs.insert(format!("{tag}: {k}"), v);
        }
        let rows = normalise::ls(&ls, &paths);
        if let Some((header, body)) = rows.split_first() {
            obs.insert(format!("{tag}: ls.columns"), Value::from(header.clone()));
            for (r, row) in body.iter().enumerate() {
                for (c, cell) in row.iter().enumerate() {
                    let col = header.get(c).map_or("?", String::as_str);
                    obs.insert(format!("{tag}: ls[{r}].{col}"), Value::from(cell.clone()));
                }
            }
        }
    }
    obs
}

fn run_scenario(sc: &Scenario, pm2_dir: &Path) -> Vec<Diff> {
    let started = std::time::Instant::now();
    let (pm2, pmr) = std::thread::scope(|s| {
        let pm2 = s.spawn(|| {
            let side = Side::new(Kind::Pm2, sc.name, pm2_dir);
            run_side(&side, sc)
        });
        let pmr = s.spawn(|| {
            let side = Side::new(Kind::Pmr, sc.name, pm2_dir);
            run_side(&side, sc)
        });
        (pm2.join(), pmr.join())
    });
    let (pm2, pmr) = match (pm2, pmr) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
    };
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&String> = pm2.keys().chain(pmr.keys()).collect();
    for loc in keys {
        let (a, b) = (pm2.get(loc), pmr.get(loc));
        if a != b {
            diffs.push(Diff {
                scenario: sc.name.to_string(),
                what: normalise::what(loc),
                pm2: normalise::show(a),
                pmr: normalise::show(b),
                location: loc.clone(),
            });
        }
    }
    eprintln!(
        "pm2_diff: {} ran in {:.1}s, {} differences",
        sc.name,
        started.elapsed().as_secs_f64(),
        diffs.len()
    );
    diffs
}

#[test]
fn pm2_and_pmr_agree() {
    let pm2_dir: PathBuf = crate::apps::installed("pm2", &manifest().join("tests/pm2/npm"));
    let table_path = manifest().join("tests/pm2_differences.toml");
    let rows = table::read(&table_path);
    let only = std::env::var("PMR_PM2_DIFF_ONLY")
        .ok()
        .filter(|s| !s.is_empty());
    let scenarios: Vec<&Scenario> = scenario::ALL
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
        .collect();
    assert!(
        !scenarios.is_empty(),
        "PMR_PM2_DIFF_ONLY={}: no such scenario",
        only.unwrap_or_default()
    );
    let started = std::time::Instant::now();
    // Three scenarios at a time: measured the quickest on the 2-core machine (under a load
    // average of 12: two at a time 42 s, three 26 s); PM2's commands wait on its daemon a lot.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(sc) = scenarios.get(i) else { break };
                let d = run_scenario(sc, &pm2_dir);
                results.lock().unwrap().push((i, d));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let diffs: Vec<Diff> = results.into_iter().flat_map(|(_, d)| d).collect();
    eprintln!(
        "pm2_diff: {} scenarios in {:.1}s",
        scenarios.len(),
        started.elapsed().as_secs_f64()
    );

    let mut used = vec![false; rows.len()];
    let mut unlisted = Vec::new();
    for d in &diffs {
        let mut listed = false;
        for (i, r) in rows.iter().enumerate() {
            if r.matches(d) {
                used[i] = true;
                listed = true;
            }
        }
        if verbose() {
            let mark = if listed { "listed" } else { "UNLISTED" };
            eprintln!("{mark}: {} | pm2 {} | pmr {}", d.location, d.pm2, d.pmr);
        }
        if !listed {
            unlisted.push(d.clone());
        }
    }
    // With one scenario selected, only rows written for exactly that scenario can be judged.
    let stale: Vec<&table::Row> = rows
        .iter()
        .zip(&used)
        .filter(|(r, used)| {
            !**used && !r.sometimes && only.as_deref().is_none_or(|o| r.scenario == o)
        })
        .map(|(r, _)| r)
        .collect();

    if let Some(file) = std::env::var_os("PMR_PM2_DIFF_ROWS").filter(|f| !f.is_empty()) {
        std::fs::write(&file, table::candidates(&unlisted)).unwrap();
        eprintln!(
            "pm2_diff: candidate rows for {} differences written to {}",
            unlisted.len(),
            Path::new(&file).display()
        );
    }
    // One line per scenario, what and values, with how often and where first.
    let mut groups: BTreeMap<(&str, &str, &str, &str), (usize, &str)> = BTreeMap::new();
    for d in &unlisted {
        groups
            .entry((&d.scenario, &d.what, &d.pm2, &d.pmr))
            .or_insert((0, &d.location))
            .0 += 1;
    }
    let mut report = String::new();
    for ((sc, what, pm2, pmr), (n, at)) in groups.iter().take(80) {
        report +=
            &format!("  unlisted [{sc}] {what} | pm2 {pm2} | pmr {pmr}   ({n}×, first at {at})\n");
    }
    if groups.len() > 80 {
        report += &format!("  … and {} more\n", groups.len() - 80);
    }
    for r in &stale {
        report += &format!(
            "  stale row [{}] {} | pm2 {} | pmr {}: no longer occurs, remove it\n",
            r.scenario, r.what, r.pm2, r.pmr
        );
    }
    assert!(
        report.is_empty(),
        "pmr differs from PM2 where tests/pm2_differences.toml does not say so \
         (PMR_PM2_DIFF_ROWS=<file> writes candidate rows, PMR_PM2_DIFF_VERBOSE=1 shows all):\n{report}"
    );
}
