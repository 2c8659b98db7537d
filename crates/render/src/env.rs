//! `pmr env <id>`: the environment the process runs with.

use pmr_core::protocol::ProcInfo;

/// One `KEY: value` line per variable, sorted by name. Ends with a newline (empty when the
/// environment is).
pub fn env_listing(p: &ProcInfo) -> String {
    // `env` is a BTreeMap, so iteration is already sorted by key.
    p.env.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc_info;
    use pmr_core::protocol::Status;

    #[test]
    fn sorted_key_value_lines() {
        let mut p = proc_info(0, "api", Status::Online);
        p.env.insert("A_FIRST".into(), "x y".into());
        assert_eq!(
            env_listing(&p),
            "A_FIRST: x y\nNODE_APP_INSTANCE: 0\nPATH: /usr/bin:/bin\nPORT: 3000\nname: api\npm_id: 0\n"
        );
        p.env.clear();
        assert_eq!(env_listing(&p), "");
    }
}
