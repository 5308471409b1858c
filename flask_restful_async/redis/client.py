"""`Redis`: redis-py's asyncio client interface on the C connection.

One client object serves every event loop it is used from (our server's, uvicorn's, a Celery
worker's, `asyncio.run` in a script): each loop gets its own connections (a `Pool`), made on
first use.  A command goes to the loop's shared connection, where the C side pipelines it with
whatever else that loop pass sends; blocking commands take a dedicated connection."""
import asyncio
import builtins
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from flask_restful_async.redis.cache import CACHEABLE, ClientCache
from flask_restful_async.redis.commands import BLOCKING_COMMANDS, RESPONSE_CALLBACKS, CommandsMixin
from flask_restful_async.redis.connection import ConnectionSettings, Pool, translate
from flask_restful_async.redis.exceptions import ConnectionError, DataError
from flask_restful_async.redis.keys import KeyPrefixer
from flask_restful_async.redis.url import parse_url

__all__ = ["Redis", "StrictRedis", "from_url", "DEFAULT_URL"]

DEFAULT_URL = "redis://localhost:6379/0"
_get_running_loop = asyncio.get_running_loop
_CONNECTION_ERRORS = (builtins.ConnectionError, builtins.TimeoutError)
_SSL_CERT_REQS = ("none", "optional", "required")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


# a command name as given -> (its upper-case name, whether it needs more than a plain send: two
# words to split, or a blocking command for a dedicated connection)
_NAMES: Dict[Any, Tuple[str, bool]] = {}


def _name(args: Sequence[Any]) -> Tuple[str, bool]:
    if not args:
        raise DataError("execute_command needs a command name")
    name = args[0]
    if not isinstance(name, (str, bytes)):
        raise DataError("a command name is str or bytes, not %s" % type(name).__name__)
    cmd = _text(name).upper()
    entry = (cmd, " " in cmd or cmd in BLOCKING_COMMANDS)
    if len(_NAMES) < 4096:  # (names come from code, but execute_command takes anything)
        _NAMES[name] = entry
    return entry


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _setting(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError("Redis setting %s=%r: %s" % (name, value, allowed))


def _positive(name: str, value: Any, *, optional: bool = True, integer: bool = False) -> Any:
    if value is None and optional:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise _setting(name, value, "expected a positive %s%s" % (
            "integer" if integer else "number of seconds", " or None" if optional else ""))
    return value


class Redis(CommandsMixin):
    """An async Redis client with redis-py's asyncio interface::

        redis = Redis.from_url("redis://localhost:6379/0")
        await redis.set("greeting", "hello", ex=60)
        await redis.get("greeting")                 # b"hello"

    Beyond redis-py: `key_prefix` (prepended to every key argument of every command, at the
    positions Redis reports for it), `client_cache=N` (N read replies kept in process,
    invalidated by Redis; needs protocol=3), `pool_timeout` (how long a command waits for a
    dedicated connection when max_connections are in use) and `shared_connections` (how many
    multiplexed connections per event loop carry ordinary commands; 1 pipelines best)."""

    def __init__(self, host: str = "localhost", port: int = 6379, db: int = 0,
                 password: Optional[str] = None, socket_timeout: Optional[float] = None,
                 socket_connect_timeout: Optional[float] = None,
                 unix_socket_path: Optional[str] = None, encoding: str = "utf-8",
                 encoding_errors: str = "strict", decode_responses: bool = False,
                 retry_on_timeout: bool = False, ssl: bool = False,
                 ssl_keyfile: Optional[str] = None, ssl_certfile: Optional[str] = None,
                 ssl_cert_reqs: str = "required", ssl_ca_certs: Optional[str] = None,
                 ssl_check_hostname: bool = False, max_connections: Optional[int] = None,
                 health_check_interval: float = 0, client_name: Optional[str] = None,
                 username: Optional[str] = None, protocol: int = 2,
                 key_prefix: Optional[str] = None, client_cache: Optional[int] = None,
                 pool_timeout: Optional[float] = 5.0, shared_connections: int = 1) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise _setting("port", port, "expected an integer from 1 to 65535")
        if not isinstance(db, int) or isinstance(db, bool) or db < 0:
            raise _setting("db", db, "expected a database number (0 or more)")
        if protocol not in (2, 3, "2", "3"):
            raise _setting("protocol", protocol, "expected 2 or 3")
        protocol = int(protocol)
        _positive("socket_timeout", socket_timeout)
        _positive("socket_connect_timeout", socket_connect_timeout)
        _positive("max_connections", max_connections, integer=True)
        _positive("client_cache", client_cache, integer=True)
        _positive("pool_timeout", pool_timeout)
        _positive("shared_connections", shared_connections, optional=False, integer=True)
        if health_check_interval is None or health_check_interval < 0:
            raise _setting("health_check_interval", health_check_interval,
                           "expected 0 (off) or a number of seconds")
        if max_connections is not None and max_connections < shared_connections:
            raise _setting("max_connections", max_connections,
                           "expected at least shared_connections=%d" % shared_connections)
        if client_cache and protocol != 3:
            raise _setting("client_cache", client_cache,
                           "client-side caching needs protocol=3 (RESP3 invalidation pushes)")
        if key_prefix is not None and not isinstance(key_prefix, str):
            raise _setting("key_prefix", key_prefix, "expected a string such as 'myapp:'")
        try:
            "".encode(encoding, encoding_errors)
        except LookupError:
            raise _setting("encoding", encoding, "expected a Python codec name") from None
        tls = None
        if ssl:
            if str(ssl_cert_reqs).lower() not in _SSL_CERT_REQS:
                raise _setting("ssl_cert_reqs", ssl_cert_reqs, "expected one of none, optional,"
                               " required")
            from flask_restful_async import _core
            if not _core.REDIS_TLS:
                raise _setting("ssl", ssl, "this build has no TLS (OpenSSL's headers were missing"
                               " when it was built): use redis:// or rebuild with libssl-dev")
            try:
                tls = _core.RedisTLS(
                    ca_file=ssl_ca_certs, cert_file=ssl_certfile, key_file=ssl_keyfile,
                    server_name=host, verify=str(ssl_cert_reqs).lower() != "none",
                    verify_name=host if ssl_check_hostname else None)
            except Exception as exc:  # unreadable certificate files, a half pair
                raise ValueError("Redis TLS settings (ssl_ca_certs, ssl_certfile, ssl_keyfile):"
                                 " %s" % exc) from None
        self.settings = ConnectionSettings(
            host=host, port=port, path=unix_socket_path, db=db, username=username,
            password=password, protocol=protocol, client_name=client_name,
            connect_timeout=socket_connect_timeout,
            decode=encoding if decode_responses else None, encoding_errors=encoding_errors,
            tls=tls, tracking=bool(client_cache))
        self.decode_responses = decode_responses
        self.socket_timeout = socket_timeout
        self.retry_on_timeout = retry_on_timeout
        self.health_check_interval = health_check_interval
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.shared_connections = shared_connections
        self.client_cache = client_cache
        self.key_prefix = key_prefix or None
        self._prefixer = KeyPrefixer(key_prefix) if key_prefix else None
        # anything beyond a plain send on the one shared connection takes _execute
        self._slow = bool(key_prefix or client_cache or health_check_interval
                          or shared_connections != 1)
        self._pools: Dict[Any, Pool] = {}
        self._last: Tuple[Any, Optional[Pool]] = (None, None)
        self._closed = False

    @classmethod
    def from_url(cls, url: Optional[str] = None, **kwargs: Any) -> "Redis":
        """A client for `url` (default: the REDIS_URL environment variable, else
        redis://localhost:6379/0); keyword arguments override the URL's options."""
        if url is None:
            url = os.environ.get("REDIS_URL") or DEFAULT_URL
        options = parse_url(url)
        options.update(kwargs)
        return cls(**options)

    def __repr__(self) -> str:
        return "<%s %s db=%d>" % (type(self).__name__, self.settings.where, self.settings.db)

    # ---- connections per loop -------------------------------------------------------------

    def _pool(self) -> Pool:
        loop = _get_running_loop()
        last_loop, pool = self._last
        if loop is last_loop:
            return pool  # type: ignore[return-value]
        pool = self._pools.get(loop)
        if pool is None:
            if self._closed:
                raise ConnectionError("The Redis client is closed")
            for old in [lp for lp in self._pools if lp.is_closed()]:
                self._pools.pop(old).closed = True
            cache = ClientCache(self.client_cache) if self.client_cache else None
            pool = Pool(self.settings, loop, shared=self.shared_connections,
                        max_connections=self.max_connections, pool_timeout=self.pool_timeout,
                        on_push=cache.on_push if cache is not None else None,
                        on_down=cache.lost if cache is not None else None)
            pool.cache = cache  # type: ignore[attr-defined]
            self._pools[loop] = pool
        self._last = (loop, pool)
        return pool

    async def initialize(self) -> "Redis":
        """Connect now (redis-py's `await client.initialize()`; commands connect anyway)."""
        await self._pool().shared().ready()
        return self

    def __await__(self) -> Any:
        return self.initialize().__await__()

    async def __aenter__(self) -> "Redis":
        return await self.initialize()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self, close_connection_pool: Optional[bool] = None) -> None:
        """Close every connection; later commands raise ConnectionError."""
        self._closed = True
        pools, self._pools = self._pools, {}
        self._last = (None, None)
        for pool in pools.values():
            try:
                pool.close()
            except RuntimeError:  # its loop is closed: nothing left to tell
                pass

    close = aclose

    # ---- commands -------------------------------------------------------------------------

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send one command and return its reply, shaped as redis-py shapes it."""
        last_loop, pool = self._last
        if last_loop is not _get_running_loop():
            pool = self._pool()
        try:
            cmd, special = _NAMES[args[0]]
        except (KeyError, IndexError, TypeError):
            cmd, special = _name(args)
        if special or self._slow or options.get("blocking"):
            return await self._execute(pool, cmd, args, options)
        # the common case, inline: an ordinary command on the loop's one shared connection
        conn = pool.links[0].conn  # type: ignore[union-attr]
        if conn is None:
            return await self._execute(pool, cmd, args, options)
        try:
            reply = await conn.execute(args, self.socket_timeout)
        except TypeError as exc:  # an argument that is not bytes, str, int or float
            raise DataError(str(exc)) from None
        except _CONNECTION_ERRORS as exc:
            if self.retry_on_timeout and isinstance(exc, builtins.TimeoutError):
                return await self._execute(pool, cmd, args, options)
            raise translate(exc) from None
        callback = RESPONSE_CALLBACKS.get(cmd)
        return reply if callback is None else callback(reply, **options)

    async def _execute(self, pool: Pool, cmd: str, args: Sequence[Any],
                       options: Dict[str, Any]) -> Any:
        """Everything else: two-word names, key_prefix, blocking commands, the cache, health
        checks, several shared connections, a connection to make."""
        if " " in cmd:
            args = (*cmd.split(), *args[1:])
        if self._prefixer is not None:
            args = await self._with_prefix(pool, cmd, args, options)
        if cmd in BLOCKING_COMMANDS or options.get("blocking"):
            reply = await self._dedicated(pool, args)
        elif pool.cache is not None and cmd in CACHEABLE and len(args) > 1:  # type: ignore[attr-defined]
            reply = await self._cached(pool, cmd, args)
        else:
            reply = await self._send(pool, args)
        callback = RESPONSE_CALLBACKS.get(cmd)
        if callback is not None:
            reply = callback(reply, **options)
        if self._prefixer is not None and cmd in _STRIP:
            reply = _STRIP[cmd](self._prefixer.strip, reply)
        return reply

    async def _prepare(self, pool: Pool, args: Sequence[Any],
                       options: Mapping[str, Any]) -> Tuple[str, Sequence[Any]]:
        """The command's upper-case name and its arguments as they go out (a two-word name
        split, keys prefixed)."""
        cmd, _ = _name(args)
        if " " in cmd:
            args = (*cmd.split(), *args[1:])
        if self._prefixer is not None:
            args = await self._with_prefix(pool, cmd, args, options)
        return cmd, args

    def _shape(self, cmd: str, reply: Any, options: Mapping[str, Any]) -> Any:
        """A reply as redis-py returns it (and key names without the prefix)."""
        if isinstance(reply, BaseException):
            return reply
        callback = RESPONSE_CALLBACKS.get(cmd)
        if callback is not None:
            reply = callback(reply, **options)
        if self._prefixer is not None and cmd in _STRIP:
            reply = _STRIP[cmd](self._prefixer.strip, reply)
        return reply

    async def _send(self, pool: Pool, args: Sequence[Any]) -> Any:
        link = pool.links[0] if len(pool.links) == 1 else pool.shared()
        conn = link.conn
        if conn is None:
            conn = await link.ready()
        elif self.health_check_interval:
            conn = await self._checked(link)
        try:
            return await conn.execute(args, self.socket_timeout)
        except TypeError as exc:  # an argument that is not bytes, str, int or float
            raise DataError(str(exc)) from None
        except _CONNECTION_ERRORS as exc:
            if self.retry_on_timeout and isinstance(exc, builtins.TimeoutError):
                try:
                    conn = link.conn or await link.ready()
                    return await conn.execute(args, self.socket_timeout)
                except _CONNECTION_ERRORS as again:
                    raise translate(again) from None
            raise translate(exc) from None

    async def _checked(self, link: Any) -> Any:
        """The link's connection, PINGed first when it has been idle for
        health_check_interval (a dead one is replaced before the command goes out)."""
        now = link.loop.time()
        conn = link.conn
        if now - link.used > self.health_check_interval:
            try:
                await conn.execute(("PING",), self.socket_timeout or 5.0)
            except _CONNECTION_ERRORS:
                if link.conn is conn:
                    link.conn = None
                    conn.close()
                conn = await link.ready()
        link.used = now
        return conn

    async def _dedicated(self, pool: Pool, args: Sequence[Any]) -> Any:
        """A blocking command on a connection of its own.  No socket_timeout: Redis' own
        timeout argument bounds it.  Cancelled, the connection is closed rather than reused,
        so that Redis does not go on to pop an element for nobody."""
        try:
            conn = await pool.acquire()
        except _CONNECTION_ERRORS as exc:
            raise translate(exc) from None
        reusable = False
        try:
            reply = await conn.execute(args)
            reusable = True
            return reply
        except TypeError as exc:
            reusable = True  # nothing was sent
            raise DataError(str(exc)) from None
        except _CONNECTION_ERRORS as exc:
            raise translate(exc) from None
        except Exception:
            reusable = True  # an error reply: the connection is in sync
            raise
        finally:
            pool.release(conn, reusable)

    async def _cached(self, pool: Pool, cmd: str, args: Sequence[Any]) -> Any:
        cache: ClientCache = pool.cache  # type: ignore[attr-defined]
        entry = (cmd, *args[1:])
        hit, reply = cache.lookup(entry)
        if hit:
            return reply
        token = cache.begin(args[1])
        try:
            reply = await self._send(pool, args)
        except BaseException:
            cache.end(token)
            raise
        cache.end(token, entry, reply)
        return reply

    async def _with_prefix(self, pool: Pool, cmd: str, args: Sequence[Any],
                           options: Mapping[str, Any]) -> Sequence[Any]:
        prefixer = self._prefixer
        assert prefixer is not None
        if cmd == "KEYS":
            return (args[0], _glob_escape(prefixer.text) + _text(args[1]), *args[2:])
        if cmd == "SCAN":
            out = list(args)
            if options.get("scan_match"):
                at = [_text(a).upper() if isinstance(a, (str, bytes)) else a
                      for a in out].index("MATCH") + 1
                out[at] = _glob_escape(prefixer.text) + _text(out[at])
            else:
                out += ["MATCH", _glob_escape(prefixer.text) + "*"]
            return out
        return await prefixer.apply(args, lambda query: self._send(pool, query))

    # ---- pipelines, scripts, pub/sub ------------------------------------------------------

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> "Pipeline":
        """Commands queued and sent together by `await pipe.execute()` (inside MULTI/EXEC
        when `transaction`)."""
        from flask_restful_async.redis.pipeline import Pipeline
        return Pipeline(self, transaction)

    async def transaction(self, func: Callable[["Pipeline"], Any], *watches: Any,
                          value_from_callable: bool = False,
                          watch_delay: Optional[float] = None) -> Any:
        """Run `func(pipe)` with `watches` WATCHed, again while a watched key changes before
        EXEC (redis-py's `transaction`)."""
        from flask_restful_async.redis.exceptions import WatchError
        async with self.pipeline(True) as pipe:
            while True:
                try:
                    if watches:
                        await pipe.watch(*watches)
                    value = func(pipe)
                    if asyncio.iscoroutine(value):
                        value = await value
                    results = await pipe.execute()
                    return value if value_from_callable else results
                except WatchError:
                    if watch_delay:
                        await asyncio.sleep(watch_delay)
                    continue

    def register_script(self, script: str) -> "Script":
        """A Lua script as an awaitable callable: `await script(keys=[...], args=[...])` runs
        it by EVALSHA, loading it (EVAL) when Redis does not have it."""
        from flask_restful_async.redis.scripts import Script
        return Script(self, script)

    def pubsub(self, ignore_subscribe_messages: bool = False) -> "PubSub":
        """A pub/sub session on a connection of its own."""
        from flask_restful_async.redis.pubsub import PubSub
        return PubSub(self, ignore_subscribe_messages=ignore_subscribe_messages)

    # ---- what the cache did (client_cache) --------------------------------------------------

    def cache_info(self) -> Dict[str, int]:
        """Entries, hits and misses of the client-side cache on the running loop."""
        cache = self._pool().cache  # type: ignore[attr-defined]
        if cache is None:
            return {"size": 0, "entries": 0, "hits": 0, "misses": 0}
        return {"size": cache.size, "entries": len(cache), "hits": cache.hits,
                "misses": cache.misses}


def _strip_list(strip: Callable[[Any], Any], reply: Any) -> Any:
    return [strip(k) for k in reply] if reply else reply


def _strip_scan(strip: Callable[[Any], Any], reply: Any) -> Any:
    return reply[0], [strip(k) for k in reply[1]]


def _strip_first(strip: Callable[[Any], Any], reply: Any) -> Any:
    if not reply:
        return reply
    first = strip(reply[0])
    return (first, *reply[1:]) if isinstance(reply, tuple) else [first, *reply[1:]]


def _strip_streams(strip: Callable[[Any], Any], reply: Any) -> Any:
    if isinstance(reply, dict):
        return {strip(k): v for k, v in reply.items()}
    return [[strip(entry[0]), *entry[1:]] for entry in reply] if reply else reply


# commands that return key names: the prefix comes off them
_STRIP: Dict[str, Callable[[Callable[[Any], Any], Any], Any]] = {
    "KEYS": _strip_list, "SCAN": _strip_scan, "RANDOMKEY": lambda strip, r: strip(r),
    "BLPOP": _strip_first, "BRPOP": _strip_first, "BZPOPMIN": _strip_first,
    "BZPOPMAX": _strip_first, "BLMPOP": _strip_first, "LMPOP": _strip_first,
    "ZMPOP": _strip_first, "BZMPOP": _strip_first, "XREAD": _strip_streams,
    "XREADGROUP": _strip_streams,
}

StrictRedis = Redis


def from_url(url: Optional[str] = None, **kwargs: Any) -> Redis:
    """`Redis.from_url` (redis-py's module-level `from_url`)."""
    return Redis.from_url(url, **kwargs)


if False:  # typing only
    from flask_restful_async.redis.pipeline import Pipeline  # noqa: F401
    from flask_restful_async.redis.pubsub import PubSub  # noqa: F401
    from flask_restful_async.redis.scripts import Script  # noqa: F401
