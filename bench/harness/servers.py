"""The servers under test and how each one is started.

Every server runs ONE worker process (pinned to core 0 by the runner) and serves an app from
bench/apps: `asgi_apps` for ASGI servers, `wsgi_apps` for WSGI servers, `rsgi_apps` for
Granian's native protocol.  Settings that change results (backlog, keep-alive timeout, thread
count, event loop) are set to the same values everywhere they exist.

To add a server: write a function returning its argv and add a Server to SERVERS.
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .procs import HOST

PY = sys.executable
APPS_DIR = Path(__file__).resolve().parent.parent / "apps"
MODULES = {"asgi": "asgi_apps", "wsgi": "wsgi_apps", "rsgi": "rsgi_apps"}

BACKLOG = 2048  # uvicorn's and gunicorn's default; raised for the others
KEEPALIVE_S = 120  # long enough that idle connections outlive the RSS measurement
WSGI_THREADS = 8  # thread pool of the threaded WSGI servers


@dataclass(frozen=True)
class Server:
    name: str
    interface: str  # "asgi", "wsgi" or "rsgi": which app module it serves
    argv: Callable[[str, int], list]  # (module:attr, port) -> command line
    ours: bool = False
    persistent: bool = True  # keeps connections alive between requests
    packages: tuple = ()  # distributions whose versions the report records
    note: str = ""  # one line for the README/report: how it is configured
    env: dict = field(default_factory=dict)
    cwd: str = ""  # where it starts (default: the repository; a baseline's own checkout)

    def app(self, attr):
        return f"{MODULES[self.interface]}:{attr}"


def _ours(interface, loop=None, threads=WSGI_THREADS):
    def argv(target, port):
        cmd = [
            PY, "-m", "flask_restful_async", "run", target,
            "--host", HOST, "--port", str(port),
            "--app-dir", str(APPS_DIR),
            "--interface", interface,
            "--no-access-log", "--log-level", "warning",
            "--backlog", str(BACKLOG),
            "--timeout-keep-alive", str(KEEPALIVE_S),
        ]  # fmt: skip
        if loop:
            cmd += ["--loop", loop]
        if interface == "wsgi":
            cmd += ["--threads", str(threads)]
        return cmd

    return argv


def _uvicorn(target, port):
    return [
        PY, "-m", "uvicorn", target,
        "--app-dir", str(APPS_DIR),
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--lifespan", "on",
        "--no-access-log", "--log-level", "warning",
        "--backlog", str(BACKLOG),
        "--timeout-keep-alive", str(KEEPALIVE_S),
    ]  # fmt: skip


def _granian(interface):
    def argv(target, port):
        cmd = [
            PY, "-m", "granian",
            "--interface", interface,
            "--host", HOST, "--port", str(port),
            "--workers", "1",
            "--no-access-log", "--log-level", "warning",
            "--backlog", str(BACKLOG),
            # Granian serves at most `backpressure` connections at once (default backlog/workers);
            # raised like gunicorn's --worker-connections so it can hold the idle connections.
            "--backpressure", "10000",
            "--working-dir", str(APPS_DIR),
        ]  # fmt: skip
        if interface == "wsgi":
            cmd += ["--blocking-threads", str(WSGI_THREADS)]
        else:
            cmd += ["--loop", "uvloop"]
        return cmd + [target]

    return argv


def _hypercorn(target, port):
    return [
        PY, "-m", "hypercorn",
        "--bind", f"{HOST}:{port}",
        "--workers", "1", "--worker-class", "uvloop",
        "--keep-alive", str(KEEPALIVE_S),
        "--backlog", str(BACKLOG),
        "--log-level", "warning",
        target,
    ]  # fmt: skip


def _gunicorn(worker, threads=WSGI_THREADS):
    def argv(target, port):
        cmd = [
            PY, "-m", "gunicorn",
            "--bind", f"{HOST}:{port}",
            "--workers", "1", "--worker-class", worker,
            "--backlog", str(BACKLOG),
            "--chdir", str(APPS_DIR),
            "--log-level", "warning",
        ]  # fmt: skip
        if worker == "gthread":
            cmd += [
                "--threads", str(threads),
                "--keep-alive", str(KEEPALIVE_S),
                "--worker-connections", "10000",
            ]  # fmt: skip
        return cmd + [target]

    return argv


OURS_ASGI = Server(
    "ours-asgi", "asgi", _ours("asgi", "uvloop"), ours=True,
    packages=("flask-restful-async", "uvloop"), note="--interface asgi --loop uvloop",
)  # fmt: skip
OURS_ASGI_ASYNCIO = Server(
    "ours-asgi-asyncio", "asgi", _ours("asgi", "asyncio"), ours=True,
    packages=("flask-restful-async",), note="--interface asgi --loop asyncio (stdlib loop)",
)  # fmt: skip
OURS_WSGI = Server(
    "ours-wsgi", "wsgi", _ours("wsgi"), ours=True,
    packages=("flask-restful-async",), note=f"--interface wsgi --threads {WSGI_THREADS}",
)  # fmt: skip
UVICORN = Server(
    "uvicorn", "asgi", _uvicorn,
    packages=("uvicorn", "httptools", "uvloop"), note="--loop uvloop --http httptools, 1 process",
)  # fmt: skip
GRANIAN_ASGI = Server(
    "granian-asgi", "asgi", _granian("asgi"),
    packages=("granian",), note="--interface asgi --workers 1 --loop uvloop",
)  # fmt: skip
GRANIAN_RSGI = Server(
    "granian-rsgi", "rsgi", _granian("rsgi"),
    packages=("granian",), note="--interface rsgi (Granian's own protocol; reference only)",
)  # fmt: skip
GRANIAN_WSGI = Server(
    "granian-wsgi", "wsgi", _granian("wsgi"),
    packages=("granian",), note=f"--interface wsgi --workers 1 --blocking-threads {WSGI_THREADS}",
)  # fmt: skip
HYPERCORN = Server(
    "hypercorn", "asgi", _hypercorn,
    packages=("hypercorn",), note="--workers 1 --worker-class uvloop",
    env={"PYTHONPATH": str(APPS_DIR)},
)  # fmt: skip
GUNICORN_SYNC = Server(
    "gunicorn-sync", "wsgi", _gunicorn("sync"), persistent=False,
    packages=("gunicorn",), note="--workers 1 --worker-class sync (closes every connection)",
)  # fmt: skip
GUNICORN_GTHREAD = Server(
    "gunicorn-gthread", "wsgi", _gunicorn("gthread"),
    packages=("gunicorn",), note=f"--workers 1 --worker-class gthread --threads {WSGI_THREADS}",
)  # fmt: skip

SERVERS = [
    OURS_ASGI, OURS_ASGI_ASYNCIO, OURS_WSGI,
    UVICORN, GRANIAN_ASGI, GRANIAN_RSGI, HYPERCORN,
    GUNICORN_SYNC, GUNICORN_GTHREAD, GRANIAN_WSGI,
]  # fmt: skip
BY_NAME = {s.name: s for s in SERVERS}

ASGI_PEERS = [UVICORN, GRANIAN_ASGI, HYPERCORN]
WSGI_PEERS = [GUNICORN_SYNC, GUNICORN_GTHREAD, GRANIAN_WSGI]


def ours_wsgi(threads):
    """ours-wsgi with another thread-pool size (named ours-wsgi-tN)."""
    return Server(
        f"ours-wsgi-t{threads}", "wsgi", _ours("wsgi", threads=threads), ours=True,
        packages=("flask-restful-async",), note=f"--interface wsgi --threads {threads}",
    )  # fmt: skip


def gunicorn_gthread(threads):
    """gunicorn-gthread with another thread count (named gunicorn-gthread-tN)."""
    return Server(
        f"gunicorn-gthread-t{threads}", "wsgi", _gunicorn("gthread", threads),
        packages=("gunicorn",), note=f"--workers 1 --worker-class gthread --threads {threads}",
    )  # fmt: skip


def environment(server):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in server.env.items():
        if key == "PYTHONPATH" and env.get(key):
            value = value + os.pathsep + env[key]
        env[key] = value
    return env


def ours_api(threads=WSGI_THREADS):
    """Ours serving a flask-restful app with --interface auto: the native path (AsyncResource on
    the loop, sync resources in a pool of `threads`), named ours-api-tN."""
    base = _ours("auto", "uvloop")

    def argv(target, port):
        return base(target, port) + ["--threads", str(threads)]

    return Server(
        f"ours-api-t{threads}", "asgi", argv, ours=True,
        packages=("flask-restful-async", "flask", "uvloop"),
        note=f"--interface auto (native flask-restful path) --loop uvloop --threads {threads}",
    )  # fmt: skip


def baseline(server, root):
    """`server` (one of ours) run from another checkout of this repository, built in place
    (`root`, e.g. `git worktree add /tmp/base <rev> && make -C /tmp/base build`): the same
    command line with that checkout's package and apps, named <name>@base."""
    apps = str(Path(root) / "bench" / "apps")

    def argv(target, port):
        return [apps if a == str(APPS_DIR) else a for a in server.argv(target, port)]

    return Server(f"{server.name}@base", server.interface, argv, packages=server.packages,
                  note=f"{server.note} (from {root})", env=server.env, cwd=str(root))
