use super::*;
use serde_json::json;
use serde_json::Map;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Normalize `{script: "app.js", name: "api", ..extra}` and return the output.
fn norm(extra: Value) -> Map<String, Value> {
    let mut raw = obj(json!({"script": "app.js", "name": "api"}));
    raw.extend(obj(extra));
    normalize_app(&raw).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// Normalize and return the single value for `key`.
fn one(extra: Value, key: &str) -> Option<Value> {
    norm(extra).get(key).cloned()
}

/// Normalize `{script, name: "api", ..extra}` expecting an error; return its Display.
fn fail(extra: Value) -> String {
    let mut raw = obj(json!({"script": "app.js", "name": "api"}));
    raw.extend(obj(extra));
    match normalize_app(&raw) {
        Ok(m) => panic!("expected an error, got {}", Value::Object(m)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_app_passes_through() {
    let out = normalize_app(&obj(json!({"script": "app.js"}))).unwrap();
    assert_eq!(Value::Object(out), json!({"script": "app.js"}));
}

#[test]
fn missing_script() {
    let e = normalize_app(&obj(json!({"name": "api"}))).unwrap_err();
    assert_eq!(e.to_string(), r#"app "api": missing "script""#);
    assert_eq!(e.key, "script");
    let e = normalize_app(&obj(json!({"name": "api", "script": null}))).unwrap_err();
    assert_eq!(e.to_string(), r#"app "api": missing "script""#);
}

#[test]
fn error_app_reference_name_index_unknown() {
    let e = normalize_app(&obj(json!({"script": 3}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"app: "script" must be a non-empty string; got 3"#
    );
    assert_eq!(
        e.clone().with_index(2).to_string(),
        r#"app at index 2: "script" must be a non-empty string; got 3"#
    );
    let e = normalize_app(&obj(json!({"name": "web", "script": ""}))).unwrap_err();
    assert_eq!(
        e.with_index(2).to_string(),
        r#"app "web": "script" must be a non-empty string; got """#
    );
    // A non-string name is not used to identify the app (and is itself an error).
    let e = normalize_app(&obj(json!({"name": 5, "script": "a.js"}))).unwrap_err();
    assert_eq!(e.to_string(), r#"app: "name" must be a string; got 5"#);
}

#[test]
fn script_aliases() {
    for alias in ["exec", "cmd", "command", "script"] {
        let out = normalize_app(&obj(json!({ alias: "server.js" }))).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"script": "server.js"}),
            "{alias}"
        );
    }
}

#[test]
fn every_explicit_alias_maps_to_its_canonical_key() {
    let cases: &[(&str, &str, Value)] = &[
        ("exec_interpreter", "interpreter", json!("python3")),
        ("execInterpreter", "interpreter", json!("python3")),
        ("node_args", "interpreter_args", json!(["--a"])),
        ("nodeArgs", "interpreter_args", json!(["--a"])),
        ("interpreterArgs", "interpreter_args", json!(["--a"])),
        ("combine_logs", "merge_logs", json!(true)),
        ("combineLogs", "merge_logs", json!(true)),
        ("out", "out_file", json!("/tmp/o")),
        ("output", "out_file", json!("/tmp/o")),
        ("out_log", "out_file", json!("/tmp/o")),
        ("outFile", "out_file", json!("/tmp/o")),
        ("error", "error_file", json!("/tmp/e")),
        ("err", "error_file", json!("/tmp/e")),
        ("err_file", "error_file", json!("/tmp/e")),
        ("err_log", "error_file", json!("/tmp/e")),
        ("errorFile", "error_file", json!("/tmp/e")),
        ("log", "log_file", json!("/tmp/l")),
        ("logFile", "log_file", json!("/tmp/l")),
        ("pid", "pid_file", json!("/tmp/p")),
        ("pidFile", "pid_file", json!("/tmp/p")),
        ("cron", "cron_restart", json!("0 * * * *")),
        ("cronRestart", "cron_restart", json!("0 * * * *")),
        ("user", "uid", json!("www")),
    ];
    for (alias, canonical, v) in cases {
        let out = norm(json!({ *alias: v.clone() }));
        assert_eq!(out.get(*canonical), Some(v), "{alias} -> {canonical}");
        assert!(
            !out.contains_key(*alias) || alias == canonical,
            "{alias} kept"
        );
    }
}

#[test]
fn camel_case_forms_of_every_option() {
    assert_eq!(camel("max_memory_restart"), "maxMemoryRestart");
    assert_eq!(camel("exp_backoff_restart_delay"), "expBackoffRestartDelay");
    assert_eq!(camel("windowsHide"), "windowsHide");
    // One-letter segments are not capitalized (PM2's rule).
    assert_eq!(camel("a_b_cd"), "abCd");
    let out = norm(json!({
        "maxMemoryRestart": "1G",
        "killTimeout": 5000,
        "minUptime": "2s",
        "waitReady": true,
        "listenTimeout": 8000,
        "logDateFormat": "YYYY",
        "instanceVar": "INSTANCE_ID",
        "ignoreWatch": "node_modules logs",
        "execMode": "cluster",
        "stopExitCodes": 0,
        "appendEnvToName": true,
        "expBackoffRestartDelay": 100,
        "shutdownWithMessage": true,
    }));
    assert_eq!(
        Value::Object(out),
        json!({
            "script": "app.js", "name": "api",
            "max_memory_restart": 1073741824u64,
            "kill_timeout": 5000,
            "min_uptime": 2000,
            "wait_ready": true,
            "listen_timeout": 8000,
            "log_date_format": "YYYY",
            "instance_var": "INSTANCE_ID",
            "ignore_watch": ["node_modules", "logs"],
            "exec_mode": "cluster",
            "stop_exit_codes": [0],
            "append_env_to_name": true,
            "exp_backoff_restart_delay": 100,
            "shutdown_with_message": true,
        })
    );
    // Every canonical snake_case name is accepted in camelCase.
    for name in option_names() {
        let c = camel(name);
        assert_eq!(
            lookup().by_key.get(&c).map(|&i| OPTIONS[i].name),
            Some(name)
        );
    }
}

#[test]
fn alias_and_canonical_conflict() {
    assert_eq!(
        fail(json!({"out_file": "/a", "out": "/b"})),
        r#"app "api": "out_file" and "out" both set "out_file" but differ: "/a" vs "/b""#
    );
    assert_eq!(
        fail(json!({"kill_timeout": 100, "killTimeout": 200})),
        r#"app "api": "kill_timeout" and "killTimeout" both set "kill_timeout" but differ: 100 vs 200"#
    );
    let e = normalize_app(&obj(json!({"script": "a.js", "cmd": "b.js"}))).unwrap_err();
    assert_eq!(e.key, "cmd");
    // Same value (after normalization) is fine.
    assert_eq!(
        one(json!({"out": "/a", "out_file": "/a"}), "out_file"),
        Some(json!("/a"))
    );
    assert_eq!(
        one(
            json!({"max_memory_restart": "1K", "maxMemoryRestart": 1024}),
            "max_memory_restart"
        ),
        Some(json!(1024))
    );
    // null counts as absent.
    assert_eq!(
        one(json!({"out": null, "out_file": "/a"}), "out_file"),
        Some(json!("/a"))
    );
}

#[test]
fn unknown_keys_with_suggestions() {
    assert_eq!(
        fail(json!({"max_memory_restrat": "1G"})),
        r#"app "api": unknown option "max_memory_restrat" (did you mean "max_memory_restart"?)"#
    );
    assert_eq!(
        fail(json!({"instaces": 2})),
        r#"app "api": unknown option "instaces" (did you mean "instances"?)"#
    );
    assert_eq!(
        fail(json!({"kill_timout": 2})),
        r#"app "api": unknown option "kill_timout" (did you mean "kill_timeout"?)"#
    );
    assert_eq!(
        fail(json!({"foo": 1})),
        r#"app "api": unknown option "foo""#
    );
    assert_eq!(
        fail(json!({"max-memory-restart": "1G"})),
        r#"app "api": unknown option "max-memory-restart" (did you mean "max_memory_restart"?)"#
    );
    assert_eq!(
        fail(json!({"maxMemoryRestrat": "1G"})),
        r#"app "api": unknown option "maxMemoryRestrat" (did you mean "maxMemoryRestart"?)"#
    );
    assert_eq!(
        fail(json!({"exec_interpeter": "node"})),
        r#"app "api": unknown option "exec_interpeter" (did you mean "exec_interpreter"?)"#
    );
    assert_eq!(
        fail(json!({"something_completely_else": 1})),
        r#"app "api": unknown option "something_completely_else""#
    );
    let e = normalize_app(&obj(json!({"script": "a.js", "watch_dely": 1}))).unwrap_err();
    assert_eq!(e.key, "watch_dely");
    assert_eq!(e.app, AppRef::Unknown);
}

#[test]
fn lenient_normalization_leaves_unknown_keys_out_and_names_each() {
    let raw = obj(json!({
        "script": "app.js",
        "name": "api",
        "max": "10",
        "instaces": 2,
        "options": {"x": 1},
        "log_rotate": {"max_sise": "10M", "retain": 3},
        "kill_timeout": 5000,
    }));
    let (out, unknown) = normalize_app_lenient(&raw).unwrap();
    let msgs: Vec<String> = unknown.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            r#"app "api": unknown option "max""#,
            r#"app "api": unknown option "instaces" (did you mean "instances"?)"#,
            r#"app "api": unknown option "options""#,
            r#"app "api": "log_rotate" has an unknown key "max_sise" (did you mean "max_size"?)"#,
        ]
    );
    assert_eq!(unknown[3].key, "log_rotate");
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(keys, ["script", "name", "log_rotate", "kill_timeout"]);
    assert_eq!(out["log_rotate"], json!({"retain": 3}));
    // Other errors stay errors.
    let bad = obj(json!({"script": "app.js", "junk": 1, "kill_timeout": -5}));
    assert!(normalize_app_lenient(&bad)
        .unwrap_err()
        .to_string()
        .contains("kill_timeout"));
    // Strict: the first unknown key is the error.
    assert_eq!(
        normalize_app(&raw).unwrap_err().to_string(),
        r#"app "api": unknown option "max""#
    );
}

#[test]
fn no_spelling_is_ambiguous() {
    // Building the lookup asserts that no spelling maps to two options.
    let lk = lookup();
    assert!(lk.by_key.len() > OPTIONS.len());
    assert_eq!(lk.by_key.len(), lk.spellings.len());
}

#[test]
fn plain_strings() {
    for key in [
        "name",
        "namespace",
        "cwd",
        "interpreter",
        "instance_var",
        "increment_var",
        "log_date_format",
        "out_file",
        "error_file",
        "pid_file",
    ] {
        assert_eq!(one(json!({ key: "x" }), key), Some(json!("x")), "{key}");
        if key != "name" {
            assert_eq!(
                fail(json!({ key: 1 })),
                format!("app \"api\": \"{key}\" must be a string; got 1")
            );
        }
    }
    // Empty means "not set", as in PM2.
    assert_eq!(one(json!({"cwd": ""}), "cwd"), None);
}

#[test]
fn log_type_values() {
    assert_eq!(
        one(json!({"log_type": "json"}), "log_type"),
        Some(json!("json"))
    );
    assert_eq!(
        one(json!({"log_type": "raw"}), "log_type"),
        Some(json!("raw"))
    );
    assert_eq!(
        fail(json!({"log_type": "xml"})),
        r#"app "api": "log_type" must be "json" or "raw"; got "xml""#
    );
}

#[test]
fn exec_mode_values() {
    for (given, want) in [
        ("fork", "fork"),
        ("fork_mode", "fork"),
        ("cluster", "cluster"),
        ("cluster_mode", "cluster"),
    ] {
        assert_eq!(
            one(json!({"exec_mode": given}), "exec_mode"),
            Some(json!(want))
        );
    }
    assert_eq!(
        fail(json!({"exec_mode": "threads"})),
        r#"app "api": "exec_mode" must be "fork" or "cluster"; got "threads""#
    );
}

#[test]
fn string_lists_are_shell_split() {
    assert_eq!(
        one(
            json!({"args": "--port 3000 --msg 'hello world' \"a b\""}),
            "args"
        ),
        Some(json!(["--port", "3000", "--msg", "hello world", "a b"]))
    );
    assert_eq!(
        one(json!({"args": ["--port", 3000, true]}), "args"),
        Some(json!(["--port", "3000", "true"]))
    );
    assert_eq!(
        one(
            json!({"node_args": "--max-old-space-size=4096 --inspect"}),
            "interpreter_args"
        ),
        Some(json!(["--max-old-space-size=4096", "--inspect"]))
    );
    assert_eq!(
        one(json!({"ignore_watch": ["logs", "tmp"]}), "ignore_watch"),
        Some(json!(["logs", "tmp"]))
    );
    assert_eq!(one(json!({"args": ""}), "args"), Some(json!([])));
    assert_eq!(
        fail(json!({"args": "a 'b"})),
        r#"app "api": "args" has an unterminated quote; got "a 'b""#
    );
    assert_eq!(
        fail(json!({"args": ["a", {"b": 1}]})),
        r#"app "api": "args"[1] must be a string; got {"b":1}"#
    );
    assert_eq!(
        fail(json!({"interpreter_args": 5})),
        r#"app "api": "interpreter_args" must be a string or an array of strings; got 5"#
    );
}

#[test]
fn instances() {
    assert_eq!(one(json!({"instances": 4}), "instances"), Some(json!(4)));
    assert_eq!(
        one(json!({"instances": "max"}), "instances"),
        Some(json!(0))
    );
    assert_eq!(one(json!({"instances": -1}), "instances"), Some(json!(-1)));
    assert_eq!(
        one(json!({"instances": "-2"}), "instances"),
        Some(json!(-2))
    );
    assert_eq!(one(json!({"instances": "3"}), "instances"), Some(json!(3)));
    assert_eq!(one(json!({"instances": 0}), "instances"), Some(json!(0)));
    assert_eq!(one(json!({"instances": 2.0}), "instances"), Some(json!(2)));
    assert_eq!(
        fail(json!({"instances": "lots"})),
        r#"app "api": "instances" must be a whole number (0 or "max" = one per CPU, -N = CPUs minus N); got "lots""#
    );
    assert!(fail(json!({"instances": 1.5})).contains("got 1.5"));
    // Above the per-app maximum (1024 unless PMR_MAX_INSTANCES is set for the tests).
    if std::env::var_os("PMR_MAX_INSTANCES").is_none() {
        assert_eq!(
            one(json!({"instances": 1024}), "instances"),
            Some(json!(1024))
        );
        assert_eq!(
            fail(json!({"instances": 5000})),
            r#"app "api": "instances" must be at most 1024, the maximum per app (set PMR_MAX_INSTANCES to change it); got 5000"#
        );
        assert!(fail(json!({"instances": "5000000000"})).contains("at most 1024"));
    }
    assert!(fail(json!({"instances": true})).contains("got true"));
}

#[test]
fn env_values_keep_their_json_types() {
    let out = norm(json!({
        "env": {
            "NODE_ENV": "production",
            "PORT": 3000,
            "RATIO": 0.5,
            "BIG": 1e3,
            "DEBUG": true,
            "OFF": false,
            "NOTHING": null,
            "OBJ": {"a": 1, "b": [1, 2]},
            "LIST": ["x", 2],
        },
        "env_production": {"PORT": 80},
        "env_staging": null,
    }));
    assert_eq!(
        out.get("env"),
        Some(&json!({
            "NODE_ENV": "production",
            "PORT": 3000,
            "RATIO": 0.5,
            "BIG": 1000,
            "DEBUG": true,
            "OFF": false,
            "NOTHING": "null",
            "OBJ": "{\"a\":1,\"b\":[1,2]}",
            "LIST": "[\"x\",2]",
        }))
    );
    // PM2 stringifies the objects of `env` only: an `env_<name>` block keeps them.
    let out = norm(json!({"env_production": {"PORT": 80, "O": {"a": 1}, "N": null}}));
    assert_eq!(
        out.get("env_production"),
        Some(&json!({"PORT": 80, "O": {"a": 1}, "N": null}))
    );
    assert_eq!(out.get("env_production").unwrap()["PORT"].to_string(), "80");
    assert!(!out.contains_key("env_staging"));
}

#[test]
fn env_errors() {
    assert_eq!(
        fail(json!({"env": "NODE_ENV=production"})),
        r#"app "api": "env" must be an object of environment variables ({"NAME": "value"}); got "NODE_ENV=production""#
    );
    assert_eq!(
        fail(json!({"env_file": ".env"})),
        r#"app "api": "env_file" must be an object of environment variables ({"NAME": "value"}); got ".env""#
    );
    assert_eq!(
        fail(json!({"env": {"A=B": "1"}})),
        r#"app "api": "env" has an invalid variable name "A=B" (it must be non-empty, without "=" or NUL)"#
    );
    assert!(fail(json!({"env": {"": "1"}})).contains("invalid variable name \"\""));
    assert!(fail(json!({"env": {"A": "x\u{0}y"}})).contains("NUL"));
    // `env_` alone and camelCase env blocks are not env blocks.
    assert!(fail(json!({"env_": {}})).contains("unknown option \"env_\""));
    assert!(fail(json!({"envProduction": {}})).contains("unknown option \"envProduction\""));
}

#[test]
fn bools_accept_true_false_strings() {
    for key in [
        "autorestart",
        "autostart",
        "wait_ready",
        "shutdown_with_message",
        "treekill",
        "merge_logs",
        "disable_logs",
        "time",
        "append_env_to_name",
        "vizion",
        "pmx",
        "automation",
        "force",
        "windowsHide",
        "source_map_support",
        "disable_source_map_support",
        "execute_command",
        "trace",
        "disable_trace",
    ] {
        assert_eq!(one(json!({ key: true }), key), Some(json!(true)), "{key}");
        assert_eq!(one(json!({ key: false }), key), Some(json!(false)), "{key}");
        assert_eq!(one(json!({ key: "true" }), key), Some(json!(true)), "{key}");
        assert_eq!(
            one(json!({ key: "false" }), key),
            Some(json!(false)),
            "{key}"
        );
        assert_eq!(
            fail(json!({ key: "yes" })),
            format!("app \"api\": \"{key}\" must be true or false; got \"yes\"")
        );
        assert_eq!(
            fail(json!({ key: 1 })),
            format!("app \"api\": \"{key}\" must be true or false; got 1")
        );
    }
}

#[test]
fn log_file_values() {
    assert_eq!(
        one(json!({"log_file": "/tmp/all.log"}), "log_file"),
        Some(json!("/tmp/all.log"))
    );
    assert_eq!(one(json!({"log": true}), "log_file"), Some(json!(true)));
    assert_eq!(one(json!({"log_file": false}), "log_file"), None);
    assert_eq!(one(json!({"log_file": "false"}), "log_file"), None);
    assert_eq!(
        one(json!({"log_file": "true"}), "log_file"),
        Some(json!(true))
    );
    assert_eq!(
        fail(json!({"log_file": 1})),
        r#"app "api": "log_file" must be a file path or true/false; got 1"#
    );
}

#[test]
fn watch_and_filter_env() {
    assert_eq!(one(json!({"watch": true}), "watch"), Some(json!(true)));
    assert_eq!(one(json!({"watch": "false"}), "watch"), Some(json!(false)));
    assert_eq!(one(json!({"watch": "src"}), "watch"), Some(json!(["src"])));
    assert_eq!(
        one(json!({"watch": ["src", "lib"]}), "watch"),
        Some(json!(["src", "lib"]))
    );
    assert_eq!(one(json!({"watch": []}), "watch"), Some(json!(true)));
    assert_eq!(
        fail(json!({"watch": 5})),
        r#"app "api": "watch" must be true/false, a path or an array of paths; got 5"#
    );
    assert!(fail(json!({"watch": ["a", 1]})).contains("got [\"a\",1]"));
    assert_eq!(
        one(
            json!({"watch_options": {"usePolling": true}}),
            "watch_options"
        ),
        Some(json!({"usePolling": true}))
    );
    assert_eq!(
        fail(json!({"watch_options": true})),
        r#"app "api": "watch_options" must be an object; got true"#
    );

    assert_eq!(
        one(json!({"filter_env": true}), "filter_env"),
        Some(json!(true))
    );
    assert_eq!(
        one(json!({"filter_env": "AWS_"}), "filter_env"),
        Some(json!(["AWS_"]))
    );
    assert_eq!(
        one(json!({"filter_env": ["AWS_", "SECRET"]}), "filter_env"),
        Some(json!(["AWS_", "SECRET"]))
    );
    assert_eq!(
        one(json!({"filter_env": []}), "filter_env"),
        Some(json!([]))
    );
    assert_eq!(one(json!({"filter_env": ""}), "filter_env"), None);
    assert_eq!(one(json!({"watch": ""}), "watch"), None);
    assert_eq!(
        fail(json!({"filter_env": 3})),
        r#"app "api": "filter_env" must be true/false, a variable name or an array of names; got 3"#
    );
}

#[test]
fn durations() {
    for key in [
        "kill_timeout",
        "kill_retry_time",
        "listen_timeout",
        "restart_delay",
        "min_uptime",
        "watch_delay",
    ] {
        assert_eq!(one(json!({ key: 1500 }), key), Some(json!(1500)), "{key}");
        assert_eq!(one(json!({ key: "1500" }), key), Some(json!(1500)), "{key}");
        assert_eq!(one(json!({ key: 0 }), key), Some(json!(0)), "{key}");
        assert_eq!(
            fail(json!({ key: -5 })),
            format!("app \"api\": \"{key}\" must be a non-negative number of milliseconds; got -5")
        );
    }
    for (given, ms) in [
        (json!("5s"), 5000),
        (json!("2m"), 120_000),
        (json!("1h"), 3_600_000),
        (json!("500ms"), 500),
        (json!("1.5s"), 1500),
        (json!(" 10 s "), 10_000),
        (json!("2M"), 120_000),
        (json!(1000.4), 1000),
    ] {
        assert_eq!(
            one(json!({"min_uptime": given}), "min_uptime"),
            Some(json!(ms)),
            "{given}"
        );
    }
    assert_eq!(
        fail(json!({"min_uptime": "soon"})),
        r#"app "api": "min_uptime" must be a non-negative number of milliseconds or a duration like "500ms", "5s", "2m", "1h"; got "soon""#
    );
    assert!(fail(json!({"kill_timeout": "5d"})).contains("got \"5d\""));
    assert!(fail(json!({"kill_timeout": true})).contains("got true"));
    assert!(fail(json!({"kill_timeout": "-5s"})).contains("got \"-5s\""));
    // exp_backoff_restart_delay: 0 means off and is dropped.
    assert_eq!(
        one(
            json!({"exp_backoff_restart_delay": 100}),
            "exp_backoff_restart_delay"
        ),
        Some(json!(100))
    );
    assert_eq!(
        one(
            json!({"exp_backoff_restart_delay": 0}),
            "exp_backoff_restart_delay"
        ),
        None
    );
    assert!(fail(json!({"exp_backoff_restart_delay": -1})).contains("got -1"));
}

#[test]
fn max_memory_restart_units() {
    for (given, b) in [
        (json!("200M"), 200u64 * 1024 * 1024),
        (json!("1G"), 1024 * 1024 * 1024),
        (json!("512K"), 512 * 1024),
        (json!("512k"), 512 * 1024),
        (json!("200MB"), 200 * 1024 * 1024),
        (json!("1.5G"), 1024 * 1024 * 1024 * 3 / 2),
        (json!(1048576), 1048576),
        (json!("1048576"), 1048576),
    ] {
        assert_eq!(
            one(json!({"max_memory_restart": given}), "max_memory_restart"),
            Some(json!(b)),
            "{given}"
        );
    }
    for bad in [
        json!("lots"),
        json!("1T"),
        json!(-1),
        json!(0),
        json!("M"),
        json!(true),
    ] {
        assert_eq!(
            fail(json!({"max_memory_restart": bad.clone()})),
            format!(
                "app \"api\": \"max_memory_restart\" must be a positive number of bytes or a size like \"512K\", \"200M\", \"1G\"; got {bad}"
            )
        );
    }
}

#[test]
fn counts_ports_exit_codes() {
    assert_eq!(
        one(json!({"max_restarts": 10}), "max_restarts"),
        Some(json!(10))
    );
    assert_eq!(
        one(json!({"max_restarts": "0"}), "max_restarts"),
        Some(json!(0))
    );
    assert_eq!(
        fail(json!({"max_restarts": -1})),
        r#"app "api": "max_restarts" must be a non-negative integer; got -1"#
    );
    assert_eq!(one(json!({"port": 8080}), "port"), Some(json!(8080)));
    assert_eq!(one(json!({"port": "8080"}), "port"), Some(json!(8080)));
    assert_eq!(
        fail(json!({"port": 70000})),
        r#"app "api": "port" must be an integer from 1 to 65535; got 70000"#
    );
    assert!(fail(json!({"port": 0})).contains("got 0"));
    assert_eq!(
        one(json!({"stop_exit_codes": 0}), "stop_exit_codes"),
        Some(json!([0]))
    );
    assert_eq!(
        one(json!({"stop_exit_codes": [0, "2", 143]}), "stop_exit_codes"),
        Some(json!([0, 2, 143]))
    );
    assert_eq!(
        fail(json!({"stop_exit_codes": ["x"]})),
        r#"app "api": "stop_exit_codes" must be an integer or an array of integers; got ["x"]"#
    );
}

#[test]
fn uid_gid_kept_as_is() {
    assert_eq!(
        one(json!({"uid": "www-data"}), "uid"),
        Some(json!("www-data"))
    );
    assert_eq!(one(json!({"uid": 1000}), "uid"), Some(json!(1000)));
    assert_eq!(one(json!({"uid": "1000"}), "uid"), Some(json!("1000")));
    assert_eq!(one(json!({"gid": 100}), "gid"), Some(json!(100)));
    assert_eq!(
        fail(json!({"gid": -1})),
        r#"app "api": "gid" must be a group name or a numeric group id; got -1"#
    );
    assert_eq!(
        fail(json!({"user": true})),
        r#"app "api": "user" must be a user name or a numeric user id; got true"#
    );
}

#[test]
fn cron_restart_values() {
    assert_eq!(
        one(json!({"cron_restart": "0 0 * * *"}), "cron_restart"),
        Some(json!("0 0 * * *"))
    );
    assert_eq!(one(json!({"cron_restart": 0}), "cron_restart"), None);
    assert_eq!(one(json!({"cron": "0"}), "cron_restart"), None);
    assert_eq!(one(json!({"cron": ""}), "cron_restart"), None);
    assert_eq!(
        fail(json!({"cron_restart": 5})),
        r#"app "api": "cron_restart" must be a cron expression string (0 disables); got 5"#
    );
    // Checked with the parser the scheduler will use: a bad pattern is a config error.
    assert_eq!(
        one(json!({"cron": "*/30 * * * * *"}), "cron_restart"),
        Some(json!("*/30 * * * * *")),
        "a seconds field is allowed"
    );
    for bad in ["every day", "61 * * * *", "* * * *"] {
        let e = fail(json!({"cron_restart": bad}));
        assert!(
            e.starts_with(&format!(
                r#"app "api": "cron_restart" is not a valid cron expression; got "{bad}": "#
            )),
            "{e}"
        );
    }
    assert!(fail(json!({"cron": "nope"})).contains(r#""cron" is not a valid cron expression"#));
}

#[test]
fn log_rotate_block() {
    assert_eq!(
        one(
            json!({"log_rotate": {"max_size": "10M", "retain": "7", "compress": true, "interval": "1d", "cron": "0 0 * * *"}}),
            "log_rotate"
        ),
        Some(
            json!({"max_size": 10485760, "retain": 7, "compress": true, "interval": "1d", "cron": "0 0 * * *"})
        )
    );
    assert_eq!(
        one(json!({"logRotate": {"maxSize": 1000}}), "log_rotate"),
        Some(json!({"max_size": 1000}))
    );
    assert_eq!(
        fail(json!({"log_rotate": {"max_sise": "10M"}})),
        r#"app "api": "log_rotate" has an unknown key "max_sise" (did you mean "max_size"?)"#
    );
    assert_eq!(
        fail(json!({"log_rotate": {"retain": -1}})),
        r#"app "api": "log_rotate.retain" must be a non-negative integer; got -1"#
    );
    assert_eq!(
        fail(json!({"log_rotate": {"max_size": "big"}})),
        r#"app "api": "log_rotate.max_size" must be a positive number of bytes or a size like "10M"; got "big""#
    );
    assert!(fail(json!({"log_rotate": {"compress": "gz"}})).contains("true or false"));
    assert_eq!(
        one(json!({"log_rotate": {"interval": "off"}}), "log_rotate"),
        Some(json!({"interval": "off"}))
    );
    let e = fail(json!({"log_rotate": {"interval": "often"}}));
    assert!(
        e.starts_with(r#"app "api": "log_rotate.interval": interval must be"#),
        "{e}"
    );
    let e = fail(json!({"log_rotate": {"cron": "0 0 * *"}}));
    assert!(
        e.starts_with(r#"app "api": "log_rotate.cron": bad cron expression"#),
        "{e}"
    );
    assert!(fail(json!({"log_rotate": {"retain": 1u64 << 33}})).contains("non-negative integer"));
    assert!(fail(json!({"log_rotate": {"max_size": 1, "maxSize": 2}})).contains("twice"));
    assert_eq!(
        fail(json!({"log_rotate": "10M"})),
        r#"app "api": "log_rotate" must be an object; got "10M""#
    );
}

#[test]
fn no_effect_options_pass_through() {
    let v = json!({
        "io": {"conf": {"x": 1}},
        "v8": true,
        "event_loop_inspector": true,
        "deep_monitoring": false,
        "post_update": ["npm install"],
        "install_url": "x",
        "username": "me",
        "write": true,
        "name_prefix": "p",
        "static": [{"port": 8080}],
    });
    let out = norm(v.clone());
    for (k, val) in obj(v) {
        assert_eq!(out.get(&k), Some(&val), "{k}");
    }
}

#[test]
fn output_keeps_input_order() {
    let out = norm(json!({"out": "/o", "cron": 0, "instances": "max"}));
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(keys, ["script", "name", "out_file", "instances"]);
}

#[test]
fn long_values_are_truncated_in_errors() {
    let long = "x".repeat(200);
    let e = fail(json!({"instances": long}));
    assert!(e.ends_with("…"), "{e}");
    assert!(e.len() < 200, "{e}");
}

#[test]
fn option_table_lists_every_option_and_defaults() {
    let md = option_table_markdown();
    assert!(md.starts_with("| option | aliases | type | default | meaning |\n|---|"));
    for name in option_names() {
        assert!(md.contains(&format!("| `{name}` |")), "{name} missing");
    }
    assert!(md.contains("| `env_<name>` |"));
    for row in [
        "| `kill_timeout` | `killTimeout` |",
        "| `script` | `exec`, `cmd`, `command` |",
    ] {
        assert!(md.contains(row), "{row}");
    }
    let row = |name: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap()
            .to_string()
    };
    assert!(row("kill_timeout").contains("| 1600 |"));
    assert!(row("listen_timeout").contains("| 3000 |"));
    assert!(row("min_uptime").contains("| 1000 |"));
    assert!(row("max_restarts").contains("| 16 |"));
    assert!(row("instances").contains("| 1 |"));
    assert!(row("instance_var").contains("NODE_APP_INSTANCE"));
    assert!(row("autorestart").contains("| true |"));
    assert!(row("treekill").contains("| true |"));
    assert!(row("io").contains("accepted, no effect"));
    // Every row has exactly five cells (no unescaped pipe).
    for l in md.lines() {
        let cells = l.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 6, "{l}");
    }
}
