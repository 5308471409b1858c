"""Publish/subscribe sessions, as redis-py's asyncio `PubSub`::

    pubsub = redis.pubsub()
    await pubsub.subscribe("news")
    async for message in pubsub.listen():
        ...   # {"type": "message", "pattern": None, "channel": b"news", "data": b"..."}

A session has a connection of its own (subscribed connections take no other commands).  What
Redis sends on it (messages and (un)subscribe confirmations) comes from the C connection's
`on_message` and waits in a queue for `get_message()` / `listen()`.  When the connection drops
the session reconnects with backoff and subscribes again to every channel and pattern it had;
messages published while it was down are lost (that is Redis pub/sub: at most once)."""
import asyncio
import builtins
import inspect
import random
from typing import Any, Callable, Dict, Iterable, Optional

from flask_restful_async.redis.connection import Pool, translate
from flask_restful_async.redis.exceptions import ConnectionError, PubSubError

__all__ = ["PubSub"]

_CONNECTION_ERRORS = (builtins.ConnectionError, builtins.TimeoutError)
_SUBSCRIBE_KINDS = frozenset({"subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                              "ssubscribe", "sunsubscribe"})
_UNSUBSCRIBE_KINDS = frozenset({"unsubscribe", "punsubscribe", "sunsubscribe"})
_CLOSED = object()  # wakes listeners when the session closes

Handler = Callable[[Dict[str, Any]], Any]


def _kind(raw: Any) -> str:
    return (raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)).lower()


class PubSub:
    """One subscriber: channels, patterns and the messages for them."""

    def __init__(self, client: Any, ignore_subscribe_messages: bool = False) -> None:
        self.client = client
        self.ignore_subscribe_messages = ignore_subscribe_messages
        self.channels: Dict[Any, Optional[Handler]] = {}
        self.patterns: Dict[Any, Optional[Handler]] = {}
        self._pool: Optional[Pool] = None
        self._conn: Any = None
        self._connecting: Optional[asyncio.Future] = None
        self._queue: Optional[asyncio.Queue] = None
        self._closed = False
        self._reconnects = 0

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns)

    async def __aenter__(self) -> "PubSub":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # ---- the connection -------------------------------------------------------------------

    def _key(self, value: Any) -> Any:
        """Channel names as Redis echoes them: text with decode_responses, else bytes."""
        if self.client.decode_responses:
            return value.decode(self.client.settings.decode) if isinstance(value, bytes) else str(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        return value if isinstance(value, bytes) else str(value).encode("utf-8")

    async def _connection(self) -> Any:
        if self._closed:
            raise PubSubError("The pub/sub session is closed")
        if self._conn is not None:
            return self._conn
        if self._connecting is None:
            self._pool = self._pool or self.client._pool()
            loop = self._pool.loop
            self._queue = self._queue or asyncio.Queue()
            self._connecting = loop.create_future()
            loop.create_task(self._connect(self._connecting))
        return await asyncio.shield(self._connecting)

    async def _connect(self, done: asyncio.Future) -> None:
        """Connect (again), with backoff while Redis is unreachable after a loss, and subscribe
        again to what the session had."""
        delay = 0.05
        while True:
            try:
                conn = await self._pool.acquire(on_message=self._on_message,  # type: ignore[union-attr]
                                                on_lost=self._on_lost)
                if self.channels:
                    await conn.execute(("SUBSCRIBE", *self.channels))
                if self.patterns:
                    await conn.execute(("PSUBSCRIBE", *self.patterns))
            except BaseException as exc:  # noqa: B902 - the waiters get it, or we retry
                exc = translate(exc)
                if self._closed or not (self._reconnects and isinstance(exc, ConnectionError)):
                    self._connecting = None
                    if not done.done():
                        done.set_exception(exc)
                        done.exception()
                    return
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, 2.0)
                continue
            break
        self._connecting = None
        if self._closed:
            self._pool.release(conn, False)  # type: ignore[union-attr]
            done.set_exception(PubSubError("The pub/sub session is closed"))
            done.exception()
            return
        self._conn = conn
        done.set_result(conn)

    def _on_lost(self, exc: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, False)  # type: ignore[union-attr]
        if self._closed or not self.subscribed or self._connecting is not None:
            return
        self._reconnects += 1
        loop = self._pool.loop  # type: ignore[union-attr]
        self._connecting = loop.create_future()
        loop.create_task(self._connect(self._connecting))

    def _on_message(self, raw: list) -> None:
        kind = _kind(raw[0])
        if kind == "pmessage":
            message = {"type": kind, "pattern": raw[1], "channel": raw[2], "data": raw[3]}
        elif kind == "pong":
            message = {"type": kind, "pattern": None, "channel": None,
                       "data": raw[1] if len(raw) > 1 else None}
        else:
            message = {"type": kind, "pattern": None, "channel": raw[1],
                       "data": raw[2] if len(raw) > 2 else None}
        if kind in _UNSUBSCRIBE_KINDS:
            tracked = self.patterns if kind == "punsubscribe" else self.channels
            tracked.pop(raw[1], None)
        if self._queue is not None:
            self._queue.put_nowait(message)

    # ---- subscribing ----------------------------------------------------------------------

    async def _command(self, *args: Any) -> None:
        conn = await self._connection()
        try:
            await conn.execute(args)
        except _CONNECTION_ERRORS as exc:
            raise translate(exc) from None

    async def subscribe(self, *args: Any, **kwargs: Handler) -> None:
        """Subscribe to channels (`handler=` keyword arguments: channel -> a function called
        with each of its messages instead of returning them)."""
        new = {self._key(c): None for c in _flatten(args)}
        new.update({self._key(c): h for c, h in kwargs.items()})
        if not new:
            raise PubSubError("subscribe() needs at least one channel")
        await self._connection()  # (a new connection subscribes to what is tracked already)
        self.channels.update(new)
        await self._command("SUBSCRIBE", *new)

    async def psubscribe(self, *args: Any, **kwargs: Handler) -> None:
        """Subscribe to glob-style patterns."""
        new = {self._key(p): None for p in _flatten(args)}
        new.update({self._key(p): h for p, h in kwargs.items()})
        if not new:
            raise PubSubError("psubscribe() needs at least one pattern")
        await self._connection()
        self.patterns.update(new)
        await self._command("PSUBSCRIBE", *new)

    async def unsubscribe(self, *args: Any) -> None:
        """Unsubscribe from channels (none given: from all)."""
        if not self.channels or (self._conn is None and self._connecting is None):
            self.channels.clear()
            return
        await self._command("UNSUBSCRIBE", *(self._key(c) for c in _flatten(args)))

    async def punsubscribe(self, *args: Any) -> None:
        if not self.patterns or (self._conn is None and self._connecting is None):
            self.patterns.clear()
            return
        await self._command("PUNSUBSCRIBE", *(self._key(p) for p in _flatten(args)))

    async def ping(self, message: Any = None) -> None:
        await self._command("PING", *(() if message is None else (message,)))

    # ---- reading --------------------------------------------------------------------------

    async def get_message(self, ignore_subscribe_messages: bool = False,
                          timeout: Optional[float] = 0.0) -> Optional[Dict[str, Any]]:
        """The next message, or None when none came within `timeout` seconds (0: only what
        has arrived; None: wait for one).  Messages of channels with a handler go to the
        handler and return None."""
        queue = self._queue
        if queue is None or (queue.empty() and (self._closed or not self.subscribed)):
            if timeout:
                await asyncio.sleep(timeout)
            return None
        try:
            if timeout is None:
                message = await queue.get()
            elif timeout <= 0:
                message = queue.get_nowait()
            else:
                message = await asyncio.wait_for(queue.get(), timeout)
        except (asyncio.QueueEmpty, asyncio.TimeoutError):
            return None
        if message is _CLOSED:
            return None
        return await self._deliver(message, ignore_subscribe_messages)

    async def _deliver(self, message: Dict[str, Any],
                       ignore_subscribe_messages: bool) -> Optional[Dict[str, Any]]:
        kind = message["type"]
        if kind in _SUBSCRIBE_KINDS:
            if ignore_subscribe_messages or self.ignore_subscribe_messages:
                return None
            return message
        if kind == "pmessage":
            handler = self.patterns.get(message["pattern"])
        elif kind == "message":
            handler = self.channels.get(message["channel"])
        else:
            handler = None
        if handler is not None:
            result = handler(message)
            if inspect.isawaitable(result):
                await result
            return None
        return message

    async def listen(self) -> Any:
        """Every message while the session is subscribed (an async iterator)."""
        while True:
            queue = self._queue
            if queue is None or self._closed or (queue.empty() and not self.subscribed):
                return
            message = await queue.get()
            if message is _CLOSED:
                return
            message = await self._deliver(message, False)
            if message is not None:
                yield message

    async def run(self, *, exception_handler: Optional[Callable[[BaseException, "PubSub"], Any]] = None,
                  poll_timeout: float = 1.0) -> None:
        """Deliver messages to the handlers until the session is closed (redis-py's `run`)."""
        for name, handler in {**self.channels, **self.patterns}.items():
            if handler is None:
                raise PubSubError("Channel %r has no handler registered" % (name,))
        while not self._closed:
            try:
                await self.get_message(timeout=poll_timeout)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: B902 - the handler decides
                if exception_handler is None:
                    raise
                result = exception_handler(exc, self)
                if inspect.isawaitable(result):
                    await result

    # ---- closing --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Leave every subscription and close the session's connection."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, False)  # type: ignore[union-attr]
        self.channels.clear()
        self.patterns.clear()
        if self._queue is not None:
            self._queue.put_nowait(_CLOSED)

    close = aclose
    reset = aclose


def _flatten(args: Iterable[Any]) -> list:
    """redis-py accepts channels as arguments or as one list."""
    out: list = []
    for arg in args:
        if isinstance(arg, (list, tuple, set)):
            out.extend(arg)
        else:
            out.append(arg)
    return out
