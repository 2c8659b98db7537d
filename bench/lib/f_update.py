"""`update` across HTTP load: a cluster app (2 workers of `hello.js`) and 3 fork apps
(`idle.js`); a thread sends GET requests on new connections to the cluster port in a loop
while `update` runs. Counted: how long `update` takes (command returns), how many app pids
survive it, the requests refused, those that failed otherwise (reset, timed out) and the
longest time without an answer, and, for pmr, how long after the command the new daemon
answers (the CLI measures it: command start to the replaced daemon's first `Ping` answer).
pmr's `update` re-executes the daemon (same pid) and hands every running process over (pipes,
IPC channels, cluster listening sockets kept open across the exec): no app is restarted.
PM2's `update` saves, kills its daemon, starts a new one and resurrects.
"""

import re

import threading
import time

from common import APPS, free_port, http_pid, wait_until
from report import Row, Section

FORK = 3
WORKERS = 2


def get(port):
    """'ok', 'refused' or 'error' for one GET on a new connection."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        r.read()
        c.close()
        return "ok" if r.status == 200 else "error"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "error"


def load(port, stop, res):
    ok = failed = refused = 0
    last_ok = time.perf_counter()
    gap = 0.0
    while not stop.is_set():
        r = get(port)
        if r == "refused":
            refused += 1
        elif r == "error":
            failed += 1
        else:
            ok += 1
            now = time.perf_counter()
            gap = max(gap, now - last_ok)
            last_ok = now
    res.update(ok=ok, failed=failed, refused=refused, gap_ms=gap * 1000)


def run_tool(tool):
    tool.kill()
    port = free_port()
    tool.run("start", APPS / "hello.js", "--name", "web", "-i", str(WORKERS),
             extra_env={"PORT": str(port)})
    for i in range(FORK):
        tool.run("start", APPS / "idle.js", "--name", f"fork{i}")
    n = FORK + WORKERS
    wait_until(lambda: sum(p["status"] == "online" for p in tool.procs()) == n, 30)
    wait_until(lambda: http_pid(port) is not None, 10)
    before = {p["pid"] for p in tool.procs()}
    daemon = tool.daemon_pid()
    stop, res = threading.Event(), {}
    t = threading.Thread(target=load, args=(port, stop, res))
    t.start()
    time.sleep(0.5)  # load before the update, for the gap to be measured from a live port
    took, cp = tool.timed("update", timeout=120)
    m = re.search(r"answering (\d+) ms after the command", cp.stdout or "")
    # Until the port answers again, then a little more load on the new workers.
    wait_until(lambda: http_pid(port) is not None, 30)
    time.sleep(0.5)
    stop.set()
    t.join()
    after = tool.procs()
    res.update(took_ms=took * 1000, kept=len(before & {p["pid"] for p in after}),
               online=sum(p["status"] == "online" for p in after),
               same_daemon=tool.daemon_pid() == daemon,
               answered_ms=float(m.group(1)) if m else None)
    tool.kill()
    return res


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}
    a, b = res["pmr"], res["pm2"]
    n = FORK + WORKERS
    s = Section("Update")

    def cell(r):
        answered = ("" if r.get("answered_ms") is None
                    else f"new daemon answering {r['answered_ms']:.0f} ms after the command, ")
        return (f"{r['took_ms']:.0f} ms, {answered}{r['online']}/{n} online, "
                f"{r['kept']}/{n} pids kept, "
                f"{r['refused']} refused and {r['failed']} failed of "
                f"{r['ok'] + r['failed'] + r['refused']} requests, "
                f"longest gap {r['gap_ms']:.0f} ms, daemon pid "
                f"{'kept' if r['same_daemon'] else 'new'}")

    ok = (a["kept"] == n and a["failed"] == 0 and a["refused"] == 0
          and a.get("answered_ms") is not None and a["answered_ms"] <= 100)
    s.rows.append(Row(f"`update` with {n} apps (cluster ×{WORKERS} under HTTP load, "
                      f"{FORK} fork)", cell(a), cell(b), "—",
                      "every pid kept, 0 refused, 0 failed, answering ≤ 100 ms", ok=ok))
    s.details.append(__doc__.strip().replace("\n", " "))
    return [s], res
