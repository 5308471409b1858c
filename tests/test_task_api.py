"""The exchange is the handler's asyncio task: what asyncio.timeout(), TaskGroup, shield and
code holding `asyncio.current_task()` call on it works as on a Task (done callbacks,
cancelled(), cancel messages, names, result()/exception()), on the raw ASGI path and on the
flask-restful native path, under both loops.  The handlers are tests/apps/task_cases.py."""
import uuid

import pytest

from conftest import RawConn, h11_get, poll, request_bytes


@pytest.fixture(scope="module", params=["asgi", "native"])
def app(request, loop_name):
    """(port, path prefix of the cases, how to read a recorded value) for one path."""
    if request.param == "asgi":
        port = request.getfixturevalue("asgi_server").port
        return port, "/t/task/", lambda rid: h11_get(port, "/__state__?key=" + rid).json()["value"]
    port = request.getfixturevalue("native_server").port
    return port, "/task/", lambda rid: h11_get(port, "/__state__").json().get(rid)


def run(app, case):
    port, prefix, _ = app
    rid = "%s-%s" % (case, uuid.uuid4().hex[:12])
    r = h11_get(port, f"{prefix}{case}?id={rid}")
    return r, rid


def recorded(app, rid):
    read = app[2]
    return poll(lambda: read(rid), lambda v: v is not None, what=f"state {rid!r}")


def test_timeout_that_expires_and_one_that_does_not(app):
    r, _ = run(app, "timeout")
    assert r.status == 200, r
    assert r.json() == {"expiring": "TimeoutError", "not_expiring": "finished",
                        "cancelling": 0, "after": "ran"}


def test_taskgroup_failing_child_cancels_the_others_and_the_error_reaches_the_handler(app):
    r, _ = run(app, "taskgroup")
    assert r.status == 200, r
    assert r.json() == {"group": ["ValueError: child failed"], "body": "cancelled",
                        "siblings_cancelled": [1, 2], "cancelling": 0, "after": "ran"}


def test_shielded_work_finishes_after_the_handler_timed_out(app):
    r, rid = run(app, "shield")
    assert r.status == 200, r
    assert r.json() == {"timeout": "TimeoutError", "inner_done_at_timeout": False,
                        "cancelling": 0}
    assert recorded(app, rid) == {"shielded": "finished"}


def test_done_callbacks_run_after_the_handler_in_their_context(app):
    r, rid = run(app, "done-callback")
    assert r.status == 200, r
    assert r.json() == {"removed_count": 1, "done_inside": False, "cancelled_inside": False,
                        "result_inside": "raises:InvalidStateError:Result is not set."}
    seen = recorded(app, rid)
    assert seen["first"] == {"done": True, "cancelled": False, "result": "value:None",
                             "exception": "value:None", "var": "request " + rid,
                             "current_task_is_none": True, "same_task": True}
    assert seen["in_context"] == "given context"
    assert "removed_ran" not in seen


def test_cancel_messages_reach_the_handler(app):
    r, _ = run(app, "cancel-msg")
    assert r.status == 200, r
    assert r.json() == {"suspended": ["why"], "cancel_returned": True,
                        "before_suspension": ["now"], "cancelling": [1, 1],
                        "cancelling_after": 0}


def test_set_name_and_get_name(app):
    r, rid = run(app, "name")
    assert r.status == 200, r
    assert r.json() == {"default_is_str": True, "name": str(("request", rid))}


def test_handler_ended_by_cancellation_is_cancelled(app):
    port, prefix, _ = app
    rid = "cancelled-" + uuid.uuid4().hex[:12]
    with RawConn(port) as c:
        c.send(request_bytes("GET", f"{prefix}cancelled?id={rid}"))
        data, closed = c.read_until_close()
    assert closed and data == b""  # a cancelled handler answers nothing
    assert recorded(app, rid) == {
        "done": True, "cancelled": True,
        "result": "raises:CancelledError:handler cancelled",
        "exception": "raises:CancelledError:handler cancelled",
        "var": None, "current_task_is_none": True}
    assert h11_get(port, "/alive").status in (200, 404)  # and the server goes on


def test_handler_ended_by_an_exception(app):
    port, prefix, _ = app
    r, rid = run(app, "fails")
    assert r.status == 500
    seen = recorded(app, rid)
    assert seen["done"] is True and seen["cancelled"] is False
    if prefix == "/t/task/":
        # a raw ASGI app's exception ends its task; it is kept for the done callbacks only
        assert seen["exception"] == f"value:KeyError('handler failed {rid}')"
        assert seen["result"] == f"raises:KeyError:handler failed {rid}"
        assert seen["later"] == ("raises:InvalidStateError:the handler's exception is kept "
                                 "only until its done callbacks have run")
    else:
        # flask-restful turned it into the 500 response: the task itself returned
        assert seen["exception"] == "value:None"
        assert seen["later"] == "value:None"
