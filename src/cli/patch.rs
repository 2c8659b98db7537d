//! Options given with `restart`, `reload` or `start` of an existing app become a [`SpecPatch`]
//! (PM2's `_handleAttributeUpdate`): `--name` renames, `--node-args` replaces, `0` turns
//! `--cron-restart`/`--max-memory-restart` off, `--watch` alone toggles watching, `null`
//! removes an option. Values are checked here with the same rules as for a new app, so a bad
//! one is an error before anything is sent to the daemon.

use super::flags::AppArgs;
use super::{AppFlags, Out};
use crate::client::Client;
use anyhow::{anyhow, bail, Result};
use clap::{Args, Command};
use pmr_config::app::BuildCtx;
use pmr_core::protocol::{SpecFields, SpecPatch};
use pmr_core::spec::AppSpec;
use serde_json::{json, Map, Value};

/// Options that stay as they are on an existing app, with the reason the user is told.
/// (`exec_mode` is dropped silently, as PM2 does.)
const KEPT: &[(&str, &str)] = &[
    (
        "instances",
        "use `pmr scale <app> <n>` to change the number of instances",
    ),
    (
        "out_file",
        "log files are chosen when an app is first started",
    ),
    (
        "error_file",
        "log files are chosen when an app is first started",
    ),
    (
        "log_file",
        "log files are chosen when an app is first started",
    ),
    (
        "merge_logs",
        "log files are chosen when an app is first started",
    ),
    (
        "pid_file",
        "pid files are chosen when an app is first started",
    ),
    (
        "filter_env",
        "the environment is kept; use --update-env to refresh it",
    ),
];

/// Options whose `0` means "off" (PM2: `--cron-restart 0`, `--max-memory-restart 0`).
const ZERO_IS_OFF: &[&str] = &["cron_restart", "max_memory_restart"];

/// The patch the flags of `a` ask for (`None` when they ask for nothing). `label` names the
/// app(s) in warnings.
pub fn from_flags(out: &Out, a: &AppArgs, label: &str) -> Result<Option<SpecPatch>> {
    let mut given: Map<String, Value> = Map::new();
    let mut cleared: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let mut toggle_watch = false;
    for (k, v) in &a.options {
        let text = v.as_str().map(str::trim);
        if k == "exec_mode" {
            continue;
        }
        if let Some((_, why)) = KEPT.iter().find(|(key, _)| key == k) {
            eprintln!(
                "{} {} has no effect on an existing app: {why}",
                pmr_core::personality::warn(),
                flag_name(k)
            );
            continue;
        }
        if text == Some("null") {
            if k == "name" {
                bail!("--name null: an app needs a name");
            }
            cleared.push(k.clone());
            removed.push(spec_field(k).to_string());
        } else if ZERO_IS_OFF.contains(&k.as_str()) && text == Some("0") {
            if k == "cron_restart" {
                out.info("disabling cron restart");
            }
            cleared.push(k.clone());
        } else if k == "watch" && text == Some("true") {
            toggle_watch = true;
        } else {
            if k == "cron_restart" {
                out.info(format!("cron restart at {}", text.unwrap_or_default()));
            }
            given.insert(k.clone(), v.clone());
        }
    }
    if given.is_empty() && cleared.is_empty() && !toggle_watch {
        return Ok(None);
    }

    // The values as a new app would get them: a spec built from the given options (and one
    // from none, for the options cleared) around a stand-in script that always exists.
    let stand_in = std::env::current_exe()?.to_string_lossy().into_owned();
    let build = |opts: &Map<String, Value>| -> Result<AppSpec> {
        let mut o = opts.clone();
        o.insert("script".into(), json!(stand_in));
        o.entry("interpreter").or_insert(json!("none"));
        o.entry("name").or_insert(json!(label));
        super::app_spec::spec_from_options(&o, &BuildCtx::from_process(None))
    };
    let with_given = build(&given)?;
    let defaults = if cleared.is_empty() {
        None
    } else {
        Some(build(&Map::new())?)
    };
    let mut fields = SpecFields::default();
    let mut set = |option: &str, from: &AppSpec| {
        if !fields.set_from(spec_field(option), from) {
            eprintln!(
                "{} {} has no effect on an existing app; ignored",
                pmr_core::personality::warn(),
                flag_name(option)
            );
        }
    };
    for k in given.keys() {
        set(k, &with_given);
    }
    if let Some(defaults) = &defaults {
        for k in &cleared {
            set(k, defaults);
        }
    }
    removed.retain(|f| fields.sets(f));
    Ok(Some(SpecPatch {
        fields: Box::new(fields),
        toggle_watch,
        removed,
    }))
}

/// `--interpreter null`: the interpreter a new app of the selected apps' script gets (by its
/// extension or first line), not the stand-in's of [`from_flags`]. One patch serves every
/// selected app, so they must all get the same one.
pub fn default_interpreter(client: &mut Client, ids: &[u32], patch: &mut SpecPatch) -> Result<()> {
    if !patch.removed.iter().any(|f| f == "interpreter") {
        return Ok(());
    }
    let ctx = BuildCtx::from_process(None);
    let mut chosen: Option<(Option<String>, String)> = None;
    for p in super::list(client)?
        .iter()
        .filter(|p| ids.contains(&p.pm_id))
    {
        let s = &p.spec;
        let label = format!("[{}]({})", s.name, p.pm_id);
        let o = Map::from_iter([
            ("script".to_string(), json!(s.script)),
            ("cwd".to_string(), json!(s.cwd)),
            ("name".to_string(), json!(s.name)),
        ]);
        let built = super::app_spec::spec_from_options(&o, &ctx)
            .map_err(|e| anyhow!("--interpreter null: {label} {e}"))?;
        match &chosen {
            Some((v, first)) if *v != built.interpreter => bail!(
                "--interpreter null: {first} and {label} would get different interpreters; \
                 restart them one at a time"
            ),
            Some(_) => {}
            None => chosen = Some((built.interpreter, label)),
        }
    }
    if let Some((v, _)) = chosen {
        patch.fields.interpreter = Some(v);
    }
    Ok(())
}

/// The patch for `start <script>` when the daemon restarts a stopped app of that script: the
/// options given, with the values `spec` (built from them) has. Nothing is printed: the spec's
/// build already warned, and the app may turn out to be new.
pub fn from_spec(a: &AppArgs, spec: &AppSpec) -> Option<SpecPatch> {
    let mut fields = SpecFields::default();
    let given = a
        .options
        .keys()
        .filter(|k| *k != "exec_mode" && *k != "name" && !KEPT.iter().any(|(key, _)| key == k));
    for k in given {
        fields.set_from(spec_field(k), spec);
    }
    fields.any().then(|| SpecPatch {
        fields: Box::new(fields),
        ..SpecPatch::default()
    })
}

/// The `AppSpec` field an app option sets.
fn spec_field(option: &str) -> &str {
    match option {
        "time" => "log_date_format",
        other => other,
    }
}

/// The command-line flag of an app option, for messages (`interpreter_args` → `--node-args`).
fn flag_name(option: &str) -> String {
    let defs = AppFlags::augment_args(Command::new("pmr"));
    let long = defs
        .get_arguments()
        .find(|a| a.get_id().as_str() == option)
        .and_then(|a| a.get_long())
        .map(|l| format!("--{l}"));
    long.unwrap_or_else(|| option.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;

    fn patch(args: &[&str]) -> Result<Option<SpecPatch>> {
        let cli = Cli::try_parse_from(args).unwrap();
        let Cmd::Restart(a) = cli.cmd else {
            panic!("not restart")
        };
        let out = Out {
            silent: true,
            color: false,
        };
        from_flags(&out, &a.app, "web")
    }

    #[test]
    fn flags_become_typed_fields() {
        let p = patch(&[
            "pmr",
            "restart",
            "web",
            "--name",
            "api",
            "--node-args=--max-old-space-size=100 --trace-gc",
            "--max-memory-restart",
            "100M",
            "--kill-timeout",
            "3000",
            "--no-autorestart",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            *p.fields,
            SpecFields {
                name: Some("api".into()),
                interpreter_args: Some(vec![
                    "--max-old-space-size=100".into(),
                    "--trace-gc".into()
                ]),
                max_memory_restart: Some(Some(104857600)),
                kill_timeout: Some(3000),
                autorestart: Some(false),
                ..SpecFields::default()
            }
        );
        assert!(!p.toggle_watch);
        assert_eq!(patch(&["pmr", "restart", "web"]).unwrap(), None);
    }

    #[test]
    fn zero_turns_off_null_clears_watch_toggles() {
        let p = patch(&[
            "pmr",
            "restart",
            "web",
            "--cron-restart",
            "0",
            "--max-memory-restart",
            "0",
            "--node-args",
            "null",
            "--kill-timeout",
            "null",
            "--watch",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            *p.fields,
            SpecFields {
                cron_restart: Some(None),
                max_memory_restart: Some(None),
                interpreter_args: Some(vec![]),
                kill_timeout: Some(1600),
                ..SpecFields::default()
            }
        );
        // `null` removes the option's key from `jlist` too; `0` only turns it off.
        assert_eq!(p.removed, ["interpreter_args", "kill_timeout"]);
        assert!(p.toggle_watch);
        let p = patch(&["pmr", "restart", "web", "--watch", "src"])
            .unwrap()
            .unwrap();
        assert_eq!(
            p.fields.watch,
            Some(pmr_core::spec::Watch::Paths(vec!["src".into()]))
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["--max-memory-restart", "abc"][..],
            &["--kill-timeout", "soon"],
            &["--cron-restart", "bad cron"],
            &["--name", "null"],
            &["--interpreter", "no-such-interpreter-here"],
        ] {
            let mut args = vec!["pmr", "restart", "web"];
            args.extend_from_slice(bad);
            assert!(patch(&args).is_err(), "{bad:?}");
        }
    }
}
