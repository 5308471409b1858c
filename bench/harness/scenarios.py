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

# The smoke run (CI): hello and stream-100m only, these servers only, short runs.
SMOKE_SERVERS = ("ours-asgi", "ours-wsgi", "uvicorn", "ours-api-t8", "uvicorn-starlette")


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
    # kind "server": measure(sc, srv, settings) -> result, of a server the runner started
    measure: Optional[Callable] = None
    summary: Optional[Callable] = None  # kind "server": summary(result) -> one line
    # kind "server": the report's table, (header, result key, format(value) -> str) per column
    columns: list = field(default_factory=list)
    sse_paths: dict = field(default_factory=dict)  # sse-10k: the stream path per run label


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


# ---------------------------------------------------------------------------------------------
# Scenarios (issue 10): streaming.  One app, bench/apps/stream_app.py, with the same endpoints
# for every peer: ours is an Api app (AsyncResources, native path), the peer Starlette on
# uvicorn, and for files also a raw ASGI app answering with http.response.pathsend on Granian.

STREAM_FILE_SIZE = 50_000
STREAM_MIB = 100
SSE_PER_STREAM_MAX = 4096  # bytes of RSS per SSE stream above an idle keep-alive connection
SSE_PUBLISH_MAX_MS = 200.0  # one published event to the last of the streams


def _stream_app():
    from apps import stream_app

    return stream_app


def check_file(port):
    expected = _stream_app().file_bytes()
    r = load.request(port, "GET", "/file")
    if r.status != 200 or r.body != expected:
        raise CheckFailed(f"GET /file: {r.status} with {len(r.body)} bytes {r.body[:60]!r}, "
                          f"expected 200 with the {len(expected)}-byte file")


def check_put_upload(port):
    r = load.request(
        port, "PUT", "/upload", body=_UPLOAD_BODY,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    if r.status != 200 or json.loads(r.body or b"{}").get("received") != UPLOAD_SIZE:
        raise CheckFailed(f"PUT 1 MiB: {r.status} {r.body[:80]!r}, expected received={UPLOAD_SIZE}")


def check_stream(port):
    r = load.request(port, "GET", "/stream/1", timeout=30)
    if r.status != 200 or r.body != b"x" * (1 << 20):
        raise CheckFailed(f"GET /stream/1: {r.status} with {len(r.body)} bytes, expected 1 MiB")


def _stream_runs(peer_attr="starlette_app"):
    ours = ours_api()
    return ours, [Run(ours.name, ours, "stream_app:app"),
                  Run("uvicorn-starlette", UVICORN, "stream_app:" + peer_attr)]


@scenario
def stream_file():
    ours, runs_ = _stream_runs()
    runs_.append(Run("ours-asgi-pathsend", OURS_ASGI, "stream_app:pathsend_app"))
    runs_.append(Run("granian-pathsend", GRANIAN_ASGI, "stream_app:pathsend_app"))
    return Scenario(
        "file-50k", "50 KB file",
        f"GET /file, a {STREAM_FILE_SIZE:,}-byte file: an AsyncResource returning send_file on "
        "ours; Starlette's FileResponse on uvicorn; a raw ASGI app answering with "
        "http.response.pathsend on ours and on Granian (the server sends the file: server "
        "against server, same app). 100 keep-alive connections.", "wrk",
        runs_, ours=ours.name, check=check_file, path="/file", payload_bytes=STREAM_FILE_SIZE,
        targets=[Target("file 50k: ours vs Starlette FileResponse on uvicorn", "ratio", ours.name,
                        1.5, "uvicorn-starlette"),
                 Target("file 50k: pathsend on ours vs on granian", "ratio",
                        "ours-asgi-pathsend", 1.0, "granian-pathsend")],
    )  # fmt: skip


@scenario
def stream_upload():
    ours, runs_ = _stream_runs()
    return Scenario(
        "upload-1m", "1 MiB uploads read as they arrive",
        "PUT /upload with a 1 MiB body (lua/upload_put.lua): an AsyncResource reading it with "
        "body_chunks() on ours, `async for chunk in request.stream()` in Starlette on uvicorn; "
        "both answer with the byte count. 32 connections.", "wrk",
        runs_, ours=ours.name, check=check_put_upload, path="/upload", connections=32,
        lua=str(LUA_DIR / "upload_put.lua"), payload_bytes=UPLOAD_SIZE,
        targets=[Target("upload 1 MiB: ours vs Starlette request.stream() on uvicorn", "ratio",
                        ours.name, 1.2, "uvicorn-starlette")],
    )  # fmt: skip


def _stream_columns():
    from .report import _n

    return [("MiB/s (median)", "mib_s", lambda v: _n(v, 0)),
            ("every run, MiB/s", "mib_s_all", lambda v: ", ".join(_n(x, 0) for x in v)),
            ("server CPU s per download", "server_cpu_s", lambda v: f"{v:.2f}")]


@scenario
def stream_generated():
    from . import streams

    ours, runs_ = _stream_runs()
    return Scenario(
        "stream-100m", f"{STREAM_MIB} MiB generated stream, one fast reader",
        f"GET /stream/{STREAM_MIB}: an async generator yielding {STREAM_MIB * 16:,} chunks of "
        "64 KiB (bytes), returned by an AsyncResource on ours, in a StreamingResponse of "
        f"Starlette on uvicorn; read by `curl -o /dev/null` on core 1, {streams.STREAM_RUNS} "
        "downloads after one dropped, the median reported.", "server",
        runs_, ours=ours.name, check=check_stream, path=f"/stream/{STREAM_MIB}",
        payload_bytes=STREAM_MIB << 20, smoke=True,
        measure=streams.measure_stream, summary=streams.summary_stream, columns=_stream_columns(),
        targets=[Target(f"stream {STREAM_MIB} MiB: ours vs Starlette StreamingResponse on "
                        "uvicorn", "ratio", ours.name, 1.5, "uvicorn-starlette",
                        metric="mib_s")],
    )  # fmt: skip


def _sse_columns():
    def kib(v):
        return "-" if v is None else f"{v / 1024:,.2f} KiB"

    def ms(v):
        return "-" if v is None else f"{v:,.1f} ms"

    return [("streams held", "streams_held", lambda v: f"{v:,}"),
            ("RSS per idle conn", "rss_per_idle_conn", kib),
            ("RSS per stream", "rss_per_stream", kib),
            ("extra per stream", "rss_extra_per_stream", kib),
            ("event to the last (median)", "publish_last_ms", ms),
            ("event to the median stream", "publish_p50_ms", ms)]


@scenario
def sse_many():
    from . import streams

    ours = ours_api()
    fanout = ours.name + "-python-fanout"
    n = streams.SSE_STREAMS
    return Scenario(
        "sse-10k", f"{n:,} Server-Sent Events streams on one worker",
        f"bench/sse_clients.py (asyncio + uvloop, core 1) opens {n:,} connections. RSS: "
        f"{n:,} idle keep-alive connections (GET /hello) on one fresh server, {n:,} event streams "
        "on another; (RSS growth per stream) - (RSS growth per idle connection). Then "
        f"{streams.SSE_PUBLISHES} events published one at a time (POST /sse/publish -> "
        "Broadcast.publish); the time from writing the POST until the last stream has the event "
        f"(median of the {streams.SSE_PUBLISHES}; the client's own reading of {n:,} sockets is "
        f"included). `{ours.name}`: EventStream(broadcast.subscribe()), the fan-out in C "
        f"(_core.StreamGroup); `{fanout}` (reference): one async generator per stream awaiting "
        "an asyncio.Event.", "server",
        [Run(ours.name, ours, "stream_app:app"), Run(fanout, ours, "stream_app:app")],
        check=check_json("/hello", {"hello": "world"}), connections=n,
        measure=streams.measure_sse, summary=streams.summary_sse, columns=_sse_columns(),
        sse_paths={ours.name: "/sse/sub", fanout: "/sse/py"},
        targets=[Target("SSE: RSS per stream above an idle connection", "max", ours.name,
                        SSE_PER_STREAM_MAX, metric="rss_extra_per_stream", unit="B"),
                 Target(f"SSE: one event to the last of {n:,} streams", "max", ours.name,
                        SSE_PUBLISH_MAX_MS, metric="publish_last_ms", unit="ms")],
    )  # fmt: skip
