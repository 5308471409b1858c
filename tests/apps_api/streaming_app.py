"""A flask-restful app that streams (tests/test_streaming*.py): generators, Server-Sent Events,
files, uploads read as they arrive, a followed log.  FRA_TEST_FILES is the directory files are
served from, FRA_TEST_LOG the file /follow follows.

GET  /stream/chunks/<n>/<size>  n chunks of `size` bytes ("a", "b", ... repeated)
GET  /stream/csv                a (generator, 200, {"Content-Type": "text/csv"}) result
GET  /stream/sized              a generator with its Content-Length set by the resource
GET  /stream/forever            yields a line every 10 ms until the client leaves
GET  /stream/sync               a sync Resource returning a sync generator
GET  /stream/fails/<how>        an async generator that fails before its first chunk: how =
                                "raise" (ValueError) or "abort" (404)
GET  /stream/fails-sync/<how>   the same from a sync Resource, a sync generator
GET  /stream/blocking           a generator that blocks the loop for 0.4 s between two chunks
GET  /state                     what the generators recorded (closed: their finally ran)
GET  /events                    an EventStream of ticks with ids, resuming after Last-Event-ID
GET  /events/quiet              an EventStream that says nothing (pings only), ping=0.2
GET  /events/idle               an EventStream whose source never yields, ping=15 (what an idle
                                stream costs: bench/sse_memory.py)
GET  /events/broadcast          a subscription to the app's Broadcast (history 100);
                                ?small=1: to a second one that drops a subscriber with more
                                than 64 KiB waiting; ?ping=seconds (default 15)
POST /events/publish            publishes the JSON body's "data" (and "id") to it, "count"
                                times ("small": to the second one); says how many got each
GET  /events/broadcast/plain    the same subscription as a plain EventStream, nothing read from
                                the request but Last-Event-ID (bench/sse_memory.py)
GET  /events/subscribers        how many subscribe to each Broadcast
GET  /events/flood              4 KiB events as fast as the client takes them, ping off,
                                send_timeout=?timeout (default 0.5 s); state "flood_closed"
                                counts the generators whose finally ran
GET  /files/<path>              send_from_directory(FRA_TEST_FILES, path); ?download=1
GET  /file-object/<path>        send_file(an open file object); ?bytesio=1 from a BytesIO
GET  /files-sync/<path>         send_from_directory from a sync Resource (the WSGI way: our
                                server's wsgi.file_wrapper)
GET  /sendfile-stats            bytes this process sent with sendfile(2) (0 under uvicorn)
PUT  /upload                    reads the body with body_chunks(): size, sha256, chunks
PUT  /upload/gated/<gate>       the same, once POST /gate/<gate> has opened the gate
PUT  /upload/early              a body_chunks resource that answers without reading the body
PUT  /upload/whole              reads the body whole (request.get_data()): size, sha256
POST /gate/<gate>               opens a gate
GET  /follow                    an EventStream of the lines appended to FRA_TEST_LOG (or ?path=;
                                ?from_start=1: from the file's start)
GET  /follow/adapter?path=      which FileEvents adapter a watcher made here uses ("uv")
"""
import asyncio
import hashlib
import io
import os
import time

from flask import Flask, request

from flask_restful_async import Api, AsyncResource, Resource, abort
from flask_restful_async.streaming import (Broadcast, Event, EventStream, body_chunks, follow,
                                           last_event_id, send_file, send_from_directory,
                                           streams_body)

app = Flask(__name__)
api = Api(app)
FILES = os.environ.get("FRA_TEST_FILES", "/nonexistent")
LOG = os.environ.get("FRA_TEST_LOG", "/nonexistent/log")
state = {"closed": 0, "started": 0, "upload_bytes": 0, "flood_closed": 0, "flood_started": 0,
         "sub_started": 0, "sub_ended": 0, "upload_errors": [], "at_gate": []}
gates: dict = {}


def gate(name):
    if name not in gates:
        gates[name] = asyncio.Event()
    return gates[name]
broadcast = Broadcast(history=100)
small_broadcast = Broadcast(max_queued=64 * 1024)


class Chunks(AsyncResource):
    async def get(self, n, size):
        async def chunks():
            for i in range(n):
                yield bytes([97 + i % 26]) * size
        return chunks()


class Csv(AsyncResource):
    async def get(self):
        async def rows():
            yield "id,name\n"
            for i in range(3):
                yield f"{i},row{i}\n"
        return rows(), 200, {"Content-Type": "text/csv"}


class Sized(AsyncResource):
    async def get(self):
        async def parts():
            yield b"hello "
            yield b"world"
        return parts(), 200, {"Content-Length": "11"}


class Forever(AsyncResource):
    async def get(self):
        async def lines():
            state["started"] += 1
            try:
                i = 0
                while True:
                    i += 1
                    yield b"line %d\n" % i
                    await asyncio.sleep(0.01)
            finally:
                state["closed"] += 1
        return lines()


class SyncStream(Resource):
    def get(self):
        def lines():
            for i in range(5):
                yield f"sync {i}\n"
        return lines(), 200, {"Content-Type": "text/plain"}


def fail(how):
    if how == "abort":
        abort(404, message="no such stream")
    raise ValueError("the stream failed before its first chunk")


class Fails(AsyncResource):
    async def get(self, how):
        async def achunks():
            await asyncio.sleep(0)
            fail(how)
            yield b"never"
        return achunks()


def block_the_loop_in_a_stream():
    time.sleep(0.4)  # what the blocked-loop watchdog must report (FRA_BLOCKED_LOOP_MS)


class Blocking(AsyncResource):
    async def get(self):
        async def chunks():
            yield b"before "
            block_the_loop_in_a_stream()
            yield b"after"
        return chunks()


class FailsSync(Resource):
    def get(self, how):
        def chunks():
            fail(how)
            yield b"never"
        return chunks()


class State(AsyncResource):
    async def get(self):
        return state


class Ticks(AsyncResource):
    async def get(self):
        start = int(last_event_id() or 0)
        limit = int(request.args.get("limit", "0"))

        async def ticks():
            n = start
            while not limit or n < limit:
                n += 1
                yield Event(data={"n": n}, id=str(n), event="tick")
                await asyncio.sleep(float(request_delay))
        request_delay = request.args.get("delay", "0.05")
        return EventStream(ticks(), ping=float(request.args.get("ping", "15")),
                           retry=int(request.args.get("retry", "200")))


class Quiet(AsyncResource):
    async def get(self):
        async def nothing():
            try:
                await asyncio.Event().wait()
                yield "never"
            finally:
                state["closed"] += 1
        return EventStream(nothing(), ping=0.2)


class Idle(AsyncResource):
    async def get(self):
        async def nothing():
            await asyncio.Event().wait()
            yield "never"
        return EventStream(nothing(), ping=15)


class CountedStream(EventStream):
    """An EventStream that counts, in state "sub_started" and "sub_ended", the streams whose
    handler began and ended."""

    async def serve(self, out):
        state["sub_started"] += 1
        try:
            await super().serve(out)
        finally:
            state["sub_ended"] += 1


class Subscribe(AsyncResource):
    async def get(self):
        source = small_broadcast if request.args.get("small") else broadcast
        return CountedStream(source.subscribe(last_event_id()),
                             ping=float(request.args.get("ping", "15")))


class PlainSubscribe(AsyncResource):
    async def get(self):
        return EventStream(broadcast.subscribe(last_event_id()), ping=15)


class Subscribers(AsyncResource):
    async def get(self):
        return {"broadcast": len(broadcast), "small": len(small_broadcast)}


class Publish(AsyncResource):
    async def post(self):
        body = request.get_json()
        target = small_broadcast if body.get("small") else broadcast
        sent = [target.publish(Event(data=body["data"], id=body.get("id")))
                for _ in range(int(body.get("count", 1)))]
        return {"sent": sent[0] if len(sent) == 1 else sent, "subscribers": len(target)}


class Flood(AsyncResource):
    async def get(self):
        async def events():
            state["flood_started"] += 1
            try:
                while True:
                    yield "x" * 4096
            finally:
                state["flood_closed"] += 1
        return EventStream(events(), ping=0,
                           send_timeout=float(request.args.get("timeout", "0.5")))


class Files(AsyncResource):
    async def get(self, path):
        return send_from_directory(FILES, path, as_attachment=bool(request.args.get("download")))


class FileObject(AsyncResource):
    async def get(self, path):
        full = os.path.join(FILES, path)
        if request.args.get("bytesio"):
            with open(full, "rb") as f:
                return send_file(io.BytesIO(f.read()), download_name=path)
        return send_file(open(full, "rb"), max_age=60)


class FilesSync(Resource):
    def get(self, path):
        return send_from_directory(FILES, path)


class SendfileStats(AsyncResource):
    async def get(self):
        from flask_restful_async import _core
        return {"sendfile": _core.sendfile_bytes()}


async def read_upload():
    size = chunks = biggest = 0
    digest = hashlib.sha256()
    try:
        async for chunk in body_chunks():
            state["upload_bytes"] += len(chunk)  # (a test watches it grow mid-upload)
            size += len(chunk)
            chunks += 1
            biggest = max(biggest, len(chunk))
            digest.update(chunk)
    except BaseException as exc:  # (a test checks what a stalled upload's handler saw)
        state["upload_errors"].append(type(exc).__name__)
        raise
    return {"size": size, "sha256": digest.hexdigest(), "chunks": chunks,
            "max_chunk": biggest}, 201


class Upload(AsyncResource):
    @streams_body
    async def put(self):
        return await read_upload()


class GatedUpload(AsyncResource):
    @streams_body
    async def put(self, name):
        state["at_gate"].append(name)
        await gate(name).wait()
        return await read_upload()


class EarlyUpload(AsyncResource):
    @streams_body
    async def put(self):
        return {"early": True}, 200


class WholeUpload(AsyncResource):
    async def put(self):
        data = request.get_data()
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, 201


class Gate(AsyncResource):
    async def post(self, name):
        gate(name).set()
        return {"opened": name}


class Follow(AsyncResource):
    async def get(self):
        path = request.args.get("path", LOG)
        lines = follow(path, from_start=bool(request.args.get("from_start")))
        return EventStream((Event(data=line) async for line in lines), ping=0)


class FollowAdapter(AsyncResource):
    async def get(self):
        from flask_restful_async import _core
        watcher = _core.FileEvents(asyncio.get_running_loop(), request.args["path"], lambda: None)
        try:
            return {"adapter": watcher.adapter}
        finally:
            watcher.close()


api.add_resource(Chunks, "/stream/chunks/<int:n>/<int:size>")
api.add_resource(Csv, "/stream/csv")
api.add_resource(Sized, "/stream/sized")
api.add_resource(Forever, "/stream/forever")
api.add_resource(SyncStream, "/stream/sync")
api.add_resource(Fails, "/stream/fails/<how>")
api.add_resource(FailsSync, "/stream/fails-sync/<how>")
api.add_resource(Blocking, "/stream/blocking")
api.add_resource(State, "/state")
api.add_resource(Ticks, "/events")
api.add_resource(Quiet, "/events/quiet")
api.add_resource(Idle, "/events/idle")
api.add_resource(Subscribe, "/events/broadcast")
api.add_resource(Publish, "/events/publish")
api.add_resource(Flood, "/events/flood")
api.add_resource(PlainSubscribe, "/events/broadcast/plain")
api.add_resource(Subscribers, "/events/subscribers")
api.add_resource(Files, "/files/<path:path>")
api.add_resource(FileObject, "/file-object/<path:path>")
api.add_resource(FilesSync, "/files-sync/<path:path>")
api.add_resource(SendfileStats, "/sendfile-stats")
api.add_resource(Upload, "/upload")
api.add_resource(GatedUpload, "/upload/gated/<name>")
api.add_resource(EarlyUpload, "/upload/early")
api.add_resource(WholeUpload, "/upload/whole")
api.add_resource(Gate, "/gate/<name>")
api.add_resource(Follow, "/follow")
api.add_resource(FollowAdapter, "/follow/adapter")

asgi_app = api.asgi_app  # the same app under another ASGI server (uvicorn)
