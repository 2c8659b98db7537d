use super::*;
use pmr_core::spec::{LogRotate, Watch};
use serde_json::json;
use std::path::{Path, PathBuf};

fn ctx(dir: &Path) -> BuildCtx {
    BuildCtx {
        base_dir: dir.to_path_buf(),
        env: [
            ("PATH".to_string(), std::env::var("PATH").unwrap()),
            ("SECRET_TOKEN".into(), "x".into()),
        ]
        .into_iter()
        .collect(),
        env_name: Some("production".into()),
        cpus: 4,
        module_conf: Map::new(),
        from_file: false,
        deploy: None,
    }
}

fn fixture_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pmr-app-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("app.js"), "").unwrap();
    std::fs::write(d.join("w.py"), "").unwrap();
    d
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn defaults_interpreters_and_env() {
    let d = fixture_dir();
    let s = build_spec(&obj(json!({"script": "app.js"})), &ctx(&d)).unwrap();
    assert_eq!(s.name, "app");
    assert_eq!(s.interpreter.as_deref(), Some("node"));
    assert_eq!(s.exec_mode, ExecMode::Fork);
    assert!(s.merge_logs);
    assert_eq!(
        (
            s.kill_timeout,
            s.listen_timeout,
            s.min_uptime,
            s.max_restarts
        ),
        (1600, 3000, 1000, 16)
    );

    let s = build_spec(
        &obj(json!({"script": "w.py", "env": {"A": 1}, "env_production": {"A": "prod"}, "filter_env": ["SECRET"], "instances": -1})),
        &ctx(&d),
    )
    .unwrap();
    assert!(s.interpreter.as_deref().unwrap().contains("python"));
    assert_eq!(s.env["A"], "prod");
    assert!(!s.env.contains_key("SECRET_TOKEN"));
    assert_eq!(
        (s.instances, s.exec_mode, s.merge_logs),
        (3, ExecMode::Fork, false)
    );

    let s = build_spec(&obj(json!({"script": "app.js", "instances": 0})), &ctx(&d)).unwrap();
    assert_eq!((s.instances, s.exec_mode), (4, ExecMode::Cluster));
}

#[test]
fn env_layers_types_module_settings_and_unique_id() {
    let d = fixture_dir();
    let mut c = ctx(&d);
    c.from_file = true;
    c.deploy = Some(json!({
        "production": {"env": {"D": "deploy", "E": "deploy", "B": "deploy"}},
        "staging": {"env": {"S": 1}}
    }));
    c.module_conf = obj(json!({"api": {"M": "5", "E": "module"}, "other": {"X": "1"}}));
    let app = obj(json!({
        "script": "app.js", "name": "api", "port": 4000,
        "env": {"E": "env", "B": "env", "N": 3000, "F": true, "ONLY": "env"},
        "env_production": {"E": "production", "P": 1, "O": {"a": 1}}
    }));
    let s = build_spec(&app, &c).unwrap();
    // env < module settings < deploy.<name>.env < env_<name>, as PM2 7.0.4.
    assert_eq!(s.env["E"], "production");
    assert_eq!(s.env["B"], "deploy");
    assert_eq!(s.env["D"], "deploy");
    assert_eq!(s.env["ONLY"], "env");
    assert_eq!(s.env["M"], "5");
    assert!(!s.env.contains_key("S") && !s.env.contains_key("X"));
    assert_eq!(s.env["api"], r#"{"M":"5","E":"module"}"#);
    // The child gets strings; jlist's types are kept beside them.
    assert_eq!((s.env["N"].as_str(), s.env["F"].as_str()), ("3000", "true"));
    assert_eq!((s.env["P"].as_str(), s.env["PORT"].as_str()), ("1", "4000"));
    assert!(!s.env.contains_key("O"), "objects are not the child's");
    let typed = s.env_typed();
    assert_eq!(typed["N"], 3000);
    assert_eq!(typed["F"], true);
    assert_eq!(typed["P"], 1);
    assert_eq!(typed["PORT"], 4000);
    assert_eq!(typed["O"], json!({"a": 1}));
    assert_eq!(typed["E"], "production");
    let id = &s.env["unique_id"];
    assert_eq!(id.len(), 36, "{id}");
    assert_ne!(build_spec(&app, &c).unwrap().env["unique_id"], *id);

    // Without --env, no deploy block; without settings, `{}` under the name.
    c.env_name = None;
    let s = build_spec(&app, &c).unwrap();
    assert_eq!(
        (s.env["E"].as_str(), s.env["B"].as_str()),
        ("module", "env")
    );
    assert!(!s.env.contains_key("D"));
    c.module_conf = Map::new();
    let s = build_spec(&app, &c).unwrap();
    assert_eq!(s.env["api"], "{}");
    // From the command line the `{}` is an object, which only jlist shows.
    c.from_file = false;
    let s = build_spec(&app, &c).unwrap();
    assert!(!s.env.contains_key("api"));
    assert_eq!(s.env_typed()["api"], json!({}));

    // A bad deploy env is an error naming it.
    c.env_name = Some("production".into());
    c.deploy = Some(json!({"production": {"env": "X=1"}}));
    let e = build_spec(&app, &c).unwrap_err();
    assert!(e.contains("\"deploy.production.env\""), "{e}");
}

#[test]
fn strings_with_spaces_run_through_bash_and_missing_things_are_errors() {
    let d = fixture_dir();
    let s = build_spec(
        &obj(json!({"script": "python3 -m http.server 8000"})),
        &ctx(&d),
    )
    .unwrap();
    assert_eq!(s.name, "python3 -m http.server 8000");
    assert_eq!(s.interpreter_args, ["-c"]);
    let e = build_spec(&obj(json!({"script": "nope.js"})), &ctx(&d)).unwrap_err();
    assert!(e.starts_with("Script not found: "), "{e}");
    let e = build_spec(
        &obj(json!({"script": "app.js", "interpreter": "nosuchinterp"})),
        &ctx(&d),
    )
    .unwrap_err();
    assert_eq!(e, "Interpreter nosuchinterp is not available in PATH");
    let s = build_spec(&obj(json!({"script": "sh"})), &ctx(&d)).unwrap();
    assert_eq!(s.interpreter, None, "a binary on PATH runs directly");
}

#[test]
fn a_watch_path_must_exist() {
    let d = fixture_dir();
    let e = build_spec(
        &obj(json!({"script": "app.js", "watch": ["app.js", "nope"]})),
        &ctx(&d),
    )
    .unwrap_err();
    assert_eq!(
        e,
        format!("watch path {} does not exist", d.join("nope").display())
    );
}

#[test]
fn options_the_daemon_reads_are_typed_fields_not_extra() {
    let d = fixture_dir();
    for sub in ["src", "lib"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let s = build_spec(
        &obj(json!({
            "script": "app.js",
            "listen": ["127.0.0.1:8000", "/tmp/a.sock"],
            "drain_keepalive": false,
            "log_rotate": {"max_size": 1024, "retain": 3, "cron": "0 0 * * *"},
            "watch": ["src", "lib"],
            "ignore_watch": ["node_modules"],
            "watch_delay": 500,
            "watch_options": {"usePolling": true},
            "cron_restart": "0 3 * * *",
            "max_memory_restart": 209715200,
            "time": true,
        })),
        &ctx(&d),
    )
    .unwrap();
    let listen: Vec<String> = s.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["127.0.0.1:8000", "/tmp/a.sock"]);
    assert!(!s.drain_keepalive);
    assert_eq!(
        s.log_rotate,
        Some(LogRotate {
            max_size: Some(1024),
            retain: Some(3),
            compress: None,
            interval: None,
            cron: Some("0 0 * * *".into()),
        })
    );
    assert_eq!(s.watch, Watch::Paths(vec!["src".into(), "lib".into()]));
    assert_eq!(s.ignore_watch, Some(vec!["node_modules".to_string()]));
    assert_eq!(s.watch_delay, Some(500));
    assert_eq!(
        s.watch_options.map(Value::Object),
        Some(json!({"usePolling": true}))
    );
    assert_eq!(s.cron_restart.as_deref(), Some("0 3 * * *"));
    assert_eq!(s.max_memory_restart, Some(209715200));
    let extra: Vec<&str> = s.extra.keys().map(String::as_str).collect();
    assert_eq!(extra, ["time"], "typed options must not stay in extra");

    let s = build_spec(&obj(json!({"script": "app.js", "watch": true})), &ctx(&d)).unwrap();
    assert_eq!(
        (s.watch, s.drain_keepalive, s.log_rotate),
        (Watch::Cwd, true, None)
    );
    let e = build_spec(
        &obj(json!({"script": "app.js", "listen": ["localhost"]})),
        &ctx(&d),
    )
    .unwrap_err();
    assert!(
        e.starts_with("\"listen\": listen address \"localhost\""),
        "{e}"
    );
}

/// A project with a `next`-like bin: shebang, no extension, executable, linked from .bin.
fn bin_project(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("pmr-app-bin-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let w = |rel: &str, text: &str| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    w("node_modules/next/dist/bin/next", "#!/usr/bin/env node\n");
    w(
        "node_modules/next/package.json",
        r#"{"name":"next","bin":{"next":"dist/bin/next"}}"#,
    );
    w("node_modules/sh/run", "#!/bin/sh\n");
    w("node_modules/.bin/pnpmshim", "#!/bin/sh\nexec node x\n");
    w(
        "node_modules/pnpmshim/package.json",
        r#"{"name":"pnpmshim","bin":"cli.js"}"#,
    );
    w("node_modules/pnpmshim/cli.js", "");
    w("flagged", "#!/usr/bin/env -S node --enable-source-maps\n");
    w("ghost", "#!/usr/bin/env no-such-interpreter-here\n");
    w("ghost2", "#!/opt/nowhere/bin/ruby\n");
    w("tool.sh.bin", "#!/bin/sh\necho\n");
    w(
        "package.json",
        r#"{"scripts":{"start":"next start -p ${PORT:-3100}","sh":"shtool"}}"#,
    );
    std::os::unix::fs::symlink("../next/dist/bin/next", d.join("node_modules/.bin/next")).unwrap();
    std::os::unix::fs::symlink("../sh/run", d.join("node_modules/.bin/shtool")).unwrap();
    d
}

#[test]
fn node_is_recognised_by_content() {
    let d = bin_project("content");
    let c = ctx(&d);
    let next = "node_modules/next/dist/bin/next";
    // Fork mode: node runs it, so IPC works.
    let s = build_spec(&obj(json!({ "script": next, "args": "start" })), &c).unwrap();
    assert_eq!(
        (s.interpreter.as_deref(), s.exec_mode),
        (Some("node"), ExecMode::Fork)
    );
    assert!(s.is_node());
    // Cluster mode, both PM2-guide forms.
    for script in [next, "node_modules/.bin/next"] {
        let s = build_spec(
            &obj(json!({ "script": script, "args": "start", "instances": 2, "exec_mode": "cluster" })),
            &c,
        )
        .unwrap();
        assert_eq!(
            (s.exec_mode, s.instances),
            (ExecMode::Cluster, 2),
            "{script}"
        );
        assert_eq!(s.args, ["start"]);
    }
    // `instances` alone picks cluster for node, as for a .js file.
    let s = build_spec(&obj(json!({ "script": next, "instances": 0 })), &c).unwrap();
    assert_eq!(s.exec_mode, ExecMode::Cluster);
    // `env -S node --flags`: the flags are node args, before the user's.
    let s = build_spec(
        &obj(json!({ "script": "flagged", "interpreter_args": ["--x"] })),
        &c,
    )
    .unwrap();
    assert_eq!(s.interpreter_args, ["--enable-source-maps", "--x"]);
    // A pnpm shell shim in .bin runs the package's JS file.
    let s = build_spec(&obj(json!({ "script": "node_modules/.bin/pnpmshim" })), &c).unwrap();
    assert!(s.script.ends_with("pnpmshim/cli.js"), "{}", s.script);
    assert_eq!(s.interpreter.as_deref(), Some("node"));
    // Other executables still run directly, and fall back to fork in cluster mode.
    let s = build_spec(
        &obj(json!({ "script": "tool.sh.bin", "instances": 2, "exec_mode": "cluster" })),
        &c,
    )
    .unwrap();
    assert_eq!((s.interpreter, s.exec_mode), (None, ExecMode::Fork));
}

#[test]
fn bad_bins_and_shebangs_are_errors() {
    let d = bin_project("errors");
    let c = ctx(&d);
    let e = build_spec(&obj(json!({ "script": "ghost" })), &c).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}: its first line `#!/usr/bin/env no-such-interpreter-here` names the interpreter `no-such-interpreter-here`, which is not installed",
            d.join("ghost").display()
        )
    );
    let mut no_node = c.clone();
    no_node.env.insert("PATH".into(), "/nonexistent".into());
    let e = build_spec(
        &obj(json!({ "script": "node_modules/.bin/next" })),
        &no_node,
    )
    .unwrap_err();
    assert!(
        e.ends_with("node_modules/.bin/next: its first line `#!/usr/bin/env node` names the interpreter `node`, which is not installed"),
        "{e}"
    );
    let e = build_spec(&obj(json!({ "script": "ghost2" })), &c).unwrap_err();
    assert!(
        e.contains("`/opt/nowhere/bin/ruby`, which is not installed"),
        "{e}"
    );
    let e = build_spec(
        &obj(
            json!({ "script": "node_modules/.bin/shtool", "exec_mode": "cluster", "instances": 2 }),
        ),
        &c,
    )
    .unwrap_err();
    assert!(
        e.contains("cannot run ")
            && e.contains("sh/run is not a Node.js program (its first line is `#!/bin/sh`"),
        "{e}"
    );
    let e = build_spec(&obj(json!({ "script": "npm run sh", "instances": 2 })), &c).unwrap_err();
    assert!(
        e.contains("cannot run `npm run sh` in cluster mode:") && e.contains("#!/bin/sh"),
        "{e}"
    );
}

#[test]
fn package_scripts_expand_the_apps_env() {
    let d = bin_project("expand");
    let c = ctx(&d);
    let cluster = |extra: Value| {
        let mut o = obj(json!({ "script": "yarn start", "instances": 2 }));
        o.extend(obj(extra));
        build_spec(&o, &c).unwrap()
    };
    let s = cluster(json!({}));
    assert_eq!(
        (s.exec_mode, s.args.clone()),
        (
            ExecMode::Cluster,
            vec!["start".to_string(), "-p".into(), "3100".into()]
        )
    );
    assert!(s.script.ends_with("next/dist/bin/next"));
    let s = cluster(json!({ "env": { "PORT": 4000 } }));
    assert_eq!(s.args[2], "4000");
    let s = cluster(json!({ "env_production": { "PORT": 4001 } }));
    assert_eq!(s.args[2], "4001", "--env blocks count");
    let s = cluster(json!({ "port": 4002 }));
    assert_eq!(s.args[2], "4002");
    let mut c2 = c.clone();
    c2.env.insert("PORT".into(), "4003".into());
    let s = build_spec(
        &obj(json!({ "script": "npm", "args": ["start"], "instances": 2 })),
        &c2,
    )
    .unwrap();
    assert_eq!(s.args[2], "4003", "the shell's env counts");
}

#[test]
fn the_stages_defaults_are_the_ones_the_option_table_words() {
    let d = fixture_dir();
    let spec = build_spec(&obj(json!({"script": "app.js"})), &ctx(&d)).unwrap();
    let mut built = serde_json::to_value(&spec).unwrap();
    built["watch"] = spec.watch.to_json();
    let mut compared = Vec::new();
    for name in crate::options::option_names() {
        // A plain default: a number, a bool, or one word in backticks.
        let text = crate::options::default_of(name).unwrap();
        let word = text.strip_prefix('`').and_then(|t| t.strip_suffix('`'));
        let default = match (serde_json::from_str::<Value>(text), word) {
            (Ok(v @ (Value::Number(_) | Value::Bool(_))), _) => v,
            (_, Some(w)) if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Value::String(w.into())
            }
            _ => continue,
        };
        // `null`: decided later (by the daemon, or the log writer).
        if let Some(v) = built.get(name).filter(|v| !v.is_null()) {
            assert_eq!(*v, default, "{name}");
            compared.push(name);
        }
    }
    assert_eq!(
        compared,
        [
            "namespace",
            "instances",
            "watch",
            "autorestart",
            "autostart",
            "restart_delay",
            "max_restarts",
            "min_uptime",
            "kill_timeout",
            "listen_timeout",
            "wait_ready",
            "shutdown_with_message",
            "treekill",
            "drain_keepalive",
            "catch_unhandled_rejections",
            "disable_logs",
            "instance_var",
        ]
    );
}
