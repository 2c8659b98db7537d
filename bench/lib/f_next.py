"""The seed's scene on a real Next.js 14 app (`tests/apps/nextjs`, `next build` output), 2 workers.

pmr runs the ecosystem file of the seed (`script: 'yarn start'`, start script `next start`);
PM2 runs the bin-script form (`script: 'node_modules/next/dist/bin/next', args: 'start'`), the
only one it can run in cluster mode (with `yarn start` its cluster mode loads bash's script as
JavaScript and crash-loops). The app is installed like the tests install it: `npm ci` and
`next build` into `${PMR_TEST_APPS_CACHE:-~/.cache/pmr-test-apps}/nextjs-<hash>`.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from common import BENCH, free_port, mb, median, rss_kb, wait_until
from f_http import wrk
from report import Row, Section, fmt_ms, fmt_rps, ratio

SRC = BENCH.parent / "tests" / "apps" / "nextjs"
ENV = dict(os.environ, NEXT_TELEMETRY_DISABLED="1")


def files(root, rel=""):
    """Source files, relative, in the order tests/it/apps.rs hashes them."""
    out = []
    for name in sorted(os.listdir(root / rel)):
        if name in ("node_modules", ".next"):
            continue
        r = f"{rel}/{name}" if rel else name
        if (root / r).is_dir():
            out += files(root, r)
        else:
            out.append(r)
    return out


def fnv(root, names):
    h = 0xcbf29ce484222325
    for n in names:
        for b in n.encode() + b"\0" + (root / n).read_bytes() + b"\0":
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def install():
    """The installed and built app (shared with the tests' cache)."""
    cache = Path(os.environ.get("PMR_TEST_APPS_CACHE") or Path.home() / ".cache/pmr-test-apps")
    names = files(SRC)
    d = cache / f"nextjs-{fnv(SRC, names)}"
    if (d / ".pmr-ready").exists():
        return d
    import fcntl
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "nextjs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (d / ".pmr-ready").exists():
            return d
        subprocess.run(["rm", "-rf", str(d)], check=True)
        for n in names:
            (d / n).parent.mkdir(parents=True, exist_ok=True)
            (d / n).write_bytes((SRC / n).read_bytes())
        for cmd in (["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    ["node", "node_modules/next/dist/bin/next", "build"]):
            subprocess.run(cmd, cwd=d, env=ENV, check=True, capture_output=True)
        (d / ".pmr-ready").write_text("")
    return d


def pid_of(port, timeout=2.0):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)["pid"] if r.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


def all_answer(port, n, timeout):
    seen = set()

    def probe():
        p = pid_of(port)
        if p:
            seen.add(p)
        return len(seen) >= n
    return wait_until(probe, timeout, 0.01)


def config(tool, port):
    if tool.key == "pmr":
        app = {"name": "frontend", "script": "yarn start"}
    else:
        app = {"name": "frontend", "script": "node_modules/next/dist/bin/next", "args": "start"}
    app.update(instances=2, exec_mode="cluster", env={"PORT": port, "NEXT_TELEMETRY_DISABLED": "1"})
    return f"module.exports = {json.dumps({'apps': [app]}, indent=1)};\n"


def sigkills(tool, since):
    """Lines of the tool's own log, written after byte `since`, saying a process was SIGKILLed."""
    log = tool.home / ("pmr.log" if tool.key == "pmr" else "pm2.log")
    try:
        text = log.read_bytes()[since:].decode(errors="replace")
    except FileNotFoundError:
        return []
    return [l for l in text.splitlines() if "SIGKILL" in l]


def log_size(tool):
    log = tool.home / ("pmr.log" if tool.key == "pmr" else "pm2.log")
    return log.stat().st_size if log.exists() else 0


def idle_connections(port, n):
    """n kept-alive connections that made one request and stay idle, as browsers' do."""
    import socket
    conns = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        c.recv(4096)
        conns.append(c)
    return conns


def settled_rss(pid, port, requests=500):
    """RSS after `requests` sequential keep-alive requests and a second of rest."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(requests):
        c.request("GET", "/")
        c.getresponse().read()
    c.close()
    time.sleep(1)
    return rss_kb(pid)


def managed_rss(tool, app):
    """One managed worker (cluster mode, 1 instance: it gets all the requests)."""
    port = free_port()
    tool.delete_all()
    eco = app / f"bench-{tool.key}.config.js"
    eco.write_text(config(tool, port).replace('"instances": 2', '"instances": 1'))
    try:
        tool.run("start", eco, cwd=app)
        if not all_answer(port, 1, 60):
            raise RuntimeError(f"{tool.name}: the Next.js worker does not answer")
        pid = tool.procs()[0]["pid"]
        return settled_rss(pid, port)
    finally:
        tool.delete_all()
        eco.unlink()


def scene(tool, app):
    port = free_port()
    tool.delete_all()
    eco = app / f"bench-{tool.key}.config.js"
    eco.write_text(config(tool, port))
    r = {}
    t0 = time.perf_counter()
    tool.run("start", eco, cwd=app)
    if not all_answer(port, 2, 60):
        raise RuntimeError(f"{tool.name}: the 2 Next.js workers do not answer on {port}")
    r["start"] = time.perf_counter() - t0
    r["procs"] = tool.procs()
    # Two reloads under keep-alive load: how many old workers needed SIGKILL.
    since = log_size(tool)
    old = {p["pid"] for p in tool.procs()}
    w = subprocess.Popen(["wrk", "-t1", "-c16", "-d30s", f"http://127.0.0.1:{port}/"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    idle = []
    try:
        for _ in range(2):
            time.sleep(2)
            idle += idle_connections(port, 4)
            cp = tool.run("reload", "frontend", check=False, timeout=120)
            r.setdefault("reload_rc", []).append(cp.returncode)
            all_answer(port, 2, 30)
            old |= {p["pid"] for p in tool.procs()}
    finally:
        w.kill()
        w.wait()
        for c in idle:
            c.close()
    # Let the last retired workers finish their stop (kill_timeout is 1.6 s for both).
    time.sleep(4)
    r["sigkill_lines"] = sigkills(tool, since)
    r["old_workers"] = 4
    r["after"] = [(p["status"], p["restarts"]) for p in tool.procs()]
    tool.delete_all()
    eco.unlink()
    r["worker_rss"] = median([managed_rss(tool, app) for _ in range(3)])
    return r


def by_hand(app):
    """The same Next.js worker as `node node_modules/next/dist/bin/next start`, same load."""
    port = free_port()
    p = subprocess.Popen(["node", "node_modules/next/dist/bin/next", "start"], cwd=app,
                         env=dict(ENV, PORT=str(port)), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        if not all_answer(port, 1, 60):
            raise RuntimeError("Next.js started by hand does not answer")
        return settled_rss(p.pid, port)
    finally:
        p.terminate()
        p.wait(timeout=30)


RUNS = 3


def load_once(name, tools, app):
    """Keep-alive then new-connection load on 2 workers of pmr, PM2 or a plain Node cluster."""
    port = free_port()
    tool = {"pmr": tools[0], "pm2": tools[1]}.get(name)
    eco = app / f"bench-{name}.config.js"
    plain = None
    if tool:
        tool.delete_all()
        eco.write_text(config(tool, port))
        tool.run("start", eco, cwd=app)
    else:
        plain = subprocess.Popen(
            ["node", str(BENCH / "apps" / "node-cluster.js")], cwd=app,
            env=dict(ENV, PORT=str(port), WORKERS="2", ARGS="start",
                     APP=str(app / "node_modules" / "next" / "dist" / "bin" / "next")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not all_answer(port, 2, 60):
            raise RuntimeError(f"{name}: the 2 Next.js workers do not answer on {port}")
        wrk(port, secs=2)  # warm-up: Next compiles nothing, but its caches fill
        r = {"keep": wrk(port, secs=5), "close": wrk(port, secs=5, close=True)}
        for k in ("keep", "close"):
            r[k].pop("raw", None)
        return r
    finally:
        if tool:
            tool.delete_all()
            eco.unlink()
        else:
            plain.kill()
            plain.wait()


def run(tools, quick, select):
    app = install()
    res = {t.key: scene(t, app) for t in tools}
    loads = {"pmr": [], "pm2": [], "node": []}
    for _ in range(RUNS):
        for name in loads:
            loads[name].append(load_once(name, tools, app))
    res["loads"] = loads
    for name in ("pmr", "pm2"):
        for k in ("keep", "close"):
            res[name][k] = {m: median([r[k][m] for r in loads[name]]) for m in ("rps", "p99")}
    res["by_hand_rss"] = median([by_hand(app) for _ in range(3)])
    a, b = res["pmr"], res["pm2"]
    s = Section("Next.js: the seed's scene (2 workers)")
    s.rows.append(Row("Next.js: `start` to both workers answering", fmt_ms(a["start"]),
                      fmt_ms(b["start"]), ratio(a["start"], b["start"])))
    n = {k: {m: median([r[k][m] for r in loads["node"]]) for m in ("rps", "p99")}
         for k in ("keep", "close")}
    ka, kb = a["keep"]["rps"], b["keep"]["rps"]
    s.rows.append(Row("Next.js: requests/s, keep-alive", fmt_rps(ka), fmt_rps(kb), ratio(ka, kb),
                      f"≥ 0.97× plain node cluster ({fmt_rps(n['keep']['rps'])})",
                      ok=ka >= 0.97 * n["keep"]["rps"]))
    pa, pb = a["keep"]["p99"], b["keep"]["p99"]
    s.rows.append(Row("Next.js: keep-alive p99 latency", fmt_ms(pa), fmt_ms(pb), ratio(pa, pb),
                      f"≤ PM2 (plain node cluster: {fmt_ms(n['keep']['p99'])})", ok=pa <= pb))
    ca, cb = a["close"]["rps"], b["close"]["rps"]
    s.rows.append(Row("Next.js: requests/s, new connection per request", fmt_rps(ca), fmt_rps(cb),
                      ratio(ca, cb), f"≥ PM2 (plain node cluster: {fmt_rps(n['close']['rps'])})",
                      ok=ca >= cb))
    na, nb = len(a["sigkill_lines"]), len(b["sigkill_lines"])
    s.rows.append(Row("Next.js: old workers SIGKILLed in 2 reloads (of 4)", str(na), str(nb), "—",
                      "0", ok=na == 0))
    hand = res["by_hand_rss"]
    s.rows.append(Row("Next.js: memory of a managed worker (started by hand: "
                      f"{mb(hand):.1f} MB)", f"{mb(a['worker_rss']):.1f} MB",
                      f"{mb(b['worker_rss']):.1f} MB", ratio(a["worker_rss"], b["worker_rss"]),
                      "≤ by hand + 3 MB", ok=a["worker_rss"] <= hand + 3 * 1024))
    s.details.append(
        "`tests/apps/nextjs` (Next.js 14, `next build`), `/` rewritten to an API route that "
        "answers the worker's pid. pmr: `script: 'yarn start'` (start script `next start`), "
        "PM2: `script: 'node_modules/next/dist/bin/next', args: 'start'`; both "
        "`instances: 2, exec_mode: 'cluster'`. Start: from the `start` command to both pids seen "
        "in answers. Requests/s: `wrk -t1 -c64 -d5s` after a 2 s warm-up, keep-alive and "
        f"`Connection: close`, medians of {RUNS} runs interleaved with PM2's and a plain Node "
        "cluster's (`bench/apps/node-cluster.js` running `next start` in each worker). SIGKILL: lines of the tool's own log (pmr.log / pm2.log) naming "
        "SIGKILL during 2 reloads under `wrk -c16` keep-alive load, with 4 more kept-alive "
        "connections left idle (as browsers leave them) opened before each reload (4 old "
        "workers in all). Memory: RSS of one managed worker (`instances: 1`, cluster mode) after "
        "500 sequential keep-alive requests and 1 s of rest, median of 3 starts, against `node "
        "node_modules/next/dist/bin/next start` by hand measured the same way.")
    for k in ("pmr", "pm2"):
        r = res[k]
        s.details.append(f"- {k}: keep-alive {r['keep']}, close {r['close']}, reload exit codes "
                         f"{r.get('reload_rc')}, after {r['after']}, SIGKILL lines "
                         f"{r['sigkill_lines'][:4]}.")
    return [s], res
