"""Every limit has one range, defined in C and exported as _core.LIMITS; the C API
(_core.Server keyword arguments) and the command line accept exactly that range.  Before,
PyArg's "I" silently truncated values above 2**32 and the CLI accepted any size."""
import asyncio
import math

import pytest

from _util_cli import run_cli
from flask_restful_async import _core
from flask_restful_async.server.config import ConfigError, parse_args

LIMITS = sorted(_core.LIMITS.items())


def make_server(**kw):
    loop = asyncio.new_event_loop()
    try:
        _core.Server(lambda *a: None, loop, interface="asgi", **kw).close()
    finally:
        loop.close()


def cli_value(name, value):
    flag = "--" + name.replace("_", "-")
    _, config = parse_args(["run", "app:app", flag, str(value)], environ={})
    return getattr(config, name)


def test_the_ranges_cover_every_numeric_setting():
    assert set(_core.LIMITS) == {"limit_request_line", "limit_header_size", "limit_header_count",
                                 "limit_body_size", "limit_concurrency", "threads"}


@pytest.mark.parametrize("name,bounds", LIMITS, ids=[n for n, _ in LIMITS])
def test_each_limit_boundary_through_c_and_cli(name, bounds):
    lo, hi = bounds
    for ok in (lo, hi):
        make_server(**{name: ok})
        assert cli_value(name, ok) == ok
    for bad in (lo - 1, hi + 1, hi * 2**32 + 1):
        with pytest.raises(ValueError, match=name):
            make_server(**{name: bad})
        with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
            cli_value(name, bad)
    with pytest.raises(TypeError):
        make_server(**{name: float(lo)})


def test_a_request_line_limit_c_cannot_hold_is_refused_by_the_cli():
    too_big = _core.LIMITS["limit_request_line"][1] + 1
    result = run_cli(["run", "flask_app:app", "--limit-request-line", str(too_big)])
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "--limit-request-line" in line, result.stderr


@pytest.mark.parametrize("name", ["timeout_header", "timeout_keep_alive", "timeout_body",
                                  "timeout_write"])
def test_timeouts_through_c_and_cli(name):
    hi = _core.TIMEOUT_MAX
    for ok in (0.001, float(hi)):
        make_server(**{name: ok})
        assert cli_value(name, ok) == ok
    make_server(**{name: 0.0})              # C: no timeout; the CLI asks for one
    for bad in (-1.0, hi + 1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match=name):
            make_server(**{name: bad})
        with pytest.raises(ConfigError):
            cli_value(name, bad)
