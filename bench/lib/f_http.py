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

from common import write_ecosystem, cpu_seconds, APPS, free_port, http_pid, wait_until
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
    def __init__(self, port):
        import os
        self.proc = subprocess.Popen(["node", str(APPS / "hello.js")],
                                     env=dict(os.environ, PORT=str(port)))
        if not wait_until(lambda: http_pid(port), 10, 0.05):
            self.stop()
            raise RuntimeError("plain node hello.js does not answer")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- throughput

def throughput(tools, quick):
    pmr, pm2 = tools
    res, notes = {}, []
    for name in ("pmr", "pm2", "node"):
        port = free_port()
        tool = {"pmr": pmr, "pm2": pm2}.get(name)
        plain = None
        if tool:
            tool.delete_all()
            start_hello(tool, "cluster", port)
            ok, ev = cluster_check(tool, port)
            notes.append(f"{tool.name} `-i 2`: {ev}.")
            if not ok:
                tool.delete_all()
                res[name] = None
                continue
        else:
            plain = PlainNode(port)
        try:
            wrk(port, secs=2)  # warm-up (JIT, caches)
            dpid = tool.daemon_pid() if tool else None
            cpu0 = cpu_seconds(dpid) if dpid else None
            res[name] = {"keep": wrk(port), "close": wrk(port, close=True)}
            if dpid:
                res[name]["daemon_cpu"] = cpu_seconds(dpid) - cpu0
        finally:
            if tool:
                tool.delete_all()
            else:
                plain.stop()

    s = Section("Cluster throughput")
    a, b, n = res["pmr"], res["pm2"], res["node"]
    for kind, label, need in (("keep", "keep-alive", 1.0), ("close", "new connection per request", 1.15)):
        nk = n[kind]
        if a is None:
            s.rows.append(Row(f"cluster ×2, {label}: req/s", not_measurable(NO_CLUSTER),
                              fmt_rps(b[kind]["rps"]), "—",
                              f"≥ {need:.2f}× (plain node: {fmt_rps(nk['rps'])})"))
            s.rows.append(Row(f"cluster ×2, {label}: p99 latency", not_measurable(NO_CLUSTER),
                              fmt_ms(b[kind]["p99"]), "—", f"— (plain node: {fmt_ms(nk['p99'])})"))
            continue
        ak, bk = a[kind], b[kind]
        s.rows.append(Row(f"cluster ×2, {label}: req/s", fmt_rps(ak["rps"]), fmt_rps(bk["rps"]),
                          ratio(ak["rps"], bk["rps"]),
                          f"≥ {need:.2f}× (plain node: {fmt_rps(nk['rps'])})",
                          ok=ak["rps"] >= need * bk["rps"]))
        s.rows.append(Row(f"cluster ×2, {label}: p99 latency", fmt_ms(ak["p99"]), fmt_ms(bk["p99"]),
                          ratio(ak["p99"], bk["p99"]), f"— (plain node: {fmt_ms(nk['p99'])})"))
    if a is not None:
        s.rows.append(Row("cluster ×2: daemon CPU time during the 20 s of load", fmt_ms(a["daemon_cpu"]),
                          fmt_ms(b["daemon_cpu"]), ratio(a["daemon_cpu"], b["daemon_cpu"]),
                          "near zero", ok=a["daemon_cpu"] < 0.1))
    s.details.append("`wrk -t1 -c64 -d10s --latency` after a 2 s warm-up run, "
                     "`-H 'Connection: close'` for a new connection per request. "
                     + " ".join(notes))
    for name, r in res.items():
        for kind in ("keep", "close"):
            if r and (r[kind]["connect"] or r[kind]["kept"] or r[kind]["non2xx"]):
                s.details.append(f"{name} {kind}: errors connect {r[kind]['connect']}, "
                                 f"read {r[kind]['read']}, write {r[kind]['write']}, "
                                 f"timeout {r[kind]['timeout']}, non-2xx {r[kind]['non2xx']}.")
    return s, res


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
    if "reload" in select:
        s, r = reload_under_load(tools, quick)
        res["reload"] = {f"{k}/{m}": v for (k, m), v in r.items()}
        sections.append(s)
    return sections, res
