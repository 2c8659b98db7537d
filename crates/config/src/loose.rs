//! PM2's loose value forms, one parser per option kind: numbers given as strings, `"500ms"` /
//! `"2m"` durations, `"200M"` sizes, `"true"` for true, a string for a list of arguments, ...
//!
//! The option table's checks (`options`, which word the errors) and the typed options
//! ([`crate::raw_app::RawApp`]) both read values with these, so the two cannot disagree about
//! what a form means. Each parser answers `None` for a value it does not accept.

use pmr_core::spec::ExecMode;
use serde_json::Value;

/// A bool; `"true"` / `"false"` accepted.
pub fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A finite number from a JSON number or a numeric string (as PM2's `parseFloat` auto-parse).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// A whole number from a JSON number or a numeric string (`4`, `4.0`, `"4"`).
pub fn integer(v: &Value) -> Option<i64> {
    if let Value::Number(n) = v {
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
    }
    if let Value::String(s) = v {
        if let Ok(i) = s.trim().parse::<i64>() {
            return Some(i);
        }
    }
    let f = number(v)?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Split `"12.5ms"` into (12.5, "ms"); the unit is lower-cased and trimmed.
fn split_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    Some((num.parse().ok()?, unit.trim().to_ascii_lowercase()))
}

/// Milliseconds from a number (ms), a numeric string, or `"500ms"`, `"5s"`, `"2m"`, `"1h"`.
pub fn millis(v: &Value) -> Option<u64> {
    let ms = match v {
        Value::Number(_) => number(v)?,
        Value::String(s) => {
            let (n, unit) = split_unit(s)?;
            let mult = match unit.as_str() {
                "" | "ms" => 1.0,
                "s" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return None,
            };
            n * mult
        }
        _ => return None,
    };
    (0.0..9.0e15).contains(&ms).then(|| ms.round() as u64)
}

/// A positive number of bytes from a number or `"512K"`, `"200M"`, `"1G"` (K = 1024;
/// case-insensitive; a trailing `B` allowed: `"200MB"`).
pub fn size(v: &Value) -> Option<u64> {
    let b = match v {
        Value::Number(_) => number(v)?,
        Value::String(s) => {
            let (n, unit) = split_unit(s)?;
            let mult = match unit.strip_suffix('b').unwrap_or(&unit) {
                "" => 1.0,
                "k" => 1024.0,
                "m" => 1024.0 * 1024.0,
                "g" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            n * mult
        }
        _ => return None,
    };
    (0.0..9.0e15)
        .contains(&b)
        .then(|| b.floor() as u64)
        .filter(|b| *b > 0)
}

/// `instances`: a whole number (negative allowed: CPUs minus N), or `"max"` (= 0).
pub fn instances(v: &Value) -> Option<i64> {
    if v.as_str().map(str::trim) == Some("max") {
        return Some(0);
    }
    integer(v)
}

/// A whole number ≥ 0 that fits in a u32.
pub fn count(v: &Value) -> Option<u32> {
    integer(v).and_then(|n| u32::try_from(n).ok())
}

/// A TCP port, 1 to 65535.
pub fn port(v: &Value) -> Option<u16> {
    integer(v)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p != 0)
}

/// Exit codes: an array of integers, or one integer.
pub fn exit_codes(v: &Value) -> Option<Vec<i32>> {
    let code = |x: &Value| integer(x).and_then(|n| i32::try_from(n).ok());
    match v {
        Value::Array(items) => items.iter().map(code).collect(),
        _ => code(v).map(|n| vec![n]),
    }
}

/// `fork` / `cluster`, also PM2's `fork_mode` / `cluster_mode`.
pub fn exec_mode(v: &Value) -> Option<ExecMode> {
    match v.as_str()? {
        "fork" | "fork_mode" => Some(ExecMode::Fork),
        "cluster" | "cluster_mode" => Some(ExecMode::Cluster),
        _ => None,
    }
}

/// Why a value is not a list of words.
#[derive(Debug, PartialEq, Eq)]
pub enum WordsError<'a> {
    /// A string with an unterminated quote.
    Unterminated,
    /// The array's item at this index is not a scalar.
    Item(usize, &'a Value),
    /// Neither a string nor an array.
    Neither,
}

/// A list of arguments: an array of strings (numbers and bools in it turned into their string
/// form), or a string, shell-split (quotes respected).
pub fn words(v: &Value) -> Result<Vec<String>, WordsError<'_>> {
    match v {
        Value::String(s) => shell_words::split(s).map_err(|_| WordsError::Unterminated),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(scalar_string(x)),
                _ => Err(WordsError::Item(i, x)),
            })
            .collect(),
        _ => Err(WordsError::Neither),
    }
}

/// The string a scalar becomes in a child's environment, as JavaScript would print it.
pub fn scalar_string(v: &Value) -> String {
    pmr_core::spec::env_string(v).unwrap_or_else(|| v.to_string())
}

/// A value not of the kind asked for (its caller words the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongKind;

/// `watch` / `filter_env`: on/off, or a list of paths or names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    Bool(bool),
    List(Vec<String>),
}

impl Switch {
    /// The form the option table's checks leave in an app's options.
    pub fn to_value(&self) -> Value {
        match self {
            Switch::Bool(b) => Value::Bool(*b),
            Switch::List(items) => items.clone().into(),
        }
    }
}

/// A [`Switch`]: a bool (or `"true"`/`"false"`), one non-empty string (a one-item list), or an
/// array of non-empty strings. `Ok(None)`: an empty string, falsy in PM2, so not set.
/// `empty_is_true`: `[]` means `true` (PM2 watches `cwd` for an empty list).
pub fn switch(v: &Value, empty_is_true: bool) -> Result<Option<Switch>, WrongKind> {
    if let Some(b) = flag(v) {
        return Ok(Some(Switch::Bool(b)));
    }
    match v {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(Switch::List(vec![s.clone()]))),
        Value::Array(items) if items.is_empty() && empty_is_true => Ok(Some(Switch::Bool(true))),
        Value::Array(items) => items
            .iter()
            .map(|x| match x {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(WrongKind),
            })
            .collect::<Result<_, _>>()
            .map(|l| Some(Switch::List(l))),
        _ => Err(WrongKind),
    }
}

/// `log_file`: the default file, or this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    Default,
    Path(String),
}

impl LogFile {
    /// The form the option table's checks leave in an app's options.
    pub fn to_value(&self) -> Value {
        match self {
            LogFile::Default => Value::Bool(true),
            LogFile::Path(p) => Value::String(p.clone()),
        }
    }
}

/// A [`LogFile`] from `true` / `"true"`, or a path. `Ok(None)`: off (`false`, `"false"`, `""`).
pub fn log_file(v: &Value) -> Result<Option<LogFile>, WrongKind> {
    match v {
        Value::Bool(true) => Ok(Some(LogFile::Default)),
        Value::Bool(false) => Ok(None),
        Value::String(s) => Ok(match s.as_str() {
            "" | "false" => None,
            "true" => Some(LogFile::Default),
            _ => Some(LogFile::Path(s.clone())),
        }),
        _ => Err(WrongKind),
    }
}

/// A string; an empty one means "not set" (`Ok(None)`), as PM2's truthiness checks do.
pub fn text(v: &Value) -> Result<Option<String>, WrongKind> {
    match v {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(WrongKind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_loose_form_per_kind() {
        assert_eq!(flag(&json!("false")), Some(false));
        assert_eq!(flag(&json!(1)), None);
        assert_eq!(integer(&json!(" 4 ")), Some(4));
        assert_eq!(integer(&json!(4.0)), Some(4));
        assert_eq!(integer(&json!(4.5)), None);
        assert_eq!(millis(&json!("2m")), Some(120_000));
        assert_eq!(millis(&json!("1.5s")), Some(1500));
        assert_eq!(millis(&json!("1500")), Some(1500));
        assert_eq!(millis(&json!("5 days")), None);
        assert_eq!(millis(&json!(-1)), None);
        assert_eq!(size(&json!("100M")), Some(100 << 20));
        assert_eq!(size(&json!("1gb")), Some(1 << 30));
        assert_eq!(size(&json!(0)), None, "a size is positive");
        assert_eq!(instances(&json!("max")), Some(0));
        assert_eq!(instances(&json!("-1")), Some(-1));
        assert_eq!(count(&json!("3")), Some(3));
        assert_eq!(count(&json!(-3)), None);
        assert_eq!(port(&json!("8080")), Some(8080));
        assert_eq!((port(&json!(0)), port(&json!(65536))), (None, None));
        assert_eq!(exit_codes(&json!(3)), Some(vec![3]));
        assert_eq!(exit_codes(&json!(["0", 2])), Some(vec![0, 2]));
        assert_eq!(exit_codes(&json!([1, "x"])), None);
        assert_eq!(exec_mode(&json!("cluster_mode")), Some(ExecMode::Cluster));
        assert_eq!(exec_mode(&json!("threads")), None);
        assert_eq!(
            words(&json!("a 'b c'")),
            Ok(vec!["a".to_string(), "b c".into()])
        );
        assert_eq!(
            words(&json!([1, true])),
            Ok(vec!["1".to_string(), "true".into()])
        );
        assert_eq!(words(&json!("'a")), Err(WordsError::Unterminated));
        assert_eq!(
            words(&json!(["a", []])),
            Err(WordsError::Item(1, &json!([])))
        );
        assert_eq!(words(&json!(5)), Err(WordsError::Neither));
        assert_eq!(
            switch(&json!("src"), true),
            Ok(Some(Switch::List(vec!["src".into()])))
        );
        assert_eq!(switch(&json!([]), true), Ok(Some(Switch::Bool(true))));
        assert_eq!(switch(&json!([]), false), Ok(Some(Switch::List(vec![]))));
        assert_eq!(switch(&json!(""), true), Ok(None));
        assert_eq!(switch(&json!([""]), true), Err(WrongKind));
        assert_eq!(log_file(&json!("true")), Ok(Some(LogFile::Default)));
        assert_eq!(log_file(&json!("false")), Ok(None));
        assert_eq!(log_file(&json!(1)), Err(WrongKind));
        assert_eq!(text(&json!("")), Ok(None));
        assert_eq!(text(&json!(1)), Err(WrongKind));
    }
}
