"""The example served by `make run`: a flask-restful app with a sync and an async resource.

    flask-restful-async run examples.app:app --port 8000
    curl localhost:8000/                      # AsyncResource
    curl localhost:8000/items/1               # sync Resource (runs in the thread pool)
    curl -d name=plum localhost:8000/items    # reqparse + marshal
    curl -X POST localhost:8000/counters/hits # a counter in Redis (REDIS_URL)
    open http://localhost:8000/events/page    # EventSource: numbered events that resume
    curl -N localhost:8000/events             # the same stream, as Server-Sent Events
    curl -r 0-99 localhost:8000/files/prices.csv   # a file by sendfile, with Range and ETag
    curl -T big.iso localhost:8000/uploads/big.iso # an upload read as it arrives
    curl -N localhost:8000/activity           # the activity log, followed as it grows (SSE)
    curl -N localhost:8000/news & curl -d text=hi localhost:8000/news   # one event, all clients
"""
import asyncio
import collections
import functools
import hashlib
import os
import tempfile
import time

from flask import Flask, Response, request

from flask_restful_async import Api, AsyncResource, Resource, abort, fields, marshal_with, reqparse
from flask_restful_async.redis import Redis, RedisError
from flask_restful_async.streaming import (Broadcast, Event, EventStream, body_chunks, follow,
                                           last_event_id, send_from_directory)

app = Flask(__name__)
api = Api(app)

ITEMS = {1: {"item_id": 1, "name": "apple"}, 2: {"item_id": 2, "name": "pear"}}
item_fields = {"id": fields.Integer(attribute="item_id"), "name": fields.String, "uri": fields.Url("item")}

parser = reqparse.RequestParser()
parser.add_argument("name", required=True, help="the item's name")


class Hello(AsyncResource):
    async def get(self):
        await asyncio.sleep(0)  # any awaitable: a database call, an HTTP request...
        return {"hello": "world"}


class Item(Resource):
    @marshal_with(item_fields)
    def get(self, item_id: int):
        if item_id not in ITEMS:
            abort(404, message=f"item {item_id} does not exist")
        return ITEMS[item_id]


class ItemList(AsyncResource):
    @marshal_with(item_fields)
    async def get(self):
        return list(ITEMS.values())

    @marshal_with(item_fields)
    async def post(self):
        args = parser.parse_args()
        item = {"item_id": max(ITEMS) + 1, "name": args["name"]}
        ITEMS[item["item_id"]] = item
        return item, 201


# REDIS_URL names the server (`make run` starts one when none answers); APP_NAME prefixes every
# key, so that several apps can share one Redis.
redis = Redis.from_url(key_prefix=os.environ.get("APP_NAME", "example") + ":",
                       socket_connect_timeout=2, socket_timeout=5)


def redis_or_503(method):
    """Redis down or slow: 503 with the reason, not a 500."""
    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except RedisError as exc:
            abort(503, message=f"Redis is unavailable: {exc}")
    return wrapper


class Counter(AsyncResource):
    method_decorators = [redis_or_503]

    async def get(self, name: str):
        return {"name": name, "value": int(await redis.get(f"counter:{name}") or 0)}

    async def post(self, name: str):
        return {"name": name, "value": await redis.incr(f"counter:{name}")}


api.add_resource(Hello, "/")
api.add_resource(ItemList, "/items")
api.add_resource(Item, "/items/<int:item_id>", endpoint="item")
api.add_resource(Counter, "/counters/<name>")


# Server-Sent Events that resume: /events sends events numbered 1..count (?count=, default 20)
# with their number as id, and ends the connection after `per` events (?per=, default 5), as a
# server going away would.  The browser's EventSource reconnects with a Last-Event-ID header,
# and the stream goes on after that id.  /events/page shows it; /events/seen lists the
# Last-Event-ID headers the stream was asked with (null: a first connection).
SEEN_LAST_IDS = collections.deque(maxlen=100)


class Events(AsyncResource):
    async def get(self):
        after = last_event_id()
        SEEN_LAST_IDS.append(after)
        start = int(after) if after and after.isdigit() else 0
        count = request.args.get("count", 20, type=int)
        per = max(1, request.args.get("per", 5, type=int))

        async def numbered():
            for n in range(start + 1, min(start + per, count) + 1):
                yield Event(data={"n": n}, id=str(n))
                await asyncio.sleep(0.01)  # any awaitable: events arrive over time
        # retry: the browser reconnects 100 ms after the stream ends
        return EventStream(numbered(), ping=None, retry=100)


class SeenLastIds(AsyncResource):
    async def get(self):
        return {"last_event_ids": list(SEEN_LAST_IDS)}


EVENTS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Server-Sent Events</title></head>
<body>
<h1>Events</h1>
<p>Status: <span id="status">connecting</span>, connections opened: <span id="opens">0</span></p>
<ol id="ids"></ol>
<script>
  const params = new URLSearchParams(location.search);
  const count = Number(params.get("count") || 20);
  const source = new EventSource("/events?" + params.toString());
  const list = document.getElementById("ids");
  window.ids = [];
  window.done = false;
  source.onopen = () => {
    const opens = document.getElementById("opens");
    opens.textContent = Number(opens.textContent) + 1;
    document.getElementById("status").textContent = "open";
  };
  source.onerror = () => {  // the stream ended: EventSource reconnects by itself
    if (!window.done) document.getElementById("status").textContent = "reconnecting";
  };
  source.onmessage = (event) => {
    window.ids.push(event.lastEventId);
    const item = document.createElement("li");
    item.textContent = event.lastEventId + ": " + event.data;
    list.appendChild(item);
    if (Number(event.lastEventId) >= count) {
      source.close();
      window.done = true;
      document.getElementById("status").textContent = "done";
    }
  };
</script>
</body></html>
"""


class EventsPage(AsyncResource):
    async def get(self):
        return Response(EVENTS_PAGE, mimetype="text/html")


api.add_resource(Events, "/events")
api.add_resource(SeenLastIds, "/events/seen")
api.add_resource(EventsPage, "/events/page")


# Files, uploads, a followed log and a broadcast (docs/streaming.md).
FILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")
ACTIVITY_LOG = os.environ.get("EXAMPLE_ACTIVITY_LOG",
                              os.path.join(tempfile.gettempdir(), "fra-example-activity.log"))
news = Broadcast(history=50)
news_ids = iter(range(1, 1 << 62))


def activity(line: str) -> None:
    with open(ACTIVITY_LOG, "a") as log:
        log.write("%s %s\n" % (time.strftime("%H:%M:%S"), line))


class File(AsyncResource):
    async def get(self, name: str):
        return send_from_directory(FILES_DIR, name, max_age=60)   # 404 outside FILES_DIR


class Upload(AsyncResource):
    async def put(self, name: str):
        size, digest = 0, hashlib.sha256()
        async for chunk in body_chunks():   # as it arrives; 100-continue sent here
            size += len(chunk)
            digest.update(chunk)
        activity("upload %s: %d bytes" % (name, size))
        return {"name": name, "size": size, "sha256": digest.hexdigest()}, 201


class Activity(AsyncResource):
    async def get(self):
        return EventStream(Event(data=line) async for line in follow(ACTIVITY_LOG))


news_parser = reqparse.RequestParser()
news_parser.add_argument("text", required=True, help="text is required")


class News(AsyncResource):
    async def get(self):
        return EventStream(news.subscribe(last_event_id()), ping=15)

    async def post(self):
        text = news_parser.parse_args()["text"]
        delivered = news.publish(Event(data={"text": text}, id=str(next(news_ids))))
        return {"delivered": delivered}


api.add_resource(File, "/files/<path:name>")
api.add_resource(Upload, "/uploads/<name>")
api.add_resource(Activity, "/activity")
api.add_resource(News, "/news")
