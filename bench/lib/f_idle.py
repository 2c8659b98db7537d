"""Daemon and app memory, and CLI latency, with 10 idle apps.

For each tool: start the daemon (`ping`), let it settle, read its RSS; start 10 idle Node apps
(from one ecosystem file, or 10 `start` commands if the tool cannot read one yet), let them settle, read the daemon's RSS and each app's RSS; then time
`jlist`, `ls` and `ping` with those 10 apps; then `delete all`. The same idle app is also run
directly (`node idle.js`, 3 copies) for the app-RSS reference.
"""

import os
import socket
import subprocess
import time

from common import APPS, latency, median, pmr_rpc_times, rss_kb, start_apps, wait_until
from report import Row, Section, fmt_mb, fmt_ms, ratio

SETTLE = 2.0  # seconds between a start and a memory reading, the same for everyone


def idle_apps(n, prefix):
    return [{"name": f"{prefix}{i}", "script": str(APPS / "idle.js")} for i in range(n)]


def all_online(tool, n):
    ps = tool.procs()
    return ps if len(ps) == n and all(p["status"] == "online" and p["pid"] for p in ps) else None


def direct_app_rss(copies=3, ipc=False):
    """Median RSS of `node idle.js` started by us; with ipc, given a Node IPC channel on fd 3
    (NODE_CHANNEL_FD, as a process manager does so that process.send works)."""
    procs, socks = [], []
    try:
        for _ in range(copies):
            if ipc:
                ours, theirs = socket.socketpair()
                socks += [ours, theirs]
                env = dict(os.environ, NODE_CHANNEL_FD="3", NODE_CHANNEL_SERIALIZATION_MODE="json")
                procs.append(subprocess.Popen(
                    ["node", str(APPS / "idle.js")], env=env, pass_fds=(theirs.fileno(),),
                    preexec_fn=lambda fd=theirs.fileno(): os.dup2(fd, 3)))
            else:
                procs.append(subprocess.Popen(["node", str(APPS / "idle.js")]))
        time.sleep(SETTLE)
        return median([rss_kb(p.pid) for p in procs])
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for s in socks:
            s.close()


def measure(tool, cli_runs, do_memory, do_cli):
    r = {}
    tool.delete_all()
    tool.ping()
    time.sleep(SETTLE)
    r["idle"] = rss_kb(tool.daemon_pid())
    start_apps(tool, idle_apps(10, "idle"), "idle10")
    ps = wait_until(lambda: all_online(tool, 10), 30, 0.05)
    if not ps:
        raise RuntimeError(f"{tool.name}: the 10 idle apps did not come online")
    time.sleep(SETTLE)
    r["ten"] = rss_kb(tool.daemon_pid())
    r["apps"] = median([rss_kb(p["pid"]) for p in ps])
    if do_cli:
        for cmd in ("jlist", "ls", "ping"):
            r[cmd] = latency(tool, [cmd], cli_runs)
        if tool.key == "pmr":  # where the time goes
            r["version"] = latency(tool, ["--version"], cli_runs)
            r["rpc_list"] = median(pmr_rpc_times(tool.home, {"cmd": "list"}))
            r["rpc_ping"] = median(pmr_rpc_times(tool.home, {"cmd": "ping"}))
            r["procs_on_machine"] = sum(1 for d in os.listdir("/proc") if d.isdigit())
    tool.delete_all()
    return r


def run(tools, quick, select):
    do_memory, do_cli = "memory" in select, "cli" in select
    pmr, pm2 = tools
    res = {}
    for t, runs in ((pmr, 20 if quick else 50), (pm2, 10 if quick else 15)):
        res[t.key] = measure(t, runs, do_memory, do_cli)
    a, b = res["pmr"], res["pm2"]
    sections = []

    if do_memory:
        direct, direct_ipc = direct_app_rss(), direct_app_rss(ipc=True)
        s = Section("Memory")
        s.rows.append(Row("daemon RSS, idle", fmt_mb(a["idle"]), fmt_mb(b["idle"]),
                          ratio(a["idle"], b["idle"]), "≤ 1/7 and ≤ 6 MB",
                          ok=a["idle"] * 7 <= b["idle"] and a["idle"] <= 6 * 1024))
        s.rows.append(Row("daemon RSS, 10 idle apps", fmt_mb(a["ten"]), fmt_mb(b["ten"]),
                          ratio(a["ten"], b["ten"]), "≤ 1/7 and ≤ 8 MB",
                          ok=a["ten"] * 7 <= b["ten"] and a["ten"] <= 8 * 1024))
        ov_a, ov_b = a["apps"] - direct, b["apps"] - direct
        s.rows.append(Row(f"managed idle app RSS (direct `node`: {fmt_mb(direct)}; "
                          f"direct with an IPC channel: {fmt_mb(direct_ipc)})",
                          f"{fmt_mb(a['apps'])} ({ov_a / 1024:+.1f})",
                          f"{fmt_mb(b['apps'])} ({ov_b / 1024:+.1f})",
                          ratio(a["apps"], b["apps"]), "= direct (±1 MB)",
                          ok=abs(ov_a) <= 1024))
        s.details += [
            f"Daemon RSS read from `/proc/<daemon>/status` {SETTLE:.0f} s after `ping` started it, "
            f"then {SETTLE:.0f} s after 10 idle Node apps (`bench/apps/idle.js`, one JSON "
            "ecosystem file, or one `start` per app for a tool that cannot read one) came online. App RSS: median over the 10 apps' main pids; the direct "
            f"reference is the median of 3 copies of `node idle.js` started by the suite, read "
            f"{SETTLE:.0f} s after start, and the same with a Node IPC channel on fd 3 "
            "(`NODE_CHANNEL_FD`), which both managers give fork-mode Node apps so that "
            "`process.send` works. PM2 runs fork-mode apps inside its "
            "`ProcessContainerFork.js` wrapper, which is where its extra per-app memory comes from.",
        ]
        sections.append(s)

    if do_cli:
        s = Section("CLI latency")
        for cmd in ("jlist", "ls", "ping"):
            la, lb = a[cmd], b[cmd]
            absolute = cmd in ("jlist", "ls")
            ok = la["median"] * 20 <= lb["median"] and (not absolute or la["median"] <= 0.005)
            s.rows.append(Row(f"`{cmd}` with 10 apps, median",
                              f"{fmt_ms(la['median'])} ({fmt_ms(la['min'])}–{fmt_ms(la['max'])})",
                              f"{fmt_ms(lb['median'])} ({fmt_ms(lb['min'])}–{fmt_ms(lb['max'])})",
                              ratio(la["median"], lb["median"]),
                              "≤ 1/20" + (" and ≤ 5 ms" if absolute else ""), ok=ok))
        s.details.append(
            f"Each command run {a['jlist']['runs']}× (pmr) and {b['jlist']['runs']}× (PM2) by "
            f"{a['jlist']['how']} after 3 warm-up runs, output discarded; cells show median "
            "(min–max). The time is the whole CLI process: exec, connect, request, render, exit "
            "(for PM2 that includes starting Node and loading PM2's modules).")
        s.details.append(
            f"Where pmr's time goes (medians): `pmr --version` (process start, no daemon) "
            f"{fmt_ms(a['version']['median'])}; a `list` request sent straight to the socket "
            f"(connect, request, reply; no CLI process) {fmt_ms(a['rpc_list'])}, a `ping` "
            f"{fmt_ms(a['rpc_ping'])}. The daemon's `list` reads /proc to find each app's process "
            f"tree; there were {a['procs_on_machine']} processes on the machine.")
        sections.append(s)
    return sections, res
