"""The server's settings: one dataclass, read from command-line flags and FRA_* environment
variables (a flag wins over its variable), with one-line errors that name the setting."""
from __future__ import annotations

import argparse
import math
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

try:
    # The ranges the C server accepts, defined once in C (csrc/core/server.c).
    from flask_restful_async._core import LIMITS as C_LIMITS, TIMEOUT_MAX as C_TIMEOUT_MAX
except ImportError:  # the C core is not built: --help and --version still work
    C_LIMITS, C_TIMEOUT_MAX = {}, None

PROG = "flask-restful-async"
ENV_PREFIX = "FRA_"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2            # bad flag, bad environment variable, bad MODULE:ATTR
EXIT_STARTUP_FAILED = 3   # the app's lifespan startup failed


class ConfigError(Exception):
    """A bad setting; str() is the single line shown to the user."""


def print_error(message: str) -> None:
    """Write the one-line error the CLI shows for a bad setting."""
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


@dataclass
class Config:
    """Everything `flask-restful-async run` was asked to do."""
    app: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    uds: Optional[str] = None
    fd: Optional[int] = None
    workers: int = 1
    threads: int = 16
    backlog: int = 2048
    interface: str = "auto"
    loop: str = "auto"
    timeout_header: float = 10.0
    timeout_keep_alive: float = 5.0
    timeout_body: float = 60.0
    timeout_write: float = 60.0
    timeout_graceful: float = 30.0
    limit_request_line: int = 8190
    limit_header_size: int = 32768
    limit_header_count: int = 100
    limit_body_size: int = 0
    limit_concurrency: int = 0
    access_log: bool = True
    log_level: str = "info"
    app_dir: str = "."
    reload: bool = False
    root_path: str = ""
    gc: str = "tuned"

    @property
    def supervised(self) -> bool:
        """True when a supervisor process runs the workers (several workers, or --reload)."""
        return self.workers > 1 or self.reload


# --- value parsers: each takes the raw string and returns the value, or raises ValueError
# --- whose text says what is accepted ("expected ...").

Parser = Callable[[str], Any]


def integer(lo: int, hi: Optional[int] = None) -> Parser:
    expected = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(expected) from None
        if value < lo or (hi is not None and value > hi):
            raise ValueError(expected)
        return value
    parse.expected = expected  # type: ignore[attr-defined]
    return parse


def limit(name: str, lo: int) -> Parser:
    """An integer in the range the C server gives the setting `name` (_core.LIMITS)."""
    lo, hi = C_LIMITS.get(name, (lo, None))
    return integer(lo, hi)


def seconds(allow_zero: bool) -> Parser:
    expected = "a number of seconds >= 0" if allow_zero else "a number of seconds > 0"
    if C_TIMEOUT_MAX is not None:
        expected += f" and at most {C_TIMEOUT_MAX}"

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(expected) from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or (
                C_TIMEOUT_MAX is not None and value > C_TIMEOUT_MAX):
            raise ValueError(expected)
        return value
    parse.expected = expected  # type: ignore[attr-defined]
    return parse


def choice(*values: str) -> Parser:
    expected = "one of " + ", ".join(values)

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in values:
            raise ValueError(expected)
        return value
    parse.expected = expected  # type: ignore[attr-defined]
    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(boolean.expected)  # type: ignore[attr-defined]


boolean.expected = "one of " + ", ".join(_TRUE + _FALSE)  # type: ignore[attr-defined]


def text(raw: str) -> str:
    return raw


text.expected = "a string"  # type: ignore[attr-defined]


def nonempty(raw: str) -> str:
    if not raw:
        raise ValueError("a non-empty string")
    return raw


nonempty.expected = "a non-empty string"  # type: ignore[attr-defined]


def app_spec(raw: str) -> str:
    module, sep, attr = raw.partition(":")
    if not sep or not module or not attr:
        raise ValueError(app_spec.expected)  # type: ignore[attr-defined]
    return raw


app_spec.expected = "MODULE:ATTR, e.g. myproject.app:app"  # type: ignore[attr-defined]


def root_path(raw: str) -> str:
    if raw and (not raw.startswith("/") or raw.endswith("/")):
        raise ValueError(root_path.expected)  # type: ignore[attr-defined]
    return raw


root_path.expected = "an empty string or a path that starts with / and does not end with /"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Option:
    """One setting: its Config field, how to parse it, and its help text."""
    field: str
    parse: Parser
    help: str
    metavar: Optional[str] = None
    switch: bool = False      # --x / --no-x instead of --x VALUE
    positional: bool = False  # given without a flag (MODULE:ATTR)

    @property
    def flag(self) -> str:
        """How the command line names it: '--port', or the metavar of a positional."""
        if self.positional:
            return self.field
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def accepts(self) -> str:
        return self.parse.expected  # type: ignore[attr-defined]


OPTIONS: tuple[Option, ...] = (
    Option("host", nonempty, "TCP host or address to bind", "HOST"),
    Option("port", integer(0, 65535), "TCP port to bind; 0 = any free port", "PORT"),
    Option("uds", nonempty, "bind a Unix domain socket at PATH instead of TCP", "PATH"),
    Option("fd", integer(0), "serve an inherited listening socket (TCP or Unix) by file "
           "descriptor instead of binding", "N"),
    Option("workers", integer(1, 1024), "number of worker processes; above 1 a supervisor "
           "process runs them", "N"),
    Option("threads", limit("threads", 1), "thread pool size per worker (WSGI apps, sync views, run_sync)",
           "N"),
    Option("backlog", integer(1, 65535), "listen(2) backlog", "N"),
    Option("interface", choice("auto", "asgi", "wsgi", "native"), "how to call the app; auto "
           "serves a Flask app with a flask_restful_async Api natively and tells ASGI from WSGI "
           "by the callable's signature; native calls the app with each request's exchange",
           "{auto,asgi,wsgi,native}"),
    Option("loop", choice("auto", "asyncio", "uvloop"), "asyncio event loop; auto = uvloop if "
           "it is installed", "{auto,asyncio,uvloop}"),
    Option("timeout_header", seconds(False), "seconds a client has to send complete request "
           "headers before the connection is closed", "SECONDS"),
    Option("timeout_keep_alive", seconds(False), "seconds an idle keep-alive connection is kept "
           "open", "SECONDS"),
    Option("timeout_body", seconds(False), "seconds without a byte of the request body while "
           "the app waits for it, before 408 and close", "SECONDS"),
    Option("timeout_write", seconds(False), "seconds a client may take no byte of a response "
           "waiting to be written before the connection is closed", "SECONDS"),
    Option("timeout_graceful", seconds(True), "seconds in-flight requests get to finish on "
           "SIGTERM/SIGINT (and the app's lifespan shutdown after them) before they are "
           "cancelled", "SECONDS"),
    Option("limit_request_line", limit("limit_request_line", 1), "longest request line in "
           "bytes (longer: 414)", "BYTES"),
    Option("limit_header_size", limit("limit_header_size", 1), "most bytes of all request "
           "header fields together (more: 431)", "BYTES"),
    Option("limit_header_count", limit("limit_header_count", 1), "most request header fields "
           "(more: 431)", "N"),
    Option("limit_body_size", limit("limit_body_size", 0), "largest request body in bytes, "
           "0 = unlimited (larger: 413)", "BYTES"),
    Option("limit_concurrency", limit("limit_concurrency", 0), "most open connections per "
           "worker, 0 = unlimited (more: 503 and close)", "N"),
    Option("access_log", boolean, "write one access log line per request to stdout",
           switch=True),
    Option("log_level", choice("critical", "error", "warning", "info", "debug"),
           "level of the server's log on stderr", "LEVEL"),
    Option("app_dir", nonempty, "directory put first on sys.path before importing the app; "
           "also the directory --reload watches", "DIR"),
    Option("reload", boolean, "restart the workers when a *.py file under --app-dir changes "
           "(development)", switch=True),
    Option("root_path", root_path, "ASGI root_path / WSGI SCRIPT_NAME the app is mounted at",
           "PATH"),
    Option("gc", choice("tuned", "python"), "garbage collector: tuned = after the app is "
           "loaded, freeze what it made (gc.freeze) and raise the young generation's threshold "
           "to 50000 unless the app set its own; python = leave it as Python sets it",
           "{tuned,python}"),
)

APP_OPTION = Option("app", app_spec, "the app to serve, MODULE:ATTR (ATTR may be a dotted "
                    "path; 'MODULE:factory()' calls a factory)", "MODULE:ATTR",
                    positional=True)

_DEFAULTS = Config()


class _Parser(argparse.ArgumentParser):
    """argparse with its multi-line usage-on-error replaced by a ConfigError."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments: "):
            extra = message.split(": ", 1)[1]
            kind = "unknown option" if extra.startswith("-") else "unexpected argument"
            message = f"{kind} {extra} (see '{PROG} run --help')"
        elif message.startswith("argument "):
            message = message[len("argument "):]
            if message.startswith("command: invalid choice"):
                message = "unknown command; expected 'run'"
        elif message.startswith("the following arguments are required: command"):
            message = "expected a command: 'run MODULE:ATTR'"
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for the whole CLI (used for parsing and for --help)."""
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="A C HTTP/1.1 server for ASGI and WSGI apps.")
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    sub = parser.add_subparsers(dest="command", metavar="command")
    run = sub.add_parser("run", prog=f"{PROG} run", allow_abbrev=False,
                         help="serve MODULE:ATTR",
                         description="Serve an ASGI or WSGI app. Every option can also be set "
                                     "by the environment variable shown; a flag wins.")
    run.add_argument("app", nargs="?", metavar=APP_OPTION.metavar,
                     help=f"{APP_OPTION.help} [env {APP_OPTION.env}]")
    for opt in OPTIONS:
        default = getattr(_DEFAULTS, opt.field)
        shown = "" if default is None else f"default {default!r}; "
        helptext = f"{opt.help} [{shown}env {opt.env}]"
        if opt.switch:
            run.add_argument(opt.flag, dest=opt.field, action=argparse.BooleanOptionalAction,
                             default=None, help=helptext)
        else:
            run.add_argument(opt.flag, dest=opt.field, default=None, metavar=opt.metavar,
                             help=helptext)
    return parser


def _value(opt: Option, given: Any, environ: Mapping[str, str]) -> tuple[Any, str]:
    """The option's value and where it came from (its flag, its env variable, or default)."""
    if given is not None:
        if isinstance(given, bool):
            return given, opt.flag
        raw, source = given, opt.flag
    elif environ.get(opt.env, "") != "":
        raw, source = environ[opt.env], opt.env
    else:
        return getattr(_DEFAULTS, opt.field), "default"
    try:
        return opt.parse(raw), source
    except ValueError as exc:
        raise ConfigError(f"{source}: expected {exc}, got {raw!r}") from None


def config_from_namespace(ns: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Combine parsed flags with the environment into a checked Config."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in (APP_OPTION,) + OPTIONS:
        values[opt.field], sources[opt.field] = _value(opt, getattr(ns, opt.field), environ)
    if not values["app"]:
        raise ConfigError(f"expected the app to serve, MODULE:ATTR (or set {APP_OPTION.env})")
    config = Config(**values)
    _check(config, sources)
    return config


def _check(config: Config, sources: dict[str, str]) -> None:
    """Checks that involve the system or more than one option."""
    if config.uds is not None and config.fd is not None:
        raise ConfigError(f"{sources['uds']} and {sources['fd']} cannot be used together")
    if config.fd is not None:
        try:
            mode = os.fstat(config.fd).st_mode
        except OSError:
            mode = 0
        if not stat.S_ISSOCK(mode):
            raise ConfigError(f"{sources['fd']}: expected an open socket file descriptor, "
                              f"got {config.fd} (not an open socket)")
    if not os.path.isdir(config.app_dir):
        raise ConfigError(f"{sources['app_dir']}: expected an existing directory, "
                          f"got {config.app_dir!r}")
    if config.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigError(f"{sources['loop']}: uvloop is not installed (pip install uvloop); "
                              "expected auto or asyncio") from None


def parse_args(argv: Optional[Sequence[str]] = None,
               environ: Optional[Mapping[str, str]] = None) -> tuple[str, Optional[Config]]:
    """Parse the command line: ("version", None) or ("run", Config).  Raises ConfigError."""
    ns = build_parser().parse_args(argv)
    if ns.version:
        return "version", None
    if ns.command is None:
        raise ConfigError("expected a command: 'run MODULE:ATTR'")
    return "run", config_from_namespace(ns, os.environ if environ is None else environ)

