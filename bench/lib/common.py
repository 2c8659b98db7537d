"""Shared pieces of the benchmark suite: the two tools under test, /proc readers, timing helpers.

Everything here talks to 127.0.0.1 only and to daemons in the suite's own temporary homes.
Processes are only ever stopped through their home (`pmr kill`, `pm2 kill`) or by the pid of a
process the suite started itself.
"""

import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
APPS = BENCH / "apps"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc

def rss_kb(pid):
    """VmRSS of one process in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid):
    """utime + stime of a process (all its threads, not its reaped children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- helpers

def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.01):
    """Poll pred() until it returns a truthy value or the timeout passes; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def mb(kb):
    return None if kb is None else kb / 1024


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def http_pid(port, timeout=1.0):
    """GET / on a new connection; the x-pid header of the answer, or None on failure."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.getheader("x-pid") if r.status == 200 else None
    except OSError:
        return None


# ---------------------------------------------------------------- the tools

class Tool:
    """A process manager under test, with its own home. Subclasses say how to run its CLI."""

    name = "?"
    key = "?"
    eco_ext = ".json"  # which ecosystem files it reads (None: none yet); see probe_ecosystem

    def __init__(self, home, argv, env):
        self.home = Path(home)
        self.argv = list(argv)
        self.env = env

    def cmd(self, *args):
        return self.argv + [str(a) for a in args]

    def shell_cmd(self, *args):
        return " ".join(shlex.quote(a) for a in self.cmd(*args))

    def run(self, *args, timeout=120, check=True, extra_env=None, cwd=None, text=True):
        env = dict(self.env, **(extra_env or {}))
        cp = subprocess.run(self.cmd(*args), env=env, capture_output=True, text=text,
                            timeout=timeout, cwd=cwd)
        if check and cp.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(map(str, args))} failed "
                               f"({cp.returncode}): {cp.stderr.strip()[-400:]}")
        return cp

    def timed(self, *args, **kw):
        """(seconds, CompletedProcess) of one CLI call."""
        t0 = time.perf_counter()
        cp = self.run(*args, **kw)
        return time.perf_counter() - t0, cp

    def popen(self, *args, extra_env=None):
        env = dict(self.env, **(extra_env or {}))
        return subprocess.Popen(self.cmd(*args), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def jlist(self):
        out = self.run("jlist").stdout
        # PM2 may print notices before the JSON; the array starts at the first '['.
        i = out.find("[")
        return json.loads(out[i:]) if i >= 0 else []

    def procs(self):
        """A compact view of jlist: dicts with name, pm_id, pid, status, mode, restarts."""
        res = []
        for p in self.jlist():
            env = p.get("pm2_env", {})
            res.append({
                "name": p.get("name"), "pm_id": p.get("pm_id"), "pid": p.get("pid"),
                "status": env.get("status"), "mode": env.get("exec_mode"),
                "restarts": env.get("restart_time"), "unstable": env.get("unstable_restarts"),
                "out": env.get("pm_out_log_path"),
            })
        return res

    def ping(self):
        self.run("ping")

    def delete_all(self):
        self.run("delete", "all", check=False)

    def daemon_pid(self):
        try:
            pid = int((self.home / self.pid_file).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def kill(self):
        """Stop every app and the daemon of this home (never anything else)."""
        if self.daemon_pid() is None:
            return
        try:
            self.run("kill", timeout=60, check=False)
        except subprocess.TimeoutExpired:
            pid = self.daemon_pid()
            if pid:
                os.kill(pid, 9)

    def version(self):
        return self.run("--version").stdout.strip().splitlines()[-1]


class Pmr(Tool):
    name = "pmr"
    key = "pmr"
    pid_file = "pmr.pid"

    def __init__(self, home, binary):
        env = dict(os.environ, PMR_HOME=str(home), NO_COLOR="1")
        env.pop("PM2_HOME", None)
        super().__init__(home, [str(binary)], env)


class Pm2(Tool):
    name = "PM2"
    key = "pm2"
    pid_file = "pm2.pid"

    def __init__(self, home, binary):
        Path(home).mkdir(parents=True, exist_ok=True)
        (Path(home) / "touch").touch()  # no first-run banner, no phoning home
        env = dict(os.environ, PM2_HOME=str(home), PM2_DISABLE_VERSION_CHECK="1", NO_COLOR="1")
        env.pop("PMR_HOME", None)
        super().__init__(home, [str(binary)], env)


# ---------------------------------------------------------------- CLI latency

def latency(tool, args, runs, warmup=3):
    """Median/min/max seconds of `tool args`, with hyperfine when installed."""
    if shutil.which("hyperfine"):
        out = BENCH / ".work" / f"hf-{tool.key}-{args[0]}.json"
        out.parent.mkdir(exist_ok=True)
        cmd = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
               "--export-json", str(out), tool.shell_cmd(*args)]
        subprocess.run(cmd, env=tool.env, check=True, capture_output=True, timeout=600)
        r = json.loads(out.read_text())["results"][0]
        return {"median": r["median"], "min": r["min"], "max": r["max"], "runs": len(r["times"]),
                "how": "hyperfine"}
    for _ in range(warmup):
        tool.run(*args)
    times = [tool.timed(*args)[0] for _ in range(runs)]
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "runs": runs, "how": "repeated runs"}


# ---------------------------------------------------------------- starting apps

# PM2 option name -> CLI flag, for a tool that cannot read ecosystem files.
FLAGS = {"min_uptime": "--min-uptime", "max_restarts": "--max-restarts",
         "exp_backoff_restart_delay": "--exp-backoff-restart-delay", "instances": "-i"}


def write_ecosystem(base, apps, ext):
    """Write {apps: [...]} as `<base><ext>` (".json" or ".config.js")."""
    path = BENCH / ".work" / f"{base}{ext}"
    text = json.dumps({"apps": apps}, indent=1)
    path.write_text(text if ext == ".json" else f"module.exports = {text};\n")
    return path


def probe_ecosystem(tool):
    """The ecosystem file extension the tool really reads (".config.js" preferred), or None."""
    apps = [{"name": f"probe-{c}", "script": str(APPS / "idle.js")} for c in "ab"]
    for ext in (".config.js", ".json"):
        tool.delete_all()
        ok = tool.run("start", write_ecosystem("probe", apps, ext), check=False).returncode == 0
        ok = ok and sorted(p["name"] for p in tool.procs()) == ["probe-a", "probe-b"]
        tool.delete_all()
        if ok:
            return ext
    return None


def start_apps(tool, apps, base):
    """Start apps (PM2 ecosystem entries) from one ecosystem file if the tool reads them,
    else with one `start` command per app and the equivalent flags."""
    if tool.eco_ext:
        tool.run("start", write_ecosystem(base, apps, tool.eco_ext))
        return
    for app in apps:
        args = ["start", app["script"], "--name", app["name"]]
        for k, v in app.items():
            if k in FLAGS:
                args += [FLAGS[k], str(v)]
            elif k not in ("name", "script", "env"):
                raise ValueError(f"no CLI flag known for {k}")
        tool.run(*args, extra_env=app.get("env"))


# ---------------------------------------------------------------- pmr's daemon, without the CLI

def pmr_rpc_times(home, request, n=100):
    """Seconds per request sent straight to pmr's socket (connect, one frame each way), as the
    CLI does it but without starting a process: the daemon's share of a CLI call."""
    body = json.dumps(request).encode()
    frame = len(body).to_bytes(4, "big") + body
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(Path(home) / "rpc.sock"))
            s.sendall(frame)
            f = s.makefile("rb")
            size = int.from_bytes(f.read(4), "big")
            f.read(size)
        times.append(time.perf_counter() - t0)
    return times


def thread_cpu_ns(pid):
    """CPU time of each live thread of a process ({tid: ns}, from /proc/<pid>/task/*/schedstat):
    nanoseconds, where utime+stime count 10 ms ticks."""
    res = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return res
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                res[tid] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return res


def cpu_between(before, after):
    """Seconds of CPU between two thread_cpu_ns samples: threads alive at the end, counted from
    the first sample (or from their start). The work of a thread that ended in between is lost
    (an idle pool thread retiring, in practice)."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items()) / 1e9
