"""The commands give what redis-py's asyncio client gives: each scenario runs with our client
and with redis-py (hiredis parser) on the same redis-server, each in a database of its own, and
the results must be equal.  In RESP2 and RESP3, with and without decode_responses."""
import asyncio
import datetime

import pytest
import redis.asyncio as redis_py

from flask_restful_async.redis import Redis, ResponseError

OURS_DB, THEIRS_DB = 1, 2


async def strings(r):
    return [
        await r.set("s", "v"), await r.get("s"), await r.set("s", "w", nx=True),
        await r.set("s", "w", xx=True, get=True), await r.set("n", 10, ex=1000),
        await r.incr("n"), await r.incrby("n", 5), await r.decr("n"), await r.decrby("n", 2),
        await r.incrbyfloat("n", 0.5), await r.setnx("s", "x"), await r.getset("s", "y"),
        await r.append("s", "zz"), await r.strlen("s"), await r.getrange("s", 0, 1),
        await r.setrange("s", 1, "Q"), await r.get("s"), await r.getdel("s"), await r.get("s"),
        await r.mset({"a": 1, "b": "two", "c": b"\xc3\xa9"}), await r.mget("a", "b", "nope"),
        await r.mget(["a", "c"]), await r.msetnx({"a": 5, "zz": 6}), await r.get("missing"),
        await r.setex("e", 100, "v"), await r.psetex("pe", 100000, "v"),
        await r.getex("e", persist=True), await r.ttl("e"),
        await r.set("big", "x" * 100_000), await r.strlen("big"),
        await r.set("u", "héllo ☃"), await r.get("u"),
    ]


async def keys_and_expiry(r):
    await r.mset({"k1": 1, "k2": 2, "k3": 3, "other": 4})
    out = [
        await r.exists("k1", "k2", "nope"), await r.expire("k1", 1000),
        await r.expire("k1", 10, gt=True), await r.pexpire("k2", 1_000_000),
        await r.ttl("nope"), await r.pttl("k3"), await r.persist("k1"), await r.ttl("k1"),
        await r.expireat("k3", datetime.datetime(2100, 1, 1)), await r.type("k1"),
        await r.type("nope"), await r.rename("k1", "k9"), await r.renamenx("k9", "k2"),
        await r.copy("k2", "k7"), await r.touch("k2", "k7"),
        sorted(await r.keys("k*")), sorted([k async for k in r.scan_iter(match="k*", count=2)]),
        await r.delete("k2", "k3", "nope"), await r.unlink("k7"), await r.dbsize(),
    ]
    cursor, found = await r.scan(0, match="oth*", count=1000)
    out.append((cursor, found))
    return out


async def hashes(r):
    return [
        await r.hset("h", "f", "v"), await r.hset("h", mapping={"a": 1, "b": 2}),
        await r.hset("h", items=["c", 3, "d", 4]), await r.hget("h", "a"), await r.hget("h", "no"),
        await r.hgetall("h"), await r.hmget("h", ["a", "no", "b"]), await r.hmget("h", "a", "f"),
        await r.hsetnx("h", "a", 9), await r.hexists("h", "a"), await r.hincrby("h", "a", 5),
        await r.hincrbyfloat("h", "b", 1.5), await r.hdel("h", "c", "nope"),
        sorted(await r.hkeys("h")), sorted(await r.hvals("h")), await r.hlen("h"),
        await r.hstrlen("h", "f"), await r.hgetall("missing"),
        sorted((await r.hscan("h", 0, count=100))[1].items()),
        sorted([kv async for kv in r.hscan_iter("h")]),
    ]


async def lists(r):
    return [
        await r.rpush("l", 1, 2, 3), await r.lpush("l", 0), await r.lrange("l", 0, -1),
        await r.lpushx("nope", 1), await r.rpushx("l", 4), await r.llen("l"),
        await r.lindex("l", 1), await r.lset("l", 0, "zero"), await r.lrem("l", 1, "zero"),
        await r.linsert("l", "BEFORE", 2, "one-and-half"), await r.lpos("l", 3),
        await r.lrange("l", 0, -1), await r.lpop("l"), await r.rpop("l"), await r.lpop("l", 2),
        await r.rpoplpush("l", "l2"), await r.lmove("l2", "l", "LEFT", "RIGHT"),
        await r.ltrim("l", 0, 0), await r.lrange("l", 0, -1), await r.lpop("empty"),
        await r.rpush("q", "a", "b"), await r.blpop("q", 1), await r.brpop(["none", "q"], 1),
        await r.blpop("q", 0.01), await r.rpush("q", "c"), await r.brpoplpush("q", "q2", 1),
        await r.blmove("q2", "q", 1, "LEFT", "LEFT"),
    ]


async def sets(r):
    return [
        await r.sadd("s1", "a", "b", "c"), await r.sadd("s2", "b", "c", "d"),
        await r.smembers("s1"), await r.sismember("s1", "a"), await r.sismember("s1", "z"),
        await r.smismember("s1", ["a", "z"]), await r.scard("s1"),
        await r.sinter("s1", "s2"), await r.sunion(["s1", "s2"]), await r.sdiff("s1", "s2"),
        await r.sinterstore("s3", ["s1", "s2"]), await r.sunionstore("s4", "s1", "s2"),
        await r.sdiffstore("s5", "s1", "s2"), await r.smove("s1", "s2", "a"),
        await r.srem("s2", "a", "zz"), await r.smembers("missing"),
        sorted([m async for m in r.sscan_iter("s4")]),
        len(await r.spop("s4", 2)), await r.scard("s4"), await r.srandmember("s5"),
    ]


async def sorted_sets(r):
    return [
        await r.zadd("z", {"a": 1, "b": 2.5, "c": 3}), await r.zadd("z", {"a": 5}, xx=True),
        await r.zadd("z", {"d": 1}, nx=True), await r.zadd("z", {"a": 2}, incr=True),
        await r.zscore("z", "a"), await r.zscore("z", "nope"), await r.zmscore("z", ["a", "no"]),
        await r.zincrby("z", 1.5, "b"), await r.zcard("z"), await r.zcount("z", 2, "+inf"),
        await r.zrank("z", "a"), await r.zrevrank("z", "a"), await r.zrange("z", 0, -1),
        await r.zrange("z", 0, -1, withscores=True), await r.zrange("z", 0, 1, desc=True),
        await r.zrange("z", 0, -1, withscores=True, score_cast_func=int),
        await r.zrevrange("z", 0, 1, withscores=True), await r.zrangebyscore("z", 2, 10),
        await r.zrangebyscore("z", "-inf", "+inf", start=1, num=2, withscores=True),
        await r.zrevrangebyscore("z", 10, 2, withscores=True),
        await r.zunionstore("zu", ["z", "z"]), await r.zinterstore("zi", {"z": 2, "zu": 1}),
        await r.zrange("zi", 0, -1, withscores=True), await r.zrem("z", "d", "nope"),
        await r.zpopmin("z"), await r.zpopmax("z", 2), await r.zadd("z", {"x": 1}),
        await r.bzpopmin("z", 1), await r.bzpopmax(["zu"], 1),
        await r.zremrangebyrank("zu", 0, 0), await r.zremrangebyscore("zu", 0, 100),
        sorted([m async for m in r.zscan_iter("zi")]),
    ]


async def streams(r):
    return [
        await r.xadd("st", {"f": "v", "n": 1}, id="1-1"), await r.xadd("st", {"g": "w"}, id="2-1"),
        await r.xadd("st", {"h": "x"}, id="3-0", maxlen=10, approximate=False),
        await r.xlen("st"), await r.xrange("st"), await r.xrange("st", "2", "+", count=1),
        await r.xrevrange("st", count=2), await r.xread({"st": "1-1"}),
        await r.xread({"st": "0"}, count=1), await r.xread({"st": "$"}, block=10),
        await r.xgroup_create("st", "g1", id="0"),
        await r.xreadgroup("g1", "c1", {"st": ">"}, count=2),
        await r.xack("st", "g1", "1-1"), await r.xdel("st", "1-1"),
        await r.xtrim("st", maxlen=1, approximate=False), await r.xlen("st"),
    ]


async def scripting_and_server(r):
    sha = await r.script_load("return ARGV[1]")
    return [
        sha, await r.script_exists(sha, "0" * 40), await r.evalsha(sha, 0, "hi"),
        await r.eval("return {KEYS[1], ARGV[1], 7}", 1, "k", "a"),
        await r.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v"),
        await r.ping(), await r.echo("hello"), await r.publish("nobody", "x"),
        await r.execute_command("SET", "raw", "1"), await r.execute_command("get", "raw"),
        await r.execute_command("OBJECT", "ENCODING", "raw"),
        await r.client_setname("me"), await r.client_getname(),
        len(await r.time()), "redis_version" in await r.info(), (await r.info("server"))["tcp_port"] > 0,
        await r.config_get("maxmemory-policy"),
    ]


SCENARIOS = [strings, keys_and_expiry, hashes, lists, sets, sorted_sets, streams,
             scripting_and_server]


def _run(coro_fn, url, protocol, decode):
    async def both():
        ours = Redis.from_url(url, db=OURS_DB, protocol=protocol, decode_responses=decode)
        # redis-py shapes replies per protocol only when told one explicitly; ours (and
        # redis-py's by default) have the same shapes whichever protocol is spoken
        theirs = redis_py.Redis.from_url(url, db=THEIRS_DB,
                                         protocol=2 if protocol == 2 else None,
                                         decode_responses=decode)
        try:
            await ours.flushdb()
            await theirs.flushdb()
            mine = await coro_fn(ours)
            expected = await coro_fn(theirs)
        finally:
            await ours.aclose()
            await theirs.aclose()
        return mine, expected
    return asyncio.run(both())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # redis-py deprecates setex, psetex
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_same_results_as_redis_py(redis_url, scenario, protocol, decode):
    mine, expected = _run(scenario, redis_url, protocol, decode)
    assert len(mine) == len(expected)
    for i, (a, b) in enumerate(zip(mine, expected)):
        assert a == b, "%s step %d: ours %r, redis-py %r" % (scenario.__name__, i, a, b)
        assert type(a) is type(b), "%s step %d: ours %s, redis-py %s" % (
            scenario.__name__, i, type(a).__name__, type(b).__name__)


def test_error_replies_raise_redis_py_classes(redis_url):
    """The same exception class and message as redis-py, and the connection stays usable."""
    async def errors(r):
        await r.set("str", "x")
        out = []
        for call in (lambda: r.incr("str"), lambda: r.lpush("str", 1),
                     lambda: r.execute_command("NO-SUCH-COMMAND"),
                     lambda: r.evalsha("0" * 40, 0), lambda: r.execute_command("GET")):
            try:
                await call()
                out.append(None)
            except (ResponseError, redis_py.ResponseError) as exc:
                out.append((type(exc).__name__, str(exc)))
        out.append(await r.get("str"))
        return out

    mine, expected = _run(errors, redis_url, 2, False)
    assert mine == expected
    assert all(item is not None for item in mine[:-1])
    assert mine[-1] == b"x"
