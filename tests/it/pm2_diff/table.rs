//! `tests/pm2_differences.toml`: the deliberate differences from PM2, one `[[difference]]` row
//! each: `scenario`, `what` (a difference's path without step and indices, or `exit <command>`),
//! `pm2` and `pmr` (the values as compact JSON, `<absent>` when missing) and `reason`. `*` in
//! `scenario`, `what`, `pm2`, `pmr` matches any run of characters. `sometimes = true` marks a
//! difference that depends on PM2's timing: it is excused but never reported stale.

use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub scenario: String,
    pub what: String,
    pub pm2: String,
    pub pmr: String,
    pub reason: String,
    /// The difference depends on timing under PM2 (say how in `reason`): not reported stale.
    #[serde(default)]
    pub sometimes: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    difference: Vec<Row>,
}

/// One difference found: where, and the two values as `show` renders them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diff {
    pub scenario: String,
    pub what: String,
    pub pm2: String,
    pub pmr: String,
    pub location: String,
}

pub fn read(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for r in &file.difference {
        assert!(
            !r.reason.trim().is_empty() && r.reason != "TODO",
            "{}: the row {}/{} needs a reason",
            path.display(),
            r.scenario,
            r.what
        );
    }
    file.difference
}

/// `*`-glob: `*` matches any run of characters, everything else itself.
pub fn glob(pat: &str, s: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl Row {
    pub fn matches(&self, d: &Diff) -> bool {
        glob(&self.scenario, &d.scenario)
            && glob(&self.what, &d.what)
            && glob(&self.pm2, &d.pm2)
            && glob(&self.pmr, &d.pmr)
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Candidate rows for the unlisted differences (one per scenario, what and values), for
/// `PMR_PM2_DIFF_ROWS`: paste them into the table and write the reasons.
pub fn candidates(diffs: &[Diff]) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for d in diffs {
        if seen.insert((&d.scenario, &d.what, &d.pm2, &d.pmr)) {
            out += &format!(
                "[[difference]]\nscenario = {}\nwhat = {}\npm2 = {}\npmr = {}\nreason = \"TODO\"\n# at {}\n\n",
                quote(&d.scenario),
                quote(&d.what),
                quote(&d.pm2),
                quote(&d.pmr),
                d.location
            );
        }
    }
    out
}

#[test]
fn glob_matches_runs() {
    assert!(glob("*", "anything"));
    assert!(glob("jlist.*.PM2_HOME", "jlist.pm2_env.env.PM2_HOME"));
    assert!(!glob("jlist.*.PM2_HOME", "jlist.pm2_env.env.PM2_HOMEX"));
    assert!(glob("a*b*c", "abc"));
    assert!(!glob("a*b*c", "acb"));
    assert!(glob("exact", "exact"));
    assert!(!glob("exact", "exactly"));
}
