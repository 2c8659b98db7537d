"""watch: an app (`bench/apps/mark.js`, which writes its pid and the time to a file as its first
statement) runs with `watch: true` on its own directory and `watch_delay: 0`.

- Write → new process: a file in the watched directory is written, and the time until the new
  process has written its mark is taken (median of 5). That includes the app's own start-up: the
  same app started by `node` directly is measured beside it (median of 5), so what the manager
  adds is the difference.
- Ignored changes: 10,000 files are written in `node_modules/` (there before the start, ignored
  by default by both), and the daemon's CPU time (utime + stime from /proc) is read before the
  writes and 1 s after them. No restart may follow.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import APPS, BENCH, cpu_seconds, median, start_apps, wait_until
from report import Row, Section, fmt_ms

RUNS = 5
IGNORED = 10_000


def read_mark(path):
    try:
        pid, at = path.read_text().split()
        return int(pid), int(at)
    except (FileNotFoundError, ValueError):
        return None


def node_start():
    """Seconds from spawning `node mark.js` to its mark, median of RUNS."""
    work = BENCH / ".work" / "watch-node"
    work.mkdir(parents=True, exist_ok=True)
    mark = work / "mark"
    times = []
    for _ in range(RUNS):
        mark.unlink(missing_ok=True)
        t0 = time.time()
        p = subprocess.Popen(["node", str(APPS / "mark.js")], env=dict(os.environ, MARK=str(mark)))
        m = wait_until(lambda: read_mark(mark), 10)
        p.kill()
        p.wait()
        if m:
            times.append(m[1] / 1000 - t0)
    return median(times) if times else None


def run_tool(tool):
    tool.delete_all()
    tool.ping()
    # Not under bench/.work: PM2's default ignore (/[\/\\]\./, any dot in the absolute path)
    # would ignore every file there.
    work = Path(tempfile.mkdtemp(prefix=f"pmr-bench-watch-{tool.key}-"))
    (work / "app" / "node_modules").mkdir(parents=True)
    mark = work / "mark"
    shutil.copy(APPS / "mark.js", work / "app" / "mark.js")
    app = {"name": "watched", "script": str(work / "app" / "mark.js"), "cwd": str(work / "app"),
           "watch": True, "watch_delay": 0, "env": {"MARK": str(mark)}}
    start_apps(tool, [app], f"watch-{tool.key}")
    first = wait_until(lambda: read_mark(mark), 10)
    if not first:
        tool.delete_all()
        shutil.rmtree(work, ignore_errors=True)
        return {"error": "never online"}
    # Let the watcher set up (chokidar scans the tree; pmr's inotify watches are in place in ms).
    time.sleep(1.0)
    times = []
    pid = first[0]
    for i in range(RUNS):
        t0 = time.time()
        (work / "app" / f"changed{i}.js").write_text(str(i))
        m = wait_until(lambda: (lambda m: m if m and m[0] != pid else None)(read_mark(mark)), 10)
        if not m:
            break
        times.append(m[1] / 1000 - t0)
        pid = m[0]
        time.sleep(0.5)  # the restart settles; the next write is a new event
    restarts0 = next((p["restarts"] for p in tool.procs()), 0)
    dpid = tool.daemon_pid()
    cpu0 = cpu_seconds(dpid)
    nm = work / "app" / "node_modules"
    for i in range(IGNORED):
        d = nm / f"pkg{i % 100}"
        if i < 100:
            d.mkdir()
        (d / f"f{i}.js").write_text(str(i))
    time.sleep(1.0)
    cpu = cpu_seconds(dpid) - cpu0
    restarts1 = next((p["restarts"] for p in tool.procs()), 0)
    tool.delete_all()
    shutil.rmtree(work, ignore_errors=True)
    return {"write_to_online": median(times) if len(times) == RUNS else None,
            "ignored_cpu": cpu, "ignored_restarts": restarts1 - restarts0}


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    res["node"] = {"start": node_start()}
    a, b = res["pmr"], res["pm2"]
    node = res["node"]["start"]
    s = Section("watch")

    def lat(r):
        if "error" in r:
            return r["error"]
        return fmt_ms(r["write_to_online"]) if r["write_to_online"] is not None else "no restart"

    def cpu(r):
        if "error" in r:
            return r["error"]
        extra = "" if r["ignored_restarts"] == 0 else f", {r['ignored_restarts']} restarts!"
        return f"{r['ignored_cpu'] * 1000:.0f} ms{extra}"

    ok = None
    if a.get("write_to_online") is not None and node is not None:
        ok = a["write_to_online"] - node <= 0.100
    ratio = "—"
    if a.get("write_to_online") and b.get("write_to_online"):
        ratio = f"{a['write_to_online'] / b['write_to_online']:.2f}"
    s.rows.append(Row(f"watch: file write → new process running (fork, watch_delay 0; node alone "
                      f"starts it in {fmt_ms(node)})", lat(a), lat(b), ratio,
                      "≤ 100 ms + app start-up", ok=ok))
    ok2 = "error" not in a and a["ignored_cpu"] <= 0.050 and a["ignored_restarts"] == 0
    s.rows.append(Row(f"watch: daemon CPU while {IGNORED:,} files change in node_modules",
                      cpu(a), cpu(b), "—", "≤ 50 ms, no restart", ok=ok2))
    s.details.append(__doc__.strip())
    return [s], res
