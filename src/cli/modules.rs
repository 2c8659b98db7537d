//! `pmr install|uninstall|module:update`: PM2 modules, installed by the real `npm` into
//! `$PMR_HOME/modules/<name>` (PM2's layout), their package's `config` seeded into `conf.json`,
//! and started as apps marked `pmx_module` (a daemon starts them again when it starts:
//! `crates/daemon/src/modules.rs`). An install is staged in a folder of its own and moved into
//! place only once npm succeeded and the package is a module pmr can run, so a failure leaves
//! `modules/`, `conf.json` and the apps as they were.

use super::conf_file;
use super::Out;
use crate::client::Client;
use anyhow::{bail, Context, Result};
use pmr_config::app::BuildCtx;
use pmr_config::module::{self, MODULE_DB};
use pmr_core::paths::Home;
use pmr_core::protocol::{Action, ActionRequest, ApplyRequest, Request, StartRequest};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the user asked to install, made absolute when it is a path (npm runs elsewhere).
struct Target {
    /// What npm installs: a package spec, or the absolute path of a folder or tarball.
    spec: String,
    /// A folder: copied (`--install-links`) rather than linked, so the module does not break
    /// when its source moves, and its own dependencies are installed.
    folder: bool,
}

/// `pmr install <npm name | name@version | tarball | folder>` (and `module:update`, which is
/// the same in PM2): install or replace the module and start it.
pub fn install(home: &Home, out: &Out, what: &str, tarball: bool) -> Result<i32> {
    let target = target(what, tarball)?;
    let npm = find_npm().with_context(|| {
        format!("cannot install {what}: npm was not found in PATH (pmr installs modules with npm)")
    })?;
    let conf = conf_file::read(home)?;
    // Its exact bytes (or absence), put back if the install fails once it has been written.
    let conf_before = std::fs::read(home.conf_file()).ok();
    std::fs::create_dir_all(&home.root)
        .with_context(|| format!("cannot create {}", home.root.display()))?;
    let staging = Staging::new(
        home.root
            .join(format!(".module-install-{}", std::process::id())),
    )?;

    out.info(format!("Calling npm to install {what} ..."));
    let mut cmd = Command::new(&npm);
    cmd.args([
        "install",
        &target.spec,
        "--loglevel=error",
        "--no-audit",
        "--no-fund",
    ])
    .args(target.folder.then_some("--install-links"))
    .arg("--prefix")
    .arg(&staging.0)
    .current_dir(&staging.0)
    .stdin(Stdio::null());
    if out.silent {
        cmd.stdout(Stdio::null());
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot install {what}: cannot run {}", npm.display()))?;
    if !status.success() {
        bail!("cannot install {what}: npm install failed ({status}); nothing was installed");
    }

    let name = installed_name(&staging.0)
        .with_context(|| format!("cannot install {what}: npm installed no package"))?;
    if !module::valid_name(&name) {
        bail!("cannot install {what}: {name:?} is not a package name pmr can use as a folder");
    }
    let pkg = module::read_package(&module::package_dir(&staging.0, &name))
        .map_err(|e| anyhow::anyhow!("cannot install {what}: {e}"))?;
    if let Some(why) = module::unfit(&pkg) {
        bail!("cannot install {what} ({name}): {why}; nothing was installed");
    }
    // Checked before anything moves: the module's apps build (script present, options valid).
    let seeded = seed(&conf, &name, &pkg);
    module_specs(&module::package_dir(&staging.0, &name), &name, &seeded)
        .map_err(|e| anyhow::anyhow!("cannot install {what}: {e}; nothing was installed"))?;

    let mut client = Client::connect(home)?;
    // Answered once a daemon that is just starting has started the modules `conf.json`
    // lists: before this one is listed there, so that only this command starts it.
    super::call(&mut client, &Request::Ping)?;
    let prefix = module::prefix(&home.modules_dir(), &name);
    let old = home
        .root
        .join(format!(".module-old-{}", std::process::id()));
    let replacing = prefix.exists();
    let modules_existed = home.modules_dir().exists();
    if replacing {
        out.info(format!("Module {name} already installed: updating"));
        delete_apps(&mut client, &name)?;
        std::fs::rename(&prefix, &old)
            .with_context(|| format!("cannot move {} aside", prefix.display()))?;
    }
    let done = (|| -> Result<()> {
        if let Some(parent) = prefix.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::rename(&staging.0, &prefix)
            .with_context(|| format!("cannot move the module to {}", prefix.display()))?;
        conf_file::write(home, &seeded)?;
        start_module(&mut client, home, &name, &seeded)
    })();
    if let Err(e) = done {
        // Back to how it was: the previous version (if any) restarted, the settings unchanged.
        let _ = delete_apps(&mut client, &name);
        let _ = std::fs::remove_dir_all(&prefix);
        if !modules_existed {
            // Only if empty: a scoped module's `@scope/` folder, then `modules/` itself.
            if let Some(scope) = prefix.parent().filter(|p| *p != home.modules_dir()) {
                let _ = std::fs::remove_dir(scope);
            }
            let _ = std::fs::remove_dir(home.modules_dir());
        }
        let _ = match &conf_before {
            Some(bytes) => {
                pmr_core::atomic_file::replace_private(&home.conf_file(), |w| w.write_all(bytes))
            }
            None => std::fs::remove_file(home.conf_file()),
        };
        if replacing && std::fs::rename(&old, &prefix).is_ok() {
            let _ = start_module(&mut client, home, &name, &conf);
        }
        return Err(e.context(format!("cannot install {what}; nothing was changed")));
    }
    if replacing {
        let _ = std::fs::remove_dir_all(&old);
    }
    out.info(format!("Module {name} installed and started"));
    if name == pmr_core::conf::PM2_SECTION {
        // The real module rotates from now on: the built-in rotation steps aside.
        conf_file::apply(home)?;
        out.info("pmr's built-in log rotation is off while pm2-logrotate is installed");
    }
    let arg0 = pmr_core::personality::current().arg0();
    out.info(format!(
        "Its settings: `{arg0} get {name}`; change one with `{arg0} set {name}:<key> <value>`"
    ));
    super::show::print_table(&mut client, out)?;
    Ok(0)
}

/// `pmr uninstall <name>`: delete its app, forget it in `conf.json` (its settings stay, as
/// PM2's), remove its folder.
pub fn uninstall(home: &Home, out: &Out, name: &str) -> Result<i32> {
    let mut conf = conf_file::read(home)?;
    let prefix = module::prefix(&home.modules_dir(), name);
    let listed = module::installed(&conf).iter().any(|n| n == name);
    if !module::valid_name(name) || (!listed && !prefix.is_dir()) {
        if name == pmr_core::conf::CONF_SECTION {
            bail!(
                "Unknown module {name}: log rotation is built in (turn it off with `{} set {}:max_size 0`)",
                pmr_core::personality::current().arg0(),
                pmr_core::conf::CONF_SECTION
            );
        }
        bail!("Unknown module {name}: it is not installed");
    }
    out.info(format!("Uninstalling module {name}"));
    // A daemon is started if none runs (as PM2's CLI does): one that died may have left the
    // module in its table, and the next daemon would bring it back without its folder.
    let mut client = Client::connect(home)?;
    delete_apps(&mut client, name)?;
    if listed {
        if let Some(db) = conf.get_mut(MODULE_DB).and_then(Value::as_object_mut) {
            db.remove(name);
        }
        conf_file::write(home, &conf)?;
    }
    if prefix.exists() {
        std::fs::remove_dir_all(&prefix)
            .with_context(|| format!("cannot remove {}", prefix.display()))?;
        if name.starts_with('@') {
            // The `@scope/` folder, if this was its last module.
            let _ = prefix.parent().map(std::fs::remove_dir);
        }
    }
    out.info(format!("Module {name} uninstalled"));
    if name == pmr_core::conf::PM2_SECTION {
        conf_file::apply(home)?;
        out.info("pmr's built-in log rotation is on again");
    }
    Ok(0)
}

/// After `pmr set <name>:<key>`: an installed module restarts with its new settings, as PM2's
/// `set` restarts the app named so. Not installed: nothing to do.
pub fn restart_if_module(home: &Home, out: &Out, name: &str) -> Result<()> {
    let conf = conf_file::read(home)?;
    if !module::installed(&conf).iter().any(|n| n == name) {
        return Ok(());
    }
    let Some(mut client) = Client::connect_existing(home) else {
        return Ok(());
    };
    let dir = module::package_dir(&module::prefix(&home.modules_dir(), name), name);
    let specs = module_specs(&dir, name, &conf)?;
    super::call(
        &mut client,
        &Request::Apply(ApplyRequest {
            apps: specs,
            reload: false,
        }),
    )?;
    out.info(format!("Module {name} restarted"));
    Ok(())
}

fn start_module(
    client: &mut Client,
    home: &Home,
    name: &str,
    conf: &Map<String, Value>,
) -> Result<()> {
    let dir = module::package_dir(&module::prefix(&home.modules_dir(), name), name);
    let specs = module_specs(&dir, name, conf)?;
    super::call(
        client,
        &Request::Start(StartRequest {
            apps: specs,
            force: false,
            patch: None,
        }),
    )?;
    Ok(())
}

fn module_specs(
    dir: &Path,
    name: &str,
    conf: &Map<String, Value>,
) -> Result<Vec<pmr_core::spec::AppSpec>> {
    let ctx = BuildCtx {
        module_conf: conf.clone(),
        ..BuildCtx::from_process(None)
    };
    module::specs(dir, name, &ctx, |w| {
        eprintln!("{} {w}", pmr_core::personality::warn())
    })
    .map_err(anyhow::Error::msg)
}

/// Delete the module apps named `name` (a user's app of that name is left alone).
fn delete_apps(client: &mut Client, name: &str) -> Result<()> {
    let ids: Vec<u32> = super::list(client)?
        .iter()
        .filter(|p| p.spec.pmx_module && p.spec.name == name)
        .map(|p| p.pm_id)
        .collect();
    if !ids.is_empty() {
        super::call(
            client,
            &Request::Action(ActionRequest {
                action: Action::Delete,
                ids,
                update_env: None,
                parallel: None,
                patch: None,
            }),
        )?;
    }
    Ok(())
}

/// `conf` with the module listed in `module-db-v2` and the package's `config` under its name,
/// keys the user already set kept (PM2's `setSyncIfNotExist`).
fn seed(conf: &Map<String, Value>, name: &str, pkg: &Map<String, Value>) -> Map<String, Value> {
    let mut conf = conf.clone();
    let db = conf
        .entry(MODULE_DB)
        .or_insert_with(|| Value::Object(Map::new()));
    if !db.is_object() {
        *db = Value::Object(Map::new());
    }
    if let Some(db) = db.as_object_mut() {
        db.entry(name).or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(Value::Object(defaults)) = pkg.get("config") {
        let section = conf
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        if !section.is_object() {
            *section = Value::Object(Map::new());
        }
        if let Some(section) = section.as_object_mut() {
            for (k, v) in defaults {
                section.entry(k).or_insert_with(|| v.clone());
            }
        }
    }
    conf
}

/// A path (it exists, or is written as one) is installed as a folder or tarball; anything
/// else is an npm spec, which npm checks.
fn target(what: &str, tarball: bool) -> Result<Target> {
    let looks_like_path = what.starts_with('/')
        || what.starts_with("./")
        || what.starts_with("../")
        || what == "."
        || what == ".."
        || tarball
        || what.ends_with(".tgz")
        || what.ends_with(".tar.gz");
    let path = Path::new(what);
    if !looks_like_path && !path.exists() {
        if what.is_empty() || what.starts_with('-') {
            bail!("cannot install {what:?}: not a package name");
        }
        return Ok(Target {
            spec: what.into(),
            folder: false,
        });
    }
    let abs =
        std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("cannot install {what}: {e}"))?;
    if abs.is_dir() {
        let pkg = abs.join("package.json");
        if !pkg.is_file() {
            bail!(
                "cannot install {what}: {} has no package.json (a module is an npm package)",
                abs.display()
            );
        }
        let pkg = module::read_package(&abs)
            .map_err(|e| anyhow::anyhow!("cannot install {what}: {e}"))?;
        // Before npm: a package with nothing to start is refused before its dependencies download.
        if let Some(why) = module::unfit(&pkg) {
            let name = pkg.get("name").and_then(Value::as_str).unwrap_or("?");
            bail!("cannot install {what} ({name}): {why}; nothing was installed");
        }
    }
    Ok(Target {
        folder: abs.is_dir(),
        spec: abs.to_string_lossy().into_owned(),
    })
}

/// `npm` on PATH, as a shell would find it (never through a shell).
fn find_npm() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("npm"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The package npm installed into the empty prefix `staging`: the one dependency its
/// `package.json` now lists.
fn installed_name(staging: &Path) -> Option<String> {
    let pkg = module::read_package(staging).ok()?;
    let deps = pkg.get("dependencies")?.as_object()?;
    match deps.keys().collect::<Vec<_>>()[..] {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The staging folder, removed whatever happens (moved into place on success).
struct Staging(PathBuf);

impl Staging {
    fn new(path: PathBuf) -> Result<Staging> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Staging(path))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seeding_keeps_what_the_user_set() {
        let conf = json!({"mod": {"a": "user"}, "module-db-v2": {"other": {}}});
        let pkg = json!({"config": {"a": "default", "b": false}});
        let got = seed(conf.as_object().unwrap(), "mod", pkg.as_object().unwrap());
        assert_eq!(
            Value::Object(got),
            json!({"mod": {"a": "user", "b": false}, "module-db-v2": {"other": {}, "mod": {}}})
        );
    }
}
