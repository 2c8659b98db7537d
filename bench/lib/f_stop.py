"""Stopping a tree that ignores SIGINT: `tests/fixtures/stubborn_tree.js` is three levels of
Node processes that all ignore SIGINT (what `npm start` → `sh` → `node` looks like when the app
does), started with `kill_timeout: 500`.

The one-process case is the same script with `DEPTH=1`. For each tool, 5 stops (median): the
app writes the time it got SIGINT; the bench polls /proc
every millisecond for the tree's pids and notes when the last one is gone (a zombie counts as
gone), and when the `stop` command returned (for pmr, the daemon's "stopped": the CLI prints the
table from the same answer). Target (pmr): SIGINT → stopped ≤ kill_timeout + 50 ms.
"""

import time

from common import BENCH, alive, median, start_apps, wait_until
from report import Row, Section

KILL_TIMEOUT = 500
RUNS = 5
FIXTURES = BENCH.parent / "tests" / "fixtures"


def one_stop(tool, name, pids_file, sigint_file):
    """(SIGINT → all gone or None, SIGINT → stop returned) in seconds, or None."""
    pids = [int(x) for x in pids_file.read_text().split()]
    sigint_file.unlink(missing_ok=True)
    t0 = time.time()
    proc = tool.popen("stop", name)
    gone = None
    while gone is None and time.time() - t0 < 15:
        if not any(alive(p) for p in pids):
            gone = time.time()
        else:
            time.sleep(0.001)
    proc.wait(timeout=60)
    returned = time.time()
    try:
        sigint = int(sigint_file.read_text()) / 1000
    except (FileNotFoundError, ValueError):
        return None
    return (None if gone is None else gone - sigint, returned - sigint)


def run_tool(tool):
    work = BENCH / ".work" / f"stop-{tool.key}"
    work.mkdir(parents=True, exist_ok=True)
    tool.delete_all()
    tool.ping()
    res = {}
    for name, depth in (("tree", 3), ("alone", 1)):
        pids_file = work / f"{name}.pids"
        sigint_file = work / f"{name}.sigint"
        runs = []
        for _ in range(RUNS):
            pids_file.unlink(missing_ok=True)
            app = {"name": name, "script": str(FIXTURES / "stubborn_tree.js"),
                   "kill_timeout": KILL_TIMEOUT,
                   "env": {"TREE_PIDS": str(pids_file), "SIGINT_FILE": str(sigint_file),
                           "DEPTH": str(depth)}}
            start_apps(tool, [app], f"stop-{tool.key}-{name}")
            ok = wait_until(lambda: pids_file.exists()
                            and len(pids_file.read_text().split()) >= depth, 15)
            # The deepest process's SIGINT handler is set once it has written its pid; the
            # pause lets every level get there.
            time.sleep(0.3)
            r = one_stop(tool, name, pids_file, sigint_file) if ok else None
            if r:
                runs.append(r)
            tool.delete_all()
        res[name] = runs
    return res


def cell(runs, i):
    xs = [r[i] for r in runs if r[i] is not None]
    return "—" if not xs else f"{median(xs) * 1000:.0f} ms"


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s = Section("Stopping a tree that ignores SIGINT")
    target = KILL_TIMEOUT + 50
    tree_stopped = [r[1] for r in a["tree"]]
    ok = bool(tree_stopped) and median(tree_stopped) * 1000 <= target
    s.rows.append(Row(f"3-process tree ignoring SIGINT, kill_timeout {KILL_TIMEOUT}: SIGINT → stop returned",
                      cell(a["tree"], 1), cell(b["tree"], 1), "—", f"≤ {target} ms", ok=ok))
    s.rows.append(Row("… SIGINT → last process of the tree gone", cell(a["tree"], 0),
                      cell(b["tree"], 0), "—", "—"))
    s.rows.append(Row("one process ignoring SIGINT: SIGINT → stop returned",
                      cell(a["alone"], 1), cell(b["alone"], 1), "—", "—"))
    s.details.append(
        f"Medians of {RUNS} stops each; every run in ms (gone, returned): "
        + "; ".join(f"{k} {n}: " + ", ".join(f"({'—' if g is None else round(g * 1000)}, {round(t * 1000)})"
                                             for g, t in runs)
                    for k, r in res.items() for n, runs in r.items()))
    return [s], res
