"""PM2's own protocol, as tools built on PM2 use it, with a raw client
(`bench/apps/axon-client.js`: AMP frames by hand, so the `pm2` package's JSON parsing, the same
on both sides, is not counted):

- `getMonitorData` with 100 idle apps, 5 s after they are online (their start-up is over): 200
  sequential round trips on one connection, timed at the client's socket (median and p99).
- 5 apps writing 2,000 lines a second each (one `console.log` per line): the daemon's CPU over
  5 s without a subscriber (the log files alone), then with 5 bus subscribers on `pub.sock`; what
  the subscribers add is the bus's own cost. Also the messages each subscriber got, and the
  daemon's RSS before and after.
- The daemon's idle RSS (no app) fresh, then after a PM2 client session (200 `getMonitorData`
  calls, 5 subscribers for 1 s) and 2 s of rest: what serving PM2's clients leaves behind.
"""

import json
import subprocess
import time

from common import BENCH, cpu_seconds, mb, median, rss_kb, start_apps, wait_until
from report import Row, Section

CLIENT = BENCH / "apps" / "axon-client.js"
WINDOW = 5.0


def client(*args, timeout=120):
    cp = subprocess.run(["node", str(CLIENT), *map(str, args)], capture_output=True, text=True,
                        timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"axon-client {args[0]}: {cp.stderr.strip()[-300:]}")
    return json.loads(cp.stdout.strip().splitlines()[-1])


def subscribers(tool, k, ms):
    """Start k subscribers for ms; returns (process, ready) once they are connected."""
    p = subprocess.Popen(["node", str(CLIENT), "subscribe", str(tool.home), str(k), str(ms)],
                         stdout=subprocess.PIPE, text=True)
    ready = p.stdout.readline().strip() == "ready"
    return p, ready


def run_tool(tool):
    res = {}
    tool.kill()
    tool.ping()
    dpid = tool.daemon_pid()
    time.sleep(2.0)
    res["idle_fresh"] = rss_kb(dpid)
    client("rtt", tool.home, 200)
    p, _ = subscribers(tool, 5, 1000)
    p.communicate(timeout=30)
    time.sleep(2.0)
    res["idle_after"] = rss_kb(dpid)

    apps = [{"name": f"idle-{i}", "script": str(BENCH / "apps" / "idle.js")} for i in range(100)]
    start_apps(tool, apps, f"proto-{tool.key}")
    wait_until(lambda: sum(1 for x in tool.procs() if x["status"] == "online") >= 100, 120, 0.5)
    # 100 Node processes still booting take the machine's 2 cores for a few seconds.
    time.sleep(5.0)
    client("rtt", tool.home, 20)
    r = client("rtt", tool.home, 200)
    res["rtt_median_us"], res["rtt_p99_us"], res["rtt_bytes"] = r["median_us"], r["p99_us"], r["bytes"]
    tool.delete_all()

    liners = [{"name": f"lines-{i}", "script": str(BENCH / "apps" / "lines-at.js"),
               "env": {"LINES_PER_S": "2000"}} for i in range(5)]
    start_apps(tool, liners, f"proto-lines-{tool.key}")
    wait_until(lambda: sum(1 for x in tool.procs() if x["status"] == "online") >= 5, 60, 0.2)
    dpid = tool.daemon_pid()
    time.sleep(1.0)
    cpu0, t0 = cpu_seconds(dpid), time.time()
    time.sleep(WINDOW)
    res["bus_cpu_none"] = (cpu_seconds(dpid) - cpu0) / (time.time() - t0)
    p, ready = subscribers(tool, 5, int(WINDOW * 1000) + 500)
    if not ready:
        res["bus_error"] = "subscribers could not connect"
    time.sleep(0.5)
    rss0, cpu0, t0 = rss_kb(dpid), cpu_seconds(dpid), time.time()
    time.sleep(WINDOW)
    cpu1, t1 = cpu_seconds(dpid), time.time()
    out, _ = p.communicate(timeout=60)
    res["bus_rss_before"], res["bus_rss_after"] = rss0, rss_kb(dpid)
    res["bus_cpu"] = (cpu1 - cpu0) / (t1 - t0)
    try:
        counts = json.loads(out.strip().splitlines()[-1])["messages"]
        res["bus_msgs_per_s"] = median(counts) / (WINDOW + 0.5)
    except (ValueError, IndexError, KeyError):
        res["bus_error"] = "no count from the subscribers"
    tool.delete_all()
    return res


def run(tools, quick, select):
    res = {}
    for t in tools:
        try:
            res[t.key] = run_tool(t)
        except Exception as e:  # noqa: BLE001 — a figure that fails shows its error
            res[t.key] = {"error": str(e)[:200]}
            t.delete_all()
    a, b = res["pmr"], res["pm2"]
    s = Section("PM2's protocol (require('pm2'), modules, bus clients)")

    def get(r, k, fmt):
        return r.get("error") or (fmt(r[k]) if r.get(k) is not None else "—")

    ms = lambda us: f"{us / 1000:.2f} ms"  # noqa: E731
    ratio = "—"
    if "rtt_median_us" in a and "rtt_median_us" in b and b["rtt_median_us"] > 0:
        ratio = f"{a['rtt_median_us'] / b['rtt_median_us']:.2f}×"
    s.rows.append(Row("getMonitorData, 100 apps, raw client: median round trip (p99)",
                      get(a, "rtt_median_us", ms) + f" ({get(a, 'rtt_p99_us', ms)})",
                      get(b, "rtt_median_us", ms) + f" ({get(b, 'rtt_p99_us', ms)})", ratio,
                      "≤ 1/10 of PM2's",
                      ok="rtt_median_us" in a and "rtt_median_us" in b
                      and a["rtt_median_us"] * 10 <= b["rtt_median_us"]))
    pct = lambda x: f"{x * 100:.1f}%"  # noqa: E731
    ratio = "—"
    if "bus_cpu" in a and "bus_cpu" in b and b["bus_cpu"] > 0:
        ratio = f"{a['bus_cpu'] / b['bus_cpu']:.2f}×"
    both = lambda r: (f"{pct(r['bus_cpu'])} of a core ({pct(r['bus_cpu_none'])} without "  # noqa: E731
                      "subscribers)" if "bus_cpu" in r else r.get("error", "—"))
    s.rows.append(Row("10,000 log lines/s to 5 bus subscribers: daemon CPU",
                      both(a), both(b), ratio, "≤ 1/5 of PM2's",
                      ok="bus_cpu" in a and "bus_cpu" in b and a["bus_cpu"] * 5 <= b["bus_cpu"]))
    added = lambda r: r["bus_cpu"] - r["bus_cpu_none"]  # noqa: E731
    ratio = "—"
    if "bus_cpu" in a and "bus_cpu" in b and added(b) > 0:
        ratio = f"{added(a) / added(b):.2f}×"
    s.rows.append(Row("the same: what the 5 subscribers add",
                      pct(added(a)) if "bus_cpu" in a else "—",
                      pct(added(b)) if "bus_cpu" in b else "—", ratio, "—"))
    rate = lambda x: f"{x:,.0f}/s"  # noqa: E731
    size = lambda kb: f"{mb(kb):.1f} MB"  # noqa: E731
    grow = lambda r: (f"{size(r['bus_rss_before'])} → {size(r['bus_rss_after'])}"  # noqa: E731
                      if r.get("bus_rss_after") else r.get("error", "—"))
    s.rows.append(Row("the same: messages per subscriber; daemon RSS before → after",
                      get(a, "bus_msgs_per_s", rate) + "; " + grow(a),
                      get(b, "bus_msgs_per_s", rate) + "; " + grow(b), "—", "RSS flat",
                      ok="bus_rss_after" in a
                      and a["bus_rss_after"] - a["bus_rss_before"] <= 1024))
    idle = lambda r: (f"{size(r['idle_fresh'])} → {size(r['idle_after'])}"  # noqa: E731
                      if r.get("idle_after") else r.get("error", "—"))
    s.rows.append(Row("idle daemon RSS, fresh → after a PM2 client session",
                      idle(a), idle(b), "—", "≤ +1 MB",
                      ok="idle_after" in a and a["idle_after"] - a["idle_fresh"] <= 1024))
    s.details.append(__doc__.strip())
    return [s], res
