//! The command sequences run under both PM2 and pmr. A step is a command line as a user types it
//! (split into words as `sh` would, quotes included; leading `KEY=value` words are put in its
//! environment), or
//! `=`: wait until no app is in a transient state, then compare `jlist` and `ls`; `=p` also checks
//! that `prettylist` shows what `jlist` does (each PM2 command costs a Node start: not every time);
//! `! <program> <args>`: run a program that is not the tool (`node burst.js`), in the cwd;
//! `?<n> <file>`: wait until the file (in the cwd) has at least n lines.
//! A step whose program is `pm2-runtime` runs PM2's `pm2-runtime`, and `pmr runtime` for pmr.
//! Every command's exit code is compared. The cwd holds a copy of `tests/pm2/fixtures/`.

pub struct Scenario {
    pub name: &'static str,
    pub steps: &'static [&'static str],
}

pub const ALL: &[Scenario] = &[
    Scenario {
        // The `pm2` package as a library (`pm2lib.js`), against each tool's daemon: PM2's own
        // protocol. The first command starts the daemon (else the library would start PM2's).
        name: "pm2_library",
        steps: &[
            "ls",
            "! node pm2lib.js start http.js api",
            "! node pm2lib.js start-config",
            "=",
            "! node pm2lib.js restart api",
            "! node pm2lib.js stop cfg",
            "=",
            "! node pm2lib.js reload api",
            "! node pm2lib.js restart nope",
            "! node pm2lib.js start-cluster",
            "=",
            "! node pm2lib.js delete cfg",
            "! node pm2lib.js list",
            "=",
            "! node pm2lib.js delete all",
            "=",
        ],
    },
    Scenario {
        // Fork mode from the CLI, and every selector form on it.
        name: "fork_cli",
        steps: &[
            "start http.js --name api",
            "start worker.js",
            "=p",
            "stop api",
            "=p",
            "restart api",
            "restart 1",
            "reload api",
            "=",
            "stop 0 1",
            "start worker.js",
            "=",
            "reset all",
            "restart worker.js",
            "=",
            "delete ./worker.js",
            "restart 42",
            "=",
            "delete all",
            "restart all",
            "delete all",
            "=",
        ],
    },
    Scenario {
        // Cluster mode from the CLI: scale up and down, reload, reset.
        name: "cluster_cli",
        steps: &[
            "start http.js -i 2 --name web",
            "=p",
            "scale web 3",
            "=",
            "scale web 1",
            "=",
            "reload web",
            "reset web",
            "=",
            "reload nope",
            "delete web",
            "=",
        ],
    },
    Scenario {
        // A JSON ecosystem file: start, then select by the file, by namespace, by name.
        name: "ecosystem_json",
        steps: &[
            "start ecosystem.json",
            "=p",
            "stop ecosystem.json",
            "=",
            "restart ecosystem.json --env production",
            "=p",
            "stop back",
            "=",
            "restart front",
            "delete jobs",
            "=",
            "delete ecosystem.json",
            "=",
        ],
    },
    Scenario {
        // A JS ecosystem file with env, env_<name> and deploy.<name>.env blocks.
        name: "ecosystem_js_env",
        steps: &[
            "start ecosystem.config.js --env production",
            "=p",
            "restart ecosystem.config.js --env staging --update-env",
            "=p",
            "start ecosystem.config.js --only cron",
            "=",
            "restart /^we/",
            "=",
        ],
    },
    Scenario {
        // Options given again with restart and start of an existing app.
        name: "changed_options",
        steps: &[
            "start worker.js --name w",
            "=p",
            "restart w --node-args=--max-old-space-size=100",
            "=",
            "EXTRA=1 restart w --update-env",
            "=p",
            "restart w --name w2",
            "=",
            "start w2",
            "=",
            "restart w2 --max-memory-restart 100M --cron-restart '0 0 * * *'",
            "=",
            "restart w2 --max-memory-restart 0 --cron-restart 0",
            "=",
            "restart w2 --watch",
            "=",
        ],
    },
    Scenario {
        // `null` removes an option, its key gone from `jlist` (PM2's `extendMix`), until given
        // again; numbers given `null` crash PM2 7.
        name: "null_options",
        steps: &[
            "start worker.js --name w --node-args=--max-old-space-size=100 --namespace ns --interpreter node --log-date-format YYYY --log-type json",
            "=p",
            "restart w --node-args=null",
            "=",
            "restart w --namespace null --log-date-format null",
            "=p",
            "restart w --interpreter null --log-type null",
            "=",
            "restart w --node-args=--max-old-space-size=120",
            "restart w --kill-timeout null",
            "restart w --max-memory-restart null",
            "=p",
        ],
    },
    Scenario {
        // A cluster worker that never listens, restarted by a cron more often than
        // `listen_timeout`: the start succeeds (PM2's worker is online at once; pmr's stays
        // launching, so only exit codes are compared until it is deleted).
        name: "cron_cluster_no_listen",
        steps: &[
            "start worker.js -i 1 --name cw --cron-restart '*/2 * * * * *'",
            "delete cw",
            "=",
        ],
    },
    Scenario {
        // `watch` with the app's log in the watched folder: PM2 restarts it for its own lines.
        name: "watch_own_log",
        steps: &["start ticker.js --watch -o ./out.log -e ./err.log", "?20 out.log", "="],
    },
    Scenario {
        // `watch` and a burst of 200 files written at once (a `git checkout`): one restart once
        // quiet under pmr; PM2 restarts many times.
        name: "watch_burst",
        steps: &[
            "! node burst.js src 1",
            "start worker.js --watch src -o ./out.log",
            "=",
            "! node burst.js src 200",
            "?2 out.log",
            "=",
        ],
    },
    Scenario {
        // pm2-runtime with PM2's "let the CLI exit" switch: the apps are left to the home's
        // background daemon.
        name: "runtime_debug",
        steps: &[
            "PM2_RUNTIME_DEBUG=true pm2-runtime worker.js -i 2",
            "=",
            "delete all",
        ],
    },
    Scenario {
        // Errors and exit codes: unknown names and ids for every action, empty lists, bad files.
        name: "errors",
        steps: &[
            "stop all",
            "reload all",
            "reset all",
            "start missing.js",
            "start worker.js --name only",
            "=",
            "restart nope",
            "reload 7",
            "delete nope",
            "reset nope",
            "scale nope 2",
            "describe nope",
            "stop missing.js",
            "start ecosystem.json --only nope",
            "=",
            "delete only",
            "delete all",
            "=",
        ],
    },
    Scenario {
        // A program that is not Node: a bash script, by file and by its name.
        name: "shell_app",
        steps: &[
            "start job.sh",
            "=p",
            "restart job",
            "stop job.sh",
            "=",
            "delete all",
        ],
    },
];
