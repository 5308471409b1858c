"""The Redis benchmark's own parts (bench/harness/redis_service.py, bench/redis_client.py,
bench/apps/redis_app.py): the bench's redis-server holds the data the apps and the client
bench read, each measuring process really sends the commands it counts (Redis's own
commandstats say so) and refuses wrong replies, and the apps answer what the probes expect.
Sizes here are tiny: this checks the harness, it measures nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from conftest import ROOT, h11_get, serve

BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import redis_client  # noqa: E402
from apps import redis_data  # noqa: E402
from harness import procs, report  # noqa: E402
from harness.redis_service import RedisService  # noqa: E402

WORKER = [sys.executable, str(BENCH / "redis_client.py"), "--worker"]


@pytest.fixture(scope="module")
def bench_redis(tmp_path_factory):
    with RedisService(tmp_path_factory.mktemp("bench-redis")) as svc:
        yield svc


def _calls(url: str, command: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return stats.get(f"cmdstat_{command}", {}).get("calls", 0)


def test_service_holds_the_data_and_goes_away(tmp_path):
    with RedisService(tmp_path) as svc:
        pid = svc.proc.pid
        assert svc.port != 6379 and svc.env == {"BENCH_REDIS_URL": svc.url}
        r = redis.Redis.from_url(svc.url, decode_responses=True)
        assert r.mget(redis_data.KEYS) == redis_data.VALUES
        assert all(len(v) == 64 for v in redis_data.VALUES)
        assert r.lrange(redis_data.LIST_KEY, 0, -1) == redis_data.ELEMENTS
        assert r.config_get("save") == {"save": ""}
        if procs.can_pin():  # beside wrk, away from the server under test
            assert os.sched_getaffinity(pid) == {1}
        r.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("op, command, total, concurrency", [
    ("get", "get", 3000, 30),
    ("lrange", "lrange", 1000, 10),
])
def test_worker_sends_what_it_counts(bench_redis, op, command, total, concurrency):
    before = _calls(bench_redis.url, command)
    out = subprocess.run(WORKER + ["redis.asyncio", op, bench_redis.url, str(total),
                                   str(concurrency)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.splitlines()[-1])
    assert res["ops"] == total and res["ops_s"] > 0 and res["module"] == "redis.asyncio"
    # one checked call, a warm-up of 5% per coroutine, then exactly `total` measured calls
    warmup = concurrency * max(1, total // concurrency // 20)
    assert _calls(bench_redis.url, command) - before == 1 + warmup + total


def test_worker_refuses_a_wrong_reply(fresh_redis_server):
    # an empty Redis: GET answers None, which must fail the run rather than be measured
    out = subprocess.run(WORKER + ["redis.asyncio", "get", fresh_redis_server.url, "100", "10"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "got None, expected" in out.stderr
    assert fresh_redis_server.info("commandstats").get("cmdstat_get", "").startswith("calls=1,")


def test_measure_runs_every_client_and_the_limit(bench_redis, monkeypatch):
    monkeypatch.setattr(redis_client, "OPS", {
        "get": (2000, 20000, ["GET", redis_data.KEYS[0]]),
        "lrange": (500, 5000, ["LRANGE", redis_data.LIST_KEY, "0", "99"]),
    })
    monkeypatch.setattr(redis_client, "CLIENTS", {"ours": "flask_restful_async.redis",
                                                  "redis-py": "redis.asyncio"})
    gets = _calls(bench_redis.url, "get")
    results = redis_client.measure(bench_redis, runs=1, say=lambda *a, **k: None)
    assert list(results) == ["ours", "redis-py", redis_client.BENCHMARK]
    for label, res in results.items():
        assert "failed" not in res, (label, res)
        assert res["get_ops"] > 0 and res["lrange_ops"] > 0 and len(res["get_all"]) == 1
    # two clients (2000 + 100 warm-up + 1 check each) and redis-benchmark's 20000
    assert _calls(bench_redis.url, "get") - gets >= 2 * 2101 + 20000
    lines, notes = report.client_table(results)
    assert len(lines) == 2 + 3 and "FAILED" not in "\n".join(lines)


def test_measure_reports_a_client_that_cannot_run(bench_redis, monkeypatch):
    monkeypatch.setattr(redis_client, "CLIENTS", {"ours": "no_such_module_for_the_bench"})
    results = redis_client.measure(bench_redis, runs=1, say=lambda *a, **k: None,
                                   labels=["ours"])
    assert list(results) == ["ours"]
    assert "No module named 'no_such_module_for_the_bench'" in results["ours"]["failed"]
    assert "| ours | FAILED |" in "\n".join(report.client_table(results)[0])


@pytest.mark.parametrize("target, interface, env", [
    ("redis_app:redis_py_app()", "auto", {}),
    ("redis_app:starlette_app", "asgi", {}),
    ("redis_app:ours_app()", "auto", {"FRA_BENCH_REDIS_CLIENT": "redis.asyncio"}),
    ("redis_app:ours_app()", "auto", {}),
])
def test_apps_answer_what_the_probes_expect(bench_redis, target, interface, env):
    env = dict(env, BENCH_REDIS_URL=bench_redis.url)
    with serve(target, "--interface", interface, "--app-dir", str(BENCH / "apps"),
               env=env) as srv:
        r = h11_get(srv.port, "/redis/get")
        assert r.status == 200 and r.json() == {"value": redis_data.VALUES[0]}
        r = h11_get(srv.port, "/redis/gather10")
        assert r.status == 200 and r.json() == {"values": redis_data.VALUES}


def test_redis_scenarios_are_listed_without_redis_or_our_client():
    out = subprocess.run([sys.executable, str(BENCH / "run.py"), "--list"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PATH="/nonexistent"))
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()}
    for name in ("api-redis-get", "api-redis-gather10"):
        assert "ours-api-t8, ours-api-t8-redis-py, uvicorn-starlette-redis-py" in rows[name]
    assert "ours, redis-py, redis-benchmark -P 16" in rows["redis-client"]
