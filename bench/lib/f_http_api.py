"""The HTTP API (`pmr web`): with 100 idle apps (`sleep 100000`, one JSON ecosystem file), the
time of one `GET /metrics` (Prometheus text of every process, with the bearer token) over one
kept-alive loopback connection, median and 95th percentile of 100 scrapes after 5 warm-up ones:
at the daemon (its `Server-Timing` header: from the request's arrival to the body ready, which
includes sampling CPU and memory of every process tree) and at the client. And what turning
the server on costs: the daemon's RSS (and of it RssAnon: heap and stacks; the rest is pages of
the binary's code), threads and fds with the API never on since the daemon started, then 3 s
after `pmr web`, then 3 s after 105 scrapes, 20 `GET /api/apps` and one event stream opened,
read for 2.5 s and closed. PM2 has no HTTP API (pm2-prometheus-exporter is a separate Node
process that polls PM2 over its RPC socket): its column says so.
"""

import http.client
import socket
import time

from common import free_port, rss_kb, start_apps, wait_until
from f_scale import fds, online, sleep_apps, threads
from report import Row, Section, fmt_mb

APPS_N = 100
SETTLE = 3.0
SCRAPES = 100


def token(tool):
    return (tool.home / "http.token").read_text().strip()


def scrape_times(port, tok, n):
    """(client seconds, daemon seconds from its Server-Timing header, body size) per scrape."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, daemon = [], []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", "/metrics", headers={"Authorization": f"Bearer {tok}"})
        r = c.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t0)
        if r.status != 200:
            raise RuntimeError(f"/metrics answered {r.status}: {body[:200]!r}")
        timing = r.getheader("Server-Timing") or ""
        daemon.append(float(timing.split("dur=")[1]) / 1000 if "dur=" in timing else None)
        size = len(body)
    c.close()
    return times, daemon, size


def anon_kb(pid):
    """RssAnon: the daemon's heap and stacks (VmRSS also counts pages of the binary's code)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000


def one_stream(port, tok):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET /api/events HTTP/1.0\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
        end = time.monotonic() + 2.5
        got = b""
        while time.monotonic() < end:
            try:
                got += s.recv(65536)
            except socket.timeout:
                break
        if b"event: monit" not in got:
            raise RuntimeError(f"no monit event in the stream: {got[:300]!r}")


def figures(pmr):
    pmr.delete_all()
    pmr.kill()  # a daemon that never had the API on
    pmr.run("ping")
    start_apps(pmr, sleep_apps(APPS_N, "h"), "http100")
    if not wait_until(lambda: online(pmr, APPS_N), 60, 0.1):
        raise RuntimeError("100 apps did not come online")
    time.sleep(SETTLE)
    pid = pmr.daemon_pid()
    r = {"rss_off": rss_kb(pid), "anon_off": anon_kb(pid), "threads_off": threads(pid),
         "fds_off": fds(pid)}
    port = free_port()
    pmr.run("web", f"127.0.0.1:{port}")
    time.sleep(SETTLE)
    r.update(rss_idle=rss_kb(pid), anon_idle=anon_kb(pid), threads_idle=threads(pid),
             fds_idle=fds(pid))
    tok = token(pmr)
    times, daemon, size = scrape_times(port, tok, SCRAPES + 5)
    times, daemon = times[5:], [d for d in daemon[5:] if d is not None]
    r["median_ms"], r["p95_ms"] = pct(times, 0.5), pct(times, 0.95)
    r["daemon_median_ms"] = pct(daemon, 0.5) if daemon else None
    r["daemon_p95_ms"] = pct(daemon, 0.95) if daemon else None
    r["bytes"] = size
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(20):
        c.request("GET", "/api/apps", headers={"Authorization": f"Bearer {tok}"})
        c.getresponse().read()
    c.close()
    one_stream(port, tok)
    time.sleep(SETTLE)
    r.update(rss_on=rss_kb(pid), anon_on=anon_kb(pid), threads_on=threads(pid), fds_on=fds(pid))
    pmr.run("web", "--stop")
    pmr.delete_all()
    return r


def run(tools, quick, select):
    pmr = tools[0]
    r = figures(pmr)
    s = Section("HTTP API")
    no_api = "no HTTP API"
    ok = r["daemon_median_ms"] is not None and r["daemon_median_ms"] <= 5.0
    s.rows.append(Row(f"`GET /metrics` with {APPS_N} apps ({r['bytes'] // 1024} KiB): at the "
                      "daemon (Server-Timing), median / p95; at the client",
                      f"{r['daemon_median_ms']:.2f} / {r['daemon_p95_ms']:.2f} ms; "
                      f"{r['median_ms']:.2f} / {r['p95_ms']:.2f} ms",
                      no_api, "—", "≤ 5 ms at the daemon", ok=ok))

    def cost(key):
        return (f"RSS {(r['rss_' + key] - r['rss_off']) / 1024:+.2f} MB "
                f"(heap and stacks {(r['anon_' + key] - r['anon_off']) / 1024:+.2f} MB), "
                f"threads {r['threads_off']} → {r['threads_' + key]}, "
                f"fds {r['fds_off']} → {r['fds_' + key]}")

    s.rows.append(Row("daemon with the HTTP API on, idle (vs never on: "
                      f"{fmt_mb(r['rss_off'])})", cost("idle"), no_api, "—", "≤ 1 MB",
                      ok=r["rss_idle"] - r["rss_off"] <= 1024))
    s.rows.append(Row("… after 105 scrapes, 20 `GET /api/apps` and an event stream",
                      cost("on"), no_api, "—", "≤ 1 MB",
                      ok=r["rss_on"] - r["rss_off"] <= 1024))
    s.details.append(__doc__.strip().replace("\n", " "))
    return [s], r
