//! PM2 modules: `install` of a local folder with the real npm (`tests/fixtures/module`, which
//! writes the settings it got to `$PMR_HOME/fixture-module.json`), its `pmx_module` entry,
//! the Module table, `set` restarting it, `save` leaving it out, a new daemon starting it,
//! `uninstall`; a tarball; a real module from npm, pinned; and installs that must fail and change
//! nothing.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

const NAME: &str = "pmr-fixture-module";

/// What the running module wrote, once it is from a process other than `not_pid`.
fn module_saw(pmr: &Pmr, not_pid: Option<u64>) -> Value {
    let path = pmr.home.join("fixture-module.json");
    let mut seen = Value::Null;
    wait_until("the module's report", || {
        seen = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        seen["pid"].as_u64().is_some_and(|p| Some(p) != not_pid)
    });
    seen
}

fn modules(pmr: &Pmr) -> Vec<Value> {
    pmr.jlist()
        .into_iter()
        .filter(|p| p["pm2_env"]["pmx_module"] == true)
        .collect()
}

fn conf(pmr: &Pmr) -> Value {
    serde_json::from_str(&std::fs::read_to_string(pmr.home.join("conf.json")).unwrap()).unwrap()
}

/// A copy of the fixture in the test's folder (npm writes nothing into it, but a test may
/// change it).
fn fixture_copy(pmr: &Pmr) -> String {
    let dst = pmr.dir.join("module");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["package.json", "index.js"] {
        std::fs::copy(fixtures().join("module").join(f), dst.join(f)).unwrap();
    }
    dst.to_string_lossy().into_owned()
}

#[test]
fn a_module_installs_runs_with_its_settings_survives_the_daemon_and_uninstalls() {
    let pmr = Pmr::new();
    let folder = fixture_copy(&pmr);
    let r = pmr.run(&["install", &folder]).ok();
    assert!(r.stdout.contains("Module\n"), "{}", r.stdout);

    // PM2's layout: an npm prefix per module, the package in its node_modules.
    let pkg_dir = pmr
        .home
        .join("modules")
        .join(NAME)
        .join("node_modules")
        .join(NAME);
    assert!(pkg_dir.join("package.json").is_file());
    let c = conf(&pmr);
    assert_eq!(c["module-db-v2"][NAME], serde_json::json!({}), "{c}");
    assert_eq!(
        c[NAME],
        serde_json::json!({"greeting": "hello", "count": 3})
    );

    let mods = modules(&pmr);
    assert_eq!(mods.len(), 1, "{mods:#?}");
    let m = &mods[0];
    assert_eq!(m["name"], NAME);
    assert_eq!(m["pm2_env"]["pm_cwd"], pkg_dir.to_str().unwrap());
    let id = m["pm_id"].as_u64().unwrap();
    pmr.wait_status(id, "online");

    // Each setting as a variable, and all of them as JSON under the module's name.
    let seen = module_saw(&pmr, None);
    assert_eq!(seen["greeting"], "hello", "{seen}");
    assert_eq!(seen["count"], "3", "{seen}");
    let as_json: Value = serde_json::from_str(seen["conf"].as_str().unwrap()).unwrap();
    assert_eq!(
        as_json,
        serde_json::json!({"greeting": "hello", "count": 3})
    );
    assert_eq!(seen["cwd"], pkg_dir.to_str().unwrap());

    // `ls`: the apps' table, then PM2's Module table.
    let ls = pmr.run(&["ls"]).ok().stdout;
    let (apps, module_part) = ls.split_once("Module\n").unwrap_or_else(|| panic!("{ls}"));
    assert!(!apps.contains(NAME), "{ls}");
    for col in ["module", "version", "pid", "status", "user"] {
        assert!(module_part.lines().nth(1).unwrap().contains(col), "{ls}");
    }
    assert!(
        module_part.contains(NAME) && module_part.contains("1.2.3"),
        "{ls}"
    );

    // `set` restarts it with the new value.
    let first_pid = seen["pid"].as_u64();
    let r = pmr
        .run(&["set", &format!("{NAME}:greeting"), "bonjour"])
        .ok();
    assert!(r.stdout.contains("restarted"), "{}", r.stdout);
    let seen = module_saw(&pmr, first_pid);
    assert_eq!(seen["greeting"], "bonjour", "{seen}");

    // Installing again updates it and keeps what the user set.
    pmr.run(&["module:update", &folder]).ok();
    let seen = module_saw(&pmr, seen["pid"].as_u64());
    assert_eq!(seen["greeting"], "bonjour", "{seen}");
    assert_eq!(modules(&pmr).len(), 1);

    // `save` keeps the user's apps only.
    let ticker = pmr.dir.join("ticker.js");
    std::fs::copy(fixture("ticker.js"), &ticker).unwrap();
    pmr.run(&["start", ticker.to_str().unwrap(), "--name", "app"])
        .ok();
    pmr.run(&["save"]).ok();
    let dump = std::fs::read_to_string(pmr.home.join("dump.json")).unwrap();
    assert!(dump.contains("\"app\""), "{dump}");
    assert!(!dump.contains(NAME), "{dump}");
    // `all` means the apps, not the modules (as PM2's).
    pmr.run(&["stop", "all"]).ok();
    let all = pmr.jlist();
    let status = |name: &str| {
        all.iter().find(|p| p["name"] == name).unwrap()["pm2_env"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (status("app"), status(NAME)),
        ("stopped".into(), "online".into())
    );

    // A new daemon starts it again: after `kill` (which forgets the apps) and after a daemon
    // that died (whose table brings it back: still one module, not two).
    pmr.run(&["kill"]).ok();
    wait_until("the module back after kill", || {
        let all = pmr.jlist();
        all.len() == 1 && all[0]["pm2_env"]["pmx_module"] == true
    });
    let seen = module_saw(&pmr, seen["pid"].as_u64());
    kill9(pmr.daemon_pid().unwrap());
    wait_until("the module back after a daemon died", || {
        let m = modules(&pmr);
        m.len() == 1 && m[0]["pm2_env"]["status"] == "online"
    });
    let seen = module_saw(&pmr, seen["pid"].as_u64());
    assert_eq!(seen["greeting"], "bonjour", "{seen}");

    // `uninstall`: the app, the folder and the entry go; the settings stay (as PM2's).
    pmr.run(&["uninstall", NAME]).ok();
    assert!(modules(&pmr).is_empty());
    assert!(!pmr.home.join("modules").join(NAME).exists());
    let c = conf(&pmr);
    assert!(c["module-db-v2"].get(NAME).is_none(), "{c}");
    assert_eq!(c[NAME]["greeting"], "bonjour");
    let r = pmr.run(&["uninstall", NAME]).fails();
    assert!(r.stderr.contains(NAME), "{}", r.stderr);
    // A new daemon has nothing to start.
    pmr.run(&["kill"]).ok();
    assert!(pmr.jlist().is_empty());
}

/// Everything under the home but the daemon's own files, with contents.
fn home_state(home: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(home).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push((rel, Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn failed_installs_name_the_package_and_change_nothing() {
    let pmr = Pmr::new();
    // A setting the user made before.
    pmr.run(&["set", "some-module:key", "value"]).ok();
    let before = home_state(&pmr.home);

    let no_pkg = pmr.dir.join("no-package");
    std::fs::create_dir_all(&no_pkg).unwrap();
    let lib = pmr.dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(
        lib.join("package.json"),
        r#"{"name":"a-library","version":"1.0.0"}"#,
    )
    .unwrap();
    let lib = lib.to_str().unwrap().to_string();

    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["./not-here"], "./not-here", "No such file"),
        (vec!["no-package"], "no-package", "no package.json"),
        (vec![&lib], "a-library", "not a PM2 module"),
        (
            vec!["pmr-test-no-such-package-4f1c9e"],
            "pmr-test-no-such-package-4f1c9e",
            "npm",
        ),
    ];
    for (args, names, says) in cases {
        let mut argv = vec!["install"];
        argv.extend(args);
        let r = pmr.run(&argv).fails();
        assert!(
            r.stderr.contains(names) && r.stderr.contains(says),
            "{argv:?}: {}",
            r.stderr
        );
        assert_eq!(home_state(&pmr.home), before, "{argv:?} changed the home");
    }
    // npm missing.
    let folder = fixture_copy(&pmr);
    let r = pmr
        .run_env(&["install", &folder], &[("PATH", "/nonexistent-pmr-test")])
        .fails();
    assert!(
        r.stderr.contains(&folder) && r.stderr.contains("npm was not found"),
        "{}",
        r.stderr
    );
    assert_eq!(home_state(&pmr.home), before);
    // No daemon was needed, none started.
    assert!(pmr.daemon_pid().is_none());
}

/// A real PM2 module from the registry, pinned: pm2-server-monit 3.0.0 (its one dependency is
/// @pm2/io; it does not drive PM2). Its `apps` section names its script and a memory limit.
#[test]
fn a_real_module_from_npm_runs_with_its_apps_section() {
    let pmr = Pmr::new();
    pmr.run(&["install", "pm2-server-monit@3.0.0"]).ok();
    let m = modules(&pmr);
    assert_eq!(m.len(), 1, "{m:#?}");
    let id = m[0]["pm_id"].as_u64().unwrap();
    assert_eq!(m[0]["name"], "pm2-server-monit");
    let p = pmr.wait_status(id, "online");
    assert!(
        p["pm2_env"]["pm_exec_path"]
            .as_str()
            .unwrap()
            .ends_with("modules/pm2-server-monit/node_modules/pm2-server-monit/src/index.js"),
        "{p:#}"
    );
    assert_eq!(p["pm2_env"]["max_memory_restart"], 150 * 1024 * 1024);
    // @pm2/io tells the daemon it is a module.
    pmr.wait_proc(id, "isModule from @pm2/io", |p| {
        p["pm2_env"]["axm_options"]["isModule"] == true
    });
    pmr.run(&["uninstall", "pm2-server-monit"]).ok();
    assert!(modules(&pmr).is_empty());
    assert!(!pmr.home.join("modules/pm2-server-monit").exists());
}

/// An npm tarball (`npm pack`) installs under its package's name, whatever the file is called.
#[test]
fn a_tarball_installs_under_its_package_name() {
    let pmr = Pmr::new();
    let folder = fixture_copy(&pmr);
    let packed = std::process::Command::new("npm")
        .args(["pack", &folder, "--silent", "--pack-destination"])
        .arg(&pmr.dir)
        .output()
        .unwrap();
    assert!(packed.status.success(), "{packed:?}");
    let tgz = pmr.dir.join("renamed.tgz");
    std::fs::rename(pmr.dir.join("pmr-fixture-module-1.2.3.tgz"), &tgz).unwrap();
    pmr.run(&["install", tgz.to_str().unwrap()]).ok();
    let m = modules(&pmr);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert_eq!(m[0]["name"], NAME);
    assert_eq!(module_saw(&pmr, None)["greeting"], "hello");
    assert!(pmr.home.join("modules").join(NAME).is_dir());
}
