"""The supervisor: binds the listening socket, forks N workers that serve it, replaces workers
that die, rolls them on SIGHUP (or on a source change with --reload) without dropping a
request, and drains them on SIGTERM/SIGINT.

The supervisor never imports the app, so a fork after a source change loads the new code."""
from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Optional

from flask_restful_async.server.config import EXIT_FAILURE, EXIT_OK, Config
from flask_restful_async.server.logs import logger
from flask_restful_async.server import worker
from flask_restful_async.server.worker import format_address, remove_stale_unix_socket

HANDLED_SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
MAX_RESPAWN_DELAY = 16.0      # seconds between attempts when replacements keep failing
KILL_MARGIN = 5.0             # after 2 x --timeout-graceful plus this, stragglers get SIGKILL


@dataclass(eq=False)
class WorkerProcess:
    """The supervisor's record of one worker."""
    pid: int
    ready_fd: int                          # read end of the worker's ready pipe, -1 once closed
    ready: bool = False
    retiring: bool = False                 # we asked it to stop; do not replace it
    replaces: Optional["WorkerProcess"] = None   # old worker to retire once this one is ready


def bind_socket(config: Config) -> socket.socket:
    """The listening socket all workers share: --fd as given, --uds, or --host/--port."""
    if config.fd is not None:
        sock = socket.socket(fileno=os.dup(config.fd))
    elif config.uds is not None:
        remove_stale_unix_socket(config.uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(config.uds)
    else:
        family, kind, proto, _, addr = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    sock.listen(config.backlog)
    return sock


def _scan_sources(root: str) -> dict[str, int]:
    """mtime of every *.py file under root, skipping hidden folders, caches and installs."""
    found: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and d not in ("__pycache__", "node_modules", "site-packages")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:
                    pass
    return found


class Supervisor:
    """Keeps `config.workers` workers serving one socket until SIGTERM/SIGINT."""

    def __init__(self, config: Config, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.workers: list[WorkerProcess] = []
        self.selector = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.stopping = False
        self.kill_at = 0.0
        self.ever_ready = False                # no worker has served yet: a failure is fatal
        self.exit_code = EXIT_OK
        self.respawn_at = 0.0
        self.respawn_delay = 1.0
        self.to_roll: list[WorkerProcess] = []
        self.sources: dict[str, int] = _scan_sources(config.app_dir) if config.reload else {}
        self.next_scan = 0.0
        self._wake_r, self._wake_w = os.pipe()

    # --- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until every worker has exited after a stop; returns the exit code."""
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self._note_signal)
        self.selector.register(self._wake_r, selectors.EVENT_READ)
        logger.debug("supervisor started: %d worker(s)%s", self.config.workers,
                    ", reloading on changes under " + os.path.abspath(self.config.app_dir)
                    if self.config.reload else "")
        try:
            while not (self.stopping and not self.workers):
                if not self.stopping:
                    self._spawn_missing()
                    self._roll_next()
                for key, _ in self.selector.select(self._timeout()):
                    if key.fd == self._wake_r:
                        self._drain_wakeup()
                    else:
                        self._read_ready(key.data)
                self._reap()
                self._handle_signals()
                self._check_sources()
                if self.stopping and self.workers and time.monotonic() >= self.kill_at:
                    for w in self.workers:
                        logger.warning("worker %d did not stop in time; killing it", w.pid)
                        self._kill(w, signal.SIGKILL)
                    self.kill_at = float("inf")
        finally:
            self._close()
        return self.exit_code

    def _timeout(self) -> Optional[float]:
        now = time.monotonic()
        deadlines = []
        if self.stopping:
            if self.kill_at != float("inf"):
                deadlines.append(self.kill_at)
        else:
            if self.config.reload:
                deadlines.append(self.next_scan)
            if self._missing() > 0 and self.ever_ready:
                deadlines.append(self.respawn_at)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _note_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _handle_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self._stop(sig)
            elif sig == signal.SIGHUP and not self.stopping:
                logger.info("SIGHUP: replacing workers one by one")
                self._begin_roll()

    # --- workers ---------------------------------------------------------------------------

    def _counted(self) -> list[WorkerProcess]:
        """Workers that count towards --workers (not leaving, not yet standing in for one)."""
        return [w for w in self.workers if not w.retiring and w.replaces is None]

    def _missing(self) -> int:
        return self.config.workers - len(self._counted())

    def _spawn_missing(self) -> None:
        missing = self._missing()
        if missing <= 0 or time.monotonic() < self.respawn_at:
            return
        if not self.ever_ready:
            # Start one worker first so a bad app is reported once, not once per worker.
            missing = 1 if not self.workers else 0
        for _ in range(missing):
            self._spawn()

    def _spawn(self, replaces: Optional[WorkerProcess] = None) -> WorkerProcess:
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._become_worker(ready_r, ready_w)
        os.close(ready_w)
        worker = WorkerProcess(pid, ready_r, replaces=replaces)
        self.workers.append(worker)
        self.selector.register(ready_r, selectors.EVENT_READ, worker)
        logger.debug("started worker %d", pid)
        return worker

    def _become_worker(self, ready_r: int, ready_w: int) -> None:
        """In the forked child: drop the supervisor's state and serve.  Never returns."""
        code = EXIT_FAILURE
        try:
            signal.set_wakeup_fd(-1)
            for sig in HANDLED_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)    # rolling is the supervisor's job
            self.selector.close()
            for fd in [ready_r, self._wake_r, self._wake_w] + [w.ready_fd for w in self.workers]:
                if fd >= 0:
                    os.close(fd)
            code = worker.run(self.config, listen_fd=self.sock.fileno(), ready_fd=ready_w)
        except KeyboardInterrupt:
            code = EXIT_OK
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _read_ready(self, worker: WorkerProcess) -> None:
        try:
            data = os.read(worker.ready_fd, 16)
        except OSError:
            data = b""
        self._close_ready_fd(worker)
        if not data:
            return   # died before serving; _reap() will hear of it
        worker.ready = True
        if not self.ever_ready:
            # Said only now, so that a bad app is reported by its one error line alone.
            logger.info("listening on %s", format_address(self.sock.getsockname()))
            self.ever_ready = True
        self.respawn_delay = 1.0
        logger.info("worker %d ready", worker.pid)
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            if old in self.workers and not old.retiring:
                self._retire(old)
            if not self.to_roll and not any(w.replaces for w in self.workers):
                logger.info("all workers replaced")

    def _close_ready_fd(self, worker: WorkerProcess) -> None:
        if worker.ready_fd >= 0:
            self.selector.unregister(worker.ready_fd)
            os.close(worker.ready_fd)
            worker.ready_fd = -1

    def _retire(self, worker: WorkerProcess) -> None:
        worker.retiring = True
        self._kill(worker, signal.SIGTERM)

    def _kill(self, worker: WorkerProcess, sig: int) -> None:
        try:
            os.kill(worker.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is not None:
                self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: WorkerProcess, code: int) -> None:
        self._close_ready_fd(worker)
        self.workers.remove(worker)
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        for other in self.workers:
            if other.replaces is worker:
                other.replaces = None       # it now stands on its own
        if worker.retiring or self.stopping:
            logger.debug("worker %d stopped (%s)", worker.pid, how)
            return
        if not worker.ready:
            if not self.ever_ready:
                # The worker has said why (one line for a bad app, the log for the rest).
                logger.debug("worker %d failed to start (%s); stopping", worker.pid, how)
                self.exit_code = code if code > 0 else EXIT_FAILURE
                self._stop(None)
                return
            logger.error("worker %d failed to start (%s)", worker.pid, how)
            if worker.replaces is not None:
                self.to_roll.clear()
                logger.error("replacement aborted; the old workers keep serving")
            else:
                self.respawn_at = time.monotonic() + self.respawn_delay
                self.respawn_delay = min(self.respawn_delay * 2, MAX_RESPAWN_DELAY)
            return
        logger.warning("worker %d died (%s); replacing it", worker.pid, how)

    def _begin_roll(self) -> None:
        """Replace every serving worker, one at a time."""
        for w in self.workers:
            if w.replaces is not None:     # a replacement still starting: start over
                w.replaces = None
                self._retire(w)
        self.to_roll = list(self._counted())

    def _roll_next(self) -> None:
        if any(w.replaces is not None for w in self.workers):
            return
        while self.to_roll:
            old = self.to_roll.pop(0)
            if old in self.workers and not old.retiring:
                self._spawn(replaces=old)
                return

    def _check_sources(self) -> None:
        if not self.config.reload or self.stopping or time.monotonic() < self.next_scan:
            return
        self.next_scan = time.monotonic() + 1.0
        now = _scan_sources(self.config.app_dir)
        if now != self.sources:
            changed = sorted(p for p in set(now) | set(self.sources)
                             if now.get(p) != self.sources.get(p))
            self.sources = now
            logger.info("changed: %s; restarting workers", ", ".join(
                os.path.relpath(p, self.config.app_dir) for p in changed[:5]))
            self.respawn_at = 0.0
            self._begin_roll()

    def _stop(self, sig: Optional[int]) -> None:
        if self.stopping:
            if sig in (signal.SIGINT, signal.SIGQUIT):
                for w in self.workers:     # a second Ctrl-C: no more draining
                    self._kill(w, signal.SIGQUIT)
            return
        if sig is not None:
            logger.info("%s: stopping %d worker(s)", signal.Signals(sig).name, len(self.workers))
        self.stopping = True
        self.to_roll.clear()
        self.kill_at = time.monotonic() + 2 * self.config.timeout_graceful + KILL_MARGIN
        for w in self.workers:
            w.retiring = True
            self._kill(w, signal.SIGQUIT if sig == signal.SIGQUIT else signal.SIGTERM)

    def _close(self) -> None:
        signal.set_wakeup_fd(-1)
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.sock.close()
        if self.config.uds is not None:
            try:
                os.unlink(self.config.uds)
            except OSError:
                pass


def run(config: Config) -> int:
    """Bind, supervise the workers, return the exit code."""
    try:
        sock = bind_socket(config)
    except OSError as exc:
        where = (f"fd {config.fd}" if config.fd is not None else
                 f"unix:{config.uds}" if config.uds is not None else
                 format_address((config.host, config.port)))
        logger.error("cannot listen on %s: %s", where, exc)
        return EXIT_FAILURE
    return Supervisor(config, sock).run()
