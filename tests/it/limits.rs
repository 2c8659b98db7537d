//! The per-app maximum of instances (1024, or `PMR_MAX_INSTANCES`): absurd `scale` and `-i`
//! counts are refused by the CLI before anything is sent, and by the daemon itself for any
//! client, which keeps answering at once.

use crate::support::*;
use pmr_core::protocol::{
    read_frame, write_frame, ApplyRequest, Request, Response, ScaleRequest, StartRequest,
};
use serde_json::json;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// One request straight over the socket, as a client other than our CLI could send it.
fn raw(pmr: &Pmr, req: &Request) -> Response {
    let mut s = UnixStream::connect(pmr.home.join("rpc.sock")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write_frame(&mut s, req).unwrap();
    read_frame(&mut s).expect("the daemon answers")
}

fn error_of(resp: Response) -> String {
    match resp {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The spec of the first app, as the daemon holds it.
fn first_spec(pmr: &Pmr) -> pmr_core::spec::AppSpec {
    match raw(pmr, &Request::List) {
        Response::List { procs } => (*procs[0].spec).clone(),
        other => panic!("{other:?}"),
    }
}

/// `pmr ping` answers within a few seconds (a daemon busy registering thousands of
/// instances did not answer at all).
fn ping_promptly(pmr: &Pmr, env: &[(&str, &str)]) {
    let t = Instant::now();
    pmr.run_env(&["ping"], env).ok();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "ping took {took:?}");
}

#[test]
fn absurd_scale_counts_are_refused_and_the_daemon_keeps_answering() {
    let pmr = Pmr::new();
    pmr.run(&["start", &fixture("run.sh"), "--name", "web", "-i", "2"])
        .ok();
    assert_eq!(pmr.jlist().len(), 2);

    for count in ["5000000000", "10000", "+10000", "1025"] {
        let r = pmr.run(&["scale", "web", count]).fails();
        assert!(
            r.stderr.contains("app \"web\": ")
                && r.stderr.contains("more than the maximum of 1024 per app"),
            "{count}: {}",
            r.stderr
        );
        ping_promptly(&pmr, &[]);
        assert_eq!(pmr.jlist().len(), 2, "{count}");
    }
    // Too large even for an i64: refused as not a number.
    let r = pmr
        .run(&["scale", "web", "99999999999999999999999"])
        .fails();
    assert!(r.stderr.contains("scale takes a number"), "{}", r.stderr);

    // The daemon checks on its own, whatever the client sends (with checked arithmetic).
    for (relative, count) in [(false, 5_000_000_000), (false, 10_000), (true, i64::MAX)] {
        let e = error_of(raw(
            &pmr,
            &Request::Scale(ScaleRequest {
                name: "web".into(),
                relative,
                count,
            }),
        ));
        assert!(
            e.contains("maximum of 1024") || e.contains("cannot scale web"),
            "{count}: {e}"
        );
        ping_promptly(&pmr, &[]);
    }
    assert_eq!(pmr.jlist().len(), 2);
    // The CLI checks before sending: with a lower maximum in its own environment it refuses
    // what this daemon (1024) would accept.
    let low = [("PMR_MAX_INSTANCES", "2")];
    let r = pmr.run_env(&["scale", "web", "3"], &low).fails();
    assert!(r.stderr.contains("maximum of 2 per app"), "{}", r.stderr);
    let r = pmr
        .run_env(
            &["start", &fixture("run.sh"), "--name", "x", "-i", "3"],
            &low,
        )
        .fails();
    assert!(r.stderr.contains("at most 2"), "{}", r.stderr);
    assert_eq!(pmr.jlist().len(), 2);
    // Scaling within the maximum still works.
    pmr.run(&["scale", "web", "3"]).ok();
    assert_eq!(pmr.jlist().len(), 3);
}

#[test]
fn too_many_instances_at_start_are_refused_and_nothing_starts() {
    let pmr = Pmr::new();
    let script = fixture("run.sh");
    let r = pmr
        .run(&["start", &script, "--name", "web", "-i", "5000"])
        .fails();
    assert!(
        r.stderr.contains("\"instances\" must be at most 1024"),
        "{}",
        r.stderr
    );
    let r = pmr
        .run(&["start", &script, "-i", "5000000000000000000000"])
        .fails();
    assert!(r.stderr.contains("\"instances\""), "{}", r.stderr);
    let eco = pmr.dir.join("big.config.json");
    std::fs::write(
        &eco,
        json!({"apps": [{"name": "big", "script": script, "instances": 5000}]}).to_string(),
    )
    .unwrap();
    let r = pmr.run(&["start", eco.to_str().unwrap()]).fails();
    assert!(r.stderr.contains("at most 1024"), "{}", r.stderr);
    ping_promptly(&pmr, &[]);
    assert_eq!(pmr.jlist().len(), 0);

    // The daemon refuses such specs from any client, for `start` and `apply`, changing nothing.
    pmr.run(&["start", &script, "--name", "small"]).ok();
    let mut spec = first_spec(&pmr);
    spec.name = "huge".into();
    spec.instances = 5000;
    let e = error_of(raw(
        &pmr,
        &Request::Start(StartRequest {
            apps: vec![spec.clone()],
            force: false,
            patch: None,
        }),
    ));
    assert!(e.contains("app \"huge\": 5000 instances"), "{e}");
    // All or nothing: a good app next to the bad one does not start either.
    let mut good = spec.clone();
    good.name = "good".into();
    good.instances = 1;
    let e = error_of(raw(
        &pmr,
        &Request::Apply(ApplyRequest {
            apps: vec![good, spec],
            reload: false,
        }),
    ));
    assert!(e.contains("maximum of 1024"), "{e}");
    ping_promptly(&pmr, &[]);
    let names: Vec<String> = pmr
        .jlist()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["small"]);
}

#[test]
fn the_maximum_comes_from_pmr_max_instances() {
    let pmr = Pmr::new();
    // The first command starts the daemon, which inherits the variable.
    let env = [("PMR_MAX_INSTANCES", "4")];
    let script = fixture("run.sh");
    pmr.run_env(&["start", &script, "--name", "web"], &env).ok();
    pmr.run_env(&["scale", "web", "4"], &env).ok();
    assert_eq!(pmr.jlist().len(), 4);
    for count in ["5", "+1"] {
        let r = pmr.run_env(&["scale", "web", count], &env).fails();
        assert!(r.stderr.contains("maximum of 4 per app"), "{}", r.stderr);
    }
    let r = pmr
        .run_env(&["start", &script, "--name", "api", "-i", "5"], &env)
        .fails();
    assert!(r.stderr.contains("at most 4"), "{}", r.stderr);

    // The daemon's own check counts the instances the app already has.
    let e = error_of(raw(
        &pmr,
        &Request::Scale(ScaleRequest {
            name: "web".into(),
            relative: false,
            count: 5,
        }),
    ));
    assert!(e.contains("maximum of 4"), "{e}");
    let mut spec = first_spec(&pmr);
    spec.instances = 1;
    let e = error_of(raw(
        &pmr,
        &Request::Start(StartRequest {
            apps: vec![spec],
            force: true,
            patch: None,
        }),
    ));
    assert!(e.contains("app \"web\": 5 instances"), "{e}");
    ping_promptly(&pmr, &env);
    assert_eq!(pmr.jlist().len(), 4);
    // Scaling down is always allowed.
    pmr.run_env(&["scale", "web", "2"], &env).ok();
    assert_eq!(pmr.jlist().len(), 2);
}

#[test]
fn concurrent_scales_never_share_an_instance_number() {
    let pmr = Pmr::new();
    // Not started: registration alone is what races here.
    pmr.run(&[
        "start",
        &fixture("run.sh"),
        "--name",
        "web",
        "--no-autostart",
    ])
    .ok();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| pmr.run(&["scale", "web", "+50"]).ok());
        }
    });
    let list = pmr.jlist();
    let mut numbers: Vec<u64> = list
        .iter()
        .map(|p| p["pm2_env"]["NODE_APP_INSTANCE"].as_u64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..201).collect::<Vec<u64>>());
    let mut ids: Vec<u64> = list.iter().map(|p| p["pm_id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 201);
    ping_promptly(&pmr, &[]);
}
