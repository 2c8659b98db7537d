"""Crash loop: `bench/apps/crash.js` exits (code 1) 100 ms after it starts.

Three apps (one ecosystem file, or `start` commands with the same options as flags for a tool
that reads no ecosystem file yet), watched for 10 s (jlist polled every 200 ms):
- `crash`: default policy (min_uptime 1000 ms, max_restarts 16, no delay);
- `crash-backoff`: `exp_backoff_restart_delay: 100`, to see the delays grow (×1.5);
- `crash-late`: the first run lives 2 s, then every run crashes after 100 ms, with
  `min_uptime: 500, max_restarts: 3`. PM2 only counts unstable runs within
  min_uptime × max_restarts (1.5 s) of the app's creation, so this loop never ends under PM2;
  pmr counts consecutive short runs whenever they happen.
Each run appends its start and exit times to a file, so the delays between a crash and the
next start are observed from the app's side (they include Node's start-up, ~40 ms here).
"""

import time

from common import APPS, BENCH, median, start_apps
from report import Row, Section

WATCH = 10.0
APPS_DEF = {
    "crash": {},
    "crash-backoff": {"exp_backoff_restart_delay": 100},
    "crash-late": {"min_uptime": 500, "max_restarts": 3, "env": {"CRASH_FIRST_MS": "2000"}},
}


def delays(logfile):
    """Milliseconds from each exit to the next start, and the number of starts."""
    events = []
    try:
        for line in logfile.read_text().splitlines():
            kind, ms = line.split()
            events.append((kind, int(ms)))
    except FileNotFoundError:
        return [], 0
    ds = [b[1] - a[1] for a, b in zip(events, events[1:]) if a[0] == "exit" and b[0] == "start"]
    return ds, sum(1 for e in events if e[0] == "start")


def run_tool(tool):
    work = BENCH / ".work"
    apps = []
    logs = {}
    for name, opts in APPS_DEF.items():
        log = work / f"crash-{tool.key}-{name}.log"
        for p in (log, log.with_name(log.name + ".first")):
            p.unlink(missing_ok=True)
        logs[name] = log
        env = dict(opts.get("env", {}), CRASH_LOG=str(log))
        apps.append(dict({k: v for k, v in opts.items() if k != "env"},
                         name=name, script=str(APPS / "crash.js"), env=env))
    tool.delete_all()
    tool.ping()
    t0 = time.monotonic()
    start_apps(tool, apps, f"crash-{tool.key}")
    errored_at = {}
    last = {}
    while time.monotonic() - t0 < WATCH:
        for p in tool.procs():
            last[p["name"]] = p
            if p["status"] == "errored" and p["name"] not in errored_at:
                errored_at[p["name"]] = time.monotonic() - t0
        time.sleep(0.2)
    tool.delete_all()
    res = {}
    for name in APPS_DEF:
        ds, starts = delays(logs[name])
        p = last.get(name, {})
        res[name] = {"restarts": p.get("restarts"), "status": p.get("status"),
                     "errored_at": errored_at.get(name), "delays": ds, "starts": starts}
    return res


def fmt_delays(ds, n=8):
    if not ds:
        return "none"
    head = ", ".join(str(d) for d in ds[:n])
    return head + (f", … ({len(ds)})" if len(ds) > n else "")


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s = Section("Crash loop")

    def cell(r):
        end = f" at {r['errored_at']:.1f} s" if r["errored_at"] is not None else ""
        return f"{r['restarts']} restarts, {r['status']}{end}"

    s.rows.append(Row("crash loop (exit after 100 ms), defaults: 10 s", cell(a["crash"]),
                      cell(b["crash"]), "—", "errored", ok=a["crash"]["status"] == "errored"))
    s.rows.append(Row("crash loop, delay crash→next start (median)",
                      f"{median(a['crash']['delays'])} ms", f"{median(b['crash']['delays'])} ms",
                      "—", "—"))
    s.rows.append(Row("crash loop with `exp_backoff_restart_delay: 100`: 10 s; delays (ms)",
                      f"{cell(a['crash-backoff'])}; {fmt_delays(a['crash-backoff']['delays'], 6)}",
                      f"{cell(b['crash-backoff'])}; {fmt_delays(b['crash-backoff']['delays'], 6)}",
                      "—", "delays ×1.5 (+ start-up)"))
    s.rows.append(Row("crash loop after a healthy 2 s run (min_uptime 500, max_restarts 3): 10 s",
                      cell(a["crash-late"]), cell(b["crash-late"]), "—", "errored",
                      ok=a["crash-late"]["status"] == "errored"))
    s.details.append(
        "Observed delays from an exit to the next start, in ms (app side, so Node's start-up is "
        "included):")
    for k, r in res.items():
        for name, x in r.items():
            s.details.append(f"- {k} `{name}`: {x['starts']} starts; {fmt_delays(x['delays'])}")
    return [s], res
