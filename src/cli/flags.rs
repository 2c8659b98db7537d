//! The app options given on the command line, read from clap's matches: every flag is defined
//! once, in [`AppFlags`], whose argument ids are the app options they set (`--output` sets
//! `out_file`, `--no-autorestart` sets `autorestart` to false, ...).

use super::AppFlags;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, Command, FromArgMatches};
use serde_json::{Map, Value};

/// Flags of [`AppFlags`] that select things rather than set an app option.
const NOT_OPTIONS: &[&str] = &["env_name", "only"];

/// [`AppFlags`] as parsed, plus the raw app options the command line gave (values as typed:
/// `options::normalize_app` checks and converts them, as it does for config files).
#[derive(Debug, Default, Clone)]
pub struct AppArgs {
    flags: AppFlags,
    pub options: Map<String, Value>,
}

impl std::ops::Deref for AppArgs {
    type Target = AppFlags;
    fn deref(&self) -> &AppFlags {
        &self.flags
    }
}

impl FromArgMatches for AppArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(AppArgs {
            flags: AppFlags::from_arg_matches(m)?,
            options: options_given(m),
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.flags.update_from_arg_matches(m)?;
        self.options.extend(options_given(m));
        Ok(())
    }
}

impl Args for AppArgs {
    fn augment_args(cmd: Command) -> Command {
        AppFlags::augment_args(cmd)
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        AppFlags::augment_args_for_update(cmd)
    }
}

/// The options set by flags given on the command line (not by defaults), in definition order.
fn options_given(m: &ArgMatches) -> Map<String, Value> {
    let defs = AppFlags::augment_args(Command::new("pmr"));
    let mut out = Map::new();
    for arg in defs.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_OPTIONS.contains(&id) || m.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let v = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => Value::Bool(m.get_flag(id)),
            ArgAction::Append => Value::Array(
                m.get_many::<String>(id)
                    .into_iter()
                    .flatten()
                    .map(|s| Value::String(s.clone()))
                    .collect(),
            ),
            _ => match m.get_one::<String>(id) {
                Some(s) => Value::String(s.clone()),
                None => continue,
            },
        };
        out.insert(id.to_string(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;
    use serde_json::json;

    fn given(args: &[&str]) -> Map<String, Value> {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.cmd {
            Cmd::Start(a) => a.app.options.clone(),
            other => panic!("not start: {other:?}"),
        }
    }

    #[test]
    fn flags_become_the_options_they_name() {
        let o = given(&[
            "pmr",
            "start",
            "app.js",
            "--name",
            "web",
            "-i",
            "-1",
            "--no-autorestart",
            "-x",
            "--log",
            "--watch",
            "-o",
            "/o.log",
            "--time",
            "--env",
            "prod",
            "--only",
            "a",
            // Takes every value after it, as before.
            "--stop-exit-codes",
            "1",
            "2",
        ]);
        assert_eq!(
            Value::Object(o),
            json!({
                "name": "web",
                "instances": "-1",
                "out_file": "/o.log",
                "log_file": "true",
                "time": true,
                "stop_exit_codes": ["1", "2"],
                "autorestart": false,
                "watch": "true",
                "exec_mode": "fork",
            })
        );
        assert!(given(&["pmr", "start", "app.js"]).is_empty());
        let o = given(&["pmr", "start", "app.js", "--watch", "src", "-l", "/all.log"]);
        assert_eq!(
            Value::Object(o),
            json!({"log_file": "/all.log", "watch": "src"})
        );
    }

    #[test]
    fn every_flag_is_an_app_option_or_says_it_is_not() {
        let names: Vec<&str> = pmr_config::options::option_names().collect();
        let defs = AppFlags::augment_args(Command::new("pmr"));
        for arg in defs.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                names.contains(&id) || NOT_OPTIONS.contains(&id),
                "flag id {id:?} is not an app option"
            );
        }
    }
}
