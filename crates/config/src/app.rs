//! App options → a complete [`AppSpec`], in stages: where the app runs, its environment, what
//! runs (script, interpreter, arguments), its name, how it scales, then its logs, restart
//! policy, watching and the rest. Each stage reads its group of the typed options
//! ([`RawApp`]) and gives what the spec needs; defaults are filled in here. Everything that
//! depends on the user's machine (files, PATH, CPUs) is resolved here, in the CLI, so the daemon
//! gets nothing to guess.

mod ctx;
mod env;
mod interpreter;
mod logs;
mod paths;
mod policy;
mod program;
mod scaling;
mod watching;

pub use ctx::BuildCtx;
pub use interpreter::which;

use crate::raw_app::{IdentityOpts, RawApp};
use env::EnvStage;
use pmr_core::spec::{AppSpec, ExecMode};
use serde_json::{Map, Value};

/// Build the spec of one app. `opts` uses canonical option names and types (as
/// [`crate::options::normalize_app`] leaves them).
pub fn build_spec(opts: &Map<String, Value>, ctx: &BuildCtx) -> Result<AppSpec, String> {
    build(RawApp::from_options(opts)?, ctx)
}

/// Build the spec of one app from its typed options. The stages run in the order their errors
/// are reported in: the script, `cwd`, the environment's blocks, the program, `listen`, the
/// watched paths.
pub fn build(raw: RawApp, ctx: &BuildCtx) -> Result<AppSpec, String> {
    let env_block = ctx
        .env_name
        .as_deref()
        .and_then(|e| raw.env_block(e))
        .cloned();
    let RawApp {
        mut program,
        identity,
        scaling,
        environment,
        logs,
        policy,
        watching,
        runtime,
        mut extra,
    } = raw;
    let script = program.script.take().ok_or("missing \"script\"")?;
    let cwd = paths::cwd(program.cwd.as_deref(), ctx)?;
    let env = EnvStage::start(environment, env_block.as_ref(), ctx)?;
    let cluster = program::Cluster {
        wanted: scaling.wants_cluster(),
        listen: scaling.listen.is_some(),
    };
    let program = program::resolve(script, program, cwd, cluster, env.vars(), ctx)?;
    let (name, namespace) = identify(identity, program.default_name.clone(), ctx);
    let scaling = scaling::resolve(
        scaling,
        program.interpreter.as_deref(),
        &program.script,
        ctx.cpus,
    )?;
    let env = env.finish(&name, program.env, ctx);
    let merge_default = scaling.exec_mode == ExecMode::Fork && !scaling.instances_given;
    let logs = logs::resolve(logs, &program.cwd, merge_default);
    let policy = policy::resolve(policy);
    let watching = watching::resolve(watching);
    if logs.time {
        // PM2 keeps `time: true` in the process's options (`jlist` shows it).
        extra.insert("time".into(), Value::Bool(true));
    }

    let spec = AppSpec {
        name,
        namespace,
        script: program.script,
        args: program.args,
        interpreter: program.interpreter,
        interpreter_args: program.interpreter_args,
        cwd: program.cwd.to_string_lossy().into_owned(),
        exec_mode: scaling.exec_mode,
        instances: scaling.instances,
        env: env.env.into(),
        env_json: env.json,
        autorestart: policy.autorestart,
        autostart: policy.autostart,
        restart_delay: policy.restart_delay,
        exp_backoff_restart_delay: policy.exp_backoff_restart_delay,
        max_restarts: policy.max_restarts,
        min_uptime: policy.min_uptime,
        stop_exit_codes: policy.stop_exit_codes,
        kill_timeout: policy.kill_timeout,
        listen_timeout: policy.listen_timeout,
        wait_ready: policy.wait_ready,
        shutdown_with_message: policy.shutdown_with_message,
        treekill: policy.treekill,
        merge_logs: logs.merge_logs,
        out_file: logs.out_file,
        error_file: logs.error_file,
        log_file: logs.log_file,
        pid_file: logs.pid_file,
        instance_var: runtime
            .instance_var
            .unwrap_or_else(|| "NODE_APP_INSTANCE".into()),
        increment_var: runtime.increment_var,
        log_date_format: logs.log_date_format,
        disable_logs: logs.disable_logs,
        log_type: logs.log_type,
        listen: scaling.listen,
        drain_keepalive: runtime.drain_keepalive.unwrap_or(true),
        instance_balancing: runtime.instance_balancing,
        catch_unhandled_rejections: runtime.catch_unhandled_rejections.unwrap_or(true),
        log_rotate: logs.log_rotate,
        watch: watching.watch,
        ignore_watch: watching.ignore_watch,
        watch_delay: watching.watch_delay,
        watch_options: watching.watch_options,
        cron_restart: policy.cron_restart,
        max_memory_restart: policy.max_memory_restart,
        extra,
        removed: Vec::new(),
        pmx_module: false,
    };
    watching::check(&spec)?;
    for key in spec.unsupported() {
        eprintln!(
            "{} app {:?}: {key} is not supported yet: accepted and ignored",
            pmr_core::personality::warn(),
            spec.name
        );
    }
    Ok(spec)
}

/// The identity stage: the name (the given one, else the program's; `append_env_to_name` adds
/// `-<env name>` with `--env`) and the namespace.
fn identify(opts: IdentityOpts, default_name: String, ctx: &BuildCtx) -> (String, String) {
    let name = opts.name.unwrap_or(default_name);
    let name = match &ctx.env_name {
        Some(e) if opts.append_env_to_name == Some(true) => format!("{name}-{e}"),
        _ => name,
    };
    (name, opts.namespace.unwrap_or_else(|| "default".into()))
}

#[cfg(test)]
mod tests;
