"""The one-coroutine path of our server for AsyncResource routes (pipeline.handle_request driven
by the server, with the exchange's take_body / respond / cancel_on_disconnect): same answers as Flask's own
pipeline, errors, bodies however they arrive, disconnects and timeouts.  The app
(tests/apps_api/direct_app.py) is served with --interface auto, as users run it.  Over real
sockets; waits are safety nets, nothing asserts on elapsed time."""
import json
import socket
import struct
import sys
import time

import pytest

from conftest import NATIVE_APP_DIR, RawConn, h11_get, poll, request_bytes, serve

sys.path.insert(0, NATIVE_APP_DIR)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def srv(request):
    with serve("direct_app:app", "--app-dir", NATIVE_APP_DIR, "--loop", request.param) as server:
        yield server


def state(port):
    r = h11_get(port, "/__state__")
    assert r.status == 200, r
    return r.json()


def wait_state(port, pred):
    return poll(lambda: state(port), pred, what="the app's state")


def flask_answer(method, target, **kwargs):
    """What Flask's own pipeline (the test client) answers for the same request."""
    import direct_app

    return direct_app.app.test_client().open(target, method=method, **kwargs)


def test_plain_get_takes_the_direct_path_and_answers_like_flask(srv):
    r = h11_get(srv.port, "/items/5?verbose=3")
    assert r.status == 200
    assert r.header("content-type") == b"application/json"
    assert r.json() == {"id": 5, "name": "item", "verbose": 3, "path": "handle_request"}
    expected = flask_answer("GET", "/items/5?verbose=3")
    assert {**expected.json, "path": "handle_request"} == r.json()
    assert r.body.endswith(b"}\n") and expected.data.endswith(b"}\n")
    assert int(r.header("content-length")) == len(r.body)


def test_head_gives_the_get_length_and_no_body(srv):
    r = h11_get(srv.port, "/items/2", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert int(r.header("content-length")) == len(h11_get(srv.port, "/items/2").body)


def test_json_body_taken_whole(srv):
    body = json.dumps({"name": "widget"}).encode()
    r = h11_get(srv.port, "/items/9", method="POST", body=body,
                headers=[("content-type", "application/json")])
    assert r.status == 201
    assert r.json() == {"id": 9, "name": "widget", "size": len(body), "path": "handle_request"}


def test_missing_json_argument_is_a_400_like_flask(srv):
    r = h11_get(srv.port, "/items/9", method="POST", body=b"{}",
                headers=[("content-type", "application/json")])
    expected = flask_answer("POST", "/items/9", data=b"{}", content_type="application/json")
    assert r.status == 400 == expected.status_code
    assert r.json() == expected.json


def test_body_arriving_in_pieces_and_chunked(srv):
    """A body not complete when the headers are: the handler runs once all of it is here (the
    exchange gathers it), same answer."""
    payload = b"x" * 300_000
    with RawConn(srv.port) as c:
        head = ("PUT /items/1 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % len(payload)).encode()
        c.send(head + payload[:1000])
        time.sleep(0.05)
        c.send(payload[1000:])
        r = c.read_response()
    assert r.status == 200 and r.json() == {"size": len(payload), "path": "_after_body"}
    with RawConn(srv.port) as c:
        c.send(b"PUT /items/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200 and r.json()["size"] == 11


@pytest.mark.parametrize("kind", ["headers", "after", "plain", "namedtuple"])
def test_results_needing_a_response_object(srv, kind):
    r = h11_get(srv.port, "/shaped/" + kind)
    expected = flask_answer("GET", "/shaped/" + kind)
    assert r.status == expected.status_code
    assert r.json() == {**expected.json, "path": "handle_request"}
    for name in ("x-extra", "x-after-this"):
        want = expected.headers.get(name)
        assert r.header(name) == (want.encode() if want is not None else None)


def test_session_is_saved_and_read_back(srv):
    r = h11_get(srv.port, "/shaped/session")
    assert r.status == 200 and r.json()["n"] == 1
    cookie = r.header("set-cookie").split(b";")[0].decode()
    again = h11_get(srv.port, "/shaped/session", headers=[("cookie", cookie)])
    assert again.json()["n"] == 2


@pytest.mark.parametrize("kind,status", [("abort", 404), ("errors-dict", 503), ("boom", 500)])
def test_errors_take_the_api_error_path(srv, kind, status):
    mark = len(srv.log)
    r = h11_get(srv.port, "/fail/" + kind)
    expected = flask_answer("GET", "/fail/" + kind)
    assert r.status == status == expected.status_code
    assert r.json() == expected.json
    if kind == "boom":
        logged = poll(lambda: srv.log[mark:], lambda text: "boom in direct path" in text,
                      what="the traceback in the log")
        assert "Traceback" in logged
    assert h11_get(srv.port, "/items/1").status == 200  # the server keeps serving


def test_teardown_and_app_context_teardown_run(srv):
    before = state(srv.port)["appctx_teardown"]
    h11_get(srv.port, "/items/77")
    st = wait_state(srv.port, lambda s: ["/items/77", None] in s["teardown"])
    assert ["/items/77", None] in st["teardown"]
    assert st["appctx_teardown"] > before


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_cancels_the_handler(srv, how):
    tag = "%s-%s" % (how, time.monotonic_ns())
    mark = len(srv.log)
    c = RawConn(srv.port)
    c.send(request_bytes("GET", "/hang?tag=" + tag))
    wait_state(srv.port, lambda s: "hang:start:" + tag in s["events"])
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    st = wait_state(srv.port, lambda s: "hang:finally:" + tag in s["events"])
    assert "hang:cancelled:" + tag in st["events"]   # CancelledError reached user code
    assert "hang:finally:" + tag in st["events"]     # and its cleanup ran
    assert ["/hang", "CancelledError"] in st["teardown"]
    assert h11_get(srv.port, "/items/1").status == 200
    later = srv.log[mark:]
    assert "ERROR" not in later and "Traceback" not in later and "Cancelled" not in later


def test_timeout_gives_504_and_cancels(srv):
    r = h11_get(srv.port, "/slow")
    assert r.status == 504 and set(r.json()) == {"message"}
    st = wait_state(srv.port, lambda s: "slow:finally" in s["events"])
    assert "slow:finally" in st["events"]


def test_pipelined_requests_answer_in_order(srv):
    with RawConn(srv.port) as c:
        c.send(b"".join(request_bytes("GET", "/items/%d" % i) for i in range(5)))
        ids = [c.read_response().json()["id"] for _ in range(5)]
    assert ids == list(range(5))


def test_a_task_reads_the_request_after_the_response(srv):
    """The scope is made lazily on this path; a task that outlives the response still sees
    the request."""
    mark = len(srv.log)
    r = h11_get(srv.port, "/later?q=kept", headers=[("user-agent", "later-test")])
    assert r.status == 200
    st = wait_state(srv.port, lambda s: (s.get("later") or {}).get("q") == "kept")
    assert st["later"] == {"q": "kept", "path": "/later", "ua": "later-test"}
    assert "Traceback" not in srv.log[mark:]
