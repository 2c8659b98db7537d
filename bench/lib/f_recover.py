"""Daemon crash: 10 apps (5 fork apps running `idle.js`, 5 cluster apps of one `hello.js`
worker each), then the daemon is SIGKILLed (its pid from the home's pid file). The next CLI
call is `jlist`, timed from the call to its answer (it starts the new daemon). Counted after
it: apps listed and online, names listed twice, and processes of the dead daemon still
alive (orphans: nobody manages them any more). pmr restores its table before answering
(`state.json`, see docs/ARCHITECTURE.md); PM2's new daemon starts empty.
"""

import json
import os
import socket
import time

from common import APPS, alive, free_port, wait_until
from report import Row, Section

FORK, CLUSTER = 5, 5


def listening(path):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def jlist_after_crash(tool):
    """`jlist` as the call that starts the new daemon: PM2 prints its spawn notices (with
    `[PM2]`) before the JSON, so the JSON is the line that starts with `[{` or is `[]`."""
    out = tool.run("jlist").stdout
    line = next((l for l in out.splitlines() if l.startswith("[{") or l.strip() == "[]"), "[]")
    return [{"name": p.get("name"), "pid": p.get("pid"),
             "status": p.get("pm2_env", {}).get("status")} for p in json.loads(line)]


def run_tool(tool):
    tool.kill()
    for i in range(FORK):
        tool.run("start", APPS / "idle.js", "--name", f"fork{i}")
    for i in range(CLUSTER):
        tool.run("start", APPS / "hello.js", "--name", f"web{i}", "-i", "1",
                 extra_env={"PORT": str(free_port())})
    wait_until(lambda: sum(p["status"] == "online" for p in tool.procs()) == FORK + CLUSTER, 30)
    before = {p["pid"] for p in tool.procs()}
    daemon = tool.daemon_pid()
    os.kill(daemon, 9)
    # Its main thread is a zombie before its other threads have closed the socket.
    wait_until(lambda: not alive(daemon) and not listening(tool.home / "rpc.sock"), 10)
    t0 = time.perf_counter()
    after = jlist_after_crash(tool)
    took = time.perf_counter() - t0
    names = [p["name"] for p in after]
    online = sum(p["status"] == "online" for p in after)
    # Cluster workers end on their own once their IPC channel is closed: give them a moment.
    wait_until(lambda: all(not alive(p) for p in before) or False, 2)
    orphans = [p for p in before if alive(p)]
    res = {"took_ms": took * 1000, "listed": len(after), "online": online,
           "dups": len(names) - len(set(names)), "orphans": len(orphans)}
    tool.kill()
    for p in orphans:  # PM2 leaves them; they are this run's own apps
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
    return res


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s = Section("Daemon crash")

    def cell(r):
        return (f"{r['online']}/{FORK + CLUSTER} online, {r['dups']} duplicated, "
                f"{r['orphans']} orphans, first answer in {r['took_ms']:.0f} ms")

    ok = (a["online"] == FORK + CLUSTER and a["dups"] == 0 and a["orphans"] == 0
          and a["took_ms"] <= 1000)
    s.rows.append(Row("daemon SIGKILLed with 10 apps (5 fork, 5 cluster): next `jlist`",
                      cell(a), cell(b), "—", "10/10 online, none duplicated, no orphan, ≤ 1 s",
                      ok=ok))
    s.details.append(__doc__.strip().replace("\n", " "))
    return [s], res
