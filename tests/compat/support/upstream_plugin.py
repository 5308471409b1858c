"""pytest plugin for running flask-restful 0.3.10's nose-era tests (every run alike).

* Module-level generator tests ("yield check, args...") were dropped by pytest 4; nose ran
  each yielded case as it was produced.  Each generator becomes one item that runs every case
  in order (late-binding lambdas in the cases need that order) and fails listing every
  failing case.
* flask.signals.signals_available, removed in Flask 2.3, is restored (test_api imports it).
* FRA_COMPAT_IMPORT_REPORT=path: write which package `import flask_restful` gave.
* FRA_COMPAT_VIA_ASGI=1: Flask apps answer the test client through our ASGI adapter, and the
  count of loop-path / thread-path requests is written next to the import report.
"""
import inspect
import os

import pytest


class GeneratorTest(pytest.Item):
    """Runs all cases of one nose-style generator test."""

    def __init__(self, *, callobj, **kwargs):
        super().__init__(**kwargs)
        self.callobj = callobj

    def runtest(self) -> None:
        failures = []
        count = 0
        for count, case in enumerate(self.callobj(), 1):
            func, *args = case
            try:
                func(*args)
            except Exception as exc:  # collect every failing case, as nose reported each
                failures.append(f"case {count}: {getattr(func, '__name__', func)}{tuple(args)!r}: {exc!r}")
        if count == 0:
            raise AssertionError("generator test yielded no cases")
        if failures:
            raise AssertionError("\n".join(failures))

    def reportinfo(self):
        return self.path, None, self.name


def _route_flask_through_asgi():
    """Make every Flask app answer WSGI calls (the test client) through
    flask_restful_async's ASGI adapter on a background loop, so the upstream tests run the
    loop path: AsyncResource on the loop, sync views in the adapter's thread pool."""
    import flask

    from flask_restful_async.asgi import AsgiApp
    from flask_restful_async.testing import AsgiBridge

    def call_through_asgi(self, environ, start_response):
        bridge = self.__dict__.get("_fra_compat_bridge")
        if bridge is None:
            bridge = self.__dict__["_fra_compat_bridge"] = AsgiBridge(AsgiApp(self, threads=4))
        return bridge(environ, start_response)

    flask.Flask.__call__ = call_through_asgi

    # count which path requests took, for the runner to check
    for name in ("_run_on_loop", "_run_in_thread"):
        original = getattr(AsgiApp, name)

        def counted(self, *args, _original=original, _name=name):
            PATHS[_name] = PATHS.get(_name, 0) + 1
            return _original(self, *args)
        setattr(AsgiApp, name, counted)


PATHS = {}


def pytest_unconfigure(config):
    report = os.environ.get("FRA_COMPAT_IMPORT_REPORT")
    if report and os.environ.get("FRA_COMPAT_VIA_ASGI"):
        with open(report + ".paths", "w") as f:
            f.write("loop %d\nthread %d\n" % (PATHS.get("_run_on_loop", 0),
                                              PATHS.get("_run_in_thread", 0)))


def pytest_configure(config):
    # Flask 2.3 removed flask.signals.signals_available (blinker became a hard dependency);
    # test_api.py imports it.  Restoring the name is an environment fix, applied to every run.
    import flask.signals

    if not hasattr(flask.signals, "signals_available"):
        flask.signals.signals_available = True

    if os.environ.get("FRA_COMPAT_VIA_ASGI"):
        _route_flask_through_asgi()

    # Record which package answered to `import flask_restful`, so the runner can check it
    # compared what it meant to compare.
    report = os.environ.get("FRA_COMPAT_IMPORT_REPORT")
    if report:
        import flask_restful

        with open(report, "w") as f:
            f.write("%s\n%s\n" % (flask_restful.__name__, flask_restful.__file__))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    if collector.funcnamefilter(name) and inspect.isgeneratorfunction(obj) \
            and isinstance(collector, pytest.Module):
        return GeneratorTest.from_parent(collector, name=name, callobj=obj)
    return None
