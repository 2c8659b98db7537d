//! `pmr serve [path] [port]` (PM2's `serve`/`expose`): starts an app named
//! `static-page-server-<port>` that is pmr itself running `__serve` (see `crate::serve`),
//! configured by the `PM2_SERVE_*` variables PM2 sets. Everything is checked before the daemon
//! is asked: a bad port, path or half-given basic auth starts nothing.

use super::app_spec::spec_from_options;
use super::{call, Out};
use crate::client::Client;
use crate::serve::config::{parse_port, DEFAULT_PORT};
use anyhow::{bail, Context, Result};
use clap::Args;
use pmr_config::app::BuildCtx;
use pmr_core::paths::Home;
use pmr_core::protocol::{Request, Response, SpecFields, SpecPatch, StartRequest};
use serde_json::{json, Map};

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Directory to serve (default: the current directory).
    pub path: Option<String>,
    /// Port to listen on (default 8080).
    pub port: Option<String>,
    /// Port to listen on, as a flag.
    #[arg(long = "port", id = "port_flag", value_name = "PORT")]
    pub port_flag: Option<String>,
    /// Serve index.html for paths that match no file (single-page apps).
    #[arg(long)]
    pub spa: bool,
    /// List directories that have no index.html.
    #[arg(long)]
    pub ftp: bool,
    /// Ask for this username (with --basic-auth-password).
    #[arg(long = "basic-auth-username", value_name = "USERNAME")]
    pub basic_auth_username: Option<String>,
    /// Ask for this password (with --basic-auth-username).
    #[arg(long = "basic-auth-password", value_name = "PASSWORD")]
    pub basic_auth_password: Option<String>,
    /// PM2 Plus front-end monitoring: not offered by pmr (accepted, ignored).
    #[arg(long, hide = true)]
    pub monitor: Option<String>,
    /// App name (default: static-page-server-<port>).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
}

/// `__serve`: what the app runs. Its settings come from the environment; the arguments are
/// `Serve.js`'s optional fallbacks.
#[derive(Args, Debug, Default)]
pub struct InternalServeArgs {
    /// [path] [port] [host]
    pub args: Vec<String>,
}

pub fn run_internal(a: InternalServeArgs) -> i32 {
    let env = std::env::vars().collect();
    let result = crate::serve::Config::from_env(&env, &a.args).and_then(crate::serve::run);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pmr serve: {e:#}");
            1
        }
    }
}

pub fn serve(home: &Home, out: &Out, a: ServeArgs) -> Result<i32> {
    // As PM2: the CLI's PM2_SERVE_PORT / PM2_SERVE_PATH win over the arguments.
    let env_var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let port = match env_var("PM2_SERVE_PORT").or(a.port).or(a.port_flag) {
        Some(p) => parse_port(&p)?,
        None => DEFAULT_PORT,
    };
    let ctx = BuildCtx::from_process(None);
    let path = ctx
        .base_dir
        .join(env_var("PM2_SERVE_PATH").or(a.path).unwrap_or(".".into()));
    let path =
        std::fs::canonicalize(&path).with_context(|| format!("cannot serve {}", path.display()))?;
    if !path.is_dir() {
        bail!("cannot serve {}: not a directory", path.display());
    }
    let mut env = Map::new();
    env.insert("PM2_SERVE_PORT".into(), json!(port.to_string()));
    env.insert("PM2_SERVE_PATH".into(), json!(path.to_string_lossy()));
    env.insert("PM2_SERVE_SPA".into(), json!(a.spa.to_string()));
    env.insert("PM2_SERVE_FTP".into(), json!(a.ftp.to_string()));
    match (&a.basic_auth_username, &a.basic_auth_password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
            crate::serve::config::check_basic_auth(u)?;
            env.insert("PM2_SERVE_BASIC_AUTH".into(), json!("true"));
            env.insert("PM2_SERVE_BASIC_AUTH_USERNAME".into(), json!(u));
            env.insert("PM2_SERVE_BASIC_AUTH_PASSWORD".into(), json!(p));
        }
        (None, None) => {}
        // PM2 silently serves without auth then: the files the user meant to protect.
        _ => bail!("--basic-auth-username and --basic-auth-password go together (both non-empty)"),
    }
    if a.monitor.is_some() && !out.silent {
        eprintln!("[PMR] --monitor: PM2 Plus front-end monitoring is not offered by pmr; ignored");
    }
    let exe = std::env::current_exe().context("cannot find pmr's own executable")?;
    let mut opts = Map::new();
    opts.insert(
        "name".into(),
        json!(a
            .name
            .unwrap_or_else(|| format!("static-page-server-{port}"))),
    );
    opts.insert("script".into(), json!(exe.to_string_lossy()));
    opts.insert("interpreter".into(), json!("none"));
    opts.insert("args".into(), json!(["__serve"]));
    opts.insert("cwd".into(), json!(path.to_string_lossy()));
    opts.insert("env".into(), serde_json::Value::Object(env));
    let spec = spec_from_options(&opts, &ctx)?;
    // Serving the same port again after a stop restarts that app: with the settings given now
    // (path, --spa, auth...), not the old ones.
    let patch = Some(SpecPatch {
        fields: Box::new(SpecFields {
            env: Some(spec.env.clone()),
            env_json: Some(spec.env_json.clone()),
            cwd: Some(spec.cwd.clone()),
            script: Some(spec.script.clone()),
            args: Some(spec.args.clone()),
            ..SpecFields::default()
        }),
        ..SpecPatch::default()
    });

    let mut client = Client::connect(home)?;
    match call(
        &mut client,
        &Request::Start(StartRequest {
            apps: vec![spec],
            force: false,
            patch,
        }),
    )? {
        Response::Started { .. } => {}
        other => bail!("unexpected reply from the daemon: {other:?}"),
    }
    out.info(format!("Serving {} on port {port}", path.display()));
    super::show::print_table(&mut client, out)?;
    Ok(0)
}
