"""The blocked-loop report: a handler step that holds the event loop longer than a threshold
is logged with its endpoint and the stack it is blocked in (FRA_BLOCKED_LOOP_MS)."""
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Optional, Tuple

__all__ = ["LoopWatchdog", "blocked_loop_threshold", "watchdog_for"]

logger = logging.getLogger("flask_restful_async")


def blocked_loop_threshold(app: Any) -> Optional[float]:
    """Seconds a handler step may hold the loop before it is reported: the environment
    variable FRA_BLOCKED_LOOP_MS, else app.config['FRA_BLOCKED_LOOP_MS']; None (off)
    when neither is set or the value is 0.  A bad value raises ValueError naming it."""
    raw = os.environ.get("FRA_BLOCKED_LOOP_MS", "") or app.config.get("FRA_BLOCKED_LOOP_MS")
    if not raw:
        return None
    try:
        ms = float(raw)
    except ValueError:
        raise ValueError("FRA_BLOCKED_LOOP_MS: expected milliseconds, got %r" % raw) from None
    return ms / 1000.0 if ms > 0 else None


class LoopWatchdog:
    """Reports a handler step that holds the event loop longer than `threshold` seconds,
    with its endpoint and the stack it is blocked in (sampled from a watchdog thread)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._step: Optional[Tuple[int, float, str, int]] = None  # (seq, start, endpoint, tid)
        self._seq = 0
        self._thread: Optional[threading.Thread] = None

    def enter(self, endpoint: str) -> None:
        self._seq += 1
        self._step = (self._seq, time.monotonic(), endpoint, threading.get_ident())
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="fra-loop-watchdog",
                                            daemon=True)
            self._thread.start()

    def leave(self) -> None:
        self._step = None

    def _watch(self) -> None:
        reported = 0
        interval = max(self.threshold / 4.0, 0.001)
        while True:
            time.sleep(interval)
            step = self._step
            if step is None or step[0] == reported:
                continue
            seq, start, endpoint, tid = step
            held = time.monotonic() - start
            if held < self.threshold:
                continue
            frame = sys._current_frames().get(tid)
            if self._step is not step or frame is None:
                continue  # the step ended meanwhile
            stack = "".join(traceback.format_stack(frame))
            del frame
            reported = seq
            logger.warning("handler for endpoint %r has blocked the event loop for %.0f ms "
                           "(threshold %.0f ms); it is at:\n%s", endpoint, held * 1000.0,
                           self.threshold * 1000.0, stack.rstrip())


def watchdog_for(app: Any) -> Optional[LoopWatchdog]:
    """The app's watchdog, or None when the report is off."""
    threshold = blocked_loop_threshold(app)
    return LoopWatchdog(threshold) if threshold else None
