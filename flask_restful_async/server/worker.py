"""One worker process: an event loop, the app's lifespan, one C Server; drains on SIGTERM."""
from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import stat
import sys
from typing import Any, Callable, Optional

from flask_restful_async import _core
from flask_restful_async.loops import server_loop, thread_pool
from flask_restful_async.server.config import (EXIT_FAILURE, EXIT_OK, EXIT_STARTUP_FAILED,
                                               EXIT_USAGE, Config, ConfigError, print_error)
from flask_restful_async.server.lifespan import Lifespan
from flask_restful_async.server.loader import detect_interface, load_app
from flask_restful_async.server.logs import log_app_error, logger


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop: 'asyncio', 'uvloop', or 'auto' (uvloop when installed)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("--loop: uvloop is not installed (pip install uvloop); "
                                  "expected auto or asyncio") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def format_address(addr: Any) -> str:
    """'http://host:port' for a TCP address, 'unix:path' for a Unix socket path."""
    if isinstance(addr, (tuple, list)):
        host, port = addr[0], addr[1]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"
    if isinstance(addr, bytes):
        addr = addr.decode(errors="replace")
    return f"unix:{addr}"


def remove_stale_unix_socket(path: str) -> None:
    """Unlink a Unix socket file left behind by a dead server (nobody accepts on it)."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


#: the collector's thresholds as the interpreter set them (read before any app is imported)
_PYTHON_GC_THRESHOLD = gc.get_threshold()
#: the young generation's threshold with --gc tuned
TUNED_GC_THRESHOLD = 50000


def tune_gc(mode: str) -> None:
    """--gc tuned: everything alive once the app is loaded (modules, the app, its routes) is
    frozen, so full collections no longer rescan it; and the young generation gets room for
    the objects of many requests in flight, so the ones that finish inside a collection's
    window are never promoted (with Python's 700, a request awaiting I/O outlives several
    young collections and its objects reach the old generation, making full collections
    frequent).  Settings the app made itself (gc.disable(), gc.set_threshold()) are kept."""
    if mode != "tuned":
        return
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    if gc.isenabled() and threshold == _PYTHON_GC_THRESHOLD \
            and threshold[0] < TUNED_GC_THRESHOLD:
        gc.set_threshold(TUNED_GC_THRESHOLD, *threshold[1:])


class Worker:
    """Serves `config.app` in this process until SIGTERM/SIGINT (or SIGQUIT, no draining).

    The loop runs without a break from before the app's startup to after its shutdown, so a
    signal is never left waiting on a loop that is not running (uvloop drops those)."""

    def __init__(self, config: Config, listen_fd: Optional[int] = None,
                 ready_fd: Optional[int] = None) -> None:
        self.config = config
        self.listen_fd = listen_fd if listen_fd is not None else config.fd
        self.ready_fd = ready_fd            # supervised: write one byte here once serving
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.server: Any = None
        self.lifespan: Optional[Lifespan] = None
        self._stop: Optional[asyncio.Event] = None
        self._force: Optional[asyncio.Event] = None
        self._unix_path: Optional[str] = None

    def run(self) -> int:
        """Serve until told to stop; returns the process exit code."""
        try:
            app = load_app(self.config.app, self.config.app_dir)
            interface = self.config.interface
            if interface in ("auto", "asgi", "native") and "flask" in sys.modules:
                # A Flask app with our Api (or the ASGI adapter around one) is served
                # natively: views that run on the loop there, everything else in the thread
                # pool.  Imported only when the app imported Flask: other apps never do here.
                from flask_restful_async.server_app import ServerApp
                native = ServerApp.for_app(app, adapter_only=interface == "asgi")
                if native is not None:
                    interface, app = "native", native
            if interface == "auto":
                interface = detect_interface(app)
            self.loop = new_event_loop(self.config.loop)
            tune_gc(self.config.gc)
        except ConfigError as exc:
            if exc.__cause__ is not None:
                logger.debug("app loading failed", exc_info=exc.__cause__)
            print_error(str(exc))
            return EXIT_USAGE
        logger.debug("serving %s as %s on %s", self.config.app, interface,
                     type(self.loop).__module__)
        asyncio.set_event_loop(self.loop)
        try:
            return self.loop.run_until_complete(self._main(app, interface))
        finally:
            self._close()

    async def _main(self, app: Callable[..., Any], interface: str) -> int:
        loop = asyncio.get_running_loop()
        self._stop, self._force = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        if self.ready_fd is None:   # alone, with no supervisor to roll workers
            loop.add_signal_handler(signal.SIGHUP, logger.warning, "SIGHUP ignored: rolling "
                                    "workers needs a supervisor (--workers N or --reload)")
        state: Optional[dict] = None
        if interface == "asgi":
            self.lifespan = Lifespan(app)
            if not await self.lifespan.startup():
                return EXIT_STARTUP_FAILED
            if self.lifespan.supported:
                state = self.lifespan.state
        if self._stop.is_set():      # told to stop while the app was starting: never serve
            await self._lifespan_shutdown()
            return EXIT_OK
        cfg = self.config
        self.server = _core.Server(
            app, loop, interface=interface, threads=cfg.threads,
            limit_request_line=cfg.limit_request_line, limit_header_size=cfg.limit_header_size,
            limit_header_count=cfg.limit_header_count, limit_body_size=cfg.limit_body_size,
            limit_concurrency=cfg.limit_concurrency, timeout_header=cfg.timeout_header,
            timeout_keep_alive=cfg.timeout_keep_alive, timeout_body=cfg.timeout_body,
            timeout_write=cfg.timeout_write,
            access_log_fd=1 if cfg.access_log else -1, root_path=cfg.root_path, state=state,
            on_error=log_app_error, multiprocess=cfg.workers > 1,
            # the core's own warnings (access log lines dropped) honour --log-level too
            log_fd=2 if logger.isEnabledFor(logging.WARNING) else -1)
        # Every request's context is copied from this one at start(): run_async finds the
        # loop there, run_sync the server's thread pool.
        server_loop.set(loop)
        thread_pool.set(self.server.submit)
        try:
            self._listen()
        except OSError as exc:
            logger.error("cannot listen on %s: %s", self._where(), exc)
            await self._lifespan_shutdown()
            return EXIT_FAILURE
        self.server.start()
        if self.ready_fd is None:
            for addr in self.server.sockname():
                logger.info("listening on %s", format_address(addr))
        else:
            os.write(self.ready_fd, b"1")
            os.close(self.ready_fd)
            self.ready_fd = None
        await self._stop.wait()
        await self._drain()
        return EXIT_OK

    def _where(self) -> str:
        cfg = self.config
        if self.listen_fd is not None:
            return f"fd {self.listen_fd}"
        if cfg.uds is not None:
            return f"unix:{cfg.uds}"
        return format_address((cfg.host, cfg.port))

    def _listen(self) -> None:
        cfg = self.config
        if self.listen_fd is not None:
            self.server.listen_fd(self.listen_fd, cfg.backlog)
        elif cfg.uds is not None:
            remove_stale_unix_socket(cfg.uds)
            self.server.listen_unix(cfg.uds, cfg.backlog)
            self._unix_path = cfg.uds
        else:
            self.server.listen_tcp(cfg.host, cfg.port, cfg.backlog)

    def _on_signal(self, sig: int) -> None:
        assert self._stop is not None and self._force is not None
        if self._stop.is_set():
            if sig in (signal.SIGINT, signal.SIGQUIT):
                self._force.set()      # a second Ctrl-C: stop waiting for requests
            return
        self._stop.set()
        if sig == signal.SIGQUIT:
            self._force.set()
        if self.server is not None:
            # Drain now, on the loop thread, so the log line below is only ever seen once new
            # responses carry Connection: close (shutdown() is idempotent; _drain waits on it).
            self.server.shutdown()
            logger.info("%s: shutting down (draining for at most %ss)",
                        signal.Signals(sig).name,
                        0 if self._force.is_set() else self.config.timeout_graceful)

    async def _drain(self) -> None:
        """Stop accepting, let in-flight requests finish, cancel what is left, shut down."""
        assert self._force is not None
        done = self.server.shutdown()
        if not self._force.is_set():
            forced = asyncio.ensure_future(self._force.wait())
            await asyncio.wait({done, forced}, timeout=self.config.timeout_graceful,
                               return_when=asyncio.FIRST_COMPLETED)
            forced.cancel()
        if not done.done():
            logger.warning("cancelling %d connection(s) still open", self.server.connections())
            self.server.cancel_all()
        await self._lifespan_shutdown()

    async def _lifespan_shutdown(self) -> None:
        if self.lifespan is not None:
            lifespan, self.lifespan = self.lifespan, None
            await lifespan.shutdown(self.config.timeout_graceful)

    def _close(self) -> None:
        loop = self.loop
        if self.lifespan is not None and loop is not None and not loop.is_closed():
            loop.run_until_complete(self.lifespan.cancel())
            self.lifespan = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._unix_path is not None:
            try:
                os.unlink(self._unix_path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    logger.warning("cannot remove %s: %s", self._unix_path, exc)
        if loop is not None and not loop.is_closed():
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
        if self.ready_fd is not None:
            os.close(self.ready_fd)
            self.ready_fd = None


def run(config: Config, listen_fd: Optional[int] = None, ready_fd: Optional[int] = None) -> int:
    """Run one worker in this process; returns its exit code."""
    return Worker(config, listen_fd, ready_fd).run()
