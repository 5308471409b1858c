"""The ASGI lifespan protocol (spec 2.3): startup before the worker serves, shutdown after it
has drained.  Pure Python; runs once per worker, never per request."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from flask_restful_async.server.logs import logger as _default_logger

Message = dict[str, Any]


class Lifespan:
    """Drives one app's lifespan scope.  `state` is the dict the app may fill at startup; the
    server shallow-copies it into every request scope.

    An app that raises before it has received anything, or returns without answering, does
    not speak lifespan: that is logged at INFO and the worker serves anyway.  An app that
    raises after receiving `lifespan.startup` and before answering has failed its startup."""

    def __init__(self, app: Callable[..., Any], logger: logging.Logger = _default_logger) -> None:
        self.app = app
        self.log = logger
        self.state: dict[str, Any] = {}
        self.supported = True
        self._queue: Optional[asyncio.Queue[Message]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._startup: Optional[asyncio.Future[tuple[str, str]]] = None
        self._shutdown: Optional[asyncio.Future[tuple[str, str]]] = None
        self._received = 0
        self._shutting_down = False

    async def startup(self) -> bool:
        """Run the app's startup.  False when it failed (the reason is logged)."""
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "state": self.state}
        self._task = loop.create_task(self._run(scope))
        self._queue.put_nowait({"type": "lifespan.startup"})
        outcome, message = await self._startup
        if outcome == "failed":
            self.log.error("application startup failed%s", f": {message}" if message else "")
            return False
        if outcome == "complete":
            self.log.debug("application startup complete")
        return True

    async def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Run the app's shutdown, waiting at most `timeout` seconds.  False when it failed."""
        task = self._task
        if task is None or task.done() or self._queue is None or self._shutdown is None:
            return True
        self._shutting_down = True
        self._queue.put_nowait({"type": "lifespan.shutdown"})
        ok = True
        try:
            outcome, message = await asyncio.wait_for(asyncio.shield(self._shutdown), timeout)
        except asyncio.TimeoutError:
            self.log.warning("application shutdown did not finish within %ss; cancelled", timeout)
            ok = False
        else:
            if outcome == "failed":
                self.log.error("application shutdown failed%s", f": {message}" if message else "")
                ok = False
        if not task.done():
            # The app normally returns right after answering; give it that one step.
            await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        return ok

    async def cancel(self) -> None:
        """Stop the app's lifespan coroutine without a shutdown (after a failed startup)."""
        task = self._task
        if task is not None and not task.done():
            self._shutting_down = True   # frameworks may answer the cancellation
            task.cancel()
            await asyncio.wait({task})

    async def _receive(self) -> Message:
        assert self._queue is not None
        message = await self._queue.get()
        self._received += 1
        return message

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        futures = {"lifespan.startup.complete": (self._startup, "complete"),
                   "lifespan.startup.failed": (self._startup, "failed"),
                   "lifespan.shutdown.complete": (self._shutdown, "complete"),
                   "lifespan.shutdown.failed": (self._shutdown, "failed")}
        if kind not in futures:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        future, outcome = futures[kind]
        if future is None or future.done() or (future is self._shutdown and not self._shutting_down):
            raise RuntimeError(f"ASGI lifespan message {kind!r} sent out of order")
        future.set_result((outcome, str(message.get("message", ""))))

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._finished_with(exc)
        else:
            self._finished_with(None)

    def _finished_with(self, exc: Optional[BaseException]) -> None:
        """The app's lifespan coroutine ended; settle whatever is still awaited."""
        assert self._startup is not None and self._shutdown is not None
        if not self._startup.done():
            if exc is not None and self._received:
                self.log.error("application startup failed: exception in the app",
                               exc_info=(type(exc), exc, exc.__traceback__))
                self._startup.set_result(("failed", f"{type(exc).__name__}: {exc}"))
            else:
                why = "it returned without answering" if exc is None else \
                    f"it raised {type(exc).__name__}: {exc}"
                self.log.info("ASGI lifespan not supported by the app (%s); serving without it",
                              why)
                self.supported = False
                self._startup.set_result(("unsupported", ""))
        elif exc is not None:
            if self._startup.result()[0] == "failed" and not self._shutdown.done():
                # Frameworks raise after sending startup.failed; the message was logged.
                self.log.debug("lifespan exception after startup.failed",
                               exc_info=(type(exc), exc, exc.__traceback__))
            else:
                self.log.error("exception in the app's lifespan",
                               exc_info=(type(exc), exc, exc.__traceback__))
        if not self._shutdown.done():
            self._shutdown.set_result(("complete" if exc is None else "failed",
                                       "" if exc is None else f"{type(exc).__name__}: {exc}"))
