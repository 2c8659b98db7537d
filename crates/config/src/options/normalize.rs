//! The option table's checks: an app object as written → its canonical options.

use super::{camel, lookup, quote, AppRef, Kind, OptionError, OPTIONS};
use crate::loose::{self, LogFile, Switch, WordsError, WrongKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Normalize one raw app object: canonical keys, canonical types, units converted. An unknown
/// key is an error (`pmr start --strict`, `pmr config-check`, and the CLI's own flags).
///
/// `null` values are treated as absent (as PM2 does). The output keeps the order in which keys
/// first appeared. Defaults are not filled in.
pub fn normalize_app(raw: &Map<String, Value>) -> Result<Map<String, Value>, OptionError> {
    normalize(raw, None)
}

/// [`normalize_app`], except that unknown keys (of the app, and of its `log_rotate` block) are
/// left out and returned, one [`OptionError`] each with its did-you-mean, for the caller to
/// print as warnings: PM2 ignores them, and real config files carry such junk.
pub fn normalize_app_lenient(
    raw: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<OptionError>), OptionError> {
    let mut unknown = Vec::new();
    let out = normalize(raw, Some(&mut unknown))?;
    Ok((out, unknown))
}

/// `unknown`: where unknown keys go; `None` makes the first one the error.
fn normalize(
    raw: &Map<String, Value>,
    mut unknown: Option<&mut Vec<OptionError>>,
) -> Result<Map<String, Value>, OptionError> {
    let app = match raw.get("name") {
        Some(Value::String(s)) if !s.is_empty() => AppRef::Name(s.clone()),
        _ => AppRef::Unknown,
    };
    let err = |key: &str, message: String| OptionError {
        app: app.clone(),
        key: key.to_string(),
        message,
    };

    let lk = lookup();
    let mut out = Map::new();
    // canonical name → (key as written, raw value, normalized value)
    let mut seen: HashMap<&'static str, (&str, &Value, Option<Value>)> = HashMap::new();

    for (key, value) in raw {
        if let Some(&i) = lk.by_key.get(key.as_str()) {
            let o = &OPTIONS[i];
            if value.is_null() {
                continue;
            }
            let mut unknown_sub = Vec::new();
            let norm =
                normalize_value(o.kind, key, value, &mut unknown_sub).map_err(|m| err(key, m))?;
            for m in unknown_sub {
                match unknown.as_deref_mut() {
                    Some(u) => u.push(err(key, m)),
                    None => return Err(err(key, m)),
                }
            }
            if let Some((prev_key, prev_raw, prev_norm)) = seen.get(o.name) {
                if *prev_norm != norm {
                    return Err(err(
                        key,
                        format!(
                            "{} and {} both set {} but differ: {} vs {}",
                            quote(prev_key),
                            quote(key),
                            quote(o.name),
                            show(prev_raw),
                            show(value)
                        ),
                    ));
                }
                continue;
            }
            seen.insert(o.name, (key.as_str(), value, norm.clone()));
            if let Some(v) = norm {
                out.insert(o.name.to_string(), v);
            }
        } else if is_env_block(key) {
            if value.is_null() {
                continue;
            }
            let env = normalize_env(key, value).map_err(|m| err(key, m))?;
            out.insert(key.clone(), env);
        } else {
            let mut message = format!("unknown option {}", quote(key));
            if let Some(s) = suggest(key, lk.spellings.iter().map(String::as_str)) {
                message.push_str(&format!(" (did you mean {}?)", quote(s)));
            }
            match unknown.as_deref_mut() {
                Some(u) => u.push(err(key, message)),
                None => return Err(err(key, message)),
            }
        }
    }

    if !seen.contains_key("script") {
        return Err(err("script", "missing \"script\"".to_string()));
    }
    Ok(out)
}

/// `env_<name>`: PM2's `^env_\S*$`, with a non-empty name.
fn is_env_block(key: &str) -> bool {
    key.strip_prefix("env_")
        .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
}

/// The closest known spelling, if it is close enough to be a likely typo.
fn suggest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let t = norm(typed);
    let limit = (t.chars().count() / 4).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = strsim::osa_distance(&t, &norm(c));
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// A value as compact JSON, truncated for error messages.
fn show(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        s
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

type Norm = Result<Option<Value>, String>;

/// `unknown`: messages for unknown keys inside the value (`log_rotate`'s), which the caller
/// makes errors or warnings.
fn normalize_value(kind: Kind, key: &str, v: &Value, unknown: &mut Vec<String>) -> Norm {
    let k = quote(key);
    let bad = |expected: &str| Err(format!("{k} must be {expected}; got {}", show(v)));
    match kind {
        Kind::Script => match v {
            Value::String(s) if !s.trim().is_empty() => Ok(Some(v.clone())),
            _ => bad("a non-empty string"),
        },
        Kind::Str => match loose::text(v) {
            Ok(s) => Ok(s.map(Value::String)),
            Err(WrongKind) => bad("a string"),
        },
        Kind::OneOf(vals) => match v {
            Value::String(s) if vals.contains(&s.as_str()) => Ok(Some(v.clone())),
            _ => bad(&vals.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" or ")),
        },
        Kind::ExecMode => match loose::exec_mode(v) {
            Some(mode) => Ok(Some(serde_json::to_value(mode).map_err(|e| e.to_string())?)),
            None => bad("\"fork\" or \"cluster\""),
        },
        Kind::StrList => match loose::words(v) {
            Ok(words) => Ok(Some(words.into())),
            Err(WordsError::Unterminated) => Err(format!(
                "{k} has an unterminated quote; got {}",
                show(v)
            )),
            Err(WordsError::Item(i, x)) => Err(format!("{k}[{i}] must be a string; got {}", show(x))),
            Err(WordsError::Neither) => bad("a string or an array of strings"),
        },
        Kind::Bool => match loose::flag(v) {
            Some(b) => Ok(Some(b.into())),
            None => bad("true or false"),
        },
        Kind::Duration | Kind::DurationOrOff => match loose::millis(v) {
            Some(0) if kind == Kind::DurationOrOff => Ok(None),
            Some(ms) => Ok(Some(ms.into())),
            None if v.is_string() => bad(
                "a non-negative number of milliseconds or a duration like \"500ms\", \"5s\", \"2m\", \"1h\"",
            ),
            None => bad("a non-negative number of milliseconds"),
        },
        Kind::Bytes => match loose::size(v) {
            Some(b) => Ok(Some(b.into())),
            None => bad("a positive number of bytes or a size like \"512K\", \"200M\", \"1G\""),
        },
        Kind::Instances => {
            let max = pmr_core::protocol::max_instances();
            match loose::instances(v) {
                Some(n) if n > i64::from(max) => bad(&format!(
                    "at most {max}, the maximum per app (set PMR_MAX_INSTANCES to change it)"
                )),
                Some(n) => Ok(Some(n.into())),
                None => bad("a whole number (0 or \"max\" = one per CPU, -N = CPUs minus N)"),
            }
        }
        Kind::Count => match loose::count(v) {
            Some(n) => Ok(Some(n.into())),
            None => bad("a non-negative integer"),
        },
        Kind::Port => match loose::port(v) {
            Some(n) => Ok(Some(n.into())),
            None => bad("an integer from 1 to 65535"),
        },
        Kind::ExitCodes => match loose::exit_codes(v) {
            Some(codes) => Ok(Some(codes.into())),
            None => bad("an integer or an array of integers"),
        },
        Kind::Env => normalize_env(key, v).map(Some),
        Kind::LogFile => match loose::log_file(v) {
            Ok(f) => Ok(f.as_ref().map(LogFile::to_value)),
            Err(WrongKind) => bad("a file path or true/false"),
        },
        Kind::Watch => match loose::switch(v, true) {
            Ok(s) => Ok(s.as_ref().map(Switch::to_value)),
            Err(WrongKind) => bad("true/false, a path or an array of paths"),
        },
        Kind::FilterEnv => match loose::switch(v, false) {
            Ok(s) => Ok(s.as_ref().map(Switch::to_value)),
            Err(WrongKind) => bad("true/false, a variable name or an array of names"),
        },
        Kind::UidGid => match v {
            Value::String(s) if !s.trim().is_empty() => Ok(Some(v.clone())),
            Value::Number(n) if n.as_u64().is_some() => Ok(Some(v.clone())),
            _ if key.starts_with('g') => bad("a group name or a numeric group id"),
            _ => bad("a user name or a numeric user id"),
        },
        Kind::Cron => match v {
            Value::String(s) if s.trim().is_empty() || s.trim() == "0" => Ok(None),
            Value::String(s) => match pmr_core::cron::parse(s) {
                Ok(_) => Ok(Some(v.clone())),
                Err(e) => Err(format!("{k} is not a valid cron expression; got {}: {e}", show(v))),
            },
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(None),
            _ => bad("a cron expression string (0 disables)"),
        },
        Kind::Object => match v {
            Value::Object(_) => Ok(Some(v.clone())),
            _ => bad("an object"),
        },
        Kind::LogRotate => log_rotate(key, v, unknown).map(Some),
        Kind::Passthrough => Ok(Some(v.clone())),
    }
}

/// `env` / `env_<name>` / `deploy.<name>.env`: an object of variables. Values keep their JSON
/// type (jlist shows `PORT: 3000` as PM2 does; the child gets strings, see
/// [`pmr_core::spec::env_string`]), except that `env`'s objects, arrays and `null` become JSON
/// strings, as PM2's `mergeEnvironmentVariables` does to `env` only.
pub fn normalize_env(key: &str, v: &Value) -> Result<Value, String> {
    let k = quote(key);
    let Value::Object(map) = v else {
        return Err(format!(
            "{k} must be an object of environment variables ({{\"NAME\": \"value\"}}); got {}",
            show(v)
        ));
    };
    let mut out = Map::new();
    for (name, val) in map {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!(
                "{k} has an invalid variable name {} (it must be non-empty, without \"=\" or NUL)",
                quote(name)
            ));
        }
        let val = match val {
            Value::Object(_) | Value::Array(_) | Value::Null if key == "env" => {
                Value::String(val.to_string())
            }
            // `1e3` is the number 1000 in JavaScript, shown as such.
            Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    Value::from(f as i64)
                }
                _ => val.clone(),
            },
            _ => val.clone(),
        };
        if pmr_core::spec::env_string(&val).is_some_and(|s| s.contains('\0')) {
            return Err(format!(
                "{k}: the value of {} contains a NUL character",
                quote(name)
            ));
        }
        out.insert(name.clone(), val);
    }
    Ok(Value::Object(out))
}

const LOG_ROTATE_KEYS: &[&str] = &["max_size", "retain", "compress", "interval", "cron"];

/// `log_rotate`: validate the known keys (camelCase accepted), convert `max_size` to bytes.
/// Unknown keys are left out and named in `unknown`.
fn log_rotate(key: &str, v: &Value, unknown: &mut Vec<String>) -> Result<Value, String> {
    let k = quote(key);
    let Value::Object(map) = v else {
        return Err(format!("{k} must be an object; got {}", show(v)));
    };
    let mut out = Map::new();
    for (sub, val) in map {
        let canon = LOG_ROTATE_KEYS
            .iter()
            .find(|c| **c == sub || camel(c) == *sub)
            .copied();
        let Some(canon) = canon else {
            let mut m = format!("{k} has an unknown key {}", quote(sub));
            if let Some(s) = suggest(sub, LOG_ROTATE_KEYS.iter().copied()) {
                m.push_str(&format!(" (did you mean {}?)", quote(s)));
            }
            unknown.push(m);
            continue;
        };
        if val.is_null() {
            continue;
        }
        let field = quote(&format!("{key}.{sub}"));
        let bad = |expected: &str| Err(format!("{field} must be {expected}; got {}", show(val)));
        let norm = match canon {
            "max_size" => match loose::size(val) {
                Some(b) => Value::from(b),
                _ => return bad("a positive number of bytes or a size like \"10M\""),
            },
            "retain" => match loose::count(val) {
                Some(n) => Value::from(n),
                _ => return bad("a non-negative integer"),
            },
            "compress" => match loose::flag(val) {
                Some(b) => Value::from(b),
                None => return bad("true or false"),
            },
            // Checked with the parsers the daemon applies, so a bad value is an error here
            // rather than a warning in the daemon log.
            _ => match val {
                Value::String(s) if !s.trim().is_empty() => {
                    let mut probe = pmr_core::conf::RotateConf::default();
                    if let Err(e) = probe.set(canon, val) {
                        return Err(format!("{field}: {e}"));
                    }
                    val.clone()
                }
                _ => return bad("a non-empty string"),
            },
        };
        if out.insert(canon.to_string(), norm).is_some() {
            return Err(format!("{k} sets {} twice", quote(canon)));
        }
    }
    Ok(Value::Object(out))
}
