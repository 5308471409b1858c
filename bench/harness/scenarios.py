"""What is measured: one small function per scenario, registered with @scenario.

A scenario names its kind ("wrk" load, "idle" CPU, "rss" per idle connection), the runs (a
server plus the app it serves), the probe that proves a server answers correctly before any
load, and the targets checked in the report.  Adding a scenario is one function here; a new app
goes in bench/apps/, a new server in servers.py.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import load
from .servers import (
    ASGI_PEERS,
    GRANIAN_ASGI,
    GRANIAN_RSGI,
    HYPERCORN,
    OURS_ASGI,
    OURS_ASGI_ASYNCIO,
    OURS_WSGI,
    UVICORN,
    WSGI_PEERS,
    SERVERS,
    gunicorn_gthread,
    ours_api,
)

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
HELLO = b'{"hello":"world"}'
UPLOAD_SIZE = 1 << 20
DOWNLOAD_SIZE = 10 << 20

# The smoke run (CI): hello only, these servers only, short runs.
SMOKE_SERVERS = ("ours-asgi", "ours-wsgi", "uvicorn")


class CheckFailed(Exception):
    """The server answered, but not what the scenario's app answers."""


@dataclass
class Run:
    label: str  # the row name in the report, unique within a scenario
    server: object  # servers.Server
    target: str  # MODULE:ATTR in bench/apps


@dataclass
class Target:
    label: str
    kind: str  # "ratio": rps of `run` / rps of `other` >= threshold; "max": metric <= threshold
    run: str
    threshold: float
    other: Optional[str] = None
    metric: str = "rps"
    unit: str = ""


@dataclass
class Scenario:
    name: str
    title: str
    description: str
    kind: str  # "wrk" | "idle" | "rss" | "client" (measure() does it all, no server)
    runs: list
    ours: Optional[str] = None  # the run the ratio column is computed for
    check: Callable = None  # check(port): raises CheckFailed (or OSError while starting)
    path: str = "/"
    connections: int = 100
    lua: Optional[str] = None
    payload_bytes: int = 0  # bytes moved per request, for a MiB/s column
    targets: list = field(default_factory=list)
    smoke: bool = False
    repeat: int = 1  # measured runs per server, the median reported (at least --repeat)
    # a context manager factory service(logdir) -> object with .env (for the servers) and
    # .cpu_seconds(): a process the runs need, e.g. redis-server, up for the whole scenario
    service: Optional[Callable] = None
    # kind "client": measure(sc, settings, service, say) -> {label: result}
    measure: Optional[Callable] = None


REGISTRY = []


def scenario(fn):
    """Register a function returning a Scenario (or a list of them); order is run order."""
    REGISTRY.append(fn)
    return fn


def all_scenarios():
    out = []
    for fn in REGISTRY:
        made = fn()
        out.extend(made if isinstance(made, list) else [made])
    return out


def runs(attr, servers):
    """One run per server, each serving `attr` from the app module of its interface."""
    return [Run(s.name, s, s.app(attr)) for s in servers]


# ---------------------------------------------------------------------------------------------
# Probes


def check_hello(port, path="/"):
    r = load.request(port, "GET", path)
    if r.status != 200 or r.body != HELLO:
        raise CheckFailed(f"GET {path}: {r.status} {r.body[:80]!r}, expected 200 {HELLO!r}")
    ctype = r.headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        raise CheckFailed(f"GET {path}: content-type {ctype!r}, expected application/json")


_UPLOAD_BODY = b"x" * UPLOAD_SIZE


def check_upload(port):
    r = load.request(
        port, "POST", "/", body=_UPLOAD_BODY,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    if r.status != 200 or json.loads(r.body or b"{}").get("received") != UPLOAD_SIZE:
        raise CheckFailed(f"POST 1 MiB: {r.status} {r.body[:80]!r}, expected received={UPLOAD_SIZE}")


def check_download(port):
    r = load.request(port, "GET", "/", timeout=30)
    if r.status != 200 or len(r.body) != DOWNLOAD_SIZE:
        raise CheckFailed(f"GET: {r.status} with {len(r.body)} bytes, expected {DOWNLOAD_SIZE}")


# ---------------------------------------------------------------------------------------------
# Scenarios (issue 2).  Scenarios of later issues go below in the same style.

ASGI_ALL = [OURS_ASGI, OURS_ASGI_ASYNCIO, UVICORN, GRANIAN_ASGI, GRANIAN_RSGI, HYPERCORN]


@scenario
def hello():
    desc = "GET / answered with the 17-byte JSON body `{\"hello\":\"world\"}`"
    return [
        Scenario(
            "hello-asgi", "hello (ASGI)", desc + ", 100 connections.", "wrk",
            runs("hello", ASGI_ALL), ours="ours-asgi", check=check_hello, smoke=True,
            targets=[
                Target("hello: ours-asgi vs uvicorn", "ratio", "ours-asgi", 2.0, "uvicorn"),
                Target("hello: ours-asgi vs granian-asgi", "ratio", "ours-asgi", 1.0,
                       "granian-asgi"),
            ],
        ),
        Scenario(
            "hello-wsgi", "hello (WSGI)", desc + ", 100 connections.", "wrk",
            runs("hello", [OURS_WSGI] + WSGI_PEERS), ours="ours-wsgi", check=check_hello,
            smoke=True,
        ),
    ]  # fmt: skip


@scenario
def io10():
    desc = "The handler awaits `asyncio.sleep(0.010)` (10 ms of I/O), then answers hello"
    return [
        Scenario(
            f"io10-{conns}", f"10 ms awaited I/O, {conns} connections (ASGI)",
            f"{desc}; {conns} connections.", "wrk", runs("io10", ASGI_ALL),
            ours="ours-asgi", check=check_hello, connections=conns,
            targets=[Target(f"io10@{conns}: ours-asgi vs uvicorn", "ratio", "ours-asgi", 2.0,
                            "uvicorn")] if conns == 1000 else [],
        )
        for conns in (200, 1000)
    ]  # fmt: skip


@scenario
def upload():
    desc = "POST with a 1 MiB body that the app reads completely, 32 connections."
    return [
        Scenario(
            f"upload-{iface}", f"1 MiB upload ({iface.upper()})", desc, "wrk",
            runs("upload", servers), ours=ours.name, check=check_upload, connections=32,
            lua=str(LUA_DIR / "upload.lua"), payload_bytes=UPLOAD_SIZE,
        )
        for iface, ours, servers in (
            ("asgi", OURS_ASGI, [OURS_ASGI] + ASGI_PEERS),
            ("wsgi", OURS_WSGI, [OURS_WSGI] + WSGI_PEERS),
        )
    ]  # fmt: skip


@scenario
def download():
    desc = "GET of a 10 MiB body streamed in 160 chunks of 64 KiB, 16 connections."
    return [
        Scenario(
            f"download-{iface}", f"10 MiB streamed download ({iface.upper()})", desc, "wrk",
            runs("download", servers), ours=ours.name, check=check_download, connections=16,
            payload_bytes=DOWNLOAD_SIZE,
        )
        for iface, ours, servers in (
            ("asgi", OURS_ASGI, [OURS_ASGI] + ASGI_PEERS),
            ("wsgi", OURS_WSGI, [OURS_WSGI] + WSGI_PEERS),
        )
    ]  # fmt: skip


IDLE_CPU_MAX_S = 0.01  # one clock tick in the whole idle window
RSS_PER_CONN_MAX = 2048


@scenario
def idle_cpu():
    return Scenario(
        "idle-cpu", "idle CPU",
        "Each server (hello app) sits with no connection; CPU time (utime+stime of its "
        "process tree) used over the idle window.", "idle",
        runs("hello", [s for s in SERVERS if s is not GRANIAN_RSGI]), check=check_hello,
        targets=[
            Target(f"idle CPU: {name}", "max", name, IDLE_CPU_MAX_S, metric="cpu_s", unit="s")
            for name in ("ours-asgi", "ours-wsgi")
        ],
    )  # fmt: skip


@scenario
def rss_per_connection():
    return Scenario(
        "rss-idle-conn", "RSS per idle keep-alive connection",
        "Open many connections, one keep-alive request on each, keep them open; (RSS after - "
        "RSS before) / connections still open.", "rss",
        runs("hello", [s for s in SERVERS if s.persistent and s is not GRANIAN_RSGI]),
        check=check_hello,
        targets=[
            Target(f"RSS per idle connection: {name}", "max", name, RSS_PER_CONN_MAX,
                   metric="rss_per_conn", unit="B")
            for name in ("ours-asgi", "ours-wsgi")
        ],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Scenarios (issue 3): flask-restful on our server.  bench/apps/api_app.py is the app on
# flask_restful_async; stock_api_app.py is the same endpoints on upstream flask-restful.

API_ITEM_PATH = "/items/3?verbose=2"
# The issue-3 targets are read off these scenarios: each server is measured three times and
# the median reported, since one 10 s run on this VM can be 30% off the next.
API_REPEAT = 3
API_ITEM = {"id": 3, "name": "item", "verbose": 2}


def check_json(path, expected):
    def check(port):
        r = load.request(port, "GET", path)
        if r.status != 200 or json.loads(r.body or b"null") != expected:
            raise CheckFailed(f"GET {path}: {r.status} {r.body[:80]!r}, expected 200 {expected!r}")

    return check


@scenario
def api_parse_marshal():
    ours = ours_api()
    return Scenario(
        "api-parse-marshal", "flask-restful: parse one argument, marshal three fields",
        f"GET {API_ITEM_PATH}: an AsyncResource runs reqparse on one query argument and marshals "
        "three fields; the peer is the same endpoint in Starlette on uvicorn; 100 connections.",
        "wrk",
        [Run(ours.name, ours, "api_app:app"), Run("uvicorn-starlette", UVICORN, "api_app:starlette_app")],
        ours=ours.name, check=check_json(API_ITEM_PATH, API_ITEM), path=API_ITEM_PATH,
        targets=[Target("api parse+marshal: ours vs Starlette on uvicorn", "ratio", ours.name, 1.0,
                        "uvicorn-starlette")],
        repeat=API_REPEAT,
    )  # fmt: skip


@scenario
def api_io10():
    ours = ours_api()
    stock = gunicorn_gthread(32)
    return Scenario(
        "api-io10-1000", "flask-restful: 10 ms of I/O, 1000 connections",
        "GET /io10 waits 10 ms then answers: an AsyncResource awaiting asyncio.sleep on ours, a "
        "stock flask-restful Resource sleeping in one of 32 gunicorn gthread threads; 1000 "
        "connections.",
        "wrk",
        [Run(ours.name, ours, "api_app:app"), Run("stock-" + stock.name, stock, "stock_api_app:app")],
        ours=ours.name, check=check_json("/io10", {"hello": "world"}), path="/io10",
        connections=1000,
        targets=[Target("api io10@1000: ours vs stock flask-restful on gunicorn gthread(32)",
                        "ratio", ours.name, 10.0, "stock-" + stock.name)],
        repeat=API_REPEAT,
    )  # fmt: skip


@scenario
def api_sync():
    threads = 8
    ours = ours_api(threads)
    stock = gunicorn_gthread(threads)
    path = "/sync/3?verbose=2"
    return Scenario(
        "api-sync", "flask-restful: a sync Resource in the thread pool",
        f"GET {path}: a sync Resource (reqparse + marshal) run by our thread pool vs stock "
        f"flask-restful on gunicorn gthread, {threads} threads each; 100 connections.",
        "wrk",
        [Run(ours.name, ours, "api_app:app"), Run("stock-" + stock.name, stock, "stock_api_app:app")],
        ours=ours.name, check=check_json(path, API_ITEM), path=path,
        targets=[Target(f"api sync Resource: ours vs gunicorn gthread({threads})", "ratio",
                        ours.name, 3.0, "stock-" + stock.name)],
        repeat=API_REPEAT,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Scenarios (issue 9): Redis from an AsyncResource, and the Redis client alone.  The bench
# starts its own redis-server (harness/redis_service.py: free port, core 1) for each scenario.

REDIS_REPEAT = 3  # median of 3, like the api-* scenarios


def _redis_service(logdir):
    from .redis_service import RedisService

    return RedisService(logdir)


def _redis_data():
    from apps import redis_data

    return redis_data


@scenario
def api_redis():
    ours = ours_api()
    data = _redis_data()
    cases = (
        ("get", "one GET", {"value": data.VALUES[0]}, 3.0),
        ("gather10", "ten GETs with asyncio.gather", {"values": data.VALUES}, 4.0),
    )
    return [
        Scenario(
            f"api-redis-{name}", f"flask-restful + Redis: {what}",
            f"GET /redis/{name}: an AsyncResource doing {what} of 64-byte values with our Redis "
            "client (flask_restful_async.redis) on our server; the same resource with redis-py's "
            "asyncio client (hiredis parser) on our server; the same endpoint in Starlette on "
            "uvicorn with redis-py (hiredis). redis-server on core 1 beside wrk; 100 connections.",
            "wrk",
            [Run(ours.name, ours, "redis_app:ours_app()"),
             Run(ours.name + "-redis-py", ours, "redis_app:redis_py_app()"),
             Run("uvicorn-starlette-redis-py", UVICORN, "redis_app:starlette_app")],
            ours=ours.name, check=check_json(f"/redis/{name}", expected), path=f"/redis/{name}",
            targets=[Target(f"api redis {name}: ours vs Starlette + redis-py on uvicorn", "ratio",
                            ours.name, need, "uvicorn-starlette-redis-py")],
            repeat=REDIS_REPEAT, service=_redis_service,
        )
        for name, what, expected, need in cases
    ]  # fmt: skip


def _measure_redis_client(sc, settings, service, say):
    import redis_client

    return redis_client.measure(service, max(settings.repeat, sc.repeat), say,
                                labels=[r.label for r in sc.runs])


@scenario
def redis_client_alone():
    import os

    ours = os.environ.get("FRA_BENCH_REDIS_CLIENT") or "flask_restful_async.redis"
    return Scenario(
        "redis-client", "Redis client alone (asyncio loop, no HTTP)",
        "bench/redis_client.py: 200,000 GETs of a 64-byte value and 100,000 LRANGE 0 99 of a "
        "100-element list, each from 100 coroutines sharing one client on the stdlib asyncio "
        f"loop (uvloop off), in a process pinned to core 0: ours ({ours}) vs redis-py's "
        "asyncio client with the hiredis parser; redis-benchmark -P 16 (100 connections, on "
        "core 0 too) on the same redis-server (core 1) is the limit.",
        "client",
        [Run("ours", None, ours), Run("redis-py", None, "redis.asyncio"),
         Run("redis-benchmark -P 16", None, "redis-benchmark")],
        ours="ours",
        targets=[Target("redis client GET: ours vs redis-py (hiredis)", "ratio", "ours", 3.0,
                        "redis-py", metric="get_ops"),
                 Target("redis client LRANGE 0 99: ours vs redis-py (hiredis)", "ratio", "ours",
                        1.5, "redis-py", metric="lrange_ops")],
        repeat=REDIS_REPEAT, service=_redis_service, measure=_measure_redis_client,
    )  # fmt: skip
