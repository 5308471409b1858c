"""The client beyond single commands: pipelines and transactions, scripts, pub/sub, key_prefix,
client-side caching, settings and URLs, one client on several loops.  Against a redis-server of
the tests' own (conftest's redis_url)."""
import asyncio
import os
import subprocess
import sys

import pytest

from flask_restful_async.redis import (AuthenticationError, ConnectionError, DataError, PubSubError,
                                       Redis, ResponseError, WatchError, from_url)
from flask_restful_async.redis.url import parse_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(coro):
    return asyncio.run(coro)


async def using(url, body, **kwargs):
    r = Redis.from_url(url, **kwargs)
    try:
        return await body(r)
    finally:
        await r.aclose()


# ---- pipelines and transactions -------------------------------------------------------------

def test_pipeline_queues_and_returns_results_in_order(redis_url):
    async def body(r):
        async with r.pipeline(transaction=False) as p:
            assert p.set("a", 1).incr("a").get("a") is p
            await p.lpush("l", "x")  # awaiting a queued command gives the pipeline back
            assert len(p) == 4
            return await p.execute()
    assert run(using(redis_url, body)) == [True, 2, b"2", 1]


def test_transaction_is_atomic_among_concurrent_commands_on_the_shared_connection(redis_url):
    """MULTI ... EXEC goes out back to back: 200 coroutines INCR-ing the same counter on the
    same connection cannot get between the transaction's commands, and every reply reaches
    the coroutine that asked."""
    async def body(r):
        await r.set("n", 0)

        async def bump(i):
            return ("one", i, await r.incr("n"))

        async def transaction(i):
            async with r.pipeline(transaction=True) as p:
                p.incr("n").incr("n").incr("n").get("n")
                return ("tx", i, await p.execute())

        results = await asyncio.gather(*[bump(i) if i % 5 else transaction(i) for i in range(200)])
        return results, int(await r.get("n"))

    results, final = run(using(redis_url, body))
    singles = sorted(v for kind, _, v in results if kind == "one")
    txs = [v for kind, _, v in results if kind == "tx"]
    assert len(singles) == 160 and len(txs) == 40
    assert final == 160 + 3 * 40
    for first, second, third, got in txs:  # consecutive: nothing came between them
        assert (second, third) == (first + 1, first + 2) and got == str(third).encode()
    seen = set(singles) | {v for tx in txs for v in tx[:3]}
    assert seen == set(range(1, final + 1))  # every INCR's reply went to its own caller


def test_pipeline_errors_raise_or_stay_in_place(redis_url):
    async def body(r):
        await r.set("s", "text")
        p = r.pipeline(transaction=False)
        p.set("a", 1).incr("s").get("a")
        in_place = await p.execute(raise_on_error=False)
        p.set("a", 2).incr("s").get("a")
        with pytest.raises(ResponseError) as raised:
            await p.execute()
        return in_place, str(raised.value), await r.get("a")

    in_place, message, a = run(using(redis_url, body))
    assert in_place[0] is True and in_place[2] == b"1"
    assert isinstance(in_place[1], ResponseError)
    assert message.startswith("Command # 2 (INCRBY s 1) of pipeline caused error: ")
    assert a == b"2"  # the commands around the error ran


def test_transaction_refused_while_queueing_runs_nothing(redis_url):
    async def body(r):
        p = r.pipeline()
        p.set("a", 1).execute_command("INCR")  # wrong arity: refused at queue time, EXECABORT
        with pytest.raises(ResponseError) as raised:
            await p.execute()
        return str(raised.value), await r.get("a"), await r.ping()

    message, a, pong = run(using(redis_url, body))
    assert "Command # 2" in message and "wrong number of arguments" in message
    assert a is None and pong is True


def test_watch_raises_watch_error_when_a_watched_key_changes(redis_url):
    async def body(r):
        await r.set("balance", 10)
        async with r.pipeline() as p:
            await p.watch("balance")
            value = int(await p.get("balance"))  # immediate mode until multi()
            await r.set("balance", 99)            # another writer, through the shared connection
            p.multi()
            p.set("balance", value - 1)
            with pytest.raises(WatchError):
                await p.execute()
        # unchanged watched key: the transaction runs
        async with r.pipeline() as p:
            await p.watch("balance")
            value = int(await p.get("balance"))
            p.multi()
            p.set("balance", value - 1)
            done = await p.execute()
        return done, await r.get("balance")

    assert run(using(redis_url, body)) == ([True], b"98")


def test_transaction_helper_retries_until_the_watch_holds(redis_url):
    async def body(r):
        await r.set("x", 1)
        attempts = []

        async def double(pipe):
            attempts.append(1)
            value = int(await pipe.get("x"))
            if len(attempts) == 1:
                await r.set("x", 5)  # spoil the first attempt
            pipe.multi()
            pipe.set("x", value * 2)

        await r.transaction(double, "x")
        return len(attempts), await r.get("x")

    assert run(using(redis_url, body)) == (2, b"10")


# ---- scripts ----------------------------------------------------------------------------------

def test_registered_script_uses_evalsha_and_reloads_after_a_flush(redis_url, redis_server):
    def calls(name):
        stats = redis_server.info("commandstats").get("cmdstat_" + name, "calls=0")
        return int(str(stats).split("calls=")[1].split(",")[0])

    async def body(r):
        add = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        await r.script_flush()
        out = [await add(keys=["c"], args=[2])]  # NOSCRIPT, then EVAL
        evals = calls("eval")
        out.append(await add(keys=["c"], args=[3]))  # EVALSHA only
        assert calls("eval") == evals
        await r.script_flush()
        out.append(await add(keys=["c"], args=[4]))  # gone again: EVAL again
        assert calls("eval") == evals + 1
        async with r.pipeline() as p:
            await add(keys=["c"], args=[1], client=p)
            p.get("c")
            out.append(await p.execute())
        return out, add.sha

    out, sha = run(using(redis_url, body))
    assert out == [2, 5, 9, [10, b"10"]]
    assert len(sha) == 40


# ---- pub/sub ----------------------------------------------------------------------------------

def test_pubsub_messages_as_redis_py_shapes_them(redis_url):
    async def body(r):
        p = r.pubsub()
        await p.subscribe("news", "sport")
        await p.psubscribe("w*")
        got = [await p.get_message(timeout=5) for _ in range(3)]
        await r.publish("news", "hello")
        await r.publish("weather", "rain")
        got.append(await p.get_message(timeout=5))
        got.append(await p.get_message(timeout=5))
        got.append(await p.get_message(timeout=0))  # nothing more: None at once
        await p.unsubscribe("sport")
        got.append(await p.get_message(timeout=5))
        await p.aclose()
        return got, p.subscribed

    got, subscribed = run(using(redis_url, body))
    assert got == [
        {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1},
        {"type": "subscribe", "pattern": None, "channel": b"sport", "data": 2},
        {"type": "psubscribe", "pattern": None, "channel": b"w*", "data": 3},
        {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"},
        {"type": "pmessage", "pattern": b"w*", "channel": b"weather", "data": b"rain"},
        None,
        {"type": "unsubscribe", "pattern": None, "channel": b"sport", "data": 2},
    ]
    assert subscribed is False


def test_pubsub_listen_handlers_and_decoding(redis_url):
    async def body(r):
        handled = []
        p = r.pubsub(ignore_subscribe_messages=True)
        await p.subscribe("plain", alerts=handled.append)

        async def publish():
            for i in range(3):
                await r.publish("alerts", "a%d" % i)
                await r.publish("plain", "p%d" % i)
            await r.publish("plain", "stop")

        task = asyncio.create_task(publish())
        seen = []
        async for message in p.listen():
            seen.append(message["data"])
            if message["data"] == "stop":
                await p.unsubscribe()
        await task
        return seen, [m["data"] for m in handled]

    seen, handled = run(using(redis_url, body, decode_responses=True))
    assert seen == ["p0", "p1", "p2", "stop"]  # subscribe confirmations ignored
    assert handled == ["a0", "a1", "a2"]       # a handler's channel never reaches listen()


def test_pubsub_misuse_is_a_clear_error(redis_url):
    async def body(r):
        p = r.pubsub()
        with pytest.raises(PubSubError):
            await p.subscribe()
        await p.aclose()
        with pytest.raises(PubSubError):
            await p.subscribe("x")
        return await p.get_message(timeout=0)
    assert run(using(redis_url, body)) is None


# ---- key_prefix -------------------------------------------------------------------------------

def test_key_prefix_reaches_every_key_argument(redis_url, redis_server):
    """Keys of commands with one key, several keys, keys after a count (keynum), keys found by
    keyword (XREAD STREAMS), a command the client has no method for (LMPOP), and scripts'
    KEYS: all prefixed, nothing else is."""
    async def body(r):
        await r.set("one", "v")
        await r.mset({"m1": 1, "m2": 2})
        await r.rpush("list", "a", "b")
        await r.execute_command("LMPOP", 2, "nothing", "list", "LEFT")
        await r.zadd("z1", {"x": 1})
        await r.zunionstore("zdest", ["z1"])
        await r.xadd("stream", {"f": "v"}, id="1-0")
        read = await r.xread({"stream": 0})
        await r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "scripted", "not-a-key")
        await r.rename("one", "renamed")
        await r.sadd("s1", "m")
        await r.smove("s1", "s2", "m")
        popped = await r.blpop(["list"], 1)
        return read, popped, sorted(await r.keys("*")), sorted([k async for k in r.scan_iter()])

    read, popped, keys, scanned = run(using(redis_url, body, key_prefix="app1:"))
    stored = sorted(redis_server.cli("KEYS", "*").split())
    expected = ["m1", "m2", "renamed", "s2", "scripted", "stream", "z1", "zdest"]
    assert stored == ["app1:" + k for k in expected]
    assert redis_server.cli("GET", "app1:scripted") == "not-a-key"
    assert keys == scanned == [k.encode() for k in expected]  # the prefix comes off
    assert read[0][0] == b"stream"
    assert popped == (b"list", b"b")


def test_two_prefixes_share_one_redis_without_seeing_each_other(redis_url):
    async def body():
        a = Redis.from_url(redis_url, key_prefix="a:")
        b = Redis.from_url(redis_url, key_prefix="b:")
        await a.set("k", "from a")
        await b.set("k", "from b")
        out = await a.get("k"), await b.get("k"), await a.keys(), await b.dbsize()
        await a.aclose()
        await b.aclose()
        return out
    assert run(body()) == (b"from a", b"from b", [b"k"], 2)


# ---- client-side cache ------------------------------------------------------------------------

def test_client_cache_serves_repeated_reads_and_is_invalidated_by_another_client(redis_url):
    async def body():
        cached = Redis.from_url(redis_url, protocol=3, client_cache=100)
        other = Redis.from_url(redis_url)
        await other.set("k", "v1")
        first = await cached.get("k")
        again = await cached.get("k")
        info = cached.cache_info()
        await other.set("k", "v2")  # Redis pushes an invalidation to `cached`'s connection
        for _ in range(200):
            if cached.cache_info()["entries"] == 0:
                break
            await cached.ping()  # the push arrives on the connection, in order
        after = await cached.get("k")
        await cached.aclose()
        await other.aclose()
        return first, again, info, after

    first, again, info, after = run(body())
    assert first == again == b"v1"
    assert info["hits"] == 1 and info["misses"] == 1 and info["entries"] == 1
    assert after == b"v2"


def test_client_cache_needs_resp3():
    with pytest.raises(ValueError, match="client_cache.*protocol=3"):
        Redis(client_cache=10)


# ---- settings, URLs, handshake ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, setting", [
    ({"port": 70000}, "port"), ({"db": -1}, "db"), ({"protocol": 4}, "protocol"),
    ({"socket_timeout": 0}, "socket_timeout"), ({"max_connections": 0}, "max_connections"),
    ({"health_check_interval": -1}, "health_check_interval"), ({"encoding": "nope"}, "encoding"),
    ({"key_prefix": 5}, "key_prefix"), ({"ssl": True, "ssl_cert_reqs": "maybe"}, "ssl_cert_reqs"),
])
def test_bad_settings_name_the_setting(kwargs, setting):
    with pytest.raises(ValueError) as raised:
        Redis(**kwargs)
    assert str(raised.value).startswith("Redis setting %s=" % setting)


def test_urls():
    assert parse_url("redis://u:p%40ss@h:1234/3?decode_responses=yes&socket_timeout=1.5") == {
        "username": "u", "password": "p@ss", "host": "h", "port": 1234, "db": 3,
        "decode_responses": True, "socket_timeout": 1.5}
    assert parse_url("unix:///tmp/r.sock?db=2") == {"unix_socket_path": "/tmp/r.sock", "db": 2}
    assert parse_url("rediss://h")["ssl"] is True
    for bad in ("http://h", "redis://h/x", "redis://h?nope=1", "redis://h?db=x", "unix://"):
        with pytest.raises(ValueError, match="Redis URL"):
            parse_url(bad)


def test_from_url_reads_redis_url_from_the_environment(monkeypatch, redis_url):
    monkeypatch.setenv("REDIS_URL", redis_url.rsplit("/", 1)[0] + "/4")
    r = from_url()
    assert (r.settings.port, r.settings.db) == (int(redis_url.split(":")[2].split("/")[0]), 4)

    async def body():
        await r.set("where", "db4")
        return await r.execute_command("CLIENT", "INFO")
    info = run(body())
    assert b" db=4 " in info


def test_password_database_and_client_name_in_the_handshake(make_redis_server):
    srv = make_redis_server(password="s3cret")

    async def body(url, **kwargs):
        r = Redis.from_url(url, **kwargs)
        try:
            await r.set("k", "v")
            return await r.client_getname(), await r.execute_command("CLIENT", "INFO")
        finally:
            await r.aclose()

    for protocol in (2, 3):
        name, info = run(body(srv.url.replace("/0", "/7"), client_name="svc", protocol=protocol))
        assert name == "svc" and b" db=7 " in info and (b"resp=%d" % protocol) in info
    with pytest.raises(AuthenticationError):
        run(body(srv.url.replace("s3cret", "wrong")))
    with pytest.raises(AuthenticationError):
        run(body(srv.url.replace(":s3cret@", "")))


def test_unix_socket(redis_unix_server):
    assert run(using(redis_unix_server.url, lambda r: r.echo("over unix"))) == b"over unix"


# ---- bad input, closed client -------------------------------------------------------------

def test_bad_arguments_are_clear_errors_and_send_nothing(redis_url):
    async def body(r):
        errors = []
        for value in ({"a": 1}, [1, 2], None, object()):
            with pytest.raises(DataError) as raised:
                await r.set("k", value)
            errors.append(str(raised.value))
        with pytest.raises(DataError):
            await r.zadd("z", {})
        with pytest.raises(DataError):
            await r.execute_command()
        return errors, await r.get("k"), await r.ping()

    errors, value, pong = run(using(redis_url, body))
    for message, kind in zip(errors, ("dict", "list", "NoneType", "object")):
        assert message.endswith("got %s (convert it first)" % kind), message
    assert value is None and pong is True


def test_a_closed_client_says_so(redis_url):
    async def body():
        r = Redis.from_url(redis_url)
        await r.ping()
        await r.aclose()
        with pytest.raises(ConnectionError, match="closed"):
            await r.get("k")
    run(body())


def test_one_client_on_successive_loops(redis_url):
    """A module-level client used by several asyncio.run() calls (tests, scripts, a worker)."""
    r = Redis.from_url(redis_url)
    for i in range(3):
        assert run(r.incr("runs")) == i + 1


def test_on_uvloop_and_a_plain_loop_in_a_script(redis_url):
    script = (
        "import asyncio, sys, uvloop\n"
        "from flask_restful_async.redis import Redis\n"
        "async def main():\n"
        "    r = Redis.from_url(sys.argv[1])\n"
        "    key = sys.argv[2]\n"
        "    vals = await asyncio.gather(*[r.incr(key) for _ in range(500)])\n"
        "    print(sorted(vals) == list(range(1, 501)), await r.get(key))\n"
        "    await r.aclose()\n"
        "uvloop.run(main()) if sys.argv[2] == 'uvloop' else asyncio.run(main())\n")
    for loop in ("uvloop", "asyncio"):
        out = subprocess.run([sys.executable, "-c", script, redis_url, loop], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "True"
