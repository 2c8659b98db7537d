use super::*;
use crate::options::{loose_sample, normalize_app, option_names};
use serde_json::json;

/// Every option of the table, each with a loose value of its kind.
fn every_option() -> Map<String, Value> {
    option_names()
        .map(|n| (n.to_string(), loose_sample(n).unwrap()))
        .collect()
}

#[test]
fn every_option_of_the_table_reads_as_its_kind() {
    let canonical = normalize_app(&every_option()).unwrap();
    let raw = RawApp::from_options(&canonical).unwrap();
    // What the build does not read is passed on in `extra`, and nothing else.
    let extra: Vec<&str> = raw.extra.keys().map(String::as_str).collect();
    assert_eq!(
        extra,
        [
            "kill_retry_time",
            "uid",
            "gid",
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
            "v8",
            "event_loop_inspector",
            "deep_monitoring",
            "io",
            "post_update",
            "install_url",
            "username",
            "write",
            "name_prefix",
            "static",
        ]
    );
    assert_eq!(raw.policy.kill_timeout, Some(2000));
    assert_eq!(raw.policy.max_memory_restart, Some(100 << 20));
    assert_eq!(
        raw.logs.log_rotate,
        Some(LogRotate {
            max_size: Some(10 << 20),
            retain: Some(3),
            ..LogRotate::default()
        })
    );
}

#[test]
fn loose_forms_read_as_the_tables_checks_leave_them() {
    // `log_rotate`'s keys are only made canonical by the checks.
    let mut written = every_option();
    written.shift_remove("log_rotate");
    let checked = normalize_app(&written).unwrap();
    let mut as_written = RawApp::from_options(&written).unwrap();
    let mut as_checked = RawApp::from_options(&checked).unwrap();
    // `extra` is passed on as given.
    let keys = |r: &RawApp| r.extra.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&as_written), keys(&as_checked));
    as_written.extra.clear();
    as_checked.extra.clear();
    assert_eq!(format!("{as_written:?}"), format!("{as_checked:?}"));

    let r = RawApp::from_options(
        json!({
            "script": "app.js", "args": "--port 3000 'a b'", "instances": "-1",
            "exec_mode": "fork_mode", "autorestart": "false", "restart_delay": "1.5s",
            "exp_backoff_restart_delay": 0, "max_restarts": "5", "stop_exit_codes": "2",
            "max_memory_restart": "1G", "cron_restart": "0", "watch": [], "filter_env": "AWS_",
            "port": "3000", "log_file": "false", "name": "", "env_production": {"A": 1},
        })
        .as_object()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        r.program.args.as_deref().unwrap(),
        ["--port", "3000", "a b"]
    );
    assert_eq!(r.scaling.instances, Some(-1));
    assert_eq!(r.scaling.exec_mode, Some(ExecMode::Fork));
    assert!(!r.scaling.wants_cluster());
    assert_eq!(r.policy.autorestart, Some(false));
    assert_eq!(r.policy.restart_delay, Some(1500));
    assert_eq!(r.policy.exp_backoff_restart_delay, Some(0));
    assert_eq!(r.policy.max_restarts, Some(5));
    assert_eq!(r.policy.stop_exit_codes, Some(vec![2]));
    assert_eq!(r.policy.max_memory_restart, Some(1 << 30));
    assert_eq!(r.policy.cron_restart, None, "0 is off");
    assert_eq!(r.watching.watch, Some(Switch::Bool(true)), "[] watches cwd");
    assert_eq!(
        r.environment.filter_env,
        Some(Switch::List(vec!["AWS_".into()]))
    );
    assert_eq!(r.environment.port, Some(3000));
    assert_eq!(r.logs.log_file, None);
    assert_eq!(r.identity.name, None, "an empty name is not set");
    assert_eq!(
        r.env_block("production"),
        Some(&json!({"A": 1}).as_object().unwrap().clone())
    );
    assert_eq!(r.extra.keys().collect::<Vec<_>>(), ["env_production"]);
}

#[test]
fn cluster_is_wanted_by_mode_or_by_instances() {
    let wants = |v: Value| {
        RawApp::from_options(v.as_object().unwrap())
            .unwrap()
            .scaling
            .wants_cluster()
    };
    assert!(!wants(json!({})));
    assert!(wants(json!({"instances": -1})));
    assert!(!wants(json!({"instances": -2})));
    assert!(wants(json!({"exec_mode": "cluster"})));
    assert!(!wants(json!({"instances": 4, "exec_mode": "fork"})));
}

#[test]
fn a_value_of_another_kind_is_an_error() {
    for (key, v) in [
        ("kill_timeout", json!("soon")),
        ("max_memory_restart", json!(0)),
        ("autorestart", json!("yes")),
        ("args", json!({"a": 1})),
        ("port", json!(70000)),
    ] {
        let mut m = Map::new();
        m.insert(key.into(), v);
        let e = RawApp::from_options(&m).unwrap_err();
        assert!(e.starts_with("expected "), "{key}: {e}");
    }
}
