"""The server's log: stderr, one line per record, `[pid] LEVEL message`.  Access log lines are
written by the C core to stdout and do not pass through here."""
from __future__ import annotations

import logging
import sys

LOGGER_NAME = "flask_restful_async"

logger = logging.getLogger(LOGGER_NAME)


def setup_logging(level: str) -> logging.Logger:
    """Send the server's log records at `level` and above to stderr; returns the logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(process)d] %(levelname)s %(message)s"))
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def log_app_error(message: str, exc: BaseException) -> None:
    """on_error hook for the C core: log an exception from the app with its traceback."""
    logger.error(message, exc_info=(type(exc), exc, exc.__traceback__))
