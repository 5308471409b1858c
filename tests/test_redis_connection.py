"""_core.RedisConnection: the C Redis connection on hiredis, on both loop adapters.

The asyncio adapter is tested in this process on a plain asyncio loop and on uvloop (each test
runs its coroutine with asyncio.Runner on the loop named by the parameter); the uv adapter (our
server's libuv loop) through a real server process whose AsyncResources use a connection
(tests/apps_api/redis_conn_app.py).  Every test talks to a redis-server of the tests' own
(conftest's Redis fixtures, tests/_redis_server.py); the failure tests start one each.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest

from _redis_server import free_port
from conftest import NATIVE_APP_DIR, H11Client, RawConn, serve
from flask_restful_async._core import RedisConnection

class ReplyError(Exception):
    """What error_factory makes of an error reply (the lead's client maps prefixes)."""


@pytest.fixture
def redis(redis_url, redis_server):
    """The tests' shared redis-server (conftest), its database flushed."""
    return redis_server


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """run(coro_fn): coro_fn() on a fresh loop of the kind named by the parameter."""
    if request.param == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def runner(fn, *args):
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(asyncio.wait_for(fn(*args), 30))
    return runner


async def connect(port, **kw) -> RedisConnection:
    kw.setdefault("error_factory", ReplyError)
    c = RedisConnection(asyncio.get_running_loop(), host="127.0.0.1", port=port, **kw)
    assert c.adapter == "asyncio"
    await c.connect()
    assert c.connected
    return c


async def until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------------------------
# replies
# --------------------------------------------------------------------------------------------

def test_resp2_reply_types(redis, run):
    async def main():
        c = await connect(redis.port)
        assert await c.execute(("SET", "t:s", "v")) == b"OK"                 # status
        assert await c.execute(("GET", "t:s")) == b"v"                       # bulk
        assert await c.execute(("GET", "t:missing")) is None                 # nil
        assert await c.execute(("DEL", "t:l")) in (0, 1)
        assert await c.execute(("RPUSH", "t:l", "a", "b", "c")) == 3          # integer
        assert await c.execute(("LRANGE", "t:l", 0, -1)) == [b"a", b"b", b"c"]  # array
        assert await c.execute(("LRANGE", "t:nothing", 0, -1)) == []
        assert await c.execute(("PING",)) == b"PONG"
        nested = await c.execute(("EVAL", "return {1, {2, {3, 'x'}}, redis.error_reply('BAD e')}", 0))
        assert nested[:2] == [1, [2, [3, b"x"]]]
        assert isinstance(nested[2], ReplyError) and str(nested[2]) == "BAD e"   # nested error in place
        await c.execute(("DEL", "t:big"))
        assert await c.execute(("INCRBY", "t:big", 2**62)) == 2**62
        c.close()
    run(main)


def test_resp3_reply_types(redis, run):
    async def main():
        c = await connect(redis.port)
        hello = await c.execute(("HELLO", "3"))
        assert isinstance(hello, dict) and hello[b"proto"] == 3                # map
        await c.execute(("DEL", "t:h", "t:set", "t:z"))
        await c.execute(("HSET", "t:h", "a", 1, "b", 2))
        assert await c.execute(("HGETALL", "t:h")) == {b"a": b"1", b"b": b"2"}
        await c.execute(("SADD", "t:set", "x"))
        assert await c.execute(("SMEMBERS", "t:set")) == [b"x"]               # set -> list
        await c.execute(("ZADD", "t:z", 1.5, "m"))
        assert await c.execute(("ZSCORE", "t:z", "m")) == 1.5                 # double
        assert await c.execute(("GET", "t:none")) is None                     # null
        assert await c.execute(("EVAL", "redis.setresp(3); return true", 0)) is True
        assert await c.execute(("EVAL", "redis.setresp(3); return false", 0)) is False
        big = await c.execute(("EVAL", "redis.setresp(3); return {big_number='123456789012345678901234567890'}", 0))
        assert big == 123456789012345678901234567890
        verb = await c.execute(("EVAL", "redis.setresp(3); return {verbatim_string={format='txt', string='hi'}}", 0))
        assert verb == b"hi"
        assert await c.execute(("EVAL", "redis.setresp(3); return {double=0.25}", 0)) == 0.25
        c.close()
    run(main)


def test_decode_on_and_conversion_errors(redis, run):
    async def main():
        c = await connect(redis.port, decode="utf-8")
        await c.execute((b"SET", b"t:bad", b"\xff\xfe"))
        assert await c.execute(("SET", "t:u", "h\u00e9")) == "OK"
        assert await c.execute(("GET", "t:u")) == "h\u00e9"
        assert (await c.execute(("HELLO", "3")))["server"] == "redis"          # keys decoded too
        await c.execute(("DEL", "t:dh"))
        await c.execute(("HSET", "t:dh", "a", 1))
        assert await c.execute(("HGETALL", "t:dh")) == {"a": "1"}
        # a reply that does not decode is that command's exception; the next is unharmed
        with pytest.raises(UnicodeDecodeError):
            await c.execute(("GET", "t:bad"))
        assert await c.execute(("GET", "t:u")) == "h\u00e9"
        r = await c.execute_many([("GET", "t:bad"), ("GET", "t:u")])
        assert isinstance(r[0], UnicodeDecodeError) and r[1] == "h\u00e9"
        c.close()
        lenient = await connect(redis.port, decode="utf-8", encoding_errors="replace")
        assert await lenient.execute(("GET", "t:bad")) == "\ufffd\ufffd"
        lenient.close()
        latin = await connect(redis.port, decode="latin-1")
        assert await latin.execute(("SET", "t:l1", "\u00e9")) == "OK"
        raw = await connect(redis.port)
        assert await raw.execute(("GET", "t:l1")) == b"\xe9"                  # str sent as latin-1
        latin.close()
        raw.close()
    run(main)


def test_argument_encoding(redis, run):
    async def main():
        c = await connect(redis.port)
        cases = {"t:a1": ("str", b"str"), "t:a2": (b"\x00\r\n", b"\x00\r\n"), "t:a3": (-42, b"-42"),
                 "t:a4": (2**70, str(2**70).encode()), "t:a5": (1.5, b"1.5"), "t:a6": (1e100, b"1e+100"),
                 "t:a7": (3.0, b"3.0"), "t:a8": (memoryview(b"mv"), b"mv"), "t:a9": (bytearray(b"ba"), b"ba"),
                 "t:a10": ("\u20ac", "\u20ac".encode())}
        for key, (value, wire) in cases.items():
            await c.execute(["SET", key, value])
            assert await c.execute(("GET", key)) == wire, key
        await c.execute(("DEL", "t:never"))
        for bad in (None, True, {"a": 1}, [1], object()):
            with pytest.raises(TypeError, match=type(bad).__name__):
                c.execute(("SET", "t:never", bad))
            assert c.pending == 0                                              # nothing sent
        with pytest.raises(TypeError):
            c.execute("GET t:never")
        with pytest.raises(ValueError):
            c.execute(())
        with pytest.raises(TypeError):                                         # one bad command
            c.execute_many([("SET", "t:never", 1), ("SET", "t:never", None)])  # sends none
        assert await c.execute(("EXISTS", "t:never")) == 0
        with pytest.raises(ValueError, match="MONITOR"):
            c.execute(("MONITOR",))
        c.close()
    run(main)


def test_error_replies_through_error_factory(redis, run):
    seen = []

    def factory(text):
        seen.append(text)
        return ReplyError(text) if not text.startswith("WRONGTYPE") else KeyError(text)

    async def main():
        c = await connect(redis.port, error_factory=factory)
        with pytest.raises(ReplyError, match="unknown command"):
            await c.execute(("NOSUCHCOMMAND", "x"))
        await c.execute(("SET", "t:str", "x"))
        with pytest.raises(KeyError):
            await c.execute(("LPUSH", "t:str", "y"))
        assert seen[0].startswith("ERR unknown command") and seen[1].startswith("WRONGTYPE")
        assert await c.execute(("GET", "t:str")) == b"x"
        c.close()

        def broken(text):
            raise RuntimeError("factory failed")
        c = await connect(redis.port, error_factory=broken)
        with pytest.raises(RuntimeError, match="factory failed"):
            await c.execute(("NOSUCHCOMMAND",))
        assert await c.execute(("PING",)) == b"PONG"
        c.close()
    run(main)


# --------------------------------------------------------------------------------------------
# execute_many, pipelining
# --------------------------------------------------------------------------------------------

def test_execute_many_error_in_the_middle(redis, run):
    async def main():
        c = await connect(redis.port)
        await c.execute(("SET", "t:m", "text"))
        r = await c.execute_many([("SET", "t:m1", 1), ("INCR", "t:m"), ("INCR", "t:m1"), ("GET", "t:m1")])
        assert r[0] == b"OK" and r[2] == 2 and r[3] == b"2"
        assert isinstance(r[1], ReplyError) and "not an integer" in str(r[1])
        assert await c.execute_many([]) == []
        c.close()
    run(main)


def test_multi_exec_in_execute_many_amid_concurrent_commands(redis, run):
    async def main():
        c = await connect(redis.port)
        await c.execute(("DEL", "t:tx", "t:other"))

        async def transaction():
            r = await c.execute_many([("MULTI",), ("INCR", "t:tx"), ("INCR", "t:tx"), ("EXEC",)])
            assert r[:3] == [b"OK", b"QUEUED", b"QUEUED"]
            first, second = r[3]
            assert second == first + 1        # nothing came between the two INCRs
            return first

        async def other():
            for _ in range(5):
                assert isinstance(await c.execute(("INCR", "t:other")), int)
                assert await c.execute(("PING",)) == b"PONG"

        results = await asyncio.gather(*[transaction() for _ in range(30)], *[other() for _ in range(30)])
        firsts = sorted(results[:30])
        assert firsts == list(range(1, 60, 2))
        assert await c.execute(("GET", "t:other")) == b"150"
        c.close()
    run(main)


def test_commands_of_one_loop_pass_go_out_in_one_write(redis, run):
    async def main():
        c = await connect(redis.port)
        await c.execute(("SET", "t:p", "v"))
        before = c.writes
        replies = await asyncio.gather(*[c.execute(("GET", "t:p")) for _ in range(100)])
        assert replies == [b"v"] * 100
        assert c.writes - before == 1
        # coroutines that each issue their command on their first step: the same pass
        async def one(i):
            return await c.execute(("ECHO", i))
        before = c.writes
        assert await asyncio.gather(*[one(i) for i in range(100)]) == [str(i).encode() for i in range(100)]
        assert c.writes - before == 1
        # a lone command is written by itself in the next pass
        before = c.writes
        assert await c.execute(("GET", "t:p")) == b"v"
        assert c.writes - before == 1
        c.close()
    run(main)


# --------------------------------------------------------------------------------------------
# timeouts, cancellation
# --------------------------------------------------------------------------------------------

def test_timeout_drops_the_late_reply(redis, run):
    async def main():
        c = await connect(redis.port)
        await c.execute(("SET", "t:k", "value"))
        slow = c.execute(("DEBUG", "SLEEP", "0.3"), timeout=0.05)
        after = c.execute(("GET", "t:k"))
        with pytest.raises(TimeoutError):
            await slow
        assert c.pending == 2                       # both still on the wire
        assert await after == b"value"              # not DEBUG's "OK": in sync
        assert c.pending == 0
        assert await c.execute(("GET", "t:k"), timeout=5) == b"value"
        with pytest.raises(ValueError):
            c.execute(("GET", "t:k"), timeout=-1)
        # execute_many times out as a whole, and its late replies are dropped too
        many = c.execute_many([("DEBUG", "SLEEP", "0.2"), ("GET", "t:k")], timeout=0.05)
        with pytest.raises(TimeoutError):
            await many
        assert await c.execute(("ECHO", "next")) == b"next"
        assert c.pending == 0
        c.close()
    run(main)


def test_cancellation_drops_the_reply(redis, run):
    async def main():
        c = await connect(redis.port)
        await c.execute(("SET", "t:k", "value"))
        task = asyncio.ensure_future(c.execute(("DEBUG", "SLEEP", "0.2")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.pending == 1
        assert await c.execute(("GET", "t:k")) == b"value"
        assert c.pending == 0

        async def waiter():
            return await c.execute(("DEBUG", "SLEEP", "0.2"))
        t = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert await c.execute(("ECHO", "e")) == b"e"
        c.close()
    run(main)


# --------------------------------------------------------------------------------------------
# connecting, losing, closing
# --------------------------------------------------------------------------------------------

def test_connect_refused_and_unix_socket(redis_unix_server, run):
    async def main():
        loop = asyncio.get_running_loop()
        c = RedisConnection(loop, host="127.0.0.1", port=free_port(), error_factory=ReplyError)
        with pytest.raises(ConnectionError):
            await c.connect()
        assert not c.connected
        with pytest.raises(ConnectionError):
            c.execute(("PING",))
        missing = RedisConnection(loop, path=redis_unix_server.path + ".missing", error_factory=ReplyError)
        with pytest.raises(ConnectionError):
            await missing.connect()
        u = RedisConnection(loop, path=redis_unix_server.path, error_factory=ReplyError)
        await u.connect()
        assert await u.execute(("PING",)) == b"PONG"
        u.close()
    run(main)


def test_connect_timeout(run):
    # A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    # neither succeeds nor fails until the client gives up.
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.1)

        async def main():
            c = RedisConnection(asyncio.get_running_loop(), host="127.0.0.1", port=port,
                                connect_timeout=0.2, error_factory=ReplyError)
            with pytest.raises(TimeoutError):
                await c.connect()
            assert not c.connected
        try:
            run(main)
        finally:
            for s in fillers:
                s.close()


def test_kill9_mid_load_fails_everything_in_flight(fresh_redis_server, run):
    r = fresh_redis_server

    async def main():
        lost = []
        c = await connect(r.port, on_lost=lost.append)
        await c.execute(("SET", "t:k", "v"))
        futs = [c.execute(("DEBUG", "SLEEP", "5"))] + [c.execute(("GET", "t:k")) for _ in range(200)]
        await asyncio.sleep(0.2)            # written; Redis is asleep in DEBUG SLEEP
        assert c.pending == 201
        r.kill()
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert all(isinstance(x, ConnectionError) for x in results), results[:3]
        await until(lambda: lost)
        await asyncio.sleep(0.05)
        assert len(lost) == 1 and isinstance(lost[0], ConnectionError)
        assert not c.connected and c.pending == 0
        with pytest.raises(ConnectionError):
            c.execute(("GET", "t:k"))
        c.close()                           # after a loss: nothing to do, no error
    run(main)


def test_close_with_commands_pending(redis, run):
    async def main():
        lost = []
        c = await connect(redis.port, on_lost=lost.append)
        futs = [c.execute(("DEBUG", "SLEEP", "0.1"))] + [c.execute(("PING",)) for _ in range(10)]
        many = c.execute_many([("PING",), ("PING",)])
        c.close()
        results = await asyncio.gather(*futs, many, return_exceptions=True)
        assert all(isinstance(x, ConnectionError) for x in results)
        assert c.pending == 0 and not c.connected
        with pytest.raises(ConnectionError):
            c.execute(("PING",))
        with pytest.raises(ConnectionError):
            c.execute_many([("PING",)])
        c.close()                               # idempotent
        assert lost == []                       # close() is not a loss
        never = RedisConnection(asyncio.get_running_loop(), port=redis.port, error_factory=ReplyError)
        never.close()
        with pytest.raises(ConnectionError):
            await never.connect()
    run(main)


# --------------------------------------------------------------------------------------------
# pub/sub and RESP3 pushes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_messages_go_to_on_message(redis, run, protocol):
    async def main():
        msgs, pushes = [], []
        sub = await connect(redis.port, on_message=msgs.append, on_push=pushes.append)
        if protocol == 3:
            await sub.execute(("HELLO", "3"))
        pub = await connect(redis.port)
        first = await sub.execute(("SUBSCRIBE", "t:ch1", "t:ch2"))
        assert first == [b"subscribe", b"t:ch1", 1]
        assert await sub.execute(("PSUBSCRIBE", "t:p*")) == [b"psubscribe", b"t:p*", 3]
        assert await pub.execute(("PUBLISH", "t:ch2", "hello")) == 1
        assert await pub.execute(("PUBLISH", "t:px", "world")) == 1
        await until(lambda: len(msgs) >= 5)
        assert msgs == [[b"subscribe", b"t:ch1", 1], [b"subscribe", b"t:ch2", 2],
                        [b"psubscribe", b"t:p*", 3], [b"message", b"t:ch2", b"hello"],
                        [b"pmessage", b"t:p*", b"t:px", b"world"]]
        if protocol == 3:                       # commands still work on a subscribed RESP3 connection
            assert await sub.execute(("ECHO", "x")) == b"x"
        else:
            assert await sub.execute(("PING",)) == [b"pong", b""]
        await sub.execute(("UNSUBSCRIBE", "t:ch1"))
        await until(lambda: len(msgs) >= 6)
        assert msgs[5] == [b"unsubscribe", b"t:ch1", 2]
        assert await pub.execute(("PUBLISH", "t:ch1", "gone")) == 0
        assert pushes == []                     # pub/sub never goes to on_push
        sub.close()
        pub.close()
    run(main)


def test_resp3_push_tracking_invalidation(redis, run):
    async def main():
        pushes = []
        c = await connect(redis.port, on_push=pushes.append)
        other = await connect(redis.port)
        await c.execute(("HELLO", "3"))
        await other.execute(("SET", "t:tracked", "1"))
        assert await c.execute(("CLIENT", "TRACKING", "ON")) == b"OK"
        assert await c.execute(("GET", "t:tracked")) == b"1"
        await other.execute(("SET", "t:tracked", "2"))
        await until(lambda: pushes)
        assert pushes[0] == [b"invalidate", [b"t:tracked"]]
        assert await c.execute(("GET", "t:tracked")) == b"2"     # replies still in order
        c.close()
        other.close()
    run(main)


# --------------------------------------------------------------------------------------------
# the uv adapter: on our server's libuv loop
# --------------------------------------------------------------------------------------------

def test_on_our_server_the_connection_rides_its_libuv_loop(redis):
    env = {"FRA_TEST_REDIS_PORT": str(redis.port)}
    with serve("redis_conn_app:app", "--app-dir", NATIVE_APP_DIR, env=env) as srv:
        with H11Client(srv.port) as client:
            info = client.request("GET", "/redis/info").json()
            assert info["adapter"] == "uv" and info["connected"]
            assert client.request("POST", "/redis/incr/t:uv").json() == {"value": 1}
            assert client.request("GET", "/redis/get/t:uv").json() == {"value": "1"}
            burst = client.request("GET", "/redis/burst/50").json()
            assert burst["writes"] == 1 and sorted(burst["replies"]) == burst["replies"]
            assert len(burst["replies"]) == 50
            client.request("POST", "/redis/incr/k")
            slow = client.request("GET", "/redis/slow").json()
            assert slow["slow"].startswith("TimeoutError")
            assert slow["pending_after_timeout"] == 1 and slow["pending_after_get"] == 0
            assert slow["get"] not in ("OK", None)
            assert client.request("GET", "/redis/lost").json() == {"lost": []}
        srv.stop()
        assert srv.proc.returncode == 0, srv.log[-3000:]


def test_on_our_server_a_killed_redis_fails_what_is_in_flight(fresh_redis_server):
    r = fresh_redis_server

    with serve("redis_conn_app:app", "--app-dir", NATIVE_APP_DIR,
               env={"FRA_TEST_REDIS_PORT": str(r.port)}) as srv:
        with H11Client(srv.port) as client:
            assert client.request("GET", "/redis/info").json()["adapter"] == "uv"
            with RawConn(srv.port) as raw:
                raw.send(b"GET /redis/sleep HTTP/1.1\r\nHost: t\r\n\r\n")
                deadline = time.monotonic() + 5
                while client.request("GET", "/redis/info").json()["pending"] != 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                r.kill()
                assert raw.read_response().json() == {"error": "ConnectionError"}
            lost = client.request("GET", "/redis/lost").json()["lost"]
            assert len(lost) == 1
        srv.stop()
        assert srv.proc.returncode == 0, srv.log[-3000:]


# --------------------------------------------------------------------------------------------
# TLS, and what is left behind
# --------------------------------------------------------------------------------------------

def test_tls(redis_tls_server, run):
    from flask_restful_async._core import REDIS_TLS, RedisTLS
    assert REDIS_TLS, "the build has no TLS although OpenSSL's headers are a build dependency"
    port, ca = redis_tls_server.port, redis_tls_server.tls_files.ca_file

    async def main():
        loop = asyncio.get_running_loop()
        good = RedisTLS(ca_file=ca, verify_name="127.0.0.1")
        c = RedisConnection(loop, host="127.0.0.1", port=port, tls=good, error_factory=ReplyError)
        await c.connect()
        assert await asyncio.gather(*[c.execute(("ECHO", i)) for i in range(20)]) == \
            [str(i).encode() for i in range(20)]
        c.close()
        for bad in (RedisTLS(), RedisTLS(ca_file=ca, verify_name="other.example")):
            lost = []
            c = RedisConnection(loop, host="127.0.0.1", port=port, tls=bad, error_factory=ReplyError,
                                on_lost=lost.append)
            with pytest.raises(ConnectionError, match="TLS"):
                await c.connect()
            assert not c.connected and lost == []
        with pytest.raises(ValueError):
            RedisTLS(ca_file=ca + ".missing")
        with pytest.raises(TypeError):
            RedisConnection(loop, port=port, tls={"ca": ca}, error_factory=ReplyError)
    run(main)


def test_nothing_left_behind(redis, run):
    """Futures and connections are released whatever way their commands ended."""
    import gc

    async def main():
        c = await connect(redis.port, decode="utf-8", on_message=lambda m: None)
        await c.execute((b"SET", b"t:bad", b"\xff"))
        for _ in range(50):
            await c.execute(("SET", "t:k", "v"))
            await asyncio.gather(c.execute(("GET", "t:bad")), c.execute(("NOSUCH",)),
                                 c.execute(("LRANGE", "t:none", 0, -1)), return_exceptions=True)
            await c.execute_many([("GET", "t:k"), ("NOSUCH",), ("GET", "t:bad")])
            with contextlib.suppress(TimeoutError):
                await c.execute(("DEBUG", "SLEEP", "0.002"), timeout=0.001)
            t = asyncio.ensure_future(c.execute(("DEBUG", "SLEEP", "0.002")))
            await asyncio.sleep(0)
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        sub = await connect(redis.port, on_message=lambda m: None)
        await sub.execute(("SUBSCRIBE", "t:leak"))
        await c.execute(("PUBLISH", "t:leak", "x"))
        pending = [c.execute(("DEBUG", "SLEEP", "0.05")) for _ in range(5)]
        c.close()
        sub.close()
        await asyncio.gather(*pending, return_exceptions=True)
        del pending, t

    def live(kind):
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, kind))

    futures, conns = live(asyncio.Future), live(RedisConnection)
    run(main)
    assert live(RedisConnection) == conns
    assert live(asyncio.Future) == futures
