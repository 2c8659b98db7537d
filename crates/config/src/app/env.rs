//! The environment stage. An app's environment as PM2 7 assembles it
//! (`Common.mergeEnvironmentVariables`, `Modularizer.getAdditionalConf`, `God.prepare`): the
//! CLI's environment, then `env`, then the module settings stored under the app's name, then
//! `deploy.<name>.env`, then `env_<name>`, then `unique_id`. Each variable keeps the JSON type it
//! was given (`jlist` shows it); the child gets strings (see [`pmr_core::spec::env_string`]).

use super::BuildCtx;
use crate::loose::Switch;
use crate::raw_app::EnvOpts;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The stage runs in two steps around the program stage: a package script's `$VAR`s expand
/// from the environment, and the module settings need the app's name, known after it.
pub(super) struct EnvStage {
    env: AppEnv,
    /// `deploy.<name>.env` and `env_<name>`, which win over the module settings too.
    over_settings: Vec<Map<String, Value>>,
    /// A number in `jlist`, as PM2's `app.env.PORT = app.port`.
    port: Option<Value>,
}

impl EnvStage {
    /// The CLI's environment (minus `filter_env`), then `env`, then `deploy.<name>.env`, then
    /// `env_<name>` (`env_block`; measured with PM2 7.0.4: the deploy block wins over `env`),
    /// then `port`.
    pub(super) fn start(
        opts: EnvOpts,
        env_block: Option<&Map<String, Value>>,
        ctx: &BuildCtx,
    ) -> Result<EnvStage, String> {
        let mut base = ctx.env.clone();
        match opts.filter_env {
            Some(Switch::Bool(true)) => base.clear(),
            Some(Switch::List(pats)) => {
                base.retain(|k, _| !pats.iter().any(|p| k.contains(p.as_str())))
            }
            Some(Switch::Bool(false)) | None => {}
        }
        let mut env = AppEnv::new(base);
        if let Some(block) = &opts.env {
            env.layer(block);
        }
        let over_settings: Vec<_> = ctx
            .deploy_env()?
            .into_iter()
            .chain(env_block.cloned())
            .collect();
        for block in &over_settings {
            env.layer(block);
        }
        let port = opts.port.map(Value::from);
        if let Some(port) = &port {
            env.set("PORT", port);
        }
        Ok(EnvStage {
            env,
            over_settings,
            port,
        })
    }

    /// What the child would get so far.
    pub(super) fn vars(&self) -> &BTreeMap<String, String> {
        &self.env.env
    }

    /// The module settings of the app `name` between `env` and the blocks over them, then what
    /// its package script needs (`program_env`), `port` again, and a new `unique_id`.
    pub(super) fn finish(
        mut self,
        name: &str,
        program_env: BTreeMap<String, String>,
        ctx: &BuildCtx,
    ) -> AppEnv {
        let env = &mut self.env;
        env.module_conf(
            name,
            ctx.module_conf.get(name).and_then(Value::as_object),
            ctx.from_file,
        );
        for block in &self.over_settings {
            env.layer(block);
        }
        env.extend(program_env);
        if let Some(port) = &self.port {
            env.set("PORT", port);
        }
        // PM2's `God.prepare`: a new id for every start, over any inherited one.
        env.set("unique_id", &Value::String(new_unique_id()));
        self.env
    }
}

/// The two halves of [`pmr_core::spec::AppSpec`]'s environment, built together.
#[derive(Debug, Default)]
pub(super) struct AppEnv {
    /// What the child gets.
    pub(super) env: BTreeMap<String, String>,
    /// The JSON values of the entries that are not strings (see `AppSpec::env_json`).
    pub(super) json: BTreeMap<String, Value>,
}

impl AppEnv {
    fn new(base: BTreeMap<String, String>) -> AppEnv {
        AppEnv {
            env: base,
            json: BTreeMap::new(),
        }
    }

    /// One variable over the current one. An object is shown by `jlist` only: the child does
    /// not get it (PM2's `Common.extend` skips `[object Object]`).
    fn set(&mut self, k: &str, v: &Value) {
        match pmr_core::spec::env_string(v) {
            Some(s) => {
                self.env.insert(k.to_string(), s);
            }
            None => {
                self.env.remove(k);
            }
        }
        if v.is_string() {
            self.json.remove(k);
        } else {
            self.json.insert(k.to_string(), v.clone());
        }
    }

    /// A block of variables (`env`, `env_<name>`, ...) over the current ones.
    fn layer(&mut self, block: &Map<String, Value>) {
        for (k, v) in block {
            self.set(k, v);
        }
    }

    /// Plain string variables (e.g. the `PATH` a package manager script needs).
    fn extend(&mut self, vars: BTreeMap<String, String>) {
        for (k, v) in vars {
            self.json.remove(&k);
            self.env.insert(k, v);
        }
    }

    /// PM2's module settings for app `name` (`pmr set <name>:<key> <value>`, PM2's
    /// `getAdditionalConf`): each setting as a variable, and the section as JSON under the
    /// app's name. Without settings, the name holds `{}`: a string for an app from a config
    /// file (PM2 stringifies `env`'s objects), an object, which the child does not get, for an
    /// app started from the command line.
    fn module_conf(&mut self, name: &str, section: Option<&Map<String, Value>>, file: bool) {
        match section {
            Some(sec) => {
                self.layer(sec);
                self.set(name, &Value::String(Value::Object(sec.clone()).to_string()));
            }
            None if file => self.set(name, &Value::String("{}".into())),
            None => self.set(name, &Value::Object(Map::new())),
        }
    }
}

/// A new random id for `unique_id` (a UUID v4, as PM2's `Utility.generateUUID`).
fn new_unique_id() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/random/uuid") {
        let s = s.trim();
        if s.len() == 36 {
            return s.to_string();
        }
    }
    // No procfs: mix the clock, the pid and a stack address (unique enough for an id that
    // only tells apart starts of one app).
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    let mut hex = format!("{a:016x}{b:016x}").into_bytes();
    // Version 4, variant 1.
    hex[12] = b'4';
    hex[16] = b"89ab"[(b & 3) as usize];
    let hex = String::from_utf8(hex).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn layers_keep_json_types_and_the_child_gets_strings() {
        let mut e = AppEnv::new(BTreeMap::from([("PORT".into(), "1".into())]));
        e.layer(&obj(
            json!({"PORT": 3000, "FLAG": true, "N": null, "S": "x"}),
        ));
        assert_eq!(e.env["PORT"], "3000");
        assert_eq!(e.env["FLAG"], "true");
        assert_eq!(e.env["N"], "null");
        assert_eq!(e.json["PORT"], 3000);
        assert_eq!(e.json["N"], Value::Null);
        assert!(!e.json.contains_key("S"));
        // A later string drops the type; a later object leaves the child's env.
        e.layer(&obj(json!({"PORT": "4000", "FLAG": {"a": 1}})));
        assert_eq!(e.env["PORT"], "4000");
        assert!(!e.json.contains_key("PORT"));
        assert!(!e.env.contains_key("FLAG"));
        assert_eq!(e.json["FLAG"], json!({"a": 1}));
        e.extend(BTreeMap::from([("N".into(), "y".into())]));
        assert_eq!(e.env["N"], "y");
        assert!(!e.json.contains_key("N"));
    }

    #[test]
    fn module_settings_as_pm2_adds_them() {
        let mut e = AppEnv::default();
        e.module_conf("api", Some(&obj(json!({"k": "5"}))), false);
        assert_eq!(e.env["k"], "5");
        assert_eq!(e.env["api"], r#"{"k":"5"}"#);
        let mut e = AppEnv::default();
        e.module_conf("api", None, true);
        assert_eq!(e.env["api"], "{}");
        assert!(e.json.is_empty());
        let mut e = AppEnv::default();
        e.module_conf("api", None, false);
        assert!(!e.env.contains_key("api"));
        assert_eq!(e.json["api"], json!({}));
    }

    #[test]
    fn unique_ids_look_like_uuids_and_differ() {
        let a = new_unique_id();
        let b = new_unique_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let parts: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
                "{id}"
            );
        }
    }
}
