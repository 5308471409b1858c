#!/usr/bin/env python3
"""The Redis client alone, no HTTP: ours (flask_restful_async.redis) against redis-py's asyncio
client with the hiredis parser, each on a plain asyncio loop (uvloop off), and
`redis-benchmark -P 16` on the same Redis as the limit.

    .venv/bin/python bench/redis_client.py [--runs 3] [--out FILE.json]

`make bench` runs the same measurement as its scenario `redis-client` (one table in the
report); this script runs it alone and starts its own redis-server either way.

  GET          200,000 GETs of one 64-byte value from 100 coroutines (2,000 each, awaited one
               after another), one shared client
  LRANGE 0 99  100,000 LRANGEs of a 100-element list from 100 coroutines: reply parsing
Each client runs in a fresh process pinned to core 0 (redis-server on core 1); each figure is
the median of 3 runs.  FRA_BENCH_REDIS_CLIENT=MODULE measures another module with redis-py's
API as "ours" (e.g. redis.asyncio, to check the harness without our client).

Worker mode (what the measurement runs in each process, printing one JSON line):
    bench/redis_client.py --worker MODULE OP URL TOTAL CONCURRENCY
"""

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from apps import redis_data  # noqa: E402

OURS_MODULE = os.environ.get("FRA_BENCH_REDIS_CLIENT") or "flask_restful_async.redis"
CLIENTS = {"ours": OURS_MODULE, "redis-py": "redis.asyncio"}
BENCHMARK = "redis-benchmark -P 16"
OPS = {
    # op: (total for a client process, total for redis-benchmark, the command)
    "get": (200_000, 2_000_000, ["GET", redis_data.KEYS[0]]),
    "lrange": (100_000, 500_000, ["LRANGE", redis_data.LIST_KEY, "0", "99"]),
}
CONCURRENCY = 100
RUNS = 3
CLIENT_CPU = 0  # the measured process; redis-server is on core 1 (harness/redis_service.py)


# ---------------------------------------------------------------------------------------------
# Worker: one client, one operation, in this process


async def _worker(module, op, url, total, concurrency):
    client = importlib.import_module(module).Redis.from_url(url)
    info = {"module": module}
    try:
        from redis.utils import HIREDIS_AVAILABLE

        if module.startswith("redis.") and not HIREDIS_AVAILABLE:
            raise RuntimeError("hiredis is not installed: redis-py would parse in Python")
    except ImportError:
        pass
    if op == "get":
        expected = redis_data.VALUES[0].encode()

        def call():
            return client.get(redis_data.KEYS[0])

    else:
        expected = [e.encode() for e in redis_data.ELEMENTS]

        def call():
            return client.lrange(redis_data.LIST_KEY, 0, 99)

    try:
        got = await call()
        if got != expected:
            raise RuntimeError(f"{op}: got {got!r:.200}, expected {expected!r:.200}")
        per = total // concurrency

        async def one(n):
            for _ in range(n):
                await call()

        # warm-up: every coroutine's first command opens whatever connections the client opens
        await asyncio.gather(*[one(max(1, per // 20)) for _ in range(concurrency)])
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*[one(per) for _ in range(concurrency)])
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        info.update(ops=per * concurrency, seconds=seconds, ops_s=per * concurrency / seconds,
                    cpu_s=cpu, cpu_us_per_op=cpu * 1e6 / (per * concurrency))
    finally:
        close = getattr(client, "aclose", None) or client.close
        await close()
    return info


def worker_main(module, op, url, total, concurrency):
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())  # the stdlib loop
    print(json.dumps(asyncio.run(_worker(module, op, url, int(total), int(concurrency)))))
    return 0


# ---------------------------------------------------------------------------------------------
# Measurement: worker processes and redis-benchmark, pinned, against a RedisService


class MeasureError(Exception):
    pass


def _pinned(argv):
    from harness import procs

    return (["taskset", "-c", str(CLIENT_CPU)] if procs.can_pin() else []) + argv


def _run(argv, what, timeout=600):
    """Run a measuring process; its stdout (MeasureError with its output if it failed)."""
    from harness import procs

    proc = procs.spawn(_pinned(argv), stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        procs.stop(proc, grace=1)
        raise
    procs.forget(proc)
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        tail = " | ".join(text.splitlines()[-3:])
        raise MeasureError(f"{what} exited with {proc.returncode}: {tail}")
    return text


def _client_run(module, op, svc):
    total = OPS[op][0]
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", module, op, svc.url,
            str(total), str(CONCURRENCY)]
    cpu0, t0 = svc.cpu_seconds(), time.monotonic()
    text = _run(argv, f"{module} {op}")
    # Redis's share of a core over the whole process (start-up and warm-up included)
    redis_cpu = (svc.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    try:
        res = json.loads(text.splitlines()[-1])
    except (IndexError, ValueError):
        raise MeasureError(f"{module} {op}: no result line: {text[-200:]}")
    res["redis_cpu"] = redis_cpu
    return res


def _benchmark_run(op, svc):
    total, cmd = OPS[op][1], OPS[op][2]
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(svc.port), "-P", "16",
            "-c", str(CONCURRENCY), "-n", str(total), "--csv", *cmd]
    cpu0, t0 = svc.cpu_seconds(), time.monotonic()
    text = _run(argv, "redis-benchmark")
    redis_cpu = (svc.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    rows = [line for line in text.splitlines() if line.startswith('"') and '"rps"' not in line]
    if not rows:
        raise MeasureError(f"no result line in redis-benchmark's output: {text[-200:]}")
    ops_s = float(rows[-1].split(",")[1].strip('"'))
    seconds = total / ops_s
    return {"ops": total, "seconds": seconds, "ops_s": ops_s, "redis_cpu": redis_cpu}


def measure(svc, runs=RUNS, say=print, labels=None):
    """{label: {"get_ops", "lrange_ops", runs and CPU figures} or {"failed": why}} for ours,
    redis-py and redis-benchmark -P 16 (or those of `labels`) against the running, filled
    service `svc`."""
    results = {}
    for label in list(CLIENTS) + [BENCHMARK]:
        if labels is not None and label not in labels:
            continue
        say(f"  redis-client / {label} ...", end="", flush=True)
        t0 = time.monotonic()
        res = {"module": CLIENTS.get(label)}
        try:
            for op in OPS:
                one = [(_benchmark_run(op, svc) if label == BENCHMARK
                        else _client_run(CLIENTS[label], op, svc)) for _ in range(runs)]
                mid = sorted(one, key=lambda r: r["ops_s"])[len(one) // 2]
                res[f"{op}_ops"] = mid["ops_s"]
                res[f"{op}_all"] = [r["ops_s"] for r in one]
                res[f"{op}_redis_cpu"] = mid["redis_cpu"]
                if "cpu_us_per_op" in mid:
                    res[f"{op}_cpu_us"] = mid["cpu_us_per_op"]
        except (MeasureError, OSError, ValueError, subprocess.TimeoutExpired) as e:
            res = {"failed": str(e)}
        results[label] = res
        if "failed" in res:
            say(" FAILED: " + res["failed"].splitlines()[0])
        else:
            say(f" GET {res['get_ops']:,.0f}/s, LRANGE 0 99 {res['lrange_ops']:,.0f}/s"
                f"  [{time.monotonic() - t0:.0f} s]")
    return results


# ---------------------------------------------------------------------------------------------
# Alone


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--worker"]:
        return worker_main(*argv[1:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=RUNS, help="runs per figure, median reported (3)")
    p.add_argument("--out", help="write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.runs < 1:
        print("redis_client: --runs must be 1 or more", file=sys.stderr)
        return 2

    from harness import load, procs, report
    from harness.redis_service import RedisService, ServiceError

    if procs.can_pin():
        os.sched_setaffinity(0, {load.WRK_CPU})  # this script waits beside redis-server
    try:
        with RedisService() as svc:
            print(f"redis_client: {svc.url}, log {svc.log}; ours = {OURS_MODULE}")
            results = measure(svc, args.runs)
    except ServiceError as e:
        print(f"redis_client: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    print()
    print("\n".join(report.client_table(results)[0]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any("failed" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
