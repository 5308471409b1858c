"""Measurements of the streaming scenarios (issue 10) that wrk cannot make: the throughput of
one long generated response read by a fast client (curl), and 10,000 Server-Sent Events
streams on one worker (bench/sse_clients.py): their memory and how long one published event
takes to reach the last of them.

Each is a `measure(sc, srv, settings)` for scenarios of kind "server": the runner has started
the server (fresh, pinned to core 0) and checked its answer; the clients run on core 1."""

import json
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import load, procs
from .procs import HOST

BENCH = Path(__file__).resolve().parent.parent
STREAM_RUNS = 15  # curl downloads per server (each well under a second); the median is reported


# ---------------------------------------------------------------------------------------------
# stream-100m: one client reading a long generated response as fast as it can


def measure_stream(sc, srv, settings):
    if not shutil.which("curl"):
        return {"failed": "curl not found (Debian package 'curl')"}
    url = f"http://{HOST}:{srv.port}{sc.path}"
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
            url]
    runs = []
    expected = sc.payload_bytes
    for i in range(STREAM_RUNS + 1):  # the first one warms up and is dropped
        cpu0 = procs.tree_cpu_seconds(srv.pid)
        proc = procs.spawn(argv, cpu=load.WRK_CPU, stdout=subprocess.PIPE)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            procs.stop(proc, grace=1)
            return {"failed": "curl did not finish within 120 s"}
        procs.forget(proc)
        cpu = procs.tree_cpu_seconds(srv.pid) - cpu0
        status, size, seconds = out.decode().split()
        if status != "200" or int(size) != expected:
            return {"failed": f"curl got {status} with {size} bytes, expected 200 with {expected}"}
        if i:
            runs.append({"seconds": float(seconds), "server_cpu_s": round(cpu, 3)})
    mibs = sorted(expected / (1 << 20) / r["seconds"] for r in runs)
    median = statistics.median(mibs)
    return {
        "mib_s": round(median, 1),
        "mib_s_all": [round(x, 1) for x in mibs],
        "server_cpu_s": statistics.median(r["server_cpu_s"] for r in runs),
        "error_total": 0,
    }


def summary_stream(res):
    return f"{res['mib_s']:,.0f} MiB/s (median of {len(res['mib_s_all'])})"


# ---------------------------------------------------------------------------------------------
# sse-10k: many event streams on one worker


SSE_STREAMS = 10_000
SSE_PUBLISHES = 5  # events published one after the other; the median of their times reported


def _spawn_clients(port, path, count, mode):
    """The client process with a pipe for its commands (procs.spawn has no stdin pipe)."""
    argv = [sys.executable, str(BENCH / "sse_clients.py"), "--port", str(port),
            "--path", path, "--count", str(count), "--mode", mode]
    if procs.can_pin():
        argv = ["taskset", "-c", str(load.WRK_CPU)] + argv
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True, preexec_fn=procs.raise_nofile)
    procs._LIVE[proc.pid] = proc
    return proc


def _read_line(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise OSError(f"the SSE client said nothing within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise OSError(f"the SSE client exited (code {proc.poll()})")
    return json.loads(line)


def _command(proc, text, timeout=60.0):
    proc.stdin.write(text.encode() + b"\n")
    proc.stdin.flush()
    return _read_line(proc, timeout)


def _hold(srv, path, count, mode):
    """Open `count` clients of `mode` on srv; (RSS delta, clients process, hello)."""
    time.sleep(0.5)
    before = procs.tree_rss_bytes(srv.pid)
    proc = _spawn_clients(srv.port, path, count, mode)
    hello = _read_line(proc, 180.0)
    time.sleep(1.0)  # let the server settle what it allocated
    alive = _command(proc, "alive")["alive"]
    after = procs.tree_rss_bytes(srv.pid)
    return {"before": before, "after": after, "alive": alive, "failed": hello["failed"],
            "sample": hello["sample"]}, proc


def _available(srv, path):
    if path != "/sse/sub":
        return None
    r = load.request(srv.port, "GET", "/sse/features")
    if not json.loads(r.body).get("stream_group"):
        return ("not available: Broadcast needs _core.StreamGroup (the fan-out in C), which "
                "this build does not have")
    return None


def measure_sse(sc, srv, settings):
    """Two fresh servers: N idle keep-alive connections on the first (the runner's), N event
    streams on the second; the RSS growth of each, and N events published on the second."""
    from .runner import StartError, start

    path = sc.sse_paths[srv.run.label]
    missing = _available(srv, path)
    count = sc.connections
    res = {"streams_requested": count, "error_total": 0}
    idle, proc = _hold(srv, "/hello", count, "idle")
    procs.stop(proc, grace=2)
    res["idle"] = idle
    if missing:
        res["not_available"] = missing
        return res
    try:
        second = start(srv.run, sc, settings, srv.logdir)
    except StartError as e:
        res["failed"] = f"second server did not start: {e}"
        return res
    try:
        streams, proc = _hold(second, path, count, "sse")
        try:
            res["sse"] = streams
            events = []
            for n in range(1, SSE_PUBLISHES + 1):
                events.append(_command(proc, f"publish {n}", timeout=120.0))
                time.sleep(0.2)
            res["publishes"] = events
            res["alive_after"] = _command(proc, "alive")["alive"]
        finally:
            procs.stop(proc, grace=2)
    finally:
        procs.stop(second.proc)
    if not idle["alive"] or not streams["alive"]:
        res["failed"] = "no connection held: " + "; ".join(idle["sample"] + streams["sample"])
        return res
    per_idle = (idle["after"] - idle["before"]) / idle["alive"]
    per_stream = (streams["after"] - streams["before"]) / streams["alive"]
    res["streams_held"] = streams["alive"]
    res["rss_per_idle_conn"] = round(per_idle, 1)
    res["rss_per_stream"] = round(per_stream, 1)
    res["rss_extra_per_stream"] = round(per_stream - per_idle, 1)
    complete = [e for e in events if e["received"] == e["streams"] == streams["alive"]]
    lasts = [e["last_ms"] for e in events if e["last_ms"] is not None]
    res["publish_last_ms"] = statistics.median(lasts) if lasts else None
    mids = [e["p50_ms"] for e in events if e["p50_ms"] is not None]
    res["publish_p50_ms"] = statistics.median(mids) if mids else None
    lost = sum(e["streams"] - e["received"] for e in events)
    res["error_total"] = (idle["failed"] + streams["failed"] + lost
                          + (count - streams["alive"]) + (count - idle["alive"]))
    if len(complete) < len(events):
        res["note"] = (f"{len(events) - len(complete)} of {len(events)} events did not reach "
                       "every stream")
    return res


def summary_sse(res):
    if "not_available" in res:
        idle = res["idle"]
        return f"{res['not_available']} (idle: {idle['alive']:,} held)"
    return (f"{res['sse']['alive']:,} streams, {res['rss_extra_per_stream'] / 1024:.2f} KiB extra "
            f"per stream, event to the last in {res['publish_last_ms']:.0f} ms")
