"""Executes scenarios: starts each server fresh, proves it answers, measures, stops it."""

import contextlib
import http.client
import time
from dataclasses import dataclass
from pathlib import Path

from . import load, procs
from .scenarios import CheckFailed
from .servers import environment

REPO = Path(__file__).resolve().parent.parent.parent
SERVER_CPU = 0


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 3.0
    threads: int = 1
    repeat: int = 1
    idle_seconds: float = 10.0
    rss_connections: int = 5000
    start_timeout: float = 30.0
    verbose: bool = False


class StartError(Exception):
    pass


def _tail(path, lines=15):
    """The log's last non-empty line, then its last `lines` lines on the following lines."""
    try:
        text = [x for x in Path(path).read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    if not text:
        return "(empty log)"
    return text[-1].strip() + "\n" + "\n".join(text[-lines:])


class Started:
    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None


def start(run, sc, settings, logdir, service=None):
    """Start run's server on a free port and wait (bounded) until it answers the probe."""
    port = procs.free_port()
    argv = run.server.argv(run.target, port)
    env = environment(run.server)
    if service is not None:
        env.update(service.env)
    log = Path(logdir) / f"{sc.name}.{run.label}.log"
    with open(log, "wb") as logf:
        logf.write(("$ " + " ".join(argv) + "\n").encode())
        logf.flush()
        try:
            proc = procs.spawn(
                argv, cpu=SERVER_CPU, stdout=logf, env=env,
                cwd=run.server.cwd or str(REPO)
            )
        except OSError as e:
            raise StartError(f"could not be executed: {e}")
    started = Started(proc, port, log)
    started.service = service
    started.run, started.logdir = run, logdir
    deadline = time.monotonic() + settings.start_timeout
    last = None
    while True:
        if proc.poll() is not None:
            procs.stop(proc)
            raise StartError(
                f"exited with code {proc.returncode} before answering: {_tail(log)}\n(log {log})"
            )
        try:
            sc.check(port)
            started.affinity = sorted({c for p in procs.tree(proc.pid) for c in procs.affinity(p)})
            if procs.can_pin() and started.affinity != [SERVER_CPU]:
                procs.stop(proc)
                raise StartError(f"not pinned: its processes may run on CPUs {started.affinity}")
            return started
        except CheckFailed as e:
            procs.stop(proc)
            raise StartError(f"answered wrongly: {e}")
        except (OSError, http.client.HTTPException) as e:
            last = e
        if time.monotonic() > deadline:
            procs.stop(proc)
            raise StartError(
                f"did not answer within {settings.start_timeout:.0f} s (last error: {last!r})\n"
                f"log {log}:\n{_tail(log)}"
            )
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# The three kinds of measurement


def _one_wrk(sc, srv, settings, url, common):
    svc = srv.service
    svc0 = svc.cpu_seconds() if svc else None
    cpu0, cores0 = procs.tree_cpu_seconds(srv.pid), procs.core_ticks()
    w = load.run_wrk(url, duration=settings.duration, **common)
    cpu1, cores1 = procs.tree_cpu_seconds(srv.pid), procs.core_ticks()
    svc1 = svc.cpu_seconds() if svc else None
    busy = procs.core_busy(cores0, cores1)
    res = {
        "rps": w["rps"],
        "p99_ms": w["p99_ms"],
        "p50_ms": w["p50_ms"],
        "errors": w["errors"],
        "error_total": w["error_total"],
        "requests": w.get("requests"),
        "server_cpu": (cpu1 - cpu0) / (w.get("seconds") or settings.duration),
        "wrk_cpu": w["wrk_cpu"],
        "server_core_busy": busy.get(SERVER_CPU),
        "wrk_core_busy": busy.get(load.WRK_CPU),
        "wrk_cpus": w["wrk_cpus"],
        "wrk_output": w["raw"],
    }
    if sc.payload_bytes:
        res["mib_s"] = w["rps"] * sc.payload_bytes / (1 << 20)
    if svc:  # the service (redis-server) shares wrk's core: its CPU per second beside wrk's
        res["service_cpu"] = (svc1 - svc0) / (w.get("seconds") or settings.duration)
    return res


def measure_wrk(sc, srv, settings):
    """Warm-up run, then `repeat` measured runs (the scenario's own, if more); the run with
    the median rps is reported."""
    url = f"http://{procs.HOST}:{srv.port}{sc.path}"
    common = dict(connections=sc.connections, threads=settings.threads, lua=sc.lua)
    if settings.warmup > 0:
        load.run_wrk(url, duration=settings.warmup, **common)
    runs = [_one_wrk(sc, srv, settings, url, common)
            for _ in range(max(settings.repeat, sc.repeat))]
    res = dict(sorted(runs, key=lambda r: r["rps"])[len(runs) // 2])
    if len(runs) > 1:
        res["rps_all"] = [r["rps"] for r in runs]
        # errors of every repetition count: a flagged run is never hidden by a clean one
        res["error_total"] = sum(r["error_total"] for r in runs)
        res["errors"] = {k: sum(r["errors"][k] for r in runs) for k in res["errors"]}
    if not srv.alive():
        res["failed"] = f"server exited during the load (code {srv.proc.returncode})"
    elif not res.get("requests"):
        res["failed"] = "no response completed under load"
    return res


def measure_idle(sc, srv, settings):
    time.sleep(2.0)  # let start-up work (worker spawn, first-request caches) finish
    cpu0, wake0 = procs.tree_cpu_seconds(srv.pid), procs.tree_wakeups(srv.pid)
    cores0 = procs.core_ticks()
    t0 = time.monotonic()
    time.sleep(settings.idle_seconds)
    elapsed = time.monotonic() - t0
    cpu1, wake1 = procs.tree_cpu_seconds(srv.pid), procs.tree_wakeups(srv.pid)
    busy = procs.core_busy(cores0, procs.core_ticks())
    return {
        "server_core_busy": busy.get(SERVER_CPU),  # anything else running there shows here
        "cpu_s": round(cpu1 - cpu0, 4),
        "seconds": round(elapsed, 2),
        "wakeups": wake1 - wake0,
        "processes": len(procs.tree(srv.pid)),
    }


def measure_rss(sc, srv, settings):
    # Warm the server's first-request paths with a few connections, then close them.
    warm, _ = load.open_idle_connections(srv.port, 20, sc.path)
    load.close_all(warm)
    time.sleep(1.0)
    before = procs.tree_rss_bytes(srv.pid)
    t0 = time.monotonic()
    socks, failures = load.open_idle_connections(srv.port, settings.rss_connections, sc.path)
    open_s = time.monotonic() - t0
    try:
        time.sleep(1.0)
        alive = load.count_alive(socks)
        after = procs.tree_rss_bytes(srv.pid)
        cpu0 = procs.tree_cpu_seconds(srv.pid)
        time.sleep(3.0)
        cpu_held = procs.tree_cpu_seconds(srv.pid) - cpu0
        alive_end = load.count_alive(socks)
    finally:
        load.close_all(socks)
    res = {
        "requested": settings.rss_connections,
        "opened": len(socks),
        "alive": alive,
        "alive_after_3s": alive_end,
        "open_seconds": round(open_s, 2),
        "rss_before": before,
        "rss_after": after,
        "rss_per_conn": round((after - before) / alive, 1) if alive else None,
        "cpu_s_3s_held": round(cpu_held, 4),
        "failures": len(failures),
        "failure_sample": sorted(set(failures))[:3],
        "error_total": len(failures) + (len(socks) - alive_end),
    }
    if not alive:
        res["failed"] = "no connection stayed open: " + "; ".join(res["failure_sample"])
    return res


def measure_server(sc, srv, settings):
    """A scenario's own measurement of a started server (kind "server", e.g. streams.py)."""
    return sc.measure(sc, srv, settings)


MEASURE = {"wrk": measure_wrk, "idle": measure_idle, "rss": measure_rss,
           "server": measure_server}


def run_scenario(sc, settings, logdir, say=print):
    """{run label: result}; a scenario's service (redis-server) is up for all its runs."""
    if sc.service is None:
        return _run_scenario(sc, settings, logdir, None, say)
    from .redis_service import ServiceError

    with contextlib.ExitStack() as stack:
        try:
            service = stack.enter_context(sc.service(logdir))
        except (ServiceError, OSError) as e:
            say(f"  {sc.name}: FAILED: {e}")
            return {run.label: {"failed": f"service did not start: {e}"} for run in sc.runs}
        return _run_scenario(sc, settings, logdir, service, say)


def _run_scenario(sc, settings, logdir, service, say):
    if sc.kind == "client":
        return sc.measure(sc, settings, service, say)
    results = {}
    for run in sc.runs:
        say(f"  {sc.name} / {run.label} ...", end="", flush=True)
        t0 = time.monotonic()
        try:
            srv = start(run, sc, settings, logdir, service)
        except StartError as e:
            results[run.label] = {"failed": f"did not start: {e}"}
            say(f" FAILED to start: {str(e).splitlines()[0]}")
            continue
        try:
            res = MEASURE[sc.kind](sc, srv, settings)
        except (load.WrkError, OSError, http.client.HTTPException) as e:
            res = {"failed": f"measurement failed: {e}"}
        except Exception as e:  # a harness bug must not stop the other servers' runs
            res = {"failed": f"measurement failed: {e!r}"}
        finally:
            procs.stop(srv.proc)
        res["log"] = str(srv.log)
        res["server_cpus"] = srv.affinity
        results[run.label] = res
        say(" " + _summary(sc, res) + f"  [{time.monotonic() - t0:.0f} s]")
    return results


def _summary(sc, res):
    if "failed" in res:
        return "FAILED: " + res["failed"].splitlines()[0]
    if sc.kind == "wrk":
        err = f", {res['error_total']} errors" if res["error_total"] else ""
        return f"{res['rps']:,.0f} req/s, p99 {res['p99_ms']:.2f} ms{err}"
    if sc.kind == "server":
        return sc.summary(res)
    if sc.kind == "idle":
        return f"{res['cpu_s']:.3f} CPU s in {res['seconds']:.0f} s, {res['wakeups']} wakeups"
    per = res["rss_per_conn"]
    return f"{res['alive']} conns held, {per / 1024:.2f} KiB each"
