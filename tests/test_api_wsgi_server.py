"""AsyncResource under a real WSGI server: gunicorn, gthread workers, over sockets.

Each worker thread runs the coroutines on its own event loop, created once and reused:
requests served by the same thread report the same loop, different threads different
loops, and there are never more loops than threads.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from werkzeug.exceptions import GatewayTimeout

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds: a safety net only
THREADS = 4

APP = textwrap.dedent('''
    import asyncio
    import threading

    from flask import Flask, g, request

    from flask_restful_async import Api, AsyncResource, reqparse

    app = Flask(__name__)
    api = Api(app, timeout=0.05)
    parser = reqparse.RequestParser()
    parser.add_argument("n", type=int, location="args")
    arrived = {"count": 0}
    lock = threading.Lock()
    everyone = threading.Event()

    class Loop(AsyncResource):
        timeout = 30.0

        async def get(self):
            g.n = parser.parse_args().n
            with lock:
                arrived["count"] += 1
                if arrived["count"] >= %(threads)d:
                    everyone.set()
            # hold this thread until all threads are busy, so each serves one request
            await asyncio.get_running_loop().run_in_executor(None, everyone.wait, 30)
            await asyncio.sleep(0)
            return {"thread": threading.get_ident(), "loop": id(asyncio.get_running_loop()),
                    "n": g.n, "path": request.path}

    class Hang(AsyncResource):
        async def get(self):
            await asyncio.Event().wait()

    api.add_resource(Loop, "/loop")
    api.add_resource(Hang, "/hang")
''' % {"threads": THREADS})


@pytest.fixture(scope="module")
def gunicorn_port(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gunicorn_app")
    (folder / "wsgi_app.py").write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads",
         str(THREADS), "--workers", "1", "--bind", "127.0.0.1:0", "--log-level", "info",
         "wsgi_app:app"], cwd=folder, env=env, stderr=subprocess.PIPE, text=True)
    port = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
        if "Booting worker" in line and port:
            break
    assert port, "gunicorn did not start:\n" + "".join(lines)
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(WAIT)


def _get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_one_loop_per_worker_thread_reused_across_requests(gunicorn_port):
    rounds = 3
    results = []
    for _ in range(rounds):
        with ThreadPoolExecutor(THREADS) as pool:
            results += list(pool.map(lambda i: _get(gunicorn_port, "/loop?n=%d" % i),
                                     range(THREADS)))
    assert all(status == 200 for status, _ in results)
    bodies = [body for _, body in results]
    assert sorted(b["n"] for b in bodies) == sorted(list(range(THREADS)) * rounds)
    loops_of_thread = {}
    for body in bodies:
        loops_of_thread.setdefault(body["thread"], set()).add(body["loop"])
    assert all(len(loops) == 1 for loops in loops_of_thread.values())   # reused per thread
    assert len(loops_of_thread) == THREADS                                # every thread served
    assert len({b["loop"] for b in bodies}) == THREADS                    # one loop each
    assert len(bodies) == rounds * THREADS > THREADS                      # not one per request


def test_api_default_timeout_gives_504(gunicorn_port):
    status, body = _get(gunicorn_port, "/hang")
    assert (status, body) == (504, {"message": GatewayTimeout.description})
