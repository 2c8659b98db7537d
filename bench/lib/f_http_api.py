"""The HTTP API (`pmr web`): with 100 idle apps (`sleep 100000`, one JSON ecosystem file), the
time of one `GET /metrics` (Prometheus text of every process, with the bearer token) over one
kept-alive loopback connection, median and 95th percentile of 100 scrapes after 5 warm-up ones:
an upper bound of the daemon's share (the client's reading is included). And what turning the
server on costs: the daemon's RSS, threads and fds with the API off (never turned on since the
daemon started), then after `pmr web`, 105 scrapes, 20 `GET /api/apps`, and one event stream
opened, read for 2.5 s and closed, each read after the same settle time. PM2 has no HTTP API
(pm2-prometheus-exporter is a separate Node process that polls PM2 over its RPC socket): its
column says so.
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
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("GET", "/metrics", headers={"Authorization": f"Bearer {tok}"})
        r = c.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t0)
        if r.status != 200:
            raise RuntimeError(f"/metrics answered {r.status}: {body[:200]!r}")
        size = len(body)
    c.close()
    return times, size


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
    r = {"rss_off": rss_kb(pid), "threads_off": threads(pid), "fds_off": fds(pid)}
    port = free_port()
    pmr.run("web", f"127.0.0.1:{port}")
    tok = token(pmr)
    times, size = scrape_times(port, tok, SCRAPES + 5)
    times = sorted(times[5:])
    r["median_ms"] = times[len(times) // 2] * 1000
    r["p95_ms"] = times[int(len(times) * 0.95) - 1] * 1000
    r["bytes"] = size
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(20):
        c.request("GET", "/api/apps", headers={"Authorization": f"Bearer {tok}"})
        c.getresponse().read()
    c.close()
    one_stream(port, tok)
    time.sleep(SETTLE)
    r.update(rss_on=rss_kb(pid), threads_on=threads(pid), fds_on=fds(pid))
    pmr.run("web", "--stop")
    pmr.delete_all()
    return r


def run(tools, quick, select):
    pmr = tools[0]
    r = figures(pmr)
    s = Section("HTTP API")
    no_api = "no HTTP API"
    s.rows.append(Row(f"`GET /metrics` with {APPS_N} apps (median / p95, {r['bytes'] // 1024} KiB)",
                      f"{r['median_ms']:.2f} / {r['p95_ms']:.2f} ms", no_api, "—", "≤ 5 ms",
                      ok=r["median_ms"] <= 5.0))
    extra = r["rss_on"] - r["rss_off"]
    s.rows.append(Row("daemon RSS added by the HTTP API (on, used, idle again)",
                      f"{extra / 1024:+.2f} MB ({fmt_mb(r['rss_off'])} → {fmt_mb(r['rss_on'])}); "
                      f"threads {r['threads_off']} → {r['threads_on']}, "
                      f"fds {r['fds_off']} → {r['fds_on']}",
                      no_api, "—", "≤ 1 MB", ok=extra <= 1024))
    s.details.append(__doc__.strip().replace("\n", " "))
    return [s], r
