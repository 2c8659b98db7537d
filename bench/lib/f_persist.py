"""Resurrect 20 saved apps.

Start 20 idle fork apps from one ecosystem file, `save`, then each round: `kill`, `ping` (a
fresh, empty daemon: its start-up is not counted), and time `resurrect` until the command
returns and until a `jlist` shows all 20 online (jlist polled back to back, as in the start
figure). One warm-up round, then several rounds; medians shown.
"""

import time

from common import median, start_apps
from f_idle import all_online, idle_apps
from report import Row, Section, fmt_ms, ratio

N = 20
TARGET = 0.300


def one_round(tool):
    tool.kill()
    tool.ping()
    if tool.procs():
        raise RuntimeError(f"{tool.name}: a new daemon is not empty")
    t0 = time.perf_counter()
    tool.run("resurrect")
    t_ret = time.perf_counter() - t0
    t_online = None
    while time.perf_counter() < t0 + 30:
        if all_online(tool, N):
            t_online = time.perf_counter() - t0
            break
    return t_ret, t_online


def measure(tool, rounds):
    tool.delete_all()
    start_apps(tool, idle_apps(N, "r"), "resurrect20")
    if not all_online_soon(tool):
        raise RuntimeError(f"{tool.name}: the 20 apps did not come online")
    tool.run("save")
    one_round(tool)  # warm-up
    rs = [one_round(tool) for _ in range(rounds)]
    tool.delete_all()
    return {"rounds": rs, "ret": median([r[0] for r in rs]),
            "online": median([r[1] for r in rs])}


def all_online_soon(tool):
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if all_online(tool, N):
            return True
        time.sleep(0.05)
    return False


def cell(r, i):
    xs = [x[i] for x in r["rounds"] if x[i] is not None]
    if len(xs) < len(r["rounds"]):
        return f"{fmt_ms(median(xs))}, {len(r['rounds']) - len(xs)} rounds never all online"
    return f"{fmt_ms(median(xs))} ({fmt_ms(min(xs))}–{fmt_ms(max(xs))})"


def run(tools, quick, select):
    rounds = 3 if quick else 5
    res = {t.key: measure(t, rounds) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s = Section("Resurrect")
    s.rows.append(Row(f"`resurrect` of {N} saved apps: command returns", cell(a, 0), cell(b, 0),
                      ratio(a["ret"], b["ret"]), "—"))
    ok = a["online"] is not None and a["online"] <= TARGET
    s.rows.append(Row(f"`resurrect` of {N} saved apps: all online in jlist", cell(a, 1),
                      cell(b, 1), ratio(a["online"], b["online"]),
                      f"≤ {TARGET * 1000:.0f} ms", ok=ok))
    s.details.append(
        f"{N} idle fork apps saved with `save`; each round kills the daemon, starts an empty one "
        f"(`ping`) and times `resurrect`. {rounds} rounds after one warm-up; median (min–max). "
        "pmr sends the whole dump in one request; PM2 sends one `prepare` per app.")
    return [s], res
