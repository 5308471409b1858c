"""flask-restful 0.3.10's own test suite against flask_restful_async.

Every test that passes on stock flask-restful in this environment must pass on ours; the
tests stock fails here because of Flask/Werkzeug 3 must pass on ours; ours may fail only
tests whose expectations this environment itself cannot meet (listed below, and failing on
stock too).  The AsyncResource rewrite must pass what the sync suite passes, except tests
that are about sync methods themselves.
"""
from typing import Dict

import pytest

import upstream_runner

@pytest.fixture(scope="module")
def upstream_runs() -> dict:
    """All runs of flask-restful 0.3.10's suite (stock, ours, async rewrite, via ASGI)."""
    return upstream_runner.run_all()


OURS = ("ours", "ours_asgi")
ASYNC = ("ours_async", "ours_async_asgi")

# Tests no implementation can pass in this environment, with the reason.
_CET = ("builds datetime(..., tzinfo=pytz.timezone('CET')), which is local mean time in "
        "current tzdata (CET now links to Europe/Brussels, +00:17:30): +01:00 cannot appear")
_QVALUE = ("sends 'q=.5', not a valid qvalue (RFC 9110 12.4.2); Werkzeug 3 drops that "
           "Accept entry")
KNOWN_ENVIRONMENT_FAILURES: Dict[str, str] = {
    "tests.test_api.APITestCase::test_exception_header_forwarded":
        "adds a 304 exception to werkzeug's module-level _aborter; Flask >= 2.2 aborts "
        "through app.aborter, so flask.abort(304) raises LookupError in the test itself",
    "tests.test_api.APITestCase::test_media_types_method": _QVALUE,
    "tests.test_api.APITestCase::test_media_types_q": _QVALUE,
    "tests.test_api.APITestCase::test_redirect":
        "expects an absolute Location from flask.redirect('/'); Werkzeug >= 2.1 no longer "
        "rewrites Location to an absolute URL",
    "tests.test_fields::test_rfc822_datetime_formatters": _CET,
    "tests.test_fields::test_iso8601_datetime_formatters": _CET,
    "tests.test_fields.FieldsTestCase::test_iso8601_date_field_with_offset": _CET,
    "tests.test_fields.FieldsTestCase::test_rfc822_date_field_with_offset": _CET,
}

# Tests of the suite that are about synchronous methods, so not meaningful once the
# methods are `async def`.
NOT_MEANINGFUL_ASYNC: Dict[str, str] = {
    "tests.test_api.APITestCase::test_selectively_apply_method_decorators":
        "a sync method decorator calls .upper() on the method's return value",
    "tests.test_api.APITestCase::test_apply_all_method_decorators_if_not_mapping":
        "a sync method decorator calls .upper() on the method's return value",
    "tests.test_api.APITestCase::test_decorators_only_applied_at_dispatch":
        "calls resource.get() directly and compares the result with a string",
}


def _passed(run: dict) -> set:
    return {t for t, outcome in run["outcomes"].items() if outcome == "passed"}


def _not_passed(run: dict) -> set:
    return {t for t, outcome in run["outcomes"].items() if outcome != "passed"}


def test_each_run_imported_the_package_it_meant_to(upstream_runs):
    name, path = upstream_runs["stock"]["imported"]
    assert name == "flask_restful"
    assert path.endswith("runs/stock/flask_restful/__init__.py")
    for kind in OURS + ASYNC:
        name, path = upstream_runs[kind]["imported"]
        assert name == "flask_restful_async", kind
        assert path.startswith(str(upstream_runner.REPO / "flask_restful_async")), kind


def test_all_runs_collected_the_whole_suite(upstream_runs):
    stock_ids = set(upstream_runs["stock"]["outcomes"])
    assert len(stock_ids) >= 300, "the upstream suite was not collected in full"
    for kind in OURS + ASYNC:
        assert set(upstream_runs[kind]["outcomes"]) == stock_ids, kind


@pytest.mark.parametrize("kind", OURS)
def test_every_test_passing_on_stock_passes_on_ours(upstream_runs, kind):
    regressions = _passed(upstream_runs["stock"]) - _passed(upstream_runs[kind])
    assert not regressions, "\n".join(sorted(regressions)) + "\n" + upstream_runs[kind]["output"][-4000:]


@pytest.mark.parametrize("kind", OURS)
def test_flask3_breakages_pass_on_ours(upstream_runs, kind):
    broken_on_stock = _not_passed(upstream_runs["stock"]) - set(KNOWN_ENVIRONMENT_FAILURES)
    # reqparse's default location ('json', 'values') raising 415 breaks most of the
    # reqparse suite on Werkzeug 3: those must be among them, and must pass on ours
    assert len({t for t in broken_on_stock if "test_reqparse" in t}) >= 30
    still_broken = broken_on_stock - _passed(upstream_runs[kind])
    assert not still_broken, "\n".join(sorted(still_broken))


@pytest.mark.parametrize("kind", OURS)
def test_ours_fails_only_what_the_environment_forbids(upstream_runs, kind):
    failing = _not_passed(upstream_runs[kind])
    assert failing <= set(KNOWN_ENVIRONMENT_FAILURES), "\n".join(sorted(failing))
    # and those fail on stock too: they are about the environment, not the package
    assert set(KNOWN_ENVIRONMENT_FAILURES) <= _not_passed(upstream_runs["stock"])


@pytest.mark.parametrize("kind", ASYNC)
def test_async_rewrite_passes_what_the_sync_suite_passes(upstream_runs, kind):
    run = upstream_runs[kind]
    assert run["counts"]["classes"] >= 30 and run["counts"]["methods"] >= 30, run["counts"]
    expected = _passed(upstream_runs["ours"]) - set(NOT_MEANINGFUL_ASYNC)
    missing = expected - _passed(run)
    assert not missing, "\n".join(sorted(missing)) + "\n" + run["output"][-4000:]


def test_asgi_runs_took_the_paths_they_should(upstream_runs):
    sync_paths = upstream_runs["ours_asgi"]["paths"]
    async_paths = upstream_runs["ours_async_asgi"]["paths"]
    # sync resources never run on the loop; AsyncResource requests do
    assert sync_paths.get("loop") == 0 and sync_paths.get("thread", 0) > 20, sync_paths
    assert async_paths.get("loop", 0) > 20, async_paths
