"""Server-Sent Events (the WHATWG HTML standard, "Server-sent events"): `Event`, the
`EventStream` response, `Broadcast` for one event to many streams, and `last_event_id()`.

    class Ticks(AsyncResource):
        async def get(self):
            async def events():
                n = int(last_event_id() or 0)
                while True:
                    n += 1
                    yield Event(data={"n": n}, id=str(n), event="tick")
                    await asyncio.sleep(1)
            return EventStream(events(), ping=15)

On our server the keep-alive comment ("ping") is written by a timer in C when the stream has
been silent for `ping` seconds, and `send_timeout` is the connection's write timeout: no Python
runs for either.  A `Broadcast` subscription is fanned out in C: a publish formats the event
once and C writes it to every subscriber's connection, without waking one coroutine each."""
import asyncio
import collections
import json
from typing import Any, Awaitable, Deque, Dict, List, Optional, Set, Tuple

from flask.globals import _cv_request

from flask_restful_async._core import StreamGroup

from flask_restful_async.streaming.responses import Output, StreamResponse, aclose_quietly

__all__ = ["Event", "EventStream", "Broadcast", "last_event_id", "encode_event"]

PING = b": ping\n\n"


def _lines(text: str) -> List[str]:
    """Text split at CRLF, CR or LF, as an EventSource splits it (so each line is sent as its
    own field and nothing in the text can end the event early)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _one_line(name: str, value: Any) -> str:
    text = str(value)
    if "\n" in text or "\r" in text or (name == "id" and "\0" in text):
        raise ValueError("an event's %s cannot contain a line break%s"
                         % (name, " or NUL" if name == "id" else ""))
    return text


class Event:
    """One event: `data` (str; a dict or list is sent as JSON; bytes as UTF-8), and the
    optional `id` (what a reconnecting client sends back as Last-Event-ID), `event` (its
    type: the browser dispatches it to `addEventListener(type)`), `retry` (the client's
    reconnection delay, in milliseconds) and `comment` (ignored by clients)."""

    __slots__ = ("data", "id", "event", "retry", "comment")

    def __init__(self, data: Any = None, id: Optional[Any] = None, event: Optional[str] = None,
                 retry: Optional[int] = None, comment: Optional[str] = None) -> None:
        self.data = data
        self.id = id
        self.event = event
        self.retry = retry
        self.comment = comment

    def __repr__(self) -> str:
        return "Event(%r, id=%r, event=%r)" % (self.data, self.id, self.event)

    def encode(self) -> bytes:
        out: List[str] = []
        if self.comment is not None:
            out.extend(": " + line for line in _lines(str(self.comment)))
        if self.id is not None:
            out.append("id: " + _one_line("id", self.id))
        if self.event is not None:
            out.append("event: " + _one_line("event", self.event))
        if self.retry is not None:
            if isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0:
                raise ValueError("an event's retry is a number of milliseconds (an int >= 0)")
            out.append("retry: %d" % self.retry)
        data = self.data
        if data is not None:
            if isinstance(data, (bytes, bytearray)):
                data = bytes(data).decode("utf-8")
            elif not isinstance(data, str):
                data = json.dumps(data, separators=(",", ":"))
            out.extend("data: " + line for line in _lines(data))
        if not out:
            raise ValueError("an empty event: give it data, an id, an event type, a retry or"
                             " a comment")
        return ("\n".join(out) + "\n\n").encode("utf-8")


def encode_event(item: Any) -> bytes:
    """An item of an event stream as its bytes on the wire: an Event; a str (the data); a
    dict or list (JSON data); bytes (data, UTF-8)."""
    if type(item) is Event:
        return item.encode()
    if isinstance(item, Event):
        return item.encode()
    return Event(data=item).encode()


def last_event_id() -> Optional[str]:
    """The Last-Event-ID request header (what a reconnecting EventSource sends: the id of the
    last event it received), or None.  Read it in the resource, before returning the stream."""
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError("last_event_id() needs a request context")
    header = getattr(ctx, "header", None)
    if header is not None:  # our servers' request context: no request object made
        value = header(b"last-event-id")
        return None if value is None else value.decode("utf-8", "replace")
    return ctx.request.headers.get("Last-Event-ID")


class EventStream(StreamResponse):
    """A `text/event-stream` response of the items of `source` (an async iterator, or a sync
    one: see `encode_event` for what items may be).

    - `ping` (seconds, default 15; 0 or None: off): a comment is sent when the stream has
      been silent that long, so that proxies and the client keep the connection.
    - `send_timeout` (seconds): a client that takes nothing of the stream for that long is
      dropped (its generator is closed).
    - `retry` (milliseconds): sent first, the client's reconnection delay.
    The stream ends when the source does, or when the client goes (the source is closed:
    an async generator sees GeneratorExit at its `yield` and its `finally` runs)."""

    default_mimetype = "text/event-stream"

    def __init__(self, source: Any, ping: Optional[float] = 15, send_timeout: Optional[float] = None,
                 retry: Optional[int] = None, status: Optional[int] = None,
                 headers: Optional[Any] = None) -> None:
        if ping is not None and (isinstance(ping, bool) or ping < 0):
            raise ValueError("EventStream ping=%r: expected seconds > 0, or 0/None for none" % ping)
        if send_timeout is not None and (isinstance(send_timeout, bool) or send_timeout <= 0):
            raise ValueError("EventStream send_timeout=%r: expected seconds > 0 or None"
                             % send_timeout)
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise ValueError("EventStream retry=%r: expected milliseconds (an int >= 0)" % retry)
        self.ping = ping or None
        self.send_timeout = send_timeout
        self.retry = retry
        self.subscription = source if isinstance(source, _Subscription) else None
        super().__init__(source, status=status, headers=headers, mimetype="text/event-stream")
        self.headers.setdefault("Cache-Control", "no-store")
        self.headers.setdefault("X-Accel-Buffering", "no")  # nginx: pass events on at once

    def encode(self, item: Any) -> bytes:
        return encode_event(item)

    def _first(self) -> bytes:
        return b"" if self.retry is None else b"retry: %d\n\n" % self.retry

    def serve(self, out: Output) -> Awaitable[None]:
        """The coroutine that sends this stream.  On our server it holds the source and the
        few settings it needs, not this Response (its headers and werkzeug state), for the
        stream's whole life."""
        if out.exchange is None:
            return self._serve_portable(out)
        return _serve_on_exchange(out, self.status_code, self.asgi_headers(), self.source,
                                  self.ping, self.send_timeout, self._first(), self.subscription)

    async def _serve_portable(self, out: Output) -> None:
        """Another ASGI server: pings and the send timeout in Python (a task reads the
        source so that a silent source can be interrupted by a ping)."""
        source = self.source
        queue: "asyncio.Queue[Tuple[int, Any]]" = asyncio.Queue(maxsize=1)

        async def read() -> None:
            try:
                async for item in source:
                    await queue.put((0, item))
                await queue.put((1, None))
            except Exception as exc:  # handed to the writer; not CancelledError: cancelled
                # by a writer that has stopped reading, a put on the full queue would hang
                await queue.put((2, exc))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            await out.start(self.status_code, self.asgi_headers())
            if out.is_head:
                await out.body(b"", False)
                return
            if self.retry is not None:
                await self._send(out, self._first())
            while True:
                try:
                    kind, value = await asyncio.wait_for(queue.get(), self.ping)
                except asyncio.TimeoutError:
                    await self._send(out, PING)
                    continue
                if kind == 1:
                    break
                if kind == 2:
                    raise value
                await self._send(out, encode_event(value))
            await out.body(b"", False)
        finally:
            reader.cancel()
            try:
                await reader
            except BaseException:  # noqa: B902 - it was cancelled or already reported
                pass
            await aclose_quietly(source)

    async def _send(self, out: Output, data: bytes) -> None:
        """One write; it gives up (the client is dropped) after send_timeout, or when this
        stream's Broadcast subscription fell more than max_queued behind."""
        dropped = None if self.subscription is None else self.subscription.dropped_future()
        if self.send_timeout is None and dropped is None:
            await out.body(data)
            return
        sending = asyncio.ensure_future(out.body(data))
        waiting = {sending} if dropped is None else {sending, dropped}
        done, _ = await asyncio.wait(waiting, timeout=self.send_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if sending in done:
            return sending.result()
        sending.cancel()
        if dropped is not None and dropped.done():
            raise ConnectionResetError("the client fell more than max_queued=%d bytes behind"
                                       % self.subscription.broadcast.max_queued)
        raise ConnectionResetError("the client took nothing for send_timeout=%ss"
                                   % self.send_timeout)


async def _serve_on_exchange(out: Output, status: int, headers: List[Tuple[bytes, bytes]],
                             source: Any, ping: Optional[float], send_timeout: Optional[float],
                             first: bytes, subscription: Optional["_Subscription"]) -> None:
    """An EventStream on our server: pings and the send timeout are the connection's (C
    timers), a Broadcast subscription is fanned out in C."""
    exchange = out.exchange
    is_head = out.is_head
    out = None  # (the exchange's own send from here: one object less per idle stream)
    send = exchange.send
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        headers = None  # not kept for the stream's life
        if is_head:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if ping:
            exchange.keepalive(ping, PING)
        if send_timeout:
            exchange.write_timeout(send_timeout)
        if subscription is not None:
            # fanned out in C from now on: this coroutine only waits for the end
            closed = subscription.attach(exchange, first)
            try:
                await closed
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                subscription.detach(exchange, closed)
            return
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        async for item in source:
            await send({"type": "http.response.body", "body": encode_event(item), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await aclose_quietly(source)


class _Subscription:
    """One stream's subscription to a Broadcast: an async iterator of the events published
    after it was made (and of the replayed ones).  On our server EventStream does not iterate
    it: it hands the exchange to the Broadcast's group in C."""

    __slots__ = ("broadcast", "replay", "queue", "pending", "dropped")

    def __init__(self, broadcast: "Broadcast", replay: List[bytes]) -> None:
        self.broadcast = broadcast
        self.replay = replay
        self.queue: Optional["asyncio.Queue[Optional[bytes]]"] = None
        # iterated (another server): bytes published and not yet taken, and whether (a future
        # once asked for) it was dropped for falling more than max_queued behind
        self.pending = 0
        self.dropped: Any = None

    def attach(self, exchange: Any, first: bytes) -> asyncio.Future:
        """Our server: write what comes first and the replayed events, join the group in C;
        returns the future the stream waits on until the broadcast closes (the client leaving
        cancels the wait).  `detach` undoes it.  (Not a coroutine: an idle subscriber costs
        one frame less.)"""
        broadcast = self.broadcast
        group = broadcast._group_for_loop()
        for data in ([first] if first else []) + self.replay:
            exchange.send({"type": "http.response.body", "body": data, "more_body": True})
        self.replay = []
        group.add(exchange)
        closed = asyncio.get_running_loop().create_future()
        broadcast._waiting.add(closed)
        return closed

    def detach(self, exchange: Any, closed: asyncio.Future) -> None:
        broadcast = self.broadcast
        broadcast._waiting.discard(closed)
        group = broadcast._groups.get(asyncio.get_running_loop())
        if group is not None:
            group.discard(exchange)

    def __aiter__(self) -> "_Subscription":
        if self.queue is None:
            self.queue = asyncio.Queue()
            for data in self.replay:
                self.queue.put_nowait(data)
                self.pending += len(data)
            self.broadcast._iterated.add(self)
        return self

    async def __anext__(self) -> "_Raw":
        data = await self.queue.get()  # type: ignore[union-attr]
        if data is None:
            raise StopAsyncIteration
        self.pending -= len(data)
        return _Raw(data)

    async def aclose(self) -> None:
        self.broadcast._iterated.discard(self)

    def offer(self, data: Optional[bytes]) -> bool:
        """A published event (None: the end) for an iterated subscription; False when it is
        dropped instead, for falling more than max_queued behind."""
        if data is not None and self.pending + len(data) > self.broadcast.max_queued:
            self.broadcast._iterated.discard(self)
            if self.dropped is None:
                self.dropped = True
            elif not self.dropped.done():
                self.dropped.set_result(None)
            return False
        self.queue.put_nowait(data)  # type: ignore[union-attr]
        if data is not None:
            self.pending += len(data)
        return True

    def dropped_future(self) -> asyncio.Future:
        """A future done once this subscription has been dropped."""
        if not isinstance(self.dropped, asyncio.Future):
            fut = asyncio.get_running_loop().create_future()
            if self.dropped:
                fut.set_result(None)
            self.dropped = fut
        return self.dropped


class _Raw(Event):
    """An event already encoded (a Broadcast's, formatted once for every subscriber)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def encode(self) -> bytes:
        return self.raw


class Broadcast:
    """One stream of events for many subscribers (`EventStream(broadcast.subscribe())`).

    `publish(item)` encodes the event once and sends it to every subscriber; it returns how
    many got it.  On our server that is one call into C, which writes it to each connection;
    a subscriber whose client cannot keep up (more than `max_queued` bytes waiting) is
    dropped.  `history=N` keeps the last N events that have an id, so that a client that
    reconnects with Last-Event-ID gets what it missed (`subscribe(last_event_id())`).
    A Broadcast belongs to one process: for several workers or machines, feed each worker's
    Broadcast from a shared source (e.g. Redis pub/sub)."""

    def __init__(self, *, max_queued: int = 1 << 20, history: int = 0) -> None:
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued <= 0:
            raise ValueError("Broadcast max_queued=%r: expected a number of bytes > 0" % max_queued)
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError("Broadcast history=%r: expected a number of events >= 0" % history)
        self.max_queued = max_queued
        self._history: Deque[Tuple[str, bytes]] = collections.deque(maxlen=history or None)
        self._keep = history
        self._groups: Dict[Any, Any] = {}      # loop -> _core.StreamGroup
        self._iterated: Set[_Subscription] = set()  # subscriptions iterated (another server)
        self._waiting: Set[asyncio.Future] = set()

    def _group_for_loop(self) -> Any:
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = StreamGroup(self.max_queued)
        return group

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups.values()) + len(self._iterated)

    def subscribe(self, last_event_id: Optional[str] = None) -> _Subscription:
        """A source for one EventStream: the events published from now on, after the kept
        ones that came after `last_event_id` (all kept ones if that id is no longer kept)."""
        replay: List[bytes] = []
        if last_event_id is not None and self._keep:
            kept = list(self._history)
            ids = [event_id for event_id, _ in kept]
            start = ids.index(last_event_id) + 1 if last_event_id in ids else 0
            replay = [data for _, data in kept[start:]]
        return _Subscription(self, replay)

    def publish(self, item: Any) -> int:
        """Send one event (an Event, str, dict/list or bytes data) to every subscriber."""
        data = encode_event(item)
        if self._keep and isinstance(item, Event) and item.id is not None:
            self._history.append((str(item.id), data))
        sent = 0
        for group in self._groups.values():
            sent += group.publish(data)
        for subscription in list(self._iterated):
            sent += subscription.offer(data)
        return sent

    def close(self) -> None:
        """End every subscriber's stream (their responses complete)."""
        for fut in list(self._waiting):
            if not fut.done():
                fut.set_result(None)
        for subscription in self._iterated:
            subscription.offer(None)
