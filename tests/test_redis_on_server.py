"""The Redis client inside AsyncResources on our server: its connection rides the server's libuv
loop, the commands that concurrent coroutines issue leave together, and pub/sub and blocking
commands work beside HTTP traffic (tests/apps_api/redis_client_app.py)."""
import json
import threading
import time

from conftest import NATIVE_APP_DIR, H11Client, serve


def test_client_on_our_server(redis_url, redis_server):
    with serve("redis_client_app:app", "--app-dir", NATIVE_APP_DIR,
               env={"REDIS_URL": redis_url}) as srv:
        with H11Client(srv.port) as client:
            assert client.request("GET", "/client/info").json()["adapter"] == "uv"
            burst = client.request("GET", "/client/burst/100").json()
            assert sorted(burst["replies"]) == list(range(1, 101))
            assert burst["writes"] == 1  # 100 commands from 100 coroutines: one write
            r = client.request("POST", "/client/publish/news",
                               body=json.dumps({"message": "hello"}).encode(),
                               headers=[("content-type", "application/json")])
            assert r.json() == {"received": "hello", "channel": "news"}

            # a blocking pop waits on its own connection while other requests are served
            popped = {}

            def pop():
                with H11Client(srv.port) as other:
                    popped.update(other.request("GET", "/client/blpop/jobs").json())
            waiter = threading.Thread(target=pop)
            waiter.start()
            deadline = time.monotonic() + 30  # a safety net, not a measurement
            while "blocked_clients:1" not in redis_server.cli("INFO", "clients"):
                assert time.monotonic() < deadline, "the BLPOP never reached Redis"
                assert client.request("GET", "/client/info").json()["adapter"] == "uv"
                time.sleep(0.01)
            redis_server.cli("RPUSH", "jobs", "job-1")
            waiter.join(30)
            assert popped == {"popped": ["jobs", "job-1"]}
        srv.stop()
        assert srv.proc.returncode == 0, srv.log[-3000:]
