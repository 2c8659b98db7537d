"""max_memory_restart: `tests/fixtures/grow.js` (the integration tests' app) grows by 50 MB/s
(filled buffers it keeps; it stops growing at 600 MB so PM2's wait cannot eat the machine) with `max_memory_restart: "200M"`.

The bench samples the app's RSS every 20 ms from /proc and notes when it first passes 200 MiB,
when that process is gone (the restart), and the highest RSS seen before. pmr checks every
0.5 s and restarts after the limit has been passed for its grace (1 s by default); PM2 checks in
its worker, every 30 s. Watched for up to 45 s.
"""

import time

from common import BENCH, alive, rss_kb, start_apps, wait_until
from report import Row, Section

LIMIT_KB = 200 * 1024
WATCH = 45.0


def run_tool(tool):
    tool.delete_all()
    tool.ping()
    app = {"name": "grow", "script": str(BENCH.parent / "tests" / "fixtures" / "grow.js"), "max_memory_restart": "200M",
           "env": {"GROW_MB_S": "50", "GROW_MAX_MB": "600"}}
    start_apps(tool, [app], f"memrestart-{tool.key}")
    p = wait_until(lambda: next((p for p in tool.procs()
                                 if p["status"] == "online" and p["pid"]), None), 10)
    if not p:
        tool.delete_all()
        return {"error": "never online"}
    pid = p["pid"]
    t0 = time.monotonic()
    crossed = gone = None
    peak = 0
    while time.monotonic() - t0 < WATCH:
        kb = rss_kb(pid)
        now = time.monotonic()
        if kb is None or not alive(pid):
            gone = now
            break
        peak = max(peak, kb)
        if crossed is None and kb > LIMIT_KB:
            crossed = now
        time.sleep(0.02)
    tool.delete_all()
    after = None if crossed is None or gone is None else gone - crossed
    return {"crossed_at": None if crossed is None else crossed - t0, "restart_after": after,
            "peak_kb": peak}


def cell(r):
    if "error" in r:
        return r["error"]
    if r["restart_after"] is None:
        return f"not restarted in {WATCH:.0f} s (peak {r['peak_kb'] / 1024:.0f} MB)"
    return f"{r['restart_after']:.2f} s; peak {r['peak_kb'] / 1024:.0f} MB"


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    ok = (a.get("restart_after") is not None and a["restart_after"] <= 2.0
          and a["peak_kb"] < 300 * 1024)
    s = Section("max_memory_restart")
    s.rows.append(Row("50 MB/s app, `max_memory_restart: 200M`: restart after passing the limit; "
                      "peak RSS", cell(a), cell(b), "—", "≤ 2 s, peak < 300 MB", ok=ok))
    s.details.append(__doc__.strip())
    return [s], res
