"""A flask-restful app whose AsyncResources use a RedisConnection on the server's own loop
(tests/test_redis_connection.py).  The Redis port comes from FRA_TEST_REDIS_PORT.

GET  /redis/info              the connection's adapter, connected, pending, writes
GET  /redis/get/<key>         GET key (str)
POST /redis/incr/<key>        INCR key
GET  /redis/burst/<n>         n INCRs of "burst" from n coroutines at once: their replies and
                              how many writes hiredis made for them
GET  /redis/slow              DEBUG SLEEP 0.3 with a 0.05 s timeout, then GET "k": what each gave
GET  /redis/lost              the on_lost calls seen so far (their messages)
GET  /redis/sleep             DEBUG SLEEP 5: how it ended (the test kills Redis meanwhile)
"""
import asyncio
import os

from flask import Flask

from flask_restful_async import Api, AsyncResource

app = Flask(__name__)
api = Api(app)
PORT = int(os.environ.get("FRA_TEST_REDIS_PORT", "6379"))
lost = []


class ReplyError(Exception):
    pass


_conn = None


async def conn():
    """One connection per worker, made on the loop the resources run on."""
    global _conn
    if _conn is None or not _conn.connected:
        from flask_restful_async._core import RedisConnection
        c = RedisConnection(asyncio.get_running_loop(), host="127.0.0.1", port=PORT,
                            decode="utf-8", error_factory=ReplyError,
                            on_lost=lambda exc: lost.append(str(exc)))
        await c.connect()
        _conn = c
    return _conn


class Info(AsyncResource):
    async def get(self):
        c = await conn()
        return {"adapter": c.adapter, "connected": c.connected, "pending": c.pending,
                "writes": c.writes}


class Get(AsyncResource):
    async def get(self, key):
        return {"value": await (await conn()).execute(("GET", key))}


class Incr(AsyncResource):
    async def post(self, key):
        return {"value": await (await conn()).execute(("INCR", key))}


class Burst(AsyncResource):
    async def get(self, n):
        c = await conn()
        before = c.writes
        replies = await asyncio.gather(*[c.execute(("INCR", "burst")) for _ in range(n)])
        return {"replies": replies, "writes": c.writes - before}


class Slow(AsyncResource):
    async def get(self):
        c = await conn()
        out = {}
        try:
            out["slow"] = await c.execute(("DEBUG", "SLEEP", "0.3"), timeout=0.05)
        except TimeoutError as exc:
            out["slow"] = f"TimeoutError: {exc}"
        out["pending_after_timeout"] = c.pending
        out["get"] = await c.execute(("GET", "k"))
        out["pending_after_get"] = c.pending
        return out


class Sleep(AsyncResource):
    async def get(self):
        try:
            return {"result": await (await conn()).execute(("DEBUG", "SLEEP", "5"))}
        except Exception as exc:
            return {"error": type(exc).__name__}


class Lost(AsyncResource):
    async def get(self):
        return {"lost": lost}


api.add_resource(Info, "/redis/info")
api.add_resource(Get, "/redis/get/<key>")
api.add_resource(Incr, "/redis/incr/<key>")
api.add_resource(Burst, "/redis/burst/<int:n>")
api.add_resource(Slow, "/redis/slow")
api.add_resource(Lost, "/redis/lost")
api.add_resource(Sleep, "/redis/sleep")
