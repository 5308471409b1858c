"""`flask-restful-async run MODULE:ATTR [options]` (also `python -m flask_restful_async`)."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from flask_restful_async import __version__
from flask_restful_async.server.config import (EXIT_OK, EXIT_USAGE, PROG, ConfigError,
                                               parse_args, print_error)
from flask_restful_async.server.logs import setup_logging

try:
    from flask_restful_async import _core
except ImportError:  # not built: --version and --help still answer
    _core = None


def versions() -> str:
    """The package version, plus the C core's when it is built."""
    if _core is None:
        return f"{PROG} {__version__} (C core not built)"
    return f"{PROG} {__version__} ({_core.version()})"


def run_cli(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and run it; returns the process exit code."""
    try:
        command, config = parse_args(argv)
    except ConfigError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    if command == "version" or config is None:
        print(versions())
        return EXIT_OK
    setup_logging(config.log_level)
    # (imported here, not above: both need the C core, which --version and --help do not)
    if config.supervised:
        from flask_restful_async.server import supervisor
        return supervisor.run(config)
    from flask_restful_async.server import worker
    return worker.run(config)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point: run the CLI and exit with its code."""
    try:
        code = run_cli(argv)
    except KeyboardInterrupt:
        code = 130   # Ctrl-C before the worker took over SIGINT (e.g. during app import)
    sys.exit(code)
