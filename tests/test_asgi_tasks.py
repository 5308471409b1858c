"""Handlers run as proper asyncio tasks: current_task(), asyncio.timeout(), wait_for,
cancellation, TaskGroup, and contextvars isolated per request."""
from concurrent.futures import ThreadPoolExecutor

from conftest import H11Client, h11_get

EXPECTED = {
    "leaked_context": None,
    "task_at_entry": True,
    "timeout_at_entry": "ok",
    "task_after_await": True,
    "same_task": True,
    "context_after_await": True,
    "wait_for": "ok",
    "child_cancel": "ok",
    "self_cancel": "ok",
    "taskgroup": 3,
    "context_at_end": True,
}


def check(res, rid):
    assert res["id"] == rid
    for k, v in EXPECTED.items():
        assert res[k] == v, (k, res)


def test_task_features_in_one_handler(port):
    r = h11_get(port, "/t/tasks?id=solo")
    assert r.status == 200
    check(r.json(), "solo")


def test_contextvars_isolated_between_concurrent_requests(port):
    def one(i):
        r = h11_get(port, f"/t/tasks?id=c{i}&sleep={0.01 * (i % 5)}")
        return r.json()

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(32)))
    for i, res in enumerate(results):
        check(res, f"c{i}")


def test_contextvars_do_not_leak_across_requests_on_one_connection(port):
    with H11Client(port) as c:
        for i in range(5):
            res = c.request("GET", f"/t/tasks?id=k{i}").json()
            check(res, f"k{i}")
