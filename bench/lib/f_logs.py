"""Log burst: an app writes 200k numbered lines of 100 bytes to stdout as fast as it can, batched
(1,000 lines per write, `burst.js`) and per line (one `console.log`, so one write(), per line,
`burst-lines.js`).

From the `start` command until the out log files hold all 20 MB: the time, the lines lost (by
sequence number, over the file and its rotated pieces `<name>-out__<date>.log`: pmr rotates at
10 MB by default; a second pmr-only pass rotates at 1 MB), the daemon's CPU time (utime+stime of /proc/<daemon>/stat, all threads, not
children) over that interval, and the daemon's RSS afterwards. The app stays idle after its
burst, so nothing restarts it. A few rounds with fresh app names (fresh files); medians shown.
"""

import re
import threading
import time

from common import APPS, cpu_between, cpu_seconds, median, rss_kb, thread_cpu_ns
from report import Row, Section, fmt_mb, fmt_ms, ratio

LINES = 200_000
LINE = re.compile(rb"^(\d{8}) x{90}$")
PING = re.compile(rb"ping (\d+) (\d+\.\d+)")


def pieces(path):
    """The log file and its rotated pieces (uncompressed), oldest first."""
    rotated = sorted(path.parent.glob(path.stem + "__*" + path.suffix), key=lambda p: p.stat().st_mtime)
    return rotated + ([path] if path.exists() else [])


def size_of(path):
    total = 0
    for p in pieces(path):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def count(path):
    """(lines, distinct sequence numbers, whether they come in order across the pieces)."""
    seen = set()
    total = 0
    last, in_order = -1, True
    for p in pieces(path):
        with open(p, "rb") as f:
            for line in f:
                total += 1
                m = LINE.match(line.rstrip(b"\n"))
                if m:
                    n = int(m.group(1))
                    in_order = in_order and n > last
                    last = n
                    seen.add(n)
    return total, len(seen), in_order


def one_round(tool, name, app="burst.js"):
    path = tool.home / "logs" / f"{name}-out.log"
    pid = tool.daemon_pid()
    cpu0, ns0 = cpu_seconds(pid), thread_cpu_ns(pid)
    t0 = time.perf_counter()
    starter = tool.popen("start", APPS / app, "--name", name,
                         extra_env={"BURST_LINES": str(LINES)})
    size, last_size, last_change = 0, -1, time.perf_counter()
    done = None
    while True:
        size = size_of(path)
        now = time.perf_counter()
        if size >= LINES * 100:
            done = now - t0
            break
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change > 5 and now - t0 > 10:
            break  # nothing more is coming
        time.sleep(0.002)
    cpu1, ns1 = cpu_seconds(pid), thread_cpu_ns(pid)
    starter.communicate(timeout=60)
    time.sleep(0.2)
    rss = rss_kb(pid)
    outs = [p["out"] for p in tool.procs() if p["name"] == name]
    if outs and outs[0] != str(path):
        raise RuntimeError(f"{tool.name} wrote {name}'s log to {outs[0]}, expected {path}")
    total, unique, in_order = count(path)
    rotated = len(pieces(path)) - 1
    tool.run("delete", name)
    return {"time": done, "cpu": cpu1 - cpu0, "cpu_ns": cpu_between(ns0, ns1), "rss": rss, "lost": LINES - unique,
            "lines": total, "in_order": in_order, "rotated": rotated}


def latency(tool, name="ping", count=30):
    """A quiet app writes a line every 100 ms holding the time it wrote it: how long until the
    line is in its log file (the file polled every ~0.2 ms) and until `logs --raw` prints it."""
    path = tool.home / "logs" / f"{name}-out.log"
    tool.run("start", APPS / "ping-lines.js", "--name", name)
    follower = tool.popen("logs", name, "--raw", "--lines", "0")
    streamed = {}

    def follow():
        for line in follower.stdout:
            at = time.time() * 1000
            m = PING.search(line.encode())
            if m:
                streamed[int(m.group(1))] = at - float(m.group(2))

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    in_file, seen, size = {}, 0, 0
    deadline = time.time() + 30
    try:
        while len(in_file) < count + 5 and time.time() < deadline:
            try:
                new = path.stat().st_size
            except FileNotFoundError:
                new = 0
            if new != size:
                at = time.time() * 1000
                with open(path, "rb") as f:
                    f.seek(size)
                    chunk = f.read()
                size += len(chunk)
                for m in PING.finditer(chunk):
                    in_file.setdefault(int(m.group(1)), at - float(m.group(2)))
            time.sleep(0.0002)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        tool.run("delete", name)
    # The first lines may come before the follower subscribed: skip them.
    keys = sorted(k for k in in_file if k >= 5)[:count]
    f = [in_file[k] for k in keys]
    st = [streamed[k] for k in keys if k in streamed]
    return {"file": (median(f), max(f)) if f else None,
            "stream": (median(st), max(st)) if st else None, "n": len(f), "n_stream": len(st)}


def summary(rs):
    return {"rounds": rs, "time": median([r["time"] for r in rs]),
            "cpu": sum(r["cpu"] for r in rs) / len(rs), "rss": median([r["rss"] for r in rs]),
            "cpu_ns": median([r["cpu_ns"] for r in rs]),
            "lost": max(r["lost"] for r in rs), "in_order": all(r["in_order"] for r in rs)}


def run(tools, quick, select):
    rounds = 2 if quick else 5
    res, lines, lat = {}, {}, {}
    for t in tools:
        t.delete_all()
        t.ping()
        time.sleep(0.5)
        res[t.key] = summary([one_round(t, f"burst{i}") for i in range(rounds)])
        lines[t.key] = summary([one_round(t, f"lines{i}", "burst-lines.js") for i in range(rounds)])
        lat[t.key] = latency(t)
    # pmr only: the same burst with rotation at 1 MB (about 20 rotations during it).
    pmr = next(t for t in tools if t.key == "pmr")
    pmr.run("set", "pmr-logrotate:max_size", "1M")
    rot = [one_round(pmr, f"rot{i}") for i in range(2 if quick else 3)]
    pmr.run("set", "pmr-logrotate:max_size", "10M")
    a, b = res["pmr"], res["pm2"]
    s = Section("Log burst")

    def t(r):
        return fmt_ms(r["time"]) if r["time"] is not None else "incomplete"

    s.rows.append(Row("log burst 200k×100 B: all lines in the file", t(a), t(b),
                      ratio(a["time"], b["time"]), "—"))
    s.rows.append(Row("log burst: lines lost (worst round)", str(a["lost"]), str(b["lost"]), "—",
                      "0", ok=a["lost"] == 0))
    rot_lost = max(r["lost"] for r in rot)
    rot_order = all(r["in_order"] for r in rot)
    s.rows.append(Row("log burst with rotation at 1 MB: lines lost / in order / files",
                      f"{rot_lost} / {'yes' if rot_order else 'NO'} / {min(r['rotated'] for r in rot) + 1}+",
                      "no built-in rotation", "—", "0 lost, in order",
                      ok=rot_lost == 0 and rot_order))
    s.rows.append(Row("log burst: daemon CPU time (median)", fmt_ms(a["cpu_ns"]),
                      fmt_ms(b["cpu_ns"]), ratio(a["cpu_ns"], b["cpu_ns"]), "≤ 1/5",
                      ok=a["cpu_ns"] * 5 <= b["cpu_ns"]))
    s.rows.append(Row("log burst: daemon RSS after", fmt_mb(a["rss"]), fmt_mb(b["rss"]),
                      ratio(a["rss"], b["rss"]), "—"))
    la, lb = lines["pmr"], lines["pm2"]
    s.rows.append(Row("per-line log burst 200k×100 B, one write per line: all lines in the file",
                      t(la), t(lb), ratio(la["time"], lb["time"]), "—"))

    def lost_order(r):
        return f"{r['lost']} / {'yes' if r['in_order'] else 'NO'}"

    s.rows.append(Row("per-line log burst: lines lost (worst round) / in order", lost_order(la),
                      lost_order(lb), "—", "0 lost, in order",
                      ok=la["lost"] == 0 and la["in_order"]))
    s.rows.append(Row("per-line log burst: daemon CPU time (median)", fmt_ms(la["cpu_ns"]),
                      fmt_ms(lb["cpu_ns"]), ratio(la["cpu_ns"], lb["cpu_ns"]), "≤ 1/5",
                      ok=la["cpu_ns"] * 5 <= lb["cpu_ns"]))
    def ms_pair(v):
        return f"{v[0]:.1f} / {v[1]:.1f} ms" if v else "none arrived"

    pa, pb = lat["pmr"], lat["pm2"]
    for what, label in (("file", "in the log file"), ("stream", "printed by `logs --raw`")):
        s.rows.append(Row(f"one line from a quiet app: {label}, median / max of {pa['n']}",
                          ms_pair(pa[what]), ms_pair(pb[what]), "—", "≤ 10 ms",
                          ok=pa[what] is not None and pa[what][1] <= 10))
    s.details.append(
        "One line from a quiet app (`ping-lines.js`, a line every 100 ms holding the time it was "
        "written): the time until the line is in the file (polled every ~0.2 ms, so up to that "
        "much late) and until `logs --raw` prints it (that client's own reading included).")
    s.details.append(
        f"{rounds} rounds per tool; medians shown. Daemon CPU is the sum over its threads of "
        "`/proc/<pid>/task/*/schedstat` (nanoseconds; utime+stime count 10 ms ticks, too coarse "
        "for these figures, and are shown per round for comparison). Time and CPU run from the "
        "`start` command to the moment the file holds 20 MB, so they include starting the app. "
        "Per round (time, CPU, CPU in ticks, lost):")
    for kind, results in (("batched", res), ("per line", lines)):
        for k, r in results.items():
            s.details.append(f"- {k}, {kind}: " + "; ".join(
                f"{fmt_ms(x['time']) if x['time'] else 'incomplete'}, {fmt_ms(x['cpu_ns'])}, "
                f"{fmt_ms(x['cpu'])}, {x['lost']}"
                for x in r["rounds"]))
    return [s], {"batched": res, "per_line": lines, "latency": lat}
