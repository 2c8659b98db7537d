"""@pm2/io flood: an app (`tests/fixtures/axm_flood.js`, the integration tests' own) sends `axm:monitor` messages 10,000 times a
second (100 every 10 ms, each with the time it was sent and a counter), as a broken metrics loop
would. After it reports, the daemon's CPU time (utime + stime from /proc) is read over 5 s; the
counter in `jlist` before and after gives the messages per second the daemon took in, and the
`sent` time in `jlist` against the clock how far behind its metrics are (median of 5 reads).
"""

import time

from common import BENCH, cpu_seconds, median, start_apps, wait_until
from report import Row, Section

WINDOW = 5.0


def metrics(tool):
    for p in tool.jlist():
        if p.get("name") == "flood":
            return p.get("pm2_env", {}).get("axm_monitor", {})
    return {}


def run_tool(tool):
    tool.delete_all()
    tool.ping()
    start_apps(tool, [{"name": "flood", "script": str(BENCH.parent / "tests" / "fixtures" / "axm_flood.js")}], f"axm-{tool.key}")
    if not wait_until(lambda: "count" in metrics(tool), 20, 0.05):
        tool.delete_all()
        return {"error": "no metrics"}
    time.sleep(1.0)
    dpid = tool.daemon_pid()
    n0, cpu0, t0 = metrics(tool)["count"]["value"], cpu_seconds(dpid), time.time()
    time.sleep(WINDOW)
    n1, cpu1, t1 = metrics(tool)["count"]["value"], cpu_seconds(dpid), time.time()
    lags = []
    for _ in range(5):
        m = metrics(tool)
        lags.append(time.time() * 1000 - m["sent"]["value"])
        time.sleep(0.2)
    tool.delete_all()
    return {"rate": (n1 - n0) / (t1 - t0), "cpu": (cpu1 - cpu0) / (t1 - t0),
            "lag_ms": median(lags)}


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s = Section("@pm2/io metrics")

    def cell(r, key, fmt):
        return r["error"] if "error" in r else fmt(r[key])

    pct = lambda x: f"{x * 100:.1f}% of a core"  # noqa: E731
    ratio = "—"
    if "error" not in a and "error" not in b and b["cpu"] > 0:
        ratio = f"{a['cpu'] / b['cpu']:.2f}×"
    s.rows.append(Row("app sending 10,000 metrics messages/s: daemon CPU", cell(a, "cpu", pct),
                      cell(b, "cpu", pct), ratio, "≤ 10% of a core",
                      ok="error" not in a and a["cpu"] <= 0.10))
    s.rows.append(Row("the same: messages/s taken in; metrics behind the app (median)",
                      cell(a, "rate", lambda r: f"{r:,.0f}/s") + "; " + cell(a, "lag_ms", lambda x: f"{x:.0f} ms"),
                      cell(b, "rate", lambda r: f"{r:,.0f}/s") + "; " + cell(b, "lag_ms", lambda x: f"{x:.0f} ms"),
                      "—", "keeps up, ≤ 1 s behind",
                      ok="error" not in a and a["lag_ms"] <= 1000 and a["rate"] >= 5000))
    s.details.append(__doc__.strip())
    return [s], res
