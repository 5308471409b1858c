"""A streaming app for tests/test_streaming_hostile.py: clients that misbehave.

GET /big/<mib>      <mib> MiB as 64 KiB chunks from an async generator; counts the bytes it
                    produced (state "produced") and its closes (state "closed")
PUT /upload         reads the body with body_chunks(); an error while reading is recorded
                    (state "upload_errors": its type names) and re-raised
GET /events/idle    an EventStream that sends a retry field, then nothing (no ping); state
                    "sse_open": how many are open
GET /hello          {"hello": "world"}
GET /__state__?key= one value of the state (conftest.app_state)
"""
import asyncio

from flask import Flask, request

from flask_restful_async import Api, AsyncResource
from flask_restful_async.streaming import EventStream, body_chunks

app = Flask(__name__)
api = Api(app)
state = {"produced": 0, "closed": 0, "upload_errors": [], "uploads": 0, "sse_open": 0}
CHUNK = b"z" * 65536


class Big(AsyncResource):
    async def get(self, mib):
        async def chunks():
            try:
                for _ in range(mib * 16):
                    state["produced"] += len(CHUNK)
                    yield CHUNK
            finally:
                state["closed"] += 1
        return chunks()


class Upload(AsyncResource):
    async def put(self):
        size = 0
        try:
            async for chunk in body_chunks():
                size += len(chunk)
        except BaseException as exc:  # recorded, then the server handles it
            state["upload_errors"].append(type(exc).__name__)
            raise
        state["uploads"] += 1
        return {"size": size}, 201


class IdleEvents(AsyncResource):
    async def get(self):
        async def nothing():
            state["sse_open"] += 1
            try:
                await asyncio.Event().wait()
                yield "never"
            finally:
                state["sse_open"] -= 1
        return EventStream(nothing(), ping=None, retry=1000)


class Hello(AsyncResource):
    async def get(self):
        return {"hello": "world"}


class State(AsyncResource):
    async def get(self):
        return {"value": state[request.args["key"]]}


api.add_resource(Big, "/big/<int:mib>")
api.add_resource(Upload, "/upload")
api.add_resource(IdleEvents, "/events/idle")
api.add_resource(Hello, "/hello")
api.add_resource(State, "/__state__")
