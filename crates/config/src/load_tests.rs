//! Tests for `load.rs` (and through it `load/js.rs`, `load/node.rs`), on the fixture configs in
//! `tests/fixtures/configs/`.

use super::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

fn fixture(rel: &str) -> PathBuf {
    // The fixtures are the workspace's, two levels up from this crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/configs")
        .canonicalize()
        .unwrap()
        .join(rel)
}

fn load(rel: &str) -> Value {
    load_file(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn load_err(rel: &str) -> String {
    match load_file(&fixture(rel)) {
        Ok(v) => panic!("{rel}: expected an error, got {v}"),
        Err(e) => e.to_string(),
    }
}

fn shown(rel: &str) -> String {
    fixture(rel).display().to_string()
}

/// Options with no `node` anywhere (an emptied PATH).
fn no_node() -> LoadOptions {
    LoadOptions {
        path_env: Some(OsString::new()),
        ..LoadOptions::default()
    }
}

fn node_on_path() -> Option<LoadOptions> {
    let opts = LoadOptions::default();
    node::find_node(opts.path_env.as_deref()).map(|_| opts)
}

#[test]
fn is_config_file_follows_pm2() {
    for yes in [
        "ecosystem.config.js",
        "ecosystem.config.cjs",
        "ecosystem.config.mjs",
        "conf/app.json",
        "pm2.yml",
        "pm2.yaml",
        "process.json5",
        "pmr.toml",
        "-.json",
    ] {
        assert!(is_config_file(yes), "{yes}");
    }
    for no in [
        "app.js",
        "server.mjs",
        "index.cjs",
        "config.js",
        "run.sh",
        "api",
    ] {
        assert!(!is_config_file(no), "{no}");
    }
}

#[test]
fn kind_from_path() {
    let k = |p: &str| ConfigKind::from_path(Path::new(p));
    assert_eq!(k("a.json"), Some(ConfigKind::Json));
    assert_eq!(k("a.JSON5"), Some(ConfigKind::Json));
    assert_eq!(k("a.yml"), Some(ConfigKind::Yaml));
    assert_eq!(k("a.yaml"), Some(ConfigKind::Yaml));
    assert_eq!(k("a.toml"), Some(ConfigKind::Toml));
    assert_eq!(k("ecosystem.config.js"), Some(ConfigKind::Js));
    assert_eq!(k("ecosystem.config.cjs"), Some(ConfigKind::Js));
    assert_eq!(k("ecosystem.config.mjs"), Some(ConfigKind::Mjs));
    assert_eq!(k("ecosystem.json.bak"), Some(ConfigKind::Json));
    assert_eq!(k("readme.txt"), None);
}

#[test]
fn commonjs_config_with_builtins() {
    let v = load("ecosystem.config.js");
    let dir = fixture("").display().to_string();
    let dir = dir.trim_end_matches('/');
    assert_eq!(
        v,
        json!({
            "apps": [
                {
                    "name": "api",
                    "script": format!("{dir}/dist/server.js"),
                    "cwd": dir,
                    "instances": js::cpu_count(),
                    "exec_mode": "cluster",
                    "max_memory_restart": "300M",
                    "env": { "NODE_ENV": "development", "PORT": 3000 },
                    "env_production": { "NODE_ENV": "production", "PORT": 80 }
                },
                {
                    "name": "worker",
                    "script": "./worker.js",
                    "args": ["--queue", "jobs"],
                    "autorestart": true,
                    "watch": false,
                    "cron_restart": "0 3 * * *",
                    "env_production": { "NODE_ENV": "production" },
                    "home": std::env::var("HOME").unwrap(),
                    "from_env": "fallback",
                    "file": "ecosystem.config.js"
                }
            ],
            "deploy": {
                "production": { "user": "node", "host": ["212.83.163.1"], "ref": "origin/master" }
            }
        })
    );
    // Key order is the file's.
    let keys: Vec<&String> = v["apps"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["name", "script", "cwd"]);
}

#[test]
fn cjs_extension_and_exports_shorthand() {
    let v = load("ecosystem.config.cjs");
    assert_eq!(v["apps"][0]["name"], "cjs-app");
    assert_eq!(
        v["apps"][0]["cwd"],
        fixture("").display().to_string().trim_end_matches('/')
    );
}

#[test]
fn mjs_with_imports_and_import_meta() {
    let v = load("esm/ecosystem.config.mjs");
    let dir = fixture("esm").display().to_string();
    assert_eq!(
        v,
        json!({ "apps": [{
            "name": "esm-app",
            "script": format!("{dir}/index.js"),
            "log": format!("{dir}/logs/app.log"),
            "instances": js::cpu_count(),
            "platform": "linux",
        }]})
    );
}

#[test]
fn js_file_written_as_es_module() {
    let v = load("esm-js/ecosystem.config.js");
    assert_eq!(
        v,
        json!({ "apps": [{ "name": "esm-in-js", "script": "/srv/app.js", "env": { "SHARED": "1" } }] })
    );
}

#[test]
fn es_module_without_default_export() {
    let virt = Path::new("/srv/esm.config.mjs");
    let v = load_str(
        "export const apps = [{ name: 'n' }];",
        ConfigKind::Mjs,
        virt,
    )
    .unwrap();
    assert_eq!(v, json!({ "apps": [{ "name": "n" }] }));
    // A `.js` mixing `import` with `module.exports` (works in bundlers, not in Node).
    let src = "import os from 'os';\nmodule.exports = { apps: [], cpus: os.cpus().length };";
    let v = load_str(src, ConfigKind::Js, Path::new("/srv/mixed.config.js")).unwrap();
    assert_eq!(v, json!({ "apps": [], "cpus": js::cpu_count() }));
}

#[test]
fn relative_requires_json_cache_and_cycles() {
    let v = load("require/ecosystem.config.js");
    assert_eq!(
        v,
        json!({
            "apps": [
                { "script": "server.js", "exec_mode": "fork", "dir": "lib", "name": "web", "env": { "PORT": 8080 } },
                { "script": "server.js", "exec_mode": "fork", "dir": "lib", "name": "admin", "env": { "PORT": 8081 } }
            ],
            "cycle": "a sees b, b saw a",
            "sameObject": true
        })
    );
}

#[test]
fn builtins_answer_like_node() {
    let v = load("builtins.config.js");
    let cwd = std::env::current_dir().unwrap().display().to_string();
    // What node v20 prints for the same file (dynamic values filled in).
    let expected = json!({
        "path": {
            "join": "/a/c/d/e", "joinEmpty": ".", "resolve": "/x/y/w", "resolveRel": true,
            "dirname": ["/a/b", ".", "/", "/"], "basename": ["c.config.js", "c", "b"],
            "extname": [".js", "", "", "."], "sep": "/", "delimiter": ":",
            "isAbsolute": [true, false], "relative": ["../../d", "b/c", ""],
            "normalize": ["/a/c/d/", "../b", "."],
            "parse": { "root": "/", "dir": "/home/u", "base": "app.config.js", "ext": ".js", "name": "app.config" },
            "format": "/tmp/x.js", "posix": "a/b"
        },
        "os": {
            "cpus": js::cpu_count(), "cpuHasTimes": "number", "hostname": v["os"]["hostname"].clone(),
            "homedir": std::env::var("HOME").unwrap(), "tmpdir": v["os"]["tmpdir"].clone(),
            "platform": "linux", "type": "Linux", "arch": v["os"]["arch"].clone(), "eol": "\n", "memOk": true
        },
        "fs": {
            "sameModule": true, "exists": [true, false],
            "readText": "{ \"web\": 8080, \"admin\": 8081 }",
            "readBufferParsed": { "web": 8080, "admin": 8081 },
            "readOptions": "string", "readdir": ["a.js", "b.js", "base.js", "ports.json"],
            "stat": [true, true, true],
            "enoent": ["ENOENT", "ENOENT: no such file or directory, open '/definitely/not/here'"]
        },
        "process": {
            "cwd": cwd, "argvIsArray": true, "platform": "linux",
            "home": std::env::var("HOME").unwrap(), "envIsObject": true
        },
        "url": ["/a/b c.js", "file:///a/b%20c.js"],
        "globals": ["string", "string", "object", "function"],
        "big": 12, "nan": null, "date": "1970-01-01T00:00:00.000Z"
    });
    assert_eq!(v, expected);
    assert!(!v["os"]["hostname"].as_str().unwrap().is_empty());
    #[cfg(target_arch = "x86_64")]
    assert_eq!(v["os"]["arch"], "x64");
}

#[test]
fn process_env_is_the_real_environment() {
    let (key, value) = std::env::vars().next().expect("some environment variable");
    let src = format!("module.exports = {{ v: process.env[{}] }}", json!(key));
    let v = load_str(&src, ConfigKind::Js, Path::new("virtual.config.js")).unwrap();
    assert_eq!(v, json!({ "v": value }));
}

#[test]
fn json5_yaml_toml() {
    assert_eq!(
        load("ecosystem.json"),
        json!({ "apps": [{ "name": "json-app", "script": "app.js", "instances": 2, "env": { "NODE_ENV": "production" } }] })
    );
    assert_eq!(
        load("ecosystem.yaml"),
        json!({ "apps": [
            { "name": "yaml-app", "script": "app.js", "instances": 4, "env": { "NODE_ENV": "production" }, "args": ["--port", "8080"] },
            { "name": "second", "script": "second.js" }
        ]})
    );
    assert_eq!(
        load("ecosystem.toml"),
        json!({ "apps": [
            { "name": "toml-app", "script": "app.js", "instances": 2, "max_memory_restart": "200M", "env": { "NODE_ENV": "production" } },
            { "name": "second", "script": "second.js" }
        ]})
    );
}

#[test]
fn json_that_is_really_a_js_expression_works_as_in_pm2() {
    assert_eq!(
        load("expression.json"),
        json!({ "apps": [{ "name": "expr", "script": "app.js", "instances": 2, "port": 3000 }] })
    );
}

#[test]
fn load_str_for_stdin() {
    let v = load_str(
        "{ apps: [{ name: 'from-stdin', script: 'a.js', }] }",
        ConfigKind::Json,
        Path::new("-"),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({ "apps": [{ "name": "from-stdin", "script": "a.js" }] })
    );
    let err = load_str("{ apps: [ }", ConfigKind::Json, Path::new("-")).unwrap_err();
    assert_eq!(err.to_string(), "-:1:11: JSON5: expected value");
    let v = load_str(
        "module.exports = { dir: __dirname, file: __filename }",
        ConfigKind::Js,
        Path::new("/srv/app/ecosystem.config.js"),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({ "dir": "/srv/app", "file": "/srv/app/ecosystem.config.js" })
    );
}

#[test]
fn non_json_values_do_not_crash() {
    let v = load_str(
        "module.exports = { f() {}, u: undefined, s: Symbol('x'), n: Infinity, big: 2n ** 70n, list: [undefined, () => 1] }",
        ConfigKind::Js,
        Path::new("odd.config.js"),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({ "n": null, "big": "1180591620717411303424", "list": [null, null] })
    );
    let v = load_str(
        "module.exports = () => 1",
        ConfigKind::Js,
        Path::new("fn.config.js"),
    )
    .unwrap();
    assert_eq!(v, Value::Null);
    assert_eq!(
        load_err("errors/cycle.config.js"),
        format!(
            "{}: TypeError: the exported value cannot be converted to JSON: circular reference",
            shown("errors/cycle.config.js")
        )
    );
}

#[test]
fn missing_file() {
    assert_eq!(
        load_err("nope.config.js"),
        format!(
            "cannot read {}: No such file or directory",
            shown("nope.config.js")
        )
    );
}

#[test]
fn js_syntax_errors_give_line_and_column() {
    assert_eq!(
        load_err("errors/syntax.config.js"),
        format!(
            "{}:3:17: SyntaxError: Unexpected identifier 'script'",
            shown("errors/syntax.config.js")
        )
    );
    // Line 1 is where the CommonJS wrapper sits: the column must still be the file's.
    assert_eq!(
        load_err("errors/syntax-line1.config.js"),
        format!(
            "{}:1:28: SyntaxError: unexpected token in expression: '}}'",
            shown("errors/syntax-line1.config.js")
        )
    );
    // A stray `}` would close the CommonJS wrapper: the error must still point at it.
    assert_eq!(
        load_err("errors/stray-brace.config.js"),
        format!(
            "{}:1:31: SyntaxError: unexpected token in expression: '}}'",
            shown("errors/stray-brace.config.js")
        )
    );
    assert_eq!(
        load_err("errors/syntax.config.mjs"),
        format!(
            "{}:2:38: SyntaxError: Unexpected identifier 'script'",
            shown("errors/syntax.config.mjs")
        )
    );
    // An error in a required file names that file.
    assert_eq!(
        load_err("errors/requires-broken.config.js"),
        format!(
            "{}:3:8: SyntaxError: invalid property name",
            shown("errors/broken-lib.js")
        )
    );
}

#[test]
fn data_syntax_errors_give_line_and_column() {
    assert_eq!(
        load_err("errors/bad.json"),
        format!("{}:3:19: JSON5: expected comma", shown("errors/bad.json"))
    );
    assert_eq!(
        load_err("errors/bad.yaml"),
        format!(
            "{}:4:9: YAML: did not find expected ',' or ']', while parsing a flow sequence",
            shown("errors/bad.yaml")
        )
    );
    assert_eq!(
        load_err("errors/bad.toml"),
        format!(
            "{}:3:10: TOML: string values must be quoted, expected literal string",
            shown("errors/bad.toml")
        )
    );
}

#[test]
fn runtime_exceptions() {
    assert_eq!(
        load_err("errors/throws.config.js"),
        format!(
            "{}:4:13: Error: PORT is not set",
            shown("errors/throws.config.js")
        )
    );
    assert_eq!(
        load_err("errors/throw-string.config.js"),
        format!(
            "{}: Uncaught 'plain string'",
            shown("errors/throw-string.config.js")
        )
    );
    assert_eq!(
        load_err("errors/throws.config.mjs"),
        format!(
            "{}:1:33: ReferenceError: nope is not defined",
            shown("errors/throws.config.mjs")
        )
    );
    assert_eq!(
        load_err("errors/missing-import.config.mjs"),
        format!(
            "{}: ReferenceError: Error resolving module './nope.mjs' from '{}': no such file",
            shown("errors/missing-import.config.mjs"),
            shown("errors/missing-import.config.mjs")
        )
    );
    assert_eq!(
        load_err("errors/missing-relative.config.js"),
        format!(
            "{}:1:18: Error: Cannot find module './does-not-exist'",
            shown("errors/missing-relative.config.js")
        )
    );
}

#[test]
fn names_are_shown_relative_to_the_given_path() {
    let names = Names {
        top_abs: PathBuf::from("/home/u/proj/conf/ecosystem.config.js"),
        top_display: "conf/ecosystem.config.js".into(),
    };
    assert_eq!(
        names.display("/home/u/proj/conf/ecosystem.config.js"),
        "conf/ecosystem.config.js"
    );
    assert_eq!(
        names.display("/home/u/proj/conf/lib/apps.js"),
        "conf/lib/apps.js"
    );
    assert_eq!(names.display("/elsewhere/x.js"), "/elsewhere/x.js");
    let bare = Names {
        top_abs: PathBuf::from("/p/ecosystem.config.js"),
        top_display: "ecosystem.config.js".into(),
    };
    assert_eq!(bare.display("/p/lib/a.js"), "lib/a.js");
}

#[test]
fn endless_loop_is_stopped() {
    let opts = LoadOptions {
        timeout: Duration::from_millis(300),
        ..no_node()
    };
    let t = Instant::now();
    let err = load_file_with(&fixture("errors/loop.config.js"), &opts).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        err.to_string(),
        format!(
            "{}: evaluation stopped after 0.3 s (endless loop?)",
            shown("errors/loop.config.js")
        )
    );
    assert_eq!(LoadOptions::default().timeout, Duration::from_secs(3));
}

#[test]
fn runaway_memory_is_stopped() {
    let opts = LoadOptions {
        memory_limit: 32 * 1024 * 1024,
        ..no_node()
    };
    let err = load_file_with(&fixture("errors/memory.config.js"), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: evaluation stopped: out of memory (limit 32 MB)",
            shown("errors/memory.config.js")
        )
    );
    assert_eq!(LoadOptions::default().memory_limit, 256 * 1024 * 1024);
}

#[test]
fn node_only_module_without_node() {
    assert_eq!(
        load_file_with(&fixture("dotenv/ecosystem.config.js"), &no_node())
            .unwrap_err()
            .to_string(),
        format!(
            "{}: require('dotenv') is not available without Node.js (install node, or remove it)",
            shown("dotenv/ecosystem.config.js")
        )
    );
    let nowhere = LoadOptions {
        path_env: None,
        ..no_node()
    };
    assert_eq!(
        load_file_with(&fixture("node-only/child.config.mjs"), &nowhere)
            .unwrap_err()
            .to_string(),
        format!(
            "{}: require('child_process') is not available without Node.js (install node, or remove it)",
            shown("node-only/child.config.mjs")
        )
    );
    assert_eq!(
        load_file_with(&fixture("errors/needs-package.config.mjs"), &no_node())
            .unwrap_err()
            .to_string(),
        format!(
            "{}: require('some-npm-package') is not available without Node.js (install node, or remove it)",
            shown("errors/needs-package.config.mjs")
        )
    );
    // A config that copes without the module still loads.
    assert_eq!(
        load_file_with(&fixture("dotenv/optional.config.js"), &no_node()).unwrap(),
        json!({ "apps": [{ "name": "optional", "script": "app.js", "env": { "EXTRA": "no-dotenv" } }] })
    );
}

#[test]
fn node_only_module_with_node() {
    let Some(opts) = node_on_path() else {
        eprintln!("node is not on PATH: skipping the node fallback test");
        return;
    };
    assert_eq!(
        load_file_with(&fixture("dotenv/ecosystem.config.js"), &opts).unwrap(),
        json!({ "apps": [{ "name": "with-dotenv", "script": "app.js", "env": { "FROM_DOTENV": "loaded-by-node" } }] })
    );
    assert_eq!(
        load_file_with(&fixture("dotenv/optional.config.js"), &opts).unwrap(),
        json!({ "apps": [{ "name": "optional", "script": "app.js", "env": { "EXTRA": "loaded-by-node" } }] })
    );
    // Node is used, and its own error is passed on when it fails too.
    let err = load_file_with(&fixture("errors/needs-package.config.mjs"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: evaluating with node failed: Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'some-npm-package'",
            shown("errors/needs-package.config.mjs")
        )),
        "{err}"
    );
    assert_eq!(
        load_file_with(&fixture("node-only/child.config.mjs"), &opts).unwrap(),
        json!({ "apps": [{ "name": "mjs-child", "script": "app.js", "env": { "WHO": "from-node" } }] })
    );
}

#[test]
fn apps_of_shapes() {
    let app = json!({ "name": "a", "script": "a.js" });
    let one = vec![app.as_object().unwrap().clone()];
    assert_eq!(apps_of(&json!({ "apps": [app.clone()] })).unwrap(), one);
    assert_eq!(apps_of(&json!({ "apps": app.clone() })).unwrap(), one);
    assert_eq!(apps_of(&json!({ "pm2": [app.clone()] })).unwrap(), one);
    assert_eq!(apps_of(&app).unwrap(), one);
    assert_eq!(apps_of(&json!([app.clone()])).unwrap(), one);
    assert_eq!(apps_of(&json!({ "apps": [] })).unwrap(), vec![]);
    assert_eq!(
        apps_of(&json!({ "deploy": {} })).unwrap_err().to_string(),
        "no `apps` in the config (expected `apps: [...]`, an app object with `script`, or a list of apps)"
    );
    assert_eq!(
        apps_of(&json!({ "apps": "api" }))
            .unwrap_err()
            .with_file(Path::new("ecosystem.config.js"))
            .to_string(),
        "ecosystem.config.js: `apps` must be a list of apps or an app object, not a string"
    );
    assert_eq!(
        apps_of(&json!({ "apps": [app, 3] }))
            .unwrap_err()
            .to_string(),
        "apps[1] must be an object, not a number"
    );
    assert_eq!(
        apps_of(&Value::Null).unwrap_err().to_string(),
        "the config exports null, not an object with `apps`"
    );
}

#[test]
fn twenty_app_js_config_is_fast() {
    let path = fixture("twenty-apps.config.js");
    load_file(&path).unwrap(); // warm the page cache
    let runs = 10;
    let t = Instant::now();
    for _ in 0..runs {
        let v = load_file(&path).unwrap();
        assert_eq!(apps_of(&v).unwrap().len(), 20);
    }
    eprintln!(
        "twenty-apps.config.js: {:?} per load (mean of {runs})",
        t.elapsed() / runs
    );
}
