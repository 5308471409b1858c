"""A flask-restful app whose AsyncResources use the Redis client (flask_restful_async.redis) on
our server's loop (tests/test_redis_on_server.py).  REDIS_URL names the Redis.

GET  /client/info            the shared connection's adapter and writes so far
GET  /client/burst/<n>       n INCRs of "burst" from n coroutines at once (asyncio.gather):
                             their replies, and how many writes carried them
POST /client/publish/<ch>    subscribe to <ch>, publish the body's "message" to it, and return
                             what the subscriber received
GET  /client/blpop/<key>     BLPOP key 5 (dedicated connection)
"""
import asyncio

from flask import Flask, request

from flask_restful_async import Api, AsyncResource
from flask_restful_async.redis import Redis

app = Flask(__name__)
api = Api(app)
redis = Redis.from_url(decode_responses=True)


def shared():
    return redis._pool().links[0].conn


class Info(AsyncResource):
    async def get(self):
        await redis.ping()
        return {"adapter": shared().adapter, "writes": shared().writes}


class Burst(AsyncResource):
    async def get(self, n):
        await redis.ping()
        before = shared().writes
        replies = await asyncio.gather(*[redis.incr("burst") for _ in range(n)])
        return {"replies": replies, "writes": shared().writes - before}


class Publish(AsyncResource):
    async def post(self, channel):
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        await redis.publish(channel, request.get_json()["message"])
        message = None
        while message is None:
            message = await pubsub.get_message(timeout=5)
        await pubsub.aclose()
        return {"received": message["data"], "channel": message["channel"]}


class Blpop(AsyncResource):
    async def get(self, key):
        return {"popped": await redis.blpop(key, 5)}


api.add_resource(Info, "/client/info")
api.add_resource(Burst, "/client/burst/<int:n>")
api.add_resource(Publish, "/client/publish/<channel>")
api.add_resource(Blpop, "/client/blpop/<key>")
