//! The scaling stage: how many instances, fork or cluster mode, and the sockets the daemon
//! listens on for them.

use super::interpreter;
use crate::raw_app::ScalingOpts;
use pmr_core::spec::{ExecMode, ListenAddr};

pub(super) struct Scaling {
    pub instances: u32,
    pub exec_mode: ExecMode,
    pub listen: Vec<ListenAddr>,
    /// `instances` was given (PM2 merges the logs of a lone fork app only).
    pub instances_given: bool,
}

/// `interpreter` and `script`: the program stage's.
pub(super) fn resolve(
    opts: ScalingOpts,
    interpreter: Option<&str>,
    script: &str,
    cpus: u32,
) -> Result<Scaling, String> {
    let instances = match opts.instances {
        None => 1,
        Some(0) => cpus,
        Some(n) if n < 0 => (cpus as i64 + n).max(1) as u32,
        Some(n) => n as u32,
    };
    let is_node = interpreter::is_node(interpreter);
    let exec_mode = match opts.exec_mode {
        Some(mode) => mode,
        // PM2 wants cluster when instances is >= 1, 0 or -1 and the script runs on node.
        None if is_node && matches!(opts.instances, Some(n) if n >= -1) => ExecMode::Cluster,
        None => ExecMode::Fork,
    };
    let listen = opts
        .listen
        .unwrap_or_default()
        .iter()
        .map(|a| ListenAddr::parse(a).map_err(|e| format!("\"listen\": {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let exec_mode = if exec_mode == ExecMode::Cluster && !is_node && listen.is_empty() {
        // As PM2 does: N fork instances, which will not share a port unless the app does.
        eprintln!(
            "{} cluster mode needs a Node.js script or `listen` addresses; {script} runs as {instances} fork instance(s)",
            pmr_core::personality::warn()
        );
        ExecMode::Fork
    } else {
        exec_mode
    };
    Ok(Scaling {
        instances,
        exec_mode,
        listen,
        instances_given: opts.instances.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaling(instances: Option<i64>, exec_mode: Option<ExecMode>, interp: &str) -> Scaling {
        let opts = ScalingOpts {
            instances,
            exec_mode,
            listen: None,
        };
        resolve(opts, Some(interp), "app", 4).unwrap()
    }

    #[test]
    fn instances_and_mode_as_pm2_picks_them() {
        let s = scaling(None, None, "node");
        assert_eq!(
            (s.instances, s.exec_mode, s.instances_given),
            (1, ExecMode::Fork, false)
        );
        let s = scaling(Some(0), None, "/usr/bin/node");
        assert_eq!((s.instances, s.exec_mode), (4, ExecMode::Cluster));
        let s = scaling(Some(-1), None, "bun");
        assert_eq!((s.instances, s.exec_mode), (3, ExecMode::Cluster));
        let s = scaling(Some(-2), None, "node");
        assert_eq!(
            (s.instances, s.exec_mode),
            (2, ExecMode::Fork),
            "below -1: fork"
        );
        assert_eq!(scaling(Some(-9), None, "node").instances, 1);
        let s = scaling(Some(2), Some(ExecMode::Fork), "node");
        assert_eq!((s.instances, s.exec_mode), (2, ExecMode::Fork));
        // Cluster mode needs node, or sockets of the daemon's.
        let s = scaling(Some(2), Some(ExecMode::Cluster), "python");
        assert_eq!(s.exec_mode, ExecMode::Fork);
        let opts = ScalingOpts {
            instances: Some(2),
            exec_mode: Some(ExecMode::Cluster),
            listen: Some(vec!["127.0.0.1:0".into()]),
        };
        let s = resolve(opts, Some("python"), "app", 4).unwrap();
        assert_eq!((s.exec_mode, s.listen.len()), (ExecMode::Cluster, 1));
    }
}
