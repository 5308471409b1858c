"""Running coroutines from synchronous code: one event loop per thread, reused.

Under a WSGI server the request runs in a worker thread with no event loop; an
AsyncResource's coroutine then runs on that thread's own loop, created on first use and
kept for the thread's lifetime (never one loop per request).
"""
import asyncio
import atexit
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Optional, TypeVar

__all__ = ["thread_loop", "run_coroutine_sync", "server_loop", "thread_pool"]

T = TypeVar("T")

_local = threading.local()
_helper_lock = threading.Lock()
_helper: Optional[ThreadPoolExecutor] = None


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's private event loop (created on first call, then reused)."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _run_on_thread_loop(awaitable: Awaitable[T]) -> T:
    loop = thread_loop()
    # The task copies the caller's context, so flask.request, g and friends are visible
    # inside the coroutine and across its awaits.
    task = loop.create_task(awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable))
    return loop.run_until_complete(task)


def _helper_pool() -> ThreadPoolExecutor:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fra-sync-bridge")
            atexit.register(_helper.shutdown, wait=False)
        return _helper


def run_coroutine_sync(awaitable: Awaitable[T]) -> T:
    """Run `awaitable` to completion from synchronous code and return its result.

    With no loop running in this thread it runs on the thread's own loop.  When a loop is
    already running here (sync code called from a coroutine), blocking it would deadlock,
    so the awaitable runs on a helper thread's loop, with this context copied, while this
    thread waits; it must then not depend on futures of the calling loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_thread_loop(awaitable)
    ctx = contextvars.copy_context()
    return _helper_pool().submit(ctx.run, _run_on_thread_loop, awaitable).result()


#: The loop of the server running this request (set by loop servers for the request and
#: for the worker threads they start), so sync code can hand coroutines back to it.
server_loop: "contextvars.ContextVar[Optional[asyncio.AbstractEventLoop]]" = \
    contextvars.ContextVar("fra_server_loop", default=None)

#: Our server's thread pool: `submit(fn)` gives an awaitable of fn() run there (the worker sets
#: it before serving; run_sync uses it); None under other servers.
thread_pool: "contextvars.ContextVar[Optional[Callable[[Callable[[], Any]], Awaitable[Any]]]]" = \
    contextvars.ContextVar("fra_thread_pool", default=None)
