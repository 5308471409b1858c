"""The command line: settings from flags and FRA_* variables, one-line errors with exit code
2, app loading and --interface auto, and serving on TCP, a Unix socket and an inherited fd."""
from __future__ import annotations

import re
import signal
import socket

import pytest

from _util_cli import (APPS, REPO, app_args, clean_env, launch, request, run_cli,  # noqa: F401
                       single_error_line)
from flask_restful_async.server.config import OPTIONS

# --- bad values: exactly one stderr line naming the option, exit code 2 -------------------

BAD_FLAGS = [
    (["--port", "abc"], "--port", "an integer from 0 to 65535"),
    (["--port", "65536"], "--port", "an integer from 0 to 65535"),
    (["--port=-1"], "--port", "an integer from 0 to 65535"),
    (["--workers", "0"], "--workers", "an integer from 1"),
    (["--threads", "many"], "--threads", "an integer from 1"),
    (["--backlog", "0"], "--backlog", "an integer from 1"),
    (["--fd", "x"], "--fd", "an integer >= 0"),
    (["--fd", "999"], "--fd", "open socket"),
    (["--interface", "cgi"], "--interface", "one of auto, asgi, wsgi"),
    (["--loop", "trio"], "--loop", "one of auto, asyncio, uvloop"),
    (["--timeout-header", "0"], "--timeout-header", "a number of seconds > 0"),
    (["--timeout-keep-alive", "soon"], "--timeout-keep-alive", "a number of seconds > 0"),
    (["--timeout-graceful", "-1"], "--timeout-graceful", "a number of seconds >= 0"),
    (["--timeout-graceful", "inf"], "--timeout-graceful", "a number of seconds >= 0"),
    (["--limit-request-line", "0"], "--limit-request-line", "an integer from 1 to 2147483647"),
    (["--limit-header-size", "1k"], "--limit-header-size", "an integer from 1 to 2147483647"),
    (["--limit-header-count", "1.5"], "--limit-header-count", "an integer from 1 to 2147483647"),
    (["--limit-body-size", "-5"], "--limit-body-size", "an integer from 0 to 18446744073709551615"),
    (["--limit-concurrency", "lots"], "--limit-concurrency", "an integer from 0 to 2147483647"),
    (["--log-level", "verbose"], "--log-level", "one of critical, error, warning, info, debug"),
    (["--app-dir", "/nonexistent/dir"], "--app-dir", "an existing directory"),
    (["--root-path", "api"], "--root-path", "starts with /"),
    (["--gc", "off"], "--gc", "one of tuned, python"),
    (["--host", ""], "--host", "a non-empty string"),
    (["--uds", "/tmp/x.sock", "--fd", "0"], "--uds and --fd", "cannot be used together"),
    (["--port"], "--port", "expected one argument"),
    (["--no-such-option"], "--no-such-option", "unknown option"),
    (["--por", "1"], "--por", "unknown option"),  # no abbreviations
]


@pytest.mark.parametrize("args,name,accepts", BAD_FLAGS, ids=[" ".join(a) for a, _, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_and_exit_2(args, name, accepts):
    result = run_cli(["run", "flask_app:app", "--app-dir", str(APPS), *args])
    assert result.returncode == 2
    line = single_error_line(result)
    assert name in line and accepts in line
    assert result.stdout == ""


BAD_ENV = [
    ("FRA_PORT", "http", "an integer from 0 to 65535"),
    ("FRA_WORKERS", "-2", "an integer from 1"),
    ("FRA_TIMEOUT_KEEP_ALIVE", "five", "a number of seconds > 0"),
    ("FRA_LIMIT_BODY_SIZE", "10MB", "an integer from 0 to 18446744073709551615"),
    ("FRA_ACCESS_LOG", "maybe", "one of 1, true, yes, on, 0, false, no, off"),
    ("FRA_RELOAD", "sometimes", "one of 1, true"),
    ("FRA_INTERFACE", "rsgi", "one of auto, asgi, wsgi"),
    ("FRA_LOG_LEVEL", "loud", "one of critical"),
    ("FRA_GC", "none", "one of tuned, python"),
    ("FRA_APP", "no_colon", "MODULE:ATTR"),
]


@pytest.mark.parametrize("var,value,accepts", BAD_ENV, ids=[v for v, _, _ in BAD_ENV])
def test_bad_env_value_is_one_line_naming_the_variable(var, value, accepts):
    args = ["run", "--app-dir", str(APPS)] + ([] if var == "FRA_APP" else ["flask_app:app"])
    result = run_cli(args, env=clean_env(**{var: value}))
    assert result.returncode == 2
    line = single_error_line(result)
    assert f"{var}: expected {accepts}" in line and repr(value) in line


def test_flag_wins_over_env():
    # FRA_PORT is bad but --port is given, so the error that remains is the one about the app.
    result = run_cli(["run", "no_such_module:app", "--port", "0", "--app-dir", str(APPS)],
                     env=clean_env(FRA_PORT="bad", FRA_LOG_LEVEL="nope"))
    assert result.returncode == 2
    line = single_error_line(result)
    assert "FRA_PORT" not in line and "FRA_LOG_LEVEL" in line
    result = run_cli(["run", "no_such_module:app", "--port", "0", "--log-level", "info",
                      "--app-dir", str(APPS)], env=clean_env(FRA_PORT="bad", FRA_LOG_LEVEL="nope"))
    assert result.returncode == 2
    assert "no module named 'no_such_module'" in single_error_line(result)


@pytest.mark.parametrize("args,needle", [
    ([], "expected a command"),
    (["serve", "x:y"], "unknown command"),
    (["run"], "expected the app to serve"),
    (["run", "flask_app"], "app: expected MODULE:ATTR"),
    (["run", "flask_app:app", "extra"], "unexpected argument extra"),
])
def test_usage_errors_are_one_line(args, needle):
    result = run_cli(args)
    assert result.returncode == 2
    assert needle in single_error_line(result)


def test_uvloop_requested_but_missing(tmp_path):
    # A uvloop that cannot be imported stands in for one that is not installed.
    (tmp_path / "uvloop.py").write_text("raise ImportError('not here (test)')\n")
    env = clean_env(PYTHONPATH=str(tmp_path))
    for args, name in ((["--loop", "uvloop"], "--loop"), ([], "FRA_LOOP")):
        run_env = dict(env, FRA_LOOP="uvloop") if not args else env
        result = run_cli(["run", "flask_app:app", "--app-dir", str(APPS), *args], env=run_env)
        assert result.returncode == 2
        line = single_error_line(result)
        assert line.startswith(f"flask-restful-async: error: {name}: uvloop is not installed")


# --- the app: MODULE:ATTR ----------------------------------------------------------------

@pytest.mark.parametrize("spec,needle", [
    ("no_such_module:app", "cannot import 'no_such_module': no module named 'no_such_module'"),
    ("flask_app:nope", "module 'flask_app' has no attribute 'nope'"),
    ("flask_app:app.nope", "module 'flask_app' has no attribute 'app.nope'"),
    ("odd_apps:not_callable", "odd_apps:not_callable is not callable"),
    ("odd_apps:variadic", "pass --interface asgi or --interface wsgi"),
    ("raises_at_import:app", "RuntimeError: boom at import (test) (at "),
])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_app_is_one_line_and_exit_2(spec, needle, workers):
    result = run_cli(["run", spec, "--app-dir", str(APPS), "--port", "0", "--workers", workers])
    assert result.returncode == 2
    assert needle in single_error_line(result)


def test_help_lists_every_option():
    result = run_cli(["run", "--help"])
    assert result.returncode == 0
    for opt in OPTIONS:
        assert opt.flag in result.stdout and opt.env in result.stdout


def test_docs_describe_every_option():
    text = (REPO / "docs" / "cli.md").read_text()
    for opt in OPTIONS:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{opt.flag}")), "")
        assert opt.env in row, f"docs/cli.md has no row for {opt.flag} naming {opt.env}"


def test_version():
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("flask-restful-async ")


# --- serving -------------------------------------------------------------------------------

INTERFACES = [
    ("flask_app:app", "wsgi", "flask"),
    ("flask_app:create_app()", "wsgi", "flask"),
    ("starlette_app:app", "asgi", "starlette"),
    ("quart_app:app", "asgi", "quart"),
    ("raw_asgi:app", "asgi", "raw-asgi"),
]


@pytest.mark.parametrize("spec,interface,name", INTERFACES, ids=[s for s, _, _ in INTERFACES])
def test_interface_auto(launch, spec, interface, name):
    server = launch(*app_args(spec, "--log-level", "debug"))
    server.wait_for(rf"serving {re.escape(spec)} as {interface} ")
    response = request(server.address())
    assert response.status == 200
    assert response.json()["app"] == name


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_explicit_interface_and_loop(launch, loop):
    server = launch(*app_args("raw_asgi:app", "--interface", "asgi", "--loop", loop,
                              "--log-level", "debug"))
    server.wait_for(rf"as asgi on {loop}")
    assert request(server.address(), "/x").json()["path"] == "/x"


def test_settings_from_environment_only(launch):
    server = launch(env=clean_env(FRA_APP="raw_asgi:app", FRA_APP_DIR=str(APPS), FRA_PORT="0",
                                  FRA_HOST="127.0.0.1", FRA_LOG_LEVEL="debug"))
    server.wait_for(r"serving raw_asgi:app as asgi")
    host, port = server.address()
    assert host == "127.0.0.1" and port > 0
    assert request((host, port)).status == 200


def test_unix_socket(launch, tmp_path):
    path = str(tmp_path / "s.sock")
    server = launch("raw_asgi:app", "--app-dir", str(APPS), "--uds", path)
    assert server.address() == path
    assert request(path, "/over-unix").json()["path"] == "/over-unix"
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not (tmp_path / "s.sock").exists()


def test_stale_unix_socket_file_is_replaced(launch, tmp_path):
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)          # bound, never listening, then closed: what a crash leaves behind
    stale.close()
    server = launch("raw_asgi:app", "--app-dir", str(APPS), "--uds", path)
    assert request(server.address()).status == 200


@pytest.mark.parametrize("workers", ["1", "2"])
def test_inherited_fd(launch, workers):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        server = launch("raw_asgi:app", "--app-dir", str(APPS), "--fd", str(listener.fileno()),
                        "--workers", workers, pass_fds=[listener.fileno()])
        assert server.address() == ("127.0.0.1", port)
        assert request(("127.0.0.1", port), "/via-fd").json()["path"] == "/via-fd"
    finally:
        listener.close()


@pytest.mark.parametrize("flag,logged", [("--access-log", True), ("--no-access-log", False)])
def test_access_log_switch(launch, tmp_path, flag, logged):
    out = tmp_path / "stdout"
    server = launch(*app_args("raw_asgi:app", flag), stdout_path=out)
    assert request(server.address(), "/logged-path").status == 200
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert ("/logged-path" in out.read_text()) is logged
    assert "/logged-path" not in server.log   # access lines go to stdout, never to stderr


def test_port_in_use_is_reported(launch):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = str(busy.getsockname()[1])
        for workers in ("1", "2"):
            result = run_cli(["run", "raw_asgi:app", "--app-dir", str(APPS), "--port", port,
                              "--workers", workers])
            assert result.returncode == 1
            assert f"cannot listen on http://127.0.0.1:{port}" in result.stderr
    finally:
        busy.close()



# --- the garbage collector (--gc) ----------------------------------------------------------

def _gc_settings(launch, spec, *flags):
    server = launch(*app_args(spec, *flags))
    return request(server.address()).json()


def test_gc_tuned_by_default_freezes_and_raises_the_young_threshold(launch):
    import gc

    from flask_restful_async.server.worker import TUNED_GC_THRESHOLD

    settings = _gc_settings(launch, "gc_app:app")
    assert settings["enabled"] is True
    assert settings["threshold"] == [TUNED_GC_THRESHOLD] + list(gc.get_threshold()[1:])
    assert settings["frozen"] > 1000  # the modules and the app loaded before serving


def test_gc_python_leaves_the_collector_alone(launch):
    import gc

    settings = _gc_settings(launch, "gc_app:app", "--gc", "python")
    assert settings["threshold"] == list(gc.get_threshold())
    assert settings["frozen"] == 0


def test_gc_tuned_keeps_thresholds_the_app_set(launch):
    settings = _gc_settings(launch, "gc_own_app:app")
    assert settings["threshold"] == [1234, 5, 6]
    assert settings["frozen"] > 1000
