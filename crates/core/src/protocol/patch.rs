//! [`SpecPatch`]: options given with `restart`, `reload` or `start` of an existing app, as the
//! typed [`AppSpec`] fields they replace.

use crate::spec::{AppSpec, Watch};
use serde::{Deserialize, Deserializer, Serialize};

/// Options given with `restart`, `reload` or `start` of an existing app (PM2's
/// `_handleAttributeUpdate`): typed [`AppSpec`] fields, already checked by the CLI, that replace
/// the stored ones. The daemon applies a patch to every selected instance or to none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecPatch {
    /// The new values (each as `AppSpec` serializes it: the wire format is that of the
    /// `AppSpec` field name → value map this replaced). Boxed: hundreds of bytes that would
    /// otherwise widen every `Request` and the daemon's futures holding one, on worker stacks
    /// of 256 KiB (a debug build overflowed them).
    #[serde(default)]
    pub fields: Box<SpecFields>,
    /// `--watch` without paths: watching on if it was off, off if it was on (as PM2).
    #[serde(default)]
    pub toggle_watch: bool,
    /// Fields given `null` (also in `fields`, at their defaults): their keys leave `jlist`
    /// ([`AppSpec::removed`]) until a patch gives them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl SpecPatch {
    pub fn is_empty(&self) -> bool {
        !self.fields.any() && !self.toggle_watch
    }

    /// `spec` with the patch applied, or why it cannot be (nothing is applied then).
    pub fn apply(&self, spec: &AppSpec) -> Result<AppSpec, String> {
        let mut out = spec.clone();
        self.fields.write(&mut out);
        out.removed
            .retain(|f| !self.fields.sets(f) || self.removed.contains(f));
        for f in &self.removed {
            if !out.removed.contains(f) {
                out.removed.push(f.clone());
            }
        }
        if self.toggle_watch {
            out.watch = match out.watch {
                Watch::Off => Watch::Cwd,
                _ => Watch::Off,
            };
        }
        if out.name.trim().is_empty() {
            return Err("an app needs a name".into());
        }
        Ok(out)
    }
}

/// Declares [`SpecFields`] and what is done with its fields by name from one list, so that a
/// field is spelled once; `kept` names the `AppSpec` fields a patch never replaces, and the
/// compiler checks that the two lists together are every field of `AppSpec`.
macro_rules! spec_fields {
    (patched { $($field:ident: $ty:ty,)* } kept { $($kept:ident,)* }) => {
        /// The [`AppSpec`] fields a [`SpecPatch`] replaces: `None` leaves a field as it is. An
        /// optional field's `Some(None)` clears it (`null` on the wire).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct SpecFields {
            $(
                #[serde(
                    default,
                    skip_serializing_if = "Option::is_none",
                    deserialize_with = "given"
                )]
                pub $field: Option<$ty>,
            )*
        }

        impl SpecFields {
            /// Whether any field is given.
            pub fn any(&self) -> bool {
                false $(|| self.$field.is_some())*
            }

            /// Whether the `AppSpec` field named `field` is given.
            pub fn sets(&self, field: &str) -> bool {
                match field {
                    $(stringify!($field) => self.$field.is_some(),)*
                    _ => false,
                }
            }

            /// Give the `AppSpec` field named `field` the value it has in `spec`; `false` when
            /// a patch cannot replace a field of that name.
            pub fn set_from(&mut self, field: &str, spec: &AppSpec) -> bool {
                match field {
                    $(stringify!($field) => self.$field = Some(spec.$field.clone()),)*
                    _ => return false,
                }
                true
            }

            /// Replace the fields given in `spec`.
            fn write(&self, spec: &mut AppSpec) {
                $(
                    if let Some(v) = &self.$field {
                        spec.$field = v.clone();
                    }
                )*
            }
        }

        // A field added to `AppSpec` must be listed above, patchable or kept.
        const _: fn(&AppSpec) = |spec| {
            let AppSpec { $($field: _,)* $($kept: _,)* } = spec;
        };
    };
}

spec_fields! {
    patched {
        name: String,
        namespace: String,
        script: String,
        args: Vec<String>,
        interpreter: Option<String>,
        interpreter_args: Vec<String>,
        cwd: String,
        env: crate::env_map::Env,
        env_json: std::collections::BTreeMap<String, serde_json::Value>,
        autorestart: bool,
        autostart: bool,
        restart_delay: u64,
        exp_backoff_restart_delay: Option<u64>,
        max_restarts: u32,
        min_uptime: u64,
        stop_exit_codes: Vec<i32>,
        kill_timeout: u64,
        listen_timeout: u64,
        wait_ready: bool,
        shutdown_with_message: bool,
        treekill: bool,
        instance_var: String,
        increment_var: Option<String>,
        log_date_format: Option<String>,
        disable_logs: bool,
        log_type: Option<String>,
        listen: Vec<crate::spec::ListenAddr>,
        drain_keepalive: bool,
        instance_balancing: Option<String>,
        catch_unhandled_rejections: bool,
        log_rotate: Option<crate::spec::LogRotate>,
        watch: Watch,
        ignore_watch: Option<Vec<String>>,
        watch_delay: Option<u64>,
        watch_options: Option<serde_json::Map<String, serde_json::Value>>,
        cron_restart: Option<String>,
        max_memory_restart: Option<u64>,
    }
    // Chosen when an app is first started (its instances change with `scale`; the CLI says so),
    // or not options at all (`extra`, `removed`).
    kept {
        exec_mode, instances, out_file, error_file, log_file, pid_file, merge_logs, extra, removed,
        pmx_module,
    }
}

/// A field present on the wire is given, even as `null` (which clears an optional field):
/// without this, serde reads `null` into an `Option<Option<T>>` as `None`, "not given".
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_patch_applies_typed_fields() {
        let spec = crate::spec::test_spec("web");
        let p = SpecPatch {
            fields: Box::new(SpecFields {
                name: Some("api".into()),
                kill_timeout: Some(3000),
                max_memory_restart: Some(None),
                ..SpecFields::default()
            }),
            toggle_watch: true,
            ..SpecPatch::default()
        };
        let new = p.apply(&spec).unwrap();
        assert_eq!(
            (new.name.as_str(), new.kill_timeout, new.max_memory_restart),
            ("api", 3000, None)
        );
        assert_eq!(new.watch, Watch::Cwd);
        assert_eq!(p.apply(&new).unwrap().watch, Watch::Off);
        let nameless = SpecPatch {
            fields: Box::new(SpecFields {
                name: Some(" ".into()),
                ..SpecFields::default()
            }),
            ..SpecPatch::default()
        };
        assert_eq!(nameless.apply(&spec).unwrap_err(), "an app needs a name");
    }

    #[test]
    fn on_the_wire_as_app_spec_fields_null_clearing() {
        let p = SpecPatch {
            fields: Box::new(SpecFields {
                kill_timeout: Some(3000),
                max_memory_restart: Some(None),
                cron_restart: Some(Some("0 * * * *".into())),
                ..SpecFields::default()
            }),
            ..SpecPatch::default()
        };
        let wire = json!({
            "fields": {"kill_timeout": 3000, "cron_restart": "0 * * * *", "max_memory_restart": null},
            "toggle_watch": false,
        });
        assert_eq!(serde_json::to_value(&p).unwrap(), wire);
        assert_eq!(serde_json::from_value::<SpecPatch>(wire).unwrap(), p);
        // A misspelled field or a value of the wrong type is not a patch.
        let bad = |fields| serde_json::from_value::<SpecPatch>(json!({ "fields": fields }));
        assert!(bad(json!({"kill_timeout": "soon"})).is_err());
        let e = bad(json!({"kil_timeout": 1})).unwrap_err().to_string();
        assert!(e.contains("kil_timeout"), "{e}");
        // Fields kept as first started are not in a patch.
        assert!(bad(json!({"instances": 2})).is_err());
    }

    #[test]
    fn fields_by_name() {
        let mut spec = crate::spec::test_spec("web");
        spec.kill_timeout = 5000;
        let mut f = SpecFields::default();
        assert!(!f.any());
        assert!(f.set_from("kill_timeout", &spec));
        assert!(!f.set_from("kil_timeout", &spec));
        assert!(!f.set_from("instances", &spec));
        assert!(f.any() && f.sets("kill_timeout") && !f.sets("name"));
        assert_eq!(f.kill_timeout, Some(5000));
    }

    #[test]
    fn a_removed_field_stays_removed_until_given_again() {
        let mut spec = crate::spec::test_spec("web");
        spec.interpreter_args = vec!["--trace-gc".into()];
        let args = |a: &[&str]| {
            Box::new(SpecFields {
                interpreter_args: Some(a.iter().map(|s| s.to_string()).collect()),
                ..SpecFields::default()
            })
        };
        let clear = SpecPatch {
            fields: args(&[]),
            removed: vec!["interpreter_args".into()],
            ..SpecPatch::default()
        };
        let cleared = clear.apply(&spec).unwrap();
        assert!(cleared.interpreter_args.is_empty());
        assert!(cleared.removed("interpreter_args"));
        // Another option leaves it removed; giving it again brings it back.
        let other = SpecPatch {
            fields: Box::new(SpecFields {
                kill_timeout: Some(3000),
                ..SpecFields::default()
            }),
            ..SpecPatch::default()
        };
        assert!(other.apply(&cleared).unwrap().removed("interpreter_args"));
        let again = SpecPatch {
            fields: args(&["--x"]),
            ..SpecPatch::default()
        };
        let back = again.apply(&cleared).unwrap();
        assert!(!back.removed("interpreter_args"));
        assert_eq!(back.interpreter_args, ["--x"]);
        // Cleared twice: listed once.
        assert_eq!(clear.apply(&cleared).unwrap().removed, ["interpreter_args"]);
    }
}
