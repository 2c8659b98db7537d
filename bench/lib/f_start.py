"""Start 8 apps from one ecosystem file, and `delete all`.

With the daemon already running and no app: time `start eco8<ext>` until the command returns,
and until a `jlist` shows all 8 online (jlist polled back to back; the time is taken at the end
of the first jlist that shows them all, i.e. what a script polling jlist sees). Then time
`delete all` until it returns. One warm-up round, then several rounds; medians shown.

The ecosystem file is `.config.js` if pmr reads it, else `.json` if pmr reads that (PM2 reads
both; both tools get the same file). While pmr reads no ecosystem file at all, its ecosystem
figure says so, and both tools also run a stand-in: 8 `start` commands, one app each.
"""

import time

from common import APPS, BENCH, latency, median, start_apps, write_ecosystem
from f_idle import all_online, idle_apps
from report import Row, Section, fmt_ms, not_measurable, ratio

NO_ECO = "pmr cannot read ecosystem files yet"


def one_round(tool, start):
    t0 = time.perf_counter()
    start()
    t_ret = time.perf_counter() - t0
    t_online = None
    deadline = t0 + 30
    while time.perf_counter() < deadline:
        if all_online(tool, 8):
            t_online = time.perf_counter() - t0
            break
    t_del, _ = tool.timed("delete", "all")
    # The next round must start from an empty table.
    if tool.procs():
        raise RuntimeError(f"{tool.name}: apps left after delete all")
    return t_ret, t_online, t_del


def measure(tool, start, rounds):
    tool.delete_all()
    tool.ping()
    one_round(tool, start)  # warm-up: first spawns of node, file caches
    rs = [one_round(tool, start) for _ in range(rounds)]
    return {"rounds": rs, "ret": median([r[0] for r in rs]),
            "online": median([r[1] for r in rs]), "del": median([r[2] for r in rs])}


def cell(r, i):
    if r is None:
        return not_measurable(NO_ECO)
    xs = [x[i] for x in r["rounds"] if x[i] is not None]
    m = median(xs)
    if len(xs) < len(r["rounds"]):
        return f"{fmt_ms(m)}, {len(r['rounds']) - len(xs)} rounds never all online"
    return f"{fmt_ms(m)} ({fmt_ms(min(xs))}–{fmt_ms(max(xs))})"


def rows(res, label, with_targets):
    a, b = res["pmr"], res["pm2"]
    out = []
    for i, (what, key, limit) in enumerate((
            ("command returns", "ret", 0.060),
            ("all online in jlist", "online", 0.150),
            ("then `delete all`", "del", 0.080))):
        target = f"≤ {limit * 1000:.0f} ms" if with_targets else "—"
        ok = None
        if with_targets and a is not None:
            ok = a[key] is not None and a[key] <= limit
        out.append(Row(f"{label}: {what}", cell(a, i), cell(b, i),
                       ratio(a and a[key], b[key]), target, ok=ok))
    return out


def run(tools, quick, select):
    rounds = 3 if quick else 5
    pmr, pm2 = tools
    apps = idle_apps(8, "s")
    eco_ext = pmr.eco_ext or ".json"
    eco = write_ecosystem("eight", apps, eco_ext)
    s = Section("Start and delete")
    res = {"eco": {}, "cmds": {}}
    for t in tools:
        res["eco"][t.key] = measure(t, lambda: t.run("start", eco), rounds) if t.eco_ext else None
    s.rows += rows(res["eco"], f"start 8 apps from `eight{eco_ext}`", True)
    if pmr.eco_ext is None:
        for t in tools:
            res["cmds"][t.key] = measure(
                t, lambda: [t.run("start", a["script"], "--name", a["name"]) for a in apps], rounds)
        s.rows += rows(res["cmds"], "stand-in: 8 × `start idle.js --name sN`", False)
    # Loading a realistic 20-app JS config (issue 3): `pmr config-check` loads, validates and
    # normalizes it and exits; the time includes starting the pmr process (about 1.5 ms).
    twenty = BENCH / ".work" / "twenty.config.js"
    twenty.write_text(TWENTY.replace("__APP__", str(APPS / "idle.js")))
    lat = latency(pmr, ["config-check", str(twenty)], 30)
    s.rows.append(Row("load a 20-app `.config.js` (path, os, env blocks): `pmr config-check`, median",
                      fmt_ms(lat["median"]), "—", "—", "< 20 ms", ok=lat["median"] < 0.020))
    s.details.append(
        f"{rounds} rounds after one warm-up round, daemon already running; cells show median "
        "(min–max). 'All online' is measured at the end of the first back-to-back `jlist` that "
        "shows 8 apps `online` with a pid, so it includes one `jlist` call of the tool.")
    if pmr.eco_ext is None:
        s.details.append(
            "pmr reads no ecosystem file yet (`pmr start eight.json` runs the JSON file as a Node "
            "script), so the stand-in rows give both tools the same 8 single-app `start` commands, "
            "run one after the other; they have no target of their own.")
    return [s], res


TWENTY = """const path = require('path');
const os = require('os');
module.exports = {
  apps: Array.from({ length: 20 }, (_, i) => ({
    name: `app-${i}`,
    script: '__APP__',
    cwd: __dirname,
    instances: i % 3 === 0 ? 2 : 1,
    exec_mode: 'fork',
    max_memory_restart: `${100 + i}M`,
    min_uptime: '2s',
    env: { NODE_ENV: 'development', PORT: 3000 + i, CPUS: os.cpus().length },
    env_production: { NODE_ENV: 'production', PORT: 4000 + i, HOST: os.hostname() },
    log_date_format: 'YYYY-MM-DD HH:mm Z',
    out_file: path.join(__dirname, 'logs', `app-${i}.out.log`),
  })),
};
"""
