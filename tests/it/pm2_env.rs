//! `pm2_env.env` as PM2 7.0.4 shows it (measured by hand for fork and cluster apps started by
//! file and by CLI): JSON types kept, no daemon-added keys, `deploy.<name>.env` with `--env`,
//! the module settings entry, `unique_id`; and unknown config keys as warnings.

use crate::support::*;
use serde_json::{json, Value};

/// Write a config in the test's dir (the CLI's cwd) and return its name.
fn write(pmr: &Pmr, file: &str, v: Value) -> String {
    std::fs::write(pmr.dir.join(file), v.to_string()).unwrap();
    file.to_string()
}

/// The app's first logged line: `env.js` prints its environment as JSON.
fn child_env(p: &Value) -> Value {
    let log = p["pm2_env"]["pm_out_log_path"].as_str().unwrap();
    let text = wait_file(std::path::Path::new(log));
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn by_name(pmr: &Pmr, name: &str) -> Vec<Value> {
    pmr.jlist()
        .into_iter()
        .filter(|p| p["name"] == name)
        .collect()
}

fn config(env_js: &str) -> Value {
    json!({
        "apps": [
            {
                "name": "typed", "script": env_js,
                "env": {"PORT": 3000, "FLAG": true, "NUL": null, "OBJ": {"a": 1},
                        "NODE_ENV": "dev", "ONLY_ENV": "env", "KEEP": "env"},
                "env_production": {"NODE_ENV": "production", "PROD": 1, "POBJ": {"b": 2}}
            },
            {
                "name": "clu", "script": env_js, "exec_mode": "cluster", "instances": 2,
                "increment_var": "PORT", "listen_timeout": 500, "env": {"PORT": 4000}
            }
        ],
        "deploy": {"production": {"env": {"DEPLOY_ONLY": "d", "NODE_ENV": "deploy", "ONLY_ENV": "deploy"}}}
    })
}

#[test]
fn jlist_env_keeps_json_types_and_holds_only_pm2s_keys() {
    let pmr = Pmr::new();
    let file = write(&pmr, "eco.json", config(&fixture("env.js")));
    pmr.run(&["start", &file, "--env", "production"]).ok();
    let typed = &by_name(&pmr, "typed")[0];
    let env = env_of(typed);
    assert_eq!(env["PORT"], json!(3000));
    assert_eq!(env["FLAG"], json!(true));
    assert_eq!(env["NUL"], json!("null"));
    assert_eq!(env["OBJ"], json!("{\"a\":1}"));
    assert_eq!(env["PROD"], json!(1));
    assert_eq!(env["POBJ"], json!({"b": 2}));
    // env < deploy.production.env < env_production, as PM2 7.0.4.
    assert_eq!(env["NODE_ENV"], "production");
    assert_eq!(env["ONLY_ENV"], "deploy");
    assert_eq!(env["DEPLOY_ONLY"], "d");
    assert_eq!(env["KEEP"], "env");
    // PM2's module settings entry (none set: `{}`, a string for a file), home, unique_id.
    assert_eq!(env["typed"], "{}");
    assert_eq!(env["PMR_HOME"], pmr.home.to_string_lossy().as_ref());
    let id = env["unique_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    for internal in [
        "exec_mode",
        "namespace",
        "pm_id",
        "name",
        "NODE_APP_INSTANCE",
    ] {
        assert!(env.get(internal).is_none(), "env has {internal}: {env:?}");
    }
    assert_eq!(typed["pm2_env"]["PORT"], json!(3000));
    assert_eq!(typed["pm2_env"]["exec_mode"], "fork_mode");
    let axm = &typed["pm2_env"]["axm_options"];
    assert_eq!(axm["module_name"], "typed");
    assert_eq!(axm["apm"]["type"], "node");

    // The process gets strings, and not the objects PM2 leaves out.
    let child = child_env(typed);
    assert_eq!(child["PORT"], "3000");
    assert_eq!(child["FLAG"], "true");
    assert_eq!(child["PROD"], "1");
    assert_eq!(child["NODE_ENV"], "production");
    assert_eq!(child["unique_id"], id.as_str());
    assert_eq!(child["typed"], "{}");
    assert!(child.get("POBJ").is_none(), "{child}");

    // Cluster: the increment var is a number, one per instance; one unique_id per start.
    let clu = by_name(&pmr, "clu");
    assert_eq!(clu.len(), 2);
    let ports: Vec<&Value> = clu.iter().map(|p| &env_of(p)["PORT"]).collect();
    assert_eq!(ports, [&json!(4000), &json!(4001)]);
    assert_eq!(env_of(&clu[0])["unique_id"], env_of(&clu[1])["unique_id"]);
    assert_ne!(env_of(&clu[0])["unique_id"], id.as_str());
    assert_eq!(env_of(&clu[1])["DEPLOY_ONLY"], "d");
    assert_eq!(clu[1]["pm2_env"]["PORT"], json!(4001));
    assert_eq!(child_env(&clu[1])["PORT"], "4001");

    // `fork_mode` / `cluster_mode` once per process in prettylist (not again in `env`).
    let pretty = pmr.run(&["prettylist"]).ok().stdout;
    assert_eq!(pretty.matches("fork_mode").count(), 1, "{pretty}");
    assert_eq!(pretty.matches("cluster_mode").count(), 2, "{pretty}");
    assert!(pretty.contains("PORT: 3000,"), "{pretty}");
    assert!(pretty.contains("FLAG: true,"), "{pretty}");
}

#[test]
fn without_env_the_deploy_block_is_not_applied() {
    let pmr = Pmr::new();
    let file = write(&pmr, "eco.json", config(&fixture("env.js")));
    pmr.run(&["start", &file, "--only", "typed"]).ok();
    let p = &by_name(&pmr, "typed")[0];
    let env = env_of(p);
    assert_eq!(env["NODE_ENV"], "dev");
    assert_eq!(env["ONLY_ENV"], "env");
    assert!(env.get("DEPLOY_ONLY").is_none() && env.get("PROD").is_none());
}

#[test]
fn command_line_apps_and_module_settings() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("env.js"), "--name", "cli"])
        .ok();
    let p = &by_name(&pmr, "cli")[0];
    // From the command line PM2's entry is an object, which the process does not get.
    assert_eq!(env_of(p)["cli"], json!({}));
    assert!(env_of(p).get("exec_mode").is_none());
    assert!(child_env(p).get("cli").is_none());
    assert!(p["pm2_env"].get("cli").is_none(), "objects stay in env");

    // `pmr set <app>:<key>`: a variable, and the section as JSON under the app's name.
    pmr.run(&["set", "mod:level", "5"]).ok();
    let file = write(
        &pmr,
        "mod.json",
        json!({"apps": [{"name": "mod", "script": fixture("env.js")}]}),
    );
    pmr.run(&["start", &file]).ok();
    let p = &by_name(&pmr, "mod")[0];
    assert_eq!(env_of(p)["level"], "5");
    assert_eq!(env_of(p)["mod"], r#"{"level":"5"}"#);
    assert_eq!(child_env(p)["level"], "5");
    let axm = &p["pm2_env"]["axm_options"];
    assert_eq!(axm["module_conf"], json!({"level": 5}));
    assert_eq!(axm["level"], json!(5));
}

#[test]
fn unknown_config_keys_warn_and_start_unless_strict() {
    let pmr = Pmr::new();
    let run_sh = fixture("run.sh");
    let file = write(
        &pmr,
        "junk.json",
        json!({"apps": [{
            "name": "junk", "script": run_sh, "max": "10", "options": {"x": 1},
            "max_memory_restrat": "1G", "log_rotate": {"max_sise": "1M", "retain": 2}
        }]}),
    );
    // Strict first: an error, and nothing starts.
    for args in [
        vec!["start", "--strict", file.as_str()],
        vec!["config-check", file.as_str()],
    ] {
        let r = pmr.run(&args).fails();
        assert!(
            r.stderr.contains(r#"app "junk": unknown option "max""#),
            "{args:?}: {}",
            r.stderr
        );
        assert!(pmr.jlist().is_empty(), "{args:?} started something");
    }

    let r = pmr.run(&["start", &file]).ok();
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("[PMR][WARN]"))
        .collect();
    assert_eq!(
        warnings,
        [
            r#"[PMR][WARN] junk.json: app "junk": unknown option "max", ignored"#,
            r#"[PMR][WARN] junk.json: app "junk": unknown option "options", ignored"#,
            r#"[PMR][WARN] junk.json: app "junk": unknown option "max_memory_restrat" (did you mean "max_memory_restart"?), ignored"#,
            r#"[PMR][WARN] junk.json: app "junk": "log_rotate" has an unknown key "max_sise" (did you mean "max_size"?), ignored"#,
        ],
        "{}",
        r.stderr
    );
    let p = pmr.wait_status(0, "online");
    let e = &p["pm2_env"];
    for dropped in ["max", "options", "max_memory_restrat", "max_memory_restart"] {
        assert!(e.get(dropped).is_none(), "{dropped} in {e:#}");
    }
    assert_eq!(e["log_rotate"], json!({"retain": 2}));
}
