"""Connections to one Redis, per event loop: the multiplexed connection(s) every coroutine's
commands share (pipelined by the C connection: commands issued in one loop pass go out in one
write), and dedicated connections for what holds a connection (blocking commands, WATCH,
pub/sub), up to `max_connections`, waited for at most `pool_timeout` seconds.

A connection that drops fails its commands in flight (`ConnectionError`); the next command
reconnects it.  A connect that fails makes the slot wait (backoff, doubling from 50 ms to 2 s)
before it tries again: meanwhile commands fail at once with the last error instead of each one
knocking on a Redis that is down.

All of it runs on the loop it belongs to; `_core.RedisConnection` picks its loop adapter (our
server's libuv loop, or asyncio's add_reader/add_writer) from the loop it is given."""
import asyncio
import builtins
import collections
import random
from typing import Any, Callable, Deque, List, Optional, Sequence

from flask_restful_async.redis.exceptions import (ConnectionError, RedisError,
                                                  TimeoutError, error_from_reply)

__all__ = ["ConnectionSettings", "Link", "Pool", "translate"]

_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0


def _core_connection() -> Any:
    from flask_restful_async import _core
    return _core.RedisConnection


def translate(exc: BaseException) -> BaseException:
    """The client's exception for what a connection raised (builtin ConnectionError and
    TimeoutError become redis-py's classes; the rest are already the client's)."""
    if isinstance(exc, RedisError):
        return exc
    if isinstance(exc, builtins.TimeoutError):
        return TimeoutError(str(exc) or "Timeout reading from Redis")
    if isinstance(exc, (builtins.ConnectionError, OSError)):
        return ConnectionError(str(exc) or "Connection to Redis lost")
    return exc


class ConnectionSettings:
    """What every connection of one client is made with, and the commands that set a new
    connection up (AUTH/HELLO, SELECT, CLIENT SETNAME, CLIENT TRACKING)."""

    def __init__(self, *, host: str, port: int, path: Optional[str], db: int,
                 username: Optional[str], password: Optional[str], protocol: int,
                 client_name: Optional[str], connect_timeout: Optional[float],
                 decode: Optional[str], encoding_errors: str, tls: Any,
                 tracking: bool) -> None:
        self.host, self.port, self.path, self.db = host, port, path, db
        self.username, self.password, self.protocol = username, password, protocol
        self.client_name, self.connect_timeout, self.tls = client_name, connect_timeout, tls
        self.decode, self.encoding_errors, self.tracking = decode, encoding_errors, tracking

    @property
    def where(self) -> str:
        return ("unix:" + self.path) if self.path else "%s:%d" % (self.host, self.port)

    def handshake(self, tracking: bool) -> List[Sequence[Any]]:
        cmds: List[Sequence[Any]] = []
        if self.protocol == 3:
            hello: List[Any] = ["HELLO", 3]
            if self.password is not None:
                hello += ["AUTH", self.username or "default", self.password]
            if self.client_name:
                hello += ["SETNAME", self.client_name]
            cmds.append(hello)
        else:
            if self.password is not None:
                cmds.append(["AUTH", self.username, self.password] if self.username
                            else ["AUTH", self.password])
            if self.client_name:
                cmds.append(["CLIENT", "SETNAME", self.client_name])
        if self.db:
            cmds.append(["SELECT", self.db])
        if tracking:
            cmds.append(["CLIENT", "TRACKING", "ON"])
        return cmds

    def new(self, loop: asyncio.AbstractEventLoop, *, on_lost: Callable[[BaseException], None],
            on_message: Optional[Callable[[list], None]] = None,
            on_push: Optional[Callable[[list], None]] = None) -> Any:
        return _core_connection()(
            loop, host=None if self.path else self.host, port=self.port, path=self.path,
            connect_timeout=self.connect_timeout, decode=self.decode,
            encoding_errors=self.encoding_errors, error_factory=error_from_reply,
            on_message=on_message, on_push=on_push, on_lost=on_lost, tls=self.tls)

    async def open(self, loop: asyncio.AbstractEventLoop, *,
                   on_lost: Callable[[BaseException], None],
                   on_message: Optional[Callable[[list], None]] = None,
                   on_push: Optional[Callable[[list], None]] = None,
                   tracking: bool = False) -> Any:
        """A connected connection with the handshake done; the client's exception if not."""
        conn = self.new(loop, on_lost=on_lost, on_message=on_message, on_push=on_push)
        try:
            await conn.connect()
            cmds = self.handshake(tracking)
            if cmds:
                for reply in await conn.execute_many(cmds):
                    if isinstance(reply, BaseException):
                        raise reply
        except BaseException as exc:
            conn.close()
            exc = translate(exc)
            if isinstance(exc, ConnectionError) and str(exc).find(self.where) < 0:
                raise type(exc)("Error connecting to Redis at %s: %s" % (self.where, exc)) from None
            raise exc from None
        return conn


class Link:
    """One connection slot that connects on first use and again after a loss."""

    __slots__ = ("settings", "loop", "conn", "on_message", "on_push", "on_up", "on_down",
                 "tracking", "_connecting", "_retry_at", "_delay", "_error", "closed", "used")

    def __init__(self, settings: ConnectionSettings, loop: asyncio.AbstractEventLoop, *,
                 on_message: Optional[Callable[[list], None]] = None,
                 on_push: Optional[Callable[[list], None]] = None,
                 on_up: Optional[Callable[[Any], Any]] = None,
                 on_down: Optional[Callable[[], None]] = None, tracking: bool = False) -> None:
        self.settings, self.loop = settings, loop
        self.conn: Any = None
        self.on_message, self.on_push, self.on_up, self.on_down = on_message, on_push, on_up, on_down
        self.tracking = tracking
        self._connecting: Optional[asyncio.Future] = None
        self._retry_at = 0.0
        self._delay = 0.0
        self._error: Optional[BaseException] = None
        self.closed = False
        self.used = 0.0

    async def ready(self) -> Any:
        """The connection, connecting it if it is not up."""
        if self.conn is not None:
            return self.conn
        if self.closed:
            raise ConnectionError("The Redis client is closed")
        if self._connecting is None:
            if self._error is not None and self.loop.time() < self._retry_at:
                raise type(self._error)(*self._error.args)
            self._connecting = self.loop.create_future()
            self.loop.create_task(self._connect(self._connecting))
        return await asyncio.shield(self._connecting)

    async def _connect(self, done: asyncio.Future) -> None:
        try:
            conn = await self.settings.open(
                self.loop, on_lost=self._lost, on_message=self.on_message,
                on_push=self.on_push, tracking=self.tracking)
            if self.on_up is not None:
                await self.on_up(conn)
        except BaseException as exc:  # noqa: B902 - every failure is the waiters' answer
            self._error = exc
            self._delay = min(_BACKOFF_CAP, max(_BACKOFF_FIRST, self._delay * 2))
            self._retry_at = self.loop.time() + self._delay * (0.5 + random.random() / 2)
            self._connecting = None
            if not done.done():
                done.set_exception(exc)
            done.exception()  # retrieved: a connect nobody waits for is not an error to log
            return
        self._connecting = None
        if self.closed:
            conn.close()
            done.set_exception(ConnectionError("The Redis client is closed"))
            done.exception()
            return
        self._error, self._delay = None, 0.0
        self.conn = conn
        self.used = self.loop.time()
        done.set_result(conn)

    def _lost(self, exc: BaseException) -> None:
        self.conn = None
        if self.on_down is not None:
            self.on_down()

    def close(self) -> None:
        self.closed = True
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class Pool:
    """A client's connections on one loop."""

    def __init__(self, settings: ConnectionSettings, loop: asyncio.AbstractEventLoop, *,
                 shared: int, max_connections: Optional[int], pool_timeout: Optional[float],
                 on_push: Optional[Callable[[list], None]] = None,
                 on_down: Optional[Callable[[], None]] = None) -> None:
        self.settings, self.loop = settings, loop
        tracking = settings.tracking
        self.links = [Link(settings, loop, on_push=on_push, on_down=on_down, tracking=tracking)
                      for _ in range(shared)]
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._idle: List[Any] = []          # dedicated connections nobody holds
        self._dedicated = 0                 # dedicated connections open (held or idle)
        self._waiting: Deque[asyncio.Future] = collections.deque()
        self._turn = 0
        self.closed = False

    def shared(self) -> Link:
        """The shared connection with the least in flight (the only one, by default)."""
        links = self.links
        if len(links) == 1:
            return links[0]
        best = links[0]
        for link in links:
            if link.conn is None:
                continue
            if best.conn is None or link.conn.pending < best.conn.pending:
                best = link
        return best

    @property
    def in_use(self) -> int:
        """Connections counted against max_connections: the shared ones (open or to be
        opened on demand) and the dedicated ones."""
        return len(self.links) + self._dedicated

    async def acquire(self, on_message: Optional[Callable[[list], None]] = None,
                      on_lost: Optional[Callable[[BaseException], None]] = None) -> Any:
        """A dedicated connection (an idle one if there is one), waiting for one to be
        released when max_connections are open; ConnectionError after pool_timeout."""
        if self.closed:
            raise ConnectionError("The Redis client is closed")
        if on_message is None and on_lost is None:
            while self._idle:
                conn = self._idle.pop()
                if conn.connected:
                    return conn
                self._dedicated -= 1
        while self.max_connections is not None and self.in_use >= self.max_connections:
            waiter = self.loop.create_future()
            self._waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.pool_timeout)
            except asyncio.TimeoutError:
                raise ConnectionError(
                    "No Redis connection available within pool_timeout=%ss (max_connections=%d"
                    " are in use)" % (self.pool_timeout, self.max_connections)) from None
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
            if self.closed:
                raise ConnectionError("The Redis client is closed")
            if on_message is None and on_lost is None and self._idle:
                conn = self._idle.pop()
                if conn.connected:
                    return conn
                self._dedicated -= 1
        self._dedicated += 1
        try:
            return await self.settings.open(
                self.loop, on_lost=on_lost or _ignore_loss, on_message=on_message)
        except BaseException:
            self._dedicated -= 1
            self._wake()
            raise

    def release(self, conn: Any, reusable: bool = True) -> None:
        """Give back a dedicated connection: kept idle for the next one who needs it, or
        closed (reusable=False: its state is unknown, e.g. a blocking command was cancelled
        and Redis would still serve it)."""
        if reusable and conn.connected and not self.closed and conn.pending == 0:
            self._idle.append(conn)
        else:
            conn.close()
            self._dedicated -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self.closed = True
        for link in self.links:
            link.close()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._dedicated -= len(idle)
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)


def _ignore_loss(exc: BaseException) -> None:
    """A dedicated connection's loss shows in its commands (ConnectionError) and `connected`."""
