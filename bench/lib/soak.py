"""bench/soak: restarts, crash loops, log bursts and CLI calls against 100 apps for N minutes,
with the daemon's RSS, threads, open fds and CPU printed every minute.

Apps (one JSON ecosystem file): 90 idle Node apps (`idle.js`), 5 crash loops (`crash.js`, exits
after 100 ms, restarted after 500 ms, no restart limit) and 5 loggers (`burst.js`, 20,000 lines of
100 B then idle). Every second: 2 `restart` of random idle apps, a `jlist` and an `ls`; every
15 s: `restart` of the 5 loggers (a log burst each). With --check, the run fails if the RSS or
the fd count of the last minute is more than 20% above that of the first minute after the
warm-up (the first minute), or if a CLI call failed.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import APPS, CLK_TCK, Pmr, cpu_seconds, rss_kb, wait_until

GROWTH_LIMIT = 1.20


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("Threads:"))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def apps():
    out = [{"name": f"idle{i}", "script": str(APPS / "idle.js")} for i in range(90)]
    out += [{"name": f"crash{i}", "script": str(APPS / "crash.js"), "restart_delay": 500,
             "max_restarts": 1_000_000_000, "min_uptime": 50} for i in range(5)]
    out += [{"name": f"log{i}", "script": str(APPS / "burst.js"),
             "env": {"BURST_LINES": "20000"}} for i in range(5)]
    return out


def main():
    ap = argparse.ArgumentParser(prog="bench/soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--check", action="store_true",
                    help="fail if RSS or fds grew > 20%% (first minute after warm-up vs last)")
    args = ap.parse_args()
    if args.check and args.minutes < 3:
        ap.error("--check needs at least 3 minutes (one of warm-up)")
    home = Path(tempfile.mkdtemp(prefix="pmr-soak-"))
    pmr = Pmr(home / "pmr", os.environ["PMR_BIN"])
    eco = home / "soak.json"
    eco.write_text(json.dumps({"apps": apps()}))
    stop = threading.Event()
    calls = {"n": 0, "failed": 0, "max": 0.0}
    lock = threading.Lock()

    def cli(*a):
        t0 = time.perf_counter()
        ok = pmr.run(*a, check=False, timeout=60).returncode == 0
        dt = time.perf_counter() - t0
        with lock:
            calls["n"] += 1
            calls["failed"] += 0 if ok else 1
            calls["max"] = max(calls["max"], dt)

    def churn():
        tick = 0
        while not stop.is_set():
            t0 = time.monotonic()
            for _ in range(2):
                cli("restart", f"idle{random.randrange(90)}")
            cli("jlist")
            cli("ls")
            if tick % 15 == 0:
                cli("restart", "/^log/")
            tick += 1
            stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    rows = []
    try:
        pmr.run("start", eco)
        if not wait_until(lambda: len(pmr.procs()) == 100, 120, 0.5):
            sys.exit("the 100 apps did not start")
        pid = pmr.daemon_pid()
        worker = threading.Thread(target=churn, daemon=True)
        worker.start()
        print("minute  rss_MB  threads  fds  cpu_%  cli_calls  cli_failed  cli_max_s  restarts",
              flush=True)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, t0 + 60 - time.monotonic()))
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            with lock:
                c = dict(calls)
                calls["max"] = 0.0
            restarts = sum(p["restarts"] or 0 for p in pmr.procs())
            row = {"minute": minute, "rss": rss_kb(pid), "threads": threads(pid),
                   "fds": fds(pid), "cpu": 100 * (cpu1 - cpu0) / (t1 - t0), **c,
                   "restarts": restarts}
            rows.append(row)
            print(f"{minute:6d}  {row['rss'] / 1024:6.1f}  {row['threads']:7d}  {row['fds']:3d}  "
                  f"{row['cpu']:5.1f}  {c['n']:9d}  {c['failed']:10d}  {c['max']:9.2f}  "
                  f"{restarts:8d}", flush=True)
            cpu0, t0 = cpu1, t1
    finally:
        stop.set()
        pmr.kill()
        shutil.rmtree(home, ignore_errors=True)
    (Path(__file__).parent.parent / ".work").mkdir(exist_ok=True)
    (Path(__file__).parent.parent / ".work" / "soak.json").write_text(json.dumps(rows, indent=1))
    if args.check:
        first, last = rows[1], rows[-1]
        bad = [f"{k}: {first[k]} → {last[k]} (> {GROWTH_LIMIT:.2f}×)" for k in ("rss", "fds")
               if last[k] > first[k] * GROWTH_LIMIT]
        if calls["failed"] or rows[-1]["failed"]:
            bad.append(f"{rows[-1]['failed']} CLI call(s) failed")
        if bad:
            sys.exit("soak check failed: " + "; ".join(bad))
        print(f"soak check passed: RSS {first['rss'] / 1024:.1f} → {last['rss'] / 1024:.1f} MB, "
              f"fds {first['fds']} → {last['fds']} (minute 2 vs {len(rows)})")


if __name__ == "__main__":
    main()
