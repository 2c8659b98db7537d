"""HTTP figures with wrk on 127.0.0.1: cluster throughput, and reload under load.

Throughput: hello-world (`bench/apps/hello.js`) with 2 workers in cluster mode under pmr and
under PM2, and one plain `node` process for reference; `wrk -t1 -c64 -d10s`, with keep-alive
and with `Connection: close` (a new connection per request).

Reload under load: `wrk -t2 -c64 -d15s` (keep-alive) while the suite runs `reload hello` at 5 s
and at 10 s; wrk's error counts are kept apart: connect errors (refused connections), non-2xx
answers, and errors on established connections (read, write, timeout). Cluster (2 workers) and
fork (1 instance), pmr and PM2.

pmr's cluster mode is detected, not assumed: `-i 2` must give two stable `online` instances in
`cluster_mode` with distinct pids (no restarts after 1.5 s) and the port must answer. Before
cluster mode landed, `-i 2` ran fork instances and the second one crash-looped on EADDRINUSE.
"""

import re
import socket
import subprocess
import threading
import time

from common import write_ecosystem, cpu_seconds, APPS, free_port, http_pid, median, wait_until
from report import Row, Section, fmt_ms, fmt_rps, not_measurable, ratio

NO_CLUSTER = "pmr has no cluster mode yet"


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(out):
    def num(pattern, default=0.0):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else default

    r = {"rps": num(r"Requests/sec:\s+([\d.]+)", None),
         "requests": int(num(r"(\d+) requests in")),
         "non2xx": int(num(r"Non-2xx or 3xx responses:\s+(\d+)"))}
    m = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    r["p99"] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["connect"], r["read"], r["write"], r["timeout"] = map(int, m.groups()) if m else (0, 0, 0, 0)
    r["kept"] = r["read"] + r["write"] + r["timeout"]
    return r


def wrk_cmd(port, threads, conns, secs, close):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    return cmd + [f"http://127.0.0.1:{port}/"]


def wrk(port, threads=1, conns=64, secs=10, close=False):
    cp = subprocess.run(wrk_cmd(port, threads, conns, secs, close), capture_output=True,
                        text=True, timeout=secs + 30)
    r = parse_wrk(cp.stdout)
    r["raw"] = cp.stdout
    return r


# ---------------------------------------------------------------- apps under test

def start_hello(tool, mode, port):
    args = ["start", APPS / "hello.js", "--name", "hello"]
    if mode == "cluster":
        args += ["-i", "2"]
    tool.run(*args, extra_env={"PORT": str(port)})
    if not wait_until(lambda: http_pid(port), 10, 0.05):
        raise RuntimeError(f"{tool.name}: hello.js ({mode}) does not answer on port {port}")


def cluster_check(tool, port):
    """(True, evidence) if the tool really runs 2 cluster workers sharing the port."""
    time.sleep(1.5)
    ps = tool.procs()
    pids = {p["pid"] for p in ps}
    evidence = (f"{len(ps)} instances, modes {sorted({str(p['mode']) for p in ps})}, "
                f"statuses {sorted({str(p['status']) for p in ps})}, "
                f"restarts {[p['restarts'] for p in ps]}")
    ok = (len(ps) == 2 and len(pids) == 2 and all(p["status"] == "online" for p in ps)
          and all(p["mode"] == "cluster_mode" for p in ps)
          and all(not p["restarts"] for p in ps) and http_pid(port) is not None)
    # Which processes answer new connections (evidence only: the kernel may favour one worker).
    answered = set()
    lock = threading.Lock()

    def probe():
        for _ in range(8):
            pid = http_pid(port)
            with lock:
                answered.add(pid)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered.discard(None)
    return ok, f"{evidence}; {len(answered)} distinct pids answered 32 new connections"


class PlainNode:
    """Plain Node: one process (`workers` None) or a Node cluster primary with its workers."""

    def __init__(self, port, workers=None, app="hello.js"):
        import os
        env = dict(os.environ, PORT=str(port), APP=str(APPS / app), WORKERS=str(workers or 1))
        script = APPS / ("node-cluster.js" if workers else app)
        self.proc = subprocess.Popen(["node", str(script)], env=env)
        if not wait_until(lambda: http_pid(port), 10, 0.05):
            self.stop()
            raise RuntimeError("plain node hello.js does not answer")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- spread

def conns_by_pid(port):
    """Established connections to `port` per process holding them (ss)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    counts = {}
    for m in re.finditer(r"pid=(\d+)", out):
        counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def kept_spread(port, workers, conns):
    """max/min of the keep-alive connections each worker holds, `wrk -c conns` half-way."""
    p = subprocess.Popen(wrk_cmd(port, 1, conns, 4, False), stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    counts = conns_by_pid(port)
    p.communicate()
    shares = sorted(counts.values()) + [0] * max(0, workers - len(counts))
    return shares, (max(shares) / min(shares) if min(shares) else float("inf"))


def fresh_spread(port, workers, n=200):
    """Which worker answers each of n sequential fresh connections: the largest deviation from
    an even share, as a fraction of it."""
    counts = {}
    for _ in range(n):
        pid = http_pid(port)
        counts[pid] = counts.get(pid, 0) + 1
    shares = sorted(counts.values()) + [0] * max(0, workers - len(counts))
    even = n / workers
    return shares, max(abs(c - even) for c in shares) / even


# ---------------------------------------------------------------- throughput

# What runs the hello-world app with 2 workers: pmr (default round-robin, and
# `instance_balancing: 'kernel'`), PM2, and a plain Node cluster primary.
SETUPS = ("pmr", "pmr-kernel", "pm2", "node")
RUNS = 3


def start_setup(name, tools, port, workers=2):
    pmr, pm2 = tools
    if name == "node":
        return None, PlainNode(port, workers)
    tool = pm2 if name == "pm2" else pmr
    tool.delete_all()
    args = ["start", APPS / "hello.js", "--name", "hello", "-i", str(workers)]
    env = {"PORT": str(port)}
    if name == "pmr-kernel":
        env["NODE_CLUSTER_SCHED_POLICY"] = "none"
    tool.run(*args, extra_env=env)
    if not wait_until(lambda: http_pid(port), 10, 0.05):
        raise RuntimeError(f"{name}: hello.js does not answer on port {port}")
    return tool, None


def stop_setup(tool, plain):
    if tool:
        tool.delete_all()
    else:
        plain.stop()


def med(runs, kind, key):
    return median([r[kind][key] for r in runs if r[kind][key] is not None])


def throughput(tools, quick):
    pmr, pm2 = tools
    runs = {name: [] for name in SETUPS}
    notes = []
    port = free_port()
    tool, plain = start_setup("pmr", tools, port)
    ok, ev = cluster_check(pmr, port)
    notes.append(f"pmr `-i 2`: {ev}.")
    stop_setup(tool, plain)
    if not ok:
        s = Section("Cluster throughput")
        s.rows.append(Row("cluster ×2", not_measurable(NO_CLUSTER), "—"))
        return s, {}
    secs = 5
    for _ in range(RUNS):
        for name in SETUPS:
            port = free_port()
            tool, plain = start_setup(name, tools, port)
            try:
                wrk(port, secs=2)  # warm-up (JIT, caches)
                dpid = tool.daemon_pid() if tool else None
                cpu0 = cpu_seconds(dpid) if dpid else None
                r = {"keep": wrk(port, secs=secs)}
                if dpid:
                    r["daemon_cpu_keep"] = cpu_seconds(dpid) - cpu0
                r["close"] = wrk(port, secs=secs, close=True)
                if dpid:
                    r["daemon_cpu"] = cpu_seconds(dpid) - cpu0
                runs[name].append(r)
            finally:
                stop_setup(tool, plain)

    s = Section("Cluster throughput")
    a, b, k, n = runs["pmr"], runs["pm2"], runs["pmr-kernel"], runs["node"]
    ka, kb, kn = med(a, "keep", "rps"), med(b, "keep", "rps"), med(n, "keep", "rps")
    s.rows.append(Row("cluster ×2, keep-alive: req/s", fmt_rps(ka), fmt_rps(kb), ratio(ka, kb),
                      f"≥ 0.97× plain node cluster ({fmt_rps(kn)})", ok=ka >= 0.97 * kn))
    pa, pb, pn = med(a, "keep", "p99"), med(b, "keep", "p99"), med(n, "keep", "p99")
    s.rows.append(Row("cluster ×2, keep-alive: p99 latency", fmt_ms(pa), fmt_ms(pb), ratio(pa, pb),
                      f"≤ PM2 (plain node cluster: {fmt_ms(pn)})", ok=pa <= pb))
    ca, cb, cn = med(a, "close", "rps"), med(b, "close", "rps"), med(n, "close", "rps")
    s.rows.append(Row("cluster ×2, new connection per request: req/s", fmt_rps(ca), fmt_rps(cb),
                      ratio(ca, cb), f"≥ 2× (plain node cluster: {fmt_rps(cn)})", ok=ca >= 2 * cb))
    ck = med(k, "close", "rps")
    s.rows.append(Row("… with `instance_balancing: 'kernel'`", fmt_rps(ck), fmt_rps(cb),
                      ratio(ck, cb), "≥ 2×", ok=ck >= 2 * cb))
    s.rows.append(Row("… kernel, keep-alive: req/s, p99", f"{fmt_rps(med(k, 'keep', 'rps'))}, "
                      f"{fmt_ms(med(k, 'keep', 'p99'))}", f"{fmt_rps(kb)}, {fmt_ms(pb)}"))
    s.rows.append(Row("cluster ×2, p99 of a new connection per request",
                      fmt_ms(med(a, "close", "p99")), fmt_ms(med(b, "close", "p99")),
                      ratio(med(a, "close", "p99"), med(b, "close", "p99")),
                      f"— (kernel: {fmt_ms(med(k, 'close', 'p99'))}, plain node cluster: "
                      f"{fmt_ms(med(n, 'close', 'p99'))})"))
    dk = median([r["daemon_cpu_keep"] for r in a])
    s.rows.append(Row(f"cluster ×2: daemon CPU time during {secs} s of keep-alive load", fmt_ms(dk),
                      fmt_ms(median([r["daemon_cpu_keep"] for r in b])), "—", "near zero",
                      ok=dk < 0.1))
    da = median([r["daemon_cpu"] - r["daemon_cpu_keep"] for r in a])
    db = median([r["daemon_cpu"] - r["daemon_cpu_keep"] for r in b])
    s.rows.append(Row(f"cluster ×2: daemon CPU time during {secs} s of new connections",
                      fmt_ms(da), fmt_ms(db), ratio(da, db)))
    s.details.append(f"`wrk -t1 -c64 -d{secs}s --latency` after a 2 s warm-up run, keep-alive then "
                     "`-H 'Connection: close'` (a new connection per request); medians of "
                     f"{RUNS} runs, the four setups interleaved in each (pmr, pmr with "
                     "`NODE_CLUSTER_SCHED_POLICY=none` i.e. kernel balancing, PM2, a plain Node "
                     "cluster primary `bench/apps/node-cluster.js`). " + " ".join(notes))
    for name, rs in runs.items():
        for r in rs:
            for kind in ("keep", "close"):
                if r[kind]["connect"] or r[kind]["kept"] or r[kind]["non2xx"]:
                    s.details.append(f"{name} {kind}: errors connect {r[kind]['connect']}, "
                                     f"read {r[kind]['read']}, write {r[kind]['write']}, "
                                     f"timeout {r[kind]['timeout']}, non-2xx {r[kind]['non2xx']}.")
    return s, {name: [{k: {kk: vv for kk, vv in v.items() if kk != "raw"} if isinstance(v, dict)
                       else v for k, v in r.items()} for r in rs] for name, rs in runs.items()}


def spread(tools):
    """How evenly the workers share connections: 16 keep-alive connections per worker (held,
    counted with ss half-way through a wrk run), and 200 sequential fresh connections."""
    s = Section("Cluster spread")
    res = {}
    for workers in (2, 4):
        for name in ("pmr", "pmr-kernel", "pm2"):
            kept, fresh = [], []
            for _ in range(RUNS):
                port = free_port()
                tool, plain = start_setup(name, tools, port, workers)
                try:
                    wait_until(lambda: len(tool.procs()) == workers and all(
                        p["status"] == "online" for p in tool.procs()), 10, 0.1)
                    kept.append(kept_spread(port, workers, 16 * workers))
                    fresh.append(fresh_spread(port, workers))
                finally:
                    stop_setup(tool, plain)
            res[(name, workers)] = (kept, fresh)
        for name in ("pmr", "pmr-kernel"):
            (ka, fa), (kb, fb) = res[(name, workers)], res[("pm2", workers)]
            label = "" if name == "pmr" else " (`kernel`)"
            rk = median([r for _, r in ka])
            s.rows.append(Row(f"{workers} workers{label}, {16 * workers} keep-alive connections: "
                              "max/min per worker", f"{rk:.2f}",
                              f"{median([r for _, r in kb]):.2f}", "—", "≤ 1.5",
                              ok=(rk <= 1.5) if name == "pmr" else None))
            rf = median([r for _, r in fa])
            s.rows.append(Row(f"{workers} workers{label}, 200 fresh connections: largest "
                              "deviation from even", f"{rf:.0%}",
                              f"{median([r for _, r in fb]):.0%}", "—", "≤ 25%",
                              ok=(rf <= 0.25) if name == "pmr" else None))
    s.details.append(f"Medians of {RUNS} runs. Shares per run: " + "; ".join(
        f"{name} ×{w}: kept {[k for k, _ in kept]}, fresh {[f for f, _ in fresh]}"
        for (name, w), (kept, fresh) in res.items()))
    return s, {f"{n}/{w}": {"kept": [k for k, _ in kept], "fresh": [f for f, _ in fresh]}
               for (n, w), (kept, fresh) in res.items()}


# ---------------------------------------------------------------- reload under load

class Prober(threading.Thread):
    """Opens a new connection every 5 ms and sends one request (`Connection: close`), counting
    refused connections apart from other failures: wrk reports a refused reconnect as a *write*
    error (its connect is non-blocking), so its counts alone cannot tell the two apart."""

    REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.counts = {"ok": 0, "refused": 0, "non2xx": 0, "error": 0}

    def one(self):
        s = socket.socket()
        s.settimeout(2)
        try:
            try:
                s.connect(("127.0.0.1", self.port))
            except ConnectionRefusedError:
                return "refused"
            s.sendall(self.REQ)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 "):
                return "error"
            return "ok" if data[9:10] == b"2" else "non2xx"
        except OSError:
            return "error"
        finally:
            s.close()

    def run(self):
        while not self.stop.is_set():
            self.counts[self.one()] += 1
            time.sleep(0.005)


def reload_run(tool, mode, secs=15, at=(5, 10)):
    port = free_port()
    tool.delete_all()
    if mode == "listen":
        # pmr only: fork mode with the socket passed the systemd way (`listen` option).
        app = {"name": "hello", "script": str(APPS / "hello_fd.js"), "listen": [f"127.0.0.1:{port}"]}
        tool.run("start", write_ecosystem("listen", [app], ".json"))
        if not wait_until(lambda: http_pid(port), 10, 0.05):
            raise RuntimeError("hello_fd.js does not answer")
    else:
        start_hello(tool, mode, port)
    if mode == "cluster":
        ok, ev = cluster_check(tool, port)
        if not ok:
            tool.delete_all()
            return None, ev
    else:
        time.sleep(0.5)
        ev = ""
    w = subprocess.Popen(wrk_cmd(port, 2, 64, secs, False), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    probe = Prober(port)
    probe.start()
    reloads = []
    try:
        for t in at:
            time.sleep(max(0.0, t0 + t - time.monotonic()))
            t1 = time.monotonic()
            cp = tool.run("reload", "hello", check=False, timeout=60)
            reloads.append((time.monotonic() - t1, cp.returncode, cp.stderr.strip()[-200:]))
        out, _ = w.communicate(timeout=secs + 30)
    finally:
        probe.stop.set()
        probe.join()
        if w.poll() is None:
            w.kill()
            w.wait()
    r = parse_wrk(out)
    r["probe"] = probe.counts
    r["refused"] = probe.counts["refused"] + r["connect"]
    r["bad"] = probe.counts["non2xx"] + r["non2xx"]
    r["reloads"] = reloads
    r["after"] = [(p["status"], p["restarts"]) for p in tool.procs()]
    tool.delete_all()
    return r, ev


def reload_under_load(tools, quick):
    res = {}
    for mode in ("cluster", "fork"):
        for t in tools:
            r, ev = reload_run(t, mode)
            res[(t.key, mode)] = r if r is not None else ev
    s = Section("Reload under load")
    b = res[("pm2", "cluster")]
    a = res[("pmr", "cluster")]
    labels = ("reload ×2 under load, cluster: refused connections",
              "reload ×2 under load, cluster: non-2xx answers",
              "reload ×2 under load, cluster: kept-alive connection errors")
    if not isinstance(a, dict):
        nm = not_measurable(NO_CLUSTER)
        s.rows.append(Row(labels[0], nm, str(b["refused"]), "—", "0"))
        s.rows.append(Row(labels[1], nm, str(b["bad"]), "—", "0"))
        s.rows.append(Row(labels[2], nm, str(b["kept"]), "—", "≤ 1/4 of PM2"))
    else:
        s.rows.append(Row(labels[0], str(a["refused"]), str(b["refused"]), "—", "0",
                          ok=a["refused"] == 0))
        s.rows.append(Row(labels[1], str(a["bad"]), str(b["bad"]), "—", "0", ok=a["bad"] == 0))
        s.rows.append(Row(labels[2], str(a["kept"]), str(b["kept"]), ratio(a["kept"], b["kept"]),
                          "≤ 1/4 of PM2", ok=a["kept"] * 4 <= b["kept"]))
    fa, fb = res[("pmr", "fork")], res[("pm2", "fork")]
    la, _ = reload_run(tools[0], "listen")
    res[("pmr", "listen")] = la

    def trio(r):
        return f"{r['refused']} / {r['bad']} / {r['kept']}"

    s.rows.append(Row("reload ×2 under load, fork (= restart): refused / non-2xx / other errors",
                      trio(fa), trio(fb), "—", "— (fork reload is a restart)"))
    s.rows.append(Row("reload ×2 under load, fork with `listen` (socket passing): refused / non-2xx / other errors",
                      trio(la), "no socket passing", "—", "0 refused", ok=la["refused"] == 0))
    s.details.append(
        "`wrk -t2 -c64 -d15s` (keep-alive) with `reload hello` at 5 s and 10 s, and beside it a "
        "probe opening a new connection every 5 ms for one request. Refused connections = the "
        "probe's refused connects + wrk's connect errors; non-2xx = both tools' non-2xx answers; "
        "kept-alive connection errors = wrk's read + write + timeout errors. Caveat: wrk counts "
        "a *refused reconnect* as a write error (non-blocking connect), so in fork mode, where "
        "the port closes during the restart, 'other errors' mostly are refused reconnects; in "
        "cluster mode the port never closes (the probe sees no refusal) and they are errors on "
        "established connections.")
    for (k, mode), r in sorted(res.items()):
        if not isinstance(r, dict):
            s.details.append(f"- {k} {mode}: {not_measurable(NO_CLUSTER)} ({r}).")
            continue
        rl = ", ".join(f"{fmt_ms(d)} (exit {rc})" for d, rc, _ in r["reloads"])
        fails = [e for _, rc, e in r["reloads"] if rc]
        s.details.append(
            f"- {k} {mode}: {r['requests']} requests, {fmt_rps(r['rps'])}; errors connect "
            f"{r['connect']}, read {r['read']}, write {r['write']}, timeout {r['timeout']}, "
            f"non-2xx {r['non2xx']}; probe {r['probe']}; reload commands took {rl}; "
            f"after (status, restarts): {r['after']}"
            + (f"; reload errors: {fails}" if fails else "") + ".")
    return s, res


def run(tools, quick, select):
    sections, res = [], {}
    if "cluster" in select:
        s, res["throughput"] = throughput(tools, quick)
        sections.append(s)
    if "spread" in select:
        s, res["spread"] = spread(tools)
        sections.append(s)
    if "reload" in select:
        s, r = reload_under_load(tools, quick)
        res["reload"] = {f"{k}/{m}": v for (k, m), v in r.items()}
        sections.append(s)
    return sections, res
