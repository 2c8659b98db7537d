"""`monit` left open on 20 idle apps: CPU of the daemon and of the monit process.

For each tool: 20 idle Node apps (one ecosystem file), settle, the daemon's CPU over a window
without monit (the baseline); then `<tool> monit` in a detached tmux session of our own
(private server socket, 80×24), settle, and the CPU over the same window of the daemon, of the
monit process tree (the pane's shell and everything under it) and of the tmux server (which
parses what monit writes: a monit that redraws for nothing costs there too). The tmux server is
killed by its socket at the end; apps are deleted through the tool's home.
"""

import os
import shlex
import shutil
import subprocess
import time

from common import CLK_TCK, cpu_seconds, start_apps, wait_until
from f_idle import all_online, idle_apps
from report import Row, Section, not_measurable, ratio

APPS_N = 20
SETTLE = 5.0  # seconds after the apps are online, and after monit started, before a window


def tree_cpu(root):
    """utime+stime (s) of `root` and its live descendants."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += cpu_seconds(pid)
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def pct(seconds, window):
    return 100.0 * seconds / window


def measure(tool, window):
    r = {}
    tool.delete_all()
    start_apps(tool, idle_apps(APPS_N, "mon"), "monit20")
    if not wait_until(lambda: all_online(tool, APPS_N), 60, 0.1):
        raise RuntimeError(f"{tool.name}: {APPS_N} apps did not come online")
    time.sleep(SETTLE)
    daemon = tool.daemon_pid()
    c0 = cpu_seconds(daemon)
    time.sleep(window)
    r["base"] = pct(cpu_seconds(daemon) - c0, window)

    sock = f"pmr-bench-monit-{os.getpid()}-{tool.key}"
    tmux = ["tmux", "-L", sock]
    homes = {k: v for k, v in tool.env.items()
             if k in ("PMR_HOME", "PM2_HOME", "PM2_DISABLE_VERSION_CHECK")}
    line = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in homes.items()) + " " + \
        tool.shell_cmd("monit")
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    try:
        subprocess.run(tmux + ["-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24",
                               line], check=True, env=env)
        pane = int(subprocess.run(tmux + ["display-message", "-p", "#{pane_pid}"],
                                  capture_output=True, text=True, check=True).stdout)
        server = int(subprocess.run(tmux + ["display-message", "-p", "#{pid}"],
                                    capture_output=True, text=True, check=True).stdout)
        time.sleep(SETTLE)
        screen = subprocess.run(tmux + ["capture-pane", "-p"], capture_output=True,
                                text=True).stdout
        if "mon0" not in screen:
            raise RuntimeError(f"{tool.name} monit shows no app after {SETTLE:.0f} s:\n{screen}")
        d0, m0, s0 = cpu_seconds(daemon), tree_cpu(pane), cpu_seconds(server)
        time.sleep(window)
        r["daemon"] = pct(cpu_seconds(daemon) - d0, window)
        r["monit"] = pct(tree_cpu(pane) - m0, window)
        r["tmux"] = pct(cpu_seconds(server) - s0, window)
    finally:
        path = subprocess.run(tmux + ["display-message", "-p", "#{socket_path}"],
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(tmux + ["kill-server"], capture_output=True)
        if path:  # the server leaves its socket file behind
            try:
                os.remove(path)
            except OSError:
                pass
    tool.delete_all()
    return r


def fmt_pct(x):
    return "—" if x is None else f"{x:.2f}%"


def run(tools, quick, select):
    window = 15.0 if quick else 30.0
    s = Section("monit")
    if not shutil.which("tmux"):
        s.rows.append(Row("`monit` on 20 idle apps", not_measurable("tmux is not installed"),
                          "—"))
        return [s], {}
    res = {t.key: measure(t, window) for t in tools}
    a, b = res["pmr"], res["pm2"]
    s.rows.append(Row(f"daemon CPU with `monit` open on {APPS_N} idle apps (without: "
                      f"pmr {fmt_pct(a['base'])}, PM2 {fmt_pct(b['base'])})",
                      fmt_pct(a["daemon"]), fmt_pct(b["daemon"]),
                      ratio(a["daemon"], b["daemon"]), "≤ 1% of a core",
                      ok=a["daemon"] <= 1.0))
    s.rows.append(Row(f"`monit` process CPU, {APPS_N} idle apps (tmux drawing it: pmr "
                      f"{fmt_pct(a['tmux'])}, PM2 {fmt_pct(b['tmux'])})",
                      fmt_pct(a["monit"]), fmt_pct(b["monit"]),
                      ratio(a["monit"], b["monit"]), "≤ 2% of a core",
                      ok=a["monit"] <= 2.0))
    s.details.append(
        f"{APPS_N} idle Node apps (`bench/apps/idle.js`, one ecosystem file) online and "
        f"settled {SETTLE:.0f} s; the daemon's CPU (utime+stime from `/proc/<pid>/stat`, "
        f"1/{CLK_TCK} s ticks) over {window:.0f} s without monit, then with `<tool> monit` "
        f"running in a detached tmux session at 80×24 (started {SETTLE:.0f} s before the "
        "window, after it showed the apps). `monit` CPU is the pane's process tree (the shell "
        "and the monit process); the tmux server's CPU is given beside it, since every byte "
        "monit writes is parsed there. Percent of one core. pmr's monit asks the daemon for the "
        "list once a second and draws only when what it shows changed; PM2's (blessed) "
        "redraws on a timer.")
    return [s], res
