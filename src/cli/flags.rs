//! The app options given on the command line, read from clap's matches: every flag is defined
//! once, in [`AppFlags`], whose argument ids are the app options they set (`--output` sets
//! `out_file`, `--no-autorestart` sets `autorestart` to false, ...). Their help is the option
//! table's description of the option (`pmr_config::options`), so it is written once.

use super::AppFlags;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use pmr_config::options;
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

/// `cmd` and its subcommands with each app flag's help taken from the option table. Only what
/// shows help needs it (`--help`, completions, man pages): made for every command, the texts
/// were half of a `pmr` call's instructions (2.8 of 5.6 million).
pub fn with_help(cmd: Command) -> Command {
    let defs = AppFlags::augment_args(Command::new("pmr"));
    let ids: Vec<&str> = defs
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| !NOT_OPTIONS.contains(id))
        .collect();
    help_in(cmd, &ids)
}

fn help_in(cmd: Command, ids: &[&str]) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd;
    if cmd
        .get_arguments()
        .any(|a| ids.contains(&a.get_id().as_str()))
    {
        cmd = cmd.mut_args(|a| {
            if ids.contains(&a.get_id().as_str()) {
                help_from_table(a)
            } else {
                a
            }
        });
    }
    for n in names {
        cmd = cmd.mut_subcommand(n, |s| help_in(s, ids));
    }
    cmd
}

/// The option a flag documents: the one its long name spells (`--execute-command`, which sets
/// `exec_mode`), else the one it sets (`--no-autorestart` sets `autorestart`).
fn documented_option(arg: &Arg) -> Option<&'static str> {
    arg.get_long()
        .and_then(|l| options::canonical(&l.replace('-', "_")))
        .or_else(|| options::canonical(arg.get_id().as_str()))
}

/// `-h` shows the description's first sentence, `--help` all of it and the default.
fn help_from_table(arg: Arg) -> Arg {
    let Some(name) = documented_option(&arg) else {
        return arg;
    };
    // The table is markdown (for the README); a terminal shows the backticks as noise.
    let plain = |s: &str| s.replace('`', "");
    let meaning = plain(options::describe(name).unwrap_or_default());
    let lead = match arg.get_action() {
        ArgAction::SetFalse => format!("Turns {name} off: "),
        _ => String::new(),
    };
    let mut long = format!("{lead}{meaning}");
    let default = plain(options::default_of(name).unwrap_or_default());
    if !default.starts_with('—') {
        long.push_str(&format!("\n\n[default: {default}]"));
    }
    arg.help(format!("{lead}{}", first_sentence(&meaning)))
        .long_help(long)
}

/// Up to the first `. ` (not `e.g. `).
fn first_sentence(text: &str) -> &str {
    text.match_indices(". ")
        .find(|(i, _)| !text[..*i].ends_with("e.g"))
        .map_or(text, |(i, _)| &text[..=i])
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
    fn every_app_flag_has_the_help_of_its_option() {
        let cmd = with_help(AppArgs::augment_args(Command::new("pmr")));
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if NOT_OPTIONS.contains(&id) {
                continue;
            }
            assert!(
                documented_option(arg).is_some(),
                "flag {id:?} has no entry in the option table"
            );
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let long = arg
                .get_long_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                !help.is_empty() && long.starts_with(&help),
                "{id}: {help:?} / {long:?}"
            );
        }
        assert_eq!(
            help_of(&cmd, "kill_timeout"),
            "Grace period after the stop signal before SIGKILL.\n\n[default: 1600]"
        );
        assert_eq!(
            help_of(&cmd, "exec_mode"),
            "Force fork mode.\n\n[default: false]"
        );
        assert!(help_of(&cmd, "autorestart").starts_with("Turns autorestart off: Restart"));
        let watch = cmd.get_arguments().find(|a| a.get_id() == "watch").unwrap();
        assert!(
            !watch.get_help().unwrap().to_string().contains("inotify"),
            "-h: one sentence"
        );
    }

    fn help_of(cmd: &Command, id: &str) -> String {
        let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
        arg.get_long_help().unwrap().to_string()
    }

    #[test]
    fn first_sentences() {
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("Var (e.g. PORT). Two."), "Var (e.g. PORT).");
        assert_eq!(
            first_sentence("Every 0.5 s (K = 1024). 0 removes it."),
            "Every 0.5 s (K = 1024)."
        );
        assert_eq!(first_sentence("No stop"), "No stop");
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
