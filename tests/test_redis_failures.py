"""Failures: a Redis that is down at start, killed mid-load, restarted, frozen; timeouts and
cancellation that leave the connection in sync; a pool that runs out.  Each test owns its
redis-server (fresh_redis_server / make_redis_server) and kills, freezes or restarts it."""
import asyncio

import pytest

from flask_restful_async.redis import ConnectionError, Redis, TimeoutError

# how long a test waits for the client to come back after Redis does (a safety net for a slow
# machine, never a measurement: the loops below stop at the first success)
RECOVERY_WAIT = 30.0


def run(coro):
    return asyncio.run(coro)


async def until_answers(r, key="probe"):
    """Commands until one succeeds; the ConnectionErrors on the way (fail-fast while backing
    off) are expected."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_WAIT
    failures = 0
    while True:
        try:
            await r.set(key, "up")
            return failures
        except ConnectionError:
            failures += 1
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.02)


def test_redis_down_at_start_fails_fast_then_is_found_when_it_comes(fresh_redis_server):
    srv = fresh_redis_server
    srv.stop()

    async def body():
        r = Redis.from_url(srv.url, socket_connect_timeout=2)
        with pytest.raises(ConnectionError) as refused:
            await r.get("k")
        assert srv.url.split("//")[1].split("/")[0] in str(refused.value)  # says where
        # while backing off, commands fail at once with the same error instead of piling up
        results = await asyncio.gather(*[r.get("k") for _ in range(50)], return_exceptions=True)
        assert all(isinstance(e, ConnectionError) for e in results)
        srv.start()
        await until_answers(r)
        value = await r.get("probe")
        await r.aclose()
        return value

    assert run(body()) == b"up"


def test_kill_mid_load_fails_what_was_in_flight_and_recovers(fresh_redis_server):
    srv = fresh_redis_server

    async def body():
        r = Redis.from_url(srv.url)
        await r.set("n", 0)
        stop = asyncio.Event()
        outcomes = {"ok": 0, "lost": 0}

        async def worker():
            while not stop.is_set():
                try:
                    await r.incr("n")
                    outcomes["ok"] += 1
                except ConnectionError:
                    outcomes["lost"] += 1
                    await asyncio.sleep(0.01)

        workers = [asyncio.create_task(worker()) for _ in range(50)]
        while outcomes["ok"] < 2000:
            await asyncio.sleep(0.01)
        srv.kill()
        while outcomes["lost"] == 0:
            await asyncio.sleep(0.01)
        srv.start()  # same port, empty: the counter starts again
        before = outcomes["ok"]
        while outcomes["ok"] < before + 2000:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), RECOVERY_WAIT)  # nobody hangs
        value = int(await r.get("n"))
        await r.aclose()
        return outcomes, value

    outcomes, value = run(body())
    assert outcomes["lost"] >= 1
    assert 2000 <= value  # the restarted server counted the increments since it came back


def test_pubsub_resubscribes_after_a_restart(fresh_redis_server):
    srv = fresh_redis_server

    async def body():
        r = Redis.from_url(srv.url)
        p = r.pubsub(ignore_subscribe_messages=True)
        await p.subscribe("events")
        await p.psubscribe("logs.*")
        await r.publish("events", "before")
        first = None
        while first is None:  # (ignored subscribe confirmations read as None, as in redis-py)
            first = await p.get_message(timeout=5)
        srv.restart()
        await until_answers(r)
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVERY_WAIT
        while len(got) < 2 and loop.time() < deadline:  # until the resubscription is in place
            await r.publish("events", "after")
            await r.publish("logs.app", "line")
            message = await p.get_message(timeout=0.2)
            while message is not None:
                got.append((message["type"], message["data"]))
                message = await p.get_message(timeout=0.05)
        await p.aclose()
        await r.aclose()
        return first["data"], got

    first, got = run(body())
    assert first == b"before"
    assert ("message", b"after") in got and ("pmessage", b"line") in got


def test_socket_timeout_raises_and_the_late_reply_is_dropped(fresh_redis_server):
    """A frozen Redis: the command times out; when Redis thaws, the late reply is read and
    dropped, and the next command gets its own reply, not the stale one."""
    srv = fresh_redis_server

    async def body():
        r = Redis.from_url(srv.url, socket_timeout=0.3)
        await r.set("a", "A")
        await r.set("b", "B")
        srv.freeze()
        try:
            with pytest.raises(TimeoutError):
                await r.get("a")
        finally:
            srv.thaw()
        values = [await r.get("b"), await r.get("a")]
        await r.aclose()
        return values

    assert run(body()) == [b"B", b"A"]


def test_cancelled_command_leaves_the_connection_in_sync(fresh_redis_server):
    srv = fresh_redis_server

    async def body():
        r = Redis.from_url(srv.url)
        await r.mset({"a": "A", "b": "B"})
        srv.freeze()
        try:
            task = asyncio.create_task(r.get("a"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task  # at once, Redis still frozen
        finally:
            srv.thaw()
        values = await asyncio.gather(r.get("b"), r.get("a"), r.get("b"))
        await r.aclose()
        return values

    assert run(body()) == [b"B", b"A", b"B"]


def test_cancelled_blocking_pop_does_not_lose_an_element(redis_url):
    """BLPOP runs on a dedicated connection; cancelled, that connection is closed, so Redis
    does not go on to pop the next element for a caller who is gone."""
    async def body():
        r = Redis.from_url(redis_url)
        task = asyncio.create_task(r.blpop("jobs", 0))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await r.rpush("jobs", "job-1")
        value = await r.lpop("jobs")
        await r.aclose()
        return value

    assert run(body()) == b"job-1"


def test_waiting_for_a_dedicated_connection_is_bounded(redis_url):
    async def body():
        # one shared + one dedicated connection at most
        r = Redis.from_url(redis_url, max_connections=2, pool_timeout=0.3)
        first = asyncio.create_task(r.blpop("q", 0))
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionError, match="max_connections=2"):
            await r.blpop("q", 0)
        assert await r.ping() is True  # the shared connection is not held up
        second = asyncio.create_task(r.blpop("q", 0))  # waits for the first one's connection
        await asyncio.sleep(0.05)
        await r.rpush("q", "x", "y")
        got = await asyncio.gather(first, second)
        await r.aclose()
        return got

    assert run(body()) == [(b"q", b"x"), (b"q", b"y")]


def test_health_check_replaces_a_connection_killed_while_idle(redis_url, redis_server):
    async def body():
        r = Redis.from_url(redis_url, health_check_interval=0.05, client_name="checked")
        await r.set("k", "v")
        redis_server.cli("CLIENT", "KILL", "SKIPME", "no")  # Redis drops every client
        await asyncio.sleep(0.1)
        value = await r.get("k")  # PING finds the dead connection; a new one serves the GET
        await r.aclose()
        return value

    assert run(body()) == b"v"
