"""Container runtime: `pmr runtime` (= `pmr-runtime`) and PM2's `pm2-runtime`, in the foreground.

Each run gets a fresh home of its own (no daemon there) and one app, `bench/apps/say.js`, which
prints `ready`. Figures:
- start → the app's `ready` line on the runtime's stdout (3 runs, median);
- the runtime process's own RSS with that one idle app (the app is a separate process in both);
- SIGTERM → the runtime has exited, and its exit code;
- the app exits by itself with code 3 (`autorestart: false`): how long after its `ready` line the
  runtime exits, and its exit code (pm2-runtime polls for 0 online apps 4 s + 3 × 2 s).
The runtime is stopped through its home if it is still running at the end of a run.
"""

import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from common import APPS, BENCH, median, rss_kb
from report import Row, Section, fmt_mb, fmt_ms

RUNS = 3


def runtime_cmd(tool):
    if tool.key == "pmr":
        return tool.argv + ["runtime"]
    return [str(Path(tool.argv[0]).parent / "pm2-runtime")]


def home_env(tool, home):
    home.mkdir(parents=True, exist_ok=True)
    env = dict(tool.env)
    if tool.key == "pmr":
        env["PMR_HOME"] = str(home)
    else:
        (home / "touch").touch()
        env["PM2_HOME"] = str(home)
    return env


def read_until(proc, want, timeout):
    """Read proc's stdout lines until one equals `want`; the time it came, or None."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=deadline - time.monotonic()):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        buf += chunk
        *lines, buf = buf.split(b"\n")
        if any(l.strip() == want.encode() for l in lines):
            return time.monotonic()
    return None


def wait_exit(proc, timeout):
    """The exit code and when it came, or (None, None) after the timeout."""
    try:
        code = proc.wait(timeout=timeout)
        return code, time.monotonic()
    except subprocess.TimeoutExpired:
        return None, None


def stop(tool, proc, env):
    """Make sure nothing of this run is left: SIGTERM (it stops its apps), then kill via home."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        if wait_exit(proc, 30)[0] is None:
            subprocess.run(tool.argv + ["kill"], env=env, capture_output=True, timeout=60)
            proc.kill()
            proc.wait()
    proc.stdout.close()


def one_run(tool, work, n, exit_after=None):
    home = work / f"runtime-{tool.key}-{n}"
    env = home_env(tool, home)
    app = {"name": "say", "script": str(APPS / "say.js")}
    if exit_after:
        app.update(autorestart=False, env={"EXIT_AFTER_MS": str(exit_after), "EXIT_CODE": "3"})
    eco = work / f"runtime-{tool.key}-{n}.json"
    eco.write_text(json.dumps({"apps": [app]}))
    t0 = time.monotonic()
    proc = subprocess.Popen(runtime_cmd(tool) + [str(eco)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=work)
    res = {}
    try:
        ready = read_until(proc, "ready", 30)
        res["ready"] = None if ready is None else ready - t0
        if ready is None:
            return res
        if exit_after:
            code, at = wait_exit(proc, 60)
            res["auto_exit"] = None if at is None else at - ready - exit_after / 1000
            res["auto_code"] = code
            return res
        time.sleep(1.0)  # settle before reading memory
        res["rss"] = rss_kb(proc.pid)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, at = wait_exit(proc, 30)
        res["term"] = None if at is None else at - t
        res["term_code"] = code
        return res
    finally:
        stop(tool, proc, env)


def run_tool(tool):
    work = BENCH / ".work"
    work.mkdir(exist_ok=True)
    runs = [one_run(tool, work, n) for n in range(RUNS)]
    auto = one_run(tool, work, "auto", exit_after=200)
    return {"runs": runs, "auto": auto}


def run(tools, quick, select):
    res = {t.key: run_tool(t) for t in tools}

    def med(r, k):
        return median([x.get(k) for x in r["runs"]])

    def ratio(a, b):
        return "—" if not a or not b else f"{a / b:.3f}×"

    def codes(r, k):
        return "/".join(str(x.get(k)) for x in r["runs"])

    a, b = res["pmr"], res["pm2"]
    s = Section("Container runtime (`pmr runtime` / `pm2-runtime`)")
    ra, rb = med(a, "ready"), med(b, "ready")
    s.rows.append(Row("runtime: start → first app line on stdout, median of 3", fmt_ms(ra),
                      fmt_ms(rb), ratio(ra, rb), "—"))
    ma, mb_ = med(a, "rss"), med(b, "rss")
    s.rows.append(Row("runtime: its own RSS with 1 idle app", fmt_mb(ma), fmt_mb(mb_),
                      ratio(ma, mb_), "—"))
    ta, tb = med(a, "term"), med(b, "term")
    s.rows.append(Row("runtime: SIGTERM → exited (exit codes)",
                      f"{fmt_ms(ta)} ({codes(a, 'term_code')})",
                      f"{fmt_ms(tb)} ({codes(b, 'term_code')})", ratio(ta, tb), "exit 0",
                      ok=all(x.get("term_code") == 0 for x in a["runs"])))
    xa, xb = a["auto"], b["auto"]
    s.rows.append(Row("runtime: the app exits 3 by itself → runtime exits after (exit code)",
                      f"{fmt_ms(xa.get('auto_exit'))} ({xa.get('auto_code')})",
                      f"{fmt_ms(xb.get('auto_exit'))} ({xb.get('auto_code')})",
                      ratio(xa.get("auto_exit"), xb.get("auto_exit")), "exit 3",
                      ok=xa.get("auto_code") == 3))
    s.details.append("Each run uses a fresh home and one app (`bench/apps/say.js`); the "
                     "runtime's RSS is its own process only (pm2-runtime runs PM2's daemon in "
                     "its process too).")
    return [s], res
