"""Pipelines and transactions, as redis-py's asyncio `Pipeline`::

    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("a", 1).incr("a")
        await pipe.execute()            # [True, 2]

Queued commands go out back to back in one write (`execute_many`): nothing else can come
between them on the connection, so a MULTI ... EXEC block is safe on the shared connection
that other coroutines are using at the same time.  `watch()` takes a dedicated connection (the
WATCH belongs to the connection) and puts the pipeline in immediate mode until `multi()`, as in
redis-py; a watched key that changed makes `execute()` raise `WatchError`."""
import builtins
from typing import Any, Dict, List, Optional, Sequence, Tuple

from flask_restful_async.redis.commands import BLOCKING_COMMANDS, CommandsMixin
from flask_restful_async.redis.connection import Pool, translate
from flask_restful_async.redis.exceptions import (DataError, ExecAbortError, RedisError,
                                                  ResponseError, WatchError)

__all__ = ["Pipeline"]

_CONNECTION_ERRORS = (builtins.ConnectionError, builtins.TimeoutError)


def _describe(args: Sequence[Any]) -> str:
    return " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
                    for a in args)


def _annotate(exc: BaseException, number: int, args: Sequence[Any]) -> BaseException:
    """redis-py's message for an error inside a pipeline: which command caused it."""
    if isinstance(exc, RedisError) and exc.args:
        exc.args = ("Command # %d (%s) of pipeline caused error: %s"
                    % (number, _describe(args)[:200], exc.args[0]),) + exc.args[1:]
    return exc


class Pipeline(CommandsMixin):
    """Commands queued until `execute()`."""

    def __init__(self, client: Any, transaction: bool = True) -> None:
        self.client = client
        self.transaction = transaction
        self._queue: List[Tuple[Tuple[Any, ...], Dict[str, Any]]] = []
        self._pool: Optional[Pool] = None
        self._conn: Any = None          # the dedicated connection while watching
        self.watching = False
        self.explicit_transaction = False

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return True

    def __await__(self) -> Any:
        async def itself() -> "Pipeline":
            return self
        return itself().__await__()

    async def __aenter__(self) -> "Pipeline":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.reset()

    # ---- queueing -------------------------------------------------------------------------

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command (returns the pipeline, for chaining); after `watch()` and before
        `multi()`, run it at once on the watching connection (returns an awaitable)."""
        if self.watching and not self.explicit_transaction:
            return self._immediate(args, options)
        self._queue.append((args, options))
        return self

    def multi(self) -> None:
        """Start queueing the transaction (after `watch()`)."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue nested calls to MULTI")
        if self._queue:
            raise RedisError("Commands without an initial WATCH have already been issued")
        self.explicit_transaction = True

    async def _immediate(self, args: Sequence[Any], options: Dict[str, Any]) -> Any:
        client = self.client
        cmd, args = await client._prepare(self._pool, args, options)
        try:
            reply = await self._conn.execute(args, client.socket_timeout)
        except TypeError as exc:
            raise DataError(str(exc)) from None
        except _CONNECTION_ERRORS as exc:
            await self._drop_connection()
            raise translate(exc) from None
        return client._shape(cmd, reply, options)

    # ---- WATCH ----------------------------------------------------------------------------

    async def watch(self, *names: Any) -> bool:
        """WATCH keys on a connection of the pipeline's own."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue a WATCH after a MULTI")
        if self._conn is None:
            self._pool = self.client._pool()
            self._conn = await self._pool.acquire()
        self.watching = True
        return await self._immediate(("WATCH", *names), {})

    async def unwatch(self) -> bool:
        if not self.watching:
            return True
        result = await self._immediate(("UNWATCH",), {})
        self.watching = False
        return result

    async def reset(self) -> None:
        """Forget queued commands and give back the watching connection."""
        self._queue = []
        self.explicit_transaction = False
        conn, self._conn = self._conn, None
        if conn is not None:
            reusable = conn.connected
            if self.watching and reusable:
                try:
                    await conn.execute(("UNWATCH",), self.client.socket_timeout)
                except BaseException:
                    reusable = False
            self._pool.release(conn, reusable)  # type: ignore[union-attr]
        self.watching = False

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self.watching = False
        if conn is not None:
            self._pool.release(conn, False)  # type: ignore[union-attr]

    # ---- execute --------------------------------------------------------------------------

    async def execute(self, raise_on_error: bool = True) -> List[Any]:
        """Send the queued commands and return their results in order (an error reply raises
        the first error when raise_on_error, else stands in its place)."""
        queue, self._queue = self._queue, []
        if not queue and not self.watching:
            return []
        client = self.client
        pool = self._pool or client._pool()
        self._pool = pool
        try:
            prepared = [await client._prepare(pool, args, options) for args, options in queue]
            commands = [args for _, args in prepared]
            transaction = self.transaction or self.explicit_transaction
            if transaction:
                replies = await self._run(pool, [("MULTI",), *commands, ("EXEC",)], commands)
                results = self._exec_results(replies, commands, prepared)
            else:
                results = await self._run(pool, commands, commands)
            shaped = []
            for (cmd, _), (_, options), reply in zip(prepared, queue, results):
                shaped.append(client._shape(cmd, reply, options))
            if raise_on_error:
                for number, (reply, args) in enumerate(zip(shaped, commands), 1):
                    if isinstance(reply, BaseException):
                        raise _annotate(reply, number, args)
            return shaped
        finally:
            self.explicit_transaction = False
            if self._conn is not None:
                self.watching = False  # EXEC (or DISCARD) ends the WATCH
                conn, self._conn = self._conn, None
                pool.release(conn, conn.connected and conn.pending == 0)

    async def _run(self, pool: Pool, batch: List[Sequence[Any]],
                   commands: List[Sequence[Any]]) -> List[Any]:
        """The batch on the watching connection, else a dedicated one when it holds a blocking
        command outside a transaction (it would stall the shared one), else the shared one."""
        client = self.client
        conn, dedicated = self._conn, False
        if conn is None:
            blocking = (not self.transaction and any(
                str(args[0]).upper() in BLOCKING_COMMANDS for args in commands))
            if blocking:
                conn, dedicated = await pool.acquire(), True
            else:
                link = pool.shared()
                conn = link.conn or await link.ready()
        timeout = None if dedicated else client.socket_timeout
        reusable = False
        try:
            replies = await conn.execute_many(batch, timeout)
            reusable = True
            return replies
        except TypeError as exc:
            reusable = True
            raise DataError(str(exc)) from None
        except _CONNECTION_ERRORS as exc:
            raise translate(exc) from None
        finally:
            if dedicated:
                pool.release(conn, reusable)

    def _exec_results(self, replies: List[Any], commands: List[Sequence[Any]],
                      prepared: List[Tuple[str, Sequence[Any]]]) -> List[Any]:
        """MULTI's, each QUEUED's and EXEC's replies -> the commands' results."""
        exec_reply = replies[-1]
        if isinstance(exec_reply, BaseException):
            # EXECABORT: a command was refused while queueing; raise that one
            for number, (queued, args) in enumerate(zip(replies[1:-1], commands), 1):
                if isinstance(queued, BaseException):
                    raise _annotate(queued, number, args)
            if isinstance(exec_reply, ExecAbortError):
                raise exec_reply
            raise exec_reply
        if exec_reply is None:
            raise WatchError("Watched variable changed.")
        if len(exec_reply) != len(commands):
            raise ResponseError("Wrong number of response items from pipeline execution")
        return list(exec_reply)
