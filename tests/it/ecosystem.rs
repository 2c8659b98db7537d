//! Ecosystem files: every format started for real, --env/--only, file-wide commands, and bad
//! configs that must start nothing.

use crate::support::*;
use serde_json::Value;

fn eco(name: &str) -> String {
    fixtures()
        .join("eco")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn names(pmr: &Pmr) -> Vec<String> {
    pmr.jlist()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn logged_env(pmr: &Pmr, file: &str, lines: usize) -> Value {
    let mut last = String::new();
    wait_until(&format!("{lines} env line(s) in {file}"), || {
        let log = pmr.log_of(file);
        last = log.lines().last().unwrap_or("").to_string();
        log.lines().count() >= lines
    });
    serde_json::from_str(&last).unwrap()
}

#[test]
fn a_js_config_starts_every_app_with_env_blocks() {
    let pmr = Pmr::new();
    let port = free_port().to_string();
    let r = pmr
        .run_env(
            &["start", &eco("ecosystem.config.js"), "--env", "production"],
            &[("PORT_API", &port)],
        )
        .ok();
    assert!(
        r.stdout.contains("api") && r.stdout.contains("worker"),
        "{}",
        r.stdout
    );
    assert_eq!(names(&pmr), ["api", "worker"]);
    let env = logged_env(&pmr, "api-out.log", 1);
    assert_eq!(env["NODE_ENV"], "production");
    assert_eq!(env["PORT"], port);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(env["CPUS"], cpus.to_string());

    let api = pmr.proc(0).unwrap();
    let e = &api["pm2_env"];
    assert_eq!(e["kill_timeout"], 2000);
    assert_eq!(e["min_uptime"], 5000);
    assert_eq!(e["max_memory_restart"], 200 * 1024 * 1024);
    let worker = pmr.wait_status(1, "online");
    assert_eq!(worker["pm2_env"]["namespace"], "jobs");
    assert_eq!(worker["pm2_env"]["pm_exec_path"], fixture("worker.py"));

    // The file works with the other commands too.
    pmr.run(&["stop", &eco("ecosystem.config.js")]).ok();
    pmr.wait_status(0, "stopped");
    pmr.wait_status(1, "stopped");
    pmr.run_env(
        &["restart", &eco("ecosystem.config.js"), "--only", "api"],
        &[("PORT_API", &port)],
    )
    .ok();
    pmr.wait_status(0, "online");
    assert_eq!(pmr.status(1), "stopped");
    // Restart of a file re-applies its config: without --env, the default env block.
    assert_eq!(
        logged_env(&pmr, "api-out.log", 2)["NODE_ENV"],
        "development"
    );
    pmr.run(&["delete", &eco("ecosystem.config.js")]).ok();
    assert!(pmr.jlist().is_empty());
}

#[test]
fn start_or_restart_and_start_of_a_running_file() {
    let pmr = Pmr::new();
    pmr.run(&["startOrRestart", &eco("apps.yaml")]).ok();
    pmr.wait_status(0, "online");
    pmr.run(&["start", &eco("apps.yaml")]).ok();
    let p = pmr.wait_proc(0, "restarted", |p| p["pm2_env"]["restart_time"] == 1);
    assert_eq!(p["pm2_env"]["status"], "online");
    pmr.run(&["startOrReload", &eco("apps.yaml")]).ok();
    pmr.wait_proc(0, "restarted twice", |p| p["pm2_env"]["restart_time"] == 2);
    assert_eq!(pmr.jlist().len(), 1);
}

#[test]
fn every_format_starts() {
    let pmr = Pmr::new();
    for f in ["app.config.mjs", "apps.json", "apps.yaml", "apps.toml"] {
        pmr.run(&["start", &eco(f)]).ok();
    }
    assert_eq!(names(&pmr), ["esm-app", "json-app", "yaml-app", "toml-app"]);
    for id in 0..4 {
        pmr.wait_status(id, "online");
    }
    let list = pmr.jlist();
    assert_eq!(list[1]["pm2_env"]["args"], serde_json::json!(["a", "b"]));
    assert_eq!(env_of(&list[2])["FROM"], "yaml");
    assert_eq!(env_of(&list[3])["FROM"], "toml");
}

#[test]
fn no_argument_means_ecosystem_config_js_and_stdin_json_works() {
    let pmr = Pmr::new();
    let mut c = pmr.cmd();
    c.arg("start").current_dir(fixtures().join("eco/sub"));
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&pmr), ["default-file"]);

    use std::io::Write;
    let mut child = pmr
        .cmd()
        .args(["start", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let json = format!(
        r#"[{{"name": "from-stdin", "script": "{}"}}]"#,
        fixture("run.sh")
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(names(&pmr), ["default-file", "from-stdin"]);
}

#[test]
fn init_writes_a_sample_that_loads() {
    let pmr = Pmr::new();
    pmr.run(&["init"]).ok();
    let sample = pmr.dir.join("ecosystem.config.js");
    assert!(std::fs::read_to_string(&sample)
        .unwrap()
        .contains("module.exports"));
    pmr.run(&["init"]).fails();
    // It is a valid config: the only complaint is the scripts it names do not exist.
    let r = pmr.run(&["start"]).fails();
    assert!(
        r.stderr.contains("Script not found") && r.stderr.contains("server.js"),
        "{}",
        r.stderr
    );
}

/// Write `text` as `file` in the test's dir, start it, and return stderr (the start must fail
/// and leave the process table empty).
fn bad(pmr: &Pmr, file: &str, text: &str) -> String {
    std::fs::write(pmr.dir.join(file), text).unwrap();
    let r = pmr.run(&["start", file]).fails();
    assert!(pmr.jlist().is_empty(), "{file} started something");
    r.stderr
}

#[test]
fn bad_configs_name_the_file_the_app_and_the_key_and_start_nothing() {
    let pmr = Pmr::new();
    let run_sh = fixture("run.sh");
    let e = bad(
        &pmr,
        "syntax.config.js",
        "module.exports = {\n  apps: [\n    { name: 'a' script: 'x' }\n  ]\n};\n",
    );
    assert!(e.contains("syntax.config.js:3:"), "{e}");
    let e = bad(&pmr, "noapps.config.js", "module.exports = { nope: [] };");
    assert!(e.contains("noapps.config.js") && e.contains("apps"), "{e}");
    let e = bad(&pmr, "noscript.json", r#"{"apps": [{"name": "a"}]}"#);
    assert!(
        e.contains("noscript.json") && e.contains("\"script\""),
        "{e}"
    );
    let e = bad(
        &pmr,
        "lots.json",
        &format!(r#"{{"apps": [{{"name": "a", "script": "{run_sh}", "instances": "lots"}}]}}"#),
    );
    assert!(
        e.contains("lots.json")
            && e.contains("app \"a\"")
            && e.contains("instances")
            && e.contains("lots"),
        "{e}"
    );
    let e = bad(
        &pmr,
        "kt.yaml",
        &format!("apps:\n  - name: a\n    script: {run_sh}\n    kill_timeout: -5\n"),
    );
    assert!(e.contains("kill_timeout") && e.contains("-5"), "{e}");
    let e = bad(
        &pmr,
        "dup.json",
        &format!(
            r#"{{"apps": [{{"name": "a", "script": "{run_sh}"}}, {{"name": "a", "script": "{run_sh}"}}]}}"#
        ),
    );
    assert!(e.contains("two apps are named \"a\""), "{e}");
    let e = bad(
        &pmr,
        "missing.json",
        r#"{"apps": [{"name": "a", "script": "./nope.js"}]}"#,
    );
    assert!(
        e.contains("missing.json") && e.contains("Script not found") && e.contains("nope.js"),
        "{e}"
    );
    // One bad app in several: nothing starts.
    let e = bad(
        &pmr,
        "mixed.json",
        &format!(
            r#"{{"apps": [{{"name": "good", "script": "{run_sh}"}}, {{"name": "bad", "script": "{run_sh}", "autorestart": "sometimes"}}]}}"#
        ),
    );
    assert!(
        e.contains("app \"bad\"") && e.contains("autorestart"),
        "{e}"
    );
    let e = bad(&pmr, "loop.config.js", "while (true) {}");
    assert!(
        e.contains("loop.config.js") && e.contains("stopped after"),
        "{e}"
    );

    std::fs::write(
        pmr.dir.join("ok.json"),
        format!(r#"{{"apps": [{{"name": "a", "script": "{run_sh}"}}]}}"#),
    )
    .unwrap();
    let r = pmr.run(&["start", "ok.json", "--only", "zzz"]).fails();
    assert!(
        r.stderr.contains("--only names no app \"zzz\""),
        "{}",
        r.stderr
    );
    let r = pmr.run(&["start", "nope.config.js"]).fails();
    assert!(r.stderr.contains("nope.config.js"), "{}", r.stderr);
    assert!(pmr.jlist().is_empty());
}

#[test]
fn automation_options_act_without_warnings_and_show_as_pm2_fields() {
    let pmr = Pmr::new();
    let run_sh = fixture("run.sh");
    std::fs::create_dir_all(pmr.dir.join("src")).unwrap();
    std::fs::write(
        pmr.dir.join("w.json"),
        format!(
            r#"{{"apps": [
                {{"name": "w", "script": "{run_sh}", "watch": ["src"], "cron_restart": "0 3 * * *",
                  "max_memory_restart": "200M"}},
                {{"name": "plain", "script": "{run_sh}", "watch": false}}
            ]}}"#
        ),
    )
    .unwrap();
    let r = pmr.run(&["start", "w.json"]).ok();
    assert!(!r.stderr.contains("not supported yet"), "{}", r.stderr);
    pmr.wait_proc(0, "watching", |p| {
        p["pm2_env"]["pmr_watching"]
            .as_str()
            .is_some_and(|w| w.contains("inotify"))
    });
    // jlist keeps PM2's fields, as tools read them.
    let env = &pmr.proc(0).unwrap()["pm2_env"];
    assert_eq!(env["watch"], serde_json::json!(["src"]));
    assert_eq!(env["cron_restart"], "0 3 * * *");
    assert_eq!(env["max_memory_restart"], 200 * 1024 * 1024);
    assert_eq!(pmr.proc(1).unwrap()["pm2_env"]["watch"], false);
    // ls: `enabled` for the watched app only.
    let ls = pmr.run_env(&["ls"], &[("COLUMNS", "200")]).ok().stdout;
    assert_eq!(ls.matches("enabled").count(), 1, "{ls}");
    assert_eq!(ls.matches("disabled").count(), 1, "{ls}");
    let d = pmr.run(&["describe", "w"]).ok().stdout;
    let row = |key: &str| {
        d.lines()
            .find(|l| l.starts_with(&format!("│ {key} ")))
            .map(|l| l.split('│').nth(2).unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("no {key} row in\n{d}"))
    };
    assert_eq!(row("watch & reload"), "✔");
    assert!(row("watching").contains("/src (inotify"), "{d}");
    assert!(row("cron restart").starts_with("0 3 * * * (next "), "{d}");
    assert_eq!(row("max memory restart"), "209715200");

    // The command-line flag: no warning either.
    let r = pmr.run(&["start", &run_sh, "--name", "f", "--watch"]).ok();
    assert!(!r.stderr.contains("not supported yet"), "{}", r.stderr);
    pmr.run(&["delete", "all"]).ok();
}

#[test]
fn a_bad_cron_restart_pattern_names_the_file_the_app_and_the_key() {
    let pmr = Pmr::new();
    let run_sh = fixture("run.sh");
    let e = bad(
        &pmr,
        "cron.json",
        &format!(
            r#"{{"apps": [{{"name": "c", "script": "{run_sh}", "cron_restart": "61 * * * *"}}]}}"#
        ),
    );
    assert!(
        e.contains("cron.json")
            && e.contains("app \"c\"")
            && e.contains("\"cron_restart\" is not a valid cron expression"),
        "{e}"
    );
}
