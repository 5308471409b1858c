"""compat: run_sync, run_async, dual_decorator, retry (backoff, jitter, predicate),
fallback.  Waits are faked: nothing here depends on the clock."""
import asyncio
import random
import threading

import pytest
from flask import Flask, request
from werkzeug.exceptions import NotFound

from flask_restful_async import Api, AsyncResource, Resource, abort
from flask_restful_async.compat import (backoff_delays, dual_decorator, fallback, maybe_await,
                                        retry, run_async, run_sync)
from flask_restful_async.testing import asgi_test_client


# -- run_sync / run_async ------------------------------------------------------------------

def test_run_sync_runs_in_another_thread_with_the_request_context():
    app = Flask(__name__)
    api = Api(app)

    def blocking(suffix):
        return {"thread": threading.get_ident(), "path": request.path + suffix}

    class Offload(AsyncResource):
        async def get(self):
            result = await run_sync(blocking, "!")
            result["loop_thread"] = threading.get_ident()
            return result

    api.add_resource(Offload, "/offload")
    for client in (app.test_client(), asgi_test_client(app)):
        data = client.get("/offload").json
        assert data["path"] == "/offload!"
        assert data["thread"] != data["loop_thread"]
        getattr(client, "bridge", None) and client.bridge.close()


def test_run_async_from_a_sync_resource_under_wsgi():
    app = Flask(__name__)
    api = Api(app)

    async def fetch():
        await asyncio.sleep(0)
        return request.args["q"]

    class SyncCaller(Resource):
        def get(self):
            return {"got": run_async(fetch())}

    api.add_resource(SyncCaller, "/sync")
    assert app.test_client().get("/sync?q=wsgi").json == {"got": "wsgi"}


def test_run_async_from_a_worker_thread_uses_the_server_loop():
    app = Flask(__name__)
    api = Api(app)
    seen = {}

    async def on_loop():
        seen["loop_thread"] = threading.current_thread().name
        return request.args["q"]

    class SyncCaller(Resource):
        def get(self):
            seen["caller_thread"] = threading.current_thread().name
            return {"got": run_async(on_loop())}

    api.add_resource(SyncCaller, "/sync")
    client = asgi_test_client(app)
    try:
        assert client.get("/sync?q=asgi").json == {"got": "asgi"}
    finally:
        client.bridge.close()
    assert seen["caller_thread"].startswith("fra-worker")
    assert seen["loop_thread"] == "fra-test-loop"


def test_run_async_on_the_loop_thread_is_refused():
    app = Flask(__name__)
    api = Api(app)

    class Wrong(AsyncResource):
        async def get(self):
            coro = asyncio.sleep(0)
            try:
                run_async(coro)
            except RuntimeError as e:
                return {"refused": "await" in str(e)}
            finally:
                coro.close()

    api.add_resource(Wrong, "/wrong")
    client = asgi_test_client(app)
    try:
        assert client.get("/wrong").json == {"refused": True}
    finally:
        client.bridge.close()


def test_maybe_await():
    async def main():
        async def coro():
            return 2
        return [await maybe_await(1), await maybe_await(coro())]
    assert asyncio.run(main()) == [1, 2]


# -- dual_decorator ------------------------------------------------------------------------

def _guard(log):
    @dual_decorator
    def guard(func, *args, **kwargs):
        log.append(("before", args))
        if kwargs.get("deny"):
            return "denied"
        try:
            result = yield
        except KeyError:
            log.append("recovered")
            return "recovered"
        log.append("after")
        return result * 2
    return guard


def test_dual_decorator_on_sync_and_async_functions():
    log = []
    guard = _guard(log)

    @guard
    def sync(x, deny=False, fail=False):
        if fail:
            raise KeyError(x)
        return x

    @guard
    async def asynchronous(x, deny=False, fail=False):
        await asyncio.sleep(0)
        if fail:
            raise KeyError(x)
        return x

    assert sync(2) == 4 and sync(2, deny=True) == "denied" and sync(2, fail=True) == "recovered"
    assert asyncio.iscoroutinefunction(asynchronous)
    assert asyncio.run(asynchronous(3)) == 6
    assert asyncio.run(asynchronous(3, deny=True)) == "denied"
    assert asyncio.run(asynchronous(3, fail=True)) == "recovered"
    assert log.count("recovered") == 2 and log.count("after") == 2


def test_dual_decorator_lets_unhandled_errors_through():
    @_guard([])
    def failing():
        raise ValueError("no")

    with pytest.raises(ValueError):
        failing()


# -- retry / backoff -----------------------------------------------------------------------

def test_backoff_delays_grow_exponentially_and_are_capped():
    assert backoff_delays(5, base_delay=1, multiplier=2, max_delay=5, jitter=0) == [1, 2, 4, 5]
    rng = random.Random(7)
    delays = backoff_delays(6, base_delay=1, multiplier=2, max_delay=8, jitter=1.0, rng=rng)
    caps = [1, 2, 4, 8, 8]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps))
    assert len(set(delays)) == len(delays)  # jittered, not the plain caps
    half = backoff_delays(4, base_delay=2, multiplier=2, max_delay=100, jitter=0.5,
                          rng=random.Random(1))
    assert all(cap / 2 <= d <= cap for d, cap in zip(half, [2, 4, 8]))


class Flaky:
    """Fails `failures` times with `exc`, then returns 'ok'."""

    def __init__(self, failures, exc=ConnectionError):
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc("attempt %d" % self.calls)
        return "ok"


def test_retry_sync_until_success_with_the_planned_waits():
    waits = []
    flaky = Flaky(2)
    wrapped = retry(attempts=4, base_delay=1, multiplier=3, jitter=0, sleep=waits.append)(flaky)
    assert wrapped() == "ok"
    assert flaky.calls == 3 and waits == [1, 3]


def test_retry_async_gives_up_with_the_last_error():
    waits = []

    async def fake_sleep(delay):
        waits.append(delay)

    flaky = Flaky(10)

    @retry(attempts=3, base_delay=0.5, jitter=0, sleep=fake_sleep)
    async def call():
        await asyncio.sleep(0)
        return flaky()

    with pytest.raises(ConnectionError, match="attempt 3"):
        asyncio.run(call())
    assert flaky.calls == 3 and waits == [0.5, 1.0]


def test_retry_predicate_and_exception_types_decide():
    waits = []
    not_retried = Flaky(1, exc=ValueError)
    with pytest.raises(ValueError):
        retry(attempts=3, on=(ConnectionError,), sleep=waits.append)(not_retried)()
    assert not_retried.calls == 1

    picky = Flaky(5)
    only_first = retry(attempts=5, sleep=waits.append,
                       predicate=lambda e: str(e) == "attempt 1")(picky)
    with pytest.raises(ConnectionError, match="attempt 2"):
        only_first()
    assert picky.calls == 2


def test_retry_never_retries_http_errors_by_default():
    calls = []

    @retry(attempts=3, sleep=lambda d: None)
    def handler():
        calls.append(1)
        abort(404)

    with pytest.raises(NotFound):
        handler()
    assert calls == [1]


def test_retry_inside_an_async_resource():
    app = Flask(__name__)
    api = Api(app)
    flaky = Flaky(2)

    async def no_wait(delay):
        return None

    class Upstream(AsyncResource):
        @retry(attempts=3, sleep=no_wait)
        async def get(self):
            return {"result": flaky()}

    api.add_resource(Upstream, "/up")
    assert app.test_client().get("/up").json == {"result": "ok"}
    assert flaky.calls == 3


# -- fallback ------------------------------------------------------------------------------

def test_fallback_value_and_handler_sync_and_async():
    @fallback({"items": []}, on=(ConnectionError,))
    def sync_list():
        raise ConnectionError()

    async def from_cache(exc):
        return {"cached": type(exc).__name__}

    @fallback(from_cache)
    async def async_list():
        await asyncio.sleep(0)
        raise TimeoutError()

    @fallback(lambda exc: "sync handler")
    async def async_with_sync_handler():
        raise KeyError()

    assert sync_list() == {"items": []}
    assert asyncio.run(async_list()) == {"cached": "TimeoutError"}
    assert asyncio.run(async_with_sync_handler()) == "sync handler"


def test_fallback_lets_other_errors_and_http_errors_through():
    @fallback("x", on=(ConnectionError,))
    def wrong_kind():
        raise ValueError()

    @fallback("x")
    def http_error():
        abort(403)

    with pytest.raises(ValueError):
        wrong_kind()
    with pytest.raises(Exception) as info:
        http_error()
    assert info.value.code == 403


def test_fallback_does_not_swallow_cancellation():
    @fallback("x")
    async def cancelled():
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
