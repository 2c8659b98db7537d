use super::*;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A package with `scripts`, a `next`-like bin (shebang, no extension, linked from .bin), a
/// shell-script bin, and server files.
fn package(tag: &str, scripts: serde_json::Value) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pmr-pkg-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let w = |rel: &str, text: &str| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "package.json",
        &serde_json::json!({"name": "app", "version": "1.2.3", "scripts": scripts}).to_string(),
    );
    w("server.js", "");
    w("bin/www", "#!/usr/bin/env node\n");
    w("bin/sh", "#!/bin/sh\n");
    w("web/main.js", "");
    w("web/package.json", r#"{"main": "main.js"}"#);
    w("dist/main.js", "");
    w(
        "node_modules/next/package.json",
        r#"{"name":"next","bin":{"next":"dist/bin/next"}}"#,
    );
    w("node_modules/next/dist/bin/next", "#!/usr/bin/env node\n");
    w(
        "node_modules/flagged/package.json",
        r#"{"name":"flagged","bin":"cli"}"#,
    );
    w(
        "node_modules/flagged/cli",
        "#!/usr/bin/env -S node --enable-source-maps\n",
    );
    w(
        "node_modules/shelltool/package.json",
        r#"{"name":"shelltool","bin":"run.sh"}"#,
    );
    w("node_modules/shelltool/run.sh", "#!/bin/sh\necho hi\n");
    std::fs::create_dir_all(d.join("node_modules/.bin")).unwrap();
    for (tool, target) in [
        ("next", "../next/dist/bin/next"),
        ("shelltool", "../shelltool/run.sh"),
    ] {
        std::os::unix::fs::symlink(target, d.join("node_modules/.bin").join(tool)).unwrap();
    }
    d
}

fn real(p: PathBuf) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

#[test]
fn script_names() {
    assert_eq!(script_name("npm", &args(&["start"])).unwrap().0, "start");
    assert_eq!(
        script_name("npm", &args(&["run", "dev", "--", "-p", "1"])).unwrap(),
        ("dev".into(), args(&["-p", "1"]))
    );
    assert_eq!(script_name("yarn", &args(&["dev"])).unwrap().0, "dev");
    assert!(script_name("npm", &args(&["install"])).is_err());
    assert!(script_name("npm", &[]).is_err());
}

#[test]
fn resolves_the_fixture_packages() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .canonicalize()
        .unwrap();
    let e0 = BTreeMap::new();
    let r = resolve("npm", &args(&["start"]), &fx.join("npmapp"), &e0).unwrap();
    assert_eq!(r.script, fx.join("npmapp/server.js"));
    assert_eq!(r.env["npm_lifecycle_event"], "start");
    let r = resolve(
        "/usr/bin/yarn",
        &args(&["start", "--extra"]),
        &fx.join("pkgapp"),
        &e0,
    )
    .unwrap();
    assert!(
        r.script.ends_with("node_modules/fakeserve/bin/serve.js"),
        "{r:?}"
    );
    assert_eq!(r.args, args(&["--mode", "cluster", "--extra"]));
    assert_eq!(r.env["GREETING"], "hello");
    let e = resolve("npm", &args(&["run", "shelly"]), &fx.join("pkgapp"), &e0).unwrap_err();
    assert!(e.contains("shell features"), "{e}");
    let e = resolve("npm", &args(&["run", "nope"]), &fx.join("pkgapp"), &e0).unwrap_err();
    assert!(e.contains("no script \"nope\""), "{e}");
    let e = resolve(
        "npm",
        &args(&["run", "missing-tool"]),
        &fx.join("pkgapp"),
        &e0,
    )
    .unwrap_err();
    assert!(e.contains("not in node_modules/.bin"), "{e}");
}

#[test]
fn every_supported_form() {
    let d = package(
        "forms",
        serde_json::json!({
            "start": "next start -p ${PORT:-3100}",
            "plain": "next start -p $PORT --hostname ${HOST}",
            "dash": "next start -p ${PORT-4000}",
            "assign": "NODE_ENV=production HOST=0.0.0.0 node dist/main.js --x",
            "crossenv": "cross-env NODE_ENV=production PORT=5000 node server",
            "crossshell": "cross-env-shell NODE_ENV=production 'node server.js $NODE_ENV'",
            "flags": "node -r dotenv/config --max-old-space-size=512 --enable-source-maps --require ./a.js --import tsx server.js a b",
            "dir": "node web",
            "nested": "npm run start:prod -- --keep",
            "start:prod": "NODE_ENV=production yarn flags",
            "pnpmrun": "pnpm run plain",
            "yarnbin": "yarn next start",
            "npx": "npx --yes next start",
            "cd": "cd web && node main.js",
            "exec": "exec node server.js",
            "shebangflags": "flagged serve",
            "path": "./bin/www --x",
            "envprefix": "env NODE_ENV=test node server.js",
        }),
    );
    let next = real(d.join("node_modules/next/dist/bin/next"));
    let go = |a: &[&str], e: &[(&str, &str)]| resolve("yarn", &args(a), &d, &env(e)).unwrap();

    let r = go(&["start"], &[]);
    assert_eq!(
        (r.script.clone(), r.args.clone()),
        (next.clone(), args(&["start", "-p", "3100"]))
    );
    assert!(r.node_args.is_empty() && r.cwd.is_none());
    let r = resolve("npm", &args(&["start"]), &d, &env(&[("PORT", "3200")])).unwrap();
    assert_eq!(r.args, args(&["start", "-p", "3200"]));
    let r = go(&["plain"], &[("PORT", "1"), ("HOST", "h")]);
    assert_eq!(r.args, args(&["start", "-p", "1", "--hostname", "h"]));
    let r = go(&["run", "dash"], &[("PORT", "")]);
    assert_eq!(r.args, args(&["start", "-p"]), "${{X-d}} keeps an empty X");
    let r = go(&["dash"], &[]);
    assert_eq!(r.args, args(&["start", "-p", "4000"]));

    let r = go(&["assign"], &[]);
    assert_eq!(r.script, d.join("dist/main.js"));
    assert_eq!(
        (r.env["NODE_ENV"].as_str(), r.env["HOST"].as_str()),
        ("production", "0.0.0.0")
    );
    assert_eq!(r.args, args(&["--x"]));
    let r = go(&["crossenv"], &[]);
    assert_eq!(r.script, d.join("server.js"));
    assert_eq!(r.env["PORT"], "5000");
    let r = go(&["crossshell"], &[]);
    assert_eq!(
        (r.script.clone(), r.args.clone()),
        (d.join("server.js"), args(&["production"]))
    );

    let r = go(&["flags"], &[]);
    assert_eq!(r.script, d.join("server.js"));
    assert_eq!(
        r.node_args,
        args(&[
            "-r",
            "dotenv/config",
            "--max-old-space-size=512",
            "--enable-source-maps",
            "--require",
            "./a.js",
            "--import",
            "tsx"
        ])
    );
    assert_eq!(r.args, args(&["a", "b"]));
    assert_eq!(go(&["dir"], &[]).script, d.join("web/main.js"));

    // npm run → yarn → node: env of every level, innermost lifecycle name, args passed on.
    let r = resolve(
        "npm",
        &args(&["run", "nested", "--", "--last"]),
        &d,
        &env(&[]),
    )
    .unwrap();
    assert_eq!(r.script, d.join("server.js"));
    assert_eq!(r.args, args(&["a", "b", "--keep", "--last"]));
    assert_eq!(r.env["NODE_ENV"], "production");
    assert_eq!(r.env["npm_lifecycle_event"], "flags");
    assert_eq!(r.env["npm_package_version"], "1.2.3");
    assert_eq!(go(&["pnpmrun"], &[("PORT", "7")]).args[2], "7");

    let r = go(&["yarnbin"], &[]);
    assert_eq!(
        (r.script.clone(), r.args.clone()),
        (next.clone(), args(&["start"]))
    );
    assert_eq!(go(&["npx"], &[]).script, next);
    let r = go(&["cd"], &[]);
    assert_eq!(
        (r.script.clone(), r.cwd.clone()),
        (d.join("web/main.js"), Some(d.join("web")))
    );
    assert_eq!(go(&["exec"], &[]).script, d.join("server.js"));
    let r = go(&["shebangflags"], &[]);
    assert!(r.script.ends_with("flagged/cli"), "{r:?}");
    assert_eq!(r.node_args, args(&["--enable-source-maps"]));
    let r = go(&["path"], &[]);
    assert_eq!(
        (r.script.clone(), r.args.clone()),
        (d.join("./bin/www"), args(&["--x"]))
    );
    let r = go(&["envprefix"], &[]);
    assert_eq!(
        (r.script.clone(), r.env["NODE_ENV"].as_str()),
        (d.join("server.js"), "test")
    );
    let r = resolve("pnpm", &args(&["start"]), &d, &env(&[])).unwrap();
    assert_eq!(r.script, next);
    // The bin is found through the package's `bin` field when .bin has no entry.
    assert!(!d.join("node_modules/.bin/flagged").exists());
}

#[test]
fn every_refusal() {
    let d = package(
        "errors",
        serde_json::json!({
            "pipe": "next start | tee log",
            "chain": "npm run build && next start",
            "or": "next start || true",
            "semi": "next build; next start",
            "bg": "next start &",
            "redir": "next start > out.log",
            "sub": "(next start)",
            "subst": "next start -p $(cat port)",
            "ticks": "next start -p `cat port`",
            "shell": "shelltool",
            "loop1": "npm run loop2",
            "loop2": "yarn loop1",
            "eval": "node -e 'require(1)'",
            "nofile": "node --enable-source-maps",
            "nothing": "NODE_ENV=x",
            "missing": "node nope.js",
            "badcd": "cd nowhere && node server.js",
            "shpath": "./bin/sh",
            "nopath": "./bin/none",
        }),
    );
    let e0 = BTreeMap::new();
    let err = |name: &str| resolve("npm", &args(&["run", name]), &d, &e0).unwrap_err();
    for (name, construct) in [
        ("pipe", "a pipe `|`"),
        ("chain", "`&&` chaining more than one program"),
        ("or", "`||`"),
        ("semi", "`;`"),
        ("bg", "a background `&`"),
        ("redir", "a redirection `>`"),
        ("sub", "a subshell `( )`"),
        ("subst", "command substitution `$(...)`"),
        ("ticks", "command substitution with backticks"),
    ] {
        let e = err(name);
        assert!(
            e.contains(&format!("uses shell features ({construct})"))
                && e.contains("script: 'node_modules/.bin/next', args: 'start")
                && !e.contains('\n'),
            "{name}: {e}"
        );
    }
    let e = err("shell");
    assert!(
        e.contains("shelltool/run.sh is not a Node.js program (its first line is `#!/bin/sh`"),
        "{e}"
    );
    let e = err("loop1");
    assert!(e.contains("more than 8 deep (loop1 → loop2 → loop1"), "{e}");
    assert!(err("eval").contains("runs `node -e`"));
    assert!(err("nofile").contains("runs node without a file"));
    assert!(err("nothing").contains("runs no program"));
    assert!(err("missing").contains("nope.js does not exist"));
    assert!(err("badcd").contains("nowhere is not a directory"));
    assert!(
        err("shpath").contains("bin/sh is not a Node.js program (its first line is `#!/bin/sh`")
    );
    assert!(err("nopath").contains("bin/none does not exist"));
    assert!(err("absent").contains("has no script \"absent\""));
    let e = resolve("npm", &args(&["start"]), &d.join("dist"), &e0).unwrap_err();
    assert!(
        e.starts_with("cannot read ") && e.contains("dist/package.json"),
        "{e}"
    );
}
